"""Exact nearest-neighbour search on the CPU with a KD-tree: SimGap's own (:mod:`._nn_jit`, Numba) on clouds of
:data:`_JIT_MIN` points and more, pykdtree below that and where Numba is missing, scipy's cKDTree when pykdtree is
missing too. The rest of this docstring is about the pykdtree / cKDTree path; :mod:`._nn_jit` explains its tree.

Why a tree on the CPU and not the Warp hash grid: between two real LiDAR scans nearest neighbours are a
median 0.4 m apart with a 99th percentile of ~12 m, so a fixed-radius grid leaves most queries for many
radius doublings, while a KD-tree's descent adapts to any spacing. On a KITTI-360 pair (120k points) pykdtree
answers both directions in ~0.19 s on 2 cores, the Warp CPU grid in ~2.1 s (``benchmarks/bench_chamfer.py``).

Search is in float64 on the validated coordinates (no centring or float32 cast), so results equal a float64
brute force up to exact ties. Query sets stored in no spatial order (a shuffled or uniformly sampled cloud) run
in spatial (Morton, 10 bits per axis) order, in chunks gathered from the caller's array and scattered back:
consecutive queries then descend the same branches and touch the same leaves, which keeps the tree in cache (2-2.5x
faster on uniform clouds). LiDAR scans, stored in scan order, are already coherent and skip it (the sort cost more
than it saved, measured 1.05-1.2x slower). Chunks keep the extra memory at one permutation instead of a sorted copy.
Parallelism: pykdtree splits each query over OpenMP threads and releases the
GIL while building, so the two trees of a pair are built on two threads; cKDTree queries use
``workers=-1``. cKDTree is built with ``balanced_tree=False, compact_nodes=False`` (sliding-midpoint splits,
~2x faster to build and query on scans whose density varies by orders of magnitude).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import SimGapInputError

__all__ = ["KDTREES", "tree_backend", "tree_nn", "tree_pair_nn"]

# Smallest cloud (both of a pair) searched by the Numba tree by default. Below it pykdtree is as fast or faster: a
# pair of 16k-point subsampled scans took 1.15-1.26x pykdtree's time with SimGap's tree, 24k 0.94-1.18x, 32k
# 0.86-1.03x, 48k 0.83-1.07x (quiet 2-core machine, interleaved rounds; docs/metrics.md). ``SIMGAP_KDTREE=numba``
# uses it at every size.
_JIT_MIN = 32768
# pykdtree's default; 8 and 32 measured 10% slower / equal on KITTI-360 pairs
_LEAFSIZE = 16
# Below this many queries the tree stays in cache anyway and the ordering costs more than it saves (uniform 16k
# points: 1.36x slower ordered, 65k: 0.72x of pykdtree's time).
_ORDER_MIN = 1 << 15
# Smallest cloud whose two trees are built on two threads: below it the thread's start and OpenMP's workers, still
# spinning after the previous query, cost more than the half build saved (KITTI-360 pairs on 2 cores: 16k points
# 1-7 % slower on two threads, 65k 1-3 % faster, 120k and 1M 3-10 % faster).
_PARALLEL_BUILD_MIN = 1 << 15
# Queries gathered per call: many of OpenMP's static chunks of 100, and under 1 MB of temporaries.
_CHUNK = 1 << 14
_MORTON_BITS = 10
_SPREAD = np.zeros(1 << _MORTON_BITS, np.uint32)
for _b in range(_MORTON_BITS):
    _SPREAD |= ((np.arange(1 << _MORTON_BITS, dtype=np.uint32) >> _b) & 1) << (3 * _b)


#: Values of ``SIMGAP_KDTREE``.
KDTREES = ("auto", "numba", "pykdtree", "ckdtree")


def _forced() -> str:
    forced = os.environ.get("SIMGAP_KDTREE", "auto").strip().lower() or "auto"
    if forced not in KDTREES:
        raise SimGapInputError(f"SIMGAP_KDTREE must be one of {KDTREES}, got {forced!r}")
    return forced


def tree_backend(n_points: int | None = None) -> str:
    """Name of the KD-tree for a search whose smaller cloud has ``n_points`` points (``None``: a large one):
    ``"numba"`` (SimGap's tree), ``"pykdtree"`` or ``"ckdtree"``. ``SIMGAP_KDTREE`` forces one (``numba`` at
    every size; a library that is not installed falls back as in ``auto``).

    Raises:
        SimGapInputError: ``SIMGAP_KDTREE`` names no tree.
    """
    forced = _forced()
    if forced == "numba" or (forced == "auto" and (n_points is None or n_points >= _JIT_MIN)):
        from ._nn_jit import available

        if available():
            return "numba"
    return _library_backend()


def _library_backend() -> str:
    """pykdtree, or cKDTree where pykdtree is missing or ``SIMGAP_KDTREE=ckdtree``."""
    if _forced() == "ckdtree":
        return "ckdtree"
    try:
        import pykdtree.kdtree  # noqa: F401
    except ImportError:  # pragma: no cover - pykdtree is a dependency; scipy is the fallback
        return "ckdtree"
    return "pykdtree"


def _build(points: np.ndarray, backend: str) -> Any:
    if backend == "pykdtree":
        from pykdtree.kdtree import KDTree

        return KDTree(points, leafsize=_LEAFSIZE)
    from scipy.spatial import cKDTree

    return cKDTree(points, leafsize=_LEAFSIZE, balanced_tree=False, compact_nodes=False, copy_data=False)


def _query(
    tree: Any, query: np.ndarray, k: int, backend: str, order: np.ndarray | None | bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(Q,) or (Q, k) float64 distances and int64 indices; missing neighbours get ``inf`` / -1. ``order``: the
    query order (:func:`_query_order`), ``True`` to compute it here, ``None`` for storage order. The results are in
    the caller's order."""
    if order is True:
        order = _query_order(query)
    if order is None:
        return _query_raw(tree, query, k, backend)
    q_n = query.shape[0]
    shape = (q_n,) if k == 1 else (q_n, k)
    d = np.empty(shape, np.float64)
    i = np.empty(shape, np.int64)
    for start in range(0, q_n, _CHUNK):
        sel = order[start : start + _CHUNK]
        d[sel], i[sel] = _query_raw(tree, query[sel], k, backend)
    return d, i


