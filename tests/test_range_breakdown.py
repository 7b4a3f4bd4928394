"""benchmarks/range_breakdown.py's W1 split by range band against scipy's W1 and a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest
from _benchmarks import load_benchmark
from scipy.stats import wasserstein_distance


@pytest.fixture(scope="module")
def band_w1():
    return load_benchmark("range_breakdown").band_w1


def test_band_parts_sum_to_scipy_w1(band_w1):
    rng = np.random.default_rng(7)
    a, b = rng.exponential(9.0, 4000), rng.exponential(12.0, 2500) + rng.uniform(0, 3, 2500)
    parts = band_w1(a, b)
    assert parts.shape == (5,) and (parts >= 0).all()
    assert parts.sum() == pytest.approx(wasserstein_distance(a, b), rel=1e-9)


def test_band_parts_by_hand(band_w1):
    # F_a - F_b is 1/2 on [1, 3) and 1/2 on [12, 15) (a = {1, 12}, b = {3, 15}): 1 m in 0-10, 1.5 m in 10-20
    parts = band_w1(np.array([1.0, 12.0]), np.array([3.0, 15.0]))
    np.testing.assert_allclose(parts, [1.0, 1.5, 0.0, 0.0, 0.0], atol=1e-12)
    # a band edge inside an interval splits it: [8, 12) at |F| = 1 gives 2 m below 10 m and 2 m above
    parts = band_w1(np.array([8.0]), np.array([12.0]))
    np.testing.assert_allclose(parts, [2.0, 2.0, 0.0, 0.0, 0.0], atol=1e-12)


def test_band_w1_needs_both_sides(band_w1):
    with pytest.raises(ValueError, match="samples on both sides"):
        band_w1(np.zeros(0), np.ones(3))
