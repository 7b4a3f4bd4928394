"""Exact nearest neighbours on the CPU with SimGap's own KD-tree, compiled by Numba (the default CPU search).

Why not pykdtree alone: between two real LiDAR scans nearest neighbours are 0.3-2 m apart while the points of one
scan lie centimetres apart on surfaces, so a query sits *off* the other scan's surfaces, and a tree whose pruning
uses split planes (pykdtree's cells) visits many leaves of empty space around it. This tree differs where that
costs time (``benchmarks/bench_chamfer.py``, docs/metrics.md):

- **tight boxes**: every node keeps the bounding box of its own points (computed bottom-up after the splits), so a
  node is pruned by the distance to its points' box, not to its cell;
- **seeded searches**: queries run in the leaf order of their own cloud's tree (for a pair both trees exist anyway;
  a cloud against itself uses the reference tree), so consecutive queries are neighbours in space, and each search
  starts with the previous query's nearest neighbour as its bound. The bound is a real candidate's distance, so the
  result stays exact; it only prunes more of the tree from the root down;
- **no copy of the points**: the tree is a permutation (int32) plus its nodes (boxes in float32, rounded outward so
  that they still contain their points), ~7 bytes per point, and reads the caller's float64 array through it. A
  scan's storage order is already local, so a leaf's points lie close in memory too.

Splits are sliding midpoints of the cell's widest side (one partition pass per node, like pykdtree); where that
leaves a side empty the node's tight box is split instead, and below depth :data:`_MEDIAN_DEPTH` (clouds with
exponentially spaced outliers) the count is halved, so the depth stays under 128 and the fixed stacks hold.
A cloud with more than :data:`_CROWDED` copies of one point makes a leaf that cannot be split; callers fall back to
pykdtree there (:func:`crowded`).

Exactness: distances are ``sqrt(dx*dx + dy*dy + dz*dz)`` in float64 of the validated coordinates, the brute
force's formula, so results equal a float64 brute force up to exact ties (which neighbour of two at the same
distance is returned may differ).

Parallelism: the compiled functions release the GIL (``nogil``); queries are cut into blocks that a thread pool of
one thread per available core runs, both directions of a pair in the same pool, and the two trees of a pair are
built on two threads. No Numba threading layer is involved, so the search is safe from any thread and in any
process. The first call in a fresh environment compiles the functions (a few seconds, logged); the machine code
is cached on disk (Numba's ``cache=True``: the package's ``__pycache__``, or Numba's user cache directory when
that is read-only).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

__all__ = ["JitTree", "available", "build_tree", "crowded", "jit_nn", "jit_pair_nn"]

_LOG = logging.getLogger(__name__)

#: Points per leaf. 32 measured fastest on KITTI-360 pairs (16: 1.1x the time, 8: 1.3x); boxes are tight, so a
#: larger leaf costs few extra distance evaluations and saves box tests.
LEAF = 32
#: Below this depth a node whose sliding midpoint leaves a side empty is split at its count's median instead.
_MEDIAN_DEPTH = 64
#: Stack depth of the build and of every search; depth is bounded by _MEDIAN_DEPTH + log2(N) + 1 < 100.
_STACK = 128
#: A leaf this large holds copies of one point (the only way a leaf outgrows LEAF): pykdtree handles those.
_CROWDED = 4 * LEAF
#: Queries per block handed to a thread: enough to amortise the hand-off (~20 us), small enough to balance. A search
#: of one block runs in the calling thread (no pool to start).
_BLOCK = 4096
#: Smallest pair (points of the smaller cloud) whose two trees are built on two threads: a smaller build takes less
#: than starting the thread.
_PARALLEL_BUILD_MIN = 16384

_kernels: dict[str, object] = {}


class JitTree(NamedTuple):
    """A built tree over the caller's ``points`` (M, 3) float64 (referenced, not copied). ``index`` (M,) int32 the
    points' permutation into leaf order; ``lo``/``hi`` (K, 3) float32 node boxes (the tight float64 boxes rounded
    outward to float32); ``left`` (K,) int32 first child (-1: leaf, children ``left`` and ``left + 1``);
    ``start``/``end`` (K,) int32 each node's range in ``index``; ``max_leaf`` the largest leaf's size."""

    points: np.ndarray
    index: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    left: np.ndarray
    start: np.ndarray
    end: np.ndarray
    max_leaf: int


def available() -> bool:
    """Whether Numba imports (it is a dependency; a Kit Python without it falls back to pykdtree)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _compile() -> dict[str, object]:
    """The compiled kernels, imported on first use so that importing SimGap never imports Numba."""
    if not _kernels:
        from . import _nn_jit_kernels as kernels

        _kernels.update(build=kernels.build, search=kernels.search)
    return _kernels


