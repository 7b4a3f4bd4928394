"""Training and evaluation of a point segmentation model on lists of samples.

:func:`train_and_evaluate` is the one call other studies need ("train on these samples, report per-class IoU on
those"); :func:`train_model` and :func:`evaluate` are its halves. Samples may carry a label mask (region
labelling: only the labelled points count in the loss).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the PyTorch convention

from .dataset import IGNORE_INDEX, ClassVocabulary, Sample, ScanCache

__all__ = [
    "TrainConfig",
    "SegmentationMetrics",
    "train_model",
    "train_step",
    "evaluate",
    "train_and_evaluate",
    "default_device",
    "set_torch_threads",
]

_log = logging.getLogger(__name__)


def default_device() -> str:
    """``cuda`` when available, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def set_torch_threads(n: int | None = None) -> int:
    """Set torch's CPU threads and return the number used.

    Default: at most 2, and only as many as the 1-minute load average leaves idle (at least 1). OpenMP threads
    spin-wait on oversubscribed cores: on a 2-core machine with a load of ~8, one training step of the default
    model took 0.23 s with 1 thread and 1.8-6.8 s with 2.
    """
    import os

    if n is None:
        cpus = os.cpu_count() or 1
        try:
            idle = cpus - os.getloadavg()[0]
        except OSError:  # pragma: no cover - platforms without getloadavg
            idle = cpus
        n = int(min(2, cpus, max(1.0, math.floor(idle + 0.5))))
    torch.set_num_threads(max(1, int(n)))
    return torch.get_num_threads()


@dataclass
class TrainConfig:
    """Training settings.

    Attributes:
        epochs: passes over the training samples (at least ``min_steps`` steps are taken in all).
        min_steps: minimum number of optimisation steps (small labelled sets still train long enough).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        class_weighting: ``inverse_sqrt`` (weights ~ 1/sqrt(point frequency), for long-tailed classes) or
            ``none``.
        augment: random rotation about z and mirror in y per step.
        seed: torch / NumPy seed of initialisation order, shuffling and augmentation.
        device: ``cpu``, ``cuda``... (``None``: CUDA when present).
        max_points: scans with more points are subsampled to this many per step (0: never).
    """

    epochs: int = 8
    min_steps: int = 0
    lr: float = 2e-3
    weight_decay: float = 1e-4
    class_weighting: str = "inverse_sqrt"
    augment: bool = True
    seed: int = 0
    device: str | None = None
    max_points: int = 0


