"""Ring continuity of a thin class: the density d_max widens for the frame's own binomial sampling error.

The bound (gate.tailbound.heteroscedastic_bound) against the textbook prediction interval and by simulation; the
bank's per-frame widening (ReferenceBank.density_d_max) by hand on real nuScenes keyframes of tests/data.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from simgap_ext.gate import ReferenceBank, load_gate_config
from simgap_ext.gate.realsets import iter_real_scans
from simgap_ext.gate.tailbound import heteroscedastic_bound, loo_deviation_bound

DATA = Path(__file__).parent / "data"


def _loo(v: np.ndarray) -> np.ndarray:
    return np.abs(v - (v.sum() - v) / (v.size - 1))


def test_equal_errors_give_the_homoscedastic_bound():
    """Every frame with the new frame's sampling error: the plain prediction bound of the leave-one-out deviations."""
    v = np.array([0.91, 0.88, 0.95, 0.83, 0.9, 0.86, 0.93])
    se = np.full(v.size, 0.01)  # below the spread: tau^2 > 0
    assert heteroscedastic_bound(v, se, 0.01, 0.99) == pytest.approx(loo_deviation_bound(_loo(v), 0.99), rel=1e-9)


def test_by_hand():
    v = np.array([0.9, 0.8, 0.85, 0.95])
    se = np.array([0.02, 0.05, 0.03, 0.01])
    tau2 = max(0.0, v.var(ddof=1) - np.mean(se**2))
    expected = stats.t.ppf(0.995, 3) * math.sqrt(tau2 + 0.08**2 + (tau2 + np.mean(se**2)) / 4)
    assert heteroscedastic_bound(v, se, 0.08, 0.99) == pytest.approx(expected, rel=1e-9)
    # all the spread explained by sampling error: tau^2 = 0, the bound is the errors' alone
    flat = heteroscedastic_bound(np.array([0.5, 0.5]), np.array([0.1, 0.1]), 0.1, 0.9)
    assert flat == pytest.approx(stats.t.ppf(0.95, 1) * math.sqrt(0.01 + 0.01 / 2))
    # a larger own error widens it
    assert heteroscedastic_bound(v, se, 0.2, 0.99) > heteroscedastic_bound(v, se, 0.08, 0.99)
    with pytest.raises(ValueError, match="n >= 2"):
        heteroscedastic_bound([0.5], [0.1], 0.1, 0.9)
    with pytest.raises(ValueError, match="se_new"):
        heteroscedastic_bound(v, se, -0.1, 0.9)


def test_coverage_for_thin_frames_by_simulation():
    """Real frames with hundreds of points, new frames with 30: the homoscedastic bound (the bank's spread) is
    exceeded far more often than asked, the heteroscedastic one about as often as asked."""
    rng = np.random.default_rng(5)
    q, n, tau = 0.95, 12, 0.02
    miss_plain = miss_wide = 0
    trials = 2000
    for _ in range(trials):
        m = rng.integers(300, 1500, n)
        p_true = np.clip(0.9 + rng.normal(0, tau, n + 1), 0.01, 0.99)
        v = rng.binomial(m, p_true[:n]) / m
        p_new = rng.binomial(30, p_true[n]) / 30
        se = np.sqrt(v * (1 - v) / m)
        dev = abs(p_new - v.mean())
        miss_plain += dev > loo_deviation_bound(_loo(v), q)
        miss_wide += dev > heteroscedastic_bound(v, se, math.sqrt(p_new * (1 - p_new) / 30), q)
    assert miss_plain / trials > 0.2
    assert miss_wide / trials < 0.1  # nominal 0.05; the Wald error of 30 points is itself noisy


@pytest.fixture(scope="module")
def bank():
    scans = list(iter_real_scans(DATA / "nuscenes")) + list(iter_real_scans(DATA / "nuscenes_hdl32"))
    return ReferenceBank.build(scans, config=load_gate_config(), device="cpu")


def test_density_d_max_widens_only_for_a_thin_frame(bank, tmp_path):
    cfg = load_gate_config()
    name = "vegetation"
    ci = bank.class_index(name)
    v = bank.dens_vals[bank.dens_class == ci].astype(np.float64)
    m = bank.dens_points[bank.dens_class == ci].astype(np.float64)
    assert v.size == 5 and (m >= 25).all()
    base = bank.class_d_max(name, "density")
    # a frame with as many points as the bank's frames: never narrower than the class's d_max
    assert bank.density_d_max(name, int(m.max()), float(v.mean())) == base
    # 30 points at continuity 0.7: the hand formula (Wald errors of each frame and of this one), times the scale
    q = bank.meta["calibration_class_quantile"]
    se = np.sqrt(v * (1 - v) / m)
    tau2 = max(0.0, v.var(ddof=1) - np.mean(se**2))
    hand = stats.t.ppf((1 + q) / 2, v.size - 1) * math.sqrt(tau2 + 0.7 * 0.3 / 30 + (tau2 + np.mean(se**2)) / 5)
    scale = cfg.calibration_margin / (1 - cfg.g_threshold)
    wide = bank.density_d_max(name, 30, 0.7)
    assert wide == pytest.approx(max(base, max(hand, 0.05) * scale), rel=1e-5) and wide > base
    # continuity 1 has no binomial error: the class's d_max
    assert bank.density_d_max(name, 30, 1.0) == base
    # a bank without the counts (format < 5) keeps the class's d_max
    import dataclasses

    old = dataclasses.replace(bank, dens_points=np.zeros(0, np.int32))
    assert old.density_d_max(name, 30, 0.7) == base
    loaded = ReferenceBank.load(bank.save(tmp_path / "b.npz"))
    assert np.array_equal(loaded.dens_points, bank.dens_points)
