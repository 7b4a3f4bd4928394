"""Ego motion during one sweep (motion skew): measured on real scans, applied to synthetic ones.

A spinning LiDAR fires its columns one after another over a sweep (0.05 s at 20 Hz). Datasets that compensate ego
motion (nuScenes, Argoverse 2) express every point in the sensor frame of one *reference* time of the sweep
(nuScenes: its end; Argoverse 2: its start), so the column fired at sweep fraction ``tau`` was measured from where
the sensor was then: ``s(tau) = w (tau - tau_ref)``, ``w`` the sensor's displacement over the whole sweep. A static
world stays undistorted, but every beam's cone (:mod:`simgap_ext.gate.origin`) has its apex at ``s(tau)`` in the
direction fired at ``tau``: on a car at 6 m/s and 20 Hz the apex of the columns fired first lies 0.3 m behind the
sensor (nuScenes: compensated to the sweep's end), which the gate's ``origin`` component reads. A synthetic sensor
at rest shows none of it.

- :func:`sweep_fraction`: ``tau`` in ``[0, 1)`` of an azimuth, from the sweep's start azimuth and spin direction;
- :func:`sweep_offsets`: ``s(tau)`` for given azimuths (what the renderer adds to each column's ray origin and the
  post-process adds to each point);
- :func:`measure_sweep_motion`: ``(s(0), w)`` of one scan whose points carry their firing time, by a robust fit
  of every low beam's cone: ``rho = c_b z + (a + w tau) . u(theta)`` (``u`` the azimuth's unit vector; the
  per-beam ``c_b = cot(elevation)`` absorbs the beam table);
- :func:`spin_of`: the sweep's start azimuth and spin direction from a scan's column azimuths in firing order;
- :func:`fit_motion`: the model terms over many scans (median displacement and its spread, heading, sweep start,
  spin direction, reference time), never from one scan alone.

Why this and not registration: consecutive scans give the speed only with their time stamps, which a folder of
scans lacks; the cone fit reads the displacement in metres per sweep from each scan on its own.
``benchmarks/origin_skew.py`` checks it against GICP registration of consecutive nuScenes keyframes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import SimGapInputError
from ..robust import tukey_weights

__all__ = ["SweepMotion", "sweep_fraction", "sweep_offsets", "measure_sweep_motion", "spin_of", "fit_motion"]

# Beams below this elevation (degrees) enter the cone fit: their cot(elevation) is moderate, and they see the
# ground all round the sensor (beams near the horizon make c_b z ill-conditioned).
_MAX_ELEVATION_DEG = -5.0
# Returns this close horizontally (metres) are the ego vehicle's body (as in gate.origin).
_MIN_HORIZONTAL_RANGE = 1.5
_ITERATIONS = 12
# Scans whose displacement over a sweep is below this (metres) tell nothing about the reference time.
_MIN_REFERENCE_DISPLACEMENT = 0.05


@dataclass(frozen=True)
class SweepMotion:
    """Motion of one scan over its sweep (sensor frame of the scan).

    Attributes:
        start: (2,) float64 horizontal sensor position at the sweep's start (``tau = 0``), metres.
        displacement: (2,) float64 sensor displacement over the whole sweep ``w``, metres.
        reference: sweep fraction whose sensor frame the points are in (``s(reference) = 0``; NaN when the
            displacement is too small to tell).
        residual: robust scale of the fit's residuals, metres.
        points: points the fit used.
    """

    start: np.ndarray
    displacement: np.ndarray
    reference: float
    residual: float
    points: int


def sweep_fraction(azimuth_rad: np.ndarray, start_deg: float, clockwise: bool) -> np.ndarray:
    """Sweep fraction ``tau`` in ``[0, 1)`` at which each azimuth is fired.

    Args:
        azimuth_rad: azimuths, radians, counter-clockwise from +x (any shape).
        start_deg: azimuth fired first, degrees.
        clockwise: spin direction seen from above (+z); Velodyne sensors spin clockwise.

    Returns:
        float64 array of the same shape.
    """
    a = np.asarray(azimuth_rad, dtype=np.float64)
    delta = math.radians(start_deg) - a if clockwise else a - math.radians(start_deg)
    return np.mod(delta, 2.0 * np.pi) / (2.0 * np.pi)


def sweep_offsets(
    azimuth_rad: np.ndarray, displacement: Sequence[float], *, start_deg: float, clockwise: bool, reference: float
) -> np.ndarray:
    """Sensor position ``s(tau) = w (tau - reference)`` when each azimuth was fired, in the reference frame.

    Args:
        azimuth_rad: (...,) azimuths, radians.
        displacement: (2,) or (3,) sensor displacement over the sweep ``w``, metres.
        start_deg, clockwise: the sweep's start azimuth and spin (:func:`sweep_fraction`).
        reference: sweep fraction of the frame the points are expressed in (1: the sweep's end).

    Returns:
        (..., 3) float64 offsets, metres.
    """
    w = np.zeros(3)
    d = np.asarray(displacement, dtype=np.float64).reshape(-1)
    if d.size not in (2, 3) or not np.isfinite(d).all():
        raise SimGapInputError(f"displacement must be 2 or 3 finite numbers, got {displacement!r}")
    w[: d.size] = d
    tau = sweep_fraction(azimuth_rad, start_deg, clockwise)
    return (tau - float(reference))[..., None] * w


def measure_sweep_motion(
    points: np.ndarray, tau: np.ndarray, beam: np.ndarray, elevations_deg: Sequence[float]
) -> SweepMotion | None:
    """Fit one scan's sensor trajectory over its sweep from its beams' cones (module docstring).

    Args:
        points: (N, 3) float points in the scan's (compensated) sensor frame, metres; returns only.
        tau: (N,) float sweep fraction at which each point was fired (firing order / columns per turn).
        beam: (N,) int beam index of each point into ``elevations_deg``.
        elevations_deg: (B,) nominal beam elevations, degrees (selects the low beams).

    Returns:
        :class:`SweepMotion`, or None when fewer than 200 usable points remain.

    Raises:
        ValueError: mismatched shapes.
    """
    p = np.asarray(points, dtype=np.float64)
    t = np.asarray(tau, dtype=np.float64).reshape(-1)
    b = np.asarray(beam, dtype=np.int64).reshape(-1)
    el = np.asarray(elevations_deg, dtype=np.float64).reshape(-1)
    if p.ndim != 2 or p.shape[1] != 3 or t.shape[0] != p.shape[0] or b.shape[0] != p.shape[0]:
        raise ValueError(f"points must be (N, 3) with (N,) tau and beam, got {p.shape}, {t.shape}, {b.shape}")
    rho = np.hypot(p[:, 0], p[:, 1])
    ok = np.isfinite(p).all(axis=1) & np.isfinite(t) & (rho >= _MIN_HORIZONTAL_RANGE) & (b >= 0) & (b < el.size)
    ok[ok] &= el[b[ok]] < _MAX_ELEVATION_DEG
    if np.count_nonzero(ok) < 200:
        return None
    p, t, b, rho = p[ok], t[ok], b[ok], rho[ok]
    low, b_idx = np.unique(b, return_inverse=True)
    th = np.arctan2(p[:, 1], p[:, 0])
    c, s = np.cos(th), np.sin(th)
    dense = np.stack([c, s, t * c, t * s], axis=1)
    coef, scale = _tukey_fit(b_idx, low.size, p[:, 2], dense, rho)
    start, w = coef[low.size : low.size + 2], coef[low.size + 2 :]
    norm2 = float(w @ w)
    ref = float(-(start @ w) / norm2) if norm2 >= _MIN_REFERENCE_DISPLACEMENT**2 else math.nan
    return SweepMotion(start.copy(), w.copy(), ref, scale, int(p.shape[0]))


def _tukey_fit(
    group: np.ndarray, n_groups: int, z: np.ndarray, dense: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, float]:
    """IRLS with Tukey's biweight (:func:`~simgap_ext.robust.tukey_weights`, as :mod:`simgap_ext.gate.origin`) of
    ``target ~ c[group] z + dense @ a``; returns ``(concat(c, a), robust scale)``.

    The per-beam block of the normal equations is diagonal, so they are assembled with bincounts (a dense design
    through a threaded BLAS product stalls for seconds on a busy 2-core machine).
    """
    n, k = dense.shape
    m = n_groups + k
    w = np.ones(n)
    coef = np.zeros(m)
    scale = math.nan
    for _ in range(_ITERATIONS):
        gram = np.zeros((m, m))
        rhs = np.zeros(m)
        gram[np.arange(n_groups), np.arange(n_groups)] = np.bincount(group, w * z * z, n_groups)
        for j in range(k):
            cross = np.bincount(group, w * z * dense[:, j], n_groups)
            gram[:n_groups, n_groups + j] = cross
            gram[n_groups + j, :n_groups] = cross
            for i in range(j, k):
                gram[n_groups + i, n_groups + j] = gram[n_groups + j, n_groups + i] = float(
                    np.sum(w * dense[:, i] * dense[:, j])
                )
            rhs[n_groups + j] = float(np.sum(w * dense[:, j] * target))
        rhs[:n_groups] = np.bincount(group, w * z * target, n_groups)
        coef = np.linalg.lstsq(gram, rhs, rcond=None)[0]
        pred = coef[group] * z + np.sum(dense * coef[n_groups:], axis=1)
        w, scale = tukey_weights(target - pred)
        if np.count_nonzero(w) < m + 1:
            break
    return coef, scale


def spin_of(azimuth_deg: np.ndarray) -> tuple[float, bool] | None:
    """(start azimuth in degrees [0, 360), clockwise) of a scan's columns in firing order; None if unknown."""
    az = np.asarray(azimuth_deg, dtype=np.float64).reshape(-1)
    ok = np.isfinite(az)
    if np.count_nonzero(ok) < 8:
        return None
    unwrapped = np.degrees(np.unwrap(np.radians(az[ok])))
    step = np.median(np.diff(unwrapped))
    if step == 0:
        return None
    clockwise = bool(step < 0)
    first = np.flatnonzero(ok)[0]
    # the azimuth the sweep starts at: extrapolate from the first column with a return back to column 0
    start = float(np.mod(az[first] - step * first, 360.0))
    return start, clockwise


def fit_motion(motions: Sequence[SweepMotion], spins: Sequence[tuple[float, bool]]) -> dict[str, float | bool]:
    """Model terms from per-scan measurements (robust over scans; see :class:`~.model.SensorEffectModel`).

    Args:
        motions: :func:`measure_sweep_motion` of each scan that allowed one.
        spins: :func:`spin_of` of each scan that allowed one.

    Returns:
        ``motion_sweep_m`` (median displacement along the common heading, >= 0), ``motion_sweep_sd_m`` (its robust
        spread over scans), ``motion_heading_deg``, ``sweep_start_deg``, ``sweep_clockwise`` and
        ``motion_reference`` (median over scans that moved; 1.0 when none did). Empty when ``motions`` is empty.
    """
    out: dict[str, float | bool] = {}
    if spins:
        cw = [s[1] for s in spins]
        clockwise = sum(cw) * 2 >= len(cw)
        starts = np.radians([s[0] for s in spins if s[1] == clockwise])
        out["sweep_start_deg"] = float(
            np.mod(np.degrees(np.arctan2(np.sin(starts).mean(), np.cos(starts).mean())), 360)
        )
        out["sweep_clockwise"] = bool(clockwise)
    if not motions:
        return out
    ws = np.stack([m.displacement for m in motions])
    mean = ws.mean(axis=0)
    if float(np.hypot(*mean)) < 1e-9:
        return out
    heading = math.atan2(mean[1], mean[0])
    along = ws @ np.array([math.cos(heading), math.sin(heading)])
    med = float(np.median(along))
    spread = 1.4826 * float(np.median(np.abs(along - med))) if along.size >= 3 else 0.0
    refs = np.array([m.reference for m in motions if math.isfinite(m.reference)])
    out.update(
        motion_sweep_m=max(0.0, med),
        motion_sweep_sd_m=spread,
        motion_heading_deg=float(np.mod(math.degrees(heading), 360.0)),
        motion_reference=float(np.clip(np.median(refs), 0.0, 1.0)) if refs.size else 1.0,
    )
    return out
