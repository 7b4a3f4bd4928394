"""Jensen-Shannon divergence between histograms, in bits (so it lies in [0, 1])."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SimGapInputError
from ._validate import as_vector

__all__ = ["js_divergence"]


def _kl_bits(p: np.ndarray, m: np.ndarray) -> float:
    # 0 log 0 = 0; where p > 0, m >= p/2 > 0, so the log is finite
    nz = p > 0
    return float(np.sum(p[nz] * np.log2(p[nz] / m[nz])))


def js_divergence(p: Any, q: Any) -> float:
    """Jensen-Shannon divergence ``1/2 KL(p||m) + 1/2 KL(q||m)``, ``m = (p + q)/2``, base-2 logarithm.

    Args:
        p: (K,) non-negative histogram (counts or probabilities; normalised here; zero bins allowed).
        q: (K,) non-negative histogram over the same bins.

    Returns:
        JS divergence in bits, in [0, 1]: 0 for identical distributions, 1 for disjoint supports.

    Raises:
        SimGapInputError: different lengths, negative or non-finite entries, or an all-zero histogram.
    """
    pv = as_vector(p, "p", nonnegative=True)
    qv = as_vector(q, "q", nonnegative=True)
    if pv.shape != qv.shape:
        raise SimGapInputError(f"histograms p and q must have the same number of bins, got {pv.size} and {qv.size}")
    ps, qs = pv.sum(), qv.sum()
    if ps <= 0 or qs <= 0:
        raise SimGapInputError(f"histogram {'p' if ps <= 0 else 'q'} is all zeros")
    return _js_valid(pv, qv)


def _js_valid(pv: np.ndarray, qv: np.ndarray) -> float:
    """:func:`js_divergence` of two (K,) float64 histograms already known valid (non-negative, finite, same
    length, both sums > 0): for callers that build the histograms themselves and evaluate many."""
    pv, qv = pv / pv.sum(), qv / qv.sum()
    m = 0.5 * (pv + qv)
    js = 0.5 * _kl_bits(pv, m) + 0.5 * _kl_bits(qv, m)
    return float(min(max(js, 0.0), 1.0))