def _query_order(query: np.ndarray) -> np.ndarray | None:
    """The Morton order to search ``query`` in, or ``None`` when storage order is as good (small or coherent)."""
    if query.shape[0] < _ORDER_MIN or _is_coherent(query):
        return None
    return _spatial_order(query)


def _is_coherent(points: np.ndarray) -> bool:
    """Whether neighbours in storage order are neighbours in space: the median step between consecutive points (a
    sample of up to 4096 steps) is within 4x the spacing a cloud of this size would have if it filled the box of
    its 1st-99th percentiles (outliers do not inflate it). Scan-ordered LiDAR steps are a fraction of that; a
    randomly ordered cloud's are a fraction of its extent."""
    n = points.shape[0]
    at = np.linspace(0, n - 2, min(n - 1, 4096)).astype(np.int64)
    lo, hi = np.percentile(points[at], [1.0, 99.0], axis=0)
    ext = hi - lo
    ext = np.maximum(ext, 1e-3 * max(float(ext.max()), 1e-300))  # a flat or linear cloud still has a volume
    spacing = float(np.prod(ext) / n) ** (1.0 / 3.0)
    steps = np.sqrt(((points[at + 1] - points[at]) ** 2).sum(axis=1))
    return float(np.median(steps)) <= 4.0 * spacing


def _spatial_order(points: np.ndarray) -> np.ndarray:
    """(N,) int32/int64 permutation sorting ``points`` by Morton code on a 2^10 grid over their bounding box."""
    lo = np.array([points[:, j].min() for j in range(3)])
    span = max(float(max(points[:, j].max() - lo[j] for j in range(3))), 1e-300)
    scale = ((1 << _MORTON_BITS) - 1) / span
    code = np.zeros(points.shape[0], np.uint32)
    for start in range(0, points.shape[0], _CHUNK):  # in row chunks: the temporaries stay a few hundred kB
        part = points[start : start + _CHUNK]
        out = code[start : start + _CHUNK]
        for j in range(3):
            cell = ((part[:, j] - lo[j]) * scale).astype(np.uint32)
            np.minimum(cell, (1 << _MORTON_BITS) - 1, out=cell)
            out |= _SPREAD[cell] << np.uint32(j)
    order = np.argsort(code)
    return order.astype(np.int32) if points.shape[0] < 2**31 else order


def _query_raw(tree: Any, query: np.ndarray, k: int, backend: str) -> tuple[np.ndarray, np.ndarray]:
    if backend == "pykdtree":
        d, i = tree.query(query, k=k)
        i = i.astype(np.int64)
        miss = i >= tree.n
    else:
        d, i = tree.query(query, k=k, workers=-1)
        i = i.astype(np.int64)
        miss = i >= tree.n
    if miss.any():
        d = np.where(miss, np.inf, d)
        i[miss] = -1
    return d, i


