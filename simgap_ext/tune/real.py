"""Real scans for the fit: organised range images from nuScenes keyframes or from any frame on a known beam table.

- :func:`load_nuscenes_dir` reads a nuScenes keyframe folder (``points.bin`` float32 x5: x, y, z, intensity, ring
  as in the ``.pcd.bin`` files, and ``ground.bin`` / ``labels.bin`` uint8 lidarseg ids). A nuScenes sweep keeps
  every firing, no-return firings as points at the origin, in firing order (ring 0..31 per column), so the
  range image is the point array itself: ``(C, 32)`` transposed, with ring 0 (the lowest beam) at the bottom.
- :func:`scan_from_frame` organises a frame (a synthetic render, or a real scan of a reader) on a given beam
  table and column count (:func:`~.range_image.organize`).

The nuScenes-lidarseg id -> SimGap class map here is local to the fit (the label maps under
``config/label_maps`` are the project-wide ones); ego-vehicle returns are removed like no-returns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from ..frame import make_frame
from .fit import RealScan
from .range_image import organize

__all__ = ["NUSCENES_CLASSES", "load_nuscenes_dir", "list_nuscenes_dirs", "scan_from_frame", "nuscenes_frame"]

#: nuScenes-lidarseg raw id -> SimGap class (None: removed, like a no-return).
NUSCENES_CLASSES: Mapping[int, str | None] = {
    0: "unlabeled", 1: "unlabeled",
    2: "pedestrian", 3: "pedestrian", 4: "pedestrian", 5: "pedestrian", 6: "pedestrian", 7: "pedestrian",
    8: "wheelchair_user",
    9: "barrier", 10: "unlabeled", 11: "unlabeled", 12: "traffic_cone", 13: "unlabeled",
    14: "cyclist", 21: "cyclist",
    15: "vehicle", 16: "vehicle", 17: "vehicle", 18: "vehicle", 19: "vehicle", 20: "vehicle", 22: "vehicle",
    23: "vehicle",
    24: "ground", 25: "ground", 26: "sidewalk", 27: "terrain",
    28: "building", 29: "unlabeled", 30: "vegetation",
    31: None,
}  # fmt: skip
_NAMES = sorted({v for v in NUSCENES_CLASSES.values() if v})
_IDS = {name: i + 1 for i, name in enumerate(_NAMES)}
_NO_RETURN_M = 1.0  # nuScenes stores a no-return firing as a point within centimetres of the origin


def list_nuscenes_dirs(root: str | os.PathLike[str]) -> list[Path]:
    """Keyframe folders (holding ``points.bin``) under ``root`` in natural order (``data2`` before ``data10``)."""
    import re

    p = Path(root)
    if not p.is_dir():
        raise SimGapInputError(f"{p}: no such directory")
    dirs = [d for d in p.iterdir() if d.is_dir() and (d / "points.bin").is_file()]
    if (p / "points.bin").is_file():
        dirs = [p]
    if not dirs:
        raise SimGapInputError(f"{p}: no nuScenes keyframe folders (sub-folders with points.bin)")
    return sorted(dirs, key=lambda d: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", d.name)])


def _read(d: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(d / "points.bin", dtype=np.float32)
    if raw.size == 0 or raw.size % 5:
        raise SimGapInputError(f"{d / 'points.bin'}: expected float32 x,y,z,intensity,ring rows ({raw.size} floats)")
    pts = raw.reshape(-1, 5)
    lab_path = next((d / n for n in ("ground.bin", "labels.bin", "lidarseg.bin") if (d / n).is_file()), None)
    if lab_path is None:
        raise SimGapInputError(f"{d}: no lidarseg label file (ground.bin / labels.bin)")
    lab = np.fromfile(lab_path, dtype=np.uint8)
    if lab.size != pts.shape[0]:
        raise SimGapInputError(f"{lab_path}: {lab.size} labels for {pts.shape[0]} points")
    if not np.isfinite(pts).all():
        raise SimGapInputError(f"{d / 'points.bin'}: NaN/inf values")
    return pts, lab


def load_nuscenes_dir(d: str | os.PathLike[str], *, channels: int = 32) -> RealScan:
    """One nuScenes keyframe as an organised :class:`RealScan`.

    Raises:
        SimGapInputError: missing/corrupt files, or points not in firing order (ring 0..channels-1 per column).
    """
    d = Path(d)
    pts, lab = _read(d)
    n = pts.shape[0]
    ring = pts[:, 4].astype(np.int64)
    if n % channels or not np.array_equal(ring, np.tile(np.arange(channels), n // channels)):
        raise SimGapInputError(f"{d}: points are not in firing order (ring 0..{channels - 1} per column)")
    names = np.array([NUSCENES_CLASSES.get(int(v), "unlabeled") or "" for v in range(256)], dtype=object)[lab]
    r = np.linalg.norm(pts[:, :3].astype(np.float64), axis=1)
    ret = (r >= _NO_RETURN_M) & (names != "")
    rng = np.where(ret, r, 0.0).reshape(-1, channels).T[::-1]
    cls = names.reshape(-1, channels).T[::-1]
    inten = pts[:, 3].reshape(-1, channels).T[::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        el = np.degrees(np.arcsin(np.clip(pts[:, 2] / np.maximum(r, 1e-9), -1, 1)))
    el_img = np.where(ret, el, np.nan).reshape(-1, channels).T[::-1]
    with np.errstate(all="ignore"):
        elev = np.array([np.nanmedian(row) if np.isfinite(row).any() else np.nan for row in el_img])
    # azimuth of each firing column: circular mean over its returns
    ang = np.arctan2(pts[:, 1], pts[:, 0]).reshape(-1, channels)
    w = ret.reshape(-1, channels)
    with np.errstate(invalid="ignore"):
        az = np.degrees(np.arctan2((np.sin(ang) * w).sum(1), (np.cos(ang) * w).sum(1)))
    az = np.where(w.any(axis=1), np.mod(az, 360.0), np.nan)
    return RealScan(rng.astype(np.float32), cls, inten.astype(np.float32), elev, name=d.name, azimuth_deg=az)


def nuscenes_frame(d: str | os.PathLike[str], *, sensor: str = "hdl-32", frame_id: int = 0) -> dict[str, Any]:
    """One nuScenes keyframe as a frame (DESIGN.md layout) of its returns, intensity scaled to [0, 1]."""
    d = Path(d)
    pts, lab = _read(d)
    names = np.array([NUSCENES_CLASSES.get(int(v), "unlabeled") or "" for v in range(256)], dtype=object)[lab]
    r = np.linalg.norm(pts[:, :3], axis=1)
    keep = (r >= _NO_RETURN_M) & (names != "")
    sem = np.array([_IDS[n] for n in names[keep]], dtype=np.uint32)
    return make_frame(
        pts[keep, :3].astype(np.float32),
        sem,
        np.zeros(sem.size, dtype=np.uint32),
        {i: {"class": n} for n, i in _IDS.items()},
        intensity=np.clip(pts[keep, 3] / 255.0, 0.0, 1.0).astype(np.float32),
        frame_id=frame_id,
        sensor=sensor,
        coordinate_frame="sensor",
    )


def scan_from_frame(frame: Mapping[str, Any], elevations_deg: Any, columns: int, *, name: str = "") -> RealScan:
    """Organise a frame on a known beam table into a :class:`RealScan` (intensity 0 when the frame has none)."""
    pts = np.asarray(frame["data"], dtype=np.float32)
    img = organize(pts, np.asarray(elevations_deg, dtype=np.float64), columns)
    v = img.valid
    idx = np.where(v, img.index, 0)
    labels = frame["info"]["idToLabels"]
    sem = np.asarray(frame["info"]["pointSemantic"])
    ids, inv = np.unique(sem, return_inverse=True)
    id_names = [labels[int(i)]["class"] if isinstance(labels[int(i)], Mapping) else labels[int(i)] for i in ids]
    names = np.array(id_names, dtype=object)[inv.reshape(-1)] if sem.size else np.zeros(0, dtype=object)
    cls = np.where(v, names[idx] if sem.size else "", "")
    inten_pts = np.asarray(frame.get("intensity", np.zeros(pts.shape[0])), dtype=np.float32)
    inten = np.where(v, inten_pts[idx] if pts.shape[0] else 0.0, 0.0).astype(np.float32)
    elev = np.asarray(elevations_deg, dtype=np.float64)
    return RealScan(img.range, cls, inten, elev, name=name)