@dataclass
class SegmentationMetrics:
    """Per-class IoU on a labelled set.

    Attributes:
        classes: class names (vocabulary order).
        iou: class -> IoU in [0, 1], or ``None`` where the class is in neither labels nor predictions.
        miou: mean of the defined IoUs (NaN when none).
        accuracy: share of labelled points predicted right.
        confusion: (C, C) int64 confusion matrix, rows = truth.
        points: labelled points evaluated.
    """

    classes: list[str]
    iou: dict[str, float | None]
    miou: float
    accuracy: float
    confusion: np.ndarray = field(repr=False)
    points: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the confusion matrix)."""
        return {"iou": self.iou, "miou": _none_if_nan(self.miou), "accuracy": _none_if_nan(self.accuracy),
                "points": self.points}  # fmt: skip


def _none_if_nan(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def _labels_for(cache: ScanCache, s: Sample, vocab: ClassVocabulary, mask: np.ndarray | None) -> np.ndarray:
    lab = cache.labels(s, vocab)
    if mask is not None:
        if mask.shape != lab.shape:
            raise ValueError(f"{s.path}: label mask has {mask.size} entries for {lab.size} points")
        lab = np.where(mask, lab, IGNORE_INDEX)
    return lab


def _class_weights(counts: np.ndarray, how: str) -> torch.Tensor | None:
    if how == "none":
        return None
    if how != "inverse_sqrt":
        raise ValueError(f"unknown class_weighting {how!r} (inverse_sqrt or none)")
    freq = counts.astype(np.float64) / max(1.0, counts.sum())
    w = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(freq, 1e-12)), 0.0)
    if w.max() <= 0:
        return None
    w = w / w[counts > 0].mean()
    return torch.as_tensor(w, dtype=torch.float32)


def _augment(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(0.0, 2.0 * np.pi)
    c, s = np.cos(a), np.sin(a)
    out = points.copy()
    x, y = points[:, 0], points[:, 1]
    out[:, 0], out[:, 1] = c * x - s * y, s * x + c * y
    if rng.random() < 0.5:
        out[:, 1] = -out[:, 1]
    return out


def _projected_step_input(
    model: nn.Module, img: torch.Tensor, pix: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a cached range image exactly as rotating the scan about z and mirroring it in y would.

    A rotation by a whole number ``k`` of columns is a roll of the image (with x, y channels rotated by the same
    angle); the mirror is a flip of the columns (with y negated). Points keep their pixel under both.
    """
    w = int(model.width)
    k = int(rng.integers(w))
    theta = -2.0 * math.pi * k / w  # columns increase clockwise
    c, s = math.cos(theta), math.sin(theta)
    img = torch.roll(img, k, dims=2).clone()
    x, y = img[2].clone(), img[3].clone()
    img[2], img[3] = c * x - s * y, s * x + c * y
    row, col = pix // w, (pix % w + k) % w
    if rng.random() < 0.5:
        img = img.flip(2).clone()
        img[3] = -img[3]
        col = (w - 1) - col
    return img, row * w + col


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    points: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    projected: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> float:
    """One optimisation step on one scan.

    Args:
        model: point model ((N, 4) -> (N, C) logits).
        optimizer: its optimiser.
        points: (N, 4) float32 points.
        labels: (N,) int64 class indices, ``IGNORE_INDEX`` for unlabelled points.
        weight: optional (C,) class weights of the cross-entropy.
        projected: for :class:`~.model.RangeSegNet`: its (range image, pixel per point) of ``points``, so
            that the projection is not recomputed each epoch.

    Returns:
        The loss before the step (NaN when no point is labelled; no step is taken then).
    """
    if not bool((labels != IGNORE_INDEX).any()):
        return float("nan")
    model.train()
    optimizer.zero_grad(set_to_none=True)
    if projected is not None:
        img, pix = projected
        logits = model.forward_image(img.unsqueeze(0))[0].reshape(model.num_classes, -1)[:, pix].t()
    else:
        logits = model(points)
    if logits.shape[0] != points.shape[0]:
        raise ValueError(f"the model returned {logits.shape[0]} rows of logits for {points.shape[0]} points")
    loss = F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORE_INDEX)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def train_model(
    model: nn.Module,
    samples: Sequence[Sample],
    cache: ScanCache,
    vocab: ClassVocabulary,
    config: TrainConfig | None = None,
    *,
    masks: Mapping[str, np.ndarray] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> list[float]:
    """Train ``model`` in place.

    Args:
        model: point model ((N, 4) -> (N, C) logits, C = ``len(vocab)``).
        samples: labelled training samples.
        cache: scan reader.
        vocab: class vocabulary.
        config: settings (defaults: :class:`TrainConfig`).
        masks: sample path -> (N,) bool mask of labelled points (region labelling); absent: every point.
        progress: called as ``progress(step, total_steps, loss)`` after each step.

    Returns:
        Mean loss per epoch.

    Raises:
        SimGapInputError: an unlabelled sample; ValueError: no sample.
    """
    cfg = config or TrainConfig()
    if not samples:
        raise ValueError("no training samples")
    device = cfg.device or default_device()
    model.to(device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    masks = masks or {}
    labels = [_labels_for(cache, s, vocab, masks.get(s.path)) for s in samples]
    counts = np.zeros(len(vocab), dtype=np.int64)
    for lab in labels:
        counts += np.bincount(lab[lab >= 0], minlength=len(vocab))[: len(vocab)]
    weight = _class_weights(counts, cfg.class_weighting)
    weight = None if weight is None else weight.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    epochs = max(cfg.epochs, math.ceil(cfg.min_steps / len(samples)))
    total = epochs * len(samples)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1), eta_min=cfg.lr * 0.05)
    history: list[float] = []
    step = 0
    for _ in range(epochs):
        losses = []
        for i in rng.permutation(len(samples)):
            pts, lab = cache.points(samples[i]), labels[i]
            if cfg.max_points and pts.shape[0] > cfg.max_points:
                keep = np.sort(rng.choice(pts.shape[0], cfg.max_points, replace=False))
                pts, lab = pts[keep], lab[keep]
            if cfg.augment:
                pts = _augment(pts, rng)
            loss = train_step(model, opt, torch.from_numpy(pts).to(device), torch.from_numpy(lab).to(device), weight)
            sched.step()
            step += 1
            if math.isfinite(loss):
                losses.append(loss)
            if progress is not None:
                progress(step, total, loss)
        history.append(float(np.mean(losses)) if losses else float("nan"))
    model.eval()
    return history


