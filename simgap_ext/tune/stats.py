"""Scene statistics of a LiDAR frame and their real-vs-synthetic distances (the search objective and the bench).

:func:`scene_stats` measures one frame on a beam table; :func:`compare` pools a set of frames on each side and
returns the distances:

- ``range_w1`` (metres) and ``elevation_w1`` (degrees): exact 1-D Wasserstein-1 between pooled distributions;
- ``beam_ratio_l1``: mean over beams of |real - synthetic| return ratio (returns / columns);
- ``roughness``: robust local range residual (MAD of the along-beam second difference / sqrt 6, metres) on
  smooth surfaces; the distance is the absolute difference;
- ``object_exponent`` / ``object_n10``: a log-log fit ``n = n10 (d / 10 m) ** exponent`` of points per vehicle
  cluster (connected components at 0.6 m of the frame's ``vehicle`` points, 10 points or more) against the
  cluster's horizontal distance; distances are |difference| of exponents and |log ratio| of ``n10``.

Clusters, not instance ids, so that real scans without instance labels and synthetic frames count alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.stats import wasserstein_distance

from ..errors import SimGapInputError
from .model import head_class
from .range_image import organize, second_difference

__all__ = ["SceneStats", "scene_stats", "summarize", "compare", "object_fit", "STAT_NAMES"]

#: Keys of :func:`compare`'s result.
STAT_NAMES = ("range_w1", "elevation_w1", "beam_ratio_l1", "roughness", "object_exponent", "object_n10")
_CLUSTER_RADIUS = 0.6
_MIN_CLUSTER = 10


@dataclass
class SceneStats:
    """Statistics of one frame.

    Attributes:
        ranges: (N,) float32 return ranges, metres.
        elevations: (N,) float32 return elevations, degrees.
        beam_ratio: (B,) float64 returns per column per beam.
        residuals: (M,) float32 along-beam second differences on smooth surfaces, metres.
        objects: (O, 2) float64 (horizontal distance, points) per vehicle cluster.
    """

    ranges: np.ndarray
    elevations: np.ndarray
    beam_ratio: np.ndarray
    residuals: np.ndarray
    objects: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


def _class_mask(frame: Mapping[str, Any], name: str) -> np.ndarray:
    """Points whose class is ``name`` or rolls up to it (a real scan's ``car`` counts as ``vehicle``)."""
    labels = frame["info"]["idToLabels"]
    ids = [int(k) for k, v in labels.items() if head_class(v["class"] if isinstance(v, Mapping) else v) == name]
    return np.isin(np.asarray(frame["info"]["pointSemantic"]), ids)


def _clusters(pts: np.ndarray) -> np.ndarray:
    if pts.shape[0] < _MIN_CLUSTER:
        return np.zeros((0, 2))
    pairs = cKDTree(pts).query_pairs(_CLUSTER_RADIUS, output_type="ndarray")
    n = pts.shape[0]
    g = coo_matrix((np.ones(pairs.shape[0]), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    counts = np.bincount(lab)
    out = []
    for c in np.flatnonzero(counts >= _MIN_CLUSTER):
        cen = pts[lab == c].mean(axis=0)
        out.append((float(np.hypot(cen[0], cen[1])), float(counts[c])))
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def scene_stats(frame: Mapping[str, Any], elevations_deg: Sequence[float], columns: int) -> SceneStats:
    """Measure one frame (sensor frame) on a beam table.

    Args:
        frame: a frame in the DESIGN.md layout (validated by the caller).
        elevations_deg: (B,) beam table, degrees, beam 0 at the top.
        columns: columns per turn of the beam table.
    """
    pts = np.asarray(frame["data"], dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise SimGapInputError(f"frame points must be (N, 3), got {pts.shape}")
    r = np.linalg.norm(pts, axis=1)
    ok = r > 1e-6
    el = np.degrees(np.arcsin(np.clip(pts[ok, 2] / r[ok], -1.0, 1.0)))
    img = organize(pts, np.asarray(elevations_deg, dtype=np.float64), int(columns))
    ratio = img.valid.mean(axis=1)
    rr = img.range
    rl, rrt = np.roll(rr, 1, axis=1), np.roll(rr, -1, axis=1)
    smooth = (rr > 0) & (rl > 0) & (rrt > 0) & (np.abs(rl - rrt) <= 0.05 * rr + 0.1)
    d2 = second_difference(rr)[smooth]
    veh = _class_mask(frame, "vehicle")
    objs = _clusters(pts[veh]) if veh.any() else np.zeros((0, 2))
    return SceneStats(r[ok].astype(np.float32), el.astype(np.float32), ratio, d2.astype(np.float32), objs)


def object_fit(objects: np.ndarray, *, d_range: tuple[float, float] = (5.0, 50.0)) -> tuple[float, float]:
    """(exponent, points at 10 m) of a least-squares fit of log(points) on log(distance); NaN with < 3 objects."""
    o = np.asarray(objects, dtype=np.float64).reshape(-1, 2)
    o = o[(o[:, 0] >= d_range[0]) & (o[:, 0] <= d_range[1])]
    if o.shape[0] < 3:
        return float("nan"), float("nan")
    x, y = np.log(o[:, 0] / 10.0), np.log(o[:, 1])
    k, a = np.polyfit(x, y, 1)
    return float(k), float(np.exp(a))


def _robust_sigma(d2: np.ndarray) -> float:
    if d2.size == 0:
        return float("nan")
    return 1.4826 * float(np.median(np.abs(d2 - np.median(d2)))) / np.sqrt(6.0)


def summarize(stats: Sequence[SceneStats]) -> dict[str, Any]:
    """Pooled arrays and the scalar summaries of a set of frames (what :func:`compare` compares)."""
    if not stats:
        raise SimGapInputError("no frames to summarise")
    objs = np.concatenate([s.objects for s in stats])
    k, n10 = object_fit(objs)
    return {
        "ranges": np.concatenate([s.ranges for s in stats]),
        "elevations": np.concatenate([s.elevations for s in stats]),
        "beam_ratio": np.mean([s.beam_ratio for s in stats], axis=0),
        "roughness": _robust_sigma(np.concatenate([s.residuals for s in stats])),
        "object_exponent": k,
        "object_n10": n10,
        "objects": int(objs.shape[0]),
        "points_per_frame": float(np.mean([s.ranges.size for s in stats])),
    }


def compare(real: Mapping[str, Any], synthetic: Mapping[str, Any]) -> dict[str, float]:
    """Distances between two :func:`summarize` results (keys :data:`STAT_NAMES`; NaN where a fit is missing)."""
    if real["beam_ratio"].shape != synthetic["beam_ratio"].shape:
        raise SimGapInputError("real and synthetic statistics use different beam tables")
    return {
        "range_w1": float(wasserstein_distance(real["ranges"], synthetic["ranges"])),
        "elevation_w1": float(wasserstein_distance(real["elevations"], synthetic["elevations"])),
        "beam_ratio_l1": float(np.mean(np.abs(real["beam_ratio"] - synthetic["beam_ratio"]))),
        "roughness": float(abs(real["roughness"] - synthetic["roughness"])),
        "object_exponent": float(abs(real["object_exponent"] - synthetic["object_exponent"])),
        "object_n10": float(abs(np.log(real["object_n10"] / synthetic["object_n10"]))),
    }
