"""Exact nearest-neighbour search on NVIDIA Warp (``wp.HashGrid`` with radius growth).

Algorithm (exact for any pair of clouds, memory O(N + M), never an N x M matrix):

1. Both clouds are shifted by the centre of their joint bounding box in float64 and then cast to float32, so
   that georeferenced coordinates (UTM, 1e6 m) keep their precision on the device.
2. A ``wp.HashGrid`` is built on the reference cloud with a cell size ``h`` estimated from the reference's
   occupancy (a few points per occupied cell, see :func:`_choose_cell`).
3. One kernel pass queries every point with radius ``r = h``: a hash-grid query visits every cell overlapping
   the box ``[p - r, p + r]``, so every reference point within ``r`` is seen. A query whose best distance is
   ``<= r`` is therefore exact (any closer point would have been visited).
4. Unresolved queries (nothing within ``r``: far-apart clouds, outliers, single points) are queried again with
   ``r`` doubled, only them, rebuilding the grid with a cell size equal to the new radius when the radius has
   outgrown the cell. Once ``r`` exceeds the diagonal of the joint bounding box every reference point is
   visited, so the loop always ends with every query exact.
5. The kernels return the index of the nearest neighbour; distances are recomputed in float64 on the host
   from the original coordinates, so the result matches a float64 brute force up to float32 near-ties.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from .._warp import get_warp, resolve_device
from ..errors import SimGapInputError
from ._validate import as_points

__all__ = ["nearest_neighbors", "nearest_neighbor_distances", "nearest_neighbor_spacing", "MAX_GRID_DIM"]

log = logging.getLogger(__name__)

#: Upper bound of the hash-grid dimension per axis (128**3 cells = 16 MiB of cell ranges).
MAX_GRID_DIM = 128
# Mean points per occupied cell the cell-size estimate aims at: fewer means more empty cells per query,
# more means more distance evaluations per query (tuned with benchmarks/bench_chamfer.py).
_TARGET_POINTS_PER_CELL = 3.0
# First-round query radius as a fraction of the cell: 0.5 visits 2x2x2 cells instead of 3x3x3 and leaves
# only a few percent of queries for the second round (measured on LiDAR-like and uniform clouds).
_FIRST_RADIUS_FRACTION = 0.5
# A query is certified exact when best <= radius * (1 - eps): the margin absorbs float32 rounding of the
# cell coordinates inside the hash-grid query.
_CERTIFY_EPS = 1e-5

_kernels: dict[str, Any] = {}


def _get_kernels() -> dict[str, Any]:
    if _kernels:
        return _kernels
    wp = get_warp()

    @wp.kernel
    def _nn_query(
        grid: wp.uint64,
        ref: wp.array(dtype=wp.vec3),
        query: wp.array(dtype=wp.vec3),
        active: wp.array(dtype=wp.int32),
        radius: float,
        exclude_zero: int,
        best_d2: wp.array(dtype=float),
        best_i: wp.array(dtype=wp.int32),
    ):
        t = wp.tid()
        qi = active[t]
        p = query[qi]
        bd = best_d2[qi]
        bi = best_i[qi]
        it = wp.hash_grid_query(grid, p, radius)
        j = int(0)  # noqa: UP018 - int() makes a mutable Warp variable; a bare literal is a constant
        while wp.hash_grid_query_next(it, j):
            d = wp.length_sq(ref[j] - p)
            if d < bd:
                if exclude_zero == 0 or d > 0.0:
                    bd = d
                    bi = j
        best_d2[qi] = bd
        best_i[qi] = bi

    @wp.kernel
    def _gather_sorted(
        grid: wp.uint64,
        points: wp.array(dtype=wp.vec3),
        out_points: wp.array(dtype=wp.vec3),
        out_perm: wp.array(dtype=wp.int32),
    ):
        i = wp.tid()
        j = wp.hash_grid_point_id(grid, i)
        out_points[i] = points[j]
        out_perm[i] = j

    _kernels["nn_query"] = _nn_query
    _kernels["gather_sorted"] = _gather_sorted
    return _kernels


def _choose_cell(ref: np.ndarray) -> float:
    """Cell size (float32 space) giving about ``_TARGET_POINTS_PER_CELL`` reference points per occupied cell.

    Args:
        ref: (M, 3) float32 reference points.

    Returns:
        Positive cell size; 0.0 when the reference has no extent (the caller then uses its own minimum).
    """
    m = ref.shape[0]
    lo = ref.min(axis=0)
    ext = (ref.max(axis=0) - lo).astype(np.float64)
    if m < 2 or ext.max() <= 0.0:
        return 0.0
    # Flat or linear clouds would give a zero volume: floor thin extents at 1% of the largest.
    ext_v = np.maximum(ext, ext.max() * 1e-2)
    h0 = float(np.cbrt(np.prod(ext_v) / m))
    # LiDAR scans are surfaces, not volumes: measure how many cells the points really occupy and rescale
    # assuming occupancy grows like 1/h^2 (a surface); clamped so that odd clouds cannot derail it.
    dims = np.minimum(np.floor(ext / h0).astype(np.int64) + 1, 1 << 20)
    ijk = np.floor((ref - lo) / h0).astype(np.int64)
    np.minimum(ijk, dims - 1, out=ijk)
    keys = (ijk[:, 2] * dims[1] + ijk[:, 1]) * dims[0] + ijk[:, 0]
    # dims multiply to about m cells (h0 is the volume per point), so a bincount is cheap and beats a sort
    n_cells = int(np.prod(dims))
    occupied = int(np.count_nonzero(np.bincount(keys, minlength=1))) if n_cells <= 64 * m else np.unique(keys).size
    factor = math.sqrt(_TARGET_POINTS_PER_CELL * occupied / m)
    return h0 * min(max(factor, 0.25), 4.0)


def _grid_dims(extent: np.ndarray, cell: float) -> tuple[int, int, int]:
    d = np.clip(np.ceil(extent / cell).astype(np.int64) + 1, 1, MAX_GRID_DIM)
    return int(d[0]), int(d[1]), int(d[2])


def _cell_sorted(points_wp: Any, extent: np.ndarray, cell: float, device: str) -> tuple[Any, Any]:
    """Reorder points by hash-grid cell so that neighbouring points are neighbours in memory.

    Single-threaded CPU kernels are bound by cache misses on the reference points; sorting both clouds by
    cell (the order a hash-grid build computes anyway) halves the query time at 131k points.

    Args:
        points_wp: (N,) ``wp.vec3`` array.
        extent: (3,) float64 bounding-box extent of the points.
        cell: grid cell size.
        device: Warp device.

    Returns:
        (sorted (N,) ``wp.vec3`` array, (N,) ``wp.int32`` permutation: sorted[i] = points[perm[i]]).
    """
    wp = get_warp()
    grid = wp.HashGrid(*_grid_dims(extent, cell), device=device)
    grid.build(points_wp, cell)
    out = wp.empty_like(points_wp)
    perm = wp.empty(points_wp.shape[0], dtype=wp.int32, device=device)
    wp.launch(
        _get_kernels()["gather_sorted"], dim=points_wp.shape[0], inputs=[grid.id, points_wp, out, perm], device=device
    )
    return out, perm


def _nn_indices_f32(
    query32: np.ndarray, ref32: np.ndarray, device: str, *, exclude_zero: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Exact NN indices on float32 clouds already centred (see module docstring).

    Args:
        query32: (Q, 3) float32 query points.
        ref32: (M, 3) float32 reference points.
        device: resolved Warp device name.
        exclude_zero: ignore reference points at distance exactly 0 (a point's own copy).

    Returns:
        ((Q,) int64 index into ref32, -1 where no admissible neighbour exists; (Q,) float32 squared distance).
    """
    wp = get_warp()
    kern = _get_kernels()["nn_query"]
    q_n = query32.shape[0]
    both_lo = np.minimum(query32.min(axis=0), ref32.min(axis=0)).astype(np.float64)
    both_hi = np.maximum(query32.max(axis=0), ref32.max(axis=0)).astype(np.float64)
    diag = float(np.linalg.norm(both_hi - both_lo))
    ref_ext = (ref32.max(axis=0) - ref32.min(axis=0)).astype(np.float64)
    cell = max(_choose_cell(ref32), diag * 1e-4, 1e-6)
    # Past this radius the query box covers the whole joint bounding box: every point is visited.
    r_all = diag * (1.0 + 1e-4) + 1e-6

    q_ext = (query32.max(axis=0) - query32.min(axis=0)).astype(np.float64)
    with wp.ScopedDevice(device):
        ref_wp, ref_perm = _cell_sorted(wp.array(ref32, dtype=wp.vec3, device=device), ref_ext, cell, device)
        q_wp, q_perm = _cell_sorted(wp.array(query32, dtype=wp.vec3, device=device), q_ext, cell, device)
        best_d2 = wp.full(q_n, np.inf, dtype=wp.float32, device=device)
        best_i = wp.full(q_n, -1, dtype=wp.int32, device=device)
        grid = wp.HashGrid(*_grid_dims(ref_ext, cell), device=device)
        grid.build(ref_wp, cell)
        grid_cell = cell
        radius = cell * _FIRST_RADIUS_FRACTION
        active = np.arange(q_n, dtype=np.int32)
        rounds = 0
        while active.size:
            rounds += 1
            act_wp = wp.array(active, dtype=wp.int32, device=device)
            wp.launch(
                kern,
                dim=active.size,
                inputs=[grid.id, ref_wp, q_wp, act_wp, float(radius), int(exclude_zero), best_d2, best_i],
                device=device,
            )
            if radius >= r_all:
                break
            d2 = best_d2.numpy()[active]
            cert = radius * (1.0 - _CERTIFY_EPS)
            active = active[~(d2 <= cert * cert)]
            if not active.size:
                break
            radius = min(radius * 2.0, r_all)
            if radius > 2.0 * grid_cell:
                grid_cell = radius
                grid = wp.HashGrid(*_grid_dims(ref_ext, grid_cell), device=device)
                grid.build(ref_wp, grid_cell)
        idx_sorted = best_i.numpy().astype(np.int64)
        d2_sorted = best_d2.numpy()
        perm_r = ref_perm.numpy().astype(np.int64)
        perm_q = q_perm.numpy().astype(np.int64)
    # back from cell-sorted order to the callers' order
    idx = np.full(q_n, -1, dtype=np.int64)
    ok = idx_sorted >= 0
    idx[perm_q[ok]] = perm_r[idx_sorted[ok]]
    d2 = np.empty(q_n, dtype=np.float32)
    d2[perm_q] = d2_sorted
    if rounds > 1:
        log.debug("nearest neighbours: %d queries needed %d radius rounds", q_n, rounds)
    return idx, d2


def _centred_f32(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo = np.minimum(a.min(axis=0), b.min(axis=0))
    hi = np.maximum(a.max(axis=0), b.max(axis=0))
    c = 0.5 * (lo + hi)
    return (a - c).astype(np.float32), (b - c).astype(np.float32)


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
        exclude_coincident: ignore reference points that coincide with the query point (distance 0 after
            the float32 cast), e.g. to get a cloud's spacing from ``query is ref``.
        query_name, ref_name: names used in error messages.

    Returns:
        (distances (Q,) float64, indices (Q,) int64). With ``exclude_coincident`` a query with no admissible
        neighbour gets distance ``inf`` and index -1.

    Raises:
        SimGapInputError: empty, non-finite or wrongly shaped input.
    """
    q = as_points(query, query_name)
    r = as_points(ref, ref_name)
    dev = resolve_device(device)
    q32, r32 = _centred_f32(q, r)
    idx, _ = _nn_indices_f32(q32, r32, dev, exclude_zero=exclude_coincident)
    dist = np.full(q.shape[0], np.inf)
    ok = idx >= 0
    dist[ok] = np.linalg.norm(q[ok] - r[idx[ok]], axis=1)
    return dist, idx


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
