"""Exact nearest-neighbour search on NVIDIA Warp (``wp.HashGrid`` with radius growth): the CUDA path.

On the CPU a KD-tree is faster on real scans (:mod:`._nn_tree`); :mod:`._nn` picks the backend.

Algorithm (exact for any pair of clouds, memory O(N + M), never an N x M matrix):

1. Both clouds are shifted by the centre of their joint bounding box in float64 and then cast to float32, so
   that georeferenced coordinates (UTM, 1e6 m) keep their precision on the device.
2. Each cloud gets a cell size ``h`` from its own occupancy (a few points per occupied cell, see
   :func:`_choose_cell`), is reordered by cell (hash-grid build + gather kernel, for cache locality) and gets a
   ``wp.HashGrid`` on the sorted copy; both Chamfer directions share them. A cloud with a very crowded cell
   first has its exact duplicates merged (k copies of one point would cost k^2 distance tests).
3. One kernel pass queries every point with radius ``r = h / 2``: a hash-grid query visits every cell
   overlapping the box ``[p - r, p + r]``, so every reference point within ``r`` is seen. A query whose best
   distance is ``<= r`` (less a float32 rounding slack) is therefore exact: a closer point would have been
   visited.
4. Unresolved queries (far-apart clouds, outliers, single points) run again, only them, with the radius
   doubled -- or, when they already found a candidate at distance ``d < 2r``, with radius ``d``, which
   certifies them in that pass. The grid is rebuilt with a larger cell when the radii have outgrown it. Once
   a radius exceeds the diagonal of the joint bounding box every reference point is visited, so the loop
   always ends with every query exact.
5. The kernels return the index of the nearest neighbour; distances are recomputed in float64 on the host
   from the original coordinates, so the result matches a float64 brute force up to float32 near-ties.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from .._warp import get_warp
from ._validate import bounds, pair_distances

__all__ = ["MAX_GRID_DIM", "warp_nn", "warp_pair_nn"]

log = logging.getLogger(__name__)

#: Upper bound of the hash-grid dimension per axis (128**3 cells = 16 MiB of cell ranges).
MAX_GRID_DIM = 128
# Mean points per occupied cell the cell-size estimate aims at: fewer means more empty cells per query,
# more means more distance evaluations per query (tuned with benchmarks/bench_chamfer.py).
_TARGET_POINTS_PER_CELL = 3.0
# First-round query radius as a fraction of the cell: 0.5 visits 2x2x2 cells instead of 3x3x3 and leaves
# only a few percent of queries for the second round (measured on LiDAR-like and uniform clouds).
_FIRST_RADIUS_FRACTION = 0.5
# A query is certified exact when best <= radius * (1 - eps) - slack, slack = _CERTIFY_ULPS float32 ulps of the
# largest coordinate: the hash grid computes cell coordinates as float32 (p +- r) / cell, whose rounding is
# relative to the coordinate, not to the radius, so a point just inside the radius could fall in an unvisited
# cell.
_CERTIFY_EPS = 1e-5
_CERTIFY_ULPS = 8.0
# Largest point count of one volume-per-point cell before exact duplicates are merged (see _GridCloud): real
# LiDAR scans stay near 1000 (dense near-range rings of a 128-beam scan); k copies of one point cost k^2 tests.
_DEDUPE_CROWD = 2048

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
        radii: wp.array(dtype=float),
        exclude_zero: int,
        best_d2: wp.array(dtype=float),
        best_i: wp.array(dtype=wp.int32),
    ):
        t = wp.tid()
        qi = active[t]
        p = query[qi]
        bd = best_d2[qi]
        bi = best_i[qi]
        it = wp.hash_grid_query(grid, p, radii[t])
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


def _choose_cell(ref: np.ndarray) -> tuple[float, int]:
    """Cell size (float32 space) giving about ``_TARGET_POINTS_PER_CELL`` reference points per occupied cell.

    Args:
        ref: (M, 3) float32 reference points.

    Returns:
        (cell, crowd): a positive cell size, 0.0 when the reference has no extent (the caller then uses its own
        minimum); and the largest number of points in one cell of the volume-per-point size ``h0`` (every point
        when there is no extent), which bounds how many copies of one point the cloud can hold.
    """
    m = ref.shape[0]
    lo, hi = bounds(ref)
    ext = (hi - lo).astype(np.float64)
    if m < 2 or ext.max() <= 0.0:
        return 0.0, m
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
    counts = np.bincount(keys, minlength=1) if n_cells <= 64 * m else np.unique(keys, return_counts=True)[1]
    occupied = int(np.count_nonzero(counts))
    factor = math.sqrt(_TARGET_POINTS_PER_CELL * occupied / m)
    return h0 * min(max(factor, 0.25), 4.0), int(counts.max())


def _unique_rows(pts32: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact duplicate rows removed.

    Args:
        pts32: (M, 3) float32 points.

    Returns:
        ((U, 3) float32 unique points, (U,) int64 index of each one's first copy in ``pts32``, (M,) int64 index
        of each point of ``pts32`` in the unique points).
    """
    rows = np.ascontiguousarray(pts32).view(np.dtype((np.void, 3 * pts32.dtype.itemsize))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return pts32[first], first.astype(np.int64), inverse.reshape(-1).astype(np.int64)


def _grid_dims(extent: np.ndarray, cell: float, n_points: int) -> tuple[int, int, int]:
    """Hash-grid dimensions: one bucket per cell across the extent, at most ``MAX_GRID_DIM`` per axis and about
    two buckets per point in total (every build clears all buckets, so empty ones cost time; cells beyond the
    dimensions wrap around and only add candidates that the distance test rejects)."""
    d = np.clip(np.ceil(extent / cell).astype(np.float64) + 1.0, 1.0, MAX_GRID_DIM)
    budget = max(2.0 * n_points, 4096.0)
    total = float(np.prod(d))
    if total > budget:
        d = np.maximum(np.floor(d / (total / budget) ** (1.0 / 3.0)), 1.0)
    return int(d[0]), int(d[1]), int(d[2])


class _GridCloud:
    """A float32 cloud on a Warp device, reordered by grid cell, with a hash grid for queries.

    Single-threaded CPU kernels are bound by cache misses on the reference points; sorting the cloud by cell
    (the order a hash-grid build computes anyway) halves the query time at 131k points.

    A query visits every point in the cells its box overlaps, so k copies of one point (an organised scan's
    no-return rays stored at the origin, repeated frames) would cost k^2 distance tests. When some cell is that
    crowded (more than ``_DEDUPE_CROWD`` points at the volume-per-point size) exact duplicates are merged first:
    a nearest neighbour is found once per distinct point and reported for every copy (as the first copy when
    the cloud is the reference).

    Attributes:
        n: number of distinct points on the device (the input size unless duplicates were merged).
        extent: (3,) float64 bounding-box extent.
        cell: cell size of ``grid``.
        points: (n,) ``wp.vec3`` cell-sorted points.
        perm: (n,) int64 NumPy permutation, ``points[i] = distinct[perm[i]]``.
        orig: (n,) int64 index into the input cloud of ``points[i]`` (its first copy).
        inverse: (M,) int64 index into the distinct points of every input point, or ``None`` when nothing was
            merged.
        grid: ``wp.HashGrid`` over ``points`` with cell size ``cell``.
    """

    def __init__(self, pts32: np.ndarray, device: str) -> None:
        wp = get_warp()
        self.device = device
        lo, hi = bounds(pts32)
        self.extent = (hi - lo).astype(np.float64)
        self.max_abs = float(max(np.abs(lo).max(), np.abs(hi).max()))
        diag = float(np.linalg.norm(self.extent))
        cell, crowd = _choose_cell(pts32)
        first: np.ndarray | None = None
        self.inverse: np.ndarray | None = None
        if crowd > _DEDUPE_CROWD:
            uniq, first, inverse = _unique_rows(pts32)
            if uniq.shape[0] < pts32.shape[0]:
                log.debug("nearest neighbours: merged %d duplicate points", pts32.shape[0] - uniq.shape[0])
                pts32, self.inverse = uniq, inverse
                cell = _choose_cell(pts32)[0]
            else:
                first = None
        self.n = pts32.shape[0]
        self.cell = max(cell, diag * 1e-4, 1e-6)
        raw = wp.array(pts32, dtype=wp.vec3, device=device)
        sort_grid = self._new_grid(self.cell)
        sort_grid.build(raw, self.cell)
        self.points = wp.empty_like(raw)
        perm = wp.empty(self.n, dtype=wp.int32, device=device)
        wp.launch(
            _get_kernels()["gather_sorted"], dim=self.n, inputs=[sort_grid.id, raw, self.points, perm], device=device
        )
        self.perm = perm.numpy().astype(np.int64)
        self.orig = self.perm if first is None else first[self.perm]
        self.grid = self._new_grid(self.cell)
        self.grid.build(self.points, self.cell)

    def _new_grid(self, cell: float) -> Any:
        return get_warp().HashGrid(*_grid_dims(self.extent, cell, self.n), device=self.device)

    def regrid(self, cell: float) -> None:
        """Rebuild ``grid`` with a larger cell (radius growth)."""
        self.cell = cell
        self.grid = self._new_grid(cell)
        self.grid.build(self.points, cell)


def _query_nn(ref: _GridCloud, query: _GridCloud, r_all: float, *, exclude_zero: bool) -> np.ndarray:
    """Exact NN of every ``query`` point in ``ref`` (see module docstring).

    Args:
        ref: reference cloud with its grid (may be regridded during radius growth).
        query: query cloud (only its cell-sorted points are used).
        r_all: a radius at which the query box covers both clouds entirely.
        exclude_zero: ignore reference points at distance exactly 0 (a point's own copy).

    Returns:
        (Q,) int64 index into the *original* order of ``ref`` for each query in its *original* order (Q counts
        every copy of a merged duplicate); -1 where no admissible neighbour exists.
    """
    wp = get_warp()
    kern = _get_kernels()["nn_query"]
    dev = ref.device
    q_n = query.n
    best_d2 = wp.full(q_n, np.inf, dtype=wp.float32, device=dev)
    best_i = wp.full(q_n, -1, dtype=wp.int32, device=dev)
    base_cell = ref.cell
    active = np.arange(q_n, dtype=np.int32)
    # at most ~14 doublings from the first radius to r_all, even for a single-point or zero-extent reference
    radii = np.full(q_n, max(ref.cell * _FIRST_RADIUS_FRACTION, r_all * 1e-4), dtype=np.float64)
    slack = _CERTIFY_ULPS * float(np.spacing(np.float32(max(ref.max_abs, query.max_abs, 1e-30))))
    rounds = 0
    while active.size:
        rounds += 1
        wp.launch(
            kern,
            dim=active.size,
            inputs=[
                ref.grid.id,
                ref.points,
                query.points,
                wp.array(active, dtype=wp.int32, device=dev),
                wp.array(radii.astype(np.float32), dtype=wp.float32, device=dev),
                int(exclude_zero),
                best_d2,
                best_i,
            ],
            device=dev,
        )
        d2 = best_d2.numpy()[active].astype(np.float64)
        cert = np.maximum(radii * (1.0 - _CERTIFY_EPS) - slack, 0.0)
        done = (d2 <= cert * cert) | (radii >= r_all)
        active, radii, d2 = active[~done], radii[~done], d2[~done]
        if not active.size:
            break
        # Double the radius, but a query that found a point at distance d < 2r needs only radius d (plus a
        # margin larger than the certification margin): any closer point lies within d, so that pass
        # certifies it. Never more than doubling: a box of radius d >> cell would visit thousands of cells.
        found = np.isfinite(d2)
        capped = (np.sqrt(np.where(found, d2, np.inf)) + 2.0 * slack) * (1.0 + 3.0 * _CERTIFY_EPS)
        radii = np.minimum(np.minimum(2.0 * radii, capped), r_all)
        grow = float(np.median(radii))
        if grow > 2.0 * ref.cell:
            ref.regrid(grow)
    if ref.cell != base_cell:
        ref.regrid(base_cell)  # the next direction / caller expects the density-based grid
    if rounds > 2:
        log.debug("nearest neighbours: %d queries needed %d radius rounds", q_n, rounds)
    idx_sorted = best_i.numpy().astype(np.int64)
    # back from cell-sorted order to the callers' order (and from distinct points to every copy)
    idx = np.full(q_n, -1, dtype=np.int64)
    ok = idx_sorted >= 0
    idx[query.perm[ok]] = ref.orig[idx_sorted[ok]]
    return idx if query.inverse is None else idx[query.inverse]


def _r_all(a32: np.ndarray, b32: np.ndarray) -> float:
    (alo, ahi), (blo, bhi) = bounds(a32), bounds(b32)
    lo = np.minimum(alo, blo).astype(np.float64)
    hi = np.maximum(ahi, bhi).astype(np.float64)
    # past this radius the query box covers the whole joint bounding box: every point is visited
    return float(np.linalg.norm(hi - lo)) * (1.0 + 1e-4) + 1e-6


def _nn_indices_f32(query32: np.ndarray, ref32: np.ndarray, device: str, *, exclude_zero: bool) -> np.ndarray:
    """Exact NN indices of float32 clouds already centred (see module docstring).

    Args:
        query32: (Q, 3) float32 query points.
        ref32: (M, 3) float32 reference points.
        device: resolved Warp device name.
        exclude_zero: ignore reference points at distance exactly 0 (a point's own copy).

    Returns:
        (Q,) int64 index into ref32; -1 where no admissible neighbour exists.
    """
    with get_warp().ScopedDevice(device):
        ref = _GridCloud(ref32, device)
        query = ref if query32 is ref32 else _GridCloud(query32, device)
        return _query_nn(ref, query, _r_all(query32, ref32), exclude_zero=exclude_zero)


def _pair_indices_f32(a32: np.ndarray, b32: np.ndarray, device: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact NN indices in both directions, sharing each cloud's sorted copy and grid.

    Returns:
        ((N,) int64 index into b32 for each point of a32, (M,) int64 index into a32 for each point of b32).
    """
    with get_warp().ScopedDevice(device):
        ga = _GridCloud(a32, device)
        gb = _GridCloud(b32, device)
        r_all = _r_all(a32, b32)
        return _query_nn(gb, ga, r_all, exclude_zero=False), _query_nn(ga, gb, r_all, exclude_zero=False)


def _centred_f32(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    (alo, ahi), (blo, bhi) = bounds(a), bounds(b)
    lo = np.minimum(alo, blo)
    hi = np.maximum(ahi, bhi)
    c = 0.5 * (lo + hi)
    return (a - c).astype(np.float32), (b - c).astype(np.float32)


def warp_nn(
    query: np.ndarray, ref: np.ndarray, device: str, *, exclude_zero: bool = False, self_query: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest neighbour in ``ref`` of every query point on a Warp device.

    Args:
        query: (Q, 3) float64 finite points.
        ref: (M, 3) float64 finite points.
        device: resolved Warp device name (``"cpu"``, ``"cuda:0"``).
        exclude_zero: ignore reference points at distance 0 after the float32 cast (a point's own copies).
        self_query: ``query`` and ``ref`` are the same cloud: one sorted copy and grid.

    Returns:
        ((Q,) float64 distances from the original coordinates, (Q,) int64 indices); ``inf`` / -1 where no
        admissible neighbour exists.
    """
    q32, r32 = _centred_f32(query, ref)
    if self_query:
        r32 = q32
    idx = _nn_indices_f32(q32, r32, device, exclude_zero=exclude_zero)
    dist = np.full(query.shape[0], np.inf)
    ok = idx >= 0
    dist[ok] = pair_distances(query[ok], ref[idx[ok]])
    return dist, idx


def warp_pair_nn(a: np.ndarray, b: np.ndarray, device: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact nearest neighbours in both directions on a Warp device.

    Args:
        a: (N, 3) float64 finite points.
        b: (M, 3) float64 finite points.
        device: resolved Warp device name.

    Returns:
        ((N,) float64 distance a -> b, (N,) int64 index into ``b``, (M,) float64 distance b -> a, (M,) int64
        index into ``a``); distances in float64 from the original coordinates.
    """
    a32, b32 = _centred_f32(a, b)
    i_ab, i_ba = _pair_indices_f32(a32, b32, device)
    return pair_distances(a, b[i_ab]), i_ab, pair_distances(b, a[i_ba]), i_ba
