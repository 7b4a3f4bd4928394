"""Sensor effects on synthetic range images: each toggle moves the statistics the expected way."""

from __future__ import annotations

import numpy as np
import pytest

from simgap_ext.backends.warp.effects import INTENSITY_FALLOFF_RANGE, apply_effects
from simgap_ext.errors import SimGapInputError
from simgap_ext.sensors import EffectSettings

MAX_R = 120.0


def _run(settings, r, cos=None, refl=None, seed=0):
    r = np.asarray(r, dtype=np.float32)
    cos = np.ones_like(r) if cos is None else np.asarray(cos, dtype=np.float32)
    refl = np.full_like(r, 0.3) if refl is None else np.asarray(refl, dtype=np.float32)
    return apply_effects(r, cos, refl, settings, max_range=MAX_R, rng=np.random.default_rng(seed))


def test_ideal_is_identity():
    r = np.random.default_rng(0).uniform(1.0, 100.0, (16, 200)).astype(np.float32)
    r[:, ::7] = 0.0  # misses
    res = _run(EffectSettings(), r, refl=np.full(r.shape, 0.42))
    np.testing.assert_array_equal(res.keep, r > 0)
    np.testing.assert_array_equal(res.range[r > 0], r[r > 0])
    np.testing.assert_allclose(res.intensity, 0.42, atol=1e-7)
    assert not res.mixed.any()


def test_range_noise_sigma():
    r = np.full((64, 1024), 20.0, dtype=np.float32)
    res = _run(EffectSettings(range_noise_sigma=0.03), r)
    err = res.range - r
    assert abs(err.mean()) < 1e-3
    assert err.std() == pytest.approx(0.03, rel=0.03)
    assert res.keep.all()


def test_random_drop_fraction():
    r = np.full((64, 1024), 20.0, dtype=np.float32)
    res = _run(EffectSettings(random_drop=0.1), r)
    assert 1.0 - res.keep.mean() == pytest.approx(0.1, abs=0.01)


def _det(**kw):
    base = dict(detection_range=50.0, detection_softness=0.3, incidence_exponent=1.0)
    base.update(kw)
    return EffectSettings(**base)


def test_range_drop_grows_with_range_and_toggles_off():
    # Columns at 10..110 m, 10 %-reflective targets at normal incidence: the threshold is at 50 m.
    ranges = np.repeat(np.linspace(10.0, 110.0, 11)[None], 5000, axis=0).astype(np.float32)
    refl = np.full(ranges.shape, 0.1)
    keep = _run(_det(), ranges, refl=refl).keep.mean(axis=0)
    assert np.all(np.diff(keep) <= 0.01) and keep[0] > 0.99 and keep[-1] < 0.01
    assert keep[4] == pytest.approx(0.5, abs=0.03)  # 50 m: half detected, by definition of detection_range
    flat = _run(_det(range_drop=False), ranges, refl=refl).keep.mean(axis=0)
    assert np.ptp(flat) < 0.03  # without the range term nothing depends on range


def test_incidence_drop_grows_at_grazing_angles_and_toggles_off():
    cos = np.repeat(np.linspace(1.0, 0.02, 10)[None], 5000, axis=0).astype(np.float32)
    r = np.full(cos.shape, 30.0, dtype=np.float32)
    keep = _run(_det(), r, cos=cos).keep.mean(axis=0)
    assert keep[0] > 0.95 and keep[-1] < 0.2 and np.all(np.diff(keep) <= 0.02)
    flat = _run(_det(incidence_drop=False), r, cos=cos).keep.mean(axis=0)
    assert np.ptp(flat) < 0.03


def test_brighter_surfaces_survive_more():
    r = np.full((5000, 2), 60.0, dtype=np.float32)
    refl = np.tile(np.array([0.1, 0.8], dtype=np.float32), (5000, 1))
    keep = _run(_det(), r, refl=refl).keep.mean(axis=0)
    assert keep[1] > keep[0] + 0.5


def test_mixed_pixels_only_at_depth_edges_and_between_surfaces():
    r = np.full((32, 100), 10.0, dtype=np.float32)
    r[:, 50:] = 12.0  # a depth edge between columns 49 and 50 (and the wrap-around 99 | 0)
    res = _run(EffectSettings(mixed_pixel_prob=0.5, mixed_pixel_min_gap=0.5, mixed_pixel_max_gap=4.0), r)
    cols = np.nonzero(res.mixed.any(axis=0))[0]
    assert set(cols.tolist()) <= {0, 49, 50, 99}
    assert 0.3 < res.mixed[:, [0, 49, 50, 99]].mean() < 0.7
    moved = res.range[res.mixed]
    assert np.all((moved > 10.0) & (moved < 12.0))
    # Without the effect nothing moves; nor below the edge threshold; nor when the echoes separate (gap > max).
    assert not _run(EffectSettings(), r).mixed.any()
    assert not _run(EffectSettings(mixed_pixel_prob=1.0, mixed_pixel_min_gap=2.5), r).mixed.any()
    far_bg = np.where(r > 11.0, 30.0, 10.0).astype(np.float32)
    assert not _run(EffectSettings(mixed_pixel_prob=1.0, mixed_pixel_max_gap=4.0), far_bg).mixed.any()
    assert _run(EffectSettings(mixed_pixel_prob=1.0, mixed_pixel_max_gap=25.0), far_bg).mixed.any()


def test_mixed_pixels_ignore_misses():
    r = np.full((8, 40), 10.0, dtype=np.float32)
    r[:, 20:] = 0.0  # sky: no second surface to mix with
    res = _run(EffectSettings(mixed_pixel_prob=1.0, mixed_pixel_min_gap=0.5), r)
    assert not res.mixed.any()


