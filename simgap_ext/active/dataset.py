"""Samples for training and scoring: SimGap manifests and scan directories, read through :mod:`simgap_ext.data`.

A :class:`Sample` names one scan (and its label file); :func:`load_samples` lists them from a manifest
(``simgap mix`` output, a real manifest or a generation run: rows without a path are skipped; synthetic rows only
when ``accepted``) or from a directory of scans (a SemanticKITTI sequence, or any folder the package readers
read). :class:`ClassVocabulary` maps class names to training indices (``unlabeled`` and unknown names -> -1,
ignored by the loss and the IoU). :class:`ScanCache` reads each scan once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.formats import load_point_cloud
from ..data.label_map import SEMANTIC_KITTI_LEARNING_NAMES, find_label_map, read_label_map
from ..data.layouts import detect_layout
from ..data.manifest import read_manifest, resolve_row_path
from ..data.scans import list_scans
from ..data.semantickitti import find_label_file, read_bin, read_label
from ..errors import SimGapInputError

__all__ = ["Sample", "ClassVocabulary", "ScanCache", "load_samples", "resolve_source", "IGNORE_INDEX"]

#: Label index of points the loss and metrics ignore.
IGNORE_INDEX = -1


@dataclass(frozen=True)
class Sample:
    """One scan.

    Attributes:
        path: the scan file.
        label_path: its ``.label`` file (``None``: labels inside the file, or none).
        name: sample name (file stem).
        scene: grouping key (sequence directory or source manifest), used to group the oracle queue.
        domain: ``real`` or ``synthetic``.
    """

    path: str
    label_path: str | None = None
    name: str = ""
    scene: str = ""
    domain: str = "real"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Sample:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: d.get(k) for k in ("path", "label_path", "name", "scene", "domain") if k in d})


def _scene_of(path: Path) -> str:
    # velodyne/000001.bin -> the sequence directory's name; a flat folder -> the folder's name
    parent = path.parent
    return parent.parent.name if parent.name == "velodyne" else parent.name


def _from_manifest(path: Path, domain: str | None) -> list[Sample]:
    out = []
    for row in read_manifest(path):
        if row.get("domain") == "synthetic" and row.get("decision") != "accepted":
            continue
        if domain is not None and row.get("domain") != domain:
            continue
        scan = resolve_row_path(path, row, "path")
        if scan is None:
            continue
        label = resolve_row_path(path, row, "label_path")
        out.append(
            Sample(
                str(scan),
                None if label is None else str(label),
                str(row.get("name") or scan.stem),
                str(row.get("source_manifest") or _scene_of(scan)),
                str(row.get("domain", "real")),
            )
        )
    return out


def resolve_source(source: str | Path) -> Path:
    """What a scan source names: the ``manifest.jsonl`` of a run directory (one without ``velodyne/`` of its own),
    else the path itself (a manifest ``.jsonl`` or a scan directory).

    Raises:
        SimGapInputError: the source does not exist.
    """
    p = Path(source)
    if not p.exists():
        raise SimGapInputError(f"{p}: no such file or directory")
    if p.is_dir() and (p / "manifest.jsonl").is_file() and not (p / "velodyne").is_dir():
        p = p / "manifest.jsonl"
    return p


def load_samples(source: str | Path, *, domain: str | None = None) -> list[Sample]:
    """List the samples of a manifest (``.jsonl``, or a run directory holding ``manifest.jsonl``) or a scan
    directory.

    Args:
        source: the manifest or directory.
        domain: keep only rows of this domain (manifests only; ``None``: all).

    Returns:
        Samples in manifest / natural file order.

    Raises:
        SimGapInputError: the source does not exist or holds no scan.
    """
    p = resolve_source(source)
    if p.is_file() and p.suffix == ".jsonl":
        samples = _from_manifest(p, domain)
    else:
        files = list_scans(p)
        samples = []
        for f in files:
            label = find_label_file(f) if f.suffix.lower() == ".bin" else None
            samples.append(Sample(str(f), None if label is None else str(label), f.stem, _scene_of(f)))
    if not samples:
        raise SimGapInputError(f"{source}: no scans to use")
    return samples


class ClassVocabulary:
    """Class names <-> training indices.

    Args:
        names: the classes to learn, in index order (``unlabeled`` is never one of them).
    """

    IGNORED = ("unlabeled",)

    def __init__(self, names: Sequence[str]) -> None:
        clean = [str(n) for n in names if str(n) not in self.IGNORED]
        if not clean:
            raise SimGapInputError("no classes to learn (every point is unlabeled)")
        if len(set(clean)) != len(clean):
            raise SimGapInputError(f"duplicate class names in {clean}")
        self.names: list[str] = clean
        self._index = {n: i for i, n in enumerate(clean)}

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Index of a class name (``IGNORE_INDEX`` when not learnt)."""
        return self._index.get(str(name), IGNORE_INDEX)

    def encode(self, semantic: np.ndarray, id_to_name: Mapping[int, str]) -> np.ndarray:
        """(N,) semantic ids -> (N,) int64 class indices (unnamed/unlearnt ids -> ``IGNORE_INDEX``)."""
        sem = np.asarray(semantic).astype(np.int64)
        ids, inv = np.unique(sem, return_inverse=True)
        lut = np.array([self.index(id_to_name.get(int(i), "")) for i in ids], dtype=np.int64)
        return lut[inv.reshape(-1)] if ids.size else np.zeros(0, dtype=np.int64)

    def to_list(self) -> list[str]:
        """The names (JSON-ready)."""
        return list(self.names)

    @classmethod
    def from_samples(cls, samples: Iterable[Sample], cache: ScanCache) -> ClassVocabulary:
        """The classes seen in labelled samples (sorted by name)."""
        seen: set[str] = set()
        for s in samples:
            seen.update(cache.class_names(s))
        return cls(sorted(seen))


