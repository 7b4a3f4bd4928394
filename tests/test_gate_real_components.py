"""The apparent sensor origin (gate.origin) and the scene 'origin' component, the vote profile ('foreign'), a class
relabelled in a real scan, and banks of format version 2 (which still load)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.errors import ReferenceDataError
from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
from simgap_ext.gate.origin import apparent_origin
from simgap_ext.gate.realsets import iter_real_scans
from simgap_ext.gate.validation import perturb

NUSC = Path(__file__).parent / "data" / "nuscenes"
MCD = Path(__file__).parent / "data" / "mcd"


def _cone_scan(origin_xy, *, pitch_deg=0.0, height=1.8, beams=(-25.0, -20.0, -15.0, -10.0), columns=720):
    """Exact returns of a spinning LiDAR at (origin_xy, height) over a plane tilted by ``pitch_deg`` about y, with a
    1.5 m box standing 6 m ahead: ray-plane / ray-box intersections computed in closed form."""
    az = np.linspace(-np.pi, np.pi, columns, endpoint=False)
    pts = []
    pitch = np.radians(pitch_deg)
    for e in np.radians(beams):
        d = np.stack([np.cos(e) * np.cos(az), np.cos(e) * np.sin(az), np.full_like(az, np.sin(e))], axis=1)
        # ground z = tan(pitch) * x - height in the sensor frame: t * (d_z - tan(p) d_x) = -height
        t = -height / (d[:, 2] - np.tan(pitch) * d[:, 0])
        # box face at x = 6 m, |y| < 1, up to 1.5 m above the ground (closer than the ground where it is hit)
        tb = 6.0 / np.where(d[:, 0] > 1e-9, d[:, 0], np.nan)
        hit = tb[:, None] * d
        on_box = (tb > 0) & (np.abs(hit[:, 1]) < 1.0) & (hit[:, 2] > -height) & (hit[:, 2] < -height + 1.5) & (tb < t)
        t = np.where(on_box, tb, t)
        pts.append(t[:, None] * d)
    pts = np.concatenate(pts)
    pts[:, 0] += origin_xy[0]
    pts[:, 1] += origin_xy[1]
    return pts.astype(np.float32)


@pytest.mark.parametrize("pitch", [0.0, 3.0])
@pytest.mark.parametrize("offset", [(0.0, 0.0), (0.5, 0.0), (-1.2, 0.7)])
def test_apparent_origin_recovers_the_cone_apex(offset, pitch):
    # Points from a sensor displaced by `offset`: the estimate is the displacement, a tilted ground changes nothing.
    est = apparent_origin(_cone_scan(offset, pitch_deg=pitch))
    assert est is not None
    np.testing.assert_allclose(est, offset, atol=0.01)


def test_apparent_origin_validates_and_needs_sectors():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        apparent_origin(np.zeros((5, 2), np.float32))
    with pytest.raises(ValueError, match="sectors"):
        apparent_origin(np.zeros((5, 3), np.float32), sectors=4)
    # a few returns in one direction: too few sectors to fit
    pts = np.array([[5.0, 0.1 * i, -1.8] for i in range(10)], np.float32)
    assert apparent_origin(pts) is None


@pytest.fixture(scope="module")
def real():
    return {n: f for d in (NUSC, MCD) for n, f in iter_real_scans(d)}


@pytest.mark.parametrize("name", ["data1", "0000000011"])
def test_real_scan_origin_and_known_shift(real, name):
    pts = real[name]["data"]
    base = apparent_origin(pts)
    # A real scan's apex sits within centimetres of its sensor frame's origin up to a rig-specific constant
    # (nuScenes: its roof points and mounting, ~0.3 m along y; every nuScenes frame has it, so the bank absorbs it).
    assert base is not None and np.hypot(*base) < 0.4
    for shift in ((0.5, 0.0), (0.0, -1.0), (1.5, 1.5)):
        moved = apparent_origin(pts + np.array([*shift, 0.0], np.float32))
        np.testing.assert_allclose(moved - base, shift, atol=0.06)


# ------------------------------------------------------------------------------------------------ the component


@pytest.fixture(scope="module")
def frames():
    return list(iter_real_scans(NUSC))


@pytest.fixture(scope="module")
def bank(frames):
    twin = perturb(frames[0][1], "drop", 0.01, np.random.default_rng(7))
    return ReferenceBank.build([frames[0], ("data0-twin", twin)], config=load_gate_config(), device="cpu")


def test_origin_component_passes_real_and_fails_a_shift(frames, bank):
    assert bank.origin_vals.shape == (2, 2) and "scene_origin" in bank.d_max_table
    gate = FrameGate(bank, load_gate_config(), device="cpu", quarantine=False)
    d = gate.evaluate(frames[1][1], update_quarantine=False)
    assert d.scene_components["origin"] >= 0.75, d.scene_evidence["origin"]
    shifted = gate.evaluate(perturb(frames[1][1], "shift", 0.5, np.random.default_rng(0)), update_quarantine=False)
    dist, d_max = shifted.scene_evidence["origin"]
    assert dist == pytest.approx(0.5, abs=0.1) and shifted.scene_components["origin"] < 0.5
    assert not shifted.accepted


def test_real_relabel_is_rejected_and_the_scan_accepted(frames, bank):
    # nuScenes keyframe data1 against a (scene-level) bank of data0: every car point labelled vegetation.
    gate = FrameGate(bank, load_gate_config(), device="cpu", quarantine=False)
    assert gate.evaluate(frames[1][1], update_quarantine=False).accepted
    relabelled = perturb(frames[1][1], "relabel", 0, np.random.default_rng(0))
    d = gate.evaluate(relabelled, update_quarantine=False)
    # The relabel moves nuScenes `car` (fine level) into vegetation; trucks and the rest stay `vehicle` at the scene
    # level. Either side of the move may be what fails first; the decision must name one of the two.
    assert not d.accepted and {"vegetation", "vehicle"} & set(d.failing_classes), d.reasons
    veg = d.per_class["vegetation"]
    # the vote components see it too (below a perfect score), and every component keeps its evidence
    assert {"plausibility", "foreign", "height"} <= set(veg.components)
    assert veg.components["foreign"] < 1.0 and veg.components["plausibility"] < 1.0
    profile = bank.class_vote_profile("vegetation")
    assert profile is not None and profile.shape == (len(bank.class_names),) and abs(profile.sum() - 1) < 1e-9


def test_foreign_excess_by_hand():
    from simgap_ext.gate.plausibility import PROFILE_SMOOTHING, foreign_excess, vote_profile

    e = PROFILE_SMOOTHING
    ref = np.array([0.8, 0.2, 0.0])
    # class 0 now votes class 2 (never voted for by real frames) 30 % of the time
    prof = vote_profile(np.array([[0, 0, 2], [0, 1, 2], [0, 0, 2], [0, 0, 0]] * 5), 3)
    np.testing.assert_allclose(prof, [8 / 12, 1 / 12, 3 / 12])
    assert foreign_excess(prof, ref, 0) == pytest.approx(np.log((3 / 12 + e) / e))
    # the same profile as the reference: no excess; the own class never counts
    assert foreign_excess(ref, ref, 0) == 0.0
    assert foreign_excess(np.array([1.0, 0.0, 0.0]), ref, 0) == 0.0


def _as_version_2(bank, path: Path) -> Path:
    """Rewrite a saved bank as a format-2 file: no origin arrays, no origin calibration."""
    src = bank.save(path.with_name("v3.npz"))
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("origin_")}
    header = json.loads(bytes(arrays["__meta__"]).decode())
    header["format_version"] = 2
    header["meta"]["format_version"] = 2
    for table in ("d_max_table", "calibration"):
        header[table].pop("scene_origin", None)
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **arrays)
    return path


def test_format_2_bank_loads_and_is_judged_without_origin(frames, bank, tmp_path, caplog):
    old = ReferenceBank.load(_as_version_2(bank, tmp_path / "v2.npz"))
    assert old.origin_vals.shape == (0, 2) and old.origin_reference() is None
    with caplog.at_level(logging.WARNING, logger="simgap_ext.gate.gate"):
        gate = FrameGate(old, load_gate_config(), device="cpu", quarantine=False)
    assert any("no sensor-origin calibration" in r.message for r in caplog.records)
    d = gate.evaluate(frames[1][1], update_quarantine=False)
    assert "origin" not in d.scene_components and d.accepted, d.reasons
    # a round trip keeps the new arrays
    again = ReferenceBank.load(bank.save(tmp_path / "again.npz"))
    assert again == bank and np.array_equal(again.origin_vals, bank.origin_vals)


def test_bad_origin_arrays_are_refused(bank, tmp_path):
    src = bank.save(tmp_path / "b.npz")
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["origin_frame"] = np.array([0, 7], np.int32)
    np.savez(tmp_path / "frame.npz", **arrays)
    with pytest.raises(ReferenceDataError, match="origin_frame holds a frame outside 0..1"):
        ReferenceBank.load(tmp_path / "frame.npz")
    arrays["origin_frame"] = np.array([0], np.int32)
    np.savez(tmp_path / "len.npz", **arrays)
    with pytest.raises(ReferenceDataError, match="origin_vals and origin_frame differ in length"):
        ReferenceBank.load(tmp_path / "len.npz")


def test_unknown_format_version_is_refused(bank, tmp_path):
    path = _as_version_2(bank, tmp_path / "v2.npz")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays["__meta__"]).decode())
    header["format_version"] = 1
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "v1.npz", **arrays)
    with pytest.raises(ReferenceDataError, match="format version 1, this SimGap reads 2, 3"):
        ReferenceBank.load(tmp_path / "v1.npz")
