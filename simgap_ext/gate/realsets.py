"""Read the real labelled scan layouts the validation runs on (one function: :func:`iter_real_scans`).

Besides everything :func:`simgap_ext.data.iter_scans` reads (point-cloud files, SemanticKITTI sequences), the
public sample layouts under ``realdata/`` are recognised, each with its shipped label map
(``config/label_maps``) and sensor profile:

- ``velodyne_points/data/*.bin`` + ``gt_labels/*.bin`` (uint32 ids) — KITTI-360, ``kitti360``, ``hdl-64``;
- ``lidar_bin/data/*.bin`` + ``gt_labels/*.bin`` — MCD, ``mcd``, ``os1-128`` (zero points are no returns);
- ``data<k>/points.bin`` (5 float32: x, y, z, intensity, ring) + ``ground.bin`` (uint8) — nuScenes-lidarseg,
  ``nuscenes``, ``hdl-32``;
- ``*points*.npy`` + ``*labels*.npy`` pairs (SemanticKITTI learning ids) — ``semantickitti_learning``, ``hdl-64``.

Class names come from the taxonomy's label maps, so scans of any of these datasets share one class vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SimGapInputError

__all__ = ["iter_real_scans", "detect_layout"]

_DIGITS = re.compile(r"(\d+)")
#: Returns closer than this (metres) are no-return encodings, dropped on reading (sensor minimum ranges: 0.5-1 m).
MIN_RANGE = 0.3


def _natural(p: Path) -> tuple[Any, ...]:
    return tuple((0, int(s)) if s.isdigit() else (1, s) for s in _DIGITS.split(str(p)) if s)


def detect_layout(path: str | Path) -> tuple[str, str | None, str | None]:
    """(layout, default label map, default sensor) of a real-scan directory (``"scans"`` for the generic one)."""
    p = Path(path)
    if (p / "velodyne_points" / "data").is_dir() and (p / "gt_labels").is_dir():
        return "kitti360", "kitti360", "hdl-64"
    if (p / "lidar_bin" / "data").is_dir() and (p / "gt_labels").is_dir():
        return "mcd", "mcd", "os1-128"
    if p.is_dir() and any((d / "points.bin").is_file() and (d / "ground.bin").is_file() for d in p.iterdir()):
        return "nuscenes", "nuscenes", "hdl-32"
    if p.is_dir() and any(f.suffix == ".npy" and "points" in f.name for f in p.rglob("*.npy")):
        return "npy", "semantickitti_learning", "hdl-64"
    return "scans", None, None


def _frame(points: np.ndarray, ids: np.ndarray, label_map: str, frame_id: int, sensor: str) -> dict[str, Any]:
    from ..data.dataset_label_maps import load_label_map
    from ..data.taxonomy import UNLABELED
    from ..frame import make_frame

    lm = load_label_map(label_map)
    ids = ids.astype(np.int64)
    uniq = np.unique(ids)
    names: dict[int, str] = {}
    sem = np.zeros(ids.shape[0], np.uint32)
    tax_ids: dict[str, int] = {}
    for u in uniq.tolist():
        cls = lm.class_of(int(u)) or UNLABELED
        sid = tax_ids.setdefault(cls, len(tax_ids) + 1) if cls != UNLABELED else 0
        names[sid] = cls
        sem[ids == u] = sid
    inst = np.zeros(ids.shape[0], np.uint32)
    return make_frame(points.astype(np.float32), sem, inst, names, frame_id=frame_id, sensor=sensor)


def iter_real_scans(
    path: str | Path, *, label_map: str | None = None, sensor: str | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(name, frame)`` for the real scans under ``path`` (layouts in the module docstring).

    Args:
        path: a directory in one of the recognised layouts, or anything ``iter_scans`` reads.
        label_map: label map name or file (default: the layout's).
        sensor: sensor profile stored in each frame (default: the layout's, else ``"unknown"``).

    Raises:
        SimGapInputError: missing files, points and labels of different lengths, NaN coordinates.
    """
    layout, lm_default, sensor_default = detect_layout(path)
    p = Path(path)
    lm = label_map or lm_default
    sensor = sensor or sensor_default or "unknown"
    if layout == "scans":
        from ..data import iter_scans

        yield from iter_scans(p, sensor=sensor)
        return
    if layout in ("kitti360", "mcd"):
        scan_dir = p / ("velodyne_points" if layout == "kitti360" else "lidar_bin") / "data"
        files = sorted(scan_dir.glob("*.bin"), key=_natural)
        pairs = [(f, p / "gt_labels" / f.name) for f in files]
    elif layout == "nuscenes":
        dirs = sorted((d for d in p.iterdir() if (d / "points.bin").is_file()), key=_natural)
        pairs = [(d / "points.bin", d / "ground.bin") for d in dirs]
    else:
        pts = sorted((f for f in p.rglob("*.npy") if "points" in f.name), key=_natural)
        pairs = [(f, f.with_name(f.name.replace("points", "labels"))) for f in pts]
        pairs = [(a, b if b.is_file() else a.parent.parent / "labels" / a.name) for a, b in pairs]
    for i, (pf, lf) in enumerate(pairs):
        if not lf.is_file():
            raise SimGapInputError(f"{lf}: missing label file for {pf}")
        if layout == "nuscenes":
            raw = np.fromfile(pf, np.float32)
            if raw.size % 5:
                raise SimGapInputError(f"{pf}: {raw.size} floats is not a whole number of 5-column points")
            pts = raw.reshape(-1, 5)[:, :3]
            ids = np.fromfile(lf, np.uint8)
        elif layout == "npy":
            pts = np.load(pf).reshape(-1, 3)
            ids = np.load(lf).reshape(-1)
        else:
            raw = np.fromfile(pf, np.float32)
            if raw.size % 4:
                raise SimGapInputError(f"{pf}: {raw.size} floats is not a whole number of 4-column points")
            pts = raw.reshape(-1, 4)[:, :3]
            ids = np.fromfile(lf, np.uint32) & 0xFFFF
        if pts.shape[0] != ids.shape[0]:
            raise SimGapInputError(f"{pf}: {pts.shape[0]} points but {ids.shape[0]} labels in {lf}")
        # No-return encodings: all zeros (MCD, Ouster) or points within centimetres of the sensor (nuScenes); no
        # LiDAR here measures closer than MIN_RANGE, and thousands of such points would read as duplicates.
        keep = np.isfinite(pts).all(axis=1) & (np.linalg.norm(pts, axis=1) >= MIN_RANGE)
        name = pf.parent.name if layout == "nuscenes" else pf.stem
        yield name, _frame(pts[keep], ids[keep], lm, i, sensor)
