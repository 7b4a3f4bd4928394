"""Semantic component of DoGSS-PCL: per-class Jensen-Shannon divergence of backbone embeddings.

For each class with real embeddings, both sides' embeddings are reduced to 1-D statistics, each statistic is
histogrammed over a range shared by both sides (``n_bins`` bins) and compared with :func:`js_divergence` (bits):

- ``method="norm"`` (the seed method): the statistic is the embedding's L2 norm;
- ``method="sliced"`` (default, stronger): the mean JS over the L2 norm and ``n_projections`` projections on
  random unit vectors of the embedding space (fixed ``seed``), which also sees changes in direction that
  leave the norm alone.

Small samples: 50 bins over a handful of instances make the JS of two samples of the *same* distribution close
to 1 (every instance lands in its own bin). With ``adaptive_bins=True`` the bin count is capped at
``ceil(sqrt(min(K_real, K_synth)))`` (the square-root rule), so 6 vs 6 instances use 3 bins; from 2,500
instances per side on, the configured ``n_bins`` applies unchanged. The default ``False`` is the seed method
(fixed ``n_bins``); ``simgap score`` turns it on.

A class present in the real features but absent (or with zero rows) in the synthetic ones scores 1.0. A class
fails when its JS exceeds ``threshold`` (0.15 by default, docs/metrics.md). Synthetic-only classes cannot be scored
and are listed in ``synthetic_only``. Raising on failure is the caller's choice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from .js import _js_valid, js_divergence

__all__ = ["SemanticAlignment", "semantic_alignment", "permutation_debiased_js", "SEMANTIC_METHODS"]

SEMANTIC_METHODS = ("sliced", "norm")


@dataclass(frozen=True)
class SemanticAlignment:
    """Result of :func:`semantic_alignment`.

    Attributes:
        per_class: class name -> JS divergence in bits, [0, 1].
        failed_classes: sorted classes whose JS exceeds ``threshold``.
        passed: True when no class failed.
        threshold: the JS threshold used.
        method: ``"sliced"`` or ``"norm"``.
        missing_in_synthetic: real classes without synthetic embeddings (scored 1.0).
        synthetic_only: synthetic classes without real embeddings (not scored).
    """

    per_class: dict[str, float]
    failed_classes: list[str]
    passed: bool
    threshold: float
    method: str
    missing_in_synthetic: list[str] = field(default_factory=list)
    synthetic_only: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field."""
        return asdict(self)


def _as_features(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 0)
    if arr.ndim != 2:
        raise SimGapInputError(f"{name}: expected a (K, D) feature array, got shape {tuple(arr.shape)}")
    if not np.issubdtype(arr.dtype, np.number):
        raise SimGapInputError(f"{name}: expected numeric features, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.size and not np.isfinite(arr).all():
        raise SimGapInputError(f"{name}: features contain non-finite (NaN/inf) values")
    return arr


def _shared_hist_js(u: np.ndarray, v: np.ndarray, n_bins: int) -> float:
    lo = float(min(u.min(), v.min()))
    hi = float(max(u.max(), v.max()))
    if hi <= lo:  # every value identical on both sides
        return 0.0
    hu, _ = np.histogram(u, bins=n_bins, range=(lo, hi))
    hv, _ = np.histogram(v, bins=n_bins, range=(lo, hi))
    return js_divergence(hu, hv)


def _bin_indices(x: np.ndarray, n_bins: int) -> np.ndarray | None:
    """(N,) bin of each value among ``n_bins`` equal bins over ``[x.min(), x.max()]``, exactly the bins
    ``np.histogram(.., bins=n_bins, range=(lo, hi))`` counts it in (``edges[i] <= x < edges[i + 1]``, the last bin
    closed); ``None`` when every value is identical."""
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return None
    edges = np.linspace(lo, hi, n_bins + 1)
    idx = np.searchsorted(edges, x, side="right") - 1
    idx[idx == n_bins] = n_bins - 1
    return idx


def permutation_debiased_js(
    real: Any,
    synth: Any,
    *,
    n_bins: int = 16,
    method: str = "sliced",
    n_projections: int = 16,
    seed: int = 0,
    n_permutations: int = 8,
    permutation_seed: int = 0,
) -> float:
    """One class's JS of :func:`semantic_alignment` minus the largest JS among random splits of the pooled sample.

    Equal to ``max(0, js(real, synth) - max_p js(pooled[p[:K]], pooled[p[K:]]))`` with every ``js`` computed by
    :func:`semantic_alignment` (``n_bins``, ``method``, ``n_projections``, ``seed``) and the permutations ``p`` drawn
    from ``np.random.default_rng(permutation_seed)``, but in one pass: the statistics are per instance and a split's
    shared histogram range is the pooled sample's, so every instance's bin is computed once and each split only
    counts bins (tests compare it with that definition).

    Args:
        real: (K, D) float embeddings, K >= 1.
        synth: (M, D) float embeddings, M >= 1.
        n_bins, method, n_projections, seed: as in :func:`semantic_alignment`.
        n_permutations: random splits of the baseline (0: the raw JS).
        permutation_seed: seed of the splits.

    Returns:
        The debiased JS in bits, in [0, 1].

    Raises:
        SimGapInputError: unknown method, bad bins/projections, malformed or mismatched feature arrays.
    """
    if method not in SEMANTIC_METHODS:
        raise SimGapInputError(f"method must be one of {SEMANTIC_METHODS}, got {method!r}")
    if int(n_bins) < 1:
        raise SimGapInputError(f"n_bins must be >= 1, got {n_bins}")
    if method == "sliced" and int(n_projections) < 1:
        raise SimGapInputError(f"n_projections must be >= 1 for method='sliced', got {n_projections}")
    r, s = _as_features(real, "real features"), _as_features(synth, "synthetic features")
    if r.shape[0] == 0 or s.shape[0] == 0:
        raise SimGapInputError(f"need instances on both sides, got {r.shape[0]} real and {s.shape[0]} synthetic")
    if s.shape[1] != r.shape[1]:
        raise SimGapInputError(f"real features have D={r.shape[1]} but synthetic features have D={s.shape[1]}")
    dirs = None
    if method == "sliced":
        dirs = np.random.default_rng(seed).normal(size=(int(n_projections), r.shape[1]))
        dirs /= np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-12)
    bins, k = int(n_bins), r.shape[0]
    pooled = np.concatenate([r, s], axis=0)
    indices = [_bin_indices(x, bins) for x in _statistics(pooled, dirs)]
    live = [i for i in indices if i is not None]
    offsets = (np.arange(len(live)) * bins)[:, None]
    stacked = np.stack(live) + offsets if live else np.zeros((0, pooled.shape[0]), np.intp)
    totals = np.bincount(stacked.ravel(), minlength=len(live) * bins).reshape(-1, bins)

    def split_js(first: np.ndarray) -> float:
        hu = np.bincount(stacked[:, first].ravel(), minlength=len(live) * bins).reshape(-1, bins)
        js, row = [], 0
        for idx in indices:
            if idx is None:  # a statistic constant over the pool: JS 0 in every split
                js.append(0.0)
                continue
            # counts from _bin_indices: non-negative, finite, both sides non-empty; no re-validation per split
            js.append(_js_valid(hu[row].astype(np.float64), (totals[row] - hu[row]).astype(np.float64)))
            row += 1
        return float(np.mean(js))

    value = split_js(np.arange(k))
    if n_permutations <= 0:
        return value
    rng = np.random.default_rng(permutation_seed)
    null = [split_js(rng.permutation(pooled.shape[0])[:k]) for _ in range(int(n_permutations))]
    return max(0.0, value - float(np.max(null)))


