"""``simgap reference build|show``: build a real reference bank for the gate, or summarise one."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ._scan_options import add_scan_options, scan_options

__all__ = ["register", "run_build", "run_show"]


def register(subparsers: Any) -> None:
    """Add the ``reference`` sub-command with its ``build`` and ``show`` actions."""
    p = subparsers.add_parser(
        "reference",
        help="build or inspect the real reference bank the gate compares synthetic frames with",
        description=(
            "build: crop every real instance into canonical exemplars, collect range-roughness, ring-continuity, "
            "range and per-beam statistics and instance embeddings, and calibrate every d_max from real-vs-real "
            "distances. show: print what a bank holds."
        ),
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    b = sub.add_parser("build", help="build a bank from real scans")
    b.add_argument("--real", required=True, type=Path, help="real scans: file, directory or SemanticKITTI sequence")
    add_scan_options(b)
    b.add_argument("--out", required=True, type=Path, help="bank file to write (.npz)")
    b.add_argument("--sensor", default=None, help="sensor profile of the real scans (e.g. os1-64)")
    b.add_argument("--gate-config", type=Path, default=None, help="gate TOML (default config/gate.toml)")
    b.add_argument("--limit", type=int, default=None, help="use at most this many scans (spread evenly)")
    b.add_argument("--device", default=None, help="Warp device (default: CUDA when available)")
    b.set_defaults(func=run_build)
    s = sub.add_parser("show", help="summarise a bank")
    s.add_argument("bank", type=Path, help="bank file (.npz)")
    s.add_argument("--json", action="store_true", help="print the full summary as JSON")
    s.set_defaults(func=run_show)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_build(args: argparse.Namespace) -> int:
    """Entry point of ``simgap reference build``."""
    from ..data import iter_scans, list_scans, scan_name
    from ..errors import SimGapInputError
    from ..gate import ReferenceBank, load_gate_config

    if args.limit is not None and args.limit < 1:
        raise SimGapInputError(f"--limit must be >= 1, got {args.limit}")
    if args.out.suffix != ".npz":
        raise SimGapInputError(f"--out {args.out}: the bank is an .npz file")
    config = load_gate_config(args.gate_config)
    files = list_scans(args.real)
    n = len(files)
    only = None
    if args.limit is not None and args.limit < n:
        # Only the chosen scans are opened: --limit 20 on a 4000-scan sequence must not read all 4000.
        only = {scan_name(files[round(i * (n - 1) / max(args.limit - 1, 1))]) for i in range(args.limit)}
    scans = iter_scans(args.real, sensor=args.sensor or "unknown", only=only, **scan_options(args))
    t0 = time.perf_counter()
    bank = ReferenceBank.build(scans, sensor=args.sensor, config=config, device=args.device)
    path = bank.save(args.out)
    per_class = ", ".join(f"{c} {k}" for c, k in bank.class_counts.items()) or "none"
    print(
        f"wrote {path}: {bank.frame_count} scans, {bank.n_exemplars} exemplars, instances per class: {per_class}; "
        f"d_max {bank.d_max:.4g} m; {time.perf_counter() - t0:.1f} s"
    )
    return 0


def _fmt(v: Any, spec: str = ".3g") -> str:
    return "-" if v is None else format(v, spec)


def run_show(args: argparse.Namespace) -> int:
    """Entry point of ``simgap reference show``."""
    from ..gate import ReferenceBank

    t0 = time.perf_counter()
    bank = ReferenceBank.load(args.bank)
    load_s = time.perf_counter() - t0
    summary = bank.summary()
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    print(f"bank {args.bank} (loaded in {load_s * 1000:.0f} ms)")
    print(f"  sensor: {bank.sensor or 'unknown'}   frames: {bank.frame_count}   exemplars: {bank.n_exemplars}")
    print(f"  d_max (object Chamfer, pooled): {_fmt(bank.d_max, '.4g')} m")
    print(
        f"  {'class':18s} {'instances':>9s} {'points':>9s} {'exemplars':>9s} {'range m':>13s} {'embeds':>6s} "
        f"{'d_max CD':>8s}"
    )
    for name, row in summary["classes"].items():
        rng = "-" if row["range_min"] is None else f"{row['range_min']:.1f}-{row['range_max']:.1f}"
        print(
            f"  {name:18s} {row['instances']:9d} {row['points']:9d} {row['exemplars']:9d} {rng:>13s} "
            f"{row['embeddings']:6d} {_fmt(row['d_max_chamfer'], '8.3g')}"
        )
    scene = {k[6:]: v["scene"] for k, v in bank.d_max_table.items() if k.startswith("scene_")}
    if scene:
        print("  scene d_max: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(scene.items())))
    return 0
