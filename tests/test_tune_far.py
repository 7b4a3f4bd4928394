"""The far-range loss bound (simgap_ext.tune.far): hand-built frames with known shares, hand-computed shortfalls."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simgap_ext.errors import SimGapInputError
from simgap_ext.tune.far import far_loss_shortfall, far_shares, prepare_clean
from simgap_ext.tune.search import objective


def _frame(parts: dict[str, list[tuple[float, int]]]) -> dict:
    """Points on the +x axis: ``{class: [(range, count), ...]}``, one semantic id per class."""
    pts, sem, labels = [], [], {}
    for i, (name, rows) in enumerate(parts.items(), start=1):
        labels[str(i)] = {"class": name}
        for r, n in rows:
            pts.append(np.tile([r, 0.0, 0.0], (n, 1)))
            sem.append(np.full(n, i, np.uint32))
    return {
        "data": np.concatenate(pts).astype(np.float32),
        "info": {"pointSemantic": np.concatenate(sem), "idToLabels": labels},
    }


def test_far_shares_count_by_class_and_range():
    f = _frame({"vegetation": [(10.0, 30), (50.0, 20), (70.0, 10)], "car": [(35.0, 5)]})
    s = far_shares([f, f], ranges=(30.0, 45.0, 60.0))
    assert s.total == {"vegetation": 120, "vehicle": 10}  # car rolls up to its head class
    np.testing.assert_array_equal(s.beyond["vegetation"], [60, 60, 20])
    np.testing.assert_array_equal(s.beyond["vehicle"], [10, 0, 0])


def test_a_loss_the_real_shares_contradict_has_a_shortfall_and_none_has_none():
    world = _frame({"vegetation": [(10.0, 900), (70.0, 100)]})
    real = far_shares([world])  # the real scans show the same 10 % beyond 30, 45 and 60 m
    clean = prepare_clean([world])
    assert far_loss_shortfall(clean, real, 0.0, 5.0) == 0.0
    # a loss at 70 m keeps exactly half of the 70 m returns; each of the 3 far ranges needs all of them
    assert far_loss_shortfall(clean, real, 70.0, 5.0) == pytest.approx(1.5)
    # far beyond the returns: kept 1 / (1 + e^-6) at 70 m
    assert far_loss_shortfall(clean, real, 100.0, 5.0) == pytest.approx(3 * (1 - 1 / (1 + math.exp(-6))))
    assert far_loss_shortfall([world], real, 70.0, 5.0) == pytest.approx(1.5)  # frames or prepared alike


def test_a_world_with_twice_the_real_far_share_may_lose_half_of_it():
    real = far_shares([_frame({"building": [(10.0, 900), (70.0, 100)]})])
    clean = prepare_clean([_frame({"building": [(10.0, 800), (70.0, 200)]})])
    need = (100 / 1000) / (200 / 1000)  # 0.5 of the clean far returns must stay
    assert far_loss_shortfall(clean, real, 70.0, 5.0) == pytest.approx(0.0)
    assert far_loss_shortfall(clean, real, 60.0, 5.0) == pytest.approx(3 * (need - 1 / (1 + math.exp(2))))


def test_classes_without_enough_real_far_returns_do_not_bound_the_loss():
    real = far_shares([_frame({"pedestrian": [(10.0, 900), (70.0, 49)]})])
    clean = prepare_clean([_frame({"pedestrian": [(10.0, 900), (70.0, 49)]})])
    assert far_loss_shortfall(clean, real, 70.0, 5.0) == 0.0
    assert far_loss_shortfall(clean, real, 70.0, 5.0, min_returns=49) == pytest.approx(1.5)


def test_bad_input_is_refused():
    f = _frame({"vegetation": [(10.0, 10)]})
    with pytest.raises(SimGapInputError, match="at least one frame"):
        far_shares([])
    bad = {"data": f["data"], "info": {**f["info"], "pointSemantic": f["info"]["pointSemantic"][:3]}}
    with pytest.raises(SimGapInputError, match="semantic ids"):
        far_shares([bad])
    with pytest.raises(ValueError, match="far_width"):
        far_loss_shortfall([f], far_shares([f]), 50.0, 0.0)
    with pytest.raises(ValueError, match="different far ranges"):
        far_loss_shortfall(prepare_clean([f], (30.0,)), far_shares([f]), 50.0, 5.0)
    with pytest.raises(ValueError, match="far_shortfall"):
        objective([0.9], {"elevation_w1": 0.0}, -0.1)


def test_the_search_objective_adds_the_shortfall():
    assert objective([0.8, 0.9], {"elevation_w1": 0.5}, 0.25) == pytest.approx(1 - 0.85 + 0.01 + 0.25)


def test_on_real_scans_a_world_like_the_real_one_allows_no_far_loss():
    """Three real nuScenes HDL-32E keyframes as both sides: every far return is real, so a loss at 59 m (where the
    search put it) falls short by a large margin, one beyond the real returns hardly at all."""
    from pathlib import Path

    from simgap_ext.tune.real import list_nuscenes_scans, nuscenes_frame

    frames = [nuscenes_frame(d) for d in list_nuscenes_scans(Path(__file__).parent / "data" / "nuscenes_hdl32")]
    real = far_shares(frames)
    assert sum(int(b[-1]) for b in real.beyond.values()) > 0  # the real scans return beyond 60 m
    clean = prepare_clean(frames)
    assert far_loss_shortfall(clean, real, 0.0, 4.7) == 0.0
    assert far_loss_shortfall(clean, real, 59.2, 4.7) > 0.5
    assert far_loss_shortfall(clean, real, 150.0, 4.7) < 1e-3
