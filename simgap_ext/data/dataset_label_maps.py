"""Dataset label maps: a dataset's own class ids onto the SimGap taxonomy (``config/label_maps/*.yaml``).

A label map file::

    name: nuscenes
    dataset: nuScenes-lidarseg raw class indices 0-31
    key: id                # "id" (integer class ids) or "name" (class strings, e.g. KITTI label_2 types)
    default: unlabeled     # optional: the class of ids the map does not list (else they are refused)
    labels:                # dataset id -> [dataset's own name, taxonomy class]; null class = ignored
      0: [noise, unlabeled]
      17: [vehicle.car, car]

Shipped maps are found by name (:func:`available_label_maps`); a user's own map is passed as a path and may also
be the short forms ``labels: {id: class}`` or a bare ``{id: class}`` mapping. Every class must be a taxonomy
class (aliases of ``unlabeled`` accepted). This is not the ``label_map.yaml`` beside a SimGap export
(:mod:`simgap_ext.data.label_map`), which names the ids SimGap itself wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from .taxonomy import UNLABELED, Taxonomy, default_taxonomy
from .yaml_io import read_yaml

__all__ = ["LABEL_MAPS_DIRNAME", "LabelMap", "available_label_maps", "load_label_map", "label_maps_dir"]

LABEL_MAPS_DIRNAME = "label_maps"
_MAX_KEY = 0xFFFFFFFF  # semantic ids are uint32 on disk


@dataclass(frozen=True)
class LabelMap:
    """One dataset's ids mapped onto the taxonomy.

    Attributes:
        name: the map's name (``semantickitti``, ``nuscenes``, ...).
        dataset: what the ids are.
        key: ``"id"`` (integer keys) or ``"name"`` (string keys).
        classes: dataset key -> taxonomy class, or ``None`` for a key whose points are ignored (KITTI DontCare).
        source_names: dataset key -> the dataset's own class name.
        default: taxonomy class of keys not listed, or ``None`` (unlisted keys are refused).
        path: the file the map was read from.
    """

    name: str
    dataset: str
    key: str
    classes: Mapping[Any, str | None]
    source_names: Mapping[Any, str] = field(default_factory=dict)
    default: str | None = None
    path: str = ""

    def class_of(self, key: int | str) -> str | None:
        """The taxonomy class of a dataset id / name.

        Raises:
            SimGapInputError: ``key`` is not in the map and the map has no ``default``.
        """
        if key in self.classes:
            return self.classes[key]
        if self.default is not None:
            return self.default
        raise SimGapInputError(f"{self.dataset_label}: id {key!r} is not a class of this dataset")

    @property
    def dataset_label(self) -> str:
        return f"label map {self.name!r}" + (f" ({self.path})" if self.path else "")

    def apply(self, ids: np.ndarray, *, what: str = "labels", taxonomy: Taxonomy | None = None):
        """Turn per-point dataset ids into taxonomy ids.

        Args:
            ids: (N,) integer dataset ids.
            what: how to call the array in errors (usually the label file).
            taxonomy: the taxonomy (default: the shipped one).

        Returns:
            ((N,) uint32 taxonomy semantic ids, {taxonomy id: class name} for the ids used). Ignored keys
            (``None`` class) become ``unlabeled``.

        Raises:
            SimGapInputError: ids the map does not list (without ``default``), naming up to five of them.
        """
        if self.key != "id":
            raise SimGapInputError(f"{self.dataset_label} maps class names, not integer ids")
        tax = taxonomy or default_taxonomy()
        arr = np.asarray(ids).reshape(-1)
        if arr.size and arr.dtype.kind not in "iu":
            raise SimGapInputError(f"{what}: class ids must be integers, got dtype {arr.dtype}")
        uniq, inverse = np.unique(arr, return_inverse=True)
        out_ids = np.empty(uniq.size, dtype=np.uint32)
        unknown: list[int] = []
        names: dict[int, str] = {}
        for j, raw in enumerate(uniq.tolist()):
            if raw in self.classes:
                cls = self.classes[raw]
            elif self.default is not None:
                cls = self.default
            else:
                unknown.append(int(raw))
                continue
            c = tax.get(cls if cls is not None else UNLABELED)
            out_ids[j] = c.id
            names[c.id] = c.name
        if unknown:
            counts = {u: int((arr == u).sum()) for u in unknown[:5]}
            shown = ", ".join(f"{u} ({n} points)" for u, n in counts.items())
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise SimGapInputError(
                f"{what}: ids {shown}{more} are not classes of {self.dataset_label}; "
                "pass the right --label-map or a map file that lists them"
            )
        return out_ids[inverse].astype(np.uint32), names


def label_maps_dir() -> Path:
    """Folder of the shipped label maps (``<config_dir>/label_maps``)."""
    from ..config import config_dir

    return config_dir() / LABEL_MAPS_DIRNAME


def available_label_maps() -> list[str]:
    """Names of the shipped label maps, sorted."""
    d = label_maps_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def load_label_map(name_or_path: str | Path, *, taxonomy: Taxonomy | None = None) -> LabelMap:
    """Load a shipped label map by name, or a label-map file.

    Args:
        name_or_path: a shipped map's name (``nuscenes``) or the path of a YAML file.
        taxonomy: the taxonomy the classes must belong to (default: the shipped one).

    Returns:
        The validated :class:`LabelMap`.

    Raises:
        SimGapInputError: unknown name (the message lists the shipped ones), unreadable/invalid file, ids that are
            not non-negative integers (``.inf``, floats, booleans), classes outside the taxonomy.
    """
    tax = taxonomy or default_taxonomy()
    text = str(name_or_path)
    p = Path(text)
    if not (p.suffix.lower() in (".yaml", ".yml") or p.exists() or "/" in text or "\\" in text):
        cand = label_maps_dir() / f"{text}.yaml"
        if not cand.is_file():
            names = ", ".join(available_label_maps()) or "none found"
            raise SimGapInputError(f"unknown label map {text!r} (shipped: {names}; or pass a YAML file)")
        p = cand
    return _parse(read_yaml(p, what="label map"), p, tax)


def _parse(doc: Any, p: Path, tax: Taxonomy) -> LabelMap:
    src = str(p)
    if isinstance(doc, Mapping) and "labels" in doc:
        meta, labels = doc, doc["labels"]
    else:
        meta, labels = {}, doc
    if not isinstance(labels, Mapping) or not labels:
        raise SimGapInputError(f"{src}: expected a non-empty 'labels' mapping of id -> taxonomy class")
    key_kind = meta.get("key", "id")
    if key_kind not in ("id", "name"):
        raise SimGapInputError(f"{src}: 'key' must be 'id' or 'name', got {key_kind!r}")
    classes: dict[Any, str | None] = {}
    source_names: dict[Any, str] = {}
    for k, v in labels.items():
        key = _key(k, key_kind, src)
        if isinstance(v, list):
            if len(v) != 2 or not isinstance(v[0], str):
                raise SimGapInputError(f"{src}: label {k!r} must be [dataset name, taxonomy class], got {v!r}")
            source_names[key], cls = v[0], v[1]
        else:
            cls = v
        if cls is not None:
            if not isinstance(cls, str):
                raise SimGapInputError(f"{src}: label {k!r} maps to {cls!r}, expected a taxonomy class name")
            try:
                cls = tax.get(cls).name
            except SimGapInputError as exc:
                raise SimGapInputError(f"{src}: label {k!r}: {exc}") from exc
        if key in classes:
            raise SimGapInputError(f"{src}: label {k!r} is listed twice")
        classes[key] = cls
        source_names.setdefault(key, str(k))
    default = meta.get("default")
    if default is not None:
        if not isinstance(default, str) or default not in tax:
            raise SimGapInputError(f"{src}: 'default' must be a taxonomy class, got {default!r}")
        default = tax.get(default).name
    name = meta.get("name", p.stem)
    dataset = meta.get("dataset", name)
    if not isinstance(name, str) or not isinstance(dataset, str):
        raise SimGapInputError(f"{src}: 'name' and 'dataset' must be strings")
    return LabelMap(name, dataset, key_kind, classes, source_names, default, src)


def _key(k: Any, kind: str, src: str) -> int | str:
    if kind == "name":
        if not isinstance(k, str) or not k:
            raise SimGapInputError(f"{src}: label key {k!r} must be a class name string")
        return k
    if isinstance(k, bool) or isinstance(k, float):
        raise SimGapInputError(f"{src}: label id {k!r} is not an integer")
    if isinstance(k, str):
        if not k.strip().isdigit():
            raise SimGapInputError(f"{src}: label id {k!r} is not a non-negative integer")
        k = int(k.strip())
    if not isinstance(k, int):
        raise SimGapInputError(f"{src}: label id {k!r} is not an integer")
    if not 0 <= k <= _MAX_KEY:
        raise SimGapInputError(f"{src}: label id {k} is outside [0, {_MAX_KEY}]")
    return k
