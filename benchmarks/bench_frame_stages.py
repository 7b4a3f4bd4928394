"""CPU time per stage of one ``simgap generate`` attempt: where a frame's time goes on each side of the pipeline.

Renders ``--frames`` realistic frames of the embedded Warp backend for a bank (``--bank-frames``) and as many to
time, then measures CPU seconds (``time.process_time``: independent of the machine's load) per frame for each stage
as ``simgap generate`` runs it: the render (worker), the frame statistics the worker computes beside it, the two
deferrable parts (apparent origin, local descriptors), the gate on precomputed statistics (main process), with
OpenBLAS's default threads and with one thread (what a pipelined run uses), and the export of an accepted frame.

Usage::

    PYTHONPATH=. python benchmarks/bench_frame_stages.py [--sensor os1-128] [--bank-frames 10] [--frames 6]
    PYTHONPATH=/path/to/older/checkout python benchmarks/bench_frame_stages.py   # the same stages of another tree
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]


def _cpu(fn, *args, **kw):
    t0 = time.process_time()
    out = fn(*args, **kw)
    return time.process_time() - t0, out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensor", default="os1-128")
    parser.add_argument("--bank-frames", type=int, default=10)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    from simgap_ext.backends import get_scene_source
    from simgap_ext.gate import FrameGate, GateConfig, ReferenceBank
    from simgap_ext.gate.frame_stats import DEFERRABLE, finish_frame_stats
    from simgap_ext.pipeline.exporter import Exporter

    try:
        from simgap_ext.pipeline.blas_threads import limit_blas_threads
    except ImportError:  # a tree before the one-thread limit (run with PYTHONPATH=<older checkout> to compare)
        limit_blas_threads = None

    src = get_scene_source("warp", sensor=args.sensor, preset="realistic", device=args.device)
    src.render(seed=0)  # kernel load
    real = [src.render(seed=10_000 + i, frame_id=i) for i in range(args.bank_frames)]
    bank = ReferenceBank.build(real, config=GateConfig(), device=args.device)
    times: dict[str, list[float]] = {}
    load0 = os.getloadavg()
    gates = {"default": FrameGate(bank, GateConfig(), device=args.device)}
    gates["1 thread"] = FrameGate(bank, GateConfig(), device=args.device)
    spec = gates["default"].stats_spec()
    with tempfile.TemporaryDirectory(prefix="bench_stages_") as tmp:
        exporter = Exporter(Path(tmp) / "out")
        for i in range(args.frames):
            t, frame = _cpu(src.render, seed=i + 1, frame_id=i)
            times.setdefault("render (worker)", []).append(t)
            t, prepared = _cpu(spec.prepare, frame)
            t2, partial = _cpu(spec.stats, prepared, DEFERRABLE)
            times.setdefault("frame statistics without the deferrable parts (worker)", []).append(t + t2)
            stats = partial
            for part in DEFERRABLE:
                t, stats = _cpu(finish_frame_stats, prepared, _pending_only(stats, part))
                times.setdefault(f"deferrable part: {part}", []).append(t)
            stats = finish_frame_stats(prepared, partial)
            t, _ = _cpu(gates["default"].evaluate, frame, stats=stats)
            times.setdefault("gate on precomputed statistics, OpenBLAS default threads", []).append(t)
            if limit_blas_threads is not None:
                with limit_blas_threads(1):
                    t, _ = _cpu(gates["1 thread"].evaluate, frame, stats=stats)
                times.setdefault("gate on precomputed statistics, one OpenBLAS thread", []).append(t)
            t, _ = _cpu(exporter.export, frame, i)
            times.setdefault("export of an accepted frame (main)", []).append(t)
    n_points = statistics.mean(int(f["data"].shape[0]) for f in real)
    print(
        f"{args.sensor}: {args.frames} frames timed (~{n_points:.0f} points), bank of {args.bank_frames}; CPU ms per "
        f"frame (median); load avg before {load0[0]:.1f}, after {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores"
    )
    print("| stage | CPU ms/frame (median) | min | max |")
    print("|---|---|---|---|")
    for name, vals in times.items():
        ms = [1e3 * v for v in vals]
        print(f"| {name} | {statistics.median(ms):.0f} | {min(ms):.0f} | {max(ms):.0f} |")
    return 0


def _pending_only(stats, part: str):
    """``stats`` as if only ``part`` were still pending (the other deferrable parts already computed or dropped)."""
    from dataclasses import replace

    return replace(stats, pending=(part,))


if __name__ == "__main__":
    sys.exit(main())
