"""The range-noise tail per class and range bin (``noise_tail_shares`` / ``noise_tail_scales``): its TOML form and
validation, the post-process against a brute-force count on a hand-built range image, the fit's recovery of known
per-class tails, and the gate-consistent selection of the fit's triples (docs/backend.md "Issue 10, ninth pass")."""

from __future__ import annotations

from dataclasses import replace
from math import erf, sqrt

import numpy as np
import pytest
from test_tune import _flat_model

from simgap_ext.errors import SimGapInputError
from simgap_ext.sensors import EffectSettings, ReadOnlyMapping, load_sensor_profile, profile_to_toml
from simgap_ext.tune import SensorEffectModel, fit_effect_model
from simgap_ext.tune.apply import effect_draw
from simgap_ext.tune.fit import RealScan, _fit_noise_tail, _robust_sigma
from simgap_ext.tune.model import DEFAULT_RANGE_EDGES

PROFILE = load_sensor_profile("hdl-32").at_rotation_rate(20.0)
CLASSES = ("other", "building", "ground")
N_R = len(DEFAULT_RANGE_EDGES) - 1


def _model(sigma: float = 0.01, **extra: object) -> SensorEffectModel:
    """No drop, uniform noise ``sigma``, the 20 Hz HDL-32E beam table, classes other/building/ground
    (``test_tune._flat_model``), with ``extra`` fields (validated again)."""
    return _flat_model(sigma, classes=CLASSES).replace(**extra)


def _tables(per_class: dict[str, tuple[float, float]]) -> dict[str, tuple[tuple[float, ...], ...]]:
    share = tuple(tuple([per_class.get(c, (0.0, 1.0))[0]] * N_R) for c in CLASSES)
    scale = tuple(tuple([per_class.get(c, (0.0, 1.0))[1]] * N_R) for c in CLASSES)
    return {"noise_tail_shares": share, "noise_tail_scales": scale}


def test_tail_tables_round_trip_and_are_validated(tmp_path):
    """The tables survive the profile's TOML form exactly; one table without the other, a wrong shape, a share
    >= 1 or a scale < 1 are refused with a message naming the key; a model without tables reads the scalar pair
    in every cell (profiles written before the tables existed)."""
    model = _model(noise_tail_share=0.05, noise_tail_scale=9.0, **_tables({"ground": (0.02, 4.0)}))
    prof = replace(PROFILE, presets=ReadOnlyMapping({**PROFILE.presets, "tuned": EffectSettings(model=model)}))
    path = tmp_path / "p.toml"
    path.write_text(profile_to_toml(prof))
    back = load_sensor_profile(str(path)).preset("tuned").model
    assert back.noise_tail_shares == model.noise_tail_shares
    assert back.noise_tail_scales == model.noise_tail_scales
    share, scale = back.noise_tail()
    assert share.shape == (3, N_R) and share[2, 0] == 0.02 and scale[2, 0] == 4.0 and share[1, 0] == 0.0
    old_share, old_scale = _model(noise_tail_share=0.05, noise_tail_scale=9.0).noise_tail()
    assert np.all(old_share == 0.05) and np.all(old_scale == 9.0)
    good = _tables({"ground": (0.02, 4.0)})
    with pytest.raises(SimGapInputError, match="go together"):
        _model(noise_tail_shares=good["noise_tail_shares"])
    with pytest.raises(SimGapInputError, match="must have shape"):
        _model(noise_tail_shares=good["noise_tail_shares"][:2], noise_tail_scales=good["noise_tail_scales"][:2])
    with pytest.raises(SimGapInputError, match="noise_tail_shares"):
        _model(**_tables({"ground": (1.0, 4.0)}))
    with pytest.raises(SimGapInputError, match="noise_tail_scales"):
        _model(**_tables({"ground": (0.1, 0.5)}))


def test_tail_tables_filled_with_the_scalar_pair_give_the_scalar_model():
    """Tables holding the scalar pair in every cell give bit-identical ranges to the scalar model (same seed): the
    table path draws the same random numbers and only looks the pair up per cell."""
    rng_img = np.random.default_rng(1).uniform(2.0, 60.0, (PROFILE.channels, 200)).astype(np.float32)
    cls = np.random.default_rng(2).integers(0, 3, rng_img.shape)
    scalar = _model(noise_tail_share=0.07, noise_tail_scale=6.0)
    table = scalar.replace(**_tables({c: (0.07, 6.0) for c in CLASSES}))
    a = effect_draw(rng_img, cls, scalar, np.random.default_rng(5))
    b = effect_draw(rng_img, cls, table, np.random.default_rng(5))
    np.testing.assert_array_equal(a.range, b.range)
    np.testing.assert_array_equal(a.keep, b.keep)


