"""Dataset layouts of raw ``.bin`` scans: which one a file is in, and reading it with its labels.

========================  ==============================================================  ===================
layout                    what is detected                                                default label map
========================  ==============================================================  ===================
``nuscenes``              ``*.pcd.bin``; or ``points.bin`` beside ``ground.bin`` /        ``nuscenes``
                          ``lidarseg.bin`` (uint8 lidarseg ids per point); 5 columns
                          x, y, z, intensity, ring
``kitti_object``          ``velodyne[_reduced]/S.bin`` with ``../label_2/S.txt`` and      ``kitti_object``
                          ``../calib/S.txt`` (or ``S.bin`` beside ``S_gt.txt`` + ``S.txt``)
``kitti360``              ``velodyne_points/data/S.bin`` with ``../../gt_labels/S.bin``    ``kitti360``
``mcd``                   ``lidar_bin/data/S.bin`` with ``../../gt_labels/S.bin``          ``mcd``
``semantickitti``         any other ``.bin`` (x, y, z, remission) with ``S.label`` beside  ``semantickitti``
                          or ``../labels/S.label`` (or no labels at all)
========================  ==============================================================  ===================

``gt_labels`` and ``.label`` files are uint32 per point, lower 16 bits the class id, upper 16 bits the instance id.
A layout can be forced (``layout=``), and the float columns given (``columns=``, e.g. ``x,y,z,intensity,ring``);
the values are checked against the layout either way (:func:`~simgap_ext.data.raw_bin.read_raw_bin`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import SimGapInputError
from .pointcloud import PointCloud
from .raw_bin import KITTI_COLUMNS, NUSCENES_COLUMNS, read_raw_bin

__all__ = [
    "BIN_LAYOUTS",
    "LAYOUTS",
    "DEFAULT_LABEL_MAPS",
    "detect_layout",
    "read_bin_layout",
    "scan_name",
    "nuscenes_label_file",
    "kitti_object_files",
    "gt_label_file",
]

BIN_LAYOUTS = ("semantickitti", "nuscenes", "kitti_object", "kitti360", "mcd")
LAYOUTS = (*BIN_LAYOUTS, "npz", "ply", "pcd", "las")
#: The shipped label map each dataset layout's ids are read with when nothing else names them.
DEFAULT_LABEL_MAPS = {
    "semantickitti": "semantickitti",
    "nuscenes": "nuscenes",
    "kitti_object": "kitti_object",
    "kitti360": "kitti360",
    "mcd": "mcd",
    "las": "asprs",
}
_NUSCENES_LABEL_SIBLINGS = ("lidarseg.bin", "ground.bin", "labels.bin")
_SUFFIX_LAYOUT = {".npz": "npz", ".ply": "ply", ".pcd": "pcd", ".las": "las", ".laz": "las"}


def scan_name(path: str | Path) -> str:
    """The name a scan is paired and reported by: the stem, ``X`` for ``X.pcd.bin``, the folder for ``points.bin``."""
    p = Path(path)
    if p.name.lower() == "points.bin" and p.parent.name:
        return p.parent.name
    if p.name.lower().endswith(".pcd.bin"):
        return p.name[: -len(".pcd.bin")]
    return p.stem


def nuscenes_label_file(path: Path) -> Path | None:
    """The lidarseg labels of a nuScenes scan: ``X_lidarseg.bin`` beside ``X.pcd.bin``, or ``lidarseg.bin`` /
    ``ground.bin`` beside ``points.bin``; ``None`` when there is none."""
    if path.name.lower() == "points.bin":
        cands = [path.parent / n for n in _NUSCENES_LABEL_SIBLINGS]
    else:
        cands = [path.parent / f"{scan_name(path)}_lidarseg.bin"]
    return next((c for c in cands if c.is_file()), None)


def kitti_object_files(path: Path) -> tuple[Path, Path] | None:
    """(label_2 file, calib file) of a KITTI object scan, or ``None`` when ``path`` is not in that layout."""
    stem = path.stem
    if path.parent.name in ("velodyne", "velodyne_reduced"):
        root = path.parent.parent
        label, calib = root / "label_2" / f"{stem}.txt", root / "calib" / f"{stem}.txt"
        if label.is_file():
            return label, calib
    gt, calib = path.parent / f"{stem}_gt.txt", path.parent / f"{stem}.txt"
    if gt.is_file() and calib.is_file():
        return gt, calib
    return None


def gt_label_file(path: Path) -> tuple[str, Path] | None:
    """(``kitti360`` or ``mcd``, ``gt_labels`` file) for a scan in those layouts, else ``None``."""
    if path.parent.name != "data":
        return None
    kind = {"velodyne_points": "kitti360", "lidar_bin": "mcd"}.get(path.parent.parent.name)
    if kind is None:
        return None
    label = path.parent.parent.parent / "gt_labels" / path.name
    return (kind, label) if label.is_file() else None


def detect_layout(path: str | Path) -> str:
    """The layout of a scan file (table in the module docstring); a non-``.bin`` file's layout is its format."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in _SUFFIX_LAYOUT:
        return _SUFFIX_LAYOUT[suffix]
    if suffix != ".bin":
        raise SimGapInputError(f"{p}: cannot tell the layout of a {suffix or 'suffix-less'} file")
    if p.name.lower().endswith(".pcd.bin"):
        return "nuscenes"
    if p.name.lower() == "points.bin" and nuscenes_label_file(p) is not None:
        return "nuscenes"
    if kitti_object_files(p) is not None:
        return "kitti_object"
    gt = gt_label_file(p)
    if gt is not None:
        return gt[0]
    return "semantickitti"