def _names_for(path: Path) -> dict[int, str]:
    names = dict(SEMANTIC_KITTI_LEARNING_NAMES) if path.suffix.lower() == ".bin" else {}
    lm = find_label_map(path.parent, path.parent.parent)
    if lm is not None:
        names.update(read_label_map(lm))
    return names


class ScanCache:
    """Reads scans once: ``(N, 4)`` float32 points and per-point class names (semantic ids + id -> name).

    Args:
        max_items: scans kept in memory (least recently used are dropped beyond it).
    """

    def __init__(self, max_items: int = 4096) -> None:
        self.max_items = int(max_items)
        self._data: dict[tuple[str, str | None], tuple[np.ndarray, np.ndarray | None, dict[int, str]]] = {}

    def _load(self, s: Sample) -> tuple[np.ndarray, np.ndarray | None, dict[int, str]]:
        key = (s.path, s.label_path)  # an annotator's answer is another labelling of the same scan
        if key in self._data:
            val = self._data.pop(key)
            self._data[key] = val
            return val
        p = Path(s.path)
        # Only SemanticKITTI-layout .bin files take the fast path; nuScenes points.bin, KITTI-360, MCD... need the
        # layout-aware reader (their column counts and label files differ).
        if p.suffix.lower() == ".bin" and detect_layout(p) == "semantickitti":
            xyz, rem = read_bin(p)
            finite = np.isfinite(xyz).all(axis=1)
            sem = None
            lp = Path(s.label_path) if s.label_path else find_label_file(p)
            if lp is not None:
                sem = read_label(lp, xyz.shape[0])[0].astype(np.int64)
            names = _names_for(p)
            if not finite.all():
                xyz, rem = xyz[finite], rem[finite]
                sem = None if sem is None else sem[finite]
        else:
            cloud = load_point_cloud(p, drop_nonfinite=True)
            xyz = cloud.points
            rem = cloud.intensity if cloud.intensity is not None else np.zeros(len(cloud), np.float32)
            sem = None if cloud.semantic is None else np.asarray(cloud.semantic).astype(np.int64)
            names = dict(cloud.id_to_labels)
        pts = np.concatenate([xyz, np.asarray(rem, np.float32).reshape(-1, 1)], axis=1).astype(np.float32)
        val = (pts, sem, names)
        self._data[key] = val
        while len(self._data) > self.max_items:
            self._data.pop(next(iter(self._data)))
        return val

    def points(self, s: Sample) -> np.ndarray:
        """(N, 4) float32 x, y, z, remission (non-finite points dropped)."""
        return self._load(s)[0]

    def class_names(self, s: Sample) -> set[str]:
        """Names of the classes with at least one point (empty for an unlabelled scan)."""
        _, sem, names = self._load(s)
        if sem is None:
            return set()
        return {names.get(int(i), f"class_{int(i)}") for i in np.unique(sem)} - set(ClassVocabulary.IGNORED)

    def labels(self, s: Sample, vocab: ClassVocabulary) -> np.ndarray:
        """(N,) int64 class indices (``IGNORE_INDEX`` where unlabeled/unknown).

        Raises:
            SimGapInputError: the scan has no labels.
        """
        _, sem, names = self._load(s)
        if sem is None:
            raise SimGapInputError(f"{s.path}: no labels (expected a .label file or labels in the file)")
        return vocab.encode(sem, names)


def write_samples(path: str | Path, samples: Iterable[Sample]) -> None:
    """Write samples as JSON Lines (used by checkpoints)."""
    Path(path).write_text("".join(json.dumps(s.to_dict()) + "\n" for s in samples))