def test_tail_applies_per_class_as_counted_by_brute_force():
    """A hand-built range image at 10 m, ground on half the columns and building on the other, core sigma 1 cm:
    ground without tail, building with 30 % of its returns at 10x. The share of returns moved by more than 5 cm
    (5 core sigmas) is 0 on ground (Gaussian: 6e-7) and 0.3 * P(|N(0, 0.1)| > 0.05) = 0.185 on building, within
    4 binomial standard errors of the 16,000 building cells."""
    n_c = 1000
    rng_img = np.full((PROFILE.channels, n_c), 10.0, np.float32)
    cls = np.where(np.arange(n_c)[None, :] < n_c // 2, 2, 1) * np.ones((PROFILE.channels, 1), np.int64)
    model = _model(0.01, **_tables({"building": (0.3, 10.0)}))
    out = effect_draw(rng_img, cls, model, np.random.default_rng(0))
    moved = np.abs(out.range - 10.0) > 0.05
    ground, building = cls == 2, cls == 1
    assert moved[ground].sum() == 0
    expect = 0.3 * (1.0 - erf(0.05 / 0.1 / sqrt(2.0)))
    n = int(building.sum())
    assert abs(moved[building].mean() - expect) <= 4 * sqrt(expect * (1 - expect) / n), moved[building].mean()


def test_fit_recovers_per_class_tails():
    """Hand-built range images: every beam a ring at 5.5, 8.5 or 12.5 m (three range bins), ground on half the
    columns and building on the other, post-processed with a known per-class tail (core 2 cm; ground 3 % at 5x,
    building 15 % at 8x). Every (class, bin) cell holds ~5,700 triples per scan, so each gets its own fit, and it
    reads its own pair: share within 0.04, scale within 35 % (the tolerances of the scalar fit's recovery test in
    tests/test_tune.py), core sigma within 10 %. One pooled pair could not be within both classes' tolerances."""
    truth = _model(0.02, **_tables({"ground": (0.03, 5.0), "building": (0.15, 8.0)}))
    n_b, n_c = PROFILE.channels, PROFILE.horizontal_resolution
    clean = np.repeat(np.array([5.5, 8.5, 12.5] * n_b, np.float32)[:n_b, None], n_c, axis=1)
    cls = np.where(np.arange(n_c) < n_c // 2, 2, 1)[None, :].repeat(n_b, axis=0)
    names = np.array(CLASSES, dtype=object)[cls]
    scans = []
    for seed in (0, 1):
        draw = effect_draw(clean, cls, truth, np.random.default_rng(seed))
        rng_img = np.where(draw.keep, draw.range, 0.0).astype(np.float32)
        scans.append(
            RealScan(rng_img, names, np.full(clean.shape, 50.0, np.float32), np.asarray(PROFILE.vertical_angles_deg))
        )
    fit = fit_effect_model(scans, classes=("building", "ground"))
    share, scale = fit.noise_tail()
    sigma = np.asarray(fit.noise_sigma)
    for name, (p, m) in (("ground", (0.03, 5.0)), ("building", (0.15, 8.0))):
        k = fit.classes.index(name)
        for j in (1, 2, 3):  # 4-7, 7-10, 10-15 m
            assert abs(share[k, j] - p) <= 0.04, (name, j, share[k, j])
            assert abs(scale[k, j] / m - 1.0) <= 0.35, (name, j, scale[k, j])
            assert abs(sigma[k, j] / 0.02 - 1.0) <= 0.10, (name, j, sigma[k, j])


def test_tail_fit_simulates_the_gate_selection():
    """Triples whose centre lies more than 0.3 m (the gate's SURFACE_GAP) from a neighbour are left out of the real
    samples; the mixture fit must leave them out of its simulation too. Brute force: 200,000 triples of a known
    mixture (sigma 2 cm, 6 % at 8x, so the tail reaches the bound), selected as the fit selects them: with the bound
    simulated the fit reads the scale within 10 %; without it, the cut-off tail reads as a narrower one (> 15 % low)."""
    rng = np.random.default_rng(5)
    n = 200_000
    e = rng.standard_normal((3, n)) * np.where(rng.random((3, n)) < 0.06, 8.0, 1.0) * 0.02
    keep = (np.abs(e[1] - e[0]) <= 0.3) & (np.abs(e[1] - e[2]) <= 0.3)
    d2 = (e[0] - 2.0 * e[1] + e[2])[keep]
    sigma = _robust_sigma(d2)
    z = d2 / (np.sqrt(6.0) * sigma)
    share, scale, infl = _fit_noise_tail(z, np.full(z.size, 0.3 / sigma))
    assert abs(scale / 8.0 - 1.0) <= 0.10 and abs(share - 0.06) <= 0.015, (share, scale)
    assert abs(sigma / infl / 0.02 - 1.0) <= 0.05  # the core sigma after the inflation is removed
    _, naive_scale, _ = _fit_noise_tail(z)
    assert naive_scale < 0.85 * 8.0, naive_scale
