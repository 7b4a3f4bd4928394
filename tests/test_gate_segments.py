"""The segment test (gate.segments): clustering, descriptors, votes and limits against independent references, the
bank's format-7 arrays, and the gate on real nuScenes keyframes of tests/data (HDL-32E)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

from simgap_ext.data.taxonomy import roll_up_frame
from simgap_ext.errors import ReferenceDataError, SimGapInputError
from simgap_ext.frame import make_frame
from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
from simgap_ext.gate.segments import (
    COUNT_FLOOR,
    DESCRIPTOR_NAMES,
    K_SEGMENTS,
    LINK,
    MIN_SEGMENT_POINTS,
    VOXEL,
    SegmentIndex,
    SegmentTests,
    _clusters,
    count_limits,
    majority_vote,
    pair_counts,
    plurality_vote,
    segment_counts,
    segment_descriptors,
)

DATA = Path(__file__).parent / "data"


def _arrays(frame):
    f = roll_up_frame(frame)
    info = f["info"]
    names = {int(k): (v["class"] if isinstance(v, dict) else str(v)) for k, v in info["idToLabels"].items()}
    return np.asarray(f["data"], np.float32), np.asarray(info["pointSemantic"]).astype(np.uint32), names


# keyframes, bank7: tests/conftest.py (built once per session)


# ------------------------------------------------------------------------------------------------- pieces
def test_clusters_equal_single_linkage_by_brute_force(keyframes):
    """Segments of a real vehicle class = connected components of its voxels linked within LINK (a dense distance
    matrix and a union-find here), segments under MIN_SEGMENT_POINTS points left out."""
    pts, sem, names = _arrays(keyframes[0][1])
    vid = [k for k, v in names.items() if v == "vehicle"]
    p = pts[np.isin(sem, vid)].astype(np.float64)
    assert p.shape[0] > 500
    keys = np.floor(p / VOXEL).astype(np.int64)
    uniq = {tuple(k) for k in keys.tolist()}
    vox = sorted(uniq)
    where = {k: i for i, k in enumerate(vox)}
    centres = (np.array(vox, np.float64) + 0.5) * VOXEL
    dist = np.sqrt(((centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1))
    parent = list(range(len(vox)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(*np.nonzero(np.triu(dist <= LINK, 1)), strict=True):
        parent[find(int(a))] = find(int(b))
    root = np.array([find(where[tuple(k)]) for k in keys.tolist()])
    expected = {frozenset(np.flatnonzero(root == r).tolist()) for r in np.unique(root)}
    expected = {s for s in expected if len(s) >= MIN_SEGMENT_POINTS}
    got = {frozenset(g.tolist()) for g in _clusters(p)}
    assert got == expected and len(got) >= 2


def test_descriptors_of_a_box_on_the_ground_by_hand():
    """A 4.5 x 1.8 x 1.5 m box surface (yawed 30 degrees) standing on a ground plane 1.7 m below the sensor."""
    rng = np.random.default_rng(0)
    g = rng.uniform(-12, 12, (20000, 2)) + [12, 0]
    ground = np.c_[g, np.full(len(g), -1.7)]
    u = rng.uniform(0, 1, (6000, 3))
    faces = []
    for axis in range(3):
        for side in (0.0, 1.0):
            if axis == 2 and side == 0.0:
                continue  # no bottom face
            f = u[: len(u) // 5].copy()
            f[:, axis] = side
            faces.append(f)
    box = np.concatenate(faces) * [4.5, 1.8, 1.5] - [2.25, 0.9, 0.0]
    yaw = math.radians(30)
    rot = np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]])
    box = box @ rot.T + [10.0, 3.0, -1.7]
    pts = np.concatenate([ground, box])
    cls = np.r_[np.zeros(len(ground), int), np.ones(len(box), int)]
    rough = np.r_[np.full(len(ground), np.nan), np.full(len(box), -0.03)]
    desc, owner = segment_descriptors(pts, cls, rough, skip=[0])
    assert desc.shape == (1, len(DESCRIPTOR_NAMES)) and owner.tolist() == [1]
    d = dict(zip(DESCRIPTOR_NAMES, desc[0].tolist(), strict=True))
    # 2-98 % spans of points on the faces: close to the box's edges
    assert d["length"] == pytest.approx(4.5, rel=0.06) and d["width"] == pytest.approx(1.8, rel=0.08)
    assert d["height"] == pytest.approx(1.5, rel=0.08)
    assert abs(d["bottom_above_ground"]) < 0.05 and d["top_above_ground"] == pytest.approx(1.5, rel=0.08)
    centre = box.mean(axis=0)
    r = np.linalg.norm(centre)
    assert d["log_range"] == pytest.approx(math.log(r), rel=1e-4)
    assert d["log_points_sr"] == pytest.approx(math.log(len(box) * r * r), rel=1e-4)
    s = np.linalg.svd(box - centre, compute_uv=False) / math.sqrt(len(box) - 1)  # sigma of the principal axes
    assert d["linearity"] == pytest.approx((s[0] - s[1]) / s[0], abs=1e-4)
    assert d["planarity"] == pytest.approx((s[1] - s[2]) / s[0], abs=1e-4)
    assert d["scattering"] == pytest.approx(s[2] / s[0], abs=1e-4)
    assert d["roughness"] == pytest.approx(0.03, abs=1e-6)
    # without roughness the segment reads as rough as the clip; bad input is refused
    assert segment_descriptors(pts, cls, None, skip=[0])[0][0, -1] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="class_of_point"):
        segment_descriptors(pts, cls[:-1])
    bad = pts.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        segment_descriptors(bad, cls)


def test_majority_votes_against_brute_force():
    """Majority of the K nearest real segments (scaled by the per-column spread), own frame left out, -1 without a
    majority: a dense distance matrix and a sort here."""
    rng = np.random.default_rng(1)
    desc = rng.normal(size=(300, len(DESCRIPTOR_NAMES))) * rng.uniform(0.1, 5, len(DESCRIPTOR_NAMES))
    cls = rng.integers(0, 3, 300)
    desc[cls == 1, 0] += 3.0  # class 1 separable on one column
    frame = rng.integers(0, 6, 300)
    index = SegmentIndex(desc, cls, frame, 4)
    q = desc[frame == 2]
    scaled = desc / desc.std(axis=0)
    own = cls[frame == 2]
    for excl in (None, 2):
        got = index.majority(q, exclude_frame=excl)
        tally = index.tallies(q, exclude_frame=excl)
        plural = plurality_vote(tally, own)
        dist = np.sqrt((((q / desc.std(axis=0))[:, None, :] - scaled[None]) ** 2).sum(-1))
        if excl is not None:
            dist[:, frame == excl] = np.inf
        for i, row in enumerate(dist):
            near = np.argsort(row, kind="stable")[:K_SEGMENTS]
            counts = np.bincount(cls[near], minlength=4)
            assert np.array_equal(tally[i], counts)
            want = int(counts.argmax()) if counts.max() * 2 > K_SEGMENTS else -1
            assert got[i] == want
            # Plurality: own class under half the votes -> the other class with the most (lowest on a tie).
            others = [(counts[k], -k) for k in range(4) if k != own[i]]
            want_pl = -max(others)[1] if counts[own[i]] * 2 < K_SEGMENTS else -1
            assert plural[i] == want_pl
    assert (index.majority(q, exclude_frame=None) >= 0).any()
    assert (plurality_vote(index.tallies(q), own) >= 0).any()


def test_pair_counts_by_hand():
    seg = np.array([0, 0, 0, 1, 1, 2])
    maj = np.array([1, 1, -1, 1, 0, 0])
    want = np.zeros((3, 3))
    want[0, 1] = 2  # two class-0 segments look like 1; the one without a majority counts nowhere
    want[1, 0] = 1  # a class-1 segment voting for its own class counts nowhere
    want[2, 0] = 1
    assert np.array_equal(pair_counts(seg, maj, 3), want)


def test_vote_rules_and_segment_counts_by_hand():
    """Votes of 6 segments over 3 classes: majority (> half), plurality (own class < half; the other class with the
    most, the lower index on a tie), and the (C, 2C) counts of both rules."""
    tally = np.array(
        [
            [2, 6, 7],  # class 0: class 2 holds 7 of 15, no majority; own 2 < 7.5 -> plurality 2
            [1, 9, 5],  # class 0: majority 1; plurality 1
            [8, 4, 3],  # class 0: own majority -> neither
            [5, 5, 5],  # class 1: own 5 < 7.5; tie of 0 and 2 -> 0; no majority
            [0, 7, 8],  # class 1: majority 2; own 7 < 7.5 -> plurality 2
            [0, 0, 0],  # class 2: no votes -> neither
        ]
    )
    seg = np.array([0, 0, 0, 1, 1, 2])
    assert majority_vote(tally).tolist() == [-1, 1, 0, -1, 2, -1]
    assert plurality_vote(tally, seg).tolist() == [2, 1, -1, 0, 2, -1]
    want = np.zeros((3, 6))
    want[0, 1] = 1  # majority columns
    want[1, 2] = 1
    want[0, 3 + 2] = want[0, 3 + 1] = 1  # plurality columns
    want[1, 3 + 0] = want[1, 3 + 2] = 1
    assert np.array_equal(segment_counts(tally, seg, 3), want)


def test_count_limits_against_independent_references():
    """Column of zeros: the Poisson-Jeffreys posterior predictive quantile (integrated numerically here); a column
    with spread: margin x the normal prediction bound written out by hand."""
    level, margin, n = 0.999, 1.5, 9
    rows = np.zeros((n, 2))
    rows[:, 1] = [0, 1, 3, 0, 2, 5, 1, 0, 4]
    mean, top, limit = count_limits(rows, level, margin)

    def predictive_cdf(x: int, s: float) -> float:
        # P(X <= x) = int Poisson_cdf(x; lam) Gamma(lam; s + 1/2, rate n) dlam
        f = lambda lam: stats.poisson.cdf(x, lam) * stats.gamma.pdf(lam, s + 0.5, scale=1.0 / n)  # noqa: E731
        return integrate.quad(f, 0, 50, limit=200)[0]

    q0 = next(x for x in range(50) if predictive_cdf(x, 0.0) >= level)
    assert limit[0] == pytest.approx(max(q0, COUNT_FLOOR)) and mean[0] == 0 and top[0] == 0
    v = rows[:, 1]
    d = np.abs(v - (v.sum() - v) / (n - 1))
    normal = margin * math.sqrt(np.mean(d**2)) * math.sqrt(1 - 1 / n**2) * stats.t.ppf((1 + level) / 2, n - 1)
    q1 = next(x for x in range(80) if predictive_cdf(x, v.sum()) >= level) - v.mean()
    assert limit[1] == pytest.approx(max(normal, q1), rel=1e-6) and top[1] == 5 and mean[1] == pytest.approx(16 / 9)
    with pytest.raises(ValueError, match="n >= 2"):
        count_limits(rows[:1], level, margin)
    with pytest.raises(ValueError, match=">= 0"):
        count_limits(-rows - 1, level, margin)


# ------------------------------------------------------------------------------------------------- banks
def test_bank_stores_segments_and_leave_one_out_counts(keyframes, bank7, tmp_path):
    """Format 7: every frame's segments, and per (class, frame) the counts of its segments voted on by the other
    frames' segments under both rules (recomputed here from the stored segments); the arrays round-trip."""
    assert bank7.meta["format_version"] == 7
    assert bank7.seg_count.shape[1] == 2 * len(bank7.class_names)
    assert bank7.seg_desc.shape[1] == len(DESCRIPTOR_NAMES) and set(bank7.seg_frame.tolist()) == set(range(7))
    pts, cls, rough, skip = _frame_inputs(keyframes[3][1], bank7)
    desc, _ = segment_descriptors(pts, cls, rough, skip=skip)
    mine = bank7.seg_frame == 3
    assert np.allclose(np.sort(bank7.seg_desc[mine], axis=0), np.sort(desc, axis=0), atol=1e-4)
    index = SegmentIndex(bank7.seg_desc, bank7.seg_class, bank7.seg_frame, len(bank7.class_names))
    n = len(bank7.class_names)
    majority = pair_counts(bank7.seg_class[mine], index.majority(bank7.seg_desc[mine], exclude_frame=3), n)
    tally = index.tallies(bank7.seg_desc[mine], exclude_frame=3)
    counts = np.hstack([majority, pair_counts(bank7.seg_class[mine], plurality_vote(tally, bank7.seg_class[mine]), n)])
    for ci in np.unique(bank7.seg_class[mine]).tolist():
        row = (bank7.seg_count_class == ci) & (bank7.seg_count_frame == 3)
        assert np.array_equal(bank7.seg_count[row][0], counts[ci])
    loaded = ReferenceBank.load(bank7.save(tmp_path / "b.npz"))
    assert loaded == bank7 and np.array_equal(loaded.seg_count, bank7.seg_count)