def test_intensity_models():
    r = np.array([[5.0, 40.0, 80.0]], dtype=np.float32)
    cos = np.array([[1.0, 1.0, 0.5]], dtype=np.float32)
    refl = np.full((1, 3), 0.6, dtype=np.float32)
    phys = _run(EffectSettings(intensity_model="physical"), r, cos=cos, refl=refl).intensity[0]
    expected = 0.6 * cos[0] / (1.0 + (r[0] / INTENSITY_FALLOFF_RANGE) ** 2)
    np.testing.assert_allclose(phys, expected, rtol=1e-6)
    assert phys[0] > phys[1] > phys[2]
    flat = _run(EffectSettings(intensity_model="reflectivity"), r, cos=cos, refl=refl).intensity[0]
    np.testing.assert_allclose(flat, 0.6)
    noisy = _run(EffectSettings(intensity_noise_sigma=0.05), np.full((100, 100), 10.0), refl=np.full((100, 100), 0.5))
    assert noisy.intensity.std() == pytest.approx(0.05, rel=0.05)
    assert noisy.intensity.min() >= 0.0 and noisy.intensity.max() <= 1.0


def test_deterministic_and_toggles_are_independent():
    rng = np.random.default_rng(3)
    r = rng.uniform(2.0, 90.0, (32, 256)).astype(np.float32)
    cos = rng.uniform(0.05, 1.0, r.shape).astype(np.float32)
    full = EffectSettings(range_noise_sigma=0.02, random_drop=0.05, detection_range=50.0, mixed_pixel_prob=0.5)
    a, b = _run(full, r, cos=cos, seed=9), _run(full, r, cos=cos, seed=9)
    np.testing.assert_array_equal(a.range, b.range)
    np.testing.assert_array_equal(a.keep, b.keep)
    c = _run(full, r, cos=cos, seed=10)
    assert not np.array_equal(a.keep, c.keep)
    # Switching mixed pixels off leaves the noise draws of every other ray unchanged.
    d = _run(full.without("mixed_pixels"), r, cos=cos, seed=9)
    same = ~a.mixed
    np.testing.assert_array_equal(d.range[same], a.range[same])


def test_shape_validation():
    with pytest.raises(SimGapInputError, match=r"effects need equal \(B, C\) arrays"):
        apply_effects(
            np.ones((2, 3)),
            np.ones((2, 2)),
            np.ones((2, 3)),
            EffectSettings(),
            max_range=1.0,
            rng=np.random.default_rng(),
        )


def test_self_occlusion_hides_growing_sectors_of_the_low_beams():
    """Beams below -10 degrees lose 0.1 of the circle per degree, in two sectors centred on 90 and 270 degrees:
    hand-computed column sets on a 360-column scan (one column per degree)."""
    el = np.array([5.0, -10.0, -12.5, -15.0, -25.0])
    r = np.full((el.size, 360), 10.0, dtype=np.float32)
    s = EffectSettings(self_occlusion_per_deg=0.1, self_occlusion_elevation_deg=-10.0, self_occlusion_azimuth_deg=90.0)
    res = apply_effects(
        r, np.ones_like(r), np.full_like(r, 0.3), s, max_range=MAX_R, rng=np.random.default_rng(0), elevations_deg=el
    )
    hidden = ~res.keep
    assert not hidden[:2].any()  # above the start elevation: untouched
    az = np.arange(360)
    for b, half in ((2, 22.5), (3, 45.0)):  # share 0.25 -> 2 sectors of 45 deg; share 0.5 -> 2 of 90 deg
        expect = (np.abs(az - 90) < half) | (np.abs(az - 270) < half)
        np.testing.assert_array_equal(hidden[b], expect)
    assert hidden[4].all()  # share clipped to 1: the whole circle
    # Deterministic: the vehicle hides the same cells whatever the noise seed.
    other = apply_effects(
        r, np.ones_like(r), np.full_like(r, 0.3), s, max_range=MAX_R, rng=np.random.default_rng(7), elevations_deg=el
    )
    np.testing.assert_array_equal(other.keep, res.keep)


def test_sky_drop_ramps_with_elevation_and_leaves_other_draws_alone():
    el = np.array([10.0, 5.0, 0.0, -10.0])
    r = np.full((el.size, 20000), 30.0, dtype=np.float32)
    base = EffectSettings(range_noise_sigma=0.02, random_drop=0.1)
    sky = EffectSettings(range_noise_sigma=0.02, random_drop=0.1, sky_drop_per_deg=0.05, sky_drop_elevation_deg=0.0)

    def run(settings):
        return apply_effects(
            r,
            np.ones_like(r),
            np.full_like(r, 0.3),
            settings,
            max_range=MAX_R,
            rng=np.random.default_rng(3),
            elevations_deg=el,
        )

    a, b = run(base), run(sky)
    # p_sky = 0.05 * elevation: 0.5 at 10 deg, 0.25 at 5 deg, 0 at and below the horizon (binomial, 20k columns).
    for i, p in enumerate((0.5, 0.25, 0.0, 0.0)):
        assert b.keep[i].mean() == pytest.approx(a.keep[i].mean() * (1 - p), abs=0.012)
    # Drawn after every other array: ranges and the other drops of the kept rays are unchanged.
    assert not (b.keep & ~a.keep).any()
    np.testing.assert_array_equal(a.range, b.range)
    assert sky.without("sky_drop") == base and sky.active_effects() == ["range_noise", "random_drop", "sky_drop"]
    with pytest.raises(SimGapInputError, match="need the 4 beam elevations"):
        apply_effects(r, np.ones_like(r), np.full_like(r, 0.3), sky, max_range=MAX_R, rng=np.random.default_rng(0))
    with pytest.raises(SimGapInputError, match="elevation and must be in"):
        EffectSettings(sky_drop_elevation_deg=95.0)
