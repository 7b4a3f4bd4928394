"""Semantic id -> class name maps: the SemanticKITTI tables and ``label_map.yaml`` files.

A ``label_map.yaml`` follows semantic-kitti.yaml: a top-level ``labels`` mapping of integer id to name::

    labels:
      0: unlabeled
      10: car

A bare top-level ``{id: name}`` mapping is accepted too. SimGap exports always write one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from ..errors import SimGapInputError
from .atomic import atomic_write_bytes
from .yaml_io import read_yaml

__all__ = [
    "LABEL_MAP_FILENAME",
    "SEMANTIC_KITTI_RAW_NAMES",
    "SEMANTIC_KITTI_LEARNING_NAMES",
    "ASPRS_CLASS_NAMES",
    "read_label_map",
    "write_label_map",
    "find_label_map",
]

LABEL_MAP_FILENAME = "label_map.yaml"

#: Raw SemanticKITTI label ids and their names (semantic-kitti.yaml ``labels``).
SEMANTIC_KITTI_RAW_NAMES: dict[int, str] = {
    0: "unlabeled", 1: "outlier", 10: "car", 11: "bicycle", 13: "bus", 15: "motorcycle", 16: "on-rails",
    18: "truck", 20: "other-vehicle", 30: "person", 31: "bicyclist", 32: "motorcyclist", 40: "road",
    44: "parking", 48: "sidewalk", 49: "other-ground", 50: "building", 51: "fence", 52: "other-structure",
    60: "lane-marking", 70: "vegetation", 71: "trunk", 72: "terrain", 80: "pole", 81: "traffic-sign",
    99: "other-object", 252: "moving-car", 253: "moving-bicyclist", 254: "moving-person",
    255: "moving-motorcyclist", 256: "moving-on-rails", 257: "moving-bus", 258: "moving-truck",
    259: "moving-other-vehicle",
}  # fmt: skip

#: Raw SemanticKITTI id -> name of the learning class it maps to (semantic-kitti.yaml ``learning_map``), so
#: that moving and static cars are one class, bus is other-vehicle, outliers are unlabeled, and so on. These
#: are the names used when a SemanticKITTI directory carries no label_map.yaml: the 19 benchmark classes are
#: what models are trained and compared on.
SEMANTIC_KITTI_LEARNING_NAMES: dict[int, str] = {
    0: "unlabeled", 1: "unlabeled", 10: "car", 11: "bicycle", 13: "other-vehicle", 15: "motorcycle",
    16: "other-vehicle", 18: "truck", 20: "other-vehicle", 30: "person", 31: "bicyclist", 32: "motorcyclist",
    40: "road", 44: "parking", 48: "sidewalk", 49: "other-ground", 50: "building", 51: "fence",
    52: "unlabeled", 60: "road", 70: "vegetation", 71: "trunk", 72: "terrain", 80: "pole", 81: "traffic-sign",
    99: "unlabeled", 252: "car", 253: "bicyclist", 254: "person", 255: "motorcyclist", 256: "other-vehicle",
    257: "other-vehicle", 258: "truck", 259: "other-vehicle",
}  # fmt: skip

#: ASPRS LAS 1.4 standard point classes (used for .las/.laz classification codes without a label map).
ASPRS_CLASS_NAMES: dict[int, str] = {
    0: "unlabeled", 1: "unclassified", 2: "ground", 3: "low_vegetation", 4: "medium_vegetation",
    5: "high_vegetation", 6: "building", 7: "low_noise", 9: "water", 10: "rail", 11: "road_surface",
    13: "wire_guard", 14: "wire_conductor", 15: "transmission_tower", 16: "wire_connector", 17: "bridge_deck",
    18: "high_noise",
}  # fmt: skip


def read_label_map(path: str | Path) -> dict[int, str]:
    """Read a ``label_map.yaml`` (or semantic-kitti.yaml).

    Args:
        path: the YAML file.

    Returns:
        Semantic id -> class name.

    Raises:
        SimGapInputError: missing file, invalid YAML, non-integer ids or non-string names.
    """
    p = Path(path)
    doc = read_yaml(p, what="label map")  # bounded size; invalid, non-UTF-8 or too deeply nested YAML refused
    if isinstance(doc, Mapping) and "labels" in doc:
        doc = doc["labels"]
    if not isinstance(doc, Mapping):
        raise SimGapInputError(f"{p}: expected a 'labels' mapping of id -> name")
    out: dict[int, str] = {}
    for k, v in doc.items():
        key = _label_id(p, k)
        if not isinstance(v, str) or not v:
            raise SimGapInputError(f"{p}: label {key} has no class name (got {v!r})")
        out[key] = v
    return out


def _label_id(p: Path, k: object) -> int:
    # YAML turns `.inf`, `1.5` and `yes` into float/bool keys: refuse them instead of truncating or overflowing
    if isinstance(k, bool) or not isinstance(k, (int, str)):
        raise SimGapInputError(f"{p}: label id {k!r} is not an integer")
    text = str(k).strip()
    if not text.lstrip("-").isdigit() or len(text) > 12:
        raise SimGapInputError(f"{p}: label id {k!r} is not an integer")
    key = int(text)
    if key < 0:
        raise SimGapInputError(f"{p}: label id {key} is negative")
    if key > 0xFFFFFFFF:
        raise SimGapInputError(f"{p}: label id {key} does not fit a uint32 semantic id")
    return key


def write_label_map(path: str | Path, id_to_labels: Mapping[int, str | Mapping[str, str]]) -> Path:
    """Write ``id_to_labels`` as a ``label_map.yaml`` (``labels: {id: name}``), atomically.

    Args:
        path: destination file.
        id_to_labels: id -> name, or id -> ``{"class": name}`` as in a frame's ``idToLabels``.

    Returns:
        The path written.
    """
    labels: dict[int, str] = {}
    for k, v in id_to_labels.items():
        labels[int(k)] = v if isinstance(v, str) else str(v["class"])
    text = "# SimGap label map: semantic id -> class name (semantic-kitti.yaml layout)\n"
    text += yaml.safe_dump({"labels": dict(sorted(labels.items()))}, sort_keys=False, allow_unicode=True)
    p = Path(path)
    atomic_write_bytes(p, text.encode("utf-8"))
    return p


def find_label_map(*dirs: Path) -> Path | None:
    """The first ``label_map.yaml`` found in ``dirs`` (in order), or ``None``."""
    for d in dirs:
        cand = Path(d) / LABEL_MAP_FILENAME
        if cand.is_file():
            return cand
    return None
