"""Volumetric foliage: beams that hit a crown or bush return from a leaf some way inside it, not from its hull.

The embedded world models vegetation as closed meshes (a jittered ellipsoid crown, a bush). A real LiDAR beam
passes gaps between leaves and returns from a leaf inside the crown, so real vegetation returns scatter in depth
(high local scattering, large local height spread) where a mesh hull gives a smooth shell that looks like a car
body to the gate's plausibility descriptors. :func:`penetrate` moves each hit on a penetrable material
(:data:`~.labels.PENETRATION_MEAN`, > 0 for ``vegetation``) along its ray by an exponential free path
(Beer-Lambert attenuation in a turbid leaf volume) of the material's mean, capped at the next surface along the
ray (the far side of the crown or whatever stands inside or behind it), so a return never lies beyond the volume.

This is a property of the world, not of the sensor: it applies in every preset (``ideal`` included), before the
sensor effects, and its random draws come from the scene's own seed (:func:`foliage_rng`), so two presets or two
noise seeds of one scene see the same leaves, and a render stays a function of its key.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import SimGapInputError
from .labels import CLASS_IDS, PENETRATION_MEAN
from .raycast import cast_rays

__all__ = ["FOLIAGE_STREAM", "foliage_rng", "penetration_lut", "penetrate"]

#: Appended to the scene's SeedSequence entropy for the foliage draws (distinct from the scene and noise streams).
FOLIAGE_STREAM = 0xF011A6E

#: A return stops this far short of the next surface so that it stays inside the volume.
_EXIT_MARGIN = 1e-3


def foliage_rng(scene_seed: object) -> np.random.Generator:
    """The foliage generator of a scene (``Scene.seed``: an int or a SeedSequence entropy)."""
    if isinstance(scene_seed, int | np.integer):
        entropy = [int(scene_seed)]
    else:
        entropy = [int(v) for v in np.atleast_1d(np.asarray(scene_seed, dtype=object))]
    return np.random.default_rng(np.random.SeedSequence([*entropy, FOLIAGE_STREAM]))


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
        origin: (3,) sensor position in the mesh frame, metres.
        directions: (B, C, 3) float32 unit ray directions (:func:`~.raycast.spinning_directions`).
        ranges: (B, C) float32 hull ranges, metres; 0 where nothing was hit.
        semantic: (B, C) integer semantic id of the hit surface.
        rng: the scene's foliage generator (:func:`foliage_rng`); one exponential per cell is drawn whatever is
            hit, so the draws of a cell do not depend on the rest of the scene.
        lut: (256,) mean depth per semantic id (default :func:`penetration_lut`).
        device: Warp device of ``mesh``.

    Returns:
        (B, C) float32 ranges: ``r + min(Exp(mean), distance to the next surface - 1 mm)`` on penetrable hits,
        unchanged elsewhere.
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
    depth = rng.standard_exponential(r.shape, dtype=np.float32)
    mean = lut[np.clip(sem, 0, 255).astype(np.int64)]
    cells = (r > 0) & (mean > 0)
    out = r.copy()
    if not cells.any():
        return out
    o = np.asarray(origin, dtype=np.float32).reshape(3)
    dirs = d[cells]
    start = o + dirs * (r[cells] + _EXIT_MARGIN)[:, None]
    nxt = cast_rays(mesh, start, dirs, device=device)
    # the next surface lies _EXIT_MARGIN + t beyond the hull: stopping at depth t keeps the return just inside
    room = np.where(nxt.hit, nxt.range, np.inf)
    out[cells] = r[cells] + np.minimum(depth[cells] * mean[cells], room).astype(np.float32)
    return out
