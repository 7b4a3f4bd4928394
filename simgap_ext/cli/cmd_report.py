"""``simgap report DIR``: write DIR/report.html for a generation run (self-contained, opens without a server)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``report`` sub-command."""
    p = subparsers.add_parser(
        "report",
        help="write an HTML report of a generation run",
        description=(
            "Write a self-contained HTML page (plots embedded as PNG data URIs) with acceptance per class, "
            "G distributions and the JS/quarantine timeline of a `simgap generate` output directory."
        ),
    )
    p.add_argument("run_dir", type=Path, help="a simgap generate output directory (or its manifest.jsonl)")
    p.add_argument("--out", type=Path, default=None, help="HTML file (default RUN_DIR/report.html)")
    p.add_argument(
        "--effects",
        type=Path,
        default=None,
        help="tuned profile (`simgap tune --out`) whose model the gap section applies to the run's frames "
        "(default: the run's own tuned preset, if it used one)",
    )
    p.add_argument(
        "--real",
        type=Path,
        default=None,
        help="real scans for the gap section and the bird's-eye views (default: the run's --real directory)",
    )
    p.add_argument(
        "--effect-frames",
        type=int,
        default=3,
        help="frames per side measured by the gap section (default 3; 0 leaves it out)",
    )
    p.add_argument(
        "--bev-frames",
        type=int,
        default=3,
        help="rejected attempts drawn from above beside their nearest real frame (default 3; 0 leaves it out)",
    )
    p.add_argument(
        "--bev-radius", type=float, default=50.0, help="half side of the bird's-eye views, metres (default 50)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``simgap report``."""
    from ..errors import SimGapInputError
    from ..pipeline.report import write_report

    if args.effect_frames < 0:
        raise SimGapInputError(f"--effect-frames must be >= 0, got {args.effect_frames}")
    if args.bev_frames < 0:
        raise SimGapInputError(f"--bev-frames must be >= 0, got {args.bev_frames}")
    path = write_report(
        args.run_dir,
        args.out,
        effects=args.effects,
        real=args.real,
        effect_frames=args.effect_frames,
        bev_frames=args.bev_frames,
        bev_radius=args.bev_radius,
    )
    print(path)
    return 0
