"""Earth mover's (Wasserstein-1) distances: exact 1-D, sliced for 3-D clouds, exact assignment for small clouds.

- :func:`wasserstein_1d`: exact W1 between two (weighted) 1-D samples, the integral of |F_u - F_v|; use it on
  per-point range, elevation or per-beam point counts ("density") of a real and a synthetic scan.
- :func:`sliced_wasserstein`: mean of the exact 1-D W1 over random unit projections of 3-D clouds. Projection
  on a unit vector is 1-Lipschitz, so every term, and thus the mean, is a lower bound of the 3-D W1 (EMD).
- :func:`exact_emd`: exact W1 between equal-size clouds with uniform weights through an optimal assignment
  (``scipy.optimize.linear_sum_assignment``); O(N^2) memory, meant for small clouds and as a test reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SimGapInputError
from ._validate import as_points, as_vector

__all__ = ["wasserstein_1d", "sliced_wasserstein", "exact_emd", "EXACT_EMD_MAX_POINTS"]

#: Largest cloud :func:`exact_emd` accepts (its cost matrix is N x N float64).
EXACT_EMD_MAX_POINTS = 3000


def _weights(w: Any, n: int, name: str) -> np.ndarray:
    if w is None:
        return np.full(n, 1.0 / n)
    arr = as_vector(w, name, nonnegative=True)
    if arr.shape[0] != n:
        raise SimGapInputError(f"{name}: has {arr.shape[0]} entries for {n} values")
    total = arr.sum()
    if total <= 0:
        raise SimGapInputError(f"{name}: weights sum to zero")
    return arr / total


def wasserstein_1d(u: Any, v: Any, u_weights: Any = None, v_weights: Any = None) -> float:
    """Exact Wasserstein-1 distance between two 1-D empirical distributions.

    Args:
        u: (N,) float values (e.g. ranges in metres).
        v: (M,) float values.
        u_weights: optional (N,) non-negative weights (need not be normalised).
        v_weights: optional (M,) non-negative weights.

    Returns:
        W1 in the units of the values; matches ``scipy.stats.wasserstein_distance``.
    """
    uv = as_vector(u, "u")
    vv = as_vector(v, "v")
    u_sorted, u_cum = _sorted_cumulative(uv, u_weights, "u_weights")
    v_sorted, v_cum = _sorted_cumulative(vv, v_weights, "v_weights")
    all_values = np.sort(np.concatenate([u_sorted, v_sorted]), kind="stable")
    deltas = np.diff(all_values)
    u_cdf = u_cum[np.searchsorted(u_sorted, all_values[:-1], "right")]
    v_cdf = v_cum[np.searchsorted(v_sorted, all_values[:-1], "right")]
    return float(np.sum(np.abs(u_cdf - v_cdf) * deltas))


def _sorted_cumulative(values: np.ndarray, weights: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """((N,) values in ascending order, (N + 1,) cumulative normalised weights in that order, starting at 0).

    Unweighted samples take a plain ``np.sort`` (SIMD, ~8x faster than a stable argsort on 100k values, which is
    what the gate's per-class roughness samples are): every weight is the same ``1 / N``, so the cumulative
    weights do not depend on the order, and equal floats are the same bits, so the sorted values are those of the
    stable sort. The one exception is -0.0 == 0.0, whose relative order only a stable sort keeps: such samples
    (and weighted ones) take the stable argsort.
    """
    w = _weights(weights, values.shape[0], name)
    if weights is None and not np.signbit(values[values == 0.0]).any():
        return np.sort(values), np.concatenate([[0.0], np.cumsum(w)])
    order = np.argsort(values, kind="stable")
    return values[order], np.concatenate([[0.0], np.cumsum(w[order])])


def _w1_equal_weights_sorted(us: np.ndarray, vs: np.ndarray) -> float:
    # equal-size uniform samples: W1 is the mean gap between order statistics
    if us.shape[0] == vs.shape[0]:
        return float(np.mean(np.abs(us - vs)))
    return wasserstein_1d(us, vs)


def sliced_wasserstein(a: Any, b: Any, *, n_projections: int = 64, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between two 3-D clouds (uniform weights).

    Args:
        a: (N, 3) float array or torch tensor (metres).
        b: (M, 3) float array or torch tensor (metres).
        n_projections: number of random unit directions.
        seed: seed of the directions (the same seed gives the same value).

    Returns:
        Mean over directions of the exact 1-D W1 of the projections, metres; <= exact W1 (EMD).
    """
    a64 = as_points(a, "a")
    b64 = as_points(b, "b")
    if int(n_projections) < 1:
        raise SimGapInputError(f"n_projections must be >= 1, got {n_projections}")
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(int(n_projections), 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    pa = np.sort(a64 @ dirs.T, axis=0)  # (N, P)
    pb = np.sort(b64 @ dirs.T, axis=0)  # (M, P)
    return float(np.mean([_w1_equal_weights_sorted(pa[:, k], pb[:, k]) for k in range(dirs.shape[0])]))


def exact_emd(a: Any, b: Any) -> float:
    """Exact earth mover's distance (W1, Euclidean ground cost) between equal-size clouds.

    Args:
        a: (N, 3) float array or torch tensor.
        b: (N, 3) float array or torch tensor, same N, N <= ``EXACT_EMD_MAX_POINTS``.

    Returns:
        Mean Euclidean distance of the optimal one-to-one matching (metres).

    Raises:
        SimGapInputError: different sizes or too many points.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    a64 = as_points(a, "a")
    b64 = as_points(b, "b")
    if a64.shape[0] != b64.shape[0]:
        raise SimGapInputError(f"exact_emd needs equal-size clouds, got a={a64.shape[0]} and b={b64.shape[0]} points")
    if a64.shape[0] > EXACT_EMD_MAX_POINTS:
        raise SimGapInputError(
            f"exact_emd is O(N^2): {a64.shape[0]} points exceed {EXACT_EMD_MAX_POINTS}; use sliced_wasserstein"
        )
    # cdist builds the (N, N) matrix directly; broadcasting a - b would first build an (N, N, 3) temporary (3x)
    cost = cdist(a64, b64)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())
