"""The oracle queue (what a person should label) and the oracles that answer it.

The queue is a JSON Lines file, one request per line, sorted by predicted main class, then scene, then score
(highest first) so that an annotator labels similar things in a row::

    {"round": 2, "path": "/data/pool/velodyne/000123.bin", "name": "000123", "scene": "08",
     "region": {"kind": "voxel", "size": 5.0, "cell": [2, -1], "bounds": [10.0, -5.0, 15.0, 0.0]},
     "points": 1834, "main_class": "vehicle", "predicted_classes": {"vehicle": 1200, "ground": 634},
     "entropy": 0.71, "score": 0.71, "label_path": "/data/pool/labels/000123.label"}

``region.kind`` is ``scan`` (label every point) or ``voxel`` (the points with ``floor(x / size), floor(y / size)``
equal to ``cell``; ``bounds`` is the same cell in metres: x0, y0, x1, y1). Answers are SemanticKITTI ``.label`` files:
:class:`LabelFileOracle` reads ``<answers>/<name>.label`` (or ``<answers>/labels/<name>.label``);
:class:`SimulatedOracle` reads the pool's own ground-truth labels (experiments and tests).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..data.atomic import atomic_write_bytes
from ..data.semantickitti import find_label_file, read_label
from ..errors import SimGapInputError
from .dataset import Sample

__all__ = ["write_queue", "read_queue", "region_mask", "SimulatedOracle", "LabelFileOracle"]


def _sort_key(item: Mapping[str, Any]) -> tuple[Any, ...]:
    return (str(item.get("main_class", "")), str(item.get("scene", "")), -float(item.get("score", 0.0)),
            str(item.get("path", "")), tuple(item.get("region", {}).get("cell", ())))  # fmt: skip


def write_queue(path: str | Path, items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Write the queue (atomically), grouped by main class and scene.

    Returns:
        The items in file order.
    """
    rows = sorted((dict(i) for i in items), key=_sort_key)
    atomic_write_bytes(Path(path), "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
    return rows


def read_queue(path: str | Path) -> list[dict[str, Any]]:
    """Read a queue file.

    Raises:
        SimGapInputError: missing file or a line that is not a JSON object with ``path`` and ``region``.
    """
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as exc:
        raise SimGapInputError(f"{p}: cannot read the oracle queue ({exc.strerror or exc})") from exc
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SimGapInputError(f"{p}:{n}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or "path" not in row or "region" not in row:
            raise SimGapInputError(f"{p}:{n}: a queue row needs 'path' and 'region'")
        out.append(row)
    return out


def region_mask(points: np.ndarray, region: Mapping[str, Any]) -> np.ndarray:
    """(N,) bool mask of the points a queue region covers.

    Raises:
        SimGapInputError: unknown region kind.
    """
    kind = region.get("kind")
    n = np.asarray(points).shape[0]
    if kind == "scan":
        return np.ones(n, dtype=bool)
    if kind == "voxel":
        size = float(region["size"])
        cx, cy = (int(v) for v in region["cell"])
        cells = np.floor(np.asarray(points)[:, :2] / size).astype(np.int64)
        return (cells[:, 0] == cx) & (cells[:, 1] == cy)
    raise SimGapInputError(f"unknown region kind {kind!r} (scan or voxel)")


class SimulatedOracle:
    """Answers from ground truth: the pool scan's own ``.label`` file (:attr:`Sample.label_path`)."""

    name = "simulated"

    def label_file(self, sample: Sample) -> Path | None:
        """The answer's label file (``None`` when the scan has none)."""
        if sample.label_path:
            return Path(sample.label_path)
        return find_label_file(sample.path)


class LabelFileOracle:
    """Answers written by annotators: ``<answers>/<name>.label`` or ``<answers>/labels/<name>.label``
    (SemanticKITTI ``.label`` files with one label per point of the scan; only the requested region is used).

    Args:
        answers: the directory the labelling tool writes to.
    """

    name = "files"

    def __init__(self, answers: str | Path) -> None:
        self.answers = Path(answers)

    def label_file(self, sample: Sample) -> Path | None:
        """The annotator's file for ``sample`` (``None`` when not written yet)."""
        for cand in (self.answers / f"{sample.name}.label", self.answers / "labels" / f"{sample.name}.label"):
            if cand.is_file():
                return cand
        return None


def read_answer(oracle: SimulatedOracle | LabelFileOracle, sample: Sample, n_points: int) -> np.ndarray | None:
    """(N,) uint32 semantic ids of an answered request, or ``None`` when unanswered."""
    f = oracle.label_file(sample)
    if f is None:
        return None
    return read_label(f, n_points)[0]
