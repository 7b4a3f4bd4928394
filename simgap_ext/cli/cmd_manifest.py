"""``simgap manifest --real DIR --out real.jsonl``: a manifest of real scans (input of ``simgap mix``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._scan_options import add_scan_options, scan_options

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``manifest`` sub-command."""
    p = subparsers.add_parser(
        "manifest",
        help="write a JSON Lines manifest of real scans",
        description="One 'real' row per scan (paths, per-class point and instance counts) for `simgap mix`.",
    )
    p.add_argument("--real", type=Path, required=True, help="SemanticKITTI sequence dir (or a dir of scans)")
    p.add_argument("--out", type=Path, required=True, help="the .jsonl manifest to write")
    add_scan_options(p)
    p.add_argument("--sensor", default="unknown", help="sensor profile name recorded in each row")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``simgap manifest``."""
    from ..pipeline.real_manifest import build_real_manifest

    rows = build_real_manifest(args.real, args.out, sensor=args.sensor, **scan_options(args))
    print(f"{len(rows)} real rows -> {args.out}")
    return 0
