"""Paired-mode DoGSS-PCL scoring (DESIGN.md): synthetic frame i against the real frame of the same place.

This is the engine behind ``simgap score``; the CLI only reads files and prints. For every pair:

- scene G: Chamfer between the whole clouds, normalised by ``d_max``; scene DCD for reference;
- per-class G: Chamfer restricted to the points of class c, where both frames have that class (a class on one
  side only is recorded with ``g=None`` and a note);
- instance embeddings (:func:`.features.instance_features`) collected for the semantic component.

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
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from ..frame import class_names, class_points, validate_frame
from .chamfer import PairNN, chamfer_from_pair, pair_nearest_neighbors
from .dcd import dcd_from_pair
from .dogss import combined_score, normalized_score
from .features import FrozenBackbone, instance_features
from .semantic import SEMANTIC_METHODS, semantic_alignment

__all__ = ["pair_names", "FrameScore", "ClassSummary", "PairedReport", "PairedScorer", "IGNORED_CLASSES"]

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN never appears; missing values are None)."""
        return asdict(self)


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
    ) -> None:
        # validate everything before the first (expensive) pair rather than at report() time
        normalized_score(0.0, d_max)  # validates d_max
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
                entry["g"] = normalized_score(c_cd, self._norm)
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
        )
