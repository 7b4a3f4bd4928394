"""``simgap mix``: stratified real:synthetic mix by class-frequency bucket into train/val manifests."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._scan_options import add_scan_options, scan_options

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``mix`` sub-command."""
    p = subparsers.add_parser(
        "mix",
        help="mix real and synthetic manifests into stratified train/val manifests",
        description=(
            "Bucket every sample by its rarest class's real frequency (head/body/tail), take real and synthetic "
            "samples per bucket at the requested ratio (exact), split each bucket into train/val, and write "
            "OUT/train.jsonl and OUT/val.jsonl. See docs/pipeline.md for the exact rules."
        ),
    )
    p.add_argument(
        "--real-manifest",
        type=Path,
        required=True,
        help="real manifest .jsonl, or a real SemanticKITTI directory (its manifest is written to OUT/real.jsonl)",
    )
    p.add_argument(
        "--synthetic-manifest", type=Path, required=True, help="a generation manifest.jsonl or its run directory"
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--ratio", type=float, default=0.5, help="synthetic share of each bucket (0.5 = 50:50)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of each bucket for validation")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--tail-percentile", type=float, default=20.0, help="tail bucket: real frequency percentile")
    p.add_argument("--head-percentile", type=float, default=80.0, help="head bucket: real frequency percentile")
    p.add_argument("--sensor", default="unknown", help="sensor name for a real manifest built from a directory")
    add_scan_options(p, what="a real scan directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``simgap mix``."""
    from rich.console import Console
    from rich.table import Table

    from ..pipeline.mixing import BUCKETS, mix_manifests
    from ..pipeline.real_manifest import build_real_manifest

    real = args.real_manifest
    if real.is_dir():
        args.out.mkdir(parents=True, exist_ok=True)
        target = args.out / "real.jsonl"
        build_real_manifest(real, target, sensor=args.sensor, **scan_options(args))
        real = target
    result = mix_manifests(
        real,
        args.synthetic_manifest,
        args.out,
        ratio=args.ratio,
        val_fraction=args.val_fraction,
        seed=args.seed,
        tail_percentile=args.tail_percentile,
        head_percentile=args.head_percentile,
    )
    # Piped output (logs, tests) gets a wide table rather than rich's 80-column default with truncated names.
    console = Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    bt = Table(title=f"per bucket (synthetic share {result.ratio})", title_justify="left")
    for col in ("bucket", "real avail.", "synth. avail.", "train real", "train synth.", "val real", "val synth."):
        bt.add_column(col, justify="left" if col == "bucket" else "right")
    for b in BUCKETS:
        r = result.buckets[b]
        bt.add_row(
            b,
            *(
                str(r[k])
                for k in (
                    "real_available",
                    "synthetic_available",
                    "train_real",
                    "train_synthetic",
                    "val_real",
                    "val_synthetic",
                )
            ),
        )
    console.print(bt)
    ct = Table(title="per class (samples containing the class)", title_justify="left")
    for col in ("class", "bucket", "real freq.", "train real", "train synth.", "val real", "val synth."):
        ct.add_column(col, justify="left" if col in ("class", "bucket") else "right")
    for name, r in sorted(result.class_table.items()):
        ct.add_row(
            name,
            r["bucket"],
            *(str(r[k]) for k in ("real_frequency", "train_real", "train_synthetic", "val_real", "val_synthetic")),
        )
    console.print(ct)
    console.print(
        f"train: {len(result.train)} rows -> {args.out / 'train.jsonl'}; val: {len(result.val)} rows -> "
        f"{args.out / 'val.jsonl'}",
        highlight=False,
    )
    return 0
