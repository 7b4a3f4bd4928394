"""Iterate over the scans of a file, a directory of point-cloud files, or a dataset sequence directory.

Directories understood: a SemanticKITTI / KITTI-object folder (``velodyne/*.bin`` beside ``labels/`` or
``label_2/`` + ``calib/``), a KITTI-360 sequence (``velodyne_points/data/*.bin`` + ``gt_labels/``), an MCD sequence
(``lidar_bin/data/*.bin`` + ``gt_labels/``), a folder of nuScenes keyframe folders (``*/points.bin`` + lidarseg
labels), or a flat folder of point-cloud files. Scans are yielded in natural order of their names (``2`` before
``10``) and named by :func:`~simgap_ext.data.layouts.scan_name` (the stem; ``X`` for ``X.pcd.bin``; the folder for
``points.bin``), so that a real scan and a synthetic scan of the same place pair by name (``simgap score``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import SimGapInputError
from .formats import SUPPORTED_SUFFIXES, LabelMapArg, _as_label_map, load_point_cloud
from .label_map import find_label_map, read_label_map
from .layouts import scan_name

__all__ = ["list_scans", "iter_scans", "count_scans", "is_semantickitti_dir", "scan_name"]

_log = logging.getLogger(__name__)
_DIGITS = re.compile(r"(\d+)")


# Sequence sub-folders holding the scans of the dataset layouts, in the order they are looked for.
_SCAN_SUBDIRS = ("velodyne", "velodyne_reduced", "velodyne_points/data", "lidar_bin/data")
# Per-point label files that sit beside nuScenes points.bin and must not be listed as scans.
_LABEL_SIBLINGS = {"lidarseg.bin", "ground.bin", "labels.bin"}


def _natural_key(p: Path) -> tuple[Any, ...]:
    parts = _DIGITS.split(scan_name(p))
    return tuple((0, int(s), "") if s.isdigit() else (1, 0, s) for s in parts if s)


def is_semantickitti_dir(path: str | Path) -> bool:
    """Whether ``path`` is a SemanticKITTI sequence directory (has a ``velodyne/`` sub-directory)."""
    return (Path(path) / "velodyne").is_dir()


def _scan_dir(p: Path) -> Path | None:
    return next((p / d for d in _SCAN_SUBDIRS if (p / d).is_dir()), None)


def _is_scan_file(f: Path) -> bool:
    name = f.name.lower()
    if not f.is_file() or f.suffix.lower() not in SUPPORTED_SUFFIXES:
        return False
    return not (name in _LABEL_SIBLINGS or name.endswith("_lidarseg.bin"))


def list_scans(path: str | Path) -> list[Path]:
    """The scan files under ``path`` in the order :func:`iter_scans` yields them.

    Args:
        path: a point-cloud file, a directory of point-cloud files (not recursive), or a SemanticKITTI sequence
            directory (``velodyne/*.bin`` [+ ``labels/*.label``]).

    Raises:
        SimGapInputError: missing path, unsupported file, empty directory, or two files with the same stem.
    """
    p = Path(path)
    if not p.exists():
        raise SimGapInputError(f"{p}: no such file or directory")
    if p.is_file():
        if p.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise SimGapInputError(
                f"{p}: unsupported point-cloud format {p.suffix!r} (supported: {', '.join(SUPPORTED_SUFFIXES)})"
            )
        return [p]
    sub = _scan_dir(p)
    if sub is not None:
        scan_dir = sub
        files = [f for f in sub.iterdir() if f.is_file() and f.suffix.lower() == ".bin"]
    else:
        scan_dir = p
        files = [f for f in p.iterdir() if _is_scan_file(f)]
        if not files:  # a folder of nuScenes keyframe folders, each with its points.bin
            files = [d / "points.bin" for d in p.iterdir() if d.is_dir() and (d / "points.bin").is_file()]
    if not files:
        raise SimGapInputError(f"no point clouds found in {scan_dir}")
    files.sort(key=_natural_key)
    seen: dict[str, Path] = {}
    for f in files:
        name = scan_name(f)
        if name in seen:
            raise SimGapInputError(f"{scan_dir}: two scans are named {name!r} ({seen[name].name}, {f.name})")
        seen[name] = f
    return files


def count_scans(path: str | Path) -> int:
    """Number of scans :func:`iter_scans` would yield (without reading them)."""
    return len(list_scans(path))


def _check_labels_complete(path: Path, files: list[Path]) -> None:
    """In a SemanticKITTI sequence whose ``labels/`` holds labels, refuse a ``.bin`` scan without one (it would
    read as all-``unlabeled``), whether the sequence, its ``velodyne/`` directory or one scan was given."""
    if is_semantickitti_dir(path):
        seq = path
    elif path.name == "velodyne" and path.is_dir():
        seq = path.parent
    elif path.is_file() and path.parent.name == "velodyne":
        seq = path.parent.parent
    else:
        return
    label_dir = seq / "labels"
    if not (label_dir.is_dir() and any(label_dir.glob("*.label"))):
        return
    for f in files:
        if f.suffix.lower() == ".bin" and not (label_dir / f"{f.stem}.label").is_file():
            raise SimGapInputError(f"{label_dir / (f.stem + '.label')}: missing label file for {f.name}")


def iter_scans(
    path: str | Path,
    *,
    sensor: str = "unknown",
    id_to_labels: Mapping[int, str] | None = None,
    label_map: LabelMapArg = None,
    layout: str | None = None,
    columns: Sequence[str] | None = None,
    drop_nonfinite: bool = False,
    coordinate_frame: str = "sensor",
    only: Collection[str] | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(name, frame)`` for every scan under ``path``, in natural stem order.

    Args:
        path: a file, a directory of point-cloud files, or a SemanticKITTI sequence directory. In a sequence
            ``labels/`` is optional (without it every point is semantic 0 ``unlabeled``), but when it holds labels
            every scan must have one (also when the sequence's ``velodyne/`` directory or one scan is given).
        sensor: sensor profile name stored in each frame.
        id_to_labels: class names overriding ``label_map.yaml`` and the defaults (ids kept).
        label_map: a dataset label map (shipped name such as ``nuscenes``, YAML path, or loaded map) turning the
            scans' ids into taxonomy ids and names; default: names in or beside the files, else the detected
            layout's shipped map (:func:`~simgap_ext.data.load_point_cloud`).
        layout: force a layout instead of detecting it per file (:data:`~simgap_ext.data.layouts.LAYOUTS`).
        columns: float columns of raw ``.bin`` scans (e.g. ``("x", "y", "z", "intensity", "ring")``).
        drop_nonfinite: drop NaN/inf points instead of raising.
        coordinate_frame: ``"sensor"`` or ``"world"``, stored in each frame.
        only: scan names to read; the other files are not opened (``None``: every scan).

    Yields:
        (scan name, validated frame dict). ``frame_id`` is the name's integer value when it is all digits
        (``000012`` -> 12), else the scan's position.

    Raises:
        SimGapInputError: see :func:`list_scans` and :func:`~simgap_ext.data.load_point_cloud`.
    """
    p = Path(path)
    files = list_scans(p)
    names = None if id_to_labels is None else dict(id_to_labels)
    lm = _as_label_map(label_map)  # loaded once, not per scan
    if names is None and lm is None and p.is_dir() and is_semantickitti_dir(p):
        # Resolve the sequence's own label_map.yaml (SimGap exports) once rather than per scan.
        lmf = find_label_map(p)
        if lmf is not None:
            names = read_label_map(lmf)
    wanted = None if only is None else set(only)
    _check_labels_complete(p, files if wanted is None else [f for f in files if scan_name(f) in wanted])
    for i, f in enumerate(files):
        name = scan_name(f)
        if wanted is not None and name not in wanted:
            continue  # frame ids stay positions in the full listing
        cloud = load_point_cloud(
            f, id_to_labels=names, label_map=lm, layout=layout, columns=columns, drop_nonfinite=drop_nonfinite
        )
        frame_id = int(name) if name.isdigit() else i
        frame = cloud.to_frame(frame_id=frame_id, sensor=sensor, coordinate_frame=coordinate_frame)
        _log.debug("scan %s: %d points", name, len(cloud))
        yield name, frame