def _read_ids(path: Path, n: int, dtype: str, what: str) -> np.ndarray:
    item = np.dtype(dtype).itemsize
    try:
        size = path.stat().st_size
        if size != n * item:
            raise SimGapInputError(
                f"{path}: {what} has {size} bytes, expected {n * item} ({item}-byte labels for {n} points)"
            )
        return np.fromfile(path, dtype=dtype)
    except FileNotFoundError as exc:
        raise SimGapInputError(f"{path}: {what} not found") from exc
    except OSError as exc:
        raise SimGapInputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from exc


def read_bin_layout(
    path: str | Path,
    layout: str,
    *,
    columns: Sequence[str] | None = None,
    kitti_classes=None,
) -> PointCloud:
    """Read a raw ``.bin`` scan in ``layout`` with the labels that layout keeps beside it.

    Args:
        path: the scan.
        layout: one of :data:`BIN_LAYOUTS`.
        columns: float columns of the file (default: the layout's own, see the module docstring).
        kitti_classes: for ``kitti_object``, a callable box type -> (semantic id, class name) or ``None`` (ignored
            box); required for that layout.

    Returns:
        The cloud with the dataset's own ids (``kitti_object``: the ids ``kitti_classes`` returned) and no names;
        ``id_to_labels`` is filled by the caller from a label map. Not yet validated.

    Raises:
        SimGapInputError: see :func:`~simgap_ext.data.raw_bin.read_raw_bin`, label files whose size does not match
            the scan, a KITTI object scan without its calib file.
    """
    p = Path(path)
    if layout not in BIN_LAYOUTS:
        raise SimGapInputError(f"unknown layout {layout!r} for {p} (known: {', '.join(BIN_LAYOUTS)})")
    cols = tuple(columns) if columns is not None else (NUSCENES_COLUMNS if layout == "nuscenes" else KITTI_COLUMNS)
    raw = read_raw_bin(p, cols)
    pts = raw["points"]
    n = pts.shape[0]
    semantic = instance = None
    if layout == "nuscenes":
        lab = nuscenes_label_file(p)
        if lab is not None:
            semantic = _read_ids(lab, n, "u1", "lidarseg label file").astype(np.uint32)
    elif layout == "kitti_object":
        semantic, instance = _kitti_object_labels(p, pts, kitti_classes)
    elif layout in ("kitti360", "mcd"):
        gt = gt_label_file(p)
        if gt is not None:
            lab = _read_ids(gt[1], n, "<u4", "gt_labels file")
            semantic, instance = lab & np.uint32(0xFFFF), lab >> np.uint32(16)
    else:
        from .semantickitti import find_label_file, read_label

        lp = find_label_file(p)
        if lp is not None:
            semantic, instance = read_label(lp, n)
    return PointCloud(pts, raw.get("intensity"), semantic, instance, {})


def _kitti_object_labels(p: Path, pts: np.ndarray, kitti_classes) -> tuple[np.ndarray, np.ndarray]:
    from .kitti_object import points_in_boxes, read_kitti_calib, read_kitti_labels, velo_to_rect

    files = kitti_object_files(p)
    if files is None:
        raise SimGapInputError(f"{p}: no KITTI label_2 file beside this scan (expected ../label_2/{p.stem}.txt)")
    label_path, calib_path = files
    if not calib_path.is_file():
        raise SimGapInputError(f"{calib_path}: missing KITTI calib file for {p.name} (needed to place the boxes)")
    if kitti_classes is None:
        raise SimGapInputError(f"{p}: a KITTI object scan needs a label map keyed by box type")
    r0, tr = read_kitti_calib(calib_path)
    boxes = read_kitti_labels(label_path)
    mapped = [kitti_classes(b.type) for b in boxes]
    keep = [m is not None for m in mapped]
    owner = points_in_boxes(velo_to_rect(pts, r0, tr), boxes, keep)
    box_sem = np.array([0 if m is None else m for m in mapped] + [0], dtype=np.uint32)
    # instance ids: 1-based position among the boxes that label points
    box_inst = np.zeros(len(boxes) + 1, dtype=np.uint32)
    box_inst[np.flatnonzero(keep)] = np.arange(1, int(sum(keep)) + 1, dtype=np.uint32)
    return box_sem[owner], box_inst[owner]  # owner -1 picks the trailing 0 entry
