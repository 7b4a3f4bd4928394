"""``simgap calibrate`` with registration (small_gicp): a known rigid motion is removed, unrelated scans refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.cli import main
from simgap_ext.errors import ReferenceDataError
from simgap_ext.frame import make_frame
from simgap_ext.gate.realsets import iter_real_scans
from simgap_ext.metrics.sensor_calibration import (
    calibrate_sensor,
    read_calibration,
    read_poses,
    register_pair,
    write_calibration,
)

pytest.importorskip("small_gicp")

DATA = Path(__file__).parent / "data"


def _rot_z(deg: float, t: tuple[float, float, float]) -> np.ndarray:
    a = np.radians(deg)
    T = np.eye(4)
    T[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    T[:3, 3] = t
    return T


def _moved(frame, T, jitter=0.0, seed=0):
    pts = frame["data"].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    pts += np.random.default_rng(seed).normal(0.0, jitter, pts.shape)
    info = frame["info"]
    return make_frame(pts.astype(np.float32), info["pointSemantic"], info["pointInstance"], info["idToLabels"])


@pytest.fixture(scope="module")
def nus():
    return list(iter_real_scans(DATA / "nuscenes"))[0][1]


def test_registration_recovers_a_known_rigid_motion(nus):
    T = _rot_z(4.0, (1.2, -0.6, 0.05))
    # the scan seen from a sensor that moved: its points are T^-1 x
    src = _moved(nus, np.linalg.inv(T), jitter=0.01)["data"]
    est, _ = register_pair(src, nus["data"])
    np.testing.assert_allclose(est[:3, 3], T[:3, 3], atol=0.05)
    np.testing.assert_allclose(est[:3, :3], T[:3, :3], atol=0.01)


def test_calibration_removes_ego_motion_per_class(nus):
    T = _rot_z(3.0, (1.5, 0.4, 0.0))
    frames = [("a", nus), ("b", _moved(nus, np.linalg.inv(T), jitter=0.01, seed=1))]
    calib = calibrate_sensor(frames)
    raw_shift = np.linalg.norm(T[:3, 3])
    # after registration only the 1 cm jitter is left (trimmed NN distance ~ jitter scale), far below the motion
    assert calib.scene_distances[0] < 0.05 < raw_shift
    assert calib.d_max == pytest.approx(calib.scene_distances[0] / 0.25)
    assert {"road", "vegetation"} <= set(calib.class_d_max)
    assert all(v > 0 and np.isfinite(v) for v in calib.class_d_max.values())
    assert calib.meta["registration"] == "small_gicp" and not calib.refused


def test_poses_are_used_when_given(nus, tmp_path):
    T = _rot_z(10.0, (4.0, 1.0, 0.0))
    a = dict(nus, frame_id=7)
    b = dict(_moved(nus, np.linalg.inv(T), jitter=0.01, seed=2), frame_id=8)
    poses = tmp_path / "velodyne_poses.txt"
    rows = [[7, *np.eye(4)[:3].ravel()], [8, *T[:3].ravel()]]
    poses.write_text("\n".join(" ".join(f"{v:.10g}" for v in r) for r in rows) + "\n")
    read = read_poses(poses)
    np.testing.assert_allclose(read[8], T)
    calib = calibrate_sensor([("a", a), ("b", b)], poses=read)
    assert calib.meta["registration"] == "poses" and calib.scene_distances[0] < 0.05


def test_unrelated_scans_are_refused_with_the_reason(nus):
    mcd = list(iter_real_scans(DATA / "mcd"))[0][1]
    with pytest.raises(ReferenceDataError, match="do not overlap after registration"):
        calibrate_sensor([("nuscenes", nus), ("mcd", mcd)])


def test_calib_toml_round_trip_and_bad_values(nus, tmp_path):
    frames = [("a", nus), ("b", _moved(nus, _rot_z(1.0, (0.5, 0, 0)), jitter=0.01))]
    calib = calibrate_sensor(frames)
    path = write_calibration(tmp_path / "calib.toml", calib, source="x")
    back = read_calibration(path)
    assert back["d_max"] == pytest.approx(calib.d_max)
    assert back["class_d_max"] == pytest.approx(calib.class_d_max)
    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text().replace(f"d_max = {calib.d_max!r}", "d_max = nan"))
    with pytest.raises(ReferenceDataError, match="d_max is nan"):
        read_calibration(bad)


def test_cli_calibrate_writes_calib_and_score_reads_it(tmp_path, capsys):
    real = tmp_path / "real"
    for d in ("data0", "data1"):
        shutil.copytree(DATA / "nuscenes" / d, real / d)
    out = tmp_path / "calib.toml"
    assert main(["calibrate", "--real", str(real), "--out", str(out), "--no-progress"]) == 0
    calib = read_calibration(out)
    assert calib["meta"]["registration"] == "small_gicp" and calib["class_d_max"]
    assert main(["score", "--real", str(real), "--synthetic", str(real), "--calib", str(out), "--no-progress"]) == 0
    assert f"d_max {calib['d_max']:g} m" in capsys.readouterr().out
    # unrelated scans: exit 2 with the reason
    mixed = tmp_path / "mixed"
    shutil.copytree(DATA / "nuscenes" / "data0", mixed / "nuscenes" / "data0")
    assert main(["calibrate", "--real", str(mixed / "nuscenes"), "--out", str(tmp_path / "c2.toml")]) == 2
    assert "at least 2" in capsys.readouterr().err
