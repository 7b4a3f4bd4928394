"""The per-class joint deviation test (gate.joint): by hand, its calibration by simulation, banks, real keyframes.

Real part: 8 nuScenes-lidarseg keyframes of tests/data (HDL-32E): each held out against a bank of the other 7 is
accepted, and with every vehicle point labelled vegetation the receiving class is flagged by the joint test where
no single component fails it.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
from simgap_ext.gate.bank import CALIBRATION_FLOORS, DEVIATION_COMPONENTS
from simgap_ext.gate.joint import (
    MIN_JOINT_FRAMES,
    JointTests,
    fit_joint_bound,
    joint_bound,
    joint_statistic,
    nested_loo_statistics,
)
from simgap_ext.gate.validation import perturb

DATA = Path(__file__).parent / "data"


# ------------------------------------------------------------------------------------------------- by hand
def test_joint_statistic_by_hand():
    # z = 0.2 / (0.1 sqrt(1 - 1/25)) = 2.0412, z = 0.03 / (0.01 sqrt(1 - 1/100)) = 3.0151; T = (4.1667 + 9.0909) / 2
    t = joint_statistic(np.array([0.2, 0.03]), np.array([0.1, 0.01]), np.array([5, 10]))
    assert t == pytest.approx((4 / (1 - 1 / 25) + 9 / (1 - 1 / 100)) / 2, rel=1e-12)
    assert t == pytest.approx(6.6288, abs=1e-4)
    # a frame left out of the scales: no correction; the cap counts a component at most at its own bound
    assert joint_statistic(np.array([0.2, 0.03]), np.array([0.1, 0.01])) == pytest.approx((4 + 9) / 2)
    assert joint_statistic(np.array([0.2, 0.03]), np.array([0.1, 0.01]), cap=np.array([1.0, 10.0])) == 5.0
    with pytest.raises(ValueError, match="scales"):
        joint_statistic(np.array([0.1, 0.1]), np.array([0.1, 0.0]))
    with pytest.raises(ValueError, match="deviations"):
        joint_statistic(np.array([-0.1, 0.1]), np.array([0.1, 0.1]))
    with pytest.raises(ValueError, match="matching"):
        joint_statistic(np.array([0.1]), np.array([0.1, 0.1]))


def test_nested_leave_one_out_against_a_loop():
    rng = np.random.default_rng(3)
    d = np.abs(rng.normal(size=(7, 3))) * np.array([1.0, 0.01, 3.0])
    floors = np.array([0.0, 0.02, 0.0])  # the second column's RMS (~0.01) is below its floor: the floor scales it
    got = nested_loo_statistics(d, floors)
    for j in range(7):
        rest = np.delete(d, j, axis=0)
        s = np.maximum(np.sqrt((rest**2).mean(axis=0)), floors)
        assert got[j] == pytest.approx(np.mean((d[j] / s) ** 2), rel=1e-12)


def test_joint_bound_is_a_scaled_f_prediction_bound():
    t = np.array([0.5, 1.2, 0.8, 2.5, 0.3, 1.1, 0.9, 1.7])
    bound, h = joint_bound(t, 0.99, max_df=6)
    h_expected = 2 * t.mean() ** 2 / t.var(ddof=1)  # the method-of-moments df of a scaled chi-square
    assert 1 < h_expected < 6 and h == pytest.approx(h_expected)
    assert bound == pytest.approx(t.mean() * stats.f.ppf(0.99, h_expected, h_expected * t.size), rel=1e-9)
    # equal values: no dispersion to see, the independent-components df; very dispersed ones: clipped at 1
    assert joint_bound(np.ones(5), 0.9, max_df=4)[1] == 4.0
    assert joint_bound(np.array([0.0, 0.0, 0.0, 9.0]), 0.9, max_df=4)[1] == 1.0
    with pytest.raises(ValueError, match="at least 2"):
        joint_bound([1.0], 0.9, max_df=2)


def test_too_few_frames_or_components_give_no_joint_test():
    names = ("a", "b", "c")
    d = np.abs(np.random.default_rng(0).normal(size=(MIN_JOINT_FRAMES, 3)))
    has = np.ones_like(d, bool)
    assert fit_joint_bound(d, has, names, ("a", "b"), {}, 0.99) is not None
    assert fit_joint_bound(d, has, names, ("a",), {}, 0.99) is None  # one component: its own bound judges it
    assert fit_joint_bound(d[:-1], has[:-1], names, ("a", "b"), {}, 0.99) is None  # 4 frames: a useless bound
    # a frame that did not measure b (a few-point class) does not count for a test over a and b
    has[0, 1] = False
    assert fit_joint_bound(d, has, names, ("a", "b"), {}, 0.99) is None
    fit = fit_joint_bound(d, has, names, ("a", "c"), {}, 0.99)
    assert fit is not None and fit.n_real == MIN_JOINT_FRAMES
    # the scale of b still uses every frame that measured it
    fit_b = fit_joint_bound(np.vstack([d, d[:1]]), np.vstack([has, np.ones((1, 3), bool)]), names, ("a", "b"), {}, 0.99)
    assert fit_b.n_frames.tolist() == [6, 5]
    assert fit_b.scales[1] == pytest.approx(math.sqrt(np.mean(np.r_[d[1:, 1], d[0, 1]] ** 2)))


# ------------------------------------------------------------------------------------------------- calibration
def _exceeds(rng: np.random.Generator, n: int, rho: float, level: float) -> tuple[bool, float]:
    """One bank of n real frames of 4 correlated normal statistics (very different units), one new frame."""
    p = 4
    cov = np.full((p, p), rho) + (1 - rho) * np.eye(p)
    v = rng.standard_normal((n + 1, p)) @ np.linalg.cholesky(cov).T * np.array([1.0, 0.1, 5.0, 0.01])
    real, new = v[:n], v[n]
    dev = np.abs(real - (real.sum(axis=0) - real) / (n - 1))  # each frame against the others, as the bank does
    names = ("a", "b", "c", "d")
    fit = fit_joint_bound(dev, np.ones_like(dev, bool), names, names, {}, level)
    return fit.statistic(dict(zip(names, np.abs(new - real.mean(axis=0)), strict=True))) > fit.bound, fit.df


def test_joint_bound_coverage_on_correlated_normal_statistics():
    """The bound's false-alarm rate on real-like data stays near its level whatever the correlation: independent
    components (a chi-square with p df) and strongly correlated ones (nearly one df) alike. Fisher's combination,
    which assumes independence, would fail the correlated case (measured on real scans: docs/gate.md)."""
    rng = np.random.default_rng(7)
    rates, dfs = {}, {}
    for rho in (0.0, 0.9):
        runs = [_exceeds(rng, 15, rho, 0.95) for _ in range(400)]
        rates[rho] = np.mean([r for r, _ in runs])
        dfs[rho] = np.mean([h for _, h in runs])
    # nominal 5 %: within a factor 2 either way plus the binomial noise of 400 trials (sd ~1.1 %)
    assert 0.005 <= rates[0.0] <= 0.10 and 0.01 <= rates[0.9] <= 0.10, rates
    assert dfs[0.9] < dfs[0.0] - 0.5, dfs  # the fit sees the correlation as dispersion of T


# ------------------------------------------------------------------------------------------------- banks
# keyframes, bank7: tests/conftest.py (built once per session)


def test_bank_keeps_each_frames_deviation_vector(bank7, tmp_path):
    """The stored vectors are the calibration's own leave-one-out deviations, frame by frame; they round-trip."""
    dev, has = bank7.class_deviation_vectors("vegetation")
    assert dev.shape == (7, len(DEVIATION_COMPONENTS)) and has.all(axis=0).any()
    # ring continuity: |v_j - mean(v_-j)| from the stored per-frame continuity values, in frame order
    ci = bank7.class_index("vegetation")
    v = bank7.dens_vals[bank7.dens_class == ci].astype(np.float64)
    frames = bank7.dens_frame[bank7.dens_class == ci]
    k = DEVIATION_COMPONENTS.index("density")
    rows = bank7.joint_frame[bank7.joint_class == ci]
    for f, val in zip(frames, np.abs(v - (v.sum() - v) / (v.size - 1)), strict=True):
        assert dev[rows == f, k][0] == pytest.approx(val, rel=1e-5)
    # every component's column holds exactly the values its per-class bound was computed from (same RMS)
    from simgap_ext.gate.tailbound import loo_deviation_bound

    q = bank7.meta["calibration_class_quantile"]
    for k, comp in enumerate(DEVIATION_COMPONENTS):
        col = dev[has[:, k], k]
        if col.size > 1:
            assert bank7.calibration[comp]["vegetation"] == pytest.approx(loo_deviation_bound(col, q), rel=1e-4)
    loaded = ReferenceBank.load(bank7.save(tmp_path / "b.npz"))
    assert loaded == bank7
    for name in ("joint_dev", "joint_has", "joint_class", "joint_frame"):
        assert np.array_equal(getattr(loaded, name), getattr(bank7, name))


