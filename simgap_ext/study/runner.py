"""The composition study: one training per (ratio, seed, gated/ungated), each a resumable unit.

For every seed and ratio the same model (:func:`~simgap_ext.active.model.build_model`, trained with
:func:`~simgap_ext.active.training.train_model`) is trained on a stratified mix of the same size
(:func:`~.composition.fixed_size_mix`) and evaluated (:func:`~simgap_ext.active.training.evaluate`) on the
held-out real scans. Ratios with synthetic data are trained twice, once from the gated pool and once from the
ungated pool (every rendered frame, rejected ones included); the real-only ratio is trained once per seed and
serves as the baseline of both arms.

Run directory (``out``)::

    study.json              settings, pools, vocabulary, tail classes and their fingerprint (written first)
    units/<key>.json        one finished training: its mix, confusion matrix on the test scans, losses, time
    units/<key>.pt          its model weights (state dict)

Each unit's JSON is written atomically (:func:`~simgap_ext.data.atomic.atomic_write_bytes`) after its weights,
so a unit whose JSON exists is complete. ``resume=True`` keeps every unit whose JSON carries the study's
fingerprint and trains the rest; a study directory is never reused with other settings.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..active.dataset import Sample
from ..data.atomic import atomic_write_bytes
from ..errors import SimGapInputError
from ..gate.tail import identify_tail_classes
from .composition import Ratio, fixed_size_mix, max_total
from .sources import StudyScanCache, StudyVocabulary, class_point_totals, pool_rows

__all__ = ["ARMS", "StudyConfig", "StudyPools", "Unit", "StudyPlan", "plan_study", "plan_units", "run_study"]

_log = logging.getLogger(__name__)

#: Training arms: real-only baseline, gated synthetic, ungated synthetic.
ARMS = ("real", "gated", "ungated")
_FORMAT = 1


@dataclass
class StudyConfig:
    """Study settings.

    Attributes:
        ratios: real:synthetic ratios to train.
        seeds: seed values (each seeds the mix draw and the model's initialisation, shuffling, augmentation).
        total: training-set size, the same for every ratio (``None``: the largest every ratio can fill).
        epochs, lr, max_points, device: training settings (:class:`~simgap_ext.active.training.TrainConfig`).
        width: range-image width of the model.
        sensor: sensor profile of the model's beam table.
        class_level: ``head`` or ``fine`` (:class:`~.sources.StudyVocabulary`).
        intensity: ``drop`` or ``keep`` (:class:`~.sources.StudyScanCache`).
        tail_percentile: tail classes: real training points per class at or below this percentile
            (:func:`~simgap_ext.gate.tail.identify_tail_classes`, ``simgap budget``'s rule).
        head_percentile: the mix's head bucket cut-off (``simgap mix``).
        threads: torch CPU threads.
    """

    ratios: list[Ratio]
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    total: int | None = None
    epochs: int = 8
    lr: float = 2e-3
    max_points: int = 0
    device: str | None = None
    width: int = 512
    sensor: str = "hdl-64"
    class_level: str = "head"
    intensity: str = "drop"
    tail_percentile: float = 20.0
    head_percentile: float = 80.0
    threads: int = 2

    def settings(self) -> dict[str, Any]:
        """The settings that define every unit's result (JSON-ready). ``seeds`` is not one of them (each unit
        records its own seed, so that ``--resume`` with more seeds extends a study), nor are ``device`` and
        ``threads``."""
        d = asdict(self)
        d["ratios"] = [r.label for r in self.ratios]
        for k in ("seeds", "device", "threads"):
            d.pop(k)
        return d


@dataclass
class StudyPools:
    """The scans of a study.

    Attributes:
        real_train: real scans to draw training sets from (one stretch of the drive).
        test: held-out real scans (another stretch).
        gated: synthetic scans the gate accepted.
        ungated: every rendered synthetic scan, rejected ones included (``None``: no ungated arm).
    """

    real_train: list[Sample]
    test: list[Sample]
    gated: list[Sample]
    ungated: list[Sample] | None = None


@dataclass(frozen=True)
class Unit:
    """One training.

    Attributes:
        ratio: its ratio.
        arm: ``real``, ``gated`` or ``ungated``.
        seed: its seed.
    """

    ratio: Ratio
    arm: str
    seed: int

    @property
    def key(self) -> str:
        """File name stem (``75-25_gated_s1``)."""
        return f"{self.ratio.key}_{self.arm}_s{self.seed}"


@dataclass
class StudyPlan:
    """Everything decided before training.

    Attributes:
        vocab: the study classes.
        rows: pool name (``real``, ``gated``, ``ungated``) -> mix rows.
        total: training-set size.
        tail_classes: the tail classes (rarest first).
        class_points: real training points per class (the tail rule's frequencies).
        units: the trainings, in run order.
        settings: ``study.json``'s content.
        fingerprint: SHA-256 of ``settings``.
    """

    vocab: StudyVocabulary
    rows: dict[str, list[dict[str, Any]]]
    total: int
    tail_classes: list[str]
    class_points: dict[str, int]
    units: list[Unit]
    settings: dict[str, Any]
    fingerprint: str


def plan_units(config: StudyConfig, has_ungated: bool) -> list[Unit]:
    """The trainings of a study, seed by seed (so that a short run already covers every ratio once)."""
    units = []
    for seed in config.seeds:
        for r in config.ratios:
            if r.synthetic == 0:
                units.append(Unit(r, "real", int(seed)))
                continue
            units.append(Unit(r, "gated", int(seed)))
            if has_ungated:
                units.append(Unit(r, "ungated", int(seed)))
    return units


def _pool_desc(samples: Sequence[Sample]) -> list[str]:
    return [s.path for s in samples]


def plan_study(pools: StudyPools, config: StudyConfig, cache: StudyScanCache) -> StudyPlan:
    """Read the pools, build the vocabulary and rows, choose the training-set size and the tail classes.

    Raises:
        SimGapInputError: no ratio/seed, an empty pool, unlabelled scans, a size the pools cannot fill.
    """
    if not config.ratios:
        raise SimGapInputError("no ratio to study")
    if not config.seeds:
        raise SimGapInputError("no seed to study (--seeds must be >= 1)")
    if len({int(s) for s in config.seeds}) != len(config.seeds):
        raise SimGapInputError(f"seeds must differ, got {config.seeds}")
    for name in ("real_train", "test", "gated"):
        if not getattr(pools, name):
            raise SimGapInputError(f"the {name.replace('_', ' ')} pool is empty")
    vocab = StudyVocabulary.from_real(pools.real_train, cache, config.class_level)
    rows = {
        "real": pool_rows(pools.real_train, cache, vocab),
        "gated": pool_rows([_as_synthetic(s) for s in pools.gated], cache, vocab),
    }
    if pools.ungated is not None:
        rows["ungated"] = pool_rows([_as_synthetic(s) for s in pools.ungated], cache, vocab)
    class_points = class_point_totals(rows["real"], vocab.names)
    tail = identify_tail_classes(class_points, config.tail_percentile)
    synth_ratios = [r for r in config.ratios if r.synthetic > 0] or config.ratios
    fits = [max_total(rows["real"], rows[a], config.ratios, tail_percentile=config.tail_percentile,
                      head_percentile=config.head_percentile) for a in rows if a != "real"]  # fmt: skip
    largest = min(fits)
    total = config.total if config.total is not None else largest
    if total <= 0:
        raise SimGapInputError(
            f"the pools ({len(rows['real'])} real, "
            + ", ".join(f"{len(rows[a])} {a}" for a in rows if a != "real")
            + f" synthetic) cannot fill any training set at {', '.join(r.label for r in synth_ratios)}"
        )
    if total > largest:
        raise SimGapInputError(f"--train-size {total}: the pools fill at most {largest} samples at every ratio")
    for r in config.ratios:
        if total % r.share.denominator:
            raise SimGapInputError(f"--train-size {total} must be a multiple of {r.share.denominator} ({r.label})")
    settings = {
        "format": _FORMAT,
        "config": config.settings(),
        "total": total,
        "classes": vocab.to_list(),
        "tail_classes": tail,
        "class_points": class_points,
        "pools": {"real_train": _pool_desc(pools.real_train), "test": _pool_desc(pools.test),
                  "gated": _pool_desc(pools.gated),
                  "ungated": None if pools.ungated is None else _pool_desc(pools.ungated)},
    }  # fmt: skip
    fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()
    units = plan_units(config, pools.ungated is not None)
    return StudyPlan(vocab, rows, total, tail, class_points, units, settings, fingerprint)


def _as_synthetic(s: Sample) -> Sample:
    return s if s.domain == "synthetic" else Sample(s.path, s.label_path, s.name, s.scene, "synthetic")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _open_study(out: Path, plan: StudyPlan, resume: bool) -> None:
    meta = out / "study.json"
    if meta.exists():
        if not resume:
            raise SimGapInputError(f"{out} already holds a study (study.json): pass --resume or another --out")
        old = _read_json(meta)
        if old is None or old.get("fingerprint") != plan.fingerprint:
            raise SimGapInputError(
                f"{meta}: written with other settings or pools; --resume continues only the same study "
                "(use another --out)"
            )
        return
    doc = {**plan.settings, "fingerprint": plan.fingerprint}
    atomic_write_bytes(meta, (json.dumps(doc, indent=1) + "\n").encode("utf-8"))


def _unit_done(path: Path, fingerprint: str) -> dict[str, Any] | None:
    rec = _read_json(path) if path.is_file() else None
    if rec is None or rec.get("fingerprint") != fingerprint or "confusion" not in rec:
        return None
    return rec


def _train_unit(
    unit: Unit,
    plan: StudyPlan,
    pools: StudyPools,
    config: StudyConfig,
    cache: StudyScanCache,
    out: Path,
    step: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    import torch

    from ..active.model import build_model
    from ..active.training import TrainConfig, default_device, evaluate, set_torch_threads, train_model

    set_torch_threads(config.threads)
    synth_pool = {"gated": pools.gated, "ungated": pools.ungated}.get(unit.arm) or pools.gated
    synth_rows = plan.rows.get(unit.arm, plan.rows["gated"])
    mix = fixed_size_mix(plan.rows["real"], synth_rows, unit.ratio, plan.total, seed=unit.seed,
                         tail_percentile=config.tail_percentile, head_percentile=config.head_percentile)  # fmt: skip
    samples = [(pools.real_train if r["domain"] == "real" else synth_pool)[r["index"]] for r in mix.rows]
    samples = [s if r["domain"] == "real" else _as_synthetic(s) for s, r in zip(samples, mix.rows, strict=True)]
    device = config.device or default_device()
    tcfg = TrainConfig(epochs=config.epochs, lr=config.lr, seed=unit.seed, device=device, max_points=config.max_points)
    t0 = time.perf_counter()
    torch.manual_seed(unit.seed)
    model = build_model(len(plan.vocab), config.sensor, width=config.width)
    losses = train_model(model, samples, cache, plan.vocab, tcfg,
                         progress=None if step is None else (lambda i, n, _loss: step(i, n)))  # fmt: skip
    metrics = evaluate(model, pools.test, cache, plan.vocab, device=device)
    seconds = time.perf_counter() - t0
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    atomic_write_bytes(out / "units" / f"{unit.key}.pt", buf.getvalue())
    rec = {
        "key": unit.key,
        "ratio": unit.ratio.label,
        "arm": unit.arm,
        "seed": unit.seed,
        "fingerprint": plan.fingerprint,
        "classes": plan.vocab.to_list(),
        "train": [{"name": r["name"], "domain": r["domain"], "bucket": r["bucket"]} for r in mix.rows],
        "buckets": mix.buckets,
        "confusion": metrics.confusion.tolist(),
        "test_points": metrics.points,
        "losses": losses,
        "seconds": round(seconds, 3),
    }
    atomic_write_bytes(out / "units" / f"{unit.key}.json", (json.dumps(rec) + "\n").encode("utf-8"))
    return rec


def run_study(
    pools: StudyPools,
    config: StudyConfig,
    out: str | Path,
    *,
    resume: bool = False,
    cache: StudyScanCache | None = None,
    on_plan: Callable[[StudyPlan], None] | None = None,
    on_unit: Callable[[Unit, dict[str, Any], bool], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[StudyPlan, list[dict[str, Any]]]:
    """Run (or resume) a study.

    Args:
        pools: the scans.
        config: the settings.
        out: run directory (created).
        resume: keep the finished units of the same study in ``out``.
        cache: scan reader (default: a :class:`~.sources.StudyScanCache` with ``config.intensity``).
        on_plan: called once with the plan before any training.
        on_unit: called as ``on_unit(unit, record, skipped)`` after each unit (``skipped``: kept from before).
        on_step: called as ``on_step(step, total_steps)`` during each training.

    Returns:
        (plan, unit records in plan order).

    Raises:
        SimGapInputError: bad settings/pools, or ``out`` holds another study / a study without ``resume``.
        ExportError: a record could not be written (finished units stay).
    """
    cache = cache or StudyScanCache(config.intensity)
    plan = plan_study(pools, config, cache)
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise SimGapInputError(f"--out {out_dir}: not a directory")
    _open_study(out_dir, plan, resume)
    if on_plan is not None:
        on_plan(plan)
    records = []
    for unit in plan.units:
        path = out_dir / "units" / f"{unit.key}.json"
        rec = _unit_done(path, plan.fingerprint) if resume else None
        skipped = rec is not None
        if rec is None:
            rec = _train_unit(unit, plan, pools, config, cache, out_dir, on_step)
            _log.info("unit %s: %.1f s", unit.key, rec["seconds"])
        records.append(rec)
        if on_unit is not None:
            on_unit(unit, rec, skipped)
    return plan, records
