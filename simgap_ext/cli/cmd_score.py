"""``simgap score``: paired-mode DoGSS-PCL of a synthetic set against the real set of the same places."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import SimGapInputError
from ._scan_options import add_scan_options, scan_options

__all__ = ["register", "run", "resolve_d_max", "check_output_path"]

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``score`` sub-command."""
    p = subparsers.add_parser(
        "score",
        help="score synthetic scans against real scans of the same places (paired) or against a reference bank",
        description=(
            "Pair each synthetic scan with the real scan of the same name (scans without a twin are left out with a "
            "warning; sorted order, with a warning, when no name matches), compute scene and per-class geometric "
            "scores G = 1 - clamp(Chamfer / d_max, 0, 1) and per-class semantic JS divergence of instance "
            "embeddings over all frames, and print a table (--json, --html: also write it as JSON / as a "
            "self-contained HTML page with plots). With --bank instead of --real: unpaired, every synthetic scan is "
            "scored against the reference bank by the frame gate (per frame and per class, the same decisions and "
            "evidence as `simgap gate` and `simgap generate`), nothing is exported. Exit 0 whenever scoring ran, "
            "whatever the scores."
        ),
    )
    p.add_argument("--real", type=Path, default=None, help="real scans: file, directory or SemanticKITTI sequence")
    p.add_argument("--synthetic", required=True, type=Path, help="synthetic scans, same layouts as --real")
    add_scan_options(p, what="--real scans")
    p.add_argument("--sensor", default=None, help="sensor profile (name or .toml) giving max_expected_distance")
    p.add_argument(
        "--max-expected-distance", type=float, default=None, metavar="M", help="d_max in metres (overrides --sensor)"
    )
    p.add_argument(
        "--calib",
        type=Path,
        default=None,
        metavar="calib.toml",
        help="d_max of the scene and of each class from `simgap calibrate --out` (overrides --sensor)",
    )
    p.add_argument("--squared", action="store_true", help="squared-distance Chamfer (compared with d_max^2)")
    p.add_argument("--threshold-g", type=float, default=0.75, help="G acceptance threshold (default 0.75)")
    p.add_argument("--threshold-js", type=float, default=0.15, help="JS threshold in bits (default 0.15)")
    p.add_argument("--method", choices=("sliced", "norm"), default="sliced", help="semantic JS method")
    p.add_argument("--min-points", type=int, default=8, help="smallest instance crop embedded (default 8)")
    p.add_argument(
        "--backbone", type=Path, default=None, help="TorchScript backbone (1,K,3)->(1,D) (default: built-in)"
    )
    p.add_argument("--device", default=None, help="Warp device: cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the report as JSON")
    p.add_argument(
        "--html",
        type=Path,
        default=None,
        metavar="OUT",
        help="also write a self-contained HTML page: G per scene and per class, JS, nearest-neighbour distances",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from .cmd_gate import add_offline_arguments

    add_offline_arguments(p, bank_required=False)
    p.set_defaults(func=run)


def resolve_d_max(sensor: str | None, max_expected_distance: float | None) -> float:
    """``--max-expected-distance`` if given, else the sensor profile's ``max_expected_distance``.

    Raises:
        SimGapInputError: neither given, or a non-positive value.
    """
    if max_expected_distance is not None:
        if not max_expected_distance > 0:
            raise SimGapInputError(f"--max-expected-distance must be > 0, got {max_expected_distance}")
        return float(max_expected_distance)
    if sensor is None:
        raise SimGapInputError(
            "give --sensor PROFILE or --max-expected-distance M (or calibrate one with `simgap calibrate --real`)"
        )
    from ..sensors import load_sensor_profile

    return float(load_sensor_profile(sensor).max_expected_distance)


def check_output_path(path: Path, flag: str) -> None:
    """Refuse an output file that cannot be written, before hours of scoring rather than after.

    Raises:
        SimGapInputError: ``path`` is a directory, or its nearest existing ancestor is not a writable directory.
    """
    if path.is_dir():
        raise SimGapInputError(f"{flag} {path}: is a directory (give a file name)")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SimGapInputError(f"{flag} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SimGapInputError(f"{flag} {path}: directory {parent} is not writable")


def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _print_report(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    # piped output (logs, CI) keeps whole rows instead of wrapping at 80 columns
    console = Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    frames = Table(title=f"Scenes ({len(report.frames)} pairs, pairing by {report.pairing})")
    for col in ("real", "synthetic", "points r/s", "Chamfer", "G", "DCD"):
        frames.add_column(col, justify="left" if col in ("real", "synthetic") else "right")
    for f in report.frames[:50]:
        frames.add_row(
            f.real, f.synthetic, f"{f.n_real}/{f.n_synthetic}", f"{f.chamfer:.4f}", f"{f.g:.3f}", f"{f.dcd:.3f}"
        )
    if len(report.frames) > 50:
        frames.add_row("...", f"({len(report.frames) - 50} more in --json)", "", "", "", "")
    console.print(frames)
    classes = Table(title=f"Classes (G >= {report.threshold_g}, JS <= {report.threshold_js} bits)")
    for col in ("class", "frames", "G mean", "JS", "combined", "inst r/s", "result", "reasons"):
        # everything but the reasons stays on one line; the reasons take the width that is left
        numeric = col in ("frames", "G mean", "JS", "combined", "inst r/s")
        classes.add_column(col, justify="right" if numeric else "left", no_wrap=col != "reasons")
    for c in report.classes.values():
        verdict = "[green]pass[/green]" if c.passed else "[red]FAIL[/red]"
        if c.passed and c.reasons:
            verdict = "[yellow]n/a[/yellow]"
        classes.add_row(
            c.name,
            str(c.n_frames),
            _fmt(c.g_mean),
            _fmt(c.js),
            _fmt(c.combined),
            f"{c.n_real_instances}/{c.n_synthetic_instances}",
            verdict,
            "; ".join(c.reasons),
        )
    console.print(classes)
    verdict = "[green]PASS[/green]" if report.passed else "[red]FAIL[/red]"
    console.print(f"scene G mean {report.scene_g_mean:.3f} (d_max {report.d_max:g} m) -> {verdict}")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``simgap score``."""
    if (args.real is None) == (args.bank is None):
        raise SimGapInputError("give either --real DIR (paired scoring) or --bank bank.npz (scoring against a bank)")
    if args.bank is not None:
        if args.html is not None:
            raise SimGapInputError("--html is for paired scoring; with --bank use --json")
        if args.json is not None:
            check_output_path(args.json, "--json")
        from .cmd_gate import run_offline

        return run_offline(args, None)
    from ..data import iter_scans, list_scans, scan_name
    from ..metrics import FrozenBackbone
    from ..metrics.paired import PairedScorer, pair_names

    class_d_max: dict[str, float] = {}
    if args.calib is not None:
        if args.max_expected_distance is not None:
            raise SimGapInputError("give --calib or --max-expected-distance, not both")
        from ..metrics.sensor_calibration import read_calibration

        calib = read_calibration(args.calib)
        d_max, class_d_max = calib["d_max"], calib["class_d_max"]
    else:
        d_max = resolve_d_max(args.sensor, args.max_expected_distance)
    for flag, out in (("--json", args.json), ("--html", args.html)):
        if out is not None:
            check_output_path(out, flag)
    if args.html is not None and importlib.util.find_spec("matplotlib") is None:
        raise SimGapInputError("--html needs matplotlib (pip install matplotlib)")
    real_names = [scan_name(p) for p in list_scans(args.real)]
    synth_names = [scan_name(p) for p in list_scans(args.synthetic)]
    pairs, mode, warnings = pair_names(real_names, synth_names)
    for w in warnings:
        print(f"simgap: warning: {w}", file=sys.stderr)
    backbone = FrozenBackbone.from_torchscript(args.backbone) if args.backbone else None
    scorer = PairedScorer(
        d_max=d_max,
        squared=args.squared,
        threshold_g=args.threshold_g,
        threshold_js=args.threshold_js,
        method=args.method,
        backbone=backbone,
        min_points=args.min_points,
        device=args.device,
        class_d_max=class_d_max,
    )
    sensor = args.sensor or "unknown"
    wanted_real = {r for r, _ in pairs}
    wanted_synth = {s for _, s in pairs}
    # both readers yield in natural name order, and pairs follow that order in both modes: stream in lockstep
    # only paired scans are read: a real set with thousands of scans scores 100 synthetic twins in 100 reads
    real_it = iter_scans(args.real, sensor=sensor, only=wanted_real, **scan_options(args))
    synth_it = iter_scans(args.synthetic, sensor=sensor, only=wanted_synth)
    from ._progress import progress_bar

    with progress_bar("scoring", disable=args.no_progress) as progress:
        task = progress.add_task("score", total=len(pairs))
        for (rn, rf), (sn, sf) in zip(real_it, synth_it, strict=False):
            scorer.add(rn, rf, sn, sf)
            progress.advance(task)
    report = scorer.report(pairing=mode, warnings=warnings)
    _print_report(report)
    sources = {"real": str(args.real), "synthetic": str(args.synthetic), "sensor": args.sensor}
    if args.json:
        from ..data import atomic_write_bytes

        data = report.to_dict()
        data.update(sources)
        # atomic: a full disk leaves the previous report intact instead of a truncated one
        atomic_write_bytes(args.json, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
    if args.html:
        from ..metrics.score_report import write_score_html

        write_score_html(
            report, args.html, title=f"SimGap score: {args.synthetic.name} vs {args.real.name}", sources=sources
        )
    return 0
