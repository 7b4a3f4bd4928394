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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``simgap report``."""
    from ..pipeline.report import write_report

    path = write_report(args.run_dir, args.out)
    print(path)
    return 0
