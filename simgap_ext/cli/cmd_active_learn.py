"""``simgap active-learn``: MC-Dropout active learning of a LiDAR segmentation model (docs/active_learning.md).

Trains on the labelled real scans (mixed 50:50 with gated synthetic samples when ``--synthetic`` is given),
scores the unlabelled pool with MC-Dropout, writes the oracle queue ``OUT/queue/round_RR.jsonl``, reads the
answers and retrains, until the budget, the rounds or the entropy threshold stop it. Pool scans with labels are
answered by a simulated oracle (their ground truth) unless ``--answers DIR`` names the folder annotators write
``.label`` files to; then the run stops after writing each queue and ``--resume`` continues it.
"""

from __future__ import annotations

import argparse
import logging
import random
from pathlib import Path
from typing import Any

from ..errors import SimGapInputError

__all__ = ["register", "run"]

_log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``active-learn`` sub-command."""
    p = subparsers.add_parser(
        "active-learn",
        help="MC-Dropout active learning: pick the real scans worth labelling, retrain on the 50:50 mix",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    p.add_argument("--pool", type=Path, required=True, help="unlabelled real scans: a scan directory or manifest")
    p.add_argument("--labelled", type=Path, required=True, help="labelled real scans: a directory or manifest")
    p.add_argument(
        "--heldout",
        type=Path,
        help="held-out labelled real scans for the per-round IoU (default: the 'val' rows of a mixed --labelled "
        "manifest, else a seeded quarter of --labelled)",
    )
    p.add_argument("--synthetic", type=Path, help="gated synthetic manifest (or run directory) to mix 50:50")
    p.add_argument("--budget", type=int, required=True, help="label budget in scans (region mode: scans' worth)")
    p.add_argument("--rounds", type=int, default=5, help="selection rounds (default: 5)")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--heuristic", default="entropy", help="entropy, bald, margin, variation_ratio or random")
    p.add_argument("--percentile", type=float, default=95.0, help="label the pool's top 100-P %% each round")
    p.add_argument("--count", type=int, help="label this many scans per round instead of a percentile")
    p.add_argument("--passes", type=int, default=20, help="MC-Dropout passes T (default: 20)")
    p.add_argument("--regions", choices=("scan", "voxel"), default="scan", help="label whole scans or voxel columns")
    p.add_argument("--voxel-size", type=float, default=5.0, help="region size in metres (default: 5)")
    p.add_argument(
        "--entropy-threshold",
        type=float,
        default=0.0,
        help="stop when the pool's 95th-percentile normalised entropy is below this (0: never)",
    )
    p.add_argument("--ratio", type=float, default=0.5, help="synthetic share of the training mix (default: 0.5)")
    p.add_argument("--sensor", default="hdl-64", help="sensor profile of the scans (beam table of the model)")
    p.add_argument("--width", type=int, default=512, help="range-image columns (default: 512)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs per round (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: up to 2, fewer on a busy machine)")
    p.add_argument("--answers", type=Path, help="folder of annotators' .label files (default: simulated oracle)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--export-backbone", type=Path, metavar="PT", help="write the encoder as a TorchScript backbone")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _split_labelled(args: argparse.Namespace, samples: list[Any]) -> tuple[list[Any], list[Any]]:
    from ..active.dataset import load_samples

    if args.heldout is not None:
        return samples, load_samples(args.heldout, domain="real")
    if args.labelled.suffix == ".jsonl":
        from ..data.manifest import read_manifest

        val = {r.get("path") for r in read_manifest(args.labelled) if r.get("split") == "val"}
        if val:
            held = [s for s in samples if any(s.path.endswith(str(v)) for v in val if v)]
            if held:
                return [s for s in samples if s not in held], held
    if len(samples) < 2:
        raise SimGapInputError("need --heldout, or at least 2 labelled scans to hold some out")
    rng = random.Random(args.seed)
    idx = sorted(rng.sample(range(len(samples)), max(1, len(samples) // 4)))
    held = [samples[i] for i in idx]
    _log.warning("holding out %d of %d labelled scans for evaluation (use --heldout)", len(held), len(samples))
    return [s for i, s in enumerate(samples) if i not in set(idx)], held


def run(args: argparse.Namespace) -> int:
    """Entry point of ``simgap active-learn``."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SimGapInputError("simgap active-learn needs torch (pip install torch)") from None
    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from ..active.dataset import load_samples
    from ..active.heuristics import get_heuristic
    from ..active.loop import ActiveLearningConfig, load_synthetic_rows, run_active_learning
    from ..active.oracle import LabelFileOracle, SimulatedOracle
    from ..active.training import TrainConfig, set_torch_threads

    get_heuristic(args.heuristic)
    set_torch_threads(args.threads)
    pool = load_samples(args.pool, domain="real")
    labelled, heldout = _split_labelled(args, load_samples(args.labelled, domain="real"))
    taken = {s.path for s in labelled} | {s.path for s in heldout}
    pool = [s for s in pool if s.path not in taken]
    synth = load_synthetic_rows(args.synthetic) if args.synthetic is not None else []
    cfg = ActiveLearningConfig(
        rounds=args.rounds, budget=args.budget, heuristic=args.heuristic, percentile=args.percentile,
        count=args.count, passes=args.passes, regions=args.regions, voxel_size=args.voxel_size,
        entropy_threshold=args.entropy_threshold, synthetic_ratio=args.ratio, sensor=args.sensor, width=args.width,
        seed=args.seed, train=TrainConfig(epochs=args.epochs, seed=args.seed, device=args.device),
    )  # fmt: skip
    oracle = LabelFileOracle(args.answers) if args.answers is not None else SimulatedOracle()
    if isinstance(oracle, SimulatedOracle) and any(oracle.label_file(s) is None for s in pool):
        raise SimGapInputError("pool scans without labels need --answers DIR (the annotators' .label files)")
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None or bar.total != total or done == 1:
            if bar is not None:
                bar.close()
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="scan", disable=args.no_progress, leave=False)
        bar.update(done - bar.n)

    result = run_active_learning(
        pool, labelled, heldout, args.out, cfg, synthetic_rows=synth, oracle=oracle, resume=args.resume,
        progress=progress,
    )  # fmt: skip
    for bar in bars.values():
        bar.close()
    console = Console(soft_wrap=True)
    t = Table(title=f"active learning ({args.heuristic}, {args.regions})", title_justify="left")
    for col in ("round", "labelled scans", "labelled points", "mIoU", "p95 entropy"):
        t.add_column(col, justify="right")
    for h in result.history:
        miou = "-" if h["miou"] is None else f"{h['miou']:.3f}"
        t.add_row(str(h["round"]), str(h["labelled_scans"]), str(h["labelled_points"]), miou,
                  f"{h['entropy']['p95']:.3f}")  # fmt: skip
    console.print(t)
    console.print(f"stopped: {result.stop_reason}; log: {args.out / 'rounds.jsonl'}", highlight=False)
    if args.export_backbone is not None:
        if result.model is None:
            raise SimGapInputError("the run is finished and holds no model to export: drop --resume")
        from ..active.backbone import export_backbone

        export_backbone(result.model, args.export_backbone)
        console.print(f"backbone -> {args.export_backbone}", highlight=False)
    return 0
