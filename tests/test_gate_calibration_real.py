"""The bank's calibration on real scans (tests/data nuScenes keyframes): prediction bounds, not a handful's maximum."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from simgap_ext.gate import ReferenceBank, load_gate_config
from simgap_ext.gate.realsets import iter_real_scans
from simgap_ext.gate.validation import validate_gate

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def nusc():
    scans = list(iter_real_scans(DATA / "nuscenes")) + list(iter_real_scans(DATA / "nuscenes_hdl32"))
    assert len(scans) == 5 and {f["sensor"] for _, f in scans} == {"hdl-32"}
    return scans


def test_real_class_d_max_is_the_prediction_bound_of_its_frames(nusc):
    """Ring continuity of every class, on real frames: d_max / scale equals SciPy's normal prediction interval
    of a new frame's continuity around the bank's mean (from the frames' own continuity values), and lies beyond
    every leave-one-out deviation the bank measured (the empirical maximum used before)."""
    cfg = load_gate_config()
    bank = ReferenceBank.build(nusc[:4], config=cfg, device="cpu")
    q = bank.meta["calibration_class_quantile"]
    assert 0.95 < q < 1.0  # Bonferroni over the classes of a frame
    checked = 0
    for name in bank.class_names:
        v = bank.dens_vals[bank.dens_class == bank.class_index(name)].astype(np.float64)
        if v.size < 3:
            continue
        lo, hi = stats.t.interval(q, v.size - 1, loc=v.mean(), scale=v.std(ddof=1) * math.sqrt(1 + 1 / v.size))
        assert bank.calibration["density"][name] == pytest.approx(hi - v.mean(), rel=1e-4), name
        loo = np.abs(v - (v.sum() - v) / (v.size - 1))
        assert bank.calibration["density"][name] > loo.max()
        scale = cfg.calibration_margin / (1 - cfg.g_threshold)
        expected = max(hi - v.mean(), 0.05) * scale  # the density floor, 0.05
        assert bank.class_d_max(name, "density") == pytest.approx(expected, rel=1e-4)
        checked += 1
    assert checked >= 4  # road, sidewalk, vegetation, vehicle, ... at the scene level


def test_leave_one_out_on_real_keyframes(nusc):
    """Every held-out real keyframe accepted against a bank of the other four; the target perturbations rejected."""
    cases = [
        ("jitter 0.1 m", "jitter", 0.1, True),
        ("ray drop 50 %", "drop", 0.5, True),
        ("subsample 4x", "subsample", 4, True),
        ("shift 0.5 m", "shift", 0.5, True),
    ]
    rows = validate_gate(nusc, max_folds=5, perturbations=cases)
    assert [r.n for r in rows] == [5] * 5
    assert rows[0].accept_rate == 1.0, rows[0].reasons
    assert [r.accept_rate for r in rows[1:]] == [0.0] * 4, [(r.case, r.reasons) for r in rows[1:]]


def test_quantile_one_takes_the_largest_deviation(nusc):
    """calibration_quantile = 1 asks for every real deviation: no finite prediction bound covers that, the largest
    deviation observed is what the bank takes."""
    cfg = load_gate_config(calibration_quantile=1.0)
    bank = ReferenceBank.build(nusc[:4], config=cfg, device="cpu")
    v = bank.dens_vals[bank.dens_class == bank.class_index("vegetation")].astype(np.float64)
    loo = np.abs(v - (v.sum() - v) / (v.size - 1))
    assert bank.calibration["density"]["vegetation"] == pytest.approx(loo.max(), rel=1e-5)
