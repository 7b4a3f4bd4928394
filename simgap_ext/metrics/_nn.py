"""Exact nearest neighbours: public entry points and the choice of search backend.

Two exact backends, picked per device:

- CPU: a KD-tree (:mod:`._nn_tree`: SimGap's own, :mod:`._nn_jit`, from 32,768 points; pykdtree below) -- fastest
  on real LiDAR pairs, whose nearest-neighbour distances span centimetres to tens of metres;
- CUDA: the Warp hash grid with radius growth (:mod:`._nn_warp`), one thread per query.

``SIMGAP_NN_BACKEND=warp`` forces the Warp grid on the CPU too (tests and benchmarks compare both); ``tree``
forces the KD-tree on any device (the search then runs on the host).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._warp import resolve_device
from ..errors import SimGapInputError
from ._validate import as_points

__all__ = [
    "BACKENDS",
    "nn_backend",
    "resolve_nn_device",
    "pair_nn",
    "nearest_neighbors",
    "nearest_neighbor_distances",
    "nearest_neighbor_spacing",
]

#: Values of ``SIMGAP_NN_BACKEND``.
BACKENDS = ("auto", "tree", "warp")


def nn_backend(device: str) -> str:
    """The search backend for a resolved device: ``"tree"`` or ``"warp"``.

    Raises:
        SimGapInputError: ``SIMGAP_NN_BACKEND`` names no backend.
    """
    forced = os.environ.get("SIMGAP_NN_BACKEND", "auto").strip().lower() or "auto"
    if forced not in BACKENDS:
        raise SimGapInputError(f"SIMGAP_NN_BACKEND must be one of {BACKENDS}, got {forced!r}")
    if forced != "auto":
        return forced
    return "tree" if device == "cpu" else "warp"


def resolve_nn_device(device: str | None) -> str:
    """``resolve_device`` without importing Warp when the caller names the CPU (the KD-tree needs no Warp)."""
    return "cpu" if device == "cpu" else resolve_device(device)


def pair_nn(a: np.ndarray, b: np.ndarray, device: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact nearest neighbours in both directions of validated clouds.

    Args:
        a: (N, 3) float64 finite points.
        b: (M, 3) float64 finite points.
        device: resolved Warp device name.

    Returns:
        ((N,) float64 distance a -> b, (N,) int64 index into ``b``, (M,) float64 distance b -> a, (M,) int64
        index into ``a``).
    """
    if nn_backend(device) == "tree":
        from ._nn_tree import tree_pair_nn

        return tree_pair_nn(np.ascontiguousarray(a), np.ascontiguousarray(b))
    from ._nn_warp import warp_pair_nn

    return warp_pair_nn(a, b, device)


def nearest_neighbors(
    query: Any,
    ref: Any,
    *,
    device: str | None = None,
    exclude_coincident: bool = False,
    query_name: str = "query",
    ref_name: str = "ref",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean nearest neighbour in ``ref`` of every point of ``query``.

    Args:
        query: (Q, 3) float array or torch tensor.
        ref: (M, 3) float array or torch tensor.
        device: Warp device (``None``: CUDA when available, else CPU).
        exclude_coincident: ignore reference points that coincide with the query point (distance 0), e.g. to
            get a cloud's spacing from ``query is ref``.
        query_name, ref_name: names used in error messages.

    Returns:
        (distances (Q,) float64, indices (Q,) int64). With ``exclude_coincident`` a query with no admissible
        neighbour gets distance ``inf`` and index -1.

    Raises:
        SimGapInputError: empty, non-finite or wrongly shaped input.
    """
    q = as_points(query, query_name)
    r = q if query is ref else as_points(ref, ref_name)
    dev = resolve_nn_device(device)
    if nn_backend(dev) == "tree":
        from ._nn_tree import tree_nn

        return tree_nn(np.ascontiguousarray(q), np.ascontiguousarray(r), exclude_zero=exclude_coincident)
    from ._nn_warp import warp_nn

    return warp_nn(q, r, dev, exclude_zero=exclude_coincident, self_query=query is ref)


def nearest_neighbor_distances(query: Any, ref: Any, *, device: str | None = None) -> np.ndarray:
    """Exact Euclidean distance from each query point to its nearest reference point.

    Args:
        query: (Q, 3) float array or torch tensor.
        ref: (M, 3) float array or torch tensor.
        device: Warp device (``None``: CUDA when available, else CPU).

    Returns:
        (Q,) float32 distances (metres when the inputs are in metres).
    """
    dist, _ = nearest_neighbors(query, ref, device=device)
    return dist.astype(np.float32)


def nearest_neighbor_spacing(points: Any, *, device: str | None = None, name: str = "points") -> np.ndarray:
    """Local point spacing: distance from each point to its nearest *distinct* point of the same cloud.

    Args:
        points: (N, 3) float array or torch tensor with at least two distinct points.
        device: Warp device.
        name: name used in error messages.

    Returns:
        (N,) float64 spacing, > 0.

    Raises:
        SimGapInputError: fewer than two distinct points.
    """
    dist, _ = nearest_neighbors(points, points, device=device, exclude_coincident=True, query_name=name, ref_name=name)
    if not np.isfinite(dist).all():
        raise SimGapInputError(f"{name}: local spacing needs at least two distinct points")
    return dist