def test_old_bank_loads_without_the_joint_test(bank7, keyframes, tmp_path, caplog):
    """A format-4 bank (no deviation vectors) loads; the gate says once it cannot test jointly and scores no
    ``joint`` component. Malformed vectors are refused."""
    src = bank7.save(tmp_path / "v5.npz")
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("joint_")}
    header = json.loads(bytes(arrays["__meta__"]).decode())
    assert header["format_version"] == 7
    header["format_version"] = header["meta"]["format_version"] = 4
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "v4.npz", **arrays)
    old = ReferenceBank.load(tmp_path / "v4.npz")
    assert old.joint_dev.shape == (0, len(DEVIATION_COMPONENTS))
    with caplog.at_level(logging.WARNING, logger="simgap_ext.gate.gate"):
        gate = FrameGate(old, load_gate_config(), device="cpu", quarantine=False)
    assert any("no per-frame deviation vectors" in r.message for r in caplog.records)
    d = gate.evaluate(keyframes[-1][1], update_quarantine=False)
    assert d.accepted and not any("joint" in c.components for c in d.per_class.values())
    from simgap_ext.errors import ReferenceDataError

    bad = dict(arrays, joint_dev=np.ones((2, 3), np.float32), joint_has=np.ones((2, 3), np.uint8))
    bad["joint_class"], bad["joint_frame"] = np.zeros(2, np.int32), np.zeros(2, np.int32)
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ReferenceDataError, match="joint_dev"):
        ReferenceBank.load(tmp_path / "bad.npz")


