"""Paired-mode DoGSS-PCL scoring (docs/metrics.md): synthetic frame i against the real frame of the same place.

This is the engine behind ``simgap score``; the CLI only reads files and prints. For every pair:

- scene G: Chamfer between the whole clouds, normalised by ``d_max``; scene DCD for reference;
- per-class G: Chamfer restricted to the points of class c, where both frames have that class (a class on one
  side only is recorded with ``g=None`` and a note);
- instance embeddings (:func:`.features.instance_features`) collected for the semantic component;
- the scene's one-directional nearest-neighbour distances (the same search that gave the Chamfer, nothing is
  searched twice) added to a fixed-bin :class:`DistanceHistogram`, so that memory stays O(bins) over any number
  of pairs while a report can still show *where* the Chamfer comes from (synthetic points far from any real
  point: phantom geometry; real points far from any synthetic one: missing geometry).

After the last pair, per-class JS (:func:`.semantic.semantic_alignment`, with ``adaptive_bins=True``: a scored
set often has only a few instances of a tail class) over all frames, and per class:
``passed = mean G >= threshold_g and JS <= threshold_js`` (a missing value does not fail the class, it is
reported as a reason when both are missing). Classes named ``unlabeled``/``unlabelled`` are not scored.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from ..frame import class_names, class_points, validate_frame
from .chamfer import PairNN, chamfer_from_pair, pair_nearest_neighbors
from .dcd import dcd_from_pair
from .dogss import combined_score, normalized_score
from .features import FrozenBackbone, instance_features
from .semantic import SEMANTIC_METHODS, semantic_alignment

__all__ = [
    "pair_names",
    "FrameScore",
    "ClassSummary",
    "DistanceHistogram",
    "PairedReport",
    "PairedScorer",
    "IGNORED_CLASSES",
]

log = logging.getLogger(__name__)

#: Class names that are never scored per class.
IGNORED_CLASSES = frozenset({"unlabeled", "unlabelled"})


def pair_names(real: Sequence[str], synthetic: Sequence[str]) -> tuple[list[tuple[str, str]], str, list[str]]:
    """Pair synthetic scans with real scans.

    Args:
        real: real scan names (file stems) in natural order.
        synthetic: synthetic scan names in natural order.

    Returns:
        (list of (real name, synthetic name), mode ``"name"`` or ``"order"``, warnings). By name whenever some
        synthetic name exists among the real ones (scans without a twin of the same name are left out, with a
        warning: pairing them by position would shift every pair after a gap); by position in sorted order,
        truncated to the shorter list, with a warning, only when no name matches.
    """
    warnings: list[str] = []
    real_set = set(real)
    named = [s for s in synthetic if s in real_set]
    if named:
        if len(named) < len(synthetic):
            warnings.append(
                f"{len(synthetic) - len(named)} synthetic scans have no real scan of the same name and are not scored"
            )
        if len(real) > len(named):
            warnings.append(f"{len(real) - len(named)} real scans have no synthetic twin and are not scored")
        return [(s, s) for s in named], "name", warnings
    n = min(len(real), len(synthetic))
    warnings.append(f"synthetic scan names do not match real scan names; pairing the first {n} scans in sorted order")
    if len(real) != len(synthetic):
        warnings.append(f"{abs(len(real) - len(synthetic))} scans are left unpaired ({len(real)} real, "
                        f"{len(synthetic)} synthetic)")  # fmt: skip
    return list(zip(real[:n], synthetic[:n], strict=True)), "order", warnings


@dataclass
class FrameScore:
    """Scores of one real/synthetic pair.

    Attributes:
        real, synthetic: scan names.
        chamfer: scene Chamfer distance (metres, or metres^2 when squared).
        g: scene G in [0, 1].
        dcd: scene density-aware Chamfer in [0, 1].
        n_real, n_synthetic: point counts.
        per_class: class -> {"chamfer", "g", "n_real", "n_synthetic", "note"}.
    """

    real: str
    synthetic: str
    chamfer: float
    g: float
    dcd: float
    n_real: int
    n_synthetic: int
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ClassSummary:
    """Per-class result over all pairs.

    Attributes:
        name: class name.
        g_mean, g_min: mean / minimum per-frame class G over the frames where both sides have the class.
        n_frames: number of such frames.
        js: JS divergence (bits) of the instance embeddings, or None without real instances.
        n_real_instances, n_synthetic_instances: embedded instance crops per side.
        combined: sqrt(G * (1 - JS)) when both are known.
        passed: see module docstring.
        reasons: why it failed / what is missing.
    """

    name: str
    g_mean: float | None
    g_min: float | None
    n_frames: int
    js: float | None
    n_real_instances: int
    n_synthetic_instances: int
    combined: float | None
    passed: bool
    reasons: list[str] = field(default_factory=list)


class DistanceHistogram:
    """Nearest-neighbour distances of both directions pooled over pairs, counted into fixed log-spaced bins.

    Bins are fixed when the histogram is made (not from the data), so pairs are added one at a time and only the
    counts are kept. The edges are ``d_max * 10**(k / bins_per_decade)`` for
    ``k = -decades_below * bins_per_decade ... decades_above * bins_per_decade``: ``d_max`` is exactly one edge,
    so the count of distances ``>= d_max`` is exact.

    Each direction has ``B + 2`` counts for ``B = len(edges) - 1`` bins: index 0 counts distances below
    ``edges[0]`` (exact matches, distance 0, included), index ``i`` in ``1..B`` counts ``edges[i-1] <= d <
    edges[i]`` and index ``B + 1`` counts ``d >= edges[-1]``. The counts of a direction therefore sum to the number
    of points of that side over all pairs.

    Args:
        d_max: ``max_expected_distance`` in metres (> 0); distances are Euclidean metres whatever the Chamfer
            convention (with ``squared`` the Chamfer of metres^2 is compared with ``d_max**2``, which is the same
            point on this axis).
        decades_below, decades_above: range of the bins below / above ``d_max``, in powers of ten (>= 1).
        bins_per_decade: bins per power of ten (>= 1).

    Attributes:
        d_max: as given.
        edges: (B + 1,) float64 bin edges in metres, increasing.
        synthetic_to_real: (B + 2,) int64 counts of the distance from each synthetic point to the nearest real one.
        real_to_synthetic: (B + 2,) int64 counts of the distance from each real point to the nearest synthetic one.
        sum_synthetic_to_real, sum_real_to_synthetic: float sums of the distances (for exact means).

    Raises:
        SimGapInputError: a non-positive ``d_max`` or a range/bin count below 1.
    """

    def __init__(
        self, d_max: float, *, decades_below: int = 4, decades_above: int = 2, bins_per_decade: int = 20
    ) -> None:
        if not (math.isfinite(float(d_max)) and float(d_max) > 0):
            raise SimGapInputError(f"DistanceHistogram d_max must be a finite number > 0, got {d_max}")
        for name, v in (
            ("decades_below", decades_below),
            ("decades_above", decades_above),
            ("bins_per_decade", bins_per_decade),
        ):
            if int(v) < 1:
                raise SimGapInputError(f"DistanceHistogram {name} must be >= 1, got {v}")
        self.d_max = float(d_max)
        k = np.arange(-int(decades_below) * int(bins_per_decade), int(decades_above) * int(bins_per_decade) + 1)
        # 10**0.0 is exactly 1.0, so d_max itself is an edge
        self.edges = self.d_max * 10.0 ** (k / int(bins_per_decade))
        self._d_max_index = int(np.flatnonzero(k == 0)[0])
        n = len(self.edges) + 1
        self.synthetic_to_real = np.zeros(n, np.int64)
        self.real_to_synthetic = np.zeros(n, np.int64)
        self.sum_synthetic_to_real = 0.0
        self.sum_real_to_synthetic = 0.0

    def copy(self) -> DistanceHistogram:
        """An independent copy (the counts are copied)."""
        new = DistanceHistogram.__new__(DistanceHistogram)
        new.__dict__.update(self.__dict__)
        new.edges = self.edges.copy()
        new.synthetic_to_real = self.synthetic_to_real.copy()
        new.real_to_synthetic = self.real_to_synthetic.copy()
        return new

    def _counts(self, d: np.ndarray) -> np.ndarray:
        # side="right": a distance equal to an edge belongs to the bin that starts there
        idx = np.searchsorted(self.edges, d, side="right")
        return np.bincount(idx, minlength=len(self.edges) + 1).astype(np.int64)

    def add(self, synthetic_to_real: np.ndarray, real_to_synthetic: np.ndarray) -> None:
        """Count one pair's distances.

        Args:
            synthetic_to_real: (M,) float distances (metres) from each synthetic point to its nearest real point.
            real_to_synthetic: (N,) float distances (metres) from each real point to its nearest synthetic point.

        Raises:
            SimGapInputError: not 1-D, negative or non-finite distances.
        """
        arrays = []
        for name, d in (("synthetic_to_real", synthetic_to_real), ("real_to_synthetic", real_to_synthetic)):
            a = np.asarray(d, dtype=np.float64)
            if a.ndim != 1:
                raise SimGapInputError(f"DistanceHistogram.add: {name} must be 1-D, got shape {a.shape}")
            if a.size and not (np.isfinite(a).all() and a.min() >= 0):
                raise SimGapInputError(f"DistanceHistogram.add: {name} has negative or non-finite distances")
            arrays.append(a)
        s2r, r2s = arrays
        self.synthetic_to_real += self._counts(s2r)
        self.real_to_synthetic += self._counts(r2s)
        self.sum_synthetic_to_real += float(s2r.sum())
        self.sum_real_to_synthetic += float(r2s.sum())

    def total(self, direction: str) -> int:
        """Number of distances counted in ``direction`` (``"synthetic_to_real"`` or ``"real_to_synthetic"``)."""
        return int(self._direction(direction).sum())

    def mean(self, direction: str) -> float | None:
        """Exact mean distance (metres) in ``direction``, or None when nothing was counted."""
        n = self.total(direction)
        return getattr(self, f"sum_{direction}") / n if n else None

    def fraction_beyond_d_max(self, direction: str) -> float | None:
        """Fraction of the distances in ``direction`` that are ``>= d_max`` (exact: ``d_max`` is an edge)."""
        c = self._direction(direction)
        n = int(c.sum())
        return float(c[self._d_max_index + 1 :].sum()) / n if n else None

    def _direction(self, direction: str) -> np.ndarray:
        if direction not in ("synthetic_to_real", "real_to_synthetic"):
            raise SimGapInputError(f"direction must be 'synthetic_to_real' or 'real_to_synthetic', got {direction!r}")
        return getattr(self, direction)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``d_max``, ``edges`` and per direction the ``B + 2`` counts, total, mean and the
        fraction beyond ``d_max``."""
        out: dict[str, Any] = {"d_max": self.d_max, "edges": self.edges.tolist()}
        for direction in ("synthetic_to_real", "real_to_synthetic"):
            out[direction] = {
                "counts": self._direction(direction).tolist(),
                "total": self.total(direction),
                "mean": self.mean(direction),
                "fraction_beyond_d_max": self.fraction_beyond_d_max(direction),
            }
        return out


