"""``simgap generate``: render synthetic frames, gate them, export the accepted ones with a manifest."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ..errors import SimGapInputError
from ._scan_options import add_scan_options, scan_options

__all__ = ["register", "run"]

_log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``generate`` sub-command."""
    p = subparsers.add_parser(
        "generate",
        help="generate gated synthetic LiDAR frames (SemanticKITTI export + manifest)",
        description=(
            "Render synthetic frames with a scene backend, score every frame with the DoGSS-PCL gate against a "
            "real reference bank, re-randomize rejected tail-class (or quarantined-class) scenes, and export accepted "
            "frames in SemanticKITTI layout with a JSON Lines manifest. Interrupted runs continue with --resume."
        ),
    )
    p.add_argument("--sensor", required=True, help="sensor profile name or TOML path (e.g. vlp-16)")
    p.add_argument("--frames", type=int, required=True, help="scheduled frames in the run (each up to 1+retries)")
    ref = p.add_mutually_exclusive_group(required=True)
    ref.add_argument("--real", type=Path, help="real scans (SemanticKITTI dir); the bank is cached in OUT/bank.npz")
    add_scan_options(p)
    ref.add_argument("--bank", type=Path, help="a reference bank .npz built earlier")
    p.add_argument("--out", type=Path, required=True, help="output directory (export, manifest.jsonl, run.json)")
    p.add_argument("--backend", choices=("warp", "replicator"), default="warp", help="scene source (default warp)")
    p.add_argument(
        "--preset",
        default="realistic",
        help="sensor effects preset: realistic, ideal, or a tuned profile TOML from `simgap tune` (default realistic)",
    )
    p.add_argument(
        "--rotation-rate", type=float, default=None, metavar="HZ", help="warp backend: spin rate, Hz (default: profile)"
    )
    p.add_argument("--seed", type=int, default=0, help="run seed (>= 0); render seeds derive from it")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument(
        "--max-retries",
        type=int,
        default=3,
        help="re-randomizations of a rejected frame (tail class failed, or a class in quarantine)",
    )
    p.add_argument("--tail-percentile", type=float, default=20.0, help="tail = classes at/below this percentile")
    p.add_argument(
        "--target-per-class",
        type=int,
        default=None,
        help="stop focusing a tail class once its real + accepted synthetic instances reach this",
    )
    p.add_argument("--gate-config", type=Path, default=None, help="gate TOML (default config/gate.toml)")
    p.add_argument(
        "--calib",
        type=Path,
        default=None,
        metavar="calib.toml",
        help="sensor calibration from `simgap calibrate --out`: per-class Chamfer d_max floors of the bank",
    )
    p.add_argument("--device", default=None, help="Warp device (default: CUDA when available, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no live progress table on stderr")
    p.add_argument(
        "--no-pipeline",
        action="store_true",
        help="render and gate one after the other (default with --backend warp: render the next frame in a worker "
        "process while the gate checks this one; same results)",
    )
    p.add_argument("--json", action="store_true", help="print the final summary as JSON on stdout")
    p.set_defaults(func=run)


def _has_replicator() -> bool:
    # A kernel-only Kit has an `omni` package without omni.replicator.core; a missing parent raises, not None.
    try:
        return importlib.util.find_spec("omni.replicator.core") is not None
    except (ImportError, ValueError):
        return False


def _check_backend(name: str) -> None:
    # Checked before the (slow) bank build so that the user learns it at once.
    if name == "replicator" and not _has_replicator():
        raise SimGapInputError(
            "--backend replicator needs Isaac Sim (omni.replicator.core is not importable in this Python); "
            "run inside Isaac Sim or use --backend warp"
        )


def run(args: argparse.Namespace) -> int:
    """Entry point of ``simgap generate``."""
    if args.frames < 0:
        raise SimGapInputError(f"--frames must be >= 0, got {args.frames}")
    if args.max_retries < 0:
        raise SimGapInputError(f"--max-retries must be >= 0, got {args.max_retries}")
    if args.seed < 0:
        raise SimGapInputError(f"--seed must be >= 0, got {args.seed}")
    if not 0.0 <= args.tail_percentile <= 100.0:  # before the (slow) bank build, not after it
        raise SimGapInputError(f"--tail-percentile must lie in [0, 100], got {args.tail_percentile}")
    if args.target_per_class is not None and args.target_per_class < 0:
        raise SimGapInputError(f"--target-per-class must be >= 0, got {args.target_per_class}")
    _check_backend(args.backend)

    from .._warp import resolve_device
    from ..pipeline.assembly import assemble_run

    device = resolve_device(args.device)
    built = assemble_run(
        sensor=args.sensor,
        out_dir=args.out,
        backend=args.backend,
        preset=args.preset,
        seed=args.seed,
        max_retries=args.max_retries,
        tail_percentile=args.tail_percentile,
        target_per_class=args.target_per_class,
        bank_path=args.bank,
        real_dir=args.real,
        gate_config=args.gate_config,
        device=device,
        resume=args.resume,
        scan_options=scan_options(args),
        rotation_rate_hz=args.rotation_rate,
        calib=args.calib,
        # Replicator renders through Kit, which must stay on its main thread
        pipeline=args.backend == "warp" and not args.no_pipeline,
    )
    summary = built.runner.run(args.frames, resume=args.resume, progress=not args.no_progress)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_summary(summary, built.tail_classes)
    return 0


def _print_summary(summary: Any, tails: list[str]) -> None:
    from rich.console import Console

    from ..pipeline.live import render_class_table

    # Piped output (logs, tests) gets a wide table rather than rich's 80-column default with truncated names.
    console = Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    console.print(render_class_table(summary.stats, title="per-class acceptance (whole run)"))
    c = summary.counts
    resumed = (
        f" (resumed at frame {summary.resumed_at[0]} attempt {summary.resumed_at[1]})" if summary.resumed_at else ""
    )
    console.print(
        f"frames {summary.n_frames}{resumed}: {c['attempts']} attempts, {c['accepted']} accepted, "
        f"{c['rejected']} rejected, {c['rerandomized']} re-randomized, {c['held_back']} held back; "
        f"{summary.exported} scans exported to {summary.out_dir}",
        highlight=False,
    )
    console.print(f"tail classes: {', '.join(tails) if tails else '(none)'}", highlight=False)
    top = summary.stats.top_reasons(5)
    if top:
        console.print("most frequent reasons (numbers as #):", highlight=False)
        for reason, count in top:
            console.print(f"  {count:5d} x {reason}", highlight=False, markup=False)
    if summary.removed:
        # Every file SimGap deletes is named (each was proven to be this run's: see pipeline/run_dir.py).
        console.print(f"removed {len(summary.removed)} file(s) left by the interrupted run:", highlight=False)
        for p in summary.removed:
            console.print(f"  {p}", highlight=False, markup=False)
    console.print(f"manifest: {summary.manifest_path}", highlight=False)
