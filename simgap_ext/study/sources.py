"""The scan pools of a composition study: real train/test stretches, gated and ungated synthetic sets.

Every pool is a list of :class:`~simgap_ext.active.dataset.Sample` plus one manifest-like row per sample
(``domain``, ``decision``, ``class_points``) so that :mod:`simgap_ext.pipeline.mixing` can bucket it. Class names
are rolled onto one *study vocabulary* shared by both domains (:class:`StudyVocabulary`): by default the
taxonomy's head classes that the real training scans hold (``car``/``truck`` -> ``vehicle``, ``road`` ->
``ground``...), since a renderer and a dataset rarely name classes alike; a synthetic class with no real
counterpart (``pole`` when the real scans have none) is ignored by the loss and the metrics.

No torch here: the pools are built (and the study planned) before any model exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..active.dataset import IGNORE_INDEX, ClassVocabulary, Sample, ScanCache, resolve_source
from ..data.layouts import scan_name
from ..data.manifest import read_manifest, resolve_row_path
from ..data.scans import list_scans
from ..data.semantickitti import find_label_file
from ..data.taxonomy import UNLABELED, head_of, resolve
from ..errors import SimGapInputError

__all__ = [
    "CLASS_LEVELS",
    "StudyVocabulary",
    "StudyScanCache",
    "list_pool",
    "split_stretches",
    "pool_rows",
    "class_point_totals",
]

#: How class names are rolled onto the study vocabulary: ``head`` (taxonomy head classes) or ``fine`` (as read).
CLASS_LEVELS = ("head", "fine")


def _head(name: str) -> str:
    try:
        return head_of(name)
    except (KeyError, ValueError):
        return name  # not in the taxonomy: keep it (it only matches a real class of the same name)


def _roll(name: str, level: str) -> str:
    return _head(name) if level == "head" else name


class StudyVocabulary(ClassVocabulary):
    """A :class:`ClassVocabulary` that first rolls every class name onto the study's classes.

    A name maps to ``_roll(name)`` when that is a study class, else to its nearest study-class ancestor
    (:func:`~simgap_ext.data.taxonomy.resolve`), else it is ignored (``IGNORE_INDEX``).

    Args:
        names: the study classes (index order).
        level: ``head`` or ``fine`` (see :data:`CLASS_LEVELS`).
    """

    def __init__(self, names: Sequence[str], level: str = "head") -> None:
        if level not in CLASS_LEVELS:
            raise SimGapInputError(f"unknown class level {level!r} (one of {', '.join(CLASS_LEVELS)})")
        super().__init__(names)
        self.level = level
        self._memo: dict[str, str | None] = {}

    def study_class(self, name: str) -> str | None:
        """The study class a dataset class name counts as (``None``: ignored)."""
        name = str(name)
        if name not in self._memo:
            rolled = _roll(name, self.level)
            if rolled in self._index:
                self._memo[name] = rolled
            elif name == UNLABELED:
                self._memo[name] = None
            else:
                try:
                    self._memo[name] = resolve(name, set(self.names))
                except (KeyError, ValueError):
                    self._memo[name] = None
        return self._memo[name]

    def index(self, name: str) -> int:
        """Index of the study class ``name`` counts as (``IGNORE_INDEX`` when none)."""
        target = self.study_class(name)
        return IGNORE_INDEX if target is None else self._index[target]

    @classmethod
    def from_real(cls, samples: Iterable[Sample], cache: ScanCache, level: str = "head") -> StudyVocabulary:
        """The study classes of real labelled samples: their class names rolled to ``level``, sorted."""
        seen: set[str] = set()
        for s in samples:
            seen.update(_roll(n, level) for n in cache.class_names(s))
        seen.discard(UNLABELED)
        if not seen:
            raise SimGapInputError("the real training scans hold no labelled class")
        return cls(sorted(seen), level)


class StudyScanCache(ScanCache):
    """A :class:`ScanCache` that can blank the remission channel.

    Real and synthetic remission rarely share units (nuScenes: 0-255 counts; SimGap renders: 0-1 reflectivity),
    so a model that reads it can tell the domains apart by intensity alone; ``intensity="drop"`` (the study's
    default) feeds zeros instead and keeps the comparison about geometry and labels.

    Args:
        intensity: ``drop`` or ``keep``.
        max_items: scans kept in memory.
    """

    def __init__(self, intensity: str = "drop", max_items: int = 4096) -> None:
        if intensity not in ("drop", "keep"):
            raise SimGapInputError(f"intensity must be 'drop' or 'keep', got {intensity!r}")
        super().__init__(max_items)
        self.intensity = intensity

    def points(self, s: Sample) -> np.ndarray:
        """(N, 4) float32 x, y, z, remission (remission 0 with ``intensity="drop"``)."""
        pts = super().points(s)
        if self.intensity == "keep":
            return pts
        out = pts.copy()
        out[:, 3] = 0.0
        return out


def _from_dir(path: Path, domain: str) -> list[Sample]:
    out = []
    for f in list_scans(path):
        label = find_label_file(f) if f.suffix.lower() == ".bin" and f.name != "points.bin" else None
        out.append(Sample(str(f), None if label is None else str(label), scan_name(f), path.name, domain))
    return out


def _from_manifest(path: Path, domain: str, accepted_only: bool) -> list[Sample]:
    out = []
    for row in read_manifest(path):
        if accepted_only and row.get("domain") == "synthetic" and row.get("decision") != "accepted":
            continue
        scan = resolve_row_path(path, row, "path")
        if scan is None:
            continue  # a rejected attempt whose points were not kept
        label = resolve_row_path(path, row, "label_path")
        name = str(row.get("name") or scan_name(scan))
        out.append(Sample(str(scan), None if label is None else str(label), name, path.parent.name, domain))
    return out


def list_pool(source: str | Path, domain: str, *, accepted_only: bool = True) -> list[Sample]:
    """The scans of a pool.

    Args:
        source: a scan directory (SemanticKITTI sequence, nuScenes keyframe folders, any folder the readers
            read), a manifest ``.jsonl``, or a run directory holding ``manifest.jsonl``.
        domain: ``real`` or ``synthetic`` (recorded on every sample).
        accepted_only: from a manifest, keep only synthetic rows the gate accepted (the gated pool); ``False``
            keeps every row that has a scan file (the ungated pool, when rejected attempts were kept).

    Returns:
        Samples in natural / manifest order.

    Raises:
        SimGapInputError: missing source, or no scan in it.
    """
    p = resolve_source(source)
    if p.is_file() and p.suffix == ".jsonl":
        samples = _from_manifest(p, domain, accepted_only)
    else:
        samples = _from_dir(p, domain)
    if not samples:
        raise SimGapInputError(f"{source}: no {domain} scans to use")
    return samples


def split_stretches(samples: Sequence[Sample], test_fraction: float, gap: int) -> tuple[list[Sample], list[Sample]]:
    """Split consecutive scans of one drive into a training stretch and a later test stretch.

    The last ``round(n * test_fraction)`` scans are the test stretch; the ``gap`` scans before it are dropped, so
    that no training scan is a near-copy of a test scan (consecutive keyframes overlap).

    Args:
        samples: scans in drive order.
        test_fraction: share of scans held out for testing, in (0, 1).
        gap: scans dropped between the stretches (>= 0).

    Returns:
        (train stretch, test stretch).

    Raises:
        SimGapInputError: bad fraction/gap, or a stretch would be empty.
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise SimGapInputError(f"test fraction must lie in (0, 1), got {test_fraction}")
    if int(gap) < 0:
        raise SimGapInputError(f"gap must be >= 0, got {gap}")
    n = len(samples)
    n_test = int(round(n * float(test_fraction)))
    n_train = n - n_test - int(gap)
    if n_test < 1 or n_train < 1:
        raise SimGapInputError(
            f"{n} real scans cannot be split into a training stretch, a gap of {gap} and a test share of "
            f"{test_fraction:g}; pass --test DIR or more scans"
        )
    return list(samples[:n_train]), list(samples[n - n_test :])