def _frame_inputs(frame, bank):
    """Points, bank class index per point and roughness of a real frame, as the bank computes them."""
    from simgap_ext.gate.bank import sensor_geometry
    from simgap_ext.gate.frame_stats import frame_stats

    f = roll_up_frame(frame)
    beams, cols = sensor_geometry(bank.sensor)
    st = frame_stats(f, vertical_angles_deg=beams, horizontal_resolution=cols)
    lut = np.array([bank.class_names.index(c) if c in bank.class_names else -1 for c in st.class_list] + [-1])
    skip = [-1] + [bank.class_names.index(c) for c in ("unlabeled",) if c in bank.class_names]
    return np.asarray(f["data"], np.float64), lut[st.class_of_point], st.roughness, skip


def test_old_bank_loads_without_the_segment_test(bank7, keyframes, tmp_path, caplog):
    """A format-5 bank (no segments) loads; the gate says once it cannot test segments and scores no ``segments``
    component. A format-6 bank (majority counts only) is tested on those. Malformed counts are refused."""
    src = bank7.save(tmp_path / "v6.npz")
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("seg_")}
    header = json.loads(bytes(arrays["__meta__"]).decode())
    header["format_version"] = header["meta"]["format_version"] = 5
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "v5.npz", **arrays)
    old = ReferenceBank.load(tmp_path / "v5.npz")
    assert old.seg_desc.shape == (0, len(DESCRIPTOR_NAMES)) and not SegmentTests(old, 1.5).available
    with caplog.at_level(logging.WARNING, logger="simgap_ext.gate.gate"):
        gate = FrameGate(old, load_gate_config(), device="cpu", quarantine=False)
    assert any("no real segment statistics" in r.message for r in caplog.records)
    d = gate.evaluate(keyframes[-1][1], update_quarantine=False)
    assert d.accepted and not any("segments" in c.components for c in d.per_class.values())
    # Format 6: the majority counts only; the gate tests those and says once what it cannot count.
    with np.load(src, allow_pickle=False) as z:
        v6 = {k: z[k] for k in z.files}
    header = json.loads(bytes(v6["__meta__"]).decode())
    header["format_version"] = header["meta"]["format_version"] = 6
    v6["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    v6["seg_count"] = v6["seg_count"][:, : len(bank7.class_names)]
    np.savez(tmp_path / "v6only.npz", **v6)
    six = ReferenceBank.load(tmp_path / "v6only.npz")
    assert SegmentTests(six, 1.5).rules == 1 and SegmentTests(bank7, 1.5).rules == 2
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="simgap_ext.gate.gate"):
        gate6 = FrameGate(six, load_gate_config(), device="cpu", quarantine=False)
    assert any("majority vote only" in r.message for r in caplog.records)
    d6 = gate6.evaluate(keyframes[-1][1], update_quarantine=False)
    assert d6.accepted and any("segments" in c.components for c in d6.per_class.values())
    bad = dict(np.load(src, allow_pickle=False))
    bad["seg_count"] = np.ones((bad["seg_count"].shape[0], 2), np.float32)
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ReferenceDataError, match="seg_count"):
        ReferenceBank.load(tmp_path / "bad.npz")


