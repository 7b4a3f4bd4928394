"""The active-learning loop: train -> score the pool -> select -> label -> retrain on the stratified mix.

Each round ``r`` (0 = the initial labelled set):

1. *train* a fresh model on the stratified real:synthetic mix of the labelled real scans and the gated synthetic
   samples (:func:`simgap_ext.pipeline.mixing.mix_rows`, the code of ``simgap mix``; without synthetic data, on
   the real scans alone); checkpoint ``checkpoints/round_RR.pt`` and ``state.json`` (phase ``trained``);
2. *evaluate* per-class IoU on the held-out real scans and *score* the unlabelled pool with MC-Dropout; log the
   round (``rounds.jsonl``: labels used in scans and points, IoU, normalised-entropy percentiles);
3. *stop* when ``r == rounds``, the label budget is spent, the pool is empty or the 95th percentile of the
   pool's normalised entropy is below ``entropy_threshold``;
4. *select* the top scans (or regions) and write the oracle queue ``queue/round_RR.jsonl`` (phase ``queued``);
5. *label*: read the oracle's answers; with annotators (:class:`~.oracle.LabelFileOracle`) a queue that is not
   fully answered stops the run (``waiting_for_labels``) and ``resume`` continues the same round once the
   ``.label`` files exist.

``resume=True`` reloads ``state.json`` and continues the round it stopped in: a ``trained`` round is not trained
again (the checkpoint is loaded), a ``queued`` round is not re-scored.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.atomic import atomic_write_bytes
from ..data.manifest import read_manifest, resolve_row_path
from ..errors import SimGapInputError
from .dataset import IGNORE_INDEX, ClassVocabulary, Sample, ScanCache
from .oracle import LabelFileOracle, SimulatedOracle, read_answer, region_mask, write_queue
from .scoring import ScanScores, entropy_percentiles, score_pool
from .selection import Region, region_scores, select_regions, select_top, voxel_regions
from .training import TrainConfig, default_device, evaluate, train_model

__all__ = ["ActiveLearningConfig", "ActiveLearningResult", "run_active_learning", "STATE_NAME", "ROUNDS_NAME"]

_log = logging.getLogger(__name__)

STATE_NAME = "state.json"
ROUNDS_NAME = "rounds.jsonl"


@dataclass
class ActiveLearningConfig:
    """Loop settings.

    Attributes:
        rounds: selection rounds after the initial training (the loop trains ``rounds + 1`` models at most).
        budget: label budget in scans (scan selection) or, unless ``budget_points`` is set, in scans' worth of
            points (region selection: ``budget`` x the mean pool scan size).
        budget_points: label budget in points for region selection.
        heuristic: ``entropy``, ``bald``, ``margin``, ``variation_ratio`` or ``random``.
        percentile: each round labels the pool's top ``100 - percentile`` % (scans, or that share of the pool's
            points as regions).
        count: label this many scans per round instead (region selection: this many scans' worth of points).
        passes: MC-Dropout passes T.
        reduce: per-scan reduction of the point scores.
        regions: ``scan`` (whole scans) or ``voxel`` (voxel columns of ``voxel_size`` metres).
        voxel_size: region size, metres.
        entropy_threshold: stop when the pool's 95th-percentile normalised entropy falls below it (0 never).
        synthetic_ratio: synthetic share of the training mix (0.5: the stratified 50:50 mix).
        sensor: sensor profile of the default model.
        width: range-image width of the default model.
        seed: seeds training, scoring and mixing (round r uses ``seed + r``).
        train: training settings.
    """

    rounds: int = 5
    budget: int = 20
    budget_points: int | None = None
    heuristic: str = "entropy"
    percentile: float = 95.0
    count: int | None = None
    passes: int = 20
    reduce: str = "mean"
    regions: str = "scan"
    voxel_size: float = 5.0
    entropy_threshold: float = 0.0
    synthetic_ratio: float = 0.5
    sensor: str = "hdl-64"
    width: int = 512
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise SimGapInputError(f"rounds must be >= 0, got {self.rounds}")
        if self.budget < 0:
            raise SimGapInputError(f"budget must be >= 0, got {self.budget}")
        if self.regions not in ("scan", "voxel"):
            raise SimGapInputError(f"regions must be 'scan' or 'voxel', got {self.regions!r}")
        if self.passes < 1:
            raise SimGapInputError(f"passes must be >= 1, got {self.passes}")
        if isinstance(self.train, Mapping):
            self.train = TrainConfig(**self.train)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class ActiveLearningResult:
    """Outcome of :func:`run_active_learning`.

    Attributes:
        history: one record per evaluated round (the lines of ``rounds.jsonl``).
        stop_reason: ``rounds``, ``budget``, ``entropy``, ``pool_empty`` or ``waiting_for_labels``.
        model: the last trained model.
        vocab: its classes.
        labelled: the labelled real samples (path -> label mask or ``None`` for whole scans).
    """

    history: list[dict[str, Any]]
    stop_reason: str
    model: nn.Module | None
    vocab: ClassVocabulary
    labelled: dict[str, np.ndarray | None]


class _State:
    """What ``state.json`` + ``labels.npz`` hold between phases."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.round = 0
        self.phase = "start"
        self.labelled: dict[str, dict[str, Any]] = {}  # path -> sample dict (+ label file of the answer)
        self.masks: dict[str, np.ndarray] = {}  # path -> bool mask (region labels)
        self.history: list[dict[str, Any]] = []
        self.used_scans = 0
        self.used_points = 0
        self.stop_reason = ""
        self.vocab: list[str] = []

    def save(self) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **{f"m{i}": self.masks[p] for i, p in enumerate(sorted(self.masks))})
        atomic_write_bytes(self.out / "labels.npz", buf.getvalue())
        doc = {
            "round": self.round, "phase": self.phase, "labelled": self.labelled, "mask_paths": sorted(self.masks),
            "history": self.history, "used_scans": self.used_scans, "used_points": self.used_points,
            "stop_reason": self.stop_reason, "vocab": self.vocab,
        }  # fmt: skip
        atomic_write_bytes(self.out / STATE_NAME, (json.dumps(doc, indent=1) + "\n").encode())

    @classmethod
    def load(cls, out: Path) -> _State:
        st = cls(out)
        try:
            doc = json.loads((out / STATE_NAME).read_text())
        except FileNotFoundError:
            raise SimGapInputError(f"{out / STATE_NAME}: nothing to resume (no state file)") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise SimGapInputError(f"{out / STATE_NAME}: unreadable state ({exc})") from exc
        for k in ("round", "phase", "labelled", "history", "used_scans", "used_points", "stop_reason", "vocab"):
            setattr(st, k, doc[k])
        with np.load(out / "labels.npz") as z:
            st.masks = {p: z[f"m{i}"] for i, p in enumerate(doc["mask_paths"])}
        return st


