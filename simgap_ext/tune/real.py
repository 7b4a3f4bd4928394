"""Real scans for the fit: organised range images from nuScenes scans or from any frame on a known beam table.

Reading is :mod:`simgap_ext.data`'s: the scan list and layout detection (:func:`~simgap_ext.data.list_scans`,
:func:`~simgap_ext.data.detect_layout`), the checked raw reader (:func:`~simgap_ext.data.raw_bin.read_raw_bin`,
columns x, y, z, intensity, ring), the lidarseg label file next to a scan
(:func:`~simgap_ext.data.layouts.nuscenes_label_file`) and the shipped ``nuscenes`` label map. What stays here is
the organisation into range images, which the fit needs and the readers do not keep:

- :func:`load_nuscenes_scan`: a nuScenes sweep keeps every firing, no-return firings as points at the origin, in
  firing order (ring 0..31 per column), so the range image is the point array itself: ``(C, 32)`` transposed,
  with ring 0 (the lowest beam) at the bottom, and the points themselves (``xyz``: the motion-skew fit);
- :func:`scan_from_frame` organises a frame (a synthetic render, or a real scan of a reader) on a given beam
  table and column count (:func:`~.range_image.organize`).

Classes: the label map's taxonomy class rolled up to its head class (:func:`~simgap_ext.data.taxonomy.head_of`:
``car`` -> ``vehicle``, ``road`` -> ``ground``), the classes the embedded backend renders and the gate scores by
default. Returns of the ego vehicle (the map's ``vehicle.ego``) are the sensor's own roof: removed like
no-returns, so that the fit sees them as self-occlusion.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..data import detect_layout, list_scans, load_label_map, scan_name
from ..data.layouts import nuscenes_label_file
from ..data.raw_bin import NUSCENES_COLUMNS, read_raw_bin
from ..data.taxonomy import default_taxonomy
from ..errors import SimGapInputError
from ..frame import make_frame
from .fit import RealScan
from .model import head_class
from .range_image import organize

__all__ = ["list_nuscenes_scans", "load_nuscenes_scan", "nuscenes_frame", "scan_from_frame"]

_NO_RETURN_M = 1.0  # nuScenes stores a no-return firing as a point within centimetres of the origin
_EGO = "vehicle.ego"  # the label map's own name of the ego vehicle's returns


@functools.lru_cache(maxsize=1)
def _nuscenes_lut() -> tuple[np.ndarray, np.ndarray]:
    """(256,) object arrays: lidarseg id -> taxonomy class, and -> its head class; ``""`` for ego returns."""
    lm = load_label_map("nuscenes")
    fine = np.full(256, "unlabeled", dtype=object)
    for key, cls in lm.classes.items():
        fine[int(key)] = "" if lm.source_names.get(key) == _EGO else (cls or "unlabeled")
    head = np.array([head_class(c) if c else "" for c in fine], dtype=object)
    return fine, head


def _scan_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p / "points.bin" if p.is_dir() else p


def list_nuscenes_scans(root: str | os.PathLike[str]) -> list[Path]:
    """The labelled nuScenes scans under ``root`` (a scan, a keyframe folder, a folder of them, or a folder of
    ``*.pcd.bin`` files), in :func:`~simgap_ext.data.list_scans` order.

    Raises:
        SimGapInputError: no such path, or no labelled nuScenes scan under it.
    """
    p = _scan_file(root) if (Path(root) / "points.bin").is_file() else Path(root)
    scans = [f for f in list_scans(p) if detect_layout(f) == "nuscenes" and nuscenes_label_file(f) is not None]
    if not scans:
        raise SimGapInputError(f"{p}: no nuScenes scans with lidarseg labels (points.bin + ground.bin/lidarseg.bin)")
    return scans


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points (N, 3), intensity (N,), ring (N,) int, lidarseg id per point (N,) uint8."""
    raw = read_raw_bin(path, NUSCENES_COLUMNS)
    pts = raw["points"]
    if not np.isfinite(pts).all():
        raise SimGapInputError(f"{path}: NaN/inf coordinates")
    lab_path = nuscenes_label_file(path)
    if lab_path is None:
        raise SimGapInputError(f"{path}: no lidarseg label file (ground.bin / lidarseg.bin / X_lidarseg.bin)")
    lab = np.fromfile(lab_path, dtype=np.uint8)
    if lab.size != pts.shape[0]:
        raise SimGapInputError(f"{lab_path}: {lab.size} labels for {pts.shape[0]} points")
    return pts, raw["intensity"], raw["ring"].astype(np.int64), lab