def _statistics(feats: np.ndarray, dirs: np.ndarray | None) -> list[np.ndarray]:
    stats = [np.linalg.norm(feats, axis=1)]
    if dirs is not None:
        proj = feats @ dirs.T
        stats.extend(proj[:, k] for k in range(proj.shape[1]))
    return stats


def semantic_alignment(
    real_features: Mapping[str, Any],
    synth_features: Mapping[str, Any],
    *,
    threshold: float = 0.15,
    n_bins: int = 50,
    method: str = "sliced",
    n_projections: int = 16,
    seed: int = 0,
    adaptive_bins: bool = False,
) -> SemanticAlignment:
    """Per-class JS divergence between real and synthetic embedding distributions.

    Args:
        real_features: class name -> (K_r, D) float embeddings of real instances.
        synth_features: class name -> (K_s, D) float embeddings of synthetic instances (same D per class).
        threshold: a class fails when its JS (bits) is above this.
        n_bins: histogram bins per statistic (shared range per class and statistic).
        method: ``"sliced"`` (norm + random projections) or ``"norm"`` (norm only).
        n_projections: random projections for ``"sliced"``.
        seed: seed of the projection directions.
        adaptive_bins: cap the bins at ``ceil(sqrt(min(K_r, K_s)))`` for small samples (module docstring).

    Returns:
        A :class:`SemanticAlignment`.

    Raises:
        SimGapInputError: unknown method, bad threshold/bins/projections, malformed or mismatched feature arrays.
    """
    if method not in SEMANTIC_METHODS:
        raise SimGapInputError(f"method must be one of {SEMANTIC_METHODS}, got {method!r}")
    if not (0.0 <= float(threshold) <= 1.0):
        raise SimGapInputError(f"threshold must be in [0, 1] (JS is in bits), got {threshold}")
    if int(n_bins) < 1:
        raise SimGapInputError(f"n_bins must be >= 1, got {n_bins}")
    if method == "sliced" and int(n_projections) < 1:
        raise SimGapInputError(f"n_projections must be >= 1 for method='sliced', got {n_projections}")
    real = {str(k): _as_features(v, f"real features of class {k!r}") for k, v in real_features.items()}
    synth = {str(k): _as_features(v, f"synthetic features of class {k!r}") for k, v in synth_features.items()}
    per_class: dict[str, float] = {}
    missing: list[str] = []
    for cls in sorted(real):
        r = real[cls]
        if r.shape[0] == 0:
            continue
        s = synth.get(cls)
        if s is None or s.shape[0] == 0:
            per_class[cls] = 1.0
            missing.append(cls)
            continue
        if s.shape[1] != r.shape[1]:
            raise SimGapInputError(
                f"class {cls!r}: real features have D={r.shape[1]} but synthetic features have D={s.shape[1]}"
            )
        dirs = None
        if method == "sliced":
            rng = np.random.default_rng(seed)
            dirs = rng.normal(size=(int(n_projections), r.shape[1]))
            dirs /= np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-12)
        bins = int(n_bins)
        if adaptive_bins:
            bins = max(1, min(bins, math.ceil(math.sqrt(min(r.shape[0], s.shape[0])))))
        js = [_shared_hist_js(u, v, bins) for u, v in zip(_statistics(r, dirs), _statistics(s, dirs), strict=True)]
        per_class[cls] = float(np.mean(js))
    failed = sorted(c for c, v in per_class.items() if v > threshold)
    synth_only = sorted(c for c, v in synth.items() if v.shape[0] and (c not in real or real[c].shape[0] == 0))
    return SemanticAlignment(
        per_class=per_class,
        failed_classes=failed,
        passed=not failed,
        threshold=float(threshold),
        method=method,
        missing_in_synthetic=missing,
        synthetic_only=synth_only,
    )
