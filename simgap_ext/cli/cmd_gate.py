"""``simgap gate``: gate an existing synthetic dataset against a reference bank into an export + manifest."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ._scan_options import add_scan_options

__all__ = ["register", "run", "run_offline", "add_offline_arguments"]


def add_offline_arguments(p: argparse.ArgumentParser, *, bank_required: bool) -> None:
    """The options ``gate`` and ``score --bank`` share."""
    p.add_argument("--bank", required=bank_required, type=Path, default=None, help="reference bank (.npz)")
    p.add_argument("--gate-config", type=Path, default=None, help="gate TOML (default config/gate.toml)")
    p.add_argument(
        "--scan-sensor",
        default=None,
        metavar="NAME",
        help="sensor profile stored in the synthetic frames (default: the bank's sensor)",
    )
    p.add_argument("--no-quarantine", action="store_true", help="switch the semantic quarantine off")


def run_offline(args: argparse.Namespace, out_dir: Path | None) -> int:
    """Gate ``args.synthetic`` against ``args.bank`` (export into ``out_dir`` when given), print the verdicts."""
    from ..data import count_scans, iter_scans
    from ..gate import FrameGate, ReferenceBank, load_gate_config
    from ..pipeline.offline import gate_scans
    from ._progress import progress_bar
    from ._scan_options import scan_options

    bank = ReferenceBank.load(args.bank)
    config = load_gate_config(args.gate_config)
    gate = FrameGate(bank, config, device=args.device, quarantine=False if args.no_quarantine else None)
    sensor = args.scan_sensor or bank.sensor or "unknown"
    n = count_scans(args.synthetic)
    with progress_bar("gating", disable=getattr(args, "no_progress", False)) as progress:
        task = progress.add_task("gate", total=n)
        results = gate_scans(
            gate,
            iter_scans(args.synthetic, sensor=sensor, **scan_options(args)),
            out_dir=out_dir,
            transform=_effects(args),
            progress=lambda: progress.advance(task),
        )
    _print(results, config)
    if getattr(args, "json", None) is not None:
        from ..data import atomic_write_bytes

        data = {
            "bank": str(args.bank),
            "synthetic": str(args.synthetic),
            "frames": [{"name": r.name, **r.decision.to_dict()} for r in results],
        }
        atomic_write_bytes(args.json, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
    return 0


def _effects(args: argparse.Namespace) -> Any:
    """The sensor-effect post-process of ``--effects`` (None without it); the profile is read before any scan."""
    if getattr(args, "effects", None) is None:
        return None
    if args.effects_seed < 0:
        from ..errors import SimGapInputError

        raise SimGapInputError(f"--effects-seed must be >= 0, got {args.effects_seed}")
    from ..pipeline.offline import effects_transform
    from ..tune.load import load_effect_model

    model, _, _ = load_effect_model(args.effects)
    return effects_transform(model, args.effects_seed)


def _print(results: list[Any], config: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"Gate verdicts ({len(results)} scans; G >= {config.g_threshold:g})")
    for col in ("scan", "decision", "scene G", "failing classes", "reasons (distance vs d_max)"):
        table.add_column(
            col, justify="right" if col == "scene G" else "left", no_wrap=col != "reasons (distance vs d_max)"
        )
    for r in results[:200]:
        d = r.decision
        colour = "green" if d.accepted else "red"
        table.add_row(
            r.name,
            f"[{colour}]{d.status}[/{colour}]",
            f"{d.scene_g:.3f}",
            ", ".join(d.failing_classes) or "-",
            "; ".join(d.reasons) or "-",
        )
    if len(results) > 200:
        table.add_row("...", f"({len(results) - 200} more in --json / the manifest)", "", "", "")
    console.print(table)
    accepted = sum(r.decision.accepted for r in results)
    console.print(f"{accepted} of {len(results)} scans accepted")


def register(subparsers: Any) -> None:
    """Add the ``gate`` sub-command."""
    p = subparsers.add_parser(
        "gate",
        help="gate an existing synthetic dataset against a reference bank into an export and manifest.jsonl",
        description=(
            "Run every synthetic scan through the frame gate (the same checks as `simgap generate`), export the "
            "accepted ones in SemanticKITTI layout into --out and write manifest.jsonl there: one row per input "
            "scan, `name` = the scan's name, decision accepted or rejected with the reasons and margins."
        ),
    )
    p.add_argument("--synthetic", required=True, type=Path, help="synthetic scans: file, directory or sequence")
    p.add_argument("--out", required=True, type=Path, help="export directory (must not hold a manifest yet)")
    add_offline_arguments(p, bank_required=True)
    add_scan_options(p, what="synthetic scans")
    p.add_argument(
        "--effects",
        type=Path,
        default=None,
        metavar="tuned.toml",
        help="apply a tuned profile's fitted sensor-effect model (`simgap tune`) to every scan before the gate; the "
        "export holds the processed scans",
    )
    p.add_argument("--effects-seed", type=int, default=0, help="seed of the sensor-effect noise (default 0)")
    p.add_argument("--device", default=None, help="Warp device: cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write every decision as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``simgap gate``."""
    from ..errors import SimGapInputError

    if args.out.exists() and not args.out.is_dir():
        raise SimGapInputError(f"--out {args.out}: not a directory")
    return run_offline(args, args.out)
