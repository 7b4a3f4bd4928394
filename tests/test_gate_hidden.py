"""Hidden classes (gate.missing): a class every real frame holds is absent and another class votes for it.

Hand-computed vote profiles for the rule itself, and real nuScenes-lidarseg keyframes for the gate. A bank of four
tests/data keyframes, each with a 1 % ray-drop twin (8 frames: absence, 1/10, is evidence only together with
votes), accepts the held-out keyframe and rejects it once its vehicles are labelled vegetation, naming vegetation;
with four twins each (20 frames) absence alone is evidence, for a relabel and a removal alike, and for a relabel
that leaves a few stray points of the class. Format-3 banks load and skip the check.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.data.taxonomy import roll_up_frame
from simgap_ext.frame import make_frame
from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
from simgap_ext.gate.missing import absence_probability, few_points_probability, hidden_classes
from simgap_ext.gate.realsets import iter_real_scans
from simgap_ext.gate.validation import perturb

DATA = Path(__file__).parent / "data"


def test_absence_probability_is_the_jeffreys_posterior_predictive():
    # Beta(1/2, 1/2) prior, k of n frames hold the class: P(next lacks it) = (n - k + 1/2) / (n + 1)
    assert absence_probability(9, 9) == pytest.approx(0.5 / 10)
    assert absence_probability(0, 0) == pytest.approx(1 / 2)
    assert absence_probability(95, 100) == pytest.approx(5.5 / 101)
    assert absence_probability(0, 4) == pytest.approx(4.5 / 5)
    with pytest.raises(ValueError, match="frames_with"):
        absence_probability(3, 2)


NAMES = ["car", "vegetation", "road"]
# vegetation's share of votes for car in 8 real frames (each left out of its own vote); road never votes car
REAL = {
    "vegetation": np.array([[c, 0.9 - c, 0.1] for c in (0.02, 0.03, 0.025, 0.04, 0.03, 0.02, 0.035, 0.03)]),
    "road": np.array([[0.0, 0.1, 0.9]] * 8),
}


def _case(veg_car_votes: float, frames_with: int = 10, present=("vegetation", "road"), **kw):
    profiles = {"vegetation": np.array([veg_car_votes, 1 - veg_car_votes, 0.0]), "road": np.array([0.0, 0.1, 0.9])}
    return hidden_classes(set(present), profiles, NAMES, {"car": frames_with}, 10, REAL, level=0.05, **kw)


def test_hidden_class_by_hand():
    # vegetation votes car 10 % of the time, every real frame at most 4 %: rank (0 + 1) / 9, times 2 hosts
    (h,) = _case(0.1)
    assert (h.missing, h.host, h.frames_with, h.frames) == ("car", "vegetation", 10, 10)
    assert h.p_absent == pytest.approx(0.5 / 11)
    assert h.vote_share == pytest.approx(0.1) and h.real_max == pytest.approx(0.04)
    assert h.p_votes == pytest.approx(2 / 9) and h.p_joint == pytest.approx(1 / 99)
    assert "absent here" in h.reason() and "vegetation" in h.reason()
    # as many car votes as real vegetation (a street empty of cars): 5 of 8 real values >= 0.03 -> 2 * 6 / 9 > 1,
    # so only the absence speaks: from 10 of 10 frames 0.5 / 11 <= 0.05 (flagged), from 9 of 10 1.5 / 11 is not
    (h,) = _case(0.03)
    assert h.p_votes == 1.0 and h.p_joint == pytest.approx(0.5 / 11)
    assert _case(0.03, frames_with=9) == []
    # votes this unusual are evidence with 9 of 10: 1.5 / 11 * 2 / 9 <= 0.05
    assert len(_case(0.1, frames_with=9)) == 1
    # a class a real frame may well lack (5 of 10): 5.5 / 11 * 2 / 9 > 0.05
    assert _case(0.1, frames_with=5) == []
    # present classes and ignored ones are never missing; hosts without real profiles are not judged
    assert _case(0.1, present=("vegetation", "road", "car")) == []
    assert _case(0.1, ignore=["car"]) == []
    # a class real frames hold in a handful of points (at their smallest share: 10 points here) is lost to ray drop,
    # not hidden; at 60 expected points it is judged
    assert _case(0.1, expected_points={"car": 10.0}, min_points=50) == []
    assert len(_case(0.1, expected_points={"car": 60.0}, min_points=50)) == 1
    # a class held in fewer points than a class is judged on is judged as missing (when real frames imply more); its
    # first probability is the rank of its share among the 10 real frames' shares (0.010 ... 0.050), not the absence
    few_kw = dict(present=("vegetation", "road", "car"), expected_points={"car": 60.0}, min_points=50)
    shares = {"car": np.linspace(0.01, 0.05, 10)}
    (few,) = _case(0.1, points={"car": 13}, frame_points=10_000, real_shares=shares, **few_kw)
    assert few.points == 13 and "only 13 point(s) here" in few.reason() and "absent" not in few.reason()
    assert few.p_absent == pytest.approx(1 / 11) and few.p_joint == pytest.approx(1 / 11 * 2 / 9)
    # ... so that a share below every real frame's is weaker evidence than absence (1/11 against 0.5/11): with votes
    # like real ones it is not flagged, where absence was (above); nor is a share a real frame goes below (9 of 10)
    assert _case(0.03, points={"car": 13}, frame_points=10_000, real_shares=shares, **few_kw) == []
    assert _case(0.1, points={"car": 47}, frame_points=1_000, real_shares=shares, **few_kw) == []
    # at min_points the class is held; below it, a class real frames hold in few points is not judged at all
    assert _case(0.1, points={"car": 50}, frame_points=10_000, real_shares=shares, **few_kw) == []
    few_kw["expected_points"] = {"car": 10.0}
    assert _case(0.1, points={"car": 13}, frame_points=10_000, real_shares=shares, **few_kw) == []
    assert few_points_probability(0.0, np.array([0.1, 0.2]), 4) == pytest.approx(3 / 5)  # 2 frames lack it
    assert few_points_probability(0.3, np.array([0.1, 0.2]), 2) == 1.0
    with pytest.raises(ValueError, match="real shares"):
        few_points_probability(0.1, np.ones(3), 2)
    # a class is never its own host: car's own 13 points voting car (more than real car points do) would make
    # P = 1/11 x 3 / 9 <= 0.05; from vegetation's and road's real-like votes alone it is 1/11 x 1
    real_car = {**REAL, "car": np.array([[0.9, 0.05, 0.05]] * 8)}
    profiles = {"vegetation": np.array([0.03, 0.97, 0.0]), "road": np.array([0.0, 0.1, 0.9]), "car": np.ones(3)}
    kw = dict(level=0.05, min_points=50, points={"car": 13}, frame_points=10_000, real_shares=shares)
    assert hidden_classes({"vegetation", "road", "car"}, profiles, NAMES, {"car": 10}, 10, real_car, **kw) == []
    assert hidden_classes({"vegetation"}, {"vegetation": np.ones(3) / 3}, NAMES, {"car": 10}, 10, {}, level=0.05) == []
    with pytest.raises(ValueError, match="level"):
        hidden_classes(set(), {}, NAMES, {}, 10, REAL, level=1.0)


def test_absence_alone_is_evidence_only_in_a_large_bank():
    # no class votes for car more than real ones: only the absence speaks, P = (0 + 1/2) / (n + 1) must be <= 0.05
    profiles = {"vegetation": np.array([0.0, 0.9, 0.1])}
    for n, flagged in ((3, False), (8, False), (9, True), (17, True)):
        found = hidden_classes(
            {"vegetation"}, profiles, NAMES, {"car": n}, n, {"vegetation": REAL["vegetation"]}, level=0.05
        )
        assert bool(found) is flagged, n


@pytest.fixture(scope="module")
def nusc():
    scans = list(iter_real_scans(DATA / "nuscenes")) + list(iter_real_scans(DATA / "nuscenes_hdl32"))
    assert len(scans) == 5
    return scans


@pytest.fixture(scope="module")
def gate(nusc):
    bank_frames = []
    for i, (name, frame) in enumerate(nusc[:1] + nusc[2:]):
        bank_frames.append((name, frame))
        bank_frames.append((f"{name}-twin", perturb(frame, "drop", 0.01, np.random.default_rng(i))))
    bank = ReferenceBank.build(bank_frames, config=load_gate_config(), device="cpu")
    assert bank.frame_count == 8
    return FrameGate(bank, load_gate_config(), device="cpu", quarantine=False)


def test_real_scan_accepted_and_its_relabel_caught(nusc, gate):
    frame = nusc[1][1]  # data1; its most populous thing class is truck, which every bank frame holds
    d = gate.evaluate(frame, update_quarantine=False)
    assert d.accepted, d.reasons
    assert not any("hidden" in c.components for c in d.per_class.values())
    # every vehicle point (car and truck at the fine level) labelled vegetation, at the bank's class level
    relabelled = perturb(roll_up_frame(frame), "relabel", 0, np.random.default_rng(0))
    assert "vehicle" not in {v["class"] for v in relabelled["info"]["idToLabels"].values()}
    r = gate.evaluate(relabelled, update_quarantine=False)
    assert not r.accepted
    hits = [c for c in r.per_class.values() if "hidden" in c.components]
    assert [c.name for c in hits] == ["vegetation"], r.reasons
    assert hits[0].components["hidden"] == 0.0 and not hits[0].passed
    assert any("absent here" in s and "vegetation" in s for s in r.reasons), r.reasons


def test_a_large_bank_makes_absence_alone_evidence(nusc):
    """With 20 real frames that all hold vehicles (4 keyframes, each with four 1 % ray-drop twins), a frame without
    any is flagged on absence alone (0.5 / 21 <= 0.05): the relabel with a wide margin, the removal too."""
    bank_frames = []
    for i, (name, frame) in enumerate(nusc[:1] + nusc[2:]):
        bank_frames.append((name, frame))
        for t in range(4):
            bank_frames.append((f"{name}-{t}", perturb(frame, "drop", 0.01, np.random.default_rng(10 * i + t))))
    bank = ReferenceBank.build(bank_frames, config=load_gate_config(), device="cpu")
    assert bank.frame_count == 20 and bank.class_frames("vehicle") == 20
    gate = FrameGate(bank, load_gate_config(), device="cpu", quarantine=False)
    frame = roll_up_frame(nusc[1][1])
    assert gate.evaluate(frame, update_quarantine=False).accepted
    for kind in ("relabel", "remove"):
        d = gate.evaluate(perturb(frame, kind, 0, np.random.default_rng(0)), update_quarantine=False)
        hidden = [r for r in d.reasons if r.startswith("class vehicle: in 20 of 20 real frames but absent here")]
        assert not d.accepted and hidden, (kind, d.reasons)
        p_joint, level = next(c.evidence["hidden"] for c in d.per_class.values() if "hidden" in c.evidence)
        assert p_joint <= level + 1e-12 and p_joint >= 0.5 / 21 * 1 / 21  # at least absence x the smallest rank
        if kind == "relabel":
            assert p_joint < 0.5 * (0.5 / 21)  # the vegetation votes add evidence to the absence (at least 2x)
    # a relabel that leaves 13 stray vehicle points holds vehicles no more than one that leaves none
    info = frame["info"]
    names = {int(k): (v["class"] if isinstance(v, dict) else str(v)) for k, v in info["idToLabels"].items()}
    ids = {v: k for k, v in names.items()}
    sem = np.asarray(info["pointSemantic"]).astype(np.uint32)
    inst = np.asarray(info["pointInstance"]).astype(np.uint32)
    moved = np.flatnonzero(sem == ids["vehicle"])[13:]
    sem, inst = sem.copy(), inst.copy()
    sem[moved], inst[moved] = ids["vegetation"], 0
    meta = {k: frame[k] for k in ("frame_id", "seed", "sensor") if k in frame}
    stray = make_frame(np.asarray(frame["data"], np.float32), sem, inst, names, **meta)
    d = gate.evaluate(stray, update_quarantine=False)
    assert d.per_class["vehicle"].n_points == 13
    hidden = [r for r in d.reasons if r.startswith("class vehicle: in 20 of 20 real frames but only 13 point(s) here")]
    assert not d.accepted and hidden, d.reasons


def test_format_3_bank_loads_and_skips_the_check(nusc, gate, tmp_path, caplog):
    """A bank written before the per-frame vote profiles (format 3) still loads and judges every other component;
    the gate says once that it cannot check hidden classes."""
    src = gate.bank.save(tmp_path / "v4.npz")
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays["__meta__"]).decode())
    assert header["format_version"] == 7 and "frame_profiles" in header["meta"]
    header["format_version"] = header["meta"]["format_version"] = 3
    del header["meta"]["frame_profiles"]
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "v3.npz", **arrays)
    old = ReferenceBank.load(tmp_path / "v3.npz")
    assert old.class_real_profiles("vegetation") is None
    assert gate.bank.class_real_profiles("vegetation").shape == (8, len(gate.bank.class_names))
    with caplog.at_level(logging.WARNING, logger="simgap_ext.gate.gate"):
        old_gate = FrameGate(old, load_gate_config(), device="cpu", quarantine=False)
    assert any("predates the per-frame vote profiles" in r.message for r in caplog.records)
    relabelled = perturb(roll_up_frame(nusc[1][1]), "relabel", 0, np.random.default_rng(0))
    d = old_gate.evaluate(relabelled, update_quarantine=False)
    assert not any("hidden" in c.components for c in d.per_class.values())
