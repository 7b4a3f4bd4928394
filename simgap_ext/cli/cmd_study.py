"""``simgap study``: train the same model on stratified real:synthetic mixes and compare them on held-out real scans."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``study`` sub-command."""
    p = subparsers.add_parser(
        "study",
        help="composition study: does gated synthetic data help on real scans, at which real:synthetic ratio?",
        description=(
            "For each seed and ratio, train the same segmentation model on a stratified mix of the same size "
            "(class-frequency buckets as in `simgap mix`) and evaluate it on held-out real scans: mIoU, IoU and "
            "false-positive rate per class, common vs tail classes, spread over seeds; with --ungated, the same "
            "with every rendered frame (rejected ones included) to show what the gate is worth. Writes "
            "OUT/summary.csv, OUT/report.html, OUT/study.png; every training is a unit in OUT/units/ and "
            "--resume skips finished ones. See docs/study.md."
        ),
    )
    p.add_argument("--real", required=True, type=Path, help="real labelled scans (a directory, manifest or run dir)")
    p.add_argument("--test", type=Path, default=None, help="held-out real scans (default: the end of --real)")
    p.add_argument("--test-fraction", type=float, default=0.25, help="without --test: share of --real held out")
    p.add_argument("--gap", type=int, default=2, help="without --test: scans dropped between train and test")
    p.add_argument(
        "--synthetic", required=True, type=Path, help="gated synthetic scans: a run/gate directory or manifest"
    )
    p.add_argument(
        "--ungated",
        type=Path,
        default=None,
        help="every rendered synthetic scan (rejected included): a directory, or a manifest whose rows keep paths",
    )
    p.add_argument("--ratios", default="100:0,75:25,50:50,25:75,0:100", help="real:synthetic ratios")
    p.add_argument("--seeds", type=int, default=3, help="seeds per ratio (0..N-1)")
    p.add_argument("--train-size", type=int, default=None, help="training scans per mix (default: the largest)")
    p.add_argument("--out", required=True, type=Path, help="study directory")
    p.add_argument("--resume", action="store_true", help="continue a study in --out (finished trainings kept)")
    g = p.add_argument_group("model and training")
    g.add_argument("--sensor", default="hdl-64", help="sensor profile of the model's beam table (e.g. hdl-32)")
    g.add_argument("--epochs", type=int, default=8, help="epochs per training")
    g.add_argument("--lr", type=float, default=2e-3, help="learning rate")
    g.add_argument("--width", type=int, default=512, help="range-image width (multiple of 4)")
    g.add_argument("--max-points", type=int, default=0, help="subsample training scans to this many points")
    g.add_argument("--classes", choices=("head", "fine"), default="head", help="class vocabulary (default head)")
    g.add_argument("--intensity", choices=("drop", "keep"), default="drop", help="remission input (default drop)")
    g.add_argument("--tail-percentile", type=float, default=20.0, help="tail classes: real points percentile")
    g.add_argument("--device", default=None, help="torch device (default: cuda when available)")
    g.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    from ..errors import SimGapInputError

    if args.seeds < 1:
        raise SimGapInputError(f"--seeds must be >= 1, got {args.seeds}")
    if args.epochs < 1:
        raise SimGapInputError(f"--epochs must be >= 1, got {args.epochs}")
    if args.train_size is not None and args.train_size < 1:
        raise SimGapInputError(f"--train-size must be >= 1, got {args.train_size}")
    if args.width < 4 or args.width % 4:
        raise SimGapInputError(f"--width must be a positive multiple of 4, got {args.width}")
    if not 0.0 <= args.tail_percentile <= 100.0:
        raise SimGapInputError(f"--tail-percentile must lie in [0, 100], got {args.tail_percentile}")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``simgap study``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..study import StudyConfig, StudyPools, list_pool, parse_ratios, run_study, split_stretches, write_report

    _check(args)
    ratios = parse_ratios(args.ratios)
    real = list_pool(args.real, "real")
    if args.test is not None:
        train, test = real, list_pool(args.test, "real")
    else:
        train, test = split_stretches(real, args.test_fraction, args.gap)
    pools = StudyPools(
        train,
        test,
        list_pool(args.synthetic, "synthetic"),
        None if args.ungated is None else list_pool(args.ungated, "synthetic", accepted_only=False),
    )
    config = StudyConfig(
        ratios,
        seeds=list(range(args.seeds)),
        total=args.train_size,
        epochs=args.epochs,
        lr=args.lr,
        max_points=args.max_points,
        device=args.device,
        width=args.width,
        sensor=args.sensor,
        class_level=args.classes,
        intensity=args.intensity,
        tail_percentile=args.tail_percentile,
        threads=args.threads,
    )
    err = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=args.no_progress,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_plan(plan: Any) -> None:
            tasks["units"] = progress.add_task("trainings", total=len(plan.units))
            tasks["steps"] = progress.add_task("  steps", total=1)
            err.print(
                f"study: {len(plan.units)} trainings of {plan.total} scans ({len(train)} real train, {len(test)} "
                f"real test, {len(pools.gated)} gated"
                + ("" if pools.ungated is None else f", {len(pools.ungated)} ungated")
                + f" synthetic); classes {', '.join(plan.vocab.names)}; tail {', '.join(plan.tail_classes)}"
            )

        def on_step(i: int, n: int) -> None:
            progress.update(tasks["steps"], completed=i, total=n)

        def on_unit(unit: Any, rec: dict[str, Any], skipped: bool) -> None:
            progress.advance(tasks["units"])
            progress.update(tasks["steps"], completed=0)
            if skipped:
                progress.console.print(f"kept {unit.key} (finished before)")

        plan, records = run_study(pools, config, args.out, resume=args.resume, on_plan=on_plan, on_unit=on_unit,
                                  on_step=on_step)  # fmt: skip
    info = {
        "real (train stretch)": f"{len(train)} scans from {args.real}",
        "real (test)": f"{len(test)} scans" + (f" from {args.test}" if args.test else f" (end of {args.real})"),
        "gated synthetic": f"{len(pools.gated)} scans from {args.synthetic}",
        "ungated synthetic": "-" if pools.ungated is None else f"{len(pools.ungated)} scans from {args.ungated}",
        "model": f"RangeSegNet, {args.sensor} beams, width {args.width}, {args.epochs} epochs, lr {args.lr:g}",
        "classes": f"{args.classes}: {', '.join(plan.vocab.names)}",
        "intensity": args.intensity,
    }
    settings = {**plan.settings}
    agg = write_report(args.out, settings, records, info)
    _print(agg, plan.vocab.names, plan.tail_classes)
    print(f"wrote {args.out / 'summary.csv'}, {args.out / 'report.html'}, {args.out / 'study.png'}")
    return 0


def _print(agg: Any, classes: list[str], tail: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..study.report import summary_rows

    console = Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    t = Table(title=f"Composition study on held-out real scans (mean ± sd over seeds, %); tail: {', '.join(tail)}")
    for col in ("real:synth", "arm", "seeds", "mIoU", "common", "tail", "accuracy", "mean FPR"):
        t.add_column(col, justify="left" if col in ("real:synth", "arm") else "right")
    for r in summary_rows(agg):
        t.add_row(r["ratio"], r["arm"], str(r["seeds"]), r["miou"].text(), r["common_miou"].text(),
                  r["tail_miou"].text(), r["accuracy"].text(), r["mean_fpr"].text(digits=2))  # fmt: skip
    console.print(t)
    t2 = Table(title="IoU per class (%)")
    for col in ("real:synth", "arm", *classes):
        t2.add_column(
            col + (" (tail)" if col in tail else ""), justify="left" if col in ("real:synth", "arm") else "right"
        )
    for (ratio, arm), cell in agg.items():
        t2.add_row(ratio, arm, *(cell["iou"][c].text() for c in classes))
    console.print(t2)
