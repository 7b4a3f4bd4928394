"""Warp ray casting against analytic geometry: a plane at known distance, a ground plane, a box."""

from __future__ import annotations

import numpy as np
import pytest

from simgap_ext._warp import available_devices
from simgap_ext.backends.warp.meshes import box
from simgap_ext.backends.warp.raycast import build_mesh, cast_rays, cast_spinning, spinning_directions
from simgap_ext.errors import SimGapInputError

DEVICES = available_devices()


def _quad(x0, x1, y0, y1, z=None, x=None):
    """Two triangles: a horizontal square at height z, or a vertical square in the plane x = const."""
    if z is not None:
        v = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=np.float32)
    else:
        v = np.array([[x, x0, y0], [x, x1, y0], [x, x1, y1], [x, x0, y1]], dtype=np.float32)
    return v, np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int32)


@pytest.mark.parametrize("device", DEVICES)
def test_wall_at_known_distance(device):
    v, f = _quad(-50, 50, -50, 50, x=10.0)
    mesh = build_mesh(v, f, device=device)
    rng = np.random.default_rng(0)
    az = rng.uniform(-1.0, 1.0, 500)
    el = rng.uniform(-0.5, 0.5, 500)
    d = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)
    hits = cast_rays(mesh, np.zeros(3), d, device=device)
    assert hits.hit.all()
    expected = 10.0 / d[:, 0]  # distance to the plane x = 10 along a unit ray
    np.testing.assert_allclose(hits.range, expected, rtol=1e-5)
    np.testing.assert_allclose(hits.cos_incidence, d[:, 0], atol=1e-5)
    # Rays pointing away miss.
    away = cast_rays(mesh, np.zeros(3), -d, device=device)
    assert not away.hit.any() and (away.range == 0).all() and (away.face == -1).all()


@pytest.mark.parametrize("device", DEVICES)
def test_spinning_scan_over_ground_plane(device):
    h = 1.8
    v, f = _quad(-500, 500, -500, 500, z=0.0)
    mesh = build_mesh(v, f, device=device)
    el = np.radians(np.array([10.0, 2.0, -1.0, -5.0, -15.0, -30.0]))
    hits = cast_spinning(mesh, (0.0, 0.0, h), el, 360, min_range=0.5, max_range=100.0, device=device)
    assert hits.range.shape == (6, 360)
    # Upward beams miss; -1 deg would hit at 103 m > max_range; the rest hit at h / sin(-el).
    assert not hits.hit[:3].any()
    for b in (3, 4, 5):
        assert hits.hit[b].all()
        np.testing.assert_allclose(hits.range[b], h / np.sin(-el[b]), rtol=1e-4)  # float32 trigonometry
        np.testing.assert_allclose(hits.cos_incidence[b], np.sin(-el[b]), atol=1e-5)
    # The hit points are on the plane z = 0 (direction convention of spinning_directions).
    dirs = spinning_directions(el, 360)
    pts = dirs[3:] * hits.range[3:, :, None] + np.array([0.0, 0.0, h])
    np.testing.assert_allclose(pts[..., 2], 0.0, atol=1e-4)
    # Azimuth of column c is 2*pi*c/C counter-clockwise from +x.
    az = np.arctan2(pts[0, :, 1], pts[0, :, 0]) % (2 * np.pi)
    np.testing.assert_allclose(az, 2 * np.pi * np.arange(360) / 360, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_min_range_discards_near_hits(device):
    v, f = _quad(-50, 50, -50, 50, x=0.4)
    mesh = build_mesh(v, f, device=device)
    hits = cast_spinning(mesh, (0.0, 0.0, 0.0), np.zeros(1), 4, min_range=0.5, max_range=10.0, device=device)
    assert not hits.hit.any()


def _slab(origin, d, lo, hi):
    """Reference ray/AABB intersection (slab method); inf when missed."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - origin) / d
        t2 = (hi - origin) / d
    tmin = np.nanmax(np.minimum(t1, t2), axis=1)
    tmax = np.nanmin(np.maximum(t1, t2), axis=1)
    hit = (tmax >= tmin) & (tmax > 0)
    return np.where(hit, np.where(tmin > 0, tmin, tmax), np.inf)


@pytest.mark.parametrize("device", DEVICES)
def test_box_against_slab_reference(device):
    center, size = np.array([6.0, 1.0, 0.5]), np.array([2.0, 3.0, 1.5])
    m = box(size, center=center)
    mesh = build_mesh(m.vertices, m.faces, device=device)
    rng = np.random.default_rng(1)
    # Aim rays at random points around the box so that roughly half hit.
    targets = center + rng.uniform(-1.0, 1.0, (2000, 3)) * size
    d = targets.astype(np.float64)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    ref = _slab(np.zeros(3), d, center - size / 2, center + size / 2)
    hits = cast_rays(mesh, np.zeros(3), d, device=device)
    # Rays grazing an edge may go either way in float32; compare away from edges.
    ok = np.isfinite(ref) == hits.hit
    assert ok.mean() > 0.995
    both = np.isfinite(ref) & hits.hit
    assert both.sum() > 500
    np.testing.assert_allclose(hits.range[both], ref[both], rtol=1e-4, atol=1e-4)
    # The face straight ahead: ray along +x hits x = 5 head-on.
    one = cast_rays(mesh, np.array([0.0, 1.0, 0.5]), np.array([[1.0, 0.0, 0.0]]), device=device)
    assert one.range[0] == pytest.approx(5.0, abs=1e-5) and one.cos_incidence[0] == pytest.approx(1.0, abs=1e-6)


def test_launcher_validation():
    v, f = _quad(-1, 1, -1, 1, z=0.0)
    with pytest.raises(SimGapInputError, match=r"vertices must have shape \(V, 3\)"):
        build_mesh(v[:, :2], f, device="cpu")
    with pytest.raises(SimGapInputError, match="faces index outside"):
        build_mesh(v, f + 10, device="cpu")
    with pytest.raises(SimGapInputError, match="faces must be integer"):
        build_mesh(v, f.astype(np.float32), device="cpu")
    mesh = build_mesh(v, f, device="cpu")
    with pytest.raises(SimGapInputError, match="directions must be finite and non-zero"):
        cast_rays(mesh, np.zeros(3), np.zeros((2, 3)), device="cpu")
    with pytest.raises(SimGapInputError, match="need 0 <= min_range < max_range"):
        cast_spinning(mesh, (0, 0, 1), np.zeros(2), 8, min_range=5.0, max_range=1.0, device="cpu")
    with pytest.raises(SimGapInputError, match="ray origin must be 3 finite numbers"):
        cast_spinning(mesh, (0, 0), np.zeros(2), 8, device="cpu")
