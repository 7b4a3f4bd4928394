"""``simgap validate``: leave-one-out real-vs-real acceptance and perturbation detection of the gate on real scans."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``validate`` sub-command."""
    p = subparsers.add_parser(
        "validate",
        help="validate the gate on real scans: real-vs-real acceptance and detection of known perturbations",
        description=(
            "For up to --folds held-out real scans, build a bank from all the others (leave one out), gate the "
            "held-out scan as it is (it should be accepted) and after each perturbation (Gaussian jitter "
            "0.02-0.2 m, ray drop 20/50 %, subsampling 2/4/10x, rigid shift 0.5/2 m, every other ring removed, "
            "a class relabelled as vegetation, a class removed; each should be rejected), and print a table per "
            "case and gate component (--json, --html: also as JSON / as an HTML page with a plot). Same code as "
            "benchmarks/validate_real.py."
        ),
    )
    p.add_argument("--real", required=True, type=Path, nargs="+", help="real scan folder(s), one sensor each")
    p.add_argument("--sensor", default=None, help="sensor profile (default: detected from the layout)")
    p.add_argument("--label-map", default=None, help="label map name or file (default: the layout's)")
    p.add_argument("--gate-config", type=Path, default=None, help="gate TOML (default config/gate.toml)")
    p.add_argument("--folds", type=int, default=8, help="held-out scans per folder, evenly spaced (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random perturbations (default 0)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the tables as JSON")
    p.add_argument("--html", type=Path, default=None, metavar="OUT", help="also write an HTML page with a plot")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``simgap validate``."""
    from ..data import atomic_write_bytes
    from ..gate import load_gate_config
    from ..gate.realsets import iter_real_scans
    from ..gate.validation import format_table, validate_gate, write_validation_html
    from ._progress import progress_bar

    config = load_gate_config(args.gate_config)
    results = []
    for folder in args.real:
        frames = list(iter_real_scans(folder, label_map=args.label_map, sensor=args.sensor))
        with progress_bar(f"validating {folder.name}", disable=args.no_progress) as progress:
            task = progress.add_task("folds", total=min(args.folds, len(frames)))
            rows = validate_gate(
                frames,
                config=config,
                max_folds=args.folds,
                seed=args.seed,
                progress=lambda done, total, t=task: progress.update(t, completed=done, total=total),
            )
        title = f"{folder} ({len(frames)} scans, sensor {frames[0][1].get('sensor', 'unknown')})"
        print(format_table(rows, title))
        print()
        results.append((title, rows))
    if args.json is not None:
        data = [{"dataset": t, "rows": [r.to_dict() for r in rows]} for t, rows in results]
        atomic_write_bytes(args.json, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
    if args.html is not None:
        write_validation_html(args.html, results)
    return 0
