"""Gate throughput: frames/s of FrameGate.evaluate for 64- and 128-beam frames, and its share of render + gate.

For each sensor, a reference bank is built from ``--bank-frames`` realistic frames of the embedded Warp LiDAR
backend (the stand-in for real scans), then ``--frames`` further realistic frames are rendered and gated. The
table reports render and gate time per frame (mean), gate frames/s, and the gate's share of render + gate, for
the geometric gate alone and with the semantic quarantine (instance embeddings + windowed JS).

Usage::

    .venv/bin/python benchmarks/bench_gate.py [--sensors os1-64 os1-128] [--bank-frames 20] [--frames 10]
        [--device cpu|cuda:0] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", nargs="+", default=["os1-64", "os1-128"])
    parser.add_argument("--bank-frames", type=int, default=20)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--device", default=None, help="Warp device (default: CUDA when available, else CPU)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)

    from simgap_ext._warp import resolve_device

    device = resolve_device(args.device)
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