@dataclass
class PairedReport:
    """Everything ``simgap score`` prints and writes with ``--json``."""

    pairing: str
    d_max: float
    squared: bool
    threshold_g: float
    threshold_js: float
    frames: list[FrameScore]
    classes: dict[str, ClassSummary]
    scene_g_mean: float
    passed: bool
    failed_classes: list[str]
    warnings: list[str] = field(default_factory=list)
    #: scene nearest-neighbour distances of every pair (None for a report built without a scorer)
    distances: DistanceHistogram | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN never appears; missing values are None); ``distances`` is
        :meth:`DistanceHistogram.to_dict` or None."""
        # replace() is a shallow copy: asdict would deep-copy the histogram's arrays into the dict
        data = asdict(replace(self, distances=None))
        data["distances"] = self.distances.to_dict() if self.distances is not None else None
        return data


class PairedScorer:
    """Accumulates pairs one at a time (streaming: frames are not kept) and summarises at the end.

    Args:
        d_max: ``max_expected_distance`` in metres (compared with ``d_max**2`` when ``squared``).
        squared: squared-distance Chamfer.
        threshold_g: per-class / scene G acceptance threshold.
        threshold_js: per-class JS threshold (bits).
        method: semantic method, ``"sliced"`` or ``"norm"``.
        backbone: embedding model (default :class:`FrozenBackbone`).
        min_points: smallest instance crop embedded.
        device: Warp device.
        class_d_max: class -> its own ``d_max`` (``simgap calibrate`` writes them to calib.toml); classes not
            listed use ``d_max``.

    Raises:
        SimGapInputError: ``d_max`` not positive, a threshold outside [0, 1], an unknown method or
            ``min_points < 1`` (checked here, before any pair is scored).
    """

    def __init__(
        self,
        *,
        d_max: float,
        squared: bool = False,
        threshold_g: float = 0.75,
        threshold_js: float = 0.15,
        method: str = "sliced",
        backbone: FrozenBackbone | None = None,
        min_points: int = 8,
        device: str | None = None,
        class_d_max: Mapping[str, float] | None = None,
    ) -> None:
        # validate everything before the first (expensive) pair rather than at report() time
        normalized_score(0.0, d_max)  # validates d_max
        for v in (class_d_max or {}).values():
            normalized_score(0.0, v)  # each per-class d_max positive and finite
        self.class_d_max = {str(k): float(v) for k, v in (class_d_max or {}).items()}
        if not 0.0 <= float(threshold_g) <= 1.0:
            raise SimGapInputError(f"threshold_g must be in [0, 1] (G is a score), got {threshold_g}")
        if not 0.0 <= float(threshold_js) <= 1.0:
            raise SimGapInputError(f"threshold_js must be in [0, 1] (JS is in bits), got {threshold_js}")
        if method not in SEMANTIC_METHODS:
            raise SimGapInputError(f"method must be one of {SEMANTIC_METHODS}, got {method!r}")
        if int(min_points) < 1:
            raise SimGapInputError(f"min_points must be >= 1, got {min_points}")
        self.d_max = float(d_max)
        self._norm = self.d_max**2 if squared else self.d_max
        self.squared = bool(squared)
        self.threshold_g = float(threshold_g)
        self.threshold_js = float(threshold_js)
        self.method = method
        self.backbone = backbone if backbone is not None else FrozenBackbone()
        self.min_points = int(min_points)
        self.device = device
        self.frames: list[FrameScore] = []
        self._real_feats: dict[str, list[np.ndarray]] = defaultdict(list)
        self._synth_feats: dict[str, list[np.ndarray]] = defaultdict(list)
        self.distances = DistanceHistogram(self.d_max)

    def _nn(self, a: np.ndarray, b: np.ndarray, a_name: str, b_name: str) -> PairNN:
        return pair_nearest_neighbors(a, b, device=self.device, a_name=a_name, b_name=b_name)

    def add(self, real_name: str, real: Mapping[str, Any], synth_name: str, synth: Mapping[str, Any]) -> FrameScore:
        """Score one pair and keep its instance embeddings.

        Args:
            real_name, synth_name: scan names (used in messages and the report).
            real, synth: frame dicts (validated here).

        Returns:
            The pair's :class:`FrameScore` (also appended to ``frames``).
        """
        rf = validate_frame(real, name=f"real scan {real_name}")
        sf = validate_frame(synth, name=f"synthetic scan {synth_name}")
        # one nearest-neighbour search serves the scene Chamfer and the scene DCD
        nn = self._nn(rf["data"], sf["data"], f"real scan {real_name}", f"synthetic scan {synth_name}")
        cd = chamfer_from_pair(nn, squared=self.squared)
        # a = real, b = synthetic: d_ba is synthetic -> real
        self.distances.add(nn.d_ba, nn.d_ab)
        score = FrameScore(
            real=real_name,
            synthetic=synth_name,
            chamfer=cd,
            g=normalized_score(cd, self._norm),
            dcd=dcd_from_pair(nn),
            n_real=int(rf["data"].shape[0]),
            n_synthetic=int(sf["data"].shape[0]),
        )
        r_classes, s_classes = set(class_names(rf)), set(class_names(sf))
        for cls in sorted((r_classes | s_classes) - IGNORED_CLASSES):
            rp = class_points(rf, cls) if cls in r_classes else np.zeros((0, 3), np.float32)
            sp = class_points(sf, cls) if cls in s_classes else np.zeros((0, 3), np.float32)
            entry: dict[str, Any] = {"chamfer": None, "g": None, "n_real": len(rp), "n_synthetic": len(sp), "note": ""}
            if len(rp) and len(sp):
                c_nn = self._nn(rp, sp, f"real scan {real_name} class {cls!r}", f"synthetic {cls!r}")
                c_cd = chamfer_from_pair(c_nn, squared=self.squared)
                entry["chamfer"] = c_cd
                # thin and sparse classes have larger real-vs-real Chamfer than the scene: their own d_max
                c_norm = self.class_d_max.get(cls, self.d_max)
                entry["g"] = normalized_score(c_cd, c_norm**2 if self.squared else c_norm)
            else:
                entry["note"] = "absent in synthetic" if len(rp) else "absent in real"
            score.per_class[cls] = entry
        for store, frame in ((self._real_feats, rf), (self._synth_feats, sf)):
            for cls, feats in instance_features(frame, self.backbone, min_points=self.min_points).items():
                if cls not in IGNORED_CLASSES:
                    store[cls].append(feats)
        self.frames.append(score)
        return score

    def report(self, *, pairing: str = "name", warnings: Iterable[str] = ()) -> PairedReport:
        """Summarise every pair added so far into a :class:`PairedReport`."""
        real_f = {c: np.concatenate(v) for c, v in self._real_feats.items()}
        synth_f = {c: np.concatenate(v) for c, v in self._synth_feats.items()}
        sem = semantic_alignment(real_f, synth_f, threshold=self.threshold_js, method=self.method, adaptive_bins=True)
        g_values: dict[str, list[float]] = defaultdict(list)
        seen: set[str] = set()
        for fs in self.frames:
            for cls, e in fs.per_class.items():
                seen.add(cls)
                if e["g"] is not None:
                    g_values[cls].append(e["g"])
        classes: dict[str, ClassSummary] = {}
        for cls in sorted(seen | set(real_f) | set(synth_f)):
            gs = g_values.get(cls, [])
            g_mean = float(np.mean(gs)) if gs else None
            js = sem.per_class.get(cls)
            reasons: list[str] = []
            if g_mean is not None and g_mean < self.threshold_g:
                reasons.append(f"G {g_mean:.3f} < {self.threshold_g}")
            if js is not None and js > self.threshold_js:
                reasons.append(
                    f"JS {js:.3f} > {self.threshold_js}"
                    + (" (no synthetic instances)" if cls in sem.missing_in_synthetic else "")
                )
            passed = not reasons
            if g_mean is None and js is None:
                reasons.append("not comparable: class never present on both sides")
            classes[cls] = ClassSummary(
                name=cls,
                g_mean=g_mean,
                g_min=float(np.min(gs)) if gs else None,
                n_frames=len(gs),
                js=js,
                n_real_instances=int(real_f[cls].shape[0]) if cls in real_f else 0,
                n_synthetic_instances=int(synth_f[cls].shape[0]) if cls in synth_f else 0,
                combined=combined_score(g_mean, js) if g_mean is not None and js is not None else None,
                passed=passed,
                reasons=reasons,
            )
        scene_g = float(np.mean([f.g for f in self.frames])) if self.frames else math.nan
        failed = sorted(c for c, s in classes.items() if not s.passed)
        return PairedReport(
            pairing=pairing,
            d_max=self.d_max,
            squared=self.squared,
            threshold_g=self.threshold_g,
            threshold_js=self.threshold_js,
            frames=list(self.frames),
            classes=classes,
            scene_g_mean=scene_g if self.frames else 0.0,
            passed=bool(self.frames) and not failed and scene_g >= self.threshold_g,
            failed_classes=failed,
            warnings=list(warnings),
            # a copy: pairs added after this report must not change it
            distances=self.distances.copy(),
        )
