"""Apparent sensor origin of a scan: where the apex of its lowest beam's cone lies, horizontally.

A spinning LiDAR's beam ``b`` sweeps a cone with its apex at the sensor: every return of that beam, whatever it
hits (road, kerb, car, the ego vehicle's roof), has horizontal range ``rho = z * cot(e_b)`` in the sensor frame.
Pitch, roll and a sloping road tilt the ground, not the cone, so they leave this relation intact. A scan whose
points are displaced horizontally by ``s`` (a rigid shift, or Isaac Sim points in the world frame rather than the
sensor frame) no longer has its apex at the origin: seen from the origin, ``rho ~ z * cot(e_b) + s . u(theta)``,
``u`` the unit vector of the azimuth ``theta``.

:func:`apparent_origin` takes, in each azimuth sector, the point of lowest elevation (the lowest beam; there is no
beam below it to confuse it with) and fits ``rho = c z + a cos(theta) + b sin(theta)`` by iteratively reweighted
least squares (Tukey biweight: sectors whose lowest beam returned nothing and show a higher beam instead are
outliers). The linear model holds for offsets small against the ranges, so the points are recentred on the estimate
and the fit repeated (:data:`_RECENTRE_STEPS` times), which recovers offsets of metres. Returns within
:data:`_MIN_HORIZONTAL_RANGE` of the (recentred) origin are left out: they are the ego vehicle's own body (nuScenes
keeps its roof), and an offset comparable to their range makes them the lowest point of arbitrary sectors.

On real scans ``(a, b)`` is constant to a few centimetres per sensor and rig (the lasers' own origins are spread
by that much; the bank compares a frame with the real frames' mean), and a 0.5 m shift reads as 0.5 +- 0.05 m
(KITTI-360, SemanticKITTI, nuScenes, MCD: docs/gate.md).
"""

from __future__ import annotations

import numpy as np

from ..robust import tukey_weights
from .frame_stats import NO_RETURN_RANGE, _norms

__all__ = ["apparent_origin", "ORIGIN_SECTORS", "MIN_ORIGIN_SECTORS"]

#: Azimuth sectors of 1 degree: several columns of any common sensor per sector (HDL-32E: 3, HDL-64E: 6).
ORIGIN_SECTORS = 360
#: Fewest sectors with a return before the fit is trusted (a quarter of the circle).
MIN_ORIGIN_SECTORS = 90
# Returns this close to the sensor horizontally (metres) are the ego vehicle's body, not the scene; the lowest
# beam's ground ring of a vehicle- or hand-mounted sensor lies at 3-5 m.
_MIN_HORIZONTAL_RANGE = 1.5
# Fits on recentred points (see module docstring).
_RECENTRE_STEPS = 3
# Reweighting iterations of the Tukey biweight fit.
_ITERATIONS = 15


def apparent_origin(points: np.ndarray, *, sectors: int = ORIGIN_SECTORS) -> np.ndarray | None:
    """Horizontal offset of the lowest beam's cone apex from the origin (see module docstring).

    Args:
        points: (N, 3) float32 points in the sensor frame.
        sectors: azimuth sectors (>= 8); each contributes its lowest-elevation point.

    Returns:
        (2,) float64 ``(a, b)`` in metres (``~ (s_x, s_y)`` for points displaced by ``s``), or None when fewer
        than :data:`MIN_ORIGIN_SECTORS` sectors (scaled to ``sectors``) hold a return.

    Raises:
        ValueError: ``points`` is not (N, 3) or ``sectors < 8``.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {pts.shape}")
    if sectors < 8:
        raise ValueError(f"sectors must be >= 8, got {sectors}")
    # Coordinates as separate columns, selected only where something is dropped: selecting rows of an (N, 3) array
    # cost as much as the arctan2 of the fit. Returns within NO_RETURN_RANGE are no-return encodings.
    x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
    keep = _norms(pts) >= NO_RETURN_RANGE
    if not keep.all():
        x, y, z = x[keep], y[keep], z[keep]
    offset = np.zeros(2)
    for _ in range(_RECENTRE_STEPS):
        step = _fit_offset(x - offset[0], y - offset[1], z, sectors)
        if step is None:
            return None
        offset += step
    return offset


def _fit_offset(x: np.ndarray, y: np.ndarray, z: np.ndarray, sectors: int) -> np.ndarray | None:
    """One fit of the cone apex's horizontal offset from (N,) float64 coordinates relative to the current estimate
    (linear model; None when too few sectors hold a return)."""
    rho = np.hypot(x, y)
    ok = rho >= _MIN_HORIZONTAL_RANGE
    if not ok.all():
        x, y, z, rho = x[ok], y[ok], z[ok], rho[ok]
    if not x.shape[0]:
        return None
    theta = np.arctan2(y, x)
    sec = np.floor((theta + np.pi) / (2 * np.pi) * sectors).astype(np.int64) % sectors
    # The lowest elevation per sector in one O(N) pass (tan(elevation) = z / rho orders like the elevation): a sort
    # of the whole frame per fit tripled the cost.
    slope = z / rho
    lowest = np.full(sectors, np.inf)
    np.minimum.at(lowest, sec, slope)
    cand = np.flatnonzero(slope == lowest[sec])
    _, first = np.unique(sec[cand], return_index=True)  # one point per sector where several tie
    low = cand[first]
    if low.size < MIN_ORIGIN_SECTORS * sectors / ORIGIN_SECTORS:
        return None
    th = theta[low]
    design = np.stack([z[low], np.cos(th), np.sin(th)], axis=1)
    coef = _tukey_fit(design, rho[low])
    return coef[1:].copy()


def _tukey_fit(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Iteratively reweighted least squares with Tukey's biweight; (K,) coefficients."""
    w = np.ones(target.shape[0])
    coef = np.zeros(design.shape[1])
    for _ in range(_ITERATIONS):
        sw = np.sqrt(w)
        coef = np.linalg.lstsq(design * sw[:, None], target * sw, rcond=None)[0]
        w, _ = tukey_weights(target - design @ coef)
        if np.count_nonzero(w) < design.shape[1] + 1:
            break
    return coef
