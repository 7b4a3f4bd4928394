"""Scoring the unlabelled pool: MC-Dropout probabilities -> per-point heuristic scores -> per-scan scores.

The stop criterion and the round log use the *normalised predictive entropy* (entropy / log C, in [0, 1]) of
every pool point, whatever heuristic ranks the pool, so that the threshold means the same for any class count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .dataset import ClassVocabulary, Sample, ScanCache
from .heuristics import entropy, get_heuristic, random_scores, reduce_scores
from .mc_dropout import mc_predict

__all__ = ["ScanScores", "score_pool", "entropy_percentiles"]

#: Percentiles of the normalised entropy logged each round.
PERCENTILES = (50, 90, 95, 99)


@dataclass
class ScanScores:
    """Scores of one pool scan.

    Attributes:
        score: the scan's heuristic score (reduced over points).
        point_scores: (N,) float32 per-point heuristic scores.
        entropy: (N,) float32 normalised predictive entropy per point.
        predicted: (N,) int16 predicted class index per point (argmax of the mean probabilities).
    """

    score: float
    point_scores: np.ndarray
    entropy: np.ndarray
    predicted: np.ndarray


def score_pool(
    model: nn.Module,
    pool: Sequence[Sample],
    cache: ScanCache,
    vocab: ClassVocabulary,
    *,
    heuristic: str = "entropy",
    passes: int = 20,
    reduce: str = "mean",
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> list[ScanScores]:
    """MC-Dropout scores of every pool scan.

    Args:
        model: point model with dropout.
        pool: unlabelled scans.
        cache: scan reader.
        vocab: classes (for the entropy normalisation).
        heuristic: a name of :data:`~.heuristics.HEURISTICS`.
        passes: MC-Dropout passes T.
        reduce: per-scan reduction (:func:`~.heuristics.reduce_scores`).
        seed: seeds the dropout masks (and the ``random`` heuristic) so that scoring is reproducible.
        device: torch device.
        progress: called as ``progress(done, total)``.

    Returns:
        One :class:`ScanScores` per pool scan.
    """
    h = get_heuristic(heuristic)
    torch.manual_seed(seed)
    log_c = math.log(max(2, len(vocab)))
    out = []
    for i, s in enumerate(pool):
        pts = cache.points(s)
        probs = mc_predict(model, torch.from_numpy(pts).to(device), passes=passes)
        ent = (entropy(probs) / log_c).astype(np.float32)
        if h is random_scores:
            ps = random_scores(probs, seed=seed * 100003 + i).astype(np.float32)
        else:
            ps = h(probs).astype(np.float32)
        pred = probs.mean(axis=2).argmax(axis=1).astype(np.int16)
        out.append(ScanScores(reduce_scores(ps, reduce), ps, ent, pred))
        if progress is not None:
            progress(i + 1, len(pool))
    return out


def entropy_percentiles(scores: Sequence[ScanScores], *, per_scan: int = 4096, seed: int = 0) -> dict[str, float]:
    """Percentiles (``p50``, ``p90``, ``p95``, ``p99``) of the normalised entropy over all pool points (at most
    ``per_scan`` points drawn from each scan, so that big scans do not dominate memory)."""
    rng = np.random.default_rng(seed)
    parts = []
    for s in scores:
        e = s.entropy
        parts.append(e if e.size <= per_scan else e[rng.choice(e.size, per_scan, replace=False)])
    allv = np.concatenate(parts) if parts else np.zeros(0)
    if allv.size == 0:
        return {f"p{q}": float("nan") for q in PERCENTILES}
    return {f"p{q}": float(np.percentile(allv, q)) for q in PERCENTILES}