def _mix_samples(
    labelled: list[Sample],
    class_points: list[dict[str, int]],
    synthetic_rows: Sequence[Mapping[str, Any]],
    ratio: float,
    seed: int,
) -> list[Sample]:
    from ..pipeline.mixing import mix_rows

    if not synthetic_rows:
        return list(labelled)
    real_rows = [
        {"domain": "real", "decision": "accepted", "path": s.path, "class_points": cp}
        for s, cp in zip(labelled, class_points, strict=True)
    ]
    mixed = mix_rows(real_rows, synthetic_rows, ratio=ratio, val_fraction=0.0, seed=seed)
    by_path = {s.path: s for s in labelled}
    out = []
    for row in mixed.train:
        if row["domain"] == "real":
            out.append(by_path[row["path"]])
        else:
            out.append(Sample(row["path"], row.get("label_path"), Path(row["path"]).stem, "synthetic", "synthetic"))
    n_real = sum(s.domain == "real" for s in out)
    if n_real < len(labelled):
        _log.warning(
            "the %s mix uses %d of %d labelled real scans (too few accepted synthetic samples per bucket)",
            ratio, n_real, len(labelled),
        )  # fmt: skip
    return out or list(labelled)


def load_synthetic_rows(manifest: str | Path) -> list[dict[str, Any]]:
    """Accepted synthetic rows of a manifest (or run directory) with absolute ``path``/``label_path``."""
    p = Path(manifest)
    if p.is_dir():
        p = p / "manifest.jsonl"
    out = []
    for row in read_manifest(p):
        if row.get("domain") != "synthetic" or row.get("decision") != "accepted":
            continue
        scan = resolve_row_path(p, row, "path")
        if scan is None:
            continue
        label = resolve_row_path(p, row, "label_path")
        out.append({**row, "path": str(scan), "label_path": None if label is None else str(label)})
    if not out:
        raise SimGapInputError(f"{p}: no accepted synthetic sample")
    return out


