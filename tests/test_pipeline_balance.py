"""Statistics left to the main process by a render worker: the values equal a full computation (on real scans and
a render), and the balancer moves parts toward the slower process only."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.frame import make_frame
from simgap_ext.gate.frame_stats import DEFERRABLE, finish_frame_stats, frame_stats
from simgap_ext.gate.gate import FrameStatsSpec
from simgap_ext.pipeline.balance import ALL_STATS, StatsBalancer, WorkerStats
from simgap_ext.sensors import load_sensor_profile

DATA = Path(__file__).parent / "data"


def _real_frame() -> dict:
    """A real KITTI-360 scan subset (unlabelled: one class), with two fake instances so that crops exist."""
    pts = np.fromfile(DATA / "kitti360_nn" / "0000002000_every10th.bin", np.float32).reshape(-1, 4)[:, :3].copy()
    sem = np.zeros(len(pts), np.int32)
    inst = np.zeros(len(pts), np.int32)
    near = np.linalg.norm(pts[:, :2], axis=1) < 8.0
    sem[near] = 1
    inst[near] = 1 + (pts[near, 0] > 0)
    return make_frame(pts, sem, inst, {0: "ground", 1: "vehicle"}, sensor="hdl-64e")


def _assert_same(a, b):
    assert a.pending == () and b.pending == ()
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if name == "crops":
            assert len(x) == len(y)
            for cx, cy in zip(x, y, strict=True):
                np.testing.assert_array_equal(cx.points, cy.points)
                np.testing.assert_array_equal(cx.roughness, cy.roughness)
                assert (cx.class_name, cx.instance, cx.range, cx.total_points) == (
                    cy.class_name, cy.instance, cy.range, cy.total_points,
                )  # fmt: skip
        elif isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y, name


@pytest.mark.parametrize("skip", [("origin",), ("descriptors",), DEFERRABLE])
def test_deferred_parts_finished_later_equal_a_full_computation(skip):
    frame = _real_frame()
    full = frame_stats(frame, background_classes=("ground",))
    assert full.descriptors.shape[0] > 100 and full.origin_offset is not None  # the parts are really computed
    part = frame_stats(frame, background_classes=("ground",), skip=skip)
    assert part.pending == tuple(p for p in DEFERRABLE if p in skip)
    _assert_same(finish_frame_stats(frame, part), full)
    assert finish_frame_stats(frame, full) is full


def test_deferred_parts_of_a_world_frame_use_its_sensor_origin():
    from simgap_ext.backends import get_scene_source

    src = get_scene_source("warp", sensor="vlp-16", preset="realistic", device="cpu")
    frame = dict(src.render(seed=5))
    origin = np.array([3.0, -2.0, 1.5], np.float32)
    frame["data"] = frame["data"] + origin
    frame["sensor_origin"] = origin
    vert = load_sensor_profile("vlp-16").vertical_angles_deg
    full = frame_stats(frame, vertical_angles_deg=vert)
    _assert_same(finish_frame_stats(frame, frame_stats(frame, vertical_angles_deg=vert, skip=DEFERRABLE)), full)


def test_unknown_part_is_refused():
    with pytest.raises(ValueError, match="cannot skip"):
        frame_stats(_real_frame(), skip=("ranges",))


def test_balancer_defers_while_the_worker_is_slower_and_keeps_the_faster_setting():
    b = StatsBalancer(("a", "b"), deferred=0)
    assert b.skip() == ()
    b.observe(1.2, 0.6, 0)  # worker slower, but one frame is not enough
    assert b.skip() == ()
    b.observe(1.2, 0.6, 0)
    assert b.skip() == ("a",)
    b.observe(1.2, 0.6, 0)  # a frame submitted before the change does not count for the new setting
    b.observe(1.0, 0.8, 1)
    b.observe(1.0, 0.8, 1)
    assert b.skip() == ("a", "b")
    b.observe(0.7, 1.3, 2)  # now the main process is slower, and setting 1 was faster: back to it
    b.observe(0.7, 1.3, 2)
    assert b.skip() == ("a",)
    b.observe(0.95, 0.9, 1)  # worker slightly slower, but setting 2 was tried and slower: stay
    b.observe(0.95, 0.9, 1)
    assert b.skip() == ("a",)


def test_fixed_balancer_never_moves():
    b = StatsBalancer(DEFERRABLE, deferred=2, adapt=False)
    for _ in range(5):
        b.observe(0.1, 5.0, 2)
    assert b.skip() == DEFERRABLE
    with pytest.raises(ValueError, match="deferred"):
        StatsBalancer(DEFERRABLE, deferred=3)


def test_worker_stats_compute_the_spec_or_nothing_when_all_are_left_to_the_main_process():
    profile = load_sensor_profile("hdl-64")
    spec = FrameStatsSpec(
        vertical_angles_deg=tuple(profile.vertical_angles_deg),
        horizontal_resolution=profile.horizontal_resolution,
        reference_columns=None,
        background_classes=("ground",),
        duplicate_tolerance=1e-4,
        roll_up=False,
    )
    frame = _real_frame()
    worker = pickle.loads(pickle.dumps(WorkerStats(spec)))  # what the worker process receives
    assert worker(frame, skip=(*DEFERRABLE, ALL_STATS)) is None
    _assert_same(finish_frame_stats(frame, worker(frame, skip=DEFERRABLE)), spec(frame))
    _assert_same(worker(frame), spec(frame))
    # the balancer's last step: with every statistics part deferred the worker is still slower
    b = StatsBalancer((*DEFERRABLE, ALL_STATS), deferred=len(DEFERRABLE))
    b.observe(0.55, 0.45, 2)
    b.observe(0.55, 0.45, 2)
    assert ALL_STATS in b.skip()
