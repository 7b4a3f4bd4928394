"""Geometric components of the gate: object level (per class) and scene level, each scored in [0, 1].

Every component is a distance ``d`` to the real reference, turned into a score with DoGSS-PCL's normalisation
``1 - clamp(d / d_max, 0, 1)`` where ``d_max`` comes from the bank's real-vs-real calibration. A class's G and
the scene G are weighted means of their components (weights from :class:`~simgap_ext.gate.GateConfig`).

Object components (per class, over the frame's crops with >= ``min_points`` points):

- ``chamfer``: mean over crops of the best Chamfer distance to the ``k`` real exemplars closest in range;
- ``count``: mean over crops of |log(points / median points of those exemplars)| (ray drop, subsampling);
- ``roughness``: 1-D Wasserstein distance between the class's |range roughness| and the bank's (range noise).

Scene components: ``range`` (W1 of point ranges), ``beams`` (mean |per-beam return ratio - bank mean|) and
``roughness`` (W1 of all |range roughness| samples).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .stats import Crop, FrameStats

__all__ = [
    "ComponentScore",
    "best_exemplar_match",
    "log_count_ratio",
    "object_components",
    "scene_components",
    "weighted_g",
]

MIN_ROUGHNESS_SAMPLES = 16


@dataclass
class ComponentScore:
    """One component's distance, its ``d_max`` and the resulting score in [0, 1]."""

    distance: float
    d_max: float
    score: float = field(init=False)

    def __post_init__(self) -> None:
        from ..metrics import normalized_score

        self.score = float(normalized_score(self.distance, self.d_max))


def best_exemplar_match(
    crop: np.ndarray, bank, candidates: np.ndarray, *, device: str | None = None
) -> tuple[float, int]:
    """Best (smallest) Chamfer distance of a canonical crop to some bank exemplars.

    Args:
        crop: (K, 3) float32 canonical crop.
        bank: the :class:`~simgap_ext.gate.ReferenceBank`.
        candidates: (C,) int64 exemplar indices, C >= 1.
        device: Warp device.

    Returns:
        (best Chamfer distance in metres, index of the best exemplar).
    """
    from ..metrics import chamfer_distance

    best, arg = math.inf, -1
    for e in candidates:
        d = float(chamfer_distance(crop, bank.exemplar(int(e)), device=device))
        if d < best:
            best, arg = d, int(e)
    return best, arg


def log_count_ratio(n_points: int, reference_counts: np.ndarray) -> float:
    """log(n_points / median(reference_counts)); both sides floored at 1 point."""
    ref = float(np.median(np.asarray(reference_counts, dtype=np.float64))) if len(reference_counts) else 1.0
    return float(math.log(max(int(n_points), 1) / max(ref, 1.0)))


def object_components(
    class_name: str,
    crops: list[Crop],
    stats: FrameStats,
    bank,
    *,
    k: int,
    device: str | None = None,
) -> dict[str, ComponentScore]:
    """Object-level component scores of one class.

    Args:
        class_name: the class.
        crops: the class's crops to score (already filtered by ``min_points``; may be empty).
        stats: the frame's statistics (for the class's roughness samples).
        bank: the reference bank.
        k: exemplars compared per crop.
        device: Warp device.

    Returns:
        component name -> :class:`ComponentScore`; a component without data (no crops, no exemplars, too few
        roughness samples) is absent.
    """
    from ..metrics import wasserstein_1d

    out: dict[str, ComponentScore] = {}
    counts = bank.exemplar_counts()
    cd, cnt = [], []
    for crop in crops:
        near = bank.exemplars_near(class_name, crop.range, k)
        if near.size == 0:
            continue
        best, _ = best_exemplar_match(crop.points, bank, near, device=device)
        cd.append(best)
        cnt.append(abs(log_count_ratio(crop.n_points, counts[near])))
    if cd:
        out["chamfer"] = ComponentScore(float(np.mean(cd)), bank.class_d_max(class_name, "chamfer"))
        out["count"] = ComponentScore(float(np.mean(cnt)), bank.class_d_max(class_name, "count"))
    mine = stats.class_roughness(class_name)
    ref = bank.class_roughness(class_name)
    d_max = bank.class_d_max(class_name, "roughness")
    if mine.size >= MIN_ROUGHNESS_SAMPLES and ref.size >= MIN_ROUGHNESS_SAMPLES and math.isfinite(d_max):
        out["roughness"] = ComponentScore(float(wasserstein_1d(mine, ref)), d_max)
    return out


def scene_components(stats: FrameStats, bank) -> dict[str, ComponentScore]:
    """Scene-level component scores of a frame (absent when the bank has no calibration for one)."""
    from ..metrics import wasserstein_1d

    out: dict[str, ComponentScore] = {}
    d_max = bank.scene_d_max("range")
    if stats.ranges.size and bank.scene_ranges.size and math.isfinite(d_max):
        out["range"] = ComponentScore(float(wasserstein_1d(stats.ranges, bank.scene_ranges)), d_max)
    d_max = bank.scene_d_max("roughness")
    mine = stats.scene_roughness()
    if mine.size >= MIN_ROUGHNESS_SAMPLES and bank.scene_rough.size >= MIN_ROUGHNESS_SAMPLES and math.isfinite(d_max):
        out["roughness"] = ComponentScore(float(wasserstein_1d(mine, bank.scene_rough)), d_max)
    d_max = bank.scene_d_max("beams")
    if (
        stats.beam_ratio is not None
        and bank.beam_ratio.shape[1] == stats.beam_ratio.shape[0]
        and bank.beam_ratio.shape[1] > 0
        and math.isfinite(d_max)
    ):
        diff = np.abs(stats.beam_ratio - bank.beam_ratio.mean(axis=0)).mean()
        out["beams"] = ComponentScore(float(diff), d_max)
    return out


def weighted_g(components: Mapping[str, ComponentScore], weights: Mapping[str, float]) -> float | None:
    """Weighted mean of component scores over the components present with a positive weight (None if none)."""
    num = den = 0.0
    for name, comp in components.items():
        w = float(weights.get(name, 0.0))
        if w > 0:
            num += w * comp.score
            den += w
    return num / den if den > 0 else None