def _class_points(cache: ScanCache, s: Sample, vocab: ClassVocabulary, mask: np.ndarray | None) -> dict[str, int]:
    lab = cache.labels(s, vocab)
    if mask is not None:
        lab = lab[mask]
    counts = np.bincount(lab[lab != IGNORE_INDEX], minlength=len(vocab))
    return {vocab.names[i]: int(c) for i, c in enumerate(counts) if c > 0}


def _candidates(
    scores: list[ScanScores], pool: list[Sample], cache: ScanCache, cfg: ActiveLearningConfig,
    masks: Mapping[str, np.ndarray],
) -> list[Region]:  # fmt: skip
    out = []
    for i, s in enumerate(scores):
        ids = voxel_regions(cache.points(pool[i]), cfg.voxel_size)
        done = masks.get(pool[i].path)
        if done is not None:
            # A region some of whose points are labelled already is not asked for again.
            labelled_regions = set(np.unique(ids[done]).tolist())
        else:
            labelled_regions = set()
        out += [
            Region(i, rid, n, sc)
            for rid, n, sc in region_scores(s.point_scores, ids, min_points=8)
            if rid not in labelled_regions
        ]
    return out


def _select(
    scores: list[ScanScores], pool: list[Sample], cache: ScanCache, cfg: ActiveLearningConfig, st: _State,
    budget_points: int,
) -> list[Region]:  # fmt: skip
    if cfg.regions == "scan":
        left = cfg.budget - st.used_scans
        idx = select_top(np.array([s.score for s in scores]), percentile=cfg.percentile, count=cfg.count)
        return [Region(int(i), -1, int(scores[i].point_scores.size), scores[i].score) for i in idx[: max(0, left)]]
    pool_points = int(sum(s.point_scores.size for s in scores))
    mean_scan = pool_points / max(1, len(scores))
    if cfg.count is not None:
        per_round = int(cfg.count * mean_scan)
    else:
        per_round = max(int(mean_scan), int(math.ceil(pool_points * (100.0 - cfg.percentile) / 100.0)))
    cands = _candidates(scores, pool, cache, cfg, st.masks)
    return select_regions(cands, min(per_round, budget_points - st.used_points))


def _queue_rows(
    chosen: list[Region], scores: list[ScanScores], pool: list[Sample], cache: ScanCache, vocab: ClassVocabulary,
    cfg: ActiveLearningConfig, rnd: int,
) -> list[dict[str, Any]]:  # fmt: skip
    rows = []
    region_ids: dict[int, np.ndarray] = {}
    for c in chosen:
        s, sc = pool[c.scan], scores[c.scan]
        if c.region < 0:
            region: dict[str, Any] = {"kind": "scan"}
            sel = np.ones(sc.predicted.size, dtype=bool)
        else:
            pts = cache.points(s)
            if c.scan not in region_ids:
                region_ids[c.scan] = voxel_regions(pts, cfg.voxel_size)
            sel = region_ids[c.scan] == c.region
            cell = np.floor(pts[sel][0, :2] / cfg.voxel_size).astype(int)
            size = float(cfg.voxel_size)
            cx, cy = int(cell[0]), int(cell[1])
            bounds = [cx * size, cy * size, (cx + 1) * size, (cy + 1) * size]
            region = {"kind": "voxel", "size": size, "cell": [cx, cy], "bounds": bounds}
        counts = np.bincount(sc.predicted[sel].astype(np.int64), minlength=len(vocab))
        pred = {vocab.names[i]: int(n) for i, n in enumerate(counts) if n > 0}
        rows.append({
            "round": rnd, "path": s.path, "name": s.name, "scene": s.scene, "region": region,
            "points": int(sel.sum()), "main_class": max(pred, key=lambda k: (pred[k], k)) if pred else "",
            "predicted_classes": pred, "entropy": float(sc.entropy[sel].mean()), "score": float(c.score),
            "label_path": s.label_path,
        })  # fmt: skip
    return rows


def _label(
    rows: list[dict[str, Any]], pool: list[Sample], oracle: SimulatedOracle | LabelFileOracle, cache: ScanCache,
    st: _State,
) -> bool:  # fmt: skip
    """Apply the oracle's answers; False when some request is unanswered (nothing is applied then)."""
    by_path = {s.path: s for s in pool}
    answers = []
    checked: set[str] = set()
    for row in rows:
        s = by_path.get(row["path"])
        if s is None:
            raise SimGapInputError(f"queued scan {row['path']} is not in the pool any more")
        f = oracle.label_file(s)
        if f is None:
            return False
        pts = cache.points(s)
        if s.path not in checked:
            read_answer(oracle, s, pts.shape[0])  # validates the count before anything is applied
            checked.add(s.path)
        answers.append((s, f, region_mask(pts, row["region"])))
    for s, f, mask in answers:
        entry = st.labelled.get(s.path)
        new_scan = entry is None
        if new_scan:
            st.labelled[s.path] = {**s.to_dict(), "label_path": str(f)}
        if row_is_full(mask):
            st.masks.pop(s.path, None)
        elif s.path in st.masks or new_scan:
            prev = st.masks.get(s.path, np.zeros(mask.size, dtype=bool))
            st.masks[s.path] = prev | mask
        st.used_scans += int(new_scan)
        st.used_points += int(mask.sum())
    return True


