"""Volumetric foliage: beams that hit a crown or bush return from a leaf some way inside it, not from its hull.

The embedded world models vegetation as closed meshes (a jittered ellipsoid crown, a bush). A real LiDAR beam
passes gaps between leaves and returns from a leaf inside the crown, so real vegetation returns scatter in depth
(high local scattering, large local height spread) where a mesh hull gives a smooth shell that looks like a car
body to the gate's plausibility descriptors. :func:`penetrate` moves each hit on a penetrable material
(:data:`~.labels.PENETRATION_MEAN`, > 0 for ``vegetation``) along its ray by an exponential free path
(Beer-Lambert attenuation in a turbid leaf volume) of the material's mean, capped at the next surface along the
ray (the far side of the crown or whatever stands inside or behind it), so a return never lies beyond the volume.

Leaves grow in clumps (shoots, twigs) larger than the spacing of adjacent beams at street range (6 cm at 10 m for
a 20 Hz HDL-32E): neighbouring rays mostly end on the same clump. So the depth is drawn once per leaf clump, a
:data:`CLUMP_SIZE` cube of the world around the hull point (a hash of the cube and the scene's key), not per ray.
Independent draws per ray made vegetation's along-beam roughness (the gate's class roughness) 1.4x the real one
(mean 0.067 m against 0.053 m real on nuScenes, ``ideal`` + penetration); per clump it is 0.043 m from the foliage
alone and 0.054 m with the fitted sensor noise of ``hdl-32-nuscenes`` on top (docs/backend.md).

This is a property of the world, not of the sensor: it applies in every preset (``ideal`` included), before the
sensor effects, and its random draws come from the scene's own seed (:func:`foliage_rng`), so two presets or two
noise seeds of one scene see the same leaves, and a render stays a function of its key. A world has it when its
``RandomizerConfig.penetration`` says so (``PENETRATION_MEAN``, the default; ``{}`` gives smooth hulls).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import SimGapInputError
from .labels import CLASS_IDS, PENETRATION_MEAN
from .raycast import cast_rays

__all__ = ["CLUMP_SIZE", "FOLIAGE_STREAM", "foliage_rng", "penetration_lut", "penetrate"]

#: Appended to the scene's SeedSequence entropy for the foliage draws (distinct from the scene and noise streams).
FOLIAGE_STREAM = 0xF011A6E

#: Edge of the leaf clumps (metres): hits in one clump share their depth. 15 cm: the size of a broadleaf shoot
#: (a few leaves of 5-10 cm on a twig), chosen from that, not searched.
CLUMP_SIZE = 0.15

#: A return stops this far short of the next surface so that it stays inside the volume.
_EXIT_MARGIN = 1e-3


def foliage_rng(scene_seed: object) -> np.random.Generator:
    """The foliage generator of a scene (``Scene.seed``: an int or a SeedSequence entropy)."""
    if isinstance(scene_seed, int | np.integer):
        entropy = [int(scene_seed)]
    else:
        entropy = [int(v) for v in np.atleast_1d(np.asarray(scene_seed, dtype=object))]
    return np.random.default_rng(np.random.SeedSequence([*entropy, FOLIAGE_STREAM]))


def _clump_depth(points: np.ndarray, key: np.uint64) -> np.ndarray:
    """(P,) unit-mean exponential depth per point, one draw per leaf clump (a CLUMP_SIZE cube of the world)."""
    cell = np.floor(np.asarray(points, dtype=np.float64) / CLUMP_SIZE).astype(np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        h = key ^ (cell[:, 0] * np.uint64(0x9E3779B97F4A7C15))
        h ^= cell[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F)
        h ^= cell[:, 2] * np.uint64(0x165667B19E3779F9)
        # splitmix64 finaliser: every input bit reaches every output bit
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    u = (h >> np.uint64(11)).astype(np.float64) * 2.0**-53  # uniform [0, 1)
    return (-np.log1p(-u)).astype(np.float32)


def penetration_lut(means: Any = PENETRATION_MEAN) -> np.ndarray:
    """(256,) float32 mean penetration depth per semantic id, metres (0 = opaque)."""
    lut = np.zeros(256, dtype=np.float32)
    for name, mean in dict(means).items():
        if name not in CLASS_IDS:
            raise SimGapInputError(f"penetration given for unknown class {name!r}")
        if not np.isfinite(mean) or mean < 0:
            raise SimGapInputError(f"penetration mean of {name!r} must be finite and >= 0, got {mean}")
        lut[CLASS_IDS[name]] = float(mean)
    return lut


def penetrate(
    mesh: Any,
    origin: np.ndarray,
    directions: np.ndarray,
    ranges: np.ndarray,
    semantic: np.ndarray,
    rng: np.random.Generator,
    *,
    lut: np.ndarray | None = None,
    device: str | None = None,
) -> np.ndarray:
    """Ranges of a scan after the beams entered the penetrable surfaces they hit.

    Args:
        mesh: the scene's ``wp.Mesh`` (:func:`~.raycast.build_mesh`).
        origin: (3,) sensor position in the mesh frame, metres, or (C, 3) / (B, C, 3) one per column / cell (a
            sensor moving during the sweep).
        directions: (B, C, 3) float32 unit ray directions (:func:`~.raycast.spinning_directions`).
        ranges: (B, C) float32 hull ranges, metres; 0 where nothing was hit.
        semantic: (B, C) integer semantic id of the hit surface.
        rng: the scene's foliage generator (:func:`foliage_rng`); it gives one key, and each leaf clump's depth is
            a hash of the key and the clump, so it does not depend on the rest of the scene or on the sensor.
        lut: (256,) mean depth per semantic id (default :func:`penetration_lut`).
        device: Warp device of ``mesh``.

    Returns:
        (B, C) float32 ranges: ``r + min(mean * E, distance to the next surface)`` on penetrable hits (E a unit
        exponential per leaf clump; the return stays 1 mm inside the volume), unchanged elsewhere.
    """
    r = np.asarray(ranges, dtype=np.float32)
    sem = np.asarray(semantic)
    d = np.asarray(directions, dtype=np.float32)
    if sem.shape != r.shape or d.shape != (*r.shape, 3):
        raise SimGapInputError(
            f"penetrate needs ranges (B, C), semantic (B, C) and directions (B, C, 3), got {r.shape}, {sem.shape}, "
            f"{d.shape}"
        )
    lut = penetration_lut() if lut is None else np.asarray(lut, dtype=np.float32)
    key = np.uint64(rng.integers(0, 2**63))
    mean = lut[np.clip(sem, 0, 255).astype(np.int64)]
    cells = (r > 0) & (mean > 0)
    out = r.copy()
    if not cells.any():
        return out
    o_arr = np.asarray(origin, dtype=np.float32)
    try:
        o = np.broadcast_to(o_arr, d.shape)[cells] if o_arr.ndim > 1 else o_arr.reshape(3)
    except ValueError as exc:
        raise SimGapInputError(f"penetrate: origin must be (3,), (C, 3) or (B, C, 3), got {o_arr.shape}") from exc
    dirs = d[cells]
    depth = _clump_depth(o + dirs * r[cells][:, None], key)
    start = o + dirs * (r[cells] + _EXIT_MARGIN)[:, None]
    nxt = cast_rays(mesh, start, dirs, device=device)
    # the next surface lies _EXIT_MARGIN + t beyond the hull: stopping at depth t keeps the return just inside
    room = np.where(nxt.hit, nxt.range, np.inf)
    out[cells] = r[cells] + np.minimum(depth * mean[cells], room).astype(np.float32)
    return out
