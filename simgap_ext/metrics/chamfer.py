"""Exact Chamfer distance between two point clouds (docs/metrics.md, geometric component G).

``CD(A, B) = 1/2 (mean_a min_b d(a, b) + mean_b min_a d(a, b))`` with ``d`` Euclidean (metres) by default or
squared Euclidean (metres^2, the seed article's and pytorch3d's convention) with ``squared=True``. Nearest
neighbours are exact (see :mod:`._nn`: a KD-tree on the CPU, the Warp hash grid on CUDA); memory is O(N + M).

Density-normalised mode: every nearest-neighbour distance is divided by the local spacing of the *reference*
cloud ``a`` at the reference point of the pair (its distance to its own nearest distinct neighbour), so that
the dense near-range rings of a spinning LiDAR do not dominate the mean and far-range points, where real
spacing is metres, are not over-penalised. The result is dimensionless.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SimGapInputError
from ._nn import pair_nn, resolve_nn_device
from ._validate import as_points

__all__ = [
    "REDUCTIONS",
    "PairNN",
    "pair_nearest_neighbors",
    "directional_distances",
    "chamfer_distance",
    "chamfer_from_pair",
]

#: Supported ``reduction`` values of :func:`chamfer_distance`.
REDUCTIONS = ("mean", "sum")


class PairNN:
    """Nearest neighbours in both directions between clouds ``a`` (N points) and ``b`` (M points).

    Attributes:
        a, b: (N, 3) / (M, 3) float64 validated clouds.
        d_ab: (N,) float64 distance from each point of ``a`` to its nearest point of ``b``.
        idx_ab: (N,) int64 index into ``b`` of that neighbour.
        d_ba: (M,) float64 distance from each point of ``b`` to its nearest point of ``a``.
        idx_ba: (M,) int64 index into ``a`` of that neighbour.
    """

    __slots__ = ("a", "b", "d_ab", "idx_ab", "d_ba", "idx_ba")

    def __init__(self, a: np.ndarray, b: np.ndarray, device: str) -> None:
        self.a, self.b = a, b
        # float64 distances from the original coordinates (exact up to ties in the argmin)
        self.d_ab, self.idx_ab, self.d_ba, self.idx_ba = pair_nn(a, b, device)


def pair_nearest_neighbors(
    a: Any, b: Any, *, device: str | None = None, a_name: str = "a", b_name: str = "b"
) -> PairNN:
    """Validate two clouds and find exact nearest neighbours in both directions.

    Args:
        a: (N, 3) float array or torch tensor.
        b: (M, 3) float array or torch tensor.
        device: Warp device (``None``: CUDA when available, else CPU).
        a_name, b_name: names used in error messages.

    Returns:
        A :class:`PairNN`.
    """
    a64 = as_points(a, a_name)
    b64 = as_points(b, b_name)
    return PairNN(a64, b64, resolve_nn_device(device))


def directional_distances(
    a: Any, b: Any, *, squared: bool = False, device: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-point nearest-neighbour distances in both directions (for reports and heat maps).

    Args:
        a: (N, 3) float array or torch tensor.
        b: (M, 3) float array or torch tensor.
        squared: return squared distances (metres^2).
        device: Warp device.

    Returns:
        ((N,) float64 distance from each point of ``a`` to ``b``, (M,) float64 from each point of ``b`` to ``a``).
    """
    nn = pair_nearest_neighbors(a, b, device=device)
    if squared:
        return nn.d_ab**2, nn.d_ba**2
    return nn.d_ab, nn.d_ba


def chamfer_from_pair(
    nn: PairNN,
    *,
    squared: bool = False,
    reduction: str = "mean",
    density_normalized: bool = False,
    device: str | None = None,
) -> float:
    """Chamfer distance from precomputed nearest neighbours, so that Chamfer and DCD share one search.

    Args:
        nn: nearest neighbours of clouds ``a`` (N, 3) and ``b`` (M, 3) in both directions
            (:func:`pair_nearest_neighbors`); ``a`` is the reference in density-normalised mode.
        squared, reduction, density_normalized, device: as in :func:`chamfer_distance`.

    Returns:
        The distance as a Python float.

    Raises:
        SimGapInputError: unknown reduction; fewer than two distinct points in ``a`` in density-normalised mode.
    """
    if reduction not in REDUCTIONS:
        raise SimGapInputError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    d_ab, d_ba = nn.d_ab, nn.d_ba
    if density_normalized:
        from ._nn import nearest_neighbor_spacing

        spacing = nearest_neighbor_spacing(nn.a, device=device, name="a (reference)")
        d_ab = d_ab / spacing
        d_ba = d_ba / spacing[nn.idx_ba]
    if squared:
        d_ab, d_ba = d_ab**2, d_ba**2
    if reduction == "mean":
        return float(0.5 * (d_ab.mean() + d_ba.mean()))
    return float(d_ab.sum() + d_ba.sum())


def chamfer_distance(
    a: Any,
    b: Any,
    *,
    squared: bool = False,
    reduction: str = "mean",
    density_normalized: bool = False,
    device: str | None = None,
    a_name: str = "a",
    b_name: str = "b",
) -> float:
    """Exact symmetric Chamfer distance.

    Args:
        a: (N, 3) float array or torch tensor; the reference (real) cloud in density-normalised mode.
        b: (M, 3) float array or torch tensor.
        squared: use squared Euclidean distances (metres^2) instead of Euclidean (metres).
        reduction: ``"mean"``: ``1/2 (mean_a + mean_b)`` (docs/metrics.md); ``"sum"``: ``sum_a + sum_b``
            (pytorch3d's ``point_reduction="sum"``). Per-point values: :func:`directional_distances`.
        density_normalized: divide each distance by the local spacing of ``a`` at the pair's ``a`` point
            (dimensionless result; see module docstring).
        device: Warp device (``None``: CUDA when available, else CPU).
        a_name, b_name: names used in error messages.

    Returns:
        The distance as a Python float.

    Raises:
        SimGapInputError: empty, non-finite or wrongly shaped clouds; unknown reduction; fewer than two
            distinct points in ``a`` in density-normalised mode.
    """
    if reduction not in REDUCTIONS:
        raise SimGapInputError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    nn = pair_nearest_neighbors(a, b, device=device, a_name=a_name, b_name=b_name)
    return chamfer_from_pair(
        nn, squared=squared, reduction=reduction, density_normalized=density_normalized, device=device
    )
