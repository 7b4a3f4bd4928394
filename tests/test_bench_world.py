"""benchmarks/bench_world.py's vegetation heights against hand-built frames whose ground and plants are known."""

from __future__ import annotations

import numpy as np
import pytest
from _benchmarks import load_benchmark


@pytest.fixture(scope="module")
def world():
    return load_benchmark("bench_world")


def _frame(ground_z: float, n_ground: int, veg_heights: np.ndarray, veg_range: float) -> dict:
    """A frame: ``n_ground`` ground points at ``ground_z`` within 10 m, one far ground point at another height
    (beyond 15 m: not the local ground) and vegetation points ``veg_heights`` above the ground at ``veg_range``."""
    rng = np.random.default_rng(0)
    az = rng.uniform(0, 2 * np.pi, n_ground)
    r = rng.uniform(2.0, 10.0, n_ground)
    ground = np.c_[r * np.cos(az), r * np.sin(az), np.full(n_ground, ground_z)]
    far_ground = np.array([[40.0, 0.0, ground_z + 3.0]])
    veg = np.c_[np.full(veg_heights.size, veg_range), np.zeros(veg_heights.size), ground_z + veg_heights]
    data = np.vstack([ground, far_ground, veg]).astype(np.float32)
    sem = np.r_[np.full(n_ground + 1, 1), np.full(veg_heights.size, 7)].astype(np.uint32)
    return {"data": data, "info": {"pointSemantic": sem, "idToLabels": {"1": {"class": "ground"}, "7": "vegetation"}}}


def test_vegetation_heights_are_measured_from_each_frames_local_ground(world):
    a = _frame(-1.8, 200, np.array([0.5, 1.0, 2.0, 4.0]), 12.0)
    b = _frame(-1.7, 200, np.array([3.0, 6.0]), 20.0)  # another frame, another ground height
    out = world.vegetation_heights([a, b])
    pooled = np.array([0.5, 1.0, 2.0, 4.0, 3.0, 6.0])
    assert out["frames"] == 2
    np.testing.assert_allclose(out["height_q"], np.percentile(pooled, [10, 50, 90]), atol=1e-5)
    assert out["range_median"] == pytest.approx(np.median([12.0] * 4 + [20.0] * 2))


def test_frames_without_a_local_ground_or_plants_are_left_out(world):
    kept = _frame(-1.8, 200, np.array([1.0, 2.0]), 10.0)
    no_ground = _frame(-1.8, 10, np.array([9.0]), 10.0)  # 10 ground points: too few for a ground height
    no_plants = _frame(-1.8, 200, np.zeros(0), 10.0)
    out = world.vegetation_heights([kept, no_ground, no_plants])
    assert out["frames"] == 1
    np.testing.assert_allclose(out["height_q"], np.percentile([1.0, 2.0], [10, 50, 90]), atol=1e-5)
    assert world.vegetation_heights([no_ground, no_plants]) is None
