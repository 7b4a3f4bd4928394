"""The faster paths of one ``simgap generate`` attempt give exactly (bit for bit) what the paths they replaced gave.

Each test runs the old computation (a copy of the replaced code, or the library call it made) beside the new one on
real KITTI-360 scan subsets and on crafted clouds that hit the corner cases (equidistant neighbours, duplicate
points, -0.0), plus an independent brute-force reference where one exists.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.stats import wasserstein_distance

from simgap_ext.frame import make_frame
from simgap_ext.gate.frame_stats import ROUGHNESS_CLIP, _norms, _ring_order, canonical_crop, frame_stats, ring_ids
from simgap_ext.gate.geometric import TRIM_KEEP, batched_trimmed_chamfer, cap_points
from simgap_ext.gate.plausibility import _SHAPE_K, local_descriptors, shape_neighbours
from simgap_ext.metrics import wasserstein_1d
from simgap_ext.metrics.features import FrozenBackbone
from simgap_ext.pipeline.blas_threads import blas_libraries, blas_threads, limit_blas_threads
from simgap_ext.sensors import load_sensor_profile

DATA = Path(__file__).parent / "data" / "kitti360_nn"


def _scan(name: str = "0000002000_every10th.bin") -> np.ndarray:
    return np.fromfile(DATA / name, np.float32).reshape(-1, 4)[:, :3].copy()


def _tied_cloud() -> np.ndarray:
    """A unit grid (every point has 6 equidistant neighbours, 12 at sqrt 2, ...) with some points duplicated."""
    g = np.stack(np.meshgrid(*(np.arange(8.0),) * 3, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.float32)
    return np.concatenate([g, g[::7]])


# ---------------------------------------------------------------- local descriptors: sliding-midpoint tree + ties


def _old_local_descriptors(points: np.ndarray, cap: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """plausibility.local_descriptors before the sliding-midpoint tree (balanced cKDTree, SciPy's default)."""
    pts = np.asarray(points, dtype=np.float64)
    n = pts.shape[0]
    idx = np.arange(0, n, max(1, int(np.ceil(n / cap))), dtype=np.int64)
    _, nn = cKDTree(pts).query(pts[idx], k=_SHAPE_K)
    nb = pts[nn]
    centred = nb - nb.mean(axis=1, keepdims=True)
    cov = np.einsum("ski,skj->sij", centred, centred) / _SHAPE_K
    evals, evecs = np.linalg.eigh(cov)
    l3, l2, l1 = (np.maximum(evals[:, i], 0.0) for i in range(3))
    denom = np.maximum(l1, 1e-12)
    desc = np.stack(
        [
            pts[idx, 2],
            (l1 - l2) / denom,
            (l2 - l3) / denom,
            l3 / denom,
            np.abs(evecs[:, 2, 0]),
            nb[:, :, 2].max(axis=1) - nb[:, :, 2].min(axis=1),
        ],
        axis=1,
    )
    return idx, desc.astype(np.float32)


@pytest.mark.parametrize("cloud", ["kitti360", "kitti360_with_origin_returns", "tied_grid"])
def test_local_descriptors_equal_the_balanced_tree_bit_for_bit(cloud):
    if cloud == "tied_grid":
        pts = _tied_cloud()
    else:
        pts = _scan()
        if cloud == "kitti360_with_origin_returns":
            # no-return encodings at the sensor (as nuScenes stores them): many exact duplicates
            pts = np.concatenate([pts, np.zeros((40, 3), np.float32)])
    idx, desc = local_descriptors(pts)
    old_idx, old_desc = _old_local_descriptors(pts)
    np.testing.assert_array_equal(idx, old_idx)
    assert desc.tobytes() == old_desc.tobytes()


def test_shape_neighbours_fall_back_on_ties_and_agree_with_brute_force():
    pts = _tied_cloud().astype(np.float64)
    idx = np.arange(pts.shape[0], dtype=np.int64)
    # the crafted cloud does have equal distances among the first K + 1 neighbours (what the fallback is for)
    d, _ = cKDTree(pts, balanced_tree=False, compact_nodes=False).query(pts, k=_SHAPE_K + 1)
    assert (d[:, 1:] == d[:, :-1]).any(axis=1).mean() > 0.9
    nn = shape_neighbours(pts, idx)
    np.testing.assert_array_equal(nn, cKDTree(pts).query(pts, k=_SHAPE_K)[1])
    # brute force: the neighbours' distances are the K smallest, nearest first
    full = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    got = np.take_along_axis(full, nn, axis=1)
    np.testing.assert_allclose(got, np.sort(full, axis=1)[:, :_SHAPE_K], rtol=0, atol=1e-12)


def test_shape_neighbours_on_a_real_scan_agree_with_brute_force():
    pts = _scan("0000002020_every10th.bin").astype(np.float64)
    idx = np.arange(0, pts.shape[0], 37, dtype=np.int64)
    nn = shape_neighbours(pts, idx)
    d = np.sqrt(((pts[idx][:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    order = np.argsort(d, axis=1, kind="stable")[:, :_SHAPE_K]
    np.testing.assert_allclose(np.take_along_axis(d, nn, 1), np.take_along_axis(d, order, 1), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- trimmed Chamfer: one tree per distinct cloud


def _old_pair_chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """geometric.batched_trimmed_chamfer's KD-tree path before the per-cloud trees (two trees per pair)."""
    a64 = cap_points(np.asarray(a, np.float32)).astype(np.float64)
    b64 = cap_points(np.asarray(b, np.float32)).astype(np.float64)

    def tmean(d):
        d = np.sort(d)
        return float(d[: max(1, int(math.ceil(TRIM_KEEP * d.size)))].mean())

    return 0.5 * (tmean(cKDTree(b64).query(a64)[0]) + tmean(cKDTree(a64).query(b64)[0]))


def test_chamfer_with_shared_trees_equals_a_tree_per_pair_and_brute_force():
    pts = _scan()
    rng = np.random.default_rng(4)
    # crops of the real scan around a few centres (one above MAX_CHAMFER_POINTS: capped), as float32 arrays
    centres = pts[rng.choice(pts.shape[0], 5, replace=False)]
    clouds = []
    for c, radius in zip(centres, (1.0, 2.0, 3.0, 6.0, 40.0), strict=True):
        crop = pts[np.linalg.norm(pts - c, axis=1) < radius]
        clouds.append(crop if crop.shape[0] else pts[:20])
    clouds.append(_tied_cloud()[:300])
    # every crop against several exemplars, exemplars shared between crops, one pair repeated: the shapes of a
    # gate batch
    pairs = [(clouds[i], clouds[j]) for i in range(len(clouds)) for j in range(len(clouds)) if (i + j) % 2 == 0]
    pairs.append(pairs[0])
    got = batched_trimmed_chamfer(pairs, backend="kdtree")
    want = np.array([_old_pair_chamfer(a, b) for a, b in pairs])
    assert got.tobytes() == want.tobytes()
    a, b = cap_points(clouds[1]).astype(np.float64), cap_points(clouds[3]).astype(np.float64)
    full = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    def tmean(d):
        d = np.sort(d)
        return d[: max(1, math.ceil(TRIM_KEEP * d.size))].mean()

    brute = 0.5 * (tmean(full.min(axis=1)) + tmean(full.min(axis=0)))
    assert got[[k for k, p in enumerate(pairs) if p[0] is clouds[1] and p[1] is clouds[3]][0]] == pytest.approx(brute)


# ---------------------------------------------------------------- W1: plain sort for unweighted samples


def _old_wasserstein_1d(u, v, u_weights=None, v_weights=None) -> float:
    """metrics.wasserstein_1d before the plain-sort path (stable argsort of both samples)."""
    uv, vv = np.asarray(u, np.float64), np.asarray(v, np.float64)
    uw = np.full(uv.shape[0], 1.0 / uv.shape[0]) if u_weights is None else np.asarray(u_weights) / np.sum(u_weights)
    vw = np.full(vv.shape[0], 1.0 / vv.shape[0]) if v_weights is None else np.asarray(v_weights) / np.sum(v_weights)
    u_order = np.argsort(uv, kind="stable")
    v_order = np.argsort(vv, kind="stable")
    u_sorted, v_sorted = uv[u_order], vv[v_order]
    all_values = np.sort(np.concatenate([u_sorted, v_sorted]), kind="stable")
    deltas = np.diff(all_values)
    u_cdf = np.concatenate([[0.0], np.cumsum(uw[u_order])])[np.searchsorted(u_sorted, all_values[:-1], "right")]
    v_cdf = np.concatenate([[0.0], np.cumsum(vw[v_order])])[np.searchsorted(v_sorted, all_values[:-1], "right")]
    return float(np.sum(np.abs(u_cdf - v_cdf) * deltas))


@pytest.mark.parametrize("case", ["real_ranges", "ties", "zeros", "negative_zero", "weighted"])
def test_wasserstein_1d_equals_the_stable_sort_bit_for_bit(case):
    rng = np.random.default_rng(9)
    a, b = _scan(), _scan("0000002020_every10th.bin")
    u = np.linalg.norm(a, axis=1).astype(np.float64)
    v = np.linalg.norm(b, axis=1)[::3].astype(np.float64)
    uw = vw = None
    if case == "ties":
        u, v = np.round(u, 1), np.round(v, 1)
    elif case == "zeros":
        u[::50] = 0.0
        v[::70] = 0.0
    elif case == "negative_zero":
        u[::50] = -0.0
        u[1::50] = 0.0
        v[::70] = -0.0
    elif case == "weighted":
        uw, vw = rng.random(u.size), rng.random(v.size)
    got = wasserstein_1d(u, v, uw, vw)
    want = _old_wasserstein_1d(u, v, uw, vw)
    assert math.copysign(1.0, got) == math.copysign(1.0, want) and got == want
    assert got == pytest.approx(wasserstein_distance(u, v, uw, vw), rel=1e-9, abs=1e-12)


# ---------------------------------------------------------------- ring order: two stable passes instead of lexsort


@pytest.mark.parametrize("rings", ["table", "table_shuffled", "quantised_shifted", "negative"])
def test_ring_order_equals_lexsort(rings):
    pts = _scan().astype(np.float64)
    if rings == "table_shuffled":  # no firing order to exploit
        pts = pts[np.random.default_rng(3).permutation(pts.shape[0])]
    if rings.startswith("table"):
        r = ring_ids(pts.astype(np.float32), load_sensor_profile("hdl-64").vertical_angles_deg)
    elif rings == "quantised_shifted":  # sparse ids, fast path
        r = ring_ids(pts.astype(np.float32), None) + 5000
    else:  # negative ids: lexsort itself
        r = ring_ids(pts.astype(np.float32), None) - 1000
    assert (r.min() < 0) == (rings == "negative")
    pts[::97] = pts[::97][::-1]  # some exact azimuth ties across rings
    pts = np.concatenate([pts, pts[:50]])  # and duplicates within a ring
    r = np.concatenate([r, r[:50]])
    az, order = _ring_order(pts, r)
    np.testing.assert_array_equal(az, np.arctan2(pts[:, 1], pts[:, 0]))
    np.testing.assert_array_equal(order, np.lexsort((az, r)))


# ---------------------------------------------------------------- one BLAS thread while pipelined


def test_limit_blas_threads_sets_and_restores_and_leaves_embeddings_unchanged():
    libs = blas_libraries()
    if not libs:
        pytest.skip("no OpenBLAS library with a settable thread count is loaded")
    before = blas_threads()
    pts = _scan()
    rng = np.random.default_rng(2)
    crops = [pts[rng.choice(pts.shape[0], n, replace=False)] for n in (40, 700, 2048, 5000)]
    bb = FrozenBackbone()
    with limit_blas_threads(1):
        assert set(blas_threads().values()) == {1}
        single = [bb.embed(c) for c in crops]
    assert blas_threads() == before
    for c, s in zip(crops, single, strict=True):
        assert bb.embed(c).tobytes() == s.tobytes()
    with pytest.raises(ValueError, match="must be >= 1"):
        with limit_blas_threads(0):
            pass


# ---------------------------------------------------------------- frame_stats: instances picked from their class


def test_frame_stats_crops_equal_frame_wide_masks():
    pts = _scan()
    rng = np.random.default_rng(5)
    sem = np.where(pts[:, 2] < -1.4, 0, 1 + (np.abs(pts[:, 0]).astype(np.int64) % 3)).astype(np.int32)
    inst = np.where(sem > 0, 1 + (np.abs(pts[:, 1]).astype(np.int64) // 4) % 9, 0).astype(np.int32)
    inst[rng.random(inst.size) < 0.05] = 0  # some points of object classes without an instance
    names = {0: "ground", 1: "vehicle", 2: "pole", 3: "pedestrian"}
    frame = make_frame(pts, sem, inst, names, sensor="hdl-64")
    profile = load_sensor_profile("hdl-64")
    stats = frame_stats(
        frame,
        vertical_angles_deg=profile.vertical_angles_deg,
        horizontal_resolution=profile.horizontal_resolution,
        background_classes=("ground",),
    )
    # the loop before: one frame-wide boolean mask per instance
    cls = stats.class_of_point
    want = []
    for ci, cname in enumerate(stats.class_list):
        sel = cls == ci
        if not sel.any() or cname == "ground":
            continue
        for iid in np.unique(inst[sel]):
            if iid == 0:
                continue
            m = sel & (inst == iid)
            core = m & stats.adjacent
            rr = stats.roughness[m]
            rr = np.minimum(np.abs(rr[np.isfinite(rr)]), ROUGHNESS_CLIP).astype(np.float32)
            canon, rng_m = canonical_crop(pts[core]) if core.any() else (np.zeros((0, 3), np.float32), 0.0)
            want.append((cname, int(iid), canon, rng_m, rr if core.any() else np.zeros(0, np.float32), int(m.sum())))
    assert len(want) == len(stats.crops) > 10
    for crop, (cname, iid, canon, rng_m, rr, total) in zip(stats.crops, want, strict=True):
        assert (crop.class_name, crop.instance, crop.range, crop.total_points) == (cname, iid, rng_m, total)
        assert crop.points.tobytes() == canon.tobytes() and crop.roughness.tobytes() == rr.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_norms_equal_numpy_linalg_norm(dtype):
    rng = np.random.default_rng(8)
    scaled = rng.standard_normal((20000, 3)) * rng.choice([1e-3, 1.0, 80.0, 1e4], size=(20000, 1))
    for pts in (_scan().astype(dtype), scaled.astype(dtype), np.zeros((3, 3), dtype)):
        got, want = _norms(pts), np.linalg.norm(pts, axis=1)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


# ---------------------------------------------------------------- apparent origin: columns, no row selection


def _old_apparent_origin(points: np.ndarray, sectors: int = 360) -> np.ndarray | None:
    """origin.apparent_origin before the column layout (rows selected from an (N, 3) array)."""
    from simgap_ext.gate.origin import _RECENTRE_STEPS, _tukey_fit

    def fit(pts):
        rho = np.hypot(pts[:, 0], pts[:, 1])
        ok = rho >= 1.5
        p, rho = pts[ok], rho[ok]
        if not p.shape[0]:
            return None
        theta = np.arctan2(p[:, 1], p[:, 0])
        sec = np.floor((theta + np.pi) / (2 * np.pi) * sectors).astype(np.int64) % sectors
        slope = p[:, 2] / rho
        lowest = np.full(sectors, np.inf)
        np.minimum.at(lowest, sec, slope)
        cand = np.flatnonzero(slope == lowest[sec])
        _, first = np.unique(sec[cand], return_index=True)
        low = cand[first]
        if low.size < 90 * sectors / 360:
            return None
        th = theta[low]
        return _tukey_fit(np.stack([p[low, 2], np.cos(th), np.sin(th)], axis=1), rho[low])[1:].copy()

    pts = np.asarray(points, dtype=np.float64)
    pts = pts[np.linalg.norm(pts, axis=1) >= 0.3]
    offset = np.zeros(2)
    for _ in range(_RECENTRE_STEPS):
        step = fit(pts - np.array([offset[0], offset[1], 0.0]))
        if step is None:
            return None
        offset += step
    return offset


@pytest.mark.parametrize("case", ["real", "real_shifted", "with_origin_returns", "too_few_sectors"])
def test_apparent_origin_equals_the_row_layout_bit_for_bit(case):
    from simgap_ext.gate.origin import apparent_origin

    pts = _scan("0000002020_every10th.bin")
    if case == "real_shifted":
        pts = pts + np.array([0.7, -0.4, 0.0], np.float32)
    elif case == "with_origin_returns":  # no-return encodings and ego-body returns are dropped first
        pts = np.concatenate([pts, np.zeros((30, 3), np.float32), np.full((30, 3), 0.5, np.float32)])
    elif case == "too_few_sectors":
        pts = pts[(pts[:, 0] > 0) & (pts[:, 1] > 0)]
    got, want = apparent_origin(pts), _old_apparent_origin(pts)
    if case == "too_few_sectors":
        assert got is None and want is None
    else:
        assert got.tobytes() == want.tobytes()
