"""Ring statistics on the columns a frame actually has (issue 10: the gate read the datasheet's 2170 columns of
the HDL-32E at 10 Hz, so every ring neighbour of a 1085-column nuScenes sweep (20 Hz) was two steps away and the
roughness component silently vanished, for real and synthetic frames alike).

Independent reference for the real fixture: nuScenes ``points.bin`` keeps every firing, no-returns as points at
the origin, so the file's point count / 32 beams is the sweep's true column count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simgap_ext.data import iter_scans
from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
from simgap_ext.gate.bank import sensor_geometry
from simgap_ext.gate.frame_stats import frame_stats, measured_columns, ring_ids
from simgap_ext.tune.real import nuscenes_frame

DATA = Path(__file__).parent / "data" / "nuscenes_hdl32"


def _true_columns(scan: Path) -> float:
    firings = np.fromfile(scan / "points.bin", dtype=np.float32).reshape(-1, 5).shape[0]
    return firings / 32.0


def test_real_sweep_columns_measured_not_datasheet():
    beams, nominal = sensor_geometry("hdl-32")
    assert nominal == 2170  # the datasheet count at 10 Hz: the premise of the bug
    for scan in sorted(DATA.iterdir()):
        if not scan.is_dir():
            continue
        frame = nuscenes_frame(scan)
        pts = np.asarray(frame["data"])
        got = measured_columns(pts, ring_ids(pts, beams), nominal)
        assert got == pytest.approx(_true_columns(scan), rel=0.01)
        st = frame_stats(frame, vertical_angles_deg=beams, horizontal_resolution=nominal)
        assert st.columns == got
        # The reference without any profile count (median ring gap, as range_roughness estimates it): the
        # roughness is measured on nearly the same points, not on none.
        free = frame_stats(frame, vertical_angles_deg=beams, horizontal_resolution=None)
        assert free.scene_roughness().size > 10_000
        assert st.scene_roughness().size == pytest.approx(free.scene_roughness().size, rel=0.02)
        # Return ratio = returns / columns: below 1 on every beam, and the brute-force count per ring agrees.
        counts = np.bincount(ring_ids(pts, beams), minlength=32)
        np.testing.assert_allclose(st.beam_ratio, counts / got, rtol=1e-6)
        assert st.beam_ratio.max() <= 1.0 and st.beam_ratio.mean() > 0.5


def test_thinned_frame_keeps_its_columns_and_nominal_is_kept_within_jitter():
    beams, nominal = sensor_geometry("hdl-32")
    pts = np.asarray(nuscenes_frame(DATA / "data30")["data"])
    rings = ring_ids(pts, beams)
    full = measured_columns(pts, rings, None)
    rng = np.random.default_rng(0)
    for keep in (0.5, 0.2):
        # Random ray drop makes 2-, 3-step gaps, but one step stays the modal gap: not a slower sensor.
        m = rng.random(pts.shape[0]) < keep
        assert measured_columns(pts[m], rings[m], None) == pytest.approx(full, rel=0.01)
    # A nominal count within the firing jitter is kept exactly; too few gaps to measure keeps it too.
    assert measured_columns(pts, rings, 1085) == 1085
    assert measured_columns(pts[:50], rings[:50], 2170) == 2170
    assert measured_columns(pts[:50], rings[:50], None) is None


def test_gate_scores_roughness_of_a_1085_column_sweep():
    scans = list(iter_scans(DATA))
    config = load_gate_config()
    bank = ReferenceBank.build(scans[:2], sensor="hdl-32", config=config, device="cpu")
    assert bank.meta["columns"] == pytest.approx(1085, rel=0.01)
    assert bank.scene_rough.size > 1000
    gate = FrameGate(bank, config, device="cpu", quarantine=False)
    decision = gate.evaluate(scans[2][1], update_quarantine=False)
    assert "roughness" in decision.scene_components
    assert "beams" in decision.scene_components


def test_a_frame_firing_fewer_columns_than_the_real_scans_shows_it_in_its_beam_ratios():
    # Ring neighbours follow the frame's own columns, but the return ratios are counted against the real scans'
    # columns: every other column of each ring kept (a sensor spinning twice as fast, or stride subsampling in
    # firing order) halves them, which the frame's own count would hide (ratios ~1 again).
    scans = list(iter_scans(DATA))
    config = load_gate_config()
    bank = ReferenceBank.build(scans[:2], sensor="hdl-32", config=config, device="cpu")
    gate = FrameGate(bank, config, device="cpu", quarantine=False)
    frame = scans[2][1]
    pts = np.asarray(frame["data"], dtype=np.float64)
    beams, _ = sensor_geometry("hdl-32")
    rings = ring_ids(pts.astype(np.float32), beams)
    az = np.arctan2(pts[:, 1], pts[:, 0])
    order = np.lexsort((az, rings))
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    first = np.r_[0, np.flatnonzero(np.diff(rings[order])) + 1]  # first point of each ring in sorted order
    start = np.zeros(rings.max() + 1, np.int64)
    start[rings[order][first]] = first
    keep = (rank - start[rings]) % 2 == 0
    half = {
        "data": np.ascontiguousarray(frame["data"][keep]),
        "info": {
            **frame["info"],
            "pointSemantic": np.asarray(frame["info"]["pointSemantic"])[keep],
            "pointInstance": np.asarray(frame["info"]["pointInstance"])[keep],
        },
    }
    full_st, half_st = gate.stats(frame), gate.stats(half)
    assert half_st.columns == pytest.approx(full_st.columns / 2, rel=0.02)
    assert float(half_st.beam_ratio.mean()) == pytest.approx(float(full_st.beam_ratio.mean()) / 2, rel=0.05)
    full_d = gate.evaluate(frame, update_quarantine=False)
    half_d = gate.evaluate(half, update_quarantine=False)
    assert half_d.scene_components["beams"] < 0.5 <= full_d.scene_components["beams"]
    assert not half_d.accepted
