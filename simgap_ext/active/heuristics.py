"""Uncertainty heuristics over MC-Dropout probabilities (the baal definitions, in NumPy).

Every heuristic maps a ``(N, C, T)`` probability array (N points or samples, C classes, T stochastic forward
passes; each ``[:, :, t]`` row sums to 1) to ``(N,)`` float64 scores, higher = more informative:

- ``entropy``: predictive entropy ``H[mean_t p]`` in nats (maximal ``log C`` for uniform probabilities).
- ``bald``: mutual information between prediction and weights, ``H[mean_t p] - mean_t H[p_t]`` (Houlsby et al.
  2011); 0 when every pass agrees.
- ``margin``: ``1 - (p_(1) - p_(2))`` of the mean probabilities, so that a small top-2 margin scores high.
- ``variation_ratio``: ``1 - max_c mean_t p``.
- ``random``: uniform noise (the baseline), seeded.

:func:`reduce_scores` turns per-point scores into one score per scan (mean by default).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "HEURISTICS",
    "entropy",
    "bald",
    "margin",
    "variation_ratio",
    "random_scores",
    "get_heuristic",
    "reduce_scores",
]

_EPS = 1e-12


def _check_probs(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 2:  # a single deterministic pass
        p = p[:, :, None]
    if p.ndim != 3:
        raise ValueError(f"probabilities must be (N, C, T), got shape {p.shape}")
    if p.shape[1] < 1 or p.shape[2] < 1:
        raise ValueError(f"probabilities need C >= 1 classes and T >= 1 passes, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("probabilities contain NaN or inf")
    if p.size and (p.min() < -1e-6 or p.max() > 1 + 1e-6):
        raise ValueError(f"probabilities must lie in [0, 1], got [{p.min():.4g}, {p.max():.4g}]")
    return np.clip(p, 0.0, 1.0)


def _entropy_of(p: np.ndarray, axis: int) -> np.ndarray:
    return -(p * np.log(p + _EPS)).sum(axis=axis)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Predictive entropy of the mean over passes.

    Args:
        probs: (N, C, T) probabilities ((N, C) is read as T = 1).

    Returns:
        (N,) float64 entropy in nats, in [0, log C].
    """
    p = _check_probs(probs)
    return np.clip(_entropy_of(p.mean(axis=2), axis=1), 0.0, None)


def bald(probs: np.ndarray) -> np.ndarray:
    """BALD mutual information ``H[E_t p] - E_t H[p_t]``.

    Args:
        probs: (N, C, T) probabilities.

    Returns:
        (N,) float64 mutual information in nats, >= 0 (0 when all passes agree).
    """
    p = _check_probs(probs)
    expected_entropy = _entropy_of(p, axis=1).mean(axis=1)
    return np.clip(_entropy_of(p.mean(axis=2), axis=1) - expected_entropy, 0.0, None)


def margin(probs: np.ndarray) -> np.ndarray:
    """One minus the margin between the two most probable classes of the mean probabilities.

    Args:
        probs: (N, C, T) probabilities, C >= 2.

    Returns:
        (N,) float64 scores in [0, 1].
    """
    p = _check_probs(probs)
    if p.shape[1] < 2:
        raise ValueError("margin needs at least 2 classes")
    mean = np.sort(p.mean(axis=2), axis=1)
    return 1.0 - (mean[:, -1] - mean[:, -2])


def variation_ratio(probs: np.ndarray) -> np.ndarray:
    """``1 - max_c`` of the mean probabilities.

    Args:
        probs: (N, C, T) probabilities.

    Returns:
        (N,) float64 scores in [0, 1 - 1/C].
    """
    p = _check_probs(probs)
    return 1.0 - p.mean(axis=2).max(axis=1)


def random_scores(probs: np.ndarray, *, seed: int | None = 0) -> np.ndarray:
    """Uniform random scores (the baseline every heuristic must beat).

    Args:
        probs: (N, C, T) probabilities (only N is used).
        seed: generator seed.

    Returns:
        (N,) float64 scores in [0, 1).
    """
    p = _check_probs(probs)
    return np.random.default_rng(seed).random(p.shape[0])


#: Heuristic name -> callable on (N, C, T) probabilities returning (N,) scores.
HEURISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "entropy": entropy,
    "bald": bald,
    "margin": margin,
    "variation_ratio": variation_ratio,
    "random": random_scores,
}


def get_heuristic(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """A heuristic by name (``entropy``, ``bald``, ``margin``, ``variation_ratio``, ``random``).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    key = str(name).strip().lower().replace("-", "_")
    if key in ("variation", "variationratio"):
        key = "variation_ratio"
    try:
        return HEURISTICS[key]
    except KeyError:
        raise ValueError(f"unknown heuristic {name!r} (known: {', '.join(HEURISTICS)})") from None


def reduce_scores(scores: np.ndarray, how: str = "mean") -> float:
    """One score per scan from its per-point scores.

    Args:
        scores: (N,) per-point scores.
        how: ``mean``, ``max``, ``sum`` or ``pNN`` (the NN-th percentile, e.g. ``p95``).

    Returns:
        The scan's score (0.0 for an empty scan).
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size == 0:
        return 0.0
    if how == "mean":
        return float(s.mean())
    if how == "max":
        return float(s.max())
    if how == "sum":
        return float(s.sum())
    if how.startswith("p"):
        try:
            q = float(how[1:])
        except ValueError:
            q = -1.0
        if 0.0 <= q <= 100.0:
            return float(np.percentile(s, q))
    raise ValueError(f"unknown reduction {how!r} (mean, max, sum or pNN)")
