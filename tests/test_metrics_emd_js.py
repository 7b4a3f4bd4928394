"""Wasserstein (1-D, sliced, exact EMD) and Jensen-Shannon divergence against scipy and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from simgap_ext.errors import SimGapInputError
from simgap_ext.metrics import exact_emd, js_divergence, sliced_wasserstein, wasserstein_1d


@pytest.mark.parametrize("n, m", [(1, 1), (5, 9), (200, 137)])
def test_wasserstein_1d_matches_scipy(n, m):
    rng = np.random.default_rng(n * 31 + m)
    u, v = rng.normal(0, 1, n), rng.normal(0.5, 2, m)
    assert wasserstein_1d(u, v) == pytest.approx(wasserstein_distance(u, v), rel=1e-12)
    uw, vw = rng.random(n) * 3, rng.random(m)
    assert wasserstein_1d(u, v, uw, vw) == pytest.approx(wasserstein_distance(u, v, uw, vw), rel=1e-12)


def test_wasserstein_1d_hand_values():
    assert wasserstein_1d([0.0], [3.0]) == pytest.approx(3.0)
    assert wasserstein_1d([0.0, 1.0], [0.0, 1.0]) == 0.0
    # half the mass moves by 2
    assert wasserstein_1d([0.0, 0.0], [0.0, 2.0]) == pytest.approx(1.0)
    # weights need not be normalised
    assert wasserstein_1d([0.0, 1.0], [0.0], u_weights=[3, 1]) == pytest.approx(0.25)


def test_wasserstein_1d_bad_input():
    with pytest.raises(SimGapInputError, match="empty"):
        wasserstein_1d([], [1.0])
    with pytest.raises(SimGapInputError, match="non-finite"):
        wasserstein_1d([np.nan], [1.0])
    with pytest.raises(SimGapInputError, match="u_weights"):
        wasserstein_1d([1.0, 2.0], [1.0], u_weights=[1.0])
    with pytest.raises(SimGapInputError, match="negative"):
        wasserstein_1d([1.0], [1.0], v_weights=[-1.0])


def test_exact_emd_hand_and_permutation():
    a = np.array([[0.0, 0, 0], [10, 0, 0]])
    b = np.array([[10.0, 1, 0], [0, 1, 0]])
    assert exact_emd(a, b) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    c = rng.random((40, 3))
    assert exact_emd(c, c[rng.permutation(40)]) == pytest.approx(0.0, abs=1e-12)
    assert exact_emd(c, c + [0, 0, 2.5]) == pytest.approx(2.5)


def test_exact_emd_bad_input():
    with pytest.raises(SimGapInputError, match="equal-size"):
        exact_emd(np.zeros((3, 3)), np.zeros((4, 3)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sliced_is_lower_bound_of_exact_emd(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, (80, 3))
    b = rng.normal(0, 1, (80, 3)) * [2, 1, 0.5] + [0.3, 0, 0]
    sw = sliced_wasserstein(a, b, n_projections=128, seed=seed)
    assert 0 < sw <= exact_emd(a, b) + 1e-12


@pytest.mark.parametrize("n, m", [(120, 120), (120, 77)])
def test_sliced_is_the_mean_1d_w1_of_the_projections(n, m):
    rng = np.random.default_rng(n + m)
    a, b = rng.normal(0, 1, (n, 3)), rng.normal(0.2, 1.5, (m, 3))
    dirs = np.random.default_rng(5).normal(size=(32, 3))  # the documented directions: seed, normalised normals
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    want = np.mean([wasserstein_distance(a @ d, b @ d) for d in dirs])
    assert sliced_wasserstein(a, b, n_projections=32, seed=5) == pytest.approx(want, rel=1e-10)


def test_sliced_tracks_shifts():
    rng = np.random.default_rng(5)
    a = rng.random((300, 3))
    values = [sliced_wasserstein(a, a + [s, 0, 0], n_projections=256) for s in (0.0, 0.5, 1.0, 2.0)]
    assert values[0] == pytest.approx(0.0, abs=1e-12)
    assert values[1] < values[2] < values[3]
    # a pure translation t projects to |t . theta|: mean over unit directions is |t|/2 in 3-D
    assert values[3] == pytest.approx(1.0, rel=0.1)
    assert sliced_wasserstein(a, a[:150] + 0.1, seed=3) == sliced_wasserstein(a, a[:150] + 0.1, seed=3)


def test_js_hand_values():
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_divergence([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-15)
    # p=[1,0], q=[0.5,0.5]: m=[0.75,0.25]; KL(p||m)=log2(4/3); KL(q||m)=0.5 log2(2/3)+0.5 log2(2)
    want = 0.5 * np.log2(4 / 3) + 0.5 * (0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25))
    assert js_divergence([1, 0], [0.5, 0.5]) == pytest.approx(want, rel=1e-12)
    assert js_divergence([0.5, 0.5], [1, 0]) == pytest.approx(want, rel=1e-12)


def test_js_matches_scipy():
    from scipy.spatial.distance import jensenshannon

    rng = np.random.default_rng(2)
    p, q = rng.random(50), rng.random(50)
    p[:5] = 0
    assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, rel=1e-9)


@pytest.mark.parametrize(
    "p, q, match",
    [([1, 0], [1, 0, 0], "same number of bins"), ([0, 0], [1, 1], "all zeros"), ([-1, 2], [1, 1], "negative")],
)
def test_js_bad_input(p, q, match):
    with pytest.raises(SimGapInputError, match=match):
        js_divergence(p, q)


def test_exact_emd_memory_is_one_cost_matrix():
    """The (N, N) float64 cost matrix is the O(N^2) part; no (N, N, 3) broadcast temporary on top of it."""
    import tracemalloc

    rng = np.random.default_rng(4)
    n = 1000
    a, b = rng.random((n, 3)), rng.random((n, 3))
    tracemalloc.start()
    try:
        exact_emd(a, b)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * n * n * 8
