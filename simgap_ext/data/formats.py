"""Read any supported point-cloud file (:func:`load_point_cloud`) and write by suffix.

Reading, in order:

1. The layout: given (``layout=``) or detected (:func:`~simgap_ext.data.layouts.detect_layout`): the format for
   ``.npz``/``.ply``/``.pcd``/``.las``/``.laz``, for ``.bin`` the dataset layout (SemanticKITTI, nuScenes,
   KITTI object, KITTI-360, MCD) whose label files are read beside the scan.
2. Class names, first match wins: the ``id_to_labels`` argument (ids kept); a ``label_map=`` dataset map
   (``nuscenes``, a YAML file, a :class:`~simgap_ext.data.dataset_label_maps.LabelMap`: ids become taxonomy ids);
   names stored in the file itself (``.npz`` ``id_to_labels``, ``.ply``/``.pcd`` ``simgap_labels`` comment,
   ``.las`` SimGap VLR) or a ``label_map.yaml`` beside the file (for ``.bin`` also one level up, beside
   ``velodyne/``), as in SimGap's own exports (ids kept); the layout's shipped dataset map (SemanticKITTI raw ids for
   ``.bin`` + ``.label``, ASPRS classes for ``.las``; ids become taxonomy ids); ``class_<id>``.
3. Every name is normalised (``unlabelled``, ``unknown``, ... -> ``unlabeled``); the "no return" ``(0, 0, 0)``
   slots of organised real scans are dropped (dataset layouts other than SemanticKITTI, and SemanticKITTI-layout
   files read with an explicit ``label_map``, e.g. RELLIS-3D); an empty cloud is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import SimGapInputError
from .dataset_label_maps import LabelMap, load_label_map
from .label_map import find_label_map, read_label_map
from .layouts import BIN_LAYOUTS, DEFAULT_LABEL_MAPS, LAYOUTS, detect_layout, read_bin_layout
from .pointcloud import PointCloud
from .raw_bin import zero_return_mask
from .taxonomy import default_taxonomy, normalize_class_name

__all__ = ["SUPPORTED_SUFFIXES", "load_point_cloud", "write_point_cloud", "default_names_for", "LabelMapArg"]

_log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: tuple[str, ...] = (".bin", ".npz", ".ply", ".pcd", ".las", ".laz")
_SUPPORTED = ", ".join(SUPPORTED_SUFFIXES)

#: What ``label_map=`` accepts: a shipped map's name, a YAML path, or a loaded map.
LabelMapArg = str | Path | LabelMap | None


def _read_file(p: Path, layout: str, columns: Sequence[str] | None, lm: LabelMap | None) -> PointCloud:
    if columns is not None and layout not in BIN_LAYOUTS:
        raise SimGapInputError(f"{p}: --columns applies to raw .bin scans, not to {layout} files")
    if layout in BIN_LAYOUTS:
        if layout == "kitti_object":
            lm = lm if lm is not None else load_label_map("kitti_object")
            return read_bin_layout(p, layout, columns=columns, kitti_classes=_box_classes(lm))
        return read_bin_layout(p, layout, columns=columns)
    if layout == "npz":
        from .npz import read_npz

        return read_npz(p)
    if layout == "ply":
        from .ply import read_ply

        return read_ply(p)
    if layout == "pcd":
        from .pcd import read_pcd

        return read_pcd(p)
    if layout == "las":
        from .las import read_las

        return read_las(p)
    raise SimGapInputError(f"{p}: unknown layout {layout!r} (known: {', '.join(LAYOUTS)})")  # pragma: no cover


def _box_classes(lm: LabelMap):
    if lm.key != "name":
        raise SimGapInputError(f"{lm.dataset_label} maps integer ids; KITTI object boxes need a map keyed by box type")
    tax = default_taxonomy()

    def classes(box_type: str) -> int | None:
        cls = lm.class_of(box_type)
        return None if cls is None else tax.class_id(cls)

    return classes


def default_names_for(path: str | Path) -> dict[int, str]:
    """Class names of ``path``'s ids when neither the file nor a ``label_map.yaml`` names them: the taxonomy names
    of its layout's shipped dataset map, keyed by the dataset's ids (empty for formats without one)."""
    try:
        layout = detect_layout(path)
    except SimGapInputError:
        return {}
    name = DEFAULT_LABEL_MAPS.get(layout)
    if name is None or layout == "kitti_object":
        return {}
    lm = load_label_map(name)
    return {int(k): (v or "unlabeled") for k, v in lm.classes.items()}


def _label_map_dirs(p: Path) -> tuple[Path, ...]:
    # A SemanticKITTI sequence keeps label_map.yaml beside velodyne/, one level above the scan.
    return (p.parent, p.parent.parent) if p.suffix.lower() == ".bin" else (p.parent,)


def _as_label_map(label_map: LabelMapArg) -> LabelMap | None:
    if label_map is None or isinstance(label_map, LabelMap):
        return label_map
    return load_label_map(label_map)


def load_point_cloud(
    path: str | Path,
    *,
    id_to_labels: Mapping[int, str] | None = None,
    label_map: LabelMapArg = None,
    layout: str | None = None,
    columns: Sequence[str] | None = None,
    drop_nonfinite: bool = False,
    allow_empty: bool = False,
) -> PointCloud:
    """Read a point cloud (steps in the module docstring).

    Args:
        path: the file.
        id_to_labels: class names that override everything else; the file's ids are kept.
        label_map: a dataset label map (shipped name, YAML path or :class:`LabelMap`) turning the file's ids into
            taxonomy ids and names; overrides names stored in or beside the file.
        layout: force a layout (:data:`~simgap_ext.data.layouts.LAYOUTS`) instead of detecting it.
        columns: float columns of a raw ``.bin`` scan (e.g. ``("x", "y", "z", "intensity", "ring")``).
        drop_nonfinite: drop NaN/inf points instead of raising.
        allow_empty: return a 0-point cloud instead of refusing it.

    Returns:
        A validated :class:`PointCloud` whose ``id_to_labels`` names every semantic id in use.

    Raises:
        SimGapInputError: missing/unreadable/corrupt file, unknown suffix or layout, values that do not fit the
            layout, ids the label map does not list, NaN points, labels that do not match the points, an empty
            cloud; the message names the file.
    """
    p = Path(path)
    if not p.exists():
        raise SimGapInputError(f"{p}: no such file")
    if p.is_dir():
        raise SimGapInputError(f"{p}: is a directory, expected a point-cloud file (use iter_scans for directories)")
    if p.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise SimGapInputError(f"{p}: unsupported point-cloud format {p.suffix!r} (supported: {_SUPPORTED})")
    lay = detect_layout(p) if layout is None else layout
    if lay not in LAYOUTS:
        raise SimGapInputError(f"unknown layout {lay!r} (known: {', '.join(LAYOUTS)})")
    lm = _as_label_map(label_map)
    cloud = _read_file(p, lay, columns, lm)
    own_names = False  # SimGap's own exports (and files that name their ids) keep their ids and every point
    if lay == "kitti_object":
        tax = default_taxonomy()
        cloud.id_to_labels = {c.id: c.name for c in tax}
    elif id_to_labels is not None:
        cloud.id_to_labels = {int(k): str(v) for k, v in id_to_labels.items()}
        own_names = True
    elif lm is not None:
        _apply_map(cloud, lm, p)
    else:
        names = dict(cloud.id_to_labels)
        lmf = find_label_map(*_label_map_dirs(p))
        if lmf is not None:
            names = {**read_label_map(lmf), **names}  # names stored in the file itself win over neighbours
        if names:
            cloud.id_to_labels = names
            own_names = True
        elif lay in DEFAULT_LABEL_MAPS and cloud.semantic is not None:
            _apply_map(cloud, load_label_map(DEFAULT_LABEL_MAPS[lay]), p)
    cloud.id_to_labels = {k: normalize_class_name(v) for k, v in cloud.id_to_labels.items()}
    # Organised real scans (MCD, RELLIS-3D read with --label-map rellis3d, ...) keep (0, 0, 0) rows for "no
    # return"; hand-made and SimGap-written SemanticKITTI files may hold a genuine origin point and keep it.
    if lay in BIN_LAYOUTS and not own_names and (lay != "semantickitti" or lm is not None):
        cloud = _drop_zero_returns(cloud, p)
    cloud = cloud.validate(str(p), drop_nonfinite=drop_nonfinite)
    if len(cloud) == 0 and not allow_empty:
        raise SimGapInputError(f"{p}: empty point cloud (0 points)")
    # Keep only the ids in use so that frames do not carry the whole dataset table.
    used = set(np.unique(cloud.semantic).tolist()) if cloud.semantic is not None else {0}
    cloud.id_to_labels = {k: v for k, v in cloud.id_to_labels.items() if k in used}
    _log.debug("read %s (%s): %d points", p, lay, len(cloud))
    return cloud


def _apply_map(cloud: PointCloud, lm: LabelMap, p: Path) -> None:
    if cloud.semantic is None:
        cloud.id_to_labels = {0: "unlabeled"}
        return
    if lm.key != "id":
        raise SimGapInputError(f"{p}: {lm.dataset_label} maps box types, not the integer ids this file holds")
    cloud.semantic, cloud.id_to_labels = lm.apply(cloud.semantic, what=str(p))


def _drop_zero_returns(cloud: PointCloud, p: Path) -> PointCloud:
    zero = zero_return_mask(cloud.points)
    if not zero.any():
        return cloud
    keep = ~zero
    _log.info("%s: dropped %d 'no return' (0, 0, 0) slots of %d", p, int(zero.sum()), len(zero))
    return PointCloud(
        cloud.points[keep],
        None if cloud.intensity is None else cloud.intensity[keep],
        None if cloud.semantic is None else cloud.semantic[keep],
        None if cloud.instance is None else cloud.instance[keep],
        dict(cloud.id_to_labels),
    )


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
