"""``simgap budget``: tail classes of the real reference and the synthetic generation budget that fills them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ._scan_options import add_scan_options, scan_options

__all__ = ["register", "run", "real_class_counts"]


def register(subparsers: Any) -> None:
    """Add the ``budget`` sub-command."""
    p = subparsers.add_parser(
        "budget",
        help="tail classes and the synthetic generation budget per class",
        description=(
            "Tail classes are those whose real instance count is at or below the given percentile of all class "
            "counts; each one's budget is max(0, target - count) instances, and the estimated time is that deficit "
            "over (frames per hour x instances per frame x acceptance rate)."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--real", type=Path, help="real scans: file, directory or SemanticKITTI sequence")
    src.add_argument("--bank", type=Path, help="a reference bank .npz (its class counts)")
    add_scan_options(p, what="scans")
    p.add_argument("--target-per-class", required=True, type=int, help="target instances per class")
    p.add_argument("--percentile", type=float, default=20.0, help="tail percentile (default 20)")
    p.add_argument("--frames-per-hour", type=float, default=3600.0, help="generation rate (default 3600)")
    p.add_argument("--instances-per-frame", type=float, default=1.0, help="instances a focused frame yields (1)")
    p.add_argument("--acceptance-rate", type=float, default=1.0, help="share the gate accepts (default 1)")
    p.add_argument("--all", action="store_true", help="budget every class, not only the tail")
    p.add_argument("--gate-config", type=Path, default=None, help="gate TOML (its background classes are skipped)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def real_class_counts(path: Path, background: tuple[str, ...], **read: Any) -> dict[str, int]:
    """Instances (distinct instance ids != 0) per object class over every real scan under ``path`` (``read``: reader
    options such as ``label_map``)."""
    from ..data import iter_scans
    from ..pipeline.real_manifest import frame_class_counts

    counts: dict[str, int] = {}
    for _, frame in iter_scans(path, **read):
        for name, n in frame_class_counts(frame)[1].items():
            if name not in background:
                counts[name] = counts.get(name, 0) + n
    return counts


def run(args: argparse.Namespace) -> int:
    """Entry point of ``simgap budget``."""
    from ..errors import ReferenceDataError
    from ..gate import ReferenceBank, compute_synthetic_generation_budget, identify_tail_classes, load_gate_config

    config = load_gate_config(args.gate_config)
    if args.bank is not None:
        counts = ReferenceBank.load(args.bank).class_counts
        source = str(args.bank)
    else:
        counts = real_class_counts(args.real, config.background_classes, **scan_options(args))
        source = str(args.real)
    if not counts:
        raise ReferenceDataError(f"{source}: no object class instances found (are instance ids present?)")
    tails = identify_tail_classes(counts, args.percentile)
    rows = compute_synthetic_generation_budget(
        counts,
        args.target_per_class,
        percentile=args.percentile,
        include_all=args.all,
        frames_per_hour=args.frames_per_hour,
        instances_per_frame=args.instances_per_frame,
        acceptance_rate=args.acceptance_rate,
    )
    if args.json:
        out = {
            "source": source,
            "percentile": args.percentile,
            "class_counts": counts,
            "tail_classes": tails,
            "budget": {k: r.to_dict() for k, r in rows.items()},
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"real reference: {source}")
    print(f"tail classes (<= {args.percentile:g}th percentile of real instance counts): {', '.join(tails) or 'none'}")
    print(f"  {'class':18s} {'real':>7s} {'target':>7s} {'deficit':>8s} {'tail':>5s} {'frames':>8s} {'hours':>8s}")
    for r in rows.values():
        frames = "-" if r.frames_needed is None else str(r.frames_needed)
        hours = "inf" if r.estimated_hours == float("inf") else f"{r.estimated_hours:.2f}"
        print(
            f"  {r.class_name:18s} {r.current:7d} {r.target:7d} {r.deficit:8d} {'yes' if r.is_tail else '':>5s} "
            f"{frames:>8s} {hours:>8s}"
        )
    total = sum(r.estimated_hours for r in rows.values())
    print(f"total: {sum(r.deficit for r in rows.values())} instances, {total:.2f} h")
    return 0