def test_joint_tests_match_the_fit_and_cache(bank7):
    tests = JointTests(bank7, margin=1.5)
    dev, has = bank7.class_deviation_vectors("vegetation")
    comps = [c for k, c in enumerate(DEVIATION_COMPONENTS) if has[:, k].all()]
    distances = {c: float(np.sqrt(np.mean(dev[:, DEVIATION_COMPONENTS.index(c)] ** 2))) for c in comps}
    got = tests.evaluate("vegetation", distances)
    q = bank7.meta["calibration_class_quantile"]
    fit = fit_joint_bound(dev, has, DEVIATION_COMPONENTS, comps, CALIBRATION_FLOORS, q)
    assert got.limit == pytest.approx(1.5 * fit.bound) and got.statistic == pytest.approx(fit.statistic(distances))
    assert tests.evaluate("vegetation", distances).fit is got.fit  # fitted once per (class, components)
    assert tests.evaluate("no such class", distances) is None


# ------------------------------------------------------------------------------------------------- real keyframes
def test_real_keyframes_accepted_and_a_relabel_caught_jointly(keyframes, bank7):
    """data35 held out: accepted as it is (the joint test present for several classes); with every vehicle point
    labelled vegetation, rejected by the joint test on vegetation — no single component or G fails it — and,
    independently, by the hidden-class check (7 frames: absence 0.5 / 8 is evidence only with unusual votes, here
    building's). Three more held-out keyframes accepted."""
    cfg = load_gate_config()
    gate = FrameGate(bank7, cfg, device="cpu", quarantine=False)
    real = gate.evaluate(keyframes[-1][1], update_quarantine=False)
    assert real.accepted, real.reasons
    assert sum("joint" in c.components for c in real.per_class.values()) >= 3
    rel = gate.evaluate(
        perturb(keyframes[-1][1], "relabel_scene", 0, np.random.default_rng(0)), update_quarantine=False
    )
    assert not rel.accepted
    assert len(rel.reasons) == 2 and rel.reasons[0].startswith("class vegetation: joint deviation T="), rel.reasons
    assert rel.reasons[1].startswith("class vehicle: in 7 of 7 real frames but absent here"), rel.reasons
    veg = rel.per_class["vegetation"]
    t, d_max = veg.evidence["joint"]
    assert veg.components["joint"] < 0.5 and t > d_max / 2  # beyond half its d_max, as any strict failure
    assert veg.g >= cfg.g_threshold and min(v for k, v in veg.components.items() if k != "joint") >= 0.5
    # without the joint test (what the gate did before it) only the hidden-class check rejects the relabel
    off = FrameGate(bank7, load_gate_config(joint_test=False), device="cpu", quarantine=False)
    relabelled = perturb(keyframes[-1][1], "relabel_scene", 0, np.random.default_rng(0))
    d_off = off.evaluate(relabelled, update_quarantine=False)
    assert not any("joint" in c.components for c in d_off.per_class.values())
    assert not d_off.accepted and d_off.reasons == rel.reasons[1:], d_off.reasons
    for i in (0, 2, 5):  # data0, data30, data33 held out against the other seven
        bank = ReferenceBank.build(keyframes[:i] + keyframes[i + 1 :], config=cfg, device="cpu")
        d = FrameGate(bank, cfg, device="cpu", quarantine=False).evaluate(keyframes[i][1], update_quarantine=False)
        assert d.accepted, (keyframes[i][0], d.reasons)
        assert any("joint" in c.components for c in d.per_class.values())
