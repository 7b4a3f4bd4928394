"""Iterate over the scans of a file, a directory of point-cloud files, or a SemanticKITTI sequence.

Scans are yielded in natural order of their file stems (``2`` before ``10``; SemanticKITTI's zero-padded names
sort the same either way) and named by stem, so that a real scan and a synthetic scan of the same place pair by
name (``simgap score``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import SimGapInputError
from .formats import SUPPORTED_SUFFIXES, load_point_cloud
from .label_map import SEMANTIC_KITTI_LEARNING_NAMES, find_label_map, read_label_map

__all__ = ["list_scans", "iter_scans", "count_scans", "is_semantickitti_dir"]

_log = logging.getLogger(__name__)
_DIGITS = re.compile(r"(\d+)")


def _natural_key(p: Path) -> tuple[Any, ...]:
    parts = _DIGITS.split(p.name)
    return tuple((0, int(s), "") if s.isdigit() else (1, 0, s) for s in parts if s)


def is_semantickitti_dir(path: str | Path) -> bool:
    """Whether ``path`` is a SemanticKITTI sequence directory (has a ``velodyne/`` sub-directory)."""
    return (Path(path) / "velodyne").is_dir()


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
    if is_semantickitti_dir(p):
        scan_dir = p / "velodyne"
        files = [f for f in scan_dir.iterdir() if f.is_file() and f.suffix.lower() == ".bin"]
    else:
        scan_dir = p
        files = [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES]
    if not files:
        raise SimGapInputError(f"no point clouds found in {scan_dir}")
    files.sort(key=_natural_key)
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:
            raise SimGapInputError(f"{scan_dir}: two scans are named {f.stem!r} ({seen[f.stem].name}, {f.name})")
        seen[f.stem] = f
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
        id_to_labels: class names overriding ``label_map.yaml`` and the defaults.
        drop_nonfinite: drop NaN/inf points instead of raising.
        coordinate_frame: ``"sensor"`` or ``"world"``, stored in each frame.
        only: scan names (stems) to read; the other files are not opened (``None``: every scan).

    Yields:
        (file stem, validated frame dict). ``frame_id`` is the stem's integer value when the stem is all
        digits (``000012`` -> 12), else the scan's position.

    Raises:
        SimGapInputError: see :func:`list_scans` and :func:`~simgap_ext.data.load_point_cloud`.
    """
    p = Path(path)
    files = list_scans(p)
    names = None if id_to_labels is None else dict(id_to_labels)
    if names is None and p.is_dir() and is_semantickitti_dir(p):
        # Resolve the sequence's label map once rather than per scan.
        names = dict(SEMANTIC_KITTI_LEARNING_NAMES)
        lm = find_label_map(p)
        if lm is not None:
            names.update(read_label_map(lm))
    wanted = None if only is None else set(only)
    _check_labels_complete(p, files if wanted is None else [f for f in files if f.stem in wanted])
    for i, f in enumerate(files):
        if wanted is not None and f.stem not in wanted:
            continue  # frame ids stay positions in the full listing
        cloud = load_point_cloud(f, id_to_labels=names, drop_nonfinite=drop_nonfinite)
        frame_id = int(f.stem) if f.stem.isdigit() else i
        frame = cloud.to_frame(frame_id=frame_id, sensor=sensor, coordinate_frame=coordinate_frame)
        _log.debug("scan %s: %d points", f.stem, len(cloud))
        yield f.stem, frame