def tree_nn(query: np.ndarray, ref: np.ndarray, *, exclude_zero: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest neighbour in ``ref`` of every query point.

    Args:
        query: (Q, 3) float64 C-contiguous finite points.
        ref: (M, 3) float64 C-contiguous finite points, M >= 1.
        exclude_zero: ignore reference points at distance exactly 0 from the query point (its own copies).

    Returns:
        ((Q,) float64 distances, (Q,) int64 indices into ``ref``); ``inf`` / -1 where no admissible neighbour
        exists (every reference point coincides with the query).
    """
    backend = tree_backend(min(query.shape[0], ref.shape[0]))
    if backend == "numba":
        from ._nn_jit import jit_nn

        order = None if query is ref else _query_order(query)
        res = jit_nn(query, ref, exclude_zero=exclude_zero, order=order)
        if res is not None:
            return res
        backend = _library_backend()  # a cloud of many copies of one point: pykdtree's copy handling
    tree = _build(ref, backend)
    if not exclude_zero:
        return _query(tree, query, 1, backend)
    if ref.shape[0] == 1:
        d, i = _query(tree, query, 1, backend)
        bad = d == 0.0
        d[bad], i[bad] = np.inf, -1
        return d, i
    d2, i2 = _query(tree, query, 2, backend)
    # the first neighbour unless it coincides; then the second unless it coincides too
    second = d2[:, 0] == 0.0
    d = np.where(second, d2[:, 1], d2[:, 0])
    i = np.where(second, i2[:, 1], i2[:, 0])
    crowded = d == 0.0
    if crowded.any():
        # three or more copies of a point: search the distinct points, where at most one can coincide
        d[crowded], i[crowded] = _nn_distinct(query[crowded], ref, backend)
    return d, i


def _nn_distinct(query: np.ndarray, ref: np.ndarray, backend: str) -> tuple[np.ndarray, np.ndarray]:
    """Nearest reference point at distance > 0, searched among ``ref``'s distinct points (first copies)."""
    _, first = np.unique(ref, axis=0, return_index=True)
    first = np.sort(first)
    uniq = np.ascontiguousarray(ref[first])
    q_n = query.shape[0]
    if uniq.shape[0] == 1:
        return np.full(q_n, np.inf), np.full(q_n, -1, dtype=np.int64)
    d2, i2 = _query(_build(uniq, backend), query, 2, backend)
    second = d2[:, 0] == 0.0
    d = np.where(second, d2[:, 1], d2[:, 0])
    i = np.where(second, i2[:, 1], i2[:, 0])
    return d, np.where(i >= 0, first[np.maximum(i, 0)], -1)


def tree_pair_nn(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact nearest neighbours in both directions between two clouds.

    Args:
        a: (N, 3) float64 C-contiguous finite points.
        b: (M, 3) float64 C-contiguous finite points.

    Returns:
        ((N,) float64 distance a -> b, (N,) int64 index into ``b``, (M,) float64 distance b -> a, (M,) int64
        index into ``a``).
    """
    backend = tree_backend(min(a.shape[0], b.shape[0]))
    if backend == "numba":
        from ._nn_jit import jit_pair_nn

        res = jit_pair_nn(a, b)
        if res is not None:
            return res
        backend = _library_backend()  # a cloud of many copies of one point: pykdtree's copy handling
    # Orders first, while no tree or result exists: their sort temporaries then do not add to the peak.
    order_a, order_b = _query_order(a), _query_order(b)
    if backend == "pykdtree" and min(a.shape[0], b.shape[0]) >= _PARALLEL_BUILD_MIN:
        # tree builds are single-threaded and release the GIL: build both at once; the queries are
        # already spread over every core by OpenMP
        with ThreadPoolExecutor(2) as pool:
            fa, fb = pool.submit(_build, a, backend), pool.submit(_build, b, backend)
            tree_a, tree_b = fa.result(), fb.result()
    else:
        tree_a, tree_b = _build(a, backend), _build(b, backend)
    d_ab, i_ab = _query(tree_b, a, 1, backend, order_a)
    del tree_b, order_a  # ~10 MB per 1M points that the second direction does not need
    d_ba, i_ba = _query(tree_a, b, 1, backend, order_b)
    return d_ab, i_ab, d_ba, i_ba