def predict_labels(model: nn.Module, points: np.ndarray, device: str) -> np.ndarray:
    """(N,) int64 argmax class per point of a deterministic (eval-mode) pass."""
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(points).to(device)).argmax(dim=1).cpu().numpy().astype(np.int64)


def evaluate(
    model: nn.Module,
    samples: Sequence[Sample],
    cache: ScanCache,
    vocab: ClassVocabulary,
    *,
    device: str | None = None,
) -> SegmentationMetrics:
    """Per-class IoU of a deterministic pass over labelled samples.

    Args:
        model: point model.
        samples: labelled samples.
        cache: scan reader.
        vocab: class vocabulary (classes outside it are ignored).
        device: torch device (default: the model's).

    Returns:
        :class:`SegmentationMetrics`.
    """
    dev = device or next(iter(model.parameters())).device.type
    c = len(vocab)
    conf = np.zeros((c, c), dtype=np.int64)
    for s in samples:
        lab = cache.labels(s, vocab)
        pred = predict_labels(model, cache.points(s), dev)
        keep = lab >= 0
        conf += np.bincount(lab[keep] * c + pred[keep], minlength=c * c).reshape(c, c)
    tp = np.diag(conf).astype(np.float64)
    denom = conf.sum(0) + conf.sum(1) - np.diag(conf)
    iou = {n: (float(tp[i] / denom[i]) if denom[i] > 0 else None) for i, n in enumerate(vocab.names)}
    defined = [v for v in iou.values() if v is not None]
    total = int(conf.sum())
    return SegmentationMetrics(
        vocab.to_list(),
        iou,
        float(np.mean(defined)) if defined else float("nan"),
        float(tp.sum() / total) if total else float("nan"),
        conf,
        total,
    )


def train_and_evaluate(
    train_samples: Sequence[Sample],
    eval_samples: Sequence[Sample],
    *,
    vocab: ClassVocabulary | None = None,
    sensor: str = "hdl-64",
    model: nn.Module | None = None,
    config: TrainConfig | None = None,
    cache: ScanCache | None = None,
    masks: Mapping[str, np.ndarray] | None = None,
    width: int = 512,
) -> tuple[nn.Module, SegmentationMetrics]:
    """Train a model on ``train_samples`` and report per-class IoU on ``eval_samples``.

    Args:
        train_samples: labelled training samples (real and/or synthetic).
        eval_samples: labelled evaluation samples.
        vocab: classes (default: every class seen in ``train_samples``).
        sensor: sensor profile of the default :class:`~.model.RangeSegNet` (ignored when ``model`` is given).
        model: your own point model (``(N, 4) -> (N, len(vocab))``); default: a fresh RangeSegNet seeded with
            ``config.seed``.
        config: training settings.
        cache: scan reader to share between calls.
        masks: region label masks (see :func:`train_model`).
        width: range-image width of the default model.

    Returns:
        (trained model, metrics on ``eval_samples``).
    """
    from .model import build_model

    cfg = config or TrainConfig()
    cache = cache or ScanCache()
    vocab = vocab or ClassVocabulary.from_samples(train_samples, cache)
    if model is None:
        torch.manual_seed(cfg.seed)
        model = build_model(len(vocab), sensor, width=width)
    train_model(model, train_samples, cache, vocab, cfg, masks=masks)
    return model, evaluate(model, eval_samples, cache, vocab, device=cfg.device or default_device())
