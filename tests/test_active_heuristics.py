"""Active-learning heuristics and selection (NumPy only: runs without torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simgap_ext.active import (
    HEURISTICS,
    Region,
    bald,
    entropy,
    get_heuristic,
    margin,
    random_scores,
    reduce_scores,
    region_scores,
    select_regions,
    select_top,
    variation_ratio,
    voxel_regions,
)


def _dirichlet(n: int, c: int, t: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.moveaxis(rng.dirichlet(np.ones(c), size=(n, t)), 2, 1)  # (N, C, T)


def test_uniform_gives_max_entropy_and_one_hot_gives_zero():
    c = 7
    uniform = np.full((3, c, 5), 1.0 / c)
    np.testing.assert_allclose(entropy(uniform), math.log(c), rtol=1e-9)
    one_hot = np.zeros((3, c, 5))
    one_hot[:, 2, :] = 1.0
    np.testing.assert_allclose(entropy(one_hot), 0.0, atol=1e-9)
    np.testing.assert_allclose(variation_ratio(uniform), 1 - 1 / c)
    np.testing.assert_allclose(variation_ratio(one_hot), 0.0, atol=1e-12)
    np.testing.assert_allclose(margin(uniform), 1.0)
    np.testing.assert_allclose(margin(one_hot), 0.0, atol=1e-12)


def test_bald_of_identical_passes_is_zero_and_of_disagreeing_one_hots_is_log2():
    p = _dirichlet(4, 5, 1)
    same = np.repeat(p, 6, axis=2)
    np.testing.assert_allclose(bald(same), 0.0, atol=1e-9)
    # two confident passes that disagree: mean is (0.5, 0.5), each pass has entropy 0 -> MI = log 2
    disagree = np.zeros((1, 2, 2))
    disagree[0, 0, 0] = disagree[0, 1, 1] = 1.0
    np.testing.assert_allclose(bald(disagree), math.log(2), rtol=1e-9)
    np.testing.assert_allclose(entropy(disagree), math.log(2), rtol=1e-9)


def test_heuristics_match_hand_computed_values():
    # one point, 3 classes, 2 passes
    p = np.array([[[0.6, 0.2], [0.3, 0.5], [0.1, 0.3]]])
    mean = np.array([0.4, 0.4, 0.2])
    h_mean = -(mean * np.log(mean)).sum()
    h1 = -(np.array([0.6, 0.3, 0.1]) * np.log([0.6, 0.3, 0.1])).sum()
    h2 = -(np.array([0.2, 0.5, 0.3]) * np.log([0.2, 0.5, 0.3])).sum()
    np.testing.assert_allclose(entropy(p), [h_mean], rtol=1e-9)
    np.testing.assert_allclose(bald(p), [h_mean - (h1 + h2) / 2], rtol=1e-9)
    np.testing.assert_allclose(margin(p), [1.0], rtol=1e-9)  # top two tie at 0.4
    np.testing.assert_allclose(variation_ratio(p), [0.6], rtol=1e-9)


def test_bald_is_nonnegative_and_below_entropy_on_random_probabilities():
    p = _dirichlet(200, 6, 10, seed=3)
    b, e = bald(p), entropy(p)
    assert (b >= 0).all() and (b <= e + 1e-12).all()


def test_get_heuristic_by_name_and_errors():
    for name, fn in HEURISTICS.items():
        assert get_heuristic(name) is fn
    assert get_heuristic("Variation-Ratio") is variation_ratio
    with pytest.raises(ValueError, match="unknown heuristic 'nope'.*entropy"):
        get_heuristic("nope")
    with pytest.raises(ValueError, match=r"\(N, C, T\)"):
        entropy(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        entropy(np.full((1, 2, 1), np.nan))
    r1, r2 = random_scores(_dirichlet(10, 3, 2), seed=1), random_scores(_dirichlet(10, 3, 2), seed=1)
    np.testing.assert_array_equal(r1, r2)


def test_reduce_scores():
    s = np.arange(101, dtype=float)
    assert reduce_scores(s) == 50.0
    assert reduce_scores(s, "max") == 100.0
    assert reduce_scores(s, "p95") == 95.0
    assert reduce_scores(np.zeros(0)) == 0.0
    with pytest.raises(ValueError, match="unknown reduction"):
        reduce_scores(s, "median")


def test_select_top_percentile_and_count():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6])
    # top 5 % of 10 -> ceil(0.5) = 1 scan: the highest, ties by index
    np.testing.assert_array_equal(select_top(scores), [1])
    np.testing.assert_array_equal(select_top(scores, percentile=70), [1, 3, 7])
    np.testing.assert_array_equal(select_top(scores, count=4), [1, 3, 7, 5])
    np.testing.assert_array_equal(select_top(scores, count=99), np.argsort(-scores, kind="stable"))
    big = np.random.default_rng(0).random(1000)
    np.testing.assert_array_equal(np.sort(select_top(big)), np.sort(np.argsort(-big)[:50]))
    with pytest.raises(ValueError, match="percentile"):
        select_top(scores, percentile=100)
    with pytest.raises(ValueError, match="NaN"):
        select_top(np.array([np.nan]))


def test_voxel_regions_match_brute_force_cells():
    rng = np.random.default_rng(1)
    pts = rng.uniform(-30, 30, size=(500, 3))
    ids = voxel_regions(pts, 5.0)
    cells = [tuple(np.floor(p[:2] / 5.0).astype(int)) for p in pts]
    for i in range(len(pts)):
        for j in range(i + 1, min(len(pts), i + 40)):
            assert (ids[i] == ids[j]) == (cells[i] == cells[j])
    assert ids.max() + 1 == len(set(cells))
    with pytest.raises(ValueError, match="voxel size"):
        voxel_regions(pts, 0.0)


def test_region_scores_and_greedy_point_budget():
    ids = np.array([0, 0, 1, 1, 1, 2])
    s = np.array([1.0, 3.0, 0.5, 0.5, 0.5, 9.0])
    assert region_scores(s, ids) == [(0, 2, 2.0), (1, 3, 0.5), (2, 1, 9.0)]
    cands = [Region(0, 0, 2, 2.0), Region(0, 1, 3, 0.5), Region(0, 2, 1, 9.0), Region(1, 0, 10, 5.0)]
    # budget 4: 9.0 (1 pt), 5.0 does not fit (10 pts), 2.0 (2 pts), 0.5 does not fit (3 > 1 left)
    assert select_regions(cands, 4) == [cands[2], cands[0]]
    assert select_regions(cands, 100) == [cands[2], cands[3], cands[0], cands[1]]
    assert select_regions(cands, 0) == []


def test_heuristics_agree_with_baal():
    heur = pytest.importorskip("baal.active.heuristics")
    p = _dirichlet(50, 4, 8, seed=5).astype(np.float64)
    # baal's heuristics take (N, C, T) probabilities and return per-sample scores (baal 2.1.0,
    # baal/active/heuristics/heuristics.py: Entropy, BALD, Margin)
    np.testing.assert_allclose(heur.Entropy(reduction="none").compute_score(p), entropy(p), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(heur.BALD(reduction="none").compute_score(p), bald(p), rtol=1e-5, atol=1e-6)
    # baal's Margin is the raw top-2 margin (ranked ascending); ours is 1 - margin (ranked descending)
    np.testing.assert_allclose(1.0 - heur.Margin(reduction="none").compute_score(p), margin(p), rtol=1e-5, atol=1e-6)
