"""Read any supported point-cloud file by its suffix (:func:`load_point_cloud`) and write by suffix.

Class names, first match wins: the ``id_to_labels`` argument; names stored in the file itself (``.npz``
``id_to_labels``, ``.ply``/``.pcd`` ``simgap_labels`` header comment, ``.las`` SimGap VLR); a
``label_map.yaml`` beside the file (for ``.bin`` also one level up, beside ``velodyne/``); the format's default
table (SemanticKITTI learning names for ``.bin``, ASPRS classes for ``.las``/``.laz``); ``class_<id>``.

Semantic id 0 is always ``unlabeled`` unless a map names it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import SimGapInputError
from .label_map import (
    ASPRS_CLASS_NAMES,
    SEMANTIC_KITTI_LEARNING_NAMES,
    find_label_map,
    read_label_map,
)
from .pointcloud import PointCloud

__all__ = ["SUPPORTED_SUFFIXES", "load_point_cloud", "write_point_cloud", "default_names_for"]

_log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: tuple[str, ...] = (".bin", ".npz", ".ply", ".pcd", ".las", ".laz")
_SUPPORTED = ", ".join(SUPPORTED_SUFFIXES)


def _read_raw(p: Path) -> PointCloud:
    suffix = p.suffix.lower()
    if suffix == ".bin":
        from .semantickitti import load_semantickitti_scan

        return load_semantickitti_scan(p)
    if suffix == ".npz":
        from .npz import read_npz

        return read_npz(p)
    if suffix == ".ply":
        from .ply import read_ply

        return read_ply(p)
    if suffix == ".pcd":
        from .pcd import read_pcd

        return read_pcd(p)
    if suffix in (".las", ".laz"):
        from .las import read_las

        return read_las(p)
    raise SimGapInputError(f"{p}: unsupported point-cloud format {suffix!r} (supported: {_SUPPORTED})")


def default_names_for(path: str | Path) -> dict[int, str]:
    """Class names used for ``path`` when neither the file nor a ``label_map.yaml`` names its ids."""
    suffix = Path(path).suffix.lower()
    if suffix == ".bin":
        return dict(SEMANTIC_KITTI_LEARNING_NAMES)
    if suffix in (".las", ".laz"):
        return dict(ASPRS_CLASS_NAMES)
    return {}


def _label_map_dirs(p: Path) -> tuple[Path, ...]:
    # A SemanticKITTI sequence keeps label_map.yaml beside velodyne/, one level above the scan.
    return (p.parent, p.parent.parent) if p.suffix.lower() == ".bin" else (p.parent,)


def load_point_cloud(
    path: str | Path,
    *,
    id_to_labels: Mapping[int, str] | None = None,
    drop_nonfinite: bool = False,
) -> PointCloud:
    """Read a point cloud, choosing the reader by suffix (table in the module docstring).

    Args:
        path: the file.
        id_to_labels: class names that override everything else (file, ``label_map.yaml``, defaults).
        drop_nonfinite: drop NaN/inf points instead of raising.

    Returns:
        A validated :class:`PointCloud` whose ``id_to_labels`` names every semantic id in use.

    Raises:
        SimGapInputError: missing/unreadable/corrupt file, unknown suffix, missing x/y/z, NaN points,
            labels that do not match the points; the message names the file.
    """
    p = Path(path)
    if not p.exists():
        raise SimGapInputError(f"{p}: no such file")
    if p.is_dir():
        raise SimGapInputError(f"{p}: is a directory, expected a point-cloud file (use iter_scans for directories)")
    cloud = _read_raw(p)
    if id_to_labels is not None:
        names = {int(k): str(v) for k, v in id_to_labels.items()}
    else:
        names = default_names_for(p)
        lm = find_label_map(*_label_map_dirs(p))
        if lm is not None:
            names.update(read_label_map(lm))
        names.update(cloud.id_to_labels)  # names stored in the file itself win over neighbours
    cloud.id_to_labels = names
    cloud = cloud.validate(str(p), drop_nonfinite=drop_nonfinite)
    # Keep only the ids in use so that frames do not carry the whole SemanticKITTI table.
    used = set(np.unique(cloud.semantic).tolist()) if cloud.semantic is not None else {0}
    cloud.id_to_labels = {k: v for k, v in cloud.id_to_labels.items() if k in used}
    _log.debug("read %s: %d points", p, len(cloud))
    return cloud


def write_point_cloud(path: str | Path, cloud: PointCloud) -> Path:
    """Write ``cloud`` in the format given by the suffix of ``path`` (``.npz``, ``.ply``, ``.pcd``, ``.las``,
    ``.laz``, or ``.bin`` = points + intensity only), atomically."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        from .npz import write_npz

        return write_npz(p, cloud)
    if suffix == ".ply":
        from .ply import write_ply

        return write_ply(p, cloud)
    if suffix == ".pcd":
        from .pcd import write_pcd

        return write_pcd(p, cloud)
    if suffix in (".las", ".laz"):
        from .las import write_las

        return write_las(p, cloud)
    if suffix == ".bin":
        from .semantickitti import write_bin

        return write_bin(p, cloud.points, cloud.intensity)
    raise SimGapInputError(f"{p}: unsupported point-cloud format {suffix!r} (supported: {_SUPPORTED})")