def pool_rows(samples: Sequence[Sample], cache: ScanCache, vocab: StudyVocabulary) -> list[dict[str, Any]]:
    """One manifest-like row per sample for :func:`~simgap_ext.pipeline.mixing.mix_rows`.

    Rows carry ``domain``, ``decision`` (``accepted``: the caller chose the pool), ``name``, ``index`` (position
    in ``samples``) and ``class_points`` (points per study class, classes with at least one point).

    Raises:
        SimGapInputError: a scan without labels.
    """
    rows = []
    for i, s in enumerate(samples):
        lab = cache.labels(s, vocab)
        counts = np.bincount(lab[lab >= 0], minlength=len(vocab))
        class_points = {vocab.names[c]: int(n) for c, n in enumerate(counts) if n > 0}
        rows.append({"domain": s.domain, "decision": "accepted", "name": s.name, "index": i,
                     "class_points": class_points})  # fmt: skip
    return rows


def class_point_totals(rows: Iterable[Mapping[str, Any]], classes: Sequence[str]) -> dict[str, int]:
    """Points per class summed over rows (every class in ``classes`` present, 0 when unseen)."""
    out = {c: 0 for c in classes}
    for r in rows:
        for c, n in (r.get("class_points") or {}).items():
            if c in out:
                out[c] += int(n)
    return out