def test_config_segment_test_is_a_boolean():
    assert load_gate_config().segment_test is True
    with pytest.raises(SimGapInputError, match="segment_test"):
        load_gate_config(segment_test="yes")


# ------------------------------------------------------------------------------------------------- real keyframes
def test_real_keyframe_accepted_and_vehicles_labelled_vegetation_caught(keyframes, bank7):
    """data35 against the other seven: accepted, with a ``segments`` component on its segmented classes. With the
    vehicles of data0, data1 and data30 added to it labelled vegetation, vegetation holds 4 segments that vote
    ``vehicle`` where no real frame's vegetation held one: the class fails with those numbers; without the test the
    component is absent."""
    cfg = load_gate_config()
    gate = FrameGate(bank7, cfg, device="cpu", quarantine=False)
    real = gate.evaluate(keyframes[-1][1], update_quarantine=False)
    assert real.accepted, real.reasons
    assert sum("segments" in c.components for c in real.per_class.values()) >= 3
    assert all(c.components["segments"] >= 0.5 for c in real.per_class.values() if "segments" in c.components)
    pts, sem, names = _arrays(keyframes[-1][1])
    veg = next(k for k, v in names.items() if v == "vegetation")
    parts, labels = [pts], [sem]
    for i in (0, 1, 2):
        p, s, nm = _arrays(keyframes[i][1])
        m = np.isin(s, [k for k, v in nm.items() if v == "vehicle"])
        parts.append(p[m])
        labels.append(np.full(int(m.sum()), veg, np.uint32))
    n = sum(len(x) for x in labels)
    frame = make_frame(np.concatenate(parts), np.concatenate(labels), np.zeros(n, np.uint32), names, sensor="hdl-32")
    d = gate.evaluate(frame, update_quarantine=False)
    reason = next(r for r in d.reasons if "segment(s) look like" in r)
    assert reason.startswith("class vegetation: 4 segment(s) look like vehicle (real frames: mean 0.0, at most 0 in 7)")
    excess, d_max = d.per_class["vegetation"].evidence["segments"]
    assert excess == 4.0 and d.per_class["vegetation"].components["segments"] < 0.5 and excess > d_max / 2
    # the same test, whole: its reason is the decision's, and its tail probability is the count model's by scipy
    seg = gate.segment_test(frame, "vegetation")
    assert seg.reason("vegetation") == reason and seg.failed
    col = bank7.class_names.index("vehicle")
    rows = bank7.seg_count[bank7.seg_count_class == bank7.class_names.index("vegetation")]
    p_ref = stats.nbinom.sf(3, rows[:, col].sum() + 0.5, rows.shape[0] / (rows.shape[0] + 1.0))
    assert seg.tail_probability == pytest.approx(p_ref) and seg.tail_probability < 1.0 - seg.level
    assert gate.segment_test(frame, "no_such_class") is None
    off = FrameGate(bank7, load_gate_config(segment_test=False), device="cpu", quarantine=False)
    d_off = off.evaluate(frame, update_quarantine=False)
    assert not any("segments" in c.components for c in d_off.per_class.values())
    assert off.segment_test(frame, "vegetation") is None