def load_nuscenes_scan(path: str | os.PathLike[str], *, channels: int = 32) -> RealScan:
    """One nuScenes scan (a ``points.bin`` / ``.pcd.bin`` file or its keyframe folder) as an organised RealScan.

    Raises:
        SimGapInputError: missing/corrupt files, or points not in firing order (ring 0..channels-1 per column).
    """
    p = _scan_file(path)
    pts, intensity, ring, lab = _read(p)
    names = _nuscenes_lut()[1][lab]
    n = pts.shape[0]
    if n % channels or not np.array_equal(ring, np.tile(np.arange(channels), n // channels)):
        raise SimGapInputError(f"{p}: points are not in firing order (ring 0..{channels - 1} per column)")
    r = np.linalg.norm(pts.astype(np.float64), axis=1)
    ret = (r >= _NO_RETURN_M) & (names != "")
    rng = np.where(ret, r, 0.0).reshape(-1, channels).T[::-1]
    cls = names.reshape(-1, channels).T[::-1]
    inten = intensity.reshape(-1, channels).T[::-1]
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
    xyz = np.where(ret[:, None], pts, 0.0).reshape(-1, channels, 3).transpose(1, 0, 2)[::-1]
    name = scan_name(p)
    return RealScan(
        rng.astype(np.float32),
        cls,
        inten.astype(np.float32),
        elev,
        name=name,
        azimuth_deg=az,
        xyz=np.ascontiguousarray(xyz, dtype=np.float32),
    )


def nuscenes_frame(path: str | os.PathLike[str], *, sensor: str = "hdl-32", frame_id: int = 0) -> dict[str, Any]:
    """One nuScenes scan as a frame (DESIGN.md layout) of its returns (no ego returns): the ``nuscenes`` label
    map's taxonomy classes and ids (as :func:`~simgap_ext.data.iter_scans` reads them), intensity in [0, 1]."""
    pts, intensity, _, lab = _read(_scan_file(path))
    names = _nuscenes_lut()[0][lab]
    keep = (np.linalg.norm(pts, axis=1) >= _NO_RETURN_M) & (names != "")
    tax = default_taxonomy()
    ids = {str(n): tax.class_id(str(n)) for n in np.unique(names[keep])}
    sem = np.array([ids[n] for n in names[keep]], dtype=np.uint32)
    return make_frame(
        pts[keep].astype(np.float32),
        sem,
        np.zeros(sem.size, dtype=np.uint32),
        {i: {"class": n} for n, i in ids.items()},
        intensity=np.clip(intensity[keep] / 255.0, 0.0, 1.0).astype(np.float32),
        frame_id=frame_id,
        sensor=sensor,
        coordinate_frame="sensor",
    )


def scan_from_frame(frame: Mapping[str, Any], elevations_deg: Any, columns: int, *, name: str = "") -> RealScan:
    """Organise a frame on a known beam table into a :class:`RealScan` (intensity 0 when the frame has none; classes
    rolled up to their head class like the nuScenes scans')."""
    pts = np.asarray(frame["data"], dtype=np.float32)
    img = organize(pts, np.asarray(elevations_deg, dtype=np.float64), columns)
    v = img.valid
    idx = np.where(v, img.index, 0)
    labels = frame["info"]["idToLabels"]
    sem = np.asarray(frame["info"]["pointSemantic"])
    ids, inv = np.unique(sem, return_inverse=True)
    id_names = [
        head_class(labels[int(i)]["class"] if isinstance(labels[int(i)], Mapping) else labels[int(i)]) for i in ids
    ]
    names = np.array(id_names, dtype=object)[inv.reshape(-1)] if sem.size else np.zeros(0, dtype=object)
    cls = np.where(v, names[idx] if sem.size else "", "")
    inten_pts = np.asarray(frame.get("intensity", np.zeros(pts.shape[0])), dtype=np.float32)
    inten = np.where(v, inten_pts[idx] if pts.shape[0] else 0.0, 0.0).astype(np.float32)
    elev = np.asarray(elevations_deg, dtype=np.float64)
    return RealScan(img.range, cls, inten, elev, name=name)
