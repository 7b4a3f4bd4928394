"""SimGap's Numba KD-tree (``simgap_ext.metrics._nn_jit``): its structure, its search against float64 brute force on
clouds built to stress it (exponentially spaced points, bad seeds, coincident copies, real scans), concurrent use
from threads, and which tree the CPU search picks."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

from simgap_ext.errors import SimGapInputError  # noqa: E402
from simgap_ext.metrics import _nn_jit, _nn_tree, nearest_neighbor_spacing  # noqa: E402

_KITTI360 = Path(__file__).parent / "data" / "kitti360_nn"


def _scan(frame: str) -> np.ndarray:
    return np.fromfile(_KITTI360 / f"{frame}_every10th.bin", np.float32).reshape(-1, 4)[:, :3].astype(np.float64)


def brute_nn(q: np.ndarray, r: np.ndarray, *, exclude_zero: bool = False) -> np.ndarray:
    """float64 brute-force nearest distances, chunked (memory 256 x M)."""
    out = np.empty(len(q))
    for s in range(0, len(q), 256):
        dd = np.linalg.norm(q[s : s + 256, None, :] - r[None], axis=-1)
        if exclude_zero:
            dd[dd == 0] = np.inf
        out[s : s + 256] = dd.min(axis=1)
    return out


def _depth(tree: _nn_jit.JitTree) -> int:
    depth = np.zeros(tree.left.shape[0], np.int64)
    for node in range(tree.left.shape[0]):  # children always come after their parent
        c = tree.left[node]
        if c >= 0:
            depth[c] = depth[c + 1] = depth[node] + 1
    return int(depth.max())


def test_tree_structure_on_a_real_scan():
    """The tree is a partition of the input, which it references and never changes: ``index`` is a permutation,
    every node's box is the box of its points rounded outward to float32, children split their parent's range,
    leaves hold at most LEAF points."""
    pts = np.ascontiguousarray(_scan("0000002000"))
    before = pts.copy()
    tree = _nn_jit.build_tree(pts)
    assert tree.points is pts and np.array_equal(pts, before)
    assert sorted(tree.index.tolist()) == list(range(pts.shape[0]))
    leaf_order = pts[tree.index]
    for node in range(tree.left.shape[0]):
        s, e = tree.start[node], tree.end[node]
        lo, hi = leaf_order[s:e].min(axis=0), leaf_order[s:e].max(axis=0)
        # float32, rounded outward: contains the points, and no float32 box inside it would
        assert (tree.lo[node] <= lo).all() and (tree.hi[node] >= hi).all()
        assert (np.nextafter(tree.lo[node], np.float32(np.inf)) > lo).all()
        assert (np.nextafter(tree.hi[node], np.float32(-np.inf)) < hi).all()
        c = tree.left[node]
        if c < 0:
            assert 1 <= e - s <= _nn_jit.LEAF
        else:
            assert (tree.start[c], tree.end[c], tree.start[c + 1], tree.end[c + 1]) == (
                s,
                tree.start[c + 1],
                tree.end[c],
                e,
            )
            assert s < tree.end[c] < e
    assert tree.max_leaf <= _nn_jit.LEAF and not _nn_jit.crowded(tree)


def test_exponentially_spaced_points_keep_the_tree_shallow():
    """Points at 2^-k along a line: every midpoint split peels off one point, which would make the tree 1,500 levels
    deep; below depth _MEDIAN_DEPTH the count is halved instead, so the depth (and the fixed stacks) stay bounded and
    the answers exact."""
    k = np.arange(1500, dtype=np.float64)
    line = np.c_[np.ldexp(1.0, -np.minimum(k, 1000).astype(int)) + k * 1e-300, np.zeros((1500, 2))]
    ref = np.ascontiguousarray(np.vstack([line, [[5.0, 1.0, 1.0]]]))
    tree = _nn_jit.build_tree(ref)
    assert _depth(tree) < _nn_jit._STACK - 2
    q = np.ascontiguousarray(np.r_[ref[::7] + [1e-3, 0, 0], np.random.default_rng(1).random((300, 3))])
    d, i = _nn_jit.jit_nn(q, ref)
    np.testing.assert_allclose(d, brute_nn(q, ref), rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.linalg.norm(q - ref[i], axis=1), d, rtol=1e-12, atol=0)


def test_bad_seeds_do_not_change_the_answer():
    """Queries in storage order alternate between two clusters 1 km apart, so every search starts from the previous
    query's neighbour on the other side: a poor but valid bound. Answers equal brute force, with and without
    excluding coincident points."""
    rng = np.random.default_rng(3)
    ref = np.vstack([rng.random((3000, 3)), rng.random((3000, 3)) + [1000.0, 0, 0]])
    q = np.empty((4000, 3))
    q[0::2] = rng.random((2000, 3)) * 1.2
    q[1::2] = rng.random((2000, 3)) * 1.2 + [1000.0, 0, 0]
    q[:10] = ref[:10]  # exact copies: distance 0, or the next point when excluded
    for exclude in (False, True):
        d, i = _nn_jit.jit_nn(np.ascontiguousarray(q), ref, exclude_zero=exclude)
        np.testing.assert_allclose(d, brute_nn(q, ref, exclude_zero=exclude), rtol=1e-12, atol=0)
        np.testing.assert_allclose(np.linalg.norm(q - ref[i], axis=1), d, rtol=1e-12, atol=0)
    assert (d[:10] > 0).all()


def test_self_spacing_with_copies_and_a_lone_point():
    """A cloud against itself (searched in its own tree order) excluding coincident points: pairs of copies find
    the nearest *other* point; a cloud of one distinct point has none (inf, -1)."""
    rng = np.random.default_rng(4)
    base = rng.normal(0, 3, (2500, 3))
    cloud = np.ascontiguousarray(np.vstack([base, base[:400]]))
    d, i = _nn_jit.jit_nn(cloud, cloud, exclude_zero=True)
    np.testing.assert_allclose(d, brute_nn(cloud, cloud, exclude_zero=True), rtol=1e-12, atol=0)
    assert (d > 0).all() and (np.linalg.norm(cloud - cloud[i], axis=1) == d).all()
    lone = np.zeros((20, 3))
    d, i = _nn_jit.jit_nn(lone, lone, exclude_zero=True)
    assert np.isinf(d).all() and (i == -1).all()


def test_crowded_clouds_go_back_to_pykdtree(monkeypatch):
    """More than _CROWDED copies of one point make an unsplittable leaf: the Numba search declines (None) and the
    CPU search answers through pykdtree, still exactly."""
    monkeypatch.setenv("SIMGAP_KDTREE", "numba")
    rng = np.random.default_rng(5)
    a = np.vstack([rng.normal(0, 4, (3000, 3)), np.zeros((_nn_jit._CROWDED + 1, 3))])
    b = rng.normal(0, 4, (2500, 3))
    assert _nn_jit.jit_pair_nn(a, b) is None
    d_ab, _, d_ba, _ = _nn_tree.tree_pair_nn(a, b)
    np.testing.assert_allclose(d_ab, brute_nn(a, b), rtol=1e-12, atol=0)
    np.testing.assert_allclose(d_ba, brute_nn(b, a), rtol=1e-12, atol=0)
    spacing = nearest_neighbor_spacing(a, device="cpu")
    np.testing.assert_allclose(spacing[:500], brute_nn(a[:500], a, exclude_zero=True), rtol=1e-12)


def test_concurrent_pairs_from_threads_equal_sequential():
    """The kernels release the GIL and use no shared state: four threads searching different real pairs at once
    get the sequential answers (the gate may score from a worker thread)."""
    a, b = _scan("0000002000"), _scan("0000002020")
    pairs = [(np.ascontiguousarray(a[k::4]), np.ascontiguousarray(b[(k + 1) % 4 :: 4])) for k in range(4)]
    want = [_nn_jit.jit_pair_nn(x, y) for x, y in pairs]
    got: list = [None] * 4

    def run(k: int) -> None:
        got[k] = _nn_jit.jit_pair_nn(*pairs[k])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w, g in zip(want, got, strict=True):
        for x, y in zip(w, g, strict=True):
            np.testing.assert_array_equal(x, y)
    x, y = pairs[0]
    np.testing.assert_allclose(want[0][0], brute_nn(x, y), rtol=1e-12, atol=0)


def test_which_tree_the_cpu_search_uses(monkeypatch):
    monkeypatch.delenv("SIMGAP_KDTREE", raising=False)
    assert _nn_tree.tree_backend(_nn_tree._JIT_MIN) == "numba"
    assert _nn_tree.tree_backend(None) == "numba"
    assert _nn_tree.tree_backend(_nn_tree._JIT_MIN - 1) == "pykdtree"
    monkeypatch.setenv("SIMGAP_KDTREE", "numba")
    assert _nn_tree.tree_backend(10) == "numba"
    monkeypatch.setenv("SIMGAP_KDTREE", "pykdtree")
    assert _nn_tree.tree_backend(10**6) == "pykdtree"
    monkeypatch.setenv("SIMGAP_KDTREE", "flann")
    with pytest.raises(SimGapInputError, match="SIMGAP_KDTREE must be one of"):
        _nn_tree.tree_backend(10)
