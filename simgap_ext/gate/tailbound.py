"""Upper prediction bounds of real-vs-real distances from a handful of leave-one-out values.

A bank calibrates each gate component from leave-one-frame-out distances: one value per real frame that holds the
class, so 2–40 values in practice. The empirical quantile of so few values is (close to) their maximum — the
99.5 % quantile of 9 values is the largest of them — and the largest of ``n`` exchangeable values is exceeded by
the next real frame with probability ``1 / (n + 1)``: 10 % for a 9-frame bank, whatever quantile was asked for.
Real scans then failed on a class whose d_max came from nine similar frames (MCD: a fence 1.68x the largest of
nine other frames' distances; KITTI-360: a building 3.1x the largest of seventeen).

This module replaces the maximum by a parametric **upper prediction bound**: the value that one *new* real
distance stays below with probability ``quantile``, from ``n`` values, accounting for the uncertainty of the
fitted spread (Student's t instead of the normal quantile), so that the bound widens as ``n`` shrinks:

- :func:`loo_deviation_bound`, for the **per-class** components: each value is the deviation of one real frame's
  class statistic (ring continuity, share, vote shares; height and roughness as W1 distances) from the other real
  frames' reference, ``d_j = |v_j - mean(v_-j)|``, and the gate will score a new frame's ``|v' - mean(v)|``
  against all ``n`` of them. With ``v ~ N(mu, sigma^2)``: ``d_j = n / (n - 1) * |v_j - mean(v)|``, so the sample
  variance of the ``v`` is ``S^2 = (n - 1) / n * mean(d^2)``, and ``(v' - mean(v)) / (S * sqrt(1 + 1/n))``
  follows Student's ``t_{n-1}``: ``bound = sqrt(mean(d^2)) * sqrt(1 - 1/n^2) * t_{n-1}^-1((1 + quantile) / 2)``,
  exact for a frame statistic compared with the bank's mean (ring continuity, plausibility) and taken as the
  model of the others. Real deviations scatter from 0 (many are ~0), which is what this model describes.
- :func:`lognormal_prediction_bound`, for the **scene** components: distances between a frame's and the other
  frames' whole-scene distributions (range W1, beam ratios, composition, apex offset), which stay well above 0
  with a spread proportional to their level. Modelled as ``log d ~ N(mu, sigma^2)``, both unknown: with ``m`` and
  ``s`` the mean and standard deviation of the ``n`` logs, ``(log d' - m) / (s * sqrt(1 + 1/n))`` follows
  ``t_{n-1}``, so ``bound = exp(m + t_{n-1}^-1(quantile) * s * sqrt(1 + 1/n))``.

Why two models (measured on the four real sets, docs/gate.md): a log-normal fitted to the per-class deviations is
swamped by their near-zero values (logs of ~0: plausibility d_max 2000x the empirical one), or, with the values
raised to the component's floor first, collapses onto the floor and passed none of the failing real scans; the
zero-centred deviation model fitted to scene distances, which sit well away from 0, puts the bound at ~3x their
RMS and let half of the 0.5 m shifts of KITTI-360 scans through.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["lognormal_prediction_bound", "loo_deviation_bound"]


def _t_quantile(p: float, df: int) -> float:
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def _values(values: Sequence[float] | np.ndarray, quantile: float) -> np.ndarray:
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    v = np.asarray(values, np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("no values to bound")
    if not np.isfinite(v).all() or (v < 0).any():
        raise ValueError("values must be finite and >= 0 (distances)")
    return v


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
    d = _values(deviations, quantile)
    n = d.size
    if n < 2:
        raise ValueError(f"a leave-one-out deviation bound needs at least 2 values, got {n}")
    rms = math.sqrt(float(np.mean(d * d)))
    return rms * math.sqrt(1.0 - 1.0 / n**2) * _t_quantile(0.5 * (1.0 + quantile), n - 1) if rms > 0.0 else 0.0


def lognormal_prediction_bound(values: Sequence[float] | np.ndarray, quantile: float, *, floor: float) -> float:
    """Upper prediction bound of one new value from ``n`` log-normal values (mean and spread unknown).

    Args:
        values: ``(n,)`` non-negative distances, ``n >= 1``.
        quantile: coverage in (0, 1).
        floor: values below it count as ``floor`` (> 0; the component's calibration floor: differences below it
            are within the reference's own sampling noise, and a log of ~0 would swamp the spread).

    Returns:
        ``exp(m + t_{n-1}^-1(quantile) * s * sqrt(1 + 1/n))`` over ``x = log(max(values, floor))``, ``m`` the mean
        and ``s`` the sample standard deviation of ``x``; the single value (at least ``floor``) when ``n == 1``.

    Raises:
        ValueError: empty, negative or non-finite values; quantile outside (0, 1); floor not finite and > 0.
    """
    v = _values(values, quantile)
    if not (math.isfinite(floor) and floor > 0.0):
        raise ValueError(f"floor must be finite and > 0, got {floor}")
    x = np.log(np.maximum(v, floor))
    if x.size == 1:
        return float(math.exp(x[0]))
    s = float(np.std(x, ddof=1))
    return float(math.exp(float(x.mean()) + _t_quantile(quantile, x.size - 1) * s * math.sqrt(1.0 + 1.0 / x.size)))
