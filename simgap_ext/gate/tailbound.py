"""Upper prediction bounds of real-vs-real deviations from a handful of leave-one-out values.

A bank calibrates the per-class gate components that compare a frame's class statistic with the other frames'
(roughness, ring continuity, share, height, plausibility, foreign votes) from leave-one-frame-out deviations: one
value per real frame that holds the class, so 2–40 values in practice, at the Bonferroni-corrected quantile
``1 - 0.05 / K`` (0.99–0.995 for K = 5–10 classes per frame). The empirical quantile that far out of so few values
is their maximum, and the largest of ``n`` exchangeable values is exceeded by the next real frame with probability
``1 / (n + 1)``: 10 % for a 9-frame bank, whatever quantile was asked for. Real scans then failed on a class whose
d_max came from a few similar frames (MCD: a fence 2.2x the largest of four other frames' deviations, a pole 2.8x
the largest of nine; KITTI-360: a building 3.1x the largest of seventeen).

:func:`loo_deviation_bound` replaces that maximum by a parametric **upper prediction bound**: the value a *new*
real frame's deviation stays below with probability ``quantile``, given ``n`` values, accounting for the
uncertainty of the spread fitted to them (Student's t on ``n - 1`` degrees of freedom instead of the normal
quantile), so that the bound widens as ``n`` shrinks.

The model. Each value is the deviation of one real frame's class statistic (ring continuity, share, vote shares;
height and roughness as W1 distances) from the other real frames' reference, ``d_j = |v_j - mean(v_-j)|``, and the
gate scores a new frame's ``|v' - mean(v)|`` against all ``n``. With ``v ~ N(mu, sigma^2)``:
``v_j - mean(v_-j) = n / (n - 1) * (v_j - mean(v))``, so the sample variance of the ``v`` is
``S^2 = (n - 1) / n * mean(d^2)``, and ``(v' - mean(v)) / (S * sqrt(1 + 1/n))`` follows Student's ``t_{n-1}``:

    bound = sqrt(mean(d^2)) * sqrt(1 - 1/n^2) * t_{n-1}^-1((1 + quantile) / 2)

— the textbook two-sided normal prediction interval of ``v'``, computed from the deviations alone. It is exact
for a statistic compared with the bank's mean (ring continuity, plausibility) and the model taken for the others.
Real deviations scatter from 0 (many are ~0), which is what it describes; a log-normal fitted to them instead is
swamped by the near-zero values (a plausibility d_max 2000x the empirical one), or, with the values raised to the
component's floor first, collapses onto the floor and passed none of the failing real scans (docs/gate.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["heteroscedastic_bound", "loo_deviation_bound"]


def _t_quantile(p: float, df: int) -> float:
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def loo_deviation_bound(deviations: Sequence[float] | np.ndarray, quantile: float) -> float:
    """Upper prediction bound of a new frame's ``|v' - mean(v)|`` from the leave-one-out ``|v_j - mean(v_-j)|``.

    Args:
        deviations: ``(n,)`` non-negative leave-one-out deviations of ``n >= 2`` real frames.
        quantile: coverage in (0, 1): the new deviation stays below the bound with this probability (exactly, for
            normal ``v``).

    Returns:
        ``sqrt(mean(d^2)) * sqrt(1 - 1/n^2) * t_{n-1}^-1((1 + quantile) / 2)`` (0 when every deviation is 0).

    Raises:
        ValueError: fewer than 2 values (one frame has no spread to measure), negative or non-finite values,
            quantile outside (0, 1).
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    d = np.asarray(deviations, np.float64).reshape(-1)
    if d.size == 0:
        raise ValueError("no values to bound")
    if not np.isfinite(d).all() or (d < 0).any():
        raise ValueError("values must be finite and >= 0 (deviations)")
    n = d.size
    if n < 2:
        raise ValueError(f"a leave-one-out deviation bound needs at least 2 values, got {n}")
    rms = math.sqrt(float(np.mean(d * d)))
    return rms * math.sqrt(1.0 - 1.0 / n**2) * _t_quantile(0.5 * (1.0 + quantile), n - 1) if rms > 0.0 else 0.0


def heteroscedastic_bound(
    values: Sequence[float] | np.ndarray, ses: Sequence[float] | np.ndarray, se_new: float, quantile: float
) -> float:
    """Upper prediction bound of ``|v' - mean(v)|`` when each value carries its own sampling error.

    Model: ``v_j = mu + u_j + e_j`` with the frames' own variation ``u_j ~ N(0, tau^2)`` and a known sampling error
    ``e_j ~ N(0, se_j^2)`` (a share over few points: binomial). ``tau^2 = max(0, S^2 - mean(se^2))`` from the sample
    variance ``S^2`` of the ``v``, and a new frame with error ``se_new`` is bounded by

        t_{n-1}^-1((1 + quantile) / 2) * sqrt(tau^2 + se_new^2 + (tau^2 + mean(se^2)) / n)

    — with every ``se_j = se_new`` exactly :func:`loo_deviation_bound` of the leave-one-out deviations (when
    ``S^2 >= se^2``). A frame of few points (large ``se_new``) gets a wider bound than the bank's frames' spread.

    Args:
        values: ``(n,)`` the real frames' values, ``n >= 2``.
        ses: ``(n,)`` their sampling standard errors (>= 0).
        se_new: the new frame's sampling standard error (>= 0).
        quantile: coverage in (0, 1).

    Raises:
        ValueError: fewer than 2 values, mismatched lengths, negative or non-finite inputs, quantile outside (0, 1).
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    v = np.asarray(values, np.float64).reshape(-1)
    s = np.asarray(ses, np.float64).reshape(-1)
    if v.size < 2 or s.shape != v.shape:
        raise ValueError(f"need n >= 2 values and as many standard errors, got {v.size} and {s.size}")
    if not (np.isfinite(v).all() and np.isfinite(s).all() and (s >= 0).all() and math.isfinite(se_new)):
        raise ValueError("values and standard errors must be finite, standard errors >= 0")
    if se_new < 0:
        raise ValueError(f"se_new must be >= 0, got {se_new}")
    n = v.size
    mean_se2 = float(np.mean(s * s))
    tau2 = max(0.0, float(v.var(ddof=1)) - mean_se2)
    return _t_quantile(0.5 * (1.0 + quantile), n - 1) * math.sqrt(tau2 + se_new**2 + (tau2 + mean_se2) / n)
