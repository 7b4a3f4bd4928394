"""Sensor effects applied to a clean range image after the ray cast (NumPy, driven by a seeded Generator).

Each effect is switchable through :class:`~simgap_ext.sensors.EffectSettings` (all off = the ``ideal`` preset):

- mixed pixels: a ray whose azimuth neighbour on the same beam (left/right column) hit a surface between
  ``mixed_pixel_min_gap`` and ``mixed_pixel_max_gap`` nearer or farther straddles a depth edge with its divergent
  footprint; with probability ``mixed_pixel_prob`` it returns a range between the two surfaces (uniform
  fraction), the "veiling" points that real scans show behind object silhouettes. Farther apart, the two echoes
  separate and the ray keeps its own surface. Adjacent *beams* are not compared: on flat ground they land
  0.5-4 m apart at 7-15 m (1.33-degree fan), which is a ring spacing, not an edge (the fitted model
  (:mod:`simgap_ext.tune`) measures and applies mixed pixels the same way, with the same
  :func:`~simgap_ext.tune.range_image.edge_delta`). Computed on the clean ranges, before noise;
- range noise: Gaussian along the ray, ``range_noise_sigma`` metres;
- ray drop: a range-independent loss ``random_drop`` times a detection threshold on the return energy
  ``E = (reflectivity / 0.1) cos(theta)^incidence_exponent (detection_range / r)^2`` (``E = 1``: a 10 %-reflective
  target at normal incidence at ``detection_range``), kept with probability ``sigmoid(ln(E) / detection_softness)``.
  ``range_drop`` / ``incidence_drop`` switch the range and incidence terms. Because the threshold depends on the
  geometry, two scans of one scene lose mostly the same weak returns (far ground, grazing walls, dark
  surfaces), as a real sensor does, and unlike an independent coin flip per ray;
- sky no-return: a ray of elevation ``e`` above ``sky_drop_elevation_deg`` returns nothing with probability
  ``sky_drop_per_deg * (e - sky_drop_elevation_deg)`` (clipped to 1);
- self-occlusion: beams below ``self_occlusion_elevation_deg`` lose a share ``self_occlusion_per_deg * depression``
  (clipped to 1) of their columns, in two sectors centred on ``self_occlusion_azimuth_deg`` and the opposite
  direction: the sensor's own vehicle, deterministic (the same cells in every scan);
- intensity: ``reflectivity`` model returns the surface reflectivity; ``physical`` returns
  ``reflectivity * cos(theta) / (1 + (r / 40 m)^2)`` plus Gaussian noise ``intensity_noise_sigma``, clipped to
  [0, 1].

The scan is motion-free (no rolling-shutter skew from ego motion). Every random array is drawn whatever the
toggles, in a fixed order, so that switching one effect off changes only that effect for the same noise seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import SimGapInputError
from ...sensors import EffectSettings
from ...tune.range_image import edge_delta

__all__ = ["INTENSITY_FALLOFF_RANGE", "EffectResult", "apply_effects"]

#: Range (metres) at which the ``physical`` intensity model has fallen to half.
INTENSITY_FALLOFF_RANGE = 40.0


@dataclass
class EffectResult:
    """What the sensor reports for each ray of a (B, C) scan.

    Attributes:
        range: (B, C) float32 measured range, metres (meaningful where ``keep``).
        keep: (B, C) bool rays that return a point.
        intensity: (B, C) float32 intensity in [0, 1].
        mixed: (B, C) bool rays turned into mixed pixels.
    """

    range: np.ndarray
    keep: np.ndarray
    intensity: np.ndarray
    mixed: np.ndarray


def apply_effects(
    ranges: np.ndarray,
    cos_incidence: np.ndarray,
    reflectivity: np.ndarray,
    settings: EffectSettings,
    *,
    max_range: float,
    min_range: float = 0.0,
    rng: np.random.Generator,
    elevations_deg: np.ndarray | None = None,
) -> EffectResult:
    """Turn a clean range image into what the sensor reports.

    Args:
        ranges: (B, C) float clean ranges, metres; 0 where the ray missed.
        cos_incidence: (B, C) float |cos| of the incidence angle.
        reflectivity: (B, C) float surface reflectivity in [0, 1] of the hit surface.
        settings: which effects, how strong.
        max_range: the sensor's max range, metres (range-drop scale, clipping).
        min_range: the sensor's min range, metres (clipping).
        rng: the noise generator (the only source of randomness).
        elevations_deg: (B,) beam elevations in degrees, needed by the sky no-return and self-occlusion effects;
            columns are at azimuth ``360 c / C`` degrees (the raycaster's convention).

    Returns:
        :class:`EffectResult`.

    Raises:
        SimGapInputError: arrays of different or non-2-D shapes, or a per-beam effect without ``elevations_deg``.
    """
    r0 = np.asarray(ranges, dtype=np.float32)
    cos = np.asarray(cos_incidence, dtype=np.float32)
    refl = np.asarray(reflectivity, dtype=np.float32)
    if r0.ndim != 2 or cos.shape != r0.shape or refl.shape != r0.shape:
        raise SimGapInputError(
            f"effects need equal (B, C) arrays, got ranges {r0.shape}, cos {cos.shape}, reflectivity {refl.shape}"
        )
    shape = r0.shape
    hit = r0 > 0
    # Fixed draw order (see module docstring).
    u_mixed = rng.random(shape, dtype=np.float32)
    frac_mixed = rng.random(shape, dtype=np.float32)
    noise = rng.standard_normal(shape, dtype=np.float32)
    u_drop = rng.random(shape, dtype=np.float32)
    inten_noise = rng.standard_normal(shape, dtype=np.float32)
    u_sky = rng.random(shape, dtype=np.float32)  # drawn last: presets without sky drop render as before it existed

    r = r0.copy()
    mixed = np.zeros(shape, dtype=bool)
    if settings.mixed_pixel_prob > 0:
        delta = edge_delta(np.where(hit, r0, 0.0), settings.mixed_pixel_min_gap, settings.mixed_pixel_max_gap)
        mixed = hit & (delta != 0) & (u_mixed < settings.mixed_pixel_prob)
        r[mixed] += frac_mixed[mixed] * delta[mixed]
    if settings.range_noise_sigma > 0:
        r[hit] += settings.range_noise_sigma * noise[hit]
    p_keep = np.full(shape, 1.0 - settings.random_drop, dtype=np.float32)
    if settings.detection_range > 0 and (settings.range_drop or settings.incidence_drop):
        with np.errstate(divide="ignore", invalid="ignore"):
            log_e = np.log(np.maximum(refl, 1e-6) / 0.1)
            if settings.incidence_drop:
                log_e += settings.incidence_exponent * np.log(np.clip(cos, 1e-6, 1.0))
            if settings.range_drop:
                log_e += 2.0 * np.log(settings.detection_range / np.maximum(r, 1e-3))
        z = np.clip(log_e / max(settings.detection_softness, 1e-6), -60.0, 60.0)
        p_keep *= (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    keep = hit & (u_drop < p_keep) & (r > min_range) & (r < max_range)
    if settings.sky_drop_per_deg > 0 or settings.self_occlusion_per_deg > 0:
        keep &= ~_beam_losses(settings, elevations_deg, u_sky)

    if settings.intensity_model == "physical":
        inten = refl * np.clip(cos, 0.0, 1.0) / (1.0 + (r / INTENSITY_FALLOFF_RANGE) ** 2)
    else:
        inten = refl.copy()
    if settings.intensity_noise_sigma > 0:
        inten = inten + settings.intensity_noise_sigma * inten_noise
    inten = np.clip(inten, 0.0, 1.0).astype(np.float32)
    return EffectResult(range=r.astype(np.float32), keep=keep, intensity=inten, mixed=mixed)


def _beam_losses(settings: EffectSettings, elevations_deg: np.ndarray | None, u_sky: np.ndarray) -> np.ndarray:
    """(B, C) bool cells lost to the sky no-return ramp or hidden by the sensor's own vehicle."""
    n_b, n_c = u_sky.shape
    el = None if elevations_deg is None else np.asarray(elevations_deg, dtype=np.float64).reshape(-1)
    if el is None or el.shape[0] != n_b:
        raise SimGapInputError(
            f"sky_drop / self_occlusion need the {n_b} beam elevations of the scan (elevations_deg), got "
            f"{None if el is None else el.shape[0]}"
        )
    p_sky = np.clip(settings.sky_drop_per_deg * (el - settings.sky_drop_elevation_deg), 0.0, 1.0)
    lost = u_sky < p_sky[:, None].astype(np.float32)
    hidden = np.clip(settings.self_occlusion_per_deg * (settings.self_occlusion_elevation_deg - el), 0.0, 1.0)
    if hidden.any():
        az = 360.0 * np.arange(n_c) / n_c
        off = np.abs((az - settings.self_occlusion_azimuth_deg + 90.0) % 180.0 - 90.0)  # to the nearer sector centre
        lost |= (off[None, :] < 90.0 * hidden[:, None]) | (hidden[:, None] >= 1.0)
    return lost