def build_tree(points: np.ndarray) -> JitTree:
    """Build the tree of ``points``: (M, 3) float64 C-contiguous finite, 1 <= M < 2^31."""
    if not 1 <= points.shape[0] < 2**31:
        raise ValueError(f"the KD-tree needs 1 to 2^31 - 1 points, got {points.shape[0]}")
    build = _compile()["build"]
    t0 = time.perf_counter()
    index, lo, hi, left, start, end, max_leaf = build(points, LEAF, _MEDIAN_DEPTH, _STACK)  # type: ignore[operator]
    if time.perf_counter() - t0 > 2.0:  # only a first call in a fresh environment compiles for that long
        _LOG.info("compiled SimGap's KD-tree (once per environment; cached on disk)")
    return JitTree(points, index, lo, hi, left, start, end, int(max_leaf))


def crowded(tree: JitTree) -> bool:
    """Whether the tree holds a leaf of coincident copies too large to scan per query (pykdtree then)."""
    return tree.max_leaf > _CROWDED


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)


def _run_searches(jobs: list[tuple[JitTree, np.ndarray, np.ndarray, bool]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each job (tree, queries (Q, 3) float64, the order (Q,) int32 to search their rows in or empty for storage
    order, exclude_zero) -> ((Q,) float64 distances, (Q,) int64 indices into the tree's points) per query row,
    every job's blocks on one pool. The kernel reads the queries where they are and writes each answer to its row:
    no copies."""
    search = _compile()["search"]
    outs = [(np.empty(q.shape[0]), np.empty(q.shape[0], np.int64)) for _, q, _, _ in jobs]
    tasks = []
    for (tree, q, q_at, excl), (d, i) in zip(jobs, outs, strict=True):
        args = (tree.points, tree.index, tree.lo, tree.hi, tree.left, tree.start, tree.end, q, q_at)
        tasks += [(args, s, min(s + _BLOCK, q.shape[0]), excl, d, i) for s in range(0, q.shape[0], _BLOCK)]
    n_threads = min(_threads(), len(tasks))
    if n_threads <= 1:
        for args, s, e, excl, d, i in tasks:
            search(*args, s, e, excl, _STACK, d, i)  # type: ignore[operator]
        return outs
    with ThreadPoolExecutor(n_threads) as pool:
        futures = [pool.submit(search, *args, s, e, excl, _STACK, d, i) for args, s, e, excl, d, i in tasks]
        for f in futures:
            f.result()
    return outs


_IN_ORDER = np.empty(0, np.int32)


def jit_pair_nn(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Exact nearest neighbours in both directions, or ``None`` when a cloud is too crowded with copies.

    Args:
        a: (N, 3) float64 C-contiguous finite points, N >= 1.
        b: (M, 3) float64 C-contiguous finite points, M >= 1.

    Returns:
        ((N,) float64 distance a -> b, (N,) int64 index into ``b``, (M,) float64 distance b -> a, (M,) int64
        index into ``a``), or ``None`` (the caller uses pykdtree).
    """
    if min(a.shape[0], b.shape[0]) >= _PARALLEL_BUILD_MIN:
        with ThreadPoolExecutor(2) as pool:
            fa, fb = pool.submit(build_tree, a), pool.submit(build_tree, b)
            tree_a, tree_b = fa.result(), fb.result()
    else:
        tree_a, tree_b = build_tree(a), build_tree(b)
    if crowded(tree_a) or crowded(tree_b):
        return None
    # each cloud queries in its own tree's leaf order: neighbours in space, so the seeds are close
    (d_ab, i_ab), (d_ba, i_ba) = _run_searches([(tree_b, a, tree_a.index, False), (tree_a, b, tree_b.index, False)])
    return d_ab, i_ab, d_ba, i_ba


def jit_nn(
    query: np.ndarray, ref: np.ndarray, *, exclude_zero: bool = False, order: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact nearest neighbour in ``ref`` of every query point, or ``None`` when ``ref`` is too crowded.

    Args:
        query: (Q, 3) float64 C-contiguous finite points.
        ref: (M, 3) float64 C-contiguous finite points, M >= 1.
        exclude_zero: ignore reference points at distance exactly 0 from the query point.
        order: (Q,) permutation to search the queries in (spatially coherent), ``None`` for storage order. When
            ``query is ref`` the tree's own order is used instead.

    Returns:
        ((Q,) float64 distances, (Q,) int64 indices into ``ref``; ``inf`` / -1 where no admissible neighbour
        exists), or ``None`` (the caller uses pykdtree).
    """
    tree = build_tree(ref)
    if crowded(tree):
        return None
    if query is ref:
        q_at = tree.index
    elif order is None:
        q_at = _IN_ORDER
    else:
        q_at = order.astype(np.int32, copy=False)
    ((d, i),) = _run_searches([(tree, query, q_at, exclude_zero)])
    return d, i
