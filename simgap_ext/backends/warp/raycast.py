"""Warp LiDAR ray casting: one ``wp.Mesh`` per scene, one thread per (beam, column).

Public launchers check device, dtype and shape and return NumPy arrays; the ``@wp.kernel``s are private.

- :func:`build_mesh` uploads (V, 3) vertices + (F, 3) faces as a ``wp.Mesh`` on a device.
- :func:`cast_spinning` casts a spinning LiDAR's rays (elevation table x uniform azimuth columns) from one
  origin (or, for a sensor moving during the sweep, from one origin per column) and returns the range image, the
  hit triangle and the cosine of the incidence angle.
- :func:`cast_rays` casts arbitrary rays (analytic tests, custom scan patterns).

Azimuth convention: column ``c`` points at ``azimuth = 2*pi*c / n_columns`` measured counter-clockwise from +x;
beam ``b`` at ``elevation = elevations_rad[b]`` above the xy plane. Direction
``(cos(el) cos(az), cos(el) sin(az), sin(el))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._warp import get_warp, resolve_device
from ...errors import SimGapInputError

__all__ = ["RayHits", "build_mesh", "cast_spinning", "cast_rays", "spinning_directions"]

wp = get_warp()


@wp.kernel
def _spinning_kernel(
    mesh_id: wp.uint64,
    origin: wp.vec3,
    column_offsets: wp.array(dtype=wp.vec3),
    elevations: wp.array(dtype=wp.float32),
    n_columns: int,
    min_range: float,
    max_range: float,
    out_range: wp.array2d(dtype=wp.float32),
    out_face: wp.array2d(dtype=wp.int32),
    out_cos: wp.array2d(dtype=wp.float32),
):
    b, c = wp.tid()
    el = elevations[b]
    az = 6.283185307179586 * float(c) / float(n_columns)
    ce = wp.cos(el)
    d = wp.vec3(ce * wp.cos(az), ce * wp.sin(az), wp.sin(el))
    q = wp.mesh_query_ray(mesh_id, origin + column_offsets[c], d, max_range)
    if q.result and q.t >= min_range:
        out_range[b, c] = q.t
        out_face[b, c] = q.face
        n = wp.normalize(q.normal)
        out_cos[b, c] = wp.abs(wp.dot(n, d))
    else:
        out_range[b, c] = 0.0
        out_face[b, c] = -1
        out_cos[b, c] = 0.0


@wp.kernel
def _rays_kernel(
    mesh_id: wp.uint64,
    origins: wp.array(dtype=wp.vec3),
    dirs: wp.array(dtype=wp.vec3),
    max_range: float,
    out_range: wp.array(dtype=wp.float32),
    out_face: wp.array(dtype=wp.int32),
    out_cos: wp.array(dtype=wp.float32),
):
    i = wp.tid()
    d = wp.normalize(dirs[i])
    q = wp.mesh_query_ray(mesh_id, origins[i], d, max_range)
    if q.result:
        out_range[i] = q.t
        out_face[i] = q.face
        out_cos[i] = wp.abs(wp.dot(wp.normalize(q.normal), d))
    else:
        out_range[i] = 0.0
        out_face[i] = -1
        out_cos[i] = 0.0


class RayHits:
    """Result of a ray cast (arrays share one shape S: (B, C) for spinning scans, (R,) for ray lists).

    Attributes:
        range: S float32 distance along the unit ray, metres; 0 where nothing was hit.
        face: S int32 index of the hit triangle; -1 where nothing was hit.
        cos_incidence: S float32 |cos| of the angle between ray and surface normal; 0 where nothing was hit.
    """

    __slots__ = ("range", "face", "cos_incidence")

    def __init__(self, range_: np.ndarray, face: np.ndarray, cos_incidence: np.ndarray) -> None:
        self.range = range_
        self.face = face
        self.cos_incidence = cos_incidence

    @property
    def hit(self) -> np.ndarray:
        """S bool mask of rays that returned."""
        return self.face >= 0


def build_mesh(vertices: np.ndarray, faces: np.ndarray, *, device: str | None = None) -> Any:
    """Upload a triangle mesh to Warp.

    Args:
        vertices: (V, 3) float vertex positions, metres (converted to float32).
        faces: (F, 3) integer vertex indices (converted to int32).
        device: Warp device (``None``: CUDA when available, else CPU).

    Returns:
        A ``wp.Mesh`` (keep a reference as long as its ``id`` is used).

    Raises:
        SimGapInputError: wrong shapes, empty mesh, non-finite vertices or out-of-range indices.
    """
    v = np.asarray(vertices)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise SimGapInputError(f"mesh vertices must have shape (V, 3) with V > 0, got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise SimGapInputError(f"mesh faces must have shape (F, 3) with F > 0, got {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise SimGapInputError(f"mesh faces must be integer indices, got dtype {f.dtype}")
    if not np.isfinite(v).all():
        raise SimGapInputError("mesh vertices contain NaN/inf")
    if f.min() < 0 or f.max() >= v.shape[0]:
        raise SimGapInputError(f"mesh faces index outside [0, {v.shape[0]}) ")
    dev = resolve_device(device)
    points = wp.array(np.ascontiguousarray(v, dtype=np.float32), dtype=wp.vec3, device=dev)
    indices = wp.array(np.ascontiguousarray(f, dtype=np.int32).reshape(-1), dtype=wp.int32, device=dev)
    return wp.Mesh(points=points, indices=indices)


def _check_origin(origin: Any) -> np.ndarray:
    o = np.asarray(origin, dtype=np.float64).reshape(-1)
    if o.shape != (3,) or not np.isfinite(o).all():
        raise SimGapInputError(f"ray origin must be 3 finite numbers, got {origin!r}")
    return o


def cast_spinning(
    mesh: Any,
    origin: Any,
    elevations_rad: np.ndarray,
    n_columns: int,
    *,
    min_range: float = 0.0,
    max_range: float = 120.0,
    column_offsets: np.ndarray | None = None,
    device: str | None = None,
) -> RayHits:
    """Cast a spinning LiDAR scan.

    Args:
        mesh: a ``wp.Mesh`` from :func:`build_mesh`, on ``device``.
        origin: (3,) sensor position in the mesh frame, metres.
        elevations_rad: (B,) float beam elevations, radians.
        n_columns: azimuth columns per revolution (C).
        min_range: returns nearer than this are discarded, metres.
        max_range: rays stop here, metres.
        column_offsets: (C, 3) float sensor displacement from ``origin`` when each column fires (a sensor moving
            during the sweep: :meth:`~simgap_ext.tune.model.SensorEffectModel.motion_offsets`); ranges are
            measured from each column's own origin. ``None``: all columns fire from ``origin``.
        device: Warp device; must be the mesh's device (``None``: the mesh's device).

    Returns:
        :class:`RayHits` with (B, C) arrays.

    Raises:
        SimGapInputError: bad shapes/ranges or a device different from the mesh's.
    """
    o = _check_origin(origin)
    el = np.asarray(elevations_rad, dtype=np.float32).reshape(-1)
    if el.size == 0 or not np.isfinite(el).all():
        raise SimGapInputError("elevations_rad must be a non-empty (B,) array of finite angles")
    if int(n_columns) < 1:
        raise SimGapInputError(f"n_columns must be >= 1, got {n_columns}")
    if not 0.0 <= min_range < max_range:
        raise SimGapInputError(f"need 0 <= min_range < max_range, got {min_range}, {max_range}")
    if column_offsets is None:
        offs = np.zeros((int(n_columns), 3), dtype=np.float32)
    else:
        offs = np.asarray(column_offsets, dtype=np.float32)
        if offs.shape != (int(n_columns), 3) or not np.isfinite(offs).all():
            raise SimGapInputError(f"column_offsets must be finite with shape ({int(n_columns)}, 3), got {offs.shape}")
    dev = _mesh_device(mesh, device)
    shape = (el.size, int(n_columns))
    out_r = wp.empty(shape, dtype=wp.float32, device=dev)
    out_f = wp.empty(shape, dtype=wp.int32, device=dev)
    out_c = wp.empty(shape, dtype=wp.float32, device=dev)
    wp.launch(
        _spinning_kernel,
        dim=shape,
        inputs=[
            mesh.id,
            wp.vec3(*o.tolist()),
            wp.array(np.ascontiguousarray(offs), dtype=wp.vec3, device=dev),
            wp.array(el, dtype=wp.float32, device=dev),
            int(n_columns),
            float(min_range),
            float(max_range),
        ],
        outputs=[out_r, out_f, out_c],
        device=dev,
    )
    return RayHits(out_r.numpy(), out_f.numpy(), out_c.numpy())


def cast_rays(
    mesh: Any,
    origins: np.ndarray,
    directions: np.ndarray,
    *,
    max_range: float = 1.0e6,
    device: str | None = None,
) -> RayHits:
    """Cast arbitrary rays.

    Args:
        mesh: a ``wp.Mesh`` from :func:`build_mesh`.
        origins: (R, 3) or (3,) float ray origins, metres (a single origin is broadcast).
        directions: (R, 3) float ray directions (normalised here; zero vectors are rejected).
        max_range: rays stop here, metres.
        device: Warp device; must be the mesh's device (``None``: the mesh's device).

    Returns:
        :class:`RayHits` with (R,) arrays.
    """
    d = np.asarray(directions, dtype=np.float32)
    if d.ndim != 2 or d.shape[1] != 3:
        raise SimGapInputError(f"directions must have shape (R, 3), got {d.shape}")
    if not np.isfinite(d).all() or (np.linalg.norm(d, axis=1) == 0).any():
        raise SimGapInputError("directions must be finite and non-zero")
    o = np.asarray(origins, dtype=np.float32)
    if o.shape == (3,):
        o = np.broadcast_to(o, d.shape)
    if o.shape != d.shape or not np.isfinite(o).all():
        raise SimGapInputError(f"origins must have shape (3,) or {d.shape} and be finite, got {o.shape}")
    dev = _mesh_device(mesh, device)
    n = d.shape[0]
    out_r = wp.empty(n, dtype=wp.float32, device=dev)
    out_f = wp.empty(n, dtype=wp.int32, device=dev)
    out_c = wp.empty(n, dtype=wp.float32, device=dev)
    if n:
        wp.launch(
            _rays_kernel,
            dim=n,
            inputs=[
                mesh.id,
                wp.array(np.ascontiguousarray(o), dtype=wp.vec3, device=dev),
                wp.array(np.ascontiguousarray(d), dtype=wp.vec3, device=dev),
                float(max_range),
            ],
            outputs=[out_r, out_f, out_c],
            device=dev,
        )
    return RayHits(out_r.numpy(), out_f.numpy(), out_c.numpy())


def spinning_directions(elevations_rad: np.ndarray, n_columns: int) -> np.ndarray:
    """(B, C, 3) float32 unit ray directions of a spinning scan (the convention of :func:`cast_spinning`)."""
    el = np.asarray(elevations_rad, dtype=np.float64).reshape(-1, 1)
    az = (2.0 * np.pi * np.arange(int(n_columns)) / int(n_columns)).reshape(1, -1)
    ce = np.cos(el)
    d = np.stack(np.broadcast_arrays(ce * np.cos(az), ce * np.sin(az), np.sin(el)), axis=-1)
    return d.astype(np.float32)


def _mesh_device(mesh: Any, device: str | None) -> str:
    mesh_dev = str(mesh.points.device)
    if device is None:
        return mesh_dev
    dev = resolve_device(device)
    if dev != mesh_dev:
        raise SimGapInputError(f"mesh lives on {mesh_dev!r} but the cast was asked to run on {dev!r}")
    return dev
