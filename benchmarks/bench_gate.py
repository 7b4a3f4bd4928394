"""Gate throughput: frames/s of FrameGate.evaluate for 64- and 128-beam frames, and its share of render + gate.

For each sensor, a reference bank is built from ``--bank-frames`` realistic frames of the embedded Warp LiDAR
backend (the stand-in for real scans), then ``--frames`` further realistic frames are rendered and gated. The
table reports render and gate time per frame (mean), gate frames/s, and the gate's share of render + gate, for
the geometric gate alone and with the semantic quarantine (instance embeddings + windowed JS).

``--generate`` measures ``simgap generate``'s loop instead (GenerationRunner: render, gate, export, manifest):
sequential against rendering pipelined (the next frame rendered while the gate checks this one) on a worker
``thread`` (the pipeline before it moved to a process) and in a worker ``process`` (today's default), in one
process on the same bank: ``--rounds`` rounds, each running every mode in a shuffled order on a fresh run
directory, frames/s = scheduled frames / wall time (worker start-up included); the table gives medians and the
median per-round speed-up over sequential, and checks that every mode wrote the same manifest rows.

Usage::

    .venv/bin/python benchmarks/bench_gate.py [--sensors os1-64 os1-128] [--bank-frames 20] [--frames 10]
        [--device cpu|cuda:0] [--json OUT]
    .venv/bin/python benchmarks/bench_gate.py --generate --sensors os1-128 --frames 8 --rounds 3 \
        [--modes sequential thread process]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "bench_sensor"]


def bench_sensor(sensor: str, *, bank_frames: int, frames: int, device: str | None) -> dict[str, Any]:
    """Measure one sensor; returns a JSON-safe row."""
    from simgap_ext.backends import get_scene_source
    from simgap_ext.gate import FrameGate, GateConfig, ReferenceBank

    src = get_scene_source("warp", sensor=sensor, preset="realistic", device=device)
    src.render(seed=0)  # warm-up: kernel compilation is not part of the steady state
    t0 = time.perf_counter()
    real = [src.render(seed=10_000 + i, frame_id=i) for i in range(bank_frames)]
    t_real = time.perf_counter() - t0
    t0 = time.perf_counter()
    bank = ReferenceBank.build(real, config=GateConfig(), device=device)
    t_bank = time.perf_counter() - t0
    row: dict[str, Any] = {
        "sensor": sensor,
        "device": str(device or "auto"),
        "bank_frames": bank_frames,
        "bank_exemplars": bank.n_exemplars,
        "bank_build_s": t_bank,
        "points_per_frame": statistics.mean(int(f["data"].shape[0]) for f in real),
        "render_s_bank_frames": t_real / bank_frames,
    }
    for mode, quarantine in (("geometric", False), ("geometric+semantic", None)):
        gate = FrameGate(bank, GateConfig(), device=device, quarantine=quarantine)
        gate.evaluate(real[0], update_quarantine=False)  # warm-up
        render_t, gate_t, accepted = [], [], 0
        for i in range(frames):
            t0 = time.perf_counter()
            frame = src.render(seed=i + 1, frame_id=i)
            t1 = time.perf_counter()
            decision = gate.evaluate(frame)
            t2 = time.perf_counter()
            render_t.append(t1 - t0)
            gate_t.append(t2 - t1)
            accepted += int(decision.accepted)
        r, g = statistics.mean(render_t), statistics.mean(gate_t)
        row[mode] = {
            "render_s": r,
            "gate_s": g,
            "gate_fps": 1.0 / g,
            "gate_share": g / (r + g),
            "accepted": accepted,
            "frames": frames,
        }
    return row


GENERATE_MODES = ("sequential", "thread", "process")


def bench_generate(
    sensor: str, *, bank_frames: int, frames: int, rounds: int, device: str | None, modes: list[str]
) -> dict[str, Any]:
    """frames/s of the generation loop per mode, shuffled rounds on one bank; a JSON-safe row."""
    from simgap_ext.backends import get_scene_source
    from simgap_ext.data.manifest import read_manifest
    from simgap_ext.gate import FrameGate, GateConfig, ReferenceBank, identify_tail_classes
    from simgap_ext.pipeline import GenerationRunner

    src = get_scene_source("warp", sensor=sensor, preset="realistic", device=device)
    real = [src.render(seed=10_000 + i, frame_id=i) for i in range(bank_frames)]
    bank = ReferenceBank.build(real, config=GateConfig(), device=device)
    tails = identify_tail_classes(bank.class_counts, 20.0) if bank.class_counts else []
    times: dict[str, list[float]] = {m: [] for m in ["sequential", *[m for m in modes if m != "sequential"]]}
    cpu_main: dict[str, list[float]] = {m: [] for m in times}
    cpu_worker: dict[str, list[float]] = {m: [] for m in times}
    rows: dict[str, list[Any]] = {}
    prefetched: dict[str, dict[str, int]] = {}
    deferred: dict[str, dict[int, int]] = {}
    rng = random.Random(11)
    with tempfile.TemporaryDirectory(prefix="bench_gate_") as tmp:
        for r in range(rounds):
            order = list(times)
            rng.shuffle(order)
            for mode in order:
                out = Path(tmp) / f"{mode}-{r}"
                gate = FrameGate(bank, GateConfig(), device=device)
                pipeline = False if mode == "sequential" else mode
                runner = GenerationRunner(src, gate, out, tail_classes=tails, max_retries=1, seed=3, pipeline=pipeline)
                c0, w0 = time.process_time(), _children_cpu()
                t0 = time.perf_counter()
                runner.run(frames, progress=False)
                times[mode].append(time.perf_counter() - t0)
                cpu_main[mode].append((time.process_time() - c0) / frames)
                cpu_worker[mode].append((_children_cpu() - w0) / frames)  # the worker is reaped by run()
                prefetched[mode] = dict(runner.prefetched)
                deferred[mode] = dict(runner.deferred_stats)
                got = [
                    {k: v for k, v in row.items() if k != "timestamp"} for row in read_manifest(out / "manifest.jsonl")
                ]
                if rows.setdefault(mode, got) != got or rows.get("sequential", got) != got:
                    raise SystemExit(f"bench_gate: the {mode} run wrote a different manifest than sequential")
    seq = times["sequential"]
    return {
        "sensor": sensor,
        "device": str(device or "auto"),
        "frames": frames,
        "attempts": len(rows["sequential"]),
        "rounds": rounds,
        "fps": {m: frames / statistics.median(t) for m, t in times.items()},
        "speedup": {m: statistics.median(s / p for s, p in zip(seq, t, strict=True)) for m, t in times.items()},
        "prefetched": prefetched,
        "deferred_stats": deferred,
        "cpu_s_per_frame": {m: [statistics.median(cpu_main[m]), statistics.median(cpu_worker[m])] for m in times},
        "times_s": times,
        "load_avg": os.getloadavg(),
    }


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", nargs="+", default=["os1-64", "os1-128"])
    parser.add_argument("--bank-frames", type=int, default=20)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--device", default=None, help="Warp device (default: CUDA when available, else CPU)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    parser.add_argument("--generate", action="store_true", help="generation loop: pipelined vs sequential")
    parser.add_argument("--rounds", type=int, default=3, help="--generate: shuffled rounds of every mode")
    parser.add_argument(
        "--modes", nargs="+", choices=GENERATE_MODES, default=list(GENERATE_MODES), help="--generate: modes to time"
    )
    args = parser.parse_args(argv)

    from simgap_ext._warp import resolve_device

    device = resolve_device(args.device)
    if args.generate:
        load0 = os.getloadavg()
        gen = [
            bench_generate(
                s, bank_frames=args.bank_frames, frames=args.frames, rounds=args.rounds, device=device, modes=args.modes
            )
            for s in args.sensors
        ]
        load1 = os.getloadavg()
        print(
            f"device: {device}   bank: {args.bank_frames} realistic frames   {args.frames} scheduled frames per run, "
            f"max_retries 1, {args.rounds} shuffled rounds   load avg (1/5/15 min) before "
            f"{'/'.join(f'{x:.1f}' for x in load0)}, after {'/'.join(f'{x:.1f}' for x in load1)}, "
            f"{os.cpu_count()} cores"
        )
        modes = list(gen[0]["fps"]) if gen else []
        print("| sensor | attempts | " + " | ".join(f"{m} frames/s" for m in modes) + " | "
              + " | ".join(f"{m} speed-up" for m in modes if m != "sequential") + " |")  # fmt: skip
        print("|---" * (2 + 2 * len(modes) - 1) + "|")
        for g in gen:
            cells = [f"{g['fps'][m]:.2f}" for m in modes]
            cells += [f"{g['speedup'][m]:.2f}x" for m in modes if m != "sequential"]
            print(f"| {g['sensor']} | {g['attempts']} | " + " | ".join(cells) + " |")
        print("speed-up: median over rounds of sequential time / mode time (same round)")
        print("\nCPU s per scheduled frame (median over rounds), main process + worker process:")
        for g in gen:
            cpu = g["cpu_s_per_frame"]
            cells = [f"{m} {c[0]:.2f} + {c[1]:.2f}" for m, c in cpu.items()]
            bound = {m: (cpu["sequential"][0]) / max(c) for m, c in cpu.items() if m != "sequential" and max(c) > 0}
            print(f"  {g['sensor']}: " + ", ".join(cells) + "; on idle cores the busier process bounds the speed-up at "
                  + ", ".join(f"{m} {b:.2f}x" for m, b in bound.items()))  # fmt: skip
            if g["deferred_stats"].get("process"):
                print(f"  process, last round: frames by statistics parts the worker left to the main process "
                      f"{dict(sorted(g['deferred_stats']['process'].items()))}")  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps(gen, indent=2))
        return 0
    rows = [bench_sensor(s, bank_frames=args.bank_frames, frames=args.frames, device=device) for s in args.sensors]
    print(f"device: {device}   bank: {args.bank_frames} realistic frames   timed frames: {args.frames} per mode")
    head = (
        f"{'sensor':9s} {'points':>7s} {'exempl':>6s} {'bank s':>6s} {'mode':19s} {'render s':>8s} {'gate s':>7s} "
        f"{'gate fps':>8s} {'gate share':>10s} {'accepted':>8s}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        for mode in ("geometric", "geometric+semantic"):
            m = row[mode]
            print(
                f"{row['sensor']:9s} {row['points_per_frame']:7.0f} {row['bank_exemplars']:6d} "
                f"{row['bank_build_s']:6.1f} {mode:19s} {m['render_s']:8.3f} {m['gate_s']:7.3f} {m['gate_fps']:8.2f} "
                f"{m['gate_share']:10.1%} {m['accepted']:>4d}/{m['frames']:<3d}"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