def test_a_ring_segment_over_empty_ground_stays_finite():
    """A ring of hedge (radius 5 m, no other points): its centre lies over empty ground cells, so its own lowest point
    is the ground under it; every descriptor is finite."""
    t = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    z = np.tile([-1.7, -1.2, -0.7, -0.2], 1000)
    pts = np.c_[20 + 5 * np.cos(t), 5 * np.sin(t), z]
    desc, owner = segment_descriptors(pts, np.zeros(len(pts), int))
    assert desc.shape == (1, len(DESCRIPTOR_NAMES)) and np.isfinite(desc).all()
    d = dict(zip(DESCRIPTOR_NAMES, desc[0].tolist(), strict=True))
    assert d["bottom_above_ground"] == pytest.approx(0.0, abs=1e-6) and d["height"] == pytest.approx(1.5, abs=1e-6)


def test_segment_test_reads_both_rules_columns(bank7):
    """A (rules x C) counts row: the plurality block is tested as the majority block is (its own limit from the
    bank's leave-one-out rows, Bonferroni over both rules' columns), the class's own columns never; the reason names
    the rule."""
    tests = SegmentTests(bank7, 1.5)
    names = bank7.class_names
    n, veg, ground = len(names), names.index("vegetation"), names.index("ground")
    rows = bank7.seg_count[bank7.seg_count_class == veg]
    q_class = bank7.meta["calibration_class_quantile"]
    level = 1 - (1 - q_class) / (2 * (np.unique(bank7.seg_class).size - 1))
    mean, _, limit = count_limits(rows, level, 1.5)
    row = mean.copy()
    row[n + ground] += 3 * limit[n + ground]  # plurality segments of vegetation leaning to ground
    row[veg] = row[n + veg] = 1e6  # own columns: never a failure
    res = tests.evaluate("vegetation", row)
    assert (res.rule, res.other, res.failed) == ("plurality", "ground", True)
    assert res.limit == pytest.approx(limit[n + ground]) and res.excess == pytest.approx(3 * limit[n + ground])
    assert res.level == pytest.approx(level) and 0.99 < level < 1.0
    assert "hold under half vegetation votes, most for ground" in res.reason("vegetation")
    row[ground] = mean[ground] + 4 * limit[ground]
    res = tests.evaluate("vegetation", row)
    assert (res.rule, res.other) == ("majority", "ground") and "look like ground" in res.reason("vegetation")
