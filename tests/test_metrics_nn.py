"""Exact nearest neighbours / Chamfer / DCD (KD-tree and Warp backends) against float64 brute-force NumPy references."""

from __future__ import annotations

import functools
import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from simgap_ext._warp import available_devices
from simgap_ext.errors import SimGapInputError
from simgap_ext.metrics import (
    chamfer_distance,
    density_aware_chamfer,
    directional_distances,
    nearest_neighbor_distances,
    nearest_neighbor_spacing,
    nearest_neighbors,
)

# (device, search backend): the KD-tree (pykdtree and scipy's fallback) and the Warp grid on the CPU, Warp on CUDA
DEVICES = [
    "cpu",
    "cpu-warp",
    "cpu-ckdtree",
    *(d for d in available_devices() if d != "cpu"),
]


@pytest.fixture
def device(request, monkeypatch):
    """The device name to pass; the backend comes from SIMGAP_NN_BACKEND / SIMGAP_KDTREE."""
    name = request.param
    if name == "cpu-warp":
        monkeypatch.setenv("SIMGAP_NN_BACKEND", "warp")
    elif name == "cpu-ckdtree":
        monkeypatch.setenv("SIMGAP_KDTREE", "ckdtree")
    return name.split("-")[0]


def brute_nn(q: np.ndarray, r: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """float64 brute force, chunked so memory stays chunk x M."""
    q = np.asarray(q, np.float64)
    r = np.asarray(r, np.float64)
    d = np.empty(len(q))
    i = np.empty(len(q), np.int64)
    for s in range(0, len(q), chunk):
        dd = np.linalg.norm(q[s : s + chunk, None, :] - r[None], axis=-1)
        i[s : s + chunk] = dd.argmin(axis=1)
        d[s : s + chunk] = dd.min(axis=1)
    return d, i


def brute_chamfer(a, b, squared=False):
    dab, _ = brute_nn(a, b)
    dba, _ = brute_nn(b, a)
    if squared:
        dab, dba = dab**2, dba**2
    return 0.5 * (dab.mean() + dba.mean())


def _mixture(rng, n):
    """Clustered + sparse mixture: a dense blob, a flat 'ground' and far outliers."""
    k = n // 3
    blob = rng.normal(0, 0.05, (k, 3)) + [2, 0, 0]
    ground = np.c_[rng.uniform(-20, 20, (k, 2)), rng.normal(0, 0.01, k)]
    sparse = rng.uniform(-200, 200, (n - 2 * k, 3))
    return np.vstack([blob, ground, sparse])


CASES = {
    "uniform_small": lambda rng: (rng.random((37, 3)), rng.random((53, 3))),
    "uniform_mid": lambda rng: (rng.random((1500, 3)) * 10, rng.random((900, 3)) * 10),
    "single_points": lambda rng: (rng.random((1, 3)), rng.random((1, 3)) + 100.0),
    "single_vs_many": lambda rng: (rng.random((1, 3)), rng.random((400, 3))),
    "duplicates": lambda rng: (np.repeat(rng.random((20, 3)), 7, axis=0), np.repeat(rng.random((15, 3)), 5, axis=0)),
    "far_apart": lambda rng: (rng.random((300, 3)), rng.random((250, 3)) + [1e3, -5e2, 2e2]),
    "mixture": lambda rng: (_mixture(rng, 1200), _mixture(rng, 800)),
    "utm_offset": lambda rng: (
        rng.random((500, 3)) * 5 + [4.6e5, 5.3e6, 500],
        rng.random((400, 3)) * 5 + [4.6e5, 5.3e6, 500],
    ),
    "flat_plane": lambda rng: (np.c_[rng.random((600, 2)), np.zeros(600)], np.c_[rng.random((500, 2)), np.zeros(500)]),
}


@pytest.mark.parametrize("device", DEVICES, indirect=True)
@pytest.mark.parametrize("case", sorted(CASES))
def test_nn_matches_brute_force(case, device):
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    a, b = CASES[case](rng)
    d, idx = nearest_neighbors(a, b, device=device)
    ref_d, _ = brute_nn(a, b)
    np.testing.assert_allclose(d, ref_d, rtol=1e-5, atol=1e-9)
    # the returned index must realise the returned distance
    np.testing.assert_allclose(np.linalg.norm(a - b[idx], axis=1), d, rtol=1e-12)
    assert nearest_neighbor_distances(a, b, device=device).dtype == np.float32


@pytest.mark.parametrize("device", DEVICES, indirect=True)
def test_nn_fine_spacing_far_from_centre(device):
    """Clusters 10 km apart with centimetre spacing: float32 coordinates are coarse (0.5 mm) relative to the
    search radius; the answer must still be exact to that resolution."""
    rng = np.random.default_rng(21)
    centres = np.array([[-5000.0, 0, 0], [5000.0, 0, 0]])
    ref = np.vstack([c + rng.random((500, 3)) * 0.2 for c in centres])
    query = np.vstack([c + rng.random((300, 3)) * 0.25 for c in centres])
    d, _ = nearest_neighbors(query, ref, device=device)
    ulp = float(np.spacing(np.float32(5000.0)))
    np.testing.assert_allclose(d, brute_nn(query, ref)[0], rtol=0, atol=4 * ulp)


@pytest.mark.parametrize("device", DEVICES, indirect=True)
@pytest.mark.parametrize("case", ["uniform_mid", "far_apart", "mixture", "duplicates", "single_points"])
@pytest.mark.parametrize("squared", [False, True])
def test_chamfer_matches_brute_force(case, squared, device):
    rng = np.random.default_rng(7)
    a, b = CASES[case](rng)
    got = chamfer_distance(a, b, squared=squared, device=device)
    assert got == pytest.approx(brute_chamfer(a, b, squared), rel=1e-5)
    assert isinstance(got, float)


def _crowded(rng, n, copies):
    """n scattered points plus `copies` copies of the origin (an organised scan's no-return rays) and 5 of one
    other point."""
    return np.vstack([rng.normal(0, 5, (n, 3)), np.zeros((copies, 3)), np.repeat(rng.random((1, 3)), 5, axis=0)])


@pytest.mark.parametrize("device", DEVICES, indirect=True)
def test_many_copies_of_one_point_stay_exact(device):
    rng = np.random.default_rng(17)
    a, b = _crowded(rng, 200, 2100), _crowded(rng, 150, 2080)
    d, idx = nearest_neighbors(b, a, device=device)
    np.testing.assert_allclose(d, brute_nn(b, a)[0], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(b - a[idx], axis=1), d, rtol=1e-12)
    assert chamfer_distance(a, b, device=device) == pytest.approx(brute_chamfer(a, b), rel=1e-6)
    dab, iab = brute_nn(a, b)
    dba, iba = brute_nn(b, a)
    nb, na = np.bincount(iab, minlength=len(b)), np.bincount(iba, minlength=len(a))
    want = 0.5 * ((1 - np.exp(-10 * dab**2) / nb[iab]).mean() + (1 - np.exp(-10 * dba**2) / na[iba]).mean())
    assert density_aware_chamfer(a, b, device=device) == pytest.approx(want, rel=1e-6)
    # spacing skips every coincident copy; reference: the nearest of a's distinct points at distance > 0
    distinct = np.unique(a, axis=0)
    spacing = np.array([np.min(d[d > 0]) for d in np.linalg.norm(a[:, None] - distinct[None], axis=-1)])
    np.testing.assert_allclose(nearest_neighbor_spacing(a, device=device), spacing, rtol=1e-6)


def test_copies_of_one_point_are_searched_once():
    """k copies of one point in a reference cell would cost every query k distance tests (k^2 in all): the
    grid holds each distinct point once."""
    from simgap_ext.metrics._nn_warp import _GridCloud

    rng = np.random.default_rng(18)
    pts = _crowded(rng, 400, 3000).astype(np.float32)
    grid = _GridCloud(pts, "cpu")
    assert grid.n == 400 + 1 + 1
    # every input point maps to a distinct point whose first copy has the same coordinates
    slot_of_distinct = np.argsort(grid.perm)
    np.testing.assert_array_equal(pts[grid.orig[slot_of_distinct[grid.inverse]]], pts)
    # an ordinary cloud is left as it is
    assert _GridCloud(rng.normal(0, 5, (500, 3)).astype(np.float32), "cpu").inverse is None


def test_chamfer_hand_computed():
    a = np.array([[0.0, 0, 0], [1, 0, 0]])
    b = np.array([[0.0, 0, 2]])
    # a->b: 2, sqrt(5); b->a: 2  => 0.5 * ((2 + sqrt5)/2 + 2)
    assert chamfer_distance(a, b, device="cpu") == pytest.approx(0.5 * ((2 + 5**0.5) / 2 + 2))
    assert chamfer_distance(a, b, squared=True, device="cpu") == pytest.approx(0.5 * ((4 + 5) / 2 + 4))
    assert chamfer_distance(a, b, reduction="sum", device="cpu") == pytest.approx(2 + 5**0.5 + 2)
    assert chamfer_distance(a, a, device="cpu") == 0.0


def test_chamfer_symmetric_and_shift_sensitive():
    rng = np.random.default_rng(3)
    a = rng.random((300, 3))
    b = rng.random((200, 3))
    assert chamfer_distance(a, b, device="cpu") == pytest.approx(chamfer_distance(b, a, device="cpu"), rel=1e-12)
    # a rigid shift far larger than the cloud: CD tends to the shift
    assert chamfer_distance(a, a + [50.0, 0, 0], device="cpu") == pytest.approx(50.0, rel=0.02)


def test_directional_distances_shapes_and_values():
    rng = np.random.default_rng(4)
    a, b = rng.random((70, 3)), rng.random((40, 3))
    dab, dba = directional_distances(a, b, device="cpu")
    assert dab.shape == (70,) and dba.shape == (40,)
    np.testing.assert_allclose(dab, brute_nn(a, b)[0], rtol=1e-6)
    np.testing.assert_allclose(dba, brute_nn(b, a)[0], rtol=1e-6)
    sab, _ = directional_distances(a, b, squared=True, device="cpu")
    np.testing.assert_allclose(sab, dab**2)


def test_density_normalized_against_reference():
    rng = np.random.default_rng(5)
    a = np.vstack([rng.random((200, 3)) * 0.5, rng.random((50, 3)) * 20 + 5])  # dense + sparse real
    a = np.vstack([a, a[:10]])  # duplicates: spacing must skip the coincident copy
    b = a[:150] + rng.normal(0, 0.01, (150, 3))
    # reference: spacing = distance to nearest distinct point of a
    dd = np.linalg.norm(a[:, None] - a[None], axis=-1)
    dd[dd == 0] = np.inf
    spacing = dd.min(axis=1)
    np.testing.assert_allclose(nearest_neighbor_spacing(a, device="cpu"), spacing, rtol=1e-6)
    dab, _ = brute_nn(a, b)
    dba, iba = brute_nn(b, a)
    want = 0.5 * ((dab / spacing).mean() + (dba / spacing[iba]).mean())
    got = chamfer_distance(a, b, density_normalized=True, device="cpu")
    assert got == pytest.approx(want, rel=1e-5)


def test_density_normalized_needs_two_distinct_points():
    with pytest.raises(SimGapInputError, match="two distinct points"):
        chamfer_distance(np.zeros((5, 3)), np.ones((3, 3)), density_normalized=True, device="cpu")


def test_dcd_matches_reference_formula():
    rng = np.random.default_rng(6)
    a, b = rng.random((120, 3)), rng.random((90, 3))
    alpha = 10.0
    dab, iab = brute_nn(a, b)
    dba, iba = brute_nn(b, a)
    nb = np.bincount(iab, minlength=len(b))
    na = np.bincount(iba, minlength=len(a))
    want = 0.5 * ((1 - np.exp(-alpha * dab**2) / nb[iab]).mean() + (1 - np.exp(-alpha * dba**2) / na[iba]).mean())
    assert density_aware_chamfer(a, b, alpha=alpha, device="cpu") == pytest.approx(want, rel=1e-6)


def test_dcd_bad_parameters():
    a = np.random.default_rng(10).random((20, 3))
    for kw, match in (
        ({"alpha": 0.0}, "alpha"),
        ({"n_lambda": float("nan")}, "n_lambda"),
        ({"n_lambda": -1.0}, "n_lambda"),
    ):
        with pytest.raises(SimGapInputError, match=match):
            density_aware_chamfer(a, a + 0.1, device="cpu", **kw)


def test_dcd_bounds():
    rng = np.random.default_rng(8)
    a = rng.random((100, 3))
    assert density_aware_chamfer(a, a, device="cpu") == pytest.approx(0.0, abs=1e-12)
    far = density_aware_chamfer(a, a + 100.0, device="cpu")
    assert 0.99 < far <= 1.0
    # DCD sees a density change that Chamfer ignores: b covers a's region with a quarter of the points
    # all matched many-to-one
    dense = np.repeat(a, 4, axis=0)
    assert chamfer_distance(a, dense, device="cpu") == 0.0
    assert density_aware_chamfer(a, dense, device="cpu") > 0.3


def test_torch_input():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    a, b = rng.random((64, 3)), rng.random((48, 3))
    got = chamfer_distance(torch.from_numpy(a).float(), torch.from_numpy(b).float().requires_grad_(True), device="cpu")
    assert got == pytest.approx(brute_chamfer(a.astype(np.float32), b.astype(np.float32)), rel=1e-5)


@pytest.mark.parametrize(
    "a, match",
    [
        (np.zeros((0, 3)), "empty point cloud"),
        (np.array([[0.0, np.nan, 0.0]]), "non-finite"),
        (np.array([[0.0, np.inf, 0.0], [1, 1, 1]]), "1 of 2 points are non-finite"),
        (np.zeros((4, 2)), r"expected shape \(N, 3\)"),
        (np.zeros(3), r"expected shape \(N, 3\)"),
        (np.array([["a", "b", "c"]]), "numeric"),
        (np.zeros((2, 3), complex), "numeric"),
    ],
)
def test_bad_input_raises(a, match):
    with pytest.raises(SimGapInputError, match=match):
        chamfer_distance(a, np.zeros((2, 3)), device="cpu")
    with pytest.raises(ValueError, match=match):
        nearest_neighbor_distances(np.zeros((2, 3)), a, device="cpu")


def test_bad_reduction():
    with pytest.raises(SimGapInputError, match="reduction"):
        chamfer_distance(np.zeros((2, 3)), np.zeros((2, 3)), reduction="max", device="cpu")


_KITTI360 = Path(__file__).parent / "data" / "kitti360_nn"


@functools.cache
def _kitti360(frame: str) -> np.ndarray:
    pts = np.fromfile(_KITTI360 / f"{frame}_every10th.bin", np.float32).reshape(-1, 4)[:, :3].astype(np.float64)
    pts.setflags(write=False)
    return pts


@functools.cache
def _real_pair_reference() -> dict:
    """Brute-force answers for the real-pair tests, computed once for every backend."""
    a, b = _kitti360("0000002000"), _kitti360("0000002020")
    rng = np.random.default_rng(31)
    far = rng.uniform(-1, 1, (40, 3)) * 3e3 + [5e3, 0, 0]
    a2 = a[::2]
    b2 = np.vstack([a2[::5] + [0.37, -0.2, 0.05], far])
    dd = np.linalg.norm(a2[:3000, None] - a2[None, :3000], axis=-1)
    dd[dd == 0] = np.inf
    return {
        "q_ba": brute_nn(b[::3], a)[0],
        "cd_sub": brute_chamfer(a[::4], b[::4]),
        "outlier_clouds": (a2, b2),
        "outlier_ab": brute_nn(a2, b2)[0],
        "outlier_ba": brute_nn(b2, a2)[0],
        "spacing": dd.min(axis=1),
    }


def _float32_atol(device: str, *clouds: np.ndarray) -> float:
    """The Warp grid searches float32 coordinates centred on the joint box: near-ties can resolve a few ulps of
    the largest centred coordinate wrong. The KD-tree searches float64: no slack."""
    if os.environ.get("SIMGAP_NN_BACKEND") != "warp" and device == "cpu":
        return 1e-9
    pts = np.vstack(clouds)
    half = 0.5 * float((pts.max(axis=0) - pts.min(axis=0)).max())
    return 8 * float(np.spacing(np.float32(half)))


@pytest.mark.parametrize("device", DEVICES, indirect=True)
def test_real_consecutive_scans_match_brute_force(device):
    """Two real KITTI-360 scans 2 s apart (every 10th point): nearest neighbours span centimetres on the road to
    tens of metres at the scan edge, the case a single search radius handles worst."""
    a, b = _kitti360("0000002000"), _kitti360("0000002020")
    ref = _real_pair_reference()
    d, idx = nearest_neighbors(b[::3], a, device=device)
    np.testing.assert_allclose(d, ref["q_ba"], rtol=1e-6, atol=_float32_atol(device, a, b))
    np.testing.assert_allclose(np.linalg.norm(b[::3] - a[idx], axis=1), d, rtol=1e-12)
    assert ref["q_ba"].max() > 50 * np.median(ref["q_ba"])  # the pair really has far neighbours
    # both directions through Chamfer, against brute force on a subset in both directions
    assert chamfer_distance(a[::4], b[::4], device=device) == pytest.approx(ref["cd_sub"], rel=1e-6)


@pytest.mark.parametrize("device", DEVICES, indirect=True)
def test_real_scan_against_far_outliers(device):
    """A real scan against a shifted subset of itself plus points kilometres away, both directions; and the
    spacing of the scan stacked three times (every point has two coincident copies)."""
    ref = _real_pair_reference()
    a, b = ref["outlier_clouds"]
    atol = _float32_atol(device, a, b)
    d_ab, _ = nearest_neighbors(a, b, device=device)
    d_ba, _ = nearest_neighbors(b, a, device=device)
    np.testing.assert_allclose(d_ab, ref["outlier_ab"], rtol=1e-6, atol=atol)
    np.testing.assert_allclose(d_ba, ref["outlier_ba"], rtol=1e-6, atol=atol)
    tripled = np.vstack([a[:3000]] * 3)
    np.testing.assert_allclose(nearest_neighbor_spacing(tripled, device=device), np.tile(ref["spacing"], 3), rtol=1e-6)


def test_tree_queries_in_spatial_order_across_chunks_match_brute_force(monkeypatch):
    """The KD-tree path gathers queries in Morton order, chunk by chunk, and scatters the answers back: with
    chunks of 1000 (boundaries inside the order) every answer, with or without coincident points, is still the
    brute-force one in the caller's order."""
    from simgap_ext.metrics import _nn_tree

    monkeypatch.setenv("SIMGAP_KDTREE", "pykdtree")  # the pykdtree path (the Numba tree orders by its own tree)
    monkeypatch.setattr(_nn_tree, "_CHUNK", 1000)
    monkeypatch.setattr(_nn_tree, "_ORDER_MIN", 4096)
    monkeypatch.setattr(_nn_tree, "_PARALLEL_BUILD_MIN", 4096)  # the two trees built on two threads, as at 100k+
    rng = np.random.default_rng(5)
    box = [50.0, 50.0, 5.0]
    a = rng.random((4600, 3)) * box  # storage order random in space: the ordered path is taken
    b = np.vstack([rng.random((4200, 3)) * box, a[:300], rng.uniform(-1, 1, (20, 3)) * 3e3])  # copies, far points
    rng.shuffle(b)
    assert a.shape[0] >= _nn_tree._ORDER_MIN and b.shape[0] >= _nn_tree._ORDER_MIN
    assert not _nn_tree._is_coherent(a) and not _nn_tree._is_coherent(b)
    order = _nn_tree._spatial_order(a)
    assert sorted(order.tolist()) == list(range(a.shape[0])) and not np.array_equal(order, np.arange(a.shape[0]))
    d_ab, i_ab, d_ba, i_ba = _nn_tree.tree_pair_nn(a, b)
    np.testing.assert_allclose(d_ab, brute_nn(a, b)[0], rtol=1e-12, atol=0)
    np.testing.assert_allclose(d_ba, brute_nn(b, a)[0], rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.linalg.norm(a - b[i_ab], axis=1), d_ab, rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.linalg.norm(b - a[i_ba], axis=1), d_ba, rtol=1e-12, atol=0)
    both = np.vstack([b, b[:50]])  # spacing: copies excluded, k = 2 through the same ordered path
    spacing = nearest_neighbor_spacing(both, device="cpu")
    dd = np.linalg.norm(both[:500, None] - both[None], axis=-1)
    dd[dd == 0] = np.inf
    np.testing.assert_allclose(spacing[:500], dd.min(axis=1), rtol=1e-12)


def test_scan_order_counts_as_coherent_and_a_shuffle_does_not():
    """Only clouds stored in no spatial order are re-ordered: a real scan in its stored order is coherent, the same
    scan shuffled is not, and a Morton-ordered one is again."""
    from simgap_ext.metrics import _nn_tree

    scan = _kitti360("0000002000")
    shuffled = scan[np.random.default_rng(0).permutation(scan.shape[0])]
    assert _nn_tree._is_coherent(scan)
    assert not _nn_tree._is_coherent(shuffled)
    assert _nn_tree._is_coherent(shuffled[_nn_tree._spatial_order(shuffled)])
