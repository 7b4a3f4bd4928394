"""FrameGate on frames of the Warp LiDAR backend: realistic passes; ideal and corrupted frames fail; sanity;
semantic quarantine in the loop; reference bank persistence.

The "real" reference is the backend's realistic preset (other scene seeds than the frames under test).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from simgap_ext.backends import get_scene_source
from simgap_ext.errors import ReferenceDataError
from simgap_ext.frame import class_names, id_to_class, validate_frame
from simgap_ext.gate import FrameGate, GateConfig, ReferenceBank, SemanticQuarantine

SENSOR = "vlp-16"
BANK_SEEDS = range(1000, 1008)
TEST_SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def sources():
    # The open layout these decisions were calibrated on. In the street layout (the default since the
    # sensor-effect work) boxifying a vehicle can break the ring continuity of a cyclist riding beside a parked
    # car, so the "other classes keep passing" attribution check below does not hold there.
    real = get_scene_source("warp", sensor=SENSOR, preset="realistic", device="cpu", layout="open")
    ideal = get_scene_source("warp", sensor=SENSOR, preset="ideal", device="cpu", layout="open")
    return real, ideal


@pytest.fixture(scope="module")
def bank(sources):
    real, _ = sources
    return ReferenceBank.build([real.render(seed=s, frame_id=i) for i, s in enumerate(BANK_SEEDS)], device="cpu")


@pytest.fixture(scope="module")
def realistic(sources):
    return {s: sources[0].render(seed=s, frame_id=s) for s in TEST_SEEDS}


@pytest.fixture()
def gate(bank):
    return FrameGate(bank, GateConfig(), device="cpu", quarantine=False)


# ------------------------------------------------------------------------------------------------ corruptions


def _mask(frame, cls):
    ids = [i for i, n in id_to_class(frame).items() if n == cls]
    return np.isin(frame["info"]["pointSemantic"], ids)


def _rebuild(frame, keep, pts):
    out = dict(frame)
    info = dict(frame["info"])
    out["data"] = pts[keep]
    for key in ("pointSemantic", "pointInstance"):
        info[key] = frame["info"][key][keep]
    out["info"] = info
    if frame.get("intensity") is not None:
        out["intensity"] = frame["intensity"][keep]
    return validate_frame(out)


def jitter(frame, cls, sigma=0.5):
    m = _mask(frame, cls)
    pts = frame["data"].copy()
    pts[m] += np.random.default_rng(0).normal(0, sigma, (int(m.sum()), 3)).astype(np.float32)
    return _rebuild(frame, np.ones(len(pts), bool), pts)


def subsample(frame, cls, factor=10):
    m = _mask(frame, cls)
    keep = ~m
    keep[np.flatnonzero(m)[::factor]] = True
    return _rebuild(frame, keep, frame["data"])


def boxify(frame, cls):
    """Replace each instance of ``cls`` by as many points uniformly on the faces of its bounding box."""
    m = _mask(frame, cls)
    pts = frame["data"].copy()
    rng = np.random.default_rng(0)
    inst = frame["info"]["pointInstance"]
    for iid in np.unique(inst[m]):
        sel = m & (inst == iid)
        n = int(sel.sum())
        lo, hi = pts[sel].min(0), pts[sel].max(0)
        u = rng.random((n, 3))
        u[np.arange(n), rng.integers(0, 3, n)] = rng.integers(0, 2, n)
        pts[sel] = (lo + u * (hi - lo)).astype(np.float32)
    return _rebuild(frame, np.ones(len(pts), bool), pts)


# ------------------------------------------------------------------------------------------------ decisions


def test_bank_contents(bank):
    assert bank.sensor == SENSOR and bank.frame_count == len(BANK_SEEDS)
    assert {"vehicle", "pedestrian"} <= set(bank.object_classes)
    assert bank.class_counts["vehicle"] >= bank.n_exemplars // 4
    assert bank.d_max > 0 and np.isfinite(bank.d_max)
    for comp in ("chamfer", "count", "density", "scene_range", "scene_roughness", "scene_beams"):
        assert comp in bank.calibration
    assert set(bank.class_features()) <= set(bank.object_classes)


def test_realistic_frames_are_accepted(gate, realistic):
    # The gate rejects some frames of the bank's own distribution: on real scans 83-100 % are accepted leave-one-out
    # (docs/gate.md, benchmarks/validate_real.py), so one of these four may fall, and then only just past a margin.
    accepted = 0
    for seed, frame in realistic.items():
        d = gate.evaluate(frame)
        json.dumps(d.to_dict(), allow_nan=False)
        if not d.accepted:
            assert len(d.failing_classes) == 1 and d.scene_g >= 0.75, (seed, d.reasons)
            continue
        accepted += 1
        assert d.scene_g >= 0.75
        scored = d.class_g()
        assert scored and all(g >= 0.75 for g in scored.values())
    assert accepted >= len(realistic) - 1


def test_ideal_frames_are_rejected_on_range_noise(gate, sources):
    _, ideal = sources
    for seed in TEST_SEEDS:
        d = gate.evaluate(ideal.render(seed=seed, frame_id=seed))
        assert not d.accepted and d.status == "rejected"
        # An ideal sensor has no range noise: the scene roughness component is the one that gives it away (beyond
        # half its d_max: the strict rule fails the scene even where the other components lift the mean G).
        assert d.scene_components["roughness"] < 0.5
        assert any(r.startswith("scene: G=") and "roughness" in r for r in d.reasons), d.reasons


@pytest.mark.parametrize("corrupt", [jitter, subsample, boxify], ids=["jitter0.5m", "subsample10x", "box"])
def test_corrupted_class_is_rejected_and_named(gate, sources, realistic, corrupt):
    # frames accepted as they are, whose vehicles keep enough points to be scored after a 10x subsample
    # (KITTI-sized cars are small: seed 1 has 74 vehicle points on the VLP-16)
    frames = dict(realistic)
    frames.update({s: sources[0].render(seed=s, frame_id=s) for s in range(4, 8)})
    seeds = [s for s, f in frames.items() if _mask(f, "vehicle").sum() >= 300 and gate.evaluate(f).accepted]
    assert len(seeds) >= 2, seeds
    for seed in seeds[:3]:
        frame = frames[seed]
        d = gate.evaluate(corrupt(frame, "vehicle"))
        assert not d.accepted
        assert "vehicle" in d.failing_classes
        # G below the threshold, or (strict components) one component beyond half its d_max
        assert d.per_class["vehicle"].g is not None and not d.per_class["vehicle"].passed
        assert any(r.startswith("class vehicle: G=") for r in d.reasons)
        # Classes left alone keep passing: the failure is attributed, not global.
        others = [c for c, cd in d.per_class.items() if c != "vehicle" and cd.g is not None]
        assert all(d.per_class[c].passed for c in others)


# ------------------------------------------------------------------------------------------------ sanity


def test_empty_frame_is_invalid(gate, realistic):
    frame = dict(realistic[0])
    frame = _rebuild(frame, np.zeros(len(frame["data"]), bool), frame["data"])
    d = gate.evaluate(frame)
    assert d.status == "invalid" and not d.sane and "frame is empty (0 points)" in d.reasons[0]


def test_zero_instance_ids_are_invalid(gate, realistic):
    frame = dict(realistic[0])
    frame["info"] = dict(frame["info"], pointInstance=np.zeros_like(frame["info"]["pointInstance"]))
    d = gate.evaluate(frame)
    assert d.status == "invalid"
    assert any("vehicle: all instance ids are 0" in r for r in d.reasons)
    assert "vehicle" in d.failing_classes


def test_accumulated_duplicates_are_invalid(gate, realistic):
    frame = realistic[0]
    doubled = dict(frame)
    doubled["data"] = np.concatenate([frame["data"], frame["data"]])
    doubled["info"] = {
        **frame["info"],
        "pointSemantic": np.tile(frame["info"]["pointSemantic"], 2),
        "pointInstance": np.tile(frame["info"]["pointInstance"], 2),
    }
    doubled.pop("intensity", None)
    d = gate.evaluate(doubled)
    assert d.status == "invalid" and any("50.0% of points are duplicated" in r for r in d.reasons)


def test_unknown_class_rejected_or_ignored(bank, realistic):
    frame = dict(realistic[0])
    labels = {k: dict(v) for k, v in frame["info"]["idToLabels"].items()}
    veh = next(k for k, v in labels.items() if v["class"] == "vehicle")
    labels[veh]["class"] = "forklift"
    frame["info"] = dict(frame["info"], idToLabels=labels)
    d = FrameGate(bank, GateConfig(), device="cpu", quarantine=False).evaluate(frame)
    assert not d.accepted and "class forklift has no real reference" in d.reasons
    d = FrameGate(bank, GateConfig(unknown_class="ignore"), device="cpu", quarantine=False).evaluate(frame)
    assert d.accepted and "class forklift has no real reference (ignored)" in d.per_class["forklift"].reasons
    # A background class the reference lacks only enters the scene statistics: noted, never a rejection.
    ground = next(k for k, v in labels.items() if v["class"] == "ground")
    labels[veh]["class"] = "vehicle"
    labels[ground]["class"] = "vegetation" if "vegetation" not in bank.class_names else "unlabeled"
    frame["info"] = dict(frame["info"], idToLabels=labels)
    d = FrameGate(bank, GateConfig(), device="cpu", quarantine=False).evaluate(frame)
    name = labels[ground]["class"]
    assert f"class {name} has no real reference (background, ignored)" in d.per_class[name].reasons


def test_world_frame_with_sensor_origin_scores_like_sensor_frame(gate, realistic):
    frame = realistic[1]
    origin = np.array([120.0, -45.0, 3.0], dtype=np.float32)
    world = dict(frame, data=frame["data"] + origin, sensor_origin=origin, coordinate_frame="world")
    a, b = gate.evaluate(frame), gate.evaluate(world)
    assert a.accepted and b.accepted
    assert b.scene_g == pytest.approx(a.scene_g, abs=0.02)
    for c, cd in a.class_g().items():
        assert b.class_g()[c] == pytest.approx(cd, abs=0.02)


def test_other_sensor_is_invalid(gate, realistic):
    frame = dict(realistic[0], sensor="os1-64")
    d = gate.evaluate(frame)
    assert d.status == "invalid" and "differs from the reference bank's sensor 'vlp-16'" in d.reasons[0]


# ------------------------------------------------------------------------------------------------ quarantine


def _frames_with(source, cls, seeds):
    frames = [source.render(seed=s, frame_id=s) for s in seeds]
    return [f for f in frames if cls in class_names(f)]


def test_quarantine_triggers_on_foreign_semantics_and_recovers(bank, sources):
    real, _ = sources
    feats = bank.class_features()
    # A reference whose "vehicle" embeddings have ten times the norm: realistic vehicles now look foreign.
    wrong = dict(feats, vehicle=feats["vehicle"] * 10.0)
    q = SemanticQuarantine(window=3, threshold=0.15, min_samples=6, hysteresis=0.02)
    gate = FrameGate(bank, GateConfig(), device="cpu", quarantine=q)
    q.set_reference(wrong)
    frames = _frames_with(real, "vehicle", range(20, 30))[:6]
    assert len(frames) == 6
    decisions = [gate.evaluate(f) for f in frames[:3]]
    d = decisions[-1]
    assert d.status == "quarantined", [x.reasons for x in decisions]
    assert q.is_quarantined("vehicle") and q.state("vehicle").js > 0.15
    assert "vehicle" in d.quarantined_classes and d.per_class["vehicle"].quarantined
    assert any(r.startswith("class vehicle quarantined (JS=") for r in d.reasons)
    assert q.state("vehicle").held_back >= 1
    # The reference is corrected: fresh realistic frames move the window and the class is released.
    q.set_reference(feats)
    for f in frames[3:]:
        d = gate.evaluate(f)
    assert not q.is_quarantined("vehicle"), q.state("vehicle")
    assert d.accepted and d.per_class["vehicle"].js is not None and d.per_class["vehicle"].js <= 0.13


def test_realistic_stream_is_not_quarantined(bank, sources):
    real, _ = sources
    gate = FrameGate(bank, GateConfig(quarantine_window=6, quarantine_min_samples=6), device="cpu")
    decisions = [gate.evaluate(real.render(seed=s, frame_id=s)) for s in range(30, 36)]
    # Nothing is held back by the quarantine, and the geometric gate passes the stream. One frame may miss by a
    # hair: since mixed pixels blend azimuth neighbours only (issue 10), realistic vegetation roughness is
    # consistent enough that the 8-frame bank calibrates it at its floor (d_max 0.012 m), and seed 31 (a tree with
    # ~300 roughness samples) lands at 0.53 x d_max, over the strict half-d_max line.
    assert not any(d.status == "quarantined" for d in decisions), [d.reasons for d in decisions]
    assert sum(d.accepted for d in decisions) >= 5, [d.reasons for d in decisions]
    assert gate.quarantine.state("vehicle").js is not None


# ------------------------------------------------------------------------------------------------ persistence


def test_bank_round_trip_and_same_decisions(bank, realistic, tmp_path):
    path = bank.save(tmp_path / "bank.npz")
    loaded = ReferenceBank.load(path)
    assert loaded == bank and loaded.source == str(path)
    assert loaded.summary()["classes"]["vehicle"]["exemplars"] == int(
        (bank.ex_class == bank.class_index("vehicle")).sum()
    )
    a = FrameGate(bank, GateConfig(), device="cpu", quarantine=False).evaluate(realistic[1]).to_dict()
    b = FrameGate(loaded, GateConfig(), device="cpu", quarantine=False).evaluate(realistic[1]).to_dict()
    assert a == b


def test_bank_load_errors_name_the_file(tmp_path, bank):
    with pytest.raises(ReferenceDataError, match="missing.npz: file not found"):
        ReferenceBank.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(ReferenceDataError, match="bad.npz: unreadable or corrupt"):
        ReferenceBank.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ReferenceDataError, match="other.npz: not a SimGap reference bank"):
        ReferenceBank.load(other)
    good = bank.save(tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ReferenceDataError, match="truncated.npz"):
        ReferenceBank.load(truncated)
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["rough_class"] = arrays["rough_class"][:-1]
    tampered = tmp_path / "tampered.npz"
    np.savez(tampered, **arrays)
    with pytest.raises(ReferenceDataError, match="tampered.npz: rough_vals and its labels differ in length"):
        ReferenceBank.load(tampered)
    # A class index past the class list would be an IndexError deep inside the gate; the load names it instead.
    n = len(bank.class_names)
    for key in ("feat_class", "dens_class", "rough_class", "ex_class"):
        with np.load(good) as z:
            arrays = {k: z[k] for k in z.files}
        arrays[key] = arrays[key].copy()
        arrays[key][0] = n
        np.savez(tampered, **arrays)
        with pytest.raises(ReferenceDataError, match=f"tampered.npz: {key} holds a class index outside 0..{n - 1}"):
            ReferenceBank.load(tampered)
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["ex_offsets"] = arrays["ex_offsets"].copy()
    arrays["ex_offsets"][1] = arrays["ex_offsets"][2] + 1  # a negative-size exemplar
    np.savez(tampered, **arrays)
    with pytest.raises(ReferenceDataError, match="tampered.npz: exemplar offsets are not increasing from 0"):
        ReferenceBank.load(tampered)


def test_bank_build_refuses_mixed_sensors(sources):
    real, _ = sources
    frames = [real.render(seed=1), dict(real.render(seed=2), sensor="os1-64")]
    with pytest.raises(ReferenceDataError, match="comes from sensor 'os1-64', earlier scans from 'vlp-16'"):
        ReferenceBank.build(frames)


def test_bank_without_sensor_profile_still_separates(sources):
    """Real scans of unknown sensor: rings from quantised elevations, no beam component, same verdicts."""
    real, ideal = sources
    frames = [dict(real.render(seed=s, frame_id=i), sensor="unknown") for i, s in enumerate(BANK_SEEDS)]
    bank = ReferenceBank.build(frames, device="cpu")
    assert bank.sensor is None and bank.beam_ratio.shape[1] == 0
    gate = FrameGate(bank, GateConfig(), device="cpu", quarantine=False)
    d = gate.evaluate(dict(real.render(seed=0), sensor="unknown"))
    assert d.accepted and "beams" not in d.scene_components and "roughness" in d.scene_components
    assert not gate.evaluate(dict(ideal.render(seed=0), sensor="unknown")).accepted


def test_bank_build_needs_frames():
    with pytest.raises(ReferenceDataError, match="no real frames"):
        ReferenceBank.build([])


def test_object_components_with_the_gates_precomputed_lookups_equal_the_standalone_call(gate, bank, realistic):
    # The gate hands its exemplar lookups and batch matches to object_components; the result must be what
    # object_components computes on its own (independent path: its own range lookup and Chamfer matching).
    from simgap_ext.errors import SimGapInputError
    from simgap_ext.gate.geometric import best_exemplar_matches, object_components

    frame = realistic[TEST_SEEDS[0]]
    stats = gate.stats(frame)
    cfg = gate.config
    decision = gate.evaluate(frame)
    checked = 0
    for c in bank.object_classes:
        crops = [cr for cr in stats.crops if cr.class_name == c]
        scored = [cr for cr in crops if cr.n_points >= cfg.min_points]
        if not scored:
            continue
        near = [bank.exemplars_near(c, cr.range, cfg.k_exemplars) for cr in scored]
        usable = [(cr, n) for cr, n in zip(scored, near, strict=True) if n.size]
        matches = best_exemplar_matches([cr.points for cr, _ in usable], [n for _, n in usable], bank, device="cpu")
        kw = {"k": cfg.k_exemplars, "min_points": cfg.min_points, "device": "cpu"}
        alone = object_components(c, crops, stats, bank, **kw)
        given = object_components(c, crops, stats, bank, matches=matches, near=near, **kw)
        assert {n: (s.distance, s.d_max) for n, s in given.items()} == {
            n: (s.distance, s.d_max) for n, s in alone.items()
        }
        # the gate adds the vote components (a vote over the whole frame, not a per-class statistic), the joint
        # test over the components (gate.joint) and the segment test (gate.segments)
        skip = ("plausibility", "foreign", "joint", "segments")
        gate_comps = {n: v for n, v in decision.per_class[c].components.items() if n not in skip}
        assert gate_comps == {n: s.score for n, s in alone.items()}
        with pytest.raises(SimGapInputError, match=f"class {c}: {len(near) - 1} exemplar lists for {len(near)}"):
            object_components(c, crops, stats, bank, matches=matches, near=near[:-1], **kw)
        checked += 1
    assert checked
