"""Frame statistics and object distances of the gate against exact small cases and brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from simgap_ext._warp import available_devices
from simgap_ext.frame import make_frame
from simgap_ext.gate.frame_stats import SURFACE_GAP, canonical_crop, frame_stats, range_roughness, ring_ids
from simgap_ext.gate.geometric import (
    TRIM_KEEP,
    batched_trimmed_chamfer,
    best_exemplar_match,
    log_count_ratio,
    weighted_g,
)

STEP = 2 * np.pi / 360  # one-degree columns


def _ring(ranges, elevation_deg=0.0, start=0):
    """Points of one scan ring at consecutive one-degree columns with the given ranges."""
    az = (start + np.arange(len(ranges))) * STEP
    el = np.radians(elevation_deg)
    r = np.asarray(ranges, dtype=np.float64)
    return np.stack([r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)], 1).astype(np.float32)


def test_range_roughness_exact_second_difference():
    ranges = np.full(20, 10.0)
    ranges[7] += 0.04  # a bump of 4 cm on a constant-range ring
    pts = _ring(ranges)
    res, surface, continuous = range_roughness(pts, np.zeros(20, np.int64), np.zeros(20, np.int64), azimuth_step=STEP)
    # Hand values: r_i - (r_{i-1} + r_{i+1}) / 2 -> +0.04 at the bump, -0.02 beside it, 0 elsewhere, NaN at ends.
    assert np.isnan(res[0]) and np.isnan(res[-1])
    assert res[7] == pytest.approx(0.04, abs=1e-5)
    assert res[6] == pytest.approx(-0.02, abs=1e-5) and res[8] == pytest.approx(-0.02, abs=1e-5)
    assert np.allclose(np.delete(res[1:-1], [5, 6, 7]), 0.0, atol=1e-5)
    assert surface.all() and continuous.all()


def test_range_roughness_breaks_at_gaps_edges_and_labels():
    ranges = np.full(12, 10.0)
    ranges[5] = 10.0 + 2 * SURFACE_GAP  # a mixed pixel: continuous on its ring but on no surface
    pts = _ring(ranges)
    pts = np.delete(pts, 9, axis=0)  # a dropped ray between columns 8 and 10
    labels = np.zeros(11, np.int64)
    labels[0] = 1  # column 0 belongs to another segment
    res, surface, continuous = range_roughness(pts, np.zeros(11, np.int64), labels, azimuth_step=STEP)
    assert not surface[5] and continuous[5]
    assert not continuous[0]  # its only neighbour is another segment
    assert np.isnan(res[4]) and np.isnan(res[6])  # triples through the mixed pixel
    assert np.isnan(res[8])  # column 8 lost its right neighbour (index 8 is column 8, next is column 10)
    assert res[2] == pytest.approx(0.0, abs=1e-5)


def test_ring_ids_from_beam_table_and_quantised():
    pts = np.concatenate([_ring(np.full(5, 10.0), -15.0), _ring(np.full(5, 20.0), 1.0), _ring(np.full(5, 5.0), 15.0)])
    beams = [15.0, 1.0, -15.0]  # beam 0 at the top
    assert ring_ids(pts, beams).tolist() == [2] * 5 + [1] * 5 + [0] * 5
    q = ring_ids(pts)
    assert len(set(q[:5].tolist())) == 1 and len(set(q.tolist())) == 3


def test_canonical_crop_is_pose_invariant():
    rng = np.random.default_rng(0)
    body = rng.normal(0, 0.3, (200, 3)) + [0, 0, 1.0]
    views = []
    for yaw, dist in ((0.3, 12.0), (2.5, 12.0)):
        # The same body placed at the same range in two directions, rotated with its bearing.
        c, s = math.cos(yaw), math.sin(yaw)
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        placed = (body + [dist, 0, 0]) @ rot.T + [0, 0, -1.7]
        canon, rng_m = canonical_crop(placed.astype(np.float32))
        views.append((canon, rng_m))
    assert np.allclose(views[0][0], views[1][0], atol=1e-4)
    assert views[0][1] == pytest.approx(views[1][1], rel=1e-5)
    assert views[0][1] == pytest.approx(12.0, abs=0.1)
    assert views[0][0][:, 2].min() == pytest.approx(0.0, abs=1e-6)


def test_frame_stats_counts_and_sanity_flags():
    a = _ring(np.full(30, 8.0))
    b = _ring(np.full(10, 15.0), start=100)
    g = _ring(np.full(40, 20.0), -10.0)
    pts = np.concatenate([a, b, g, a[:3]])  # three exact duplicates
    sem = np.array([30] * 30 + [10] * 10 + [40] * 40 + [30] * 3)
    inst = np.array([1] * 15 + [2] * 15 + [0] * 10 + [0] * 40 + [1] * 3)
    frame = make_frame(pts, sem, inst, {30: "pedestrian", 10: "vehicle", 40: "ground"})
    st = frame_stats(frame, background_classes=("ground",))
    assert st.class_points == {"pedestrian": 33, "vehicle": 10, "ground": 40}
    assert st.class_instances == {"pedestrian": 2, "vehicle": 0, "ground": 0}
    assert st.zero_instance_classes == ["vehicle"]
    assert sorted((c.class_name, c.instance, c.total_points) for c in st.crops) == [
        ("pedestrian", 1, 18),
        ("pedestrian", 2, 15),
    ]
    assert st.duplicate_fraction == pytest.approx(3 / 83)
    assert np.allclose(st.ranges, np.linalg.norm(pts, axis=1))


def test_beam_ratio_counts_returns_per_beam():
    pts = np.concatenate([_ring(np.full(90, 10.0), 1.0), _ring(np.full(45, 10.0), -1.0)])
    frame = make_frame(pts, np.full(135, 40), np.zeros(135), {40: "ground"})
    st = frame_stats(frame, vertical_angles_deg=[1.0, -1.0], horizontal_resolution=360, background_classes=("ground",))
    assert st.beam_ratio.tolist() == pytest.approx([0.25, 0.125])


def _trimmed_reference(a, b):
    d = cdist(a.astype(np.float64), b.astype(np.float64))

    def tm(x):
        x = np.sort(x)
        return x[: max(1, math.ceil(TRIM_KEEP * x.size))].mean()

    return 0.5 * (tm(d.min(axis=1)) + tm(d.min(axis=0)))


class _Bank:
    """The two members of a ReferenceBank that best_exemplar_match reads."""

    def __init__(self, clouds):
        self.clouds = clouds

    def exemplar(self, e):
        return self.clouds[e]


@pytest.mark.parametrize("backend", ["warp", "kdtree", "auto"])
@pytest.mark.parametrize("device", available_devices())
def test_best_exemplar_match_is_trimmed_chamfer_min(device, backend):
    rng = np.random.default_rng(3)
    crop = rng.normal(0, 0.5, (60, 3)).astype(np.float32)
    clouds = [rng.normal(0, 0.5, (n, 3)).astype(np.float32) + off for n, off in ((40, 1.0), (80, 0.1), (30, 3.0))]
    best, arg = best_exemplar_match(crop, _Bank(clouds), np.arange(3), device=device, backend=backend)
    ref = [_trimmed_reference(crop, c) for c in clouds]
    assert arg == int(np.argmin(ref))
    # The Warp path computes in float32 on a lattice of offset pairs: float32 rounding at the offsets.
    assert best == pytest.approx(min(ref), abs=1e-4)


@pytest.mark.parametrize("device", available_devices())
def test_batched_chamfer_warp_matches_kdtree_on_many_pairs(device):
    rng = np.random.default_rng(5)
    pairs = [
        (rng.normal(0, s, (n, 3)).astype(np.float32), rng.normal(0.2, s, (m, 3)).astype(np.float32))
        for s, n, m in zip(rng.uniform(0.2, 3.0, 30), rng.integers(5, 200, 30), rng.integers(5, 200, 30), strict=True)
    ]
    warp_d = batched_trimmed_chamfer(pairs, device=device, backend="warp")
    ref = [_trimmed_reference(a, b) for a, b in pairs]
    assert np.allclose(warp_d, ref, atol=2e-4)
    assert np.allclose(batched_trimmed_chamfer(pairs, backend="kdtree"), ref, atol=1e-6)


def test_log_count_ratio_and_weighted_g():
    assert log_count_ratio(10, np.array([100, 20, 5])) == pytest.approx(math.log(10 / 20))
    assert log_count_ratio(0, np.array([1])) == 0.0

    class C:
        def __init__(self, score):
            self.score = score

    comps = {"chamfer": C(1.0), "count": C(0.0), "density": C(0.5)}
    assert weighted_g(comps, {"chamfer": 1.0, "count": 0.5, "density": 1.0}) == pytest.approx((1 + 0 + 0.5) / 2.5)
    assert weighted_g(comps, {"roughness": 1.0}) is None


# ------------------------------------------------------------------------------------------- bank calibration


def _scan(rng: np.random.Generator, frame_id: int) -> dict:
    """8 rings x 360 columns: ground at ~12 m and one vehicle (instance 1) at ~8 m over 30 columns."""
    pts, sem, inst = [], [], []
    for ring in range(8):
        ranges = 12.0 + rng.normal(0.0, 0.02 + 0.01 * (frame_id % 3), 360)
        obj = np.arange(360) < 30
        ranges[obj] = 8.0 + 0.3 * np.sin(np.arange(30) / 5.0) + rng.normal(0.0, 0.02, 30)
        keep = rng.random(360) > 0.05 * (1 + frame_id % 4)  # ray drop varies by frame: density varies
        pts.append(_ring(ranges, elevation_deg=-15.0 + 2.0 * ring)[keep])
        sem.append(np.where(obj, 10, 40)[keep])
        inst.append(obj.astype(np.int64)[keep])
    return make_frame(np.concatenate(pts), np.concatenate(sem), np.concatenate(inst), {10: "vehicle", 40: "ground"})


def test_bank_calibration_holds_out_a_bounded_frame_sample_and_matches_brute_force():
    from scipy import stats
    from scipy.stats import wasserstein_distance

    from simgap_ext.gate import GateConfig, ReferenceBank
    from simgap_ext.gate.bank import _CALIBRATION_FRAMES
    from simgap_ext.gate.geometric import MAX_SCENE_SAMPLES

    rng = np.random.default_rng(3)
    n = _CALIBRATION_FRAMES + 6
    cfg = GateConfig()
    bank = ReferenceBank.build([_scan(rng, i) for i in range(n)], config=cfg, device="cpu")
    held = bank.meta["calibration_frames"]
    assert len(held) == _CALIBRATION_FRAMES and held == sorted(set(held)) and 0 <= held[0] and held[-1] < n
    # scene range: leave-one-frame-out W1 over the held-out frames only (SciPy as the reference), both sides thinned
    # by stride to MAX_SCENE_SAMPLES as the gate's scene_components does when it scores a frame
    cap = MAX_SCENE_SAMPLES
    w = []
    for f in held:
        mine, rest = bank.scene_ranges[bank.scene_range_frame == f], bank.scene_ranges[bank.scene_range_frame != f]
        assert rest.size > cap  # the thinning is exercised
        w.append(wasserstein_distance(mine[:: math.ceil(mine.size / cap)], rest[:: math.ceil(rest.size / cap)]))
    # the scene is one test per frame: the plain calibration quantile of those distances
    assert bank.calibration["scene_range"]["scene"] == pytest.approx(np.quantile(w, cfg.calibration_quantile), rel=1e-5)
    # density: every real frame, |value - mean of the other frames| through the public accessor
    ci = bank.class_index("vehicle")
    ref = [
        abs(float(v) - bank.class_density("vehicle", exclude_frame=int(f)))
        for v, f in zip(bank.dens_vals[bank.dens_class == ci], bank.dens_frame[bank.dens_class == ci], strict=True)
    ]
    assert len(ref) == n
    # per-class tests are Bonferroni-corrected for the classes judged per frame (here 2: vehicle and ground)
    q_class = 1.0 - (1.0 - cfg.calibration_quantile) / 2
    assert bank.meta["calibration_class_quantile"] == pytest.approx(q_class)
    # per class: the normal prediction interval of a new frame's continuity around the bank's mean, from the real
    # frames' continuity values themselves (SciPy), is what the bank derived from the leave-one-out deviations
    v = bank.dens_vals[bank.dens_class == ci].astype(np.float64)
    lo, hi = stats.t.interval(q_class, v.size - 1, loc=v.mean(), scale=v.std(ddof=1) * math.sqrt(1 + 1 / v.size))
    assert bank.calibration["density"]["vehicle"] == pytest.approx(hi - v.mean(), rel=1e-4)