def row_is_full(mask: np.ndarray) -> bool:
    """Whether a region mask covers the whole scan."""
    return bool(mask.all())


def run_active_learning(
    pool: Sequence[Sample],
    labelled: Sequence[Sample],
    heldout: Sequence[Sample],
    out_dir: str | Path,
    config: ActiveLearningConfig | None = None,
    *,
    synthetic_rows: Sequence[Mapping[str, Any]] = (),
    oracle: SimulatedOracle | LabelFileOracle | None = None,
    model_factory: Callable[[int], nn.Module] | None = None,
    resume: bool = False,
    cache: ScanCache | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    on_event: Callable[[str, int], None] | None = None,
) -> ActiveLearningResult:
    """Run the loop (module docstring) and checkpoint it under ``out_dir``.

    Args:
        pool: unlabelled real scans (their ground truth is only read through ``oracle``).
        labelled: initially labelled real scans.
        heldout: labelled real scans for the per-round IoU (never trained on).
        out_dir: run directory (``state.json``, ``rounds.jsonl``, ``checkpoints/``, ``queue/``).
        config: loop settings.
        synthetic_rows: accepted synthetic manifest rows with absolute paths (:func:`load_synthetic_rows`).
        oracle: answers the queue (default :class:`~.oracle.SimulatedOracle`).
        model_factory: ``num_classes -> nn.Module`` for your own point model (default: RangeSegNet for
            ``config.sensor``).
        resume: continue the run in ``out_dir``.
        cache: scan reader.
        progress: ``progress(stage, done, total)`` for progress bars (stage ``train`` or ``score``).
        on_event: ``on_event(phase, round)`` after each checkpoint (``trained``, ``queued``, ``labelled``).

    Returns:
        :class:`ActiveLearningResult`.
    """
    from .model import build_model

    cfg = config or ActiveLearningConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoints").mkdir(exist_ok=True)
    (out / "queue").mkdir(exist_ok=True)
    cache = cache or ScanCache()
    oracle = oracle or SimulatedOracle()
    device = cfg.train.device or default_device()
    if not labelled and not resume:
        raise SimGapInputError("active learning needs at least one labelled real scan to start from")
    if not heldout:
        raise SimGapInputError("active learning needs held-out labelled real scans to measure progress")
    if resume:
        st = _State.load(out)
        vocab = ClassVocabulary(st.vocab)
    else:
        if (out / STATE_NAME).exists():
            raise SimGapInputError(f"{out} already holds an active-learning run: use --resume or a new directory")
        st = _State(out)
        names: set[str] = set()
        for s in list(labelled) + list(heldout):
            names |= cache.class_names(s)
        for row in synthetic_rows:
            names |= {c for c, n in (row.get("class_points") or {}).items() if int(n) > 0}
        vocab = ClassVocabulary(sorted(names))
        st.vocab = vocab.to_list()
        st.labelled = {s.path: s.to_dict() for s in labelled}
        (out / ROUNDS_NAME).write_text("")
        atomic_write_bytes(out / "config.json", (json.dumps(cfg.to_dict(), indent=1) + "\n").encode())
        st.save()
    done_model: nn.Module | None = None
    if st.phase == "done":
        ckpt = out / "checkpoints" / f"round_{st.round:02d}.pt"
        if ckpt.is_file():
            done_model = (model_factory or (lambda c: build_model(c, cfg.sensor, width=cfg.width)))(len(vocab))
            done_model.load_state_dict(torch.load(ckpt, map_location="cpu")["state_dict"])
            done_model.eval()
        return ActiveLearningResult(st.history, st.stop_reason, done_model, vocab, _labelled_view(st))
    pool_all = list(pool)
    mean_pool_points = 0
    if cfg.regions == "voxel":
        mean_pool_points = int(np.mean([cache.points(s).shape[0] for s in pool_all])) if pool_all else 0
    budget_points = cfg.budget_points if cfg.budget_points is not None else cfg.budget * mean_pool_points
    model: nn.Module | None = None

    def make_model() -> nn.Module:
        torch.manual_seed(cfg.seed + st.round)
        if model_factory is not None:
            return model_factory(len(vocab))
        return build_model(len(vocab), cfg.sensor, width=cfg.width)

    def event(phase: str) -> None:
        st.phase = phase
        st.save()
        if on_event is not None:
            on_event(phase, st.round)

    while True:
        rnd = st.round
        ckpt = out / "checkpoints" / f"round_{rnd:02d}.pt"
        labelled_now = [Sample.from_dict(d) for d in st.labelled.values()]
        if st.phase in ("start", "labelled"):
            cps = [_class_points(cache, s, vocab, st.masks.get(s.path)) for s in labelled_now]
            train_set = _mix_samples(labelled_now, cps, synthetic_rows, cfg.synthetic_ratio, cfg.seed + rnd)
            model = make_model()
            tcfg = TrainConfig(**{**asdict(cfg.train), "seed": cfg.train.seed + cfg.seed + rnd})
            cb = None if progress is None else (lambda i, n, _loss: progress("train", i, n))
            train_model(model, train_set, cache, vocab, tcfg, masks=st.masks, progress=cb)
            buf = io.BytesIO()
            torch.save({"state_dict": model.state_dict(), "classes": vocab.to_list(), "round": rnd}, buf)
            atomic_write_bytes(ckpt, buf.getvalue())
            event("trained")
        if model is None:
            model = make_model()
            model.load_state_dict(torch.load(ckpt, map_location=device)["state_dict"])
            model.to(device)
        labelled_paths = set(st.labelled)
        remaining = [s for s in pool_all if s.path not in labelled_paths or s.path in st.masks]
        queue_file = out / "queue" / f"round_{rnd:02d}.jsonl"
        if st.phase == "trained":
            metrics = evaluate(model, heldout, cache, vocab, device=device)
            cb2 = None if progress is None else (lambda i, n: progress("score", i, n))
            scores = score_pool(model, remaining, cache, vocab, heuristic=cfg.heuristic, passes=cfg.passes,
                                reduce=cfg.reduce, seed=cfg.seed + rnd, device=device, progress=cb2)  # fmt: skip
            ent = entropy_percentiles(scores, seed=cfg.seed + rnd)
            record = {
                "round": rnd, "labelled_scans": st.used_scans, "labelled_points": st.used_points,
                "initial_scans": len(labelled), "train_samples": len(labelled_now), "pool_scans": len(remaining),
                "miou": metrics.to_dict()["miou"], "accuracy": metrics.to_dict()["accuracy"], "iou": metrics.iou,
                "entropy": ent, "heuristic": cfg.heuristic, "regions": cfg.regions,
            }  # fmt: skip
            st.history.append(record)
            with open(out / ROUNDS_NAME, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            stop = ""
            if rnd >= cfg.rounds:
                stop = "rounds"
            elif (cfg.regions == "scan" and st.used_scans >= cfg.budget) or (
                cfg.regions == "voxel" and st.used_points >= budget_points
            ):
                stop = "budget"
            elif not remaining:
                stop = "pool_empty"
            elif cfg.entropy_threshold > 0 and math.isfinite(ent["p95"]) and ent["p95"] < cfg.entropy_threshold:
                stop = "entropy"
            if stop:
                st.stop_reason = stop
                event("done")
                return ActiveLearningResult(st.history, stop, model, vocab, _labelled_view(st))
            chosen = _select(scores, remaining, cache, cfg, st, budget_points)
            if not chosen:
                st.stop_reason = "budget"
                event("done")
                return ActiveLearningResult(st.history, "budget", model, vocab, _labelled_view(st))
            write_queue(queue_file, _queue_rows(chosen, scores, remaining, cache, vocab, cfg, rnd))
            event("queued")
        if st.phase == "queued":
            from .oracle import read_queue

            if not _label(read_queue(queue_file), pool_all, oracle, cache, st):
                st.stop_reason = "waiting_for_labels"
                st.save()
                _log.warning("round %d: waiting for the labels of %s", rnd, queue_file)
                return ActiveLearningResult(st.history, "waiting_for_labels", model, vocab, _labelled_view(st))
            st.round = rnd + 1
            st.stop_reason = ""
            model = None
            event("labelled")


def _labelled_view(st: _State) -> dict[str, np.ndarray | None]:
    return {p: st.masks.get(p) for p in st.labelled}
