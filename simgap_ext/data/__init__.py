"""Point-cloud readers and writers: SemanticKITTI ``.bin``/``.label``, ``.npz``, ``.ply``, ``.pcd``, ``.las``/``.laz``.

Everything here is plain Python + NumPy (no Warp, no omni). See ``docs/data.md`` for the formats.
"""

from __future__ import annotations

from .atomic import atomic_write_bytes
from .dataset_label_maps import LabelMap, available_label_maps, load_label_map
from .formats import SUPPORTED_SUFFIXES, load_point_cloud, write_point_cloud
from .label_map import (
    ASPRS_CLASS_NAMES,
    LABEL_MAP_FILENAME,
    SEMANTIC_KITTI_LEARNING_NAMES,
    SEMANTIC_KITTI_RAW_NAMES,
    read_label_map,
    write_label_map,
)
from .layouts import LAYOUTS, detect_layout, scan_name
from .npz import read_npz, write_npz
from .pointcloud import PointCloud
from .scans import count_scans, iter_scans, list_scans
from .semantickitti import (
    load_semantickitti_scan,
    pack_labels,
    read_bin,
    read_label,
    unpack_labels,
    write_bin,
    write_semantickitti_scan,
)
from .taxonomy import UNLABELED, Taxonomy, load_taxonomy, normalize_class_name, parent_of, resolve

__all__ = [
    "UNLABELED",
    "LAYOUTS",
    "detect_layout",
    "scan_name",
    "LabelMap",
    "Taxonomy",
    "available_label_maps",
    "load_label_map",
    "load_taxonomy",
    "normalize_class_name",
    "parent_of",
    "resolve",
    "ASPRS_CLASS_NAMES",
    "LABEL_MAP_FILENAME",
    "SEMANTIC_KITTI_LEARNING_NAMES",
    "SEMANTIC_KITTI_RAW_NAMES",
    "SUPPORTED_SUFFIXES",
    "PointCloud",
    "atomic_write_bytes",
    "count_scans",
    "iter_scans",
    "list_scans",
    "load_point_cloud",
    "load_semantickitti_scan",
    "pack_labels",
    "read_bin",
    "read_label",
    "read_label_map",
    "read_npz",
    "unpack_labels",
    "write_bin",
    "write_label_map",
    "write_npz",
    "write_ply",
    "write_pcd",
    "write_las",
    "write_point_cloud",
    "write_semantickitti_scan",
]


def __getattr__(name: str):  # noqa: ANN202 - module-level lazy attribute hook
    # Format writers whose libraries (plyfile, pypcd4, laspy) are imported only when used.
    if name == "write_ply":
        from .ply import write_ply

        return write_ply
    if name == "write_pcd":
        from .pcd import write_pcd

        return write_pcd
    if name == "write_las":
        from .las import write_las

        return write_las
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
