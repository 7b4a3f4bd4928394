"""Geometric components of the gate: object level (per class) and scene level, each scored in [0, 1].

Every component is a distance ``d`` to the real reference, turned into a score with DoGSS-PCL's normalisation
``1 - clamp(d / d_max, 0, 1)`` where ``d_max`` comes from the bank's real-vs-real calibration. A class's G and
the scene G are weighted means of their components (weights from :class:`~simgap_ext.gate.GateConfig`).

Object components (per class, over the frame's crops with >= ``min_points`` points):

- ``chamfer``: mean over crops of the best (trimmed) Chamfer distance to the ``k`` real exemplars closest in range;
- ``count``: mean over crops of |log(points / median points of those exemplars)| (all points of the instance);
- ``roughness``: 1-D Wasserstein distance between the class's clipped |range roughness| and the bank's (range
  noise);
- ``density``: |share of the class's points with an adjacent-column ring neighbour - the bank's mean share|
  (ray drop makes gaps on a ring, subsampling makes many).

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

# Per-point samples a class needs in a frame before its roughness / density is compared: fewer make the
# statistic too noisy to judge (small, distant or occluded objects).
MIN_ROUGHNESS_SAMPLES = 50
MIN_DENSITY_POINTS = 50
# Share of nearest-neighbour distances kept in the trimmed Chamfer distance (see best_exemplar_match).
TRIM_KEEP = 0.9


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
    """Best (smallest) trimmed Chamfer distance of a canonical crop to some bank exemplars.

    The Chamfer distance is ``1/2 (mean_a min_b d + mean_b min_a d)`` with each mean taken over the nearest
    ``TRIM_KEEP`` share of the per-point distances (:func:`simgap_ext.metrics.directional_distances`): mixed
    pixels trail "veil" points metres behind silhouettes, and a handful of them would otherwise decide which
    exemplar is nearest.

    Args:
        crop: (K, 3) float32 canonical crop.
        bank: the :class:`~simgap_ext.gate.ReferenceBank`.
        candidates: (C,) int64 exemplar indices, C >= 1.
        device: Warp device.

    Returns:
        (best Chamfer distance in metres, index of the best exemplar).
    """
    from ..metrics import directional_distances

    best, arg = math.inf, -1
    for e in candidates:
        d_ab, d_ba = directional_distances(crop, bank.exemplar(int(e)), device=device)
        d = 0.5 * (_trimmed_mean(d_ab) + _trimmed_mean(d_ba))
        if d < best:
            best, arg = d, int(e)
    return best, arg


def _trimmed_mean(d: np.ndarray, keep: float = TRIM_KEEP) -> float:
    """Mean of the smallest ``keep`` share of the distances (at least one)."""
    d = np.sort(np.asarray(d, dtype=np.float64))
    return float(d[: max(1, int(math.ceil(keep * d.size)))].mean())


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
    totals = bank.ex_total
    cd, cnt = [], []
    for crop in crops:
        near = bank.exemplars_near(class_name, crop.range, k)
        if near.size == 0:
            continue
        best, _ = best_exemplar_match(crop.points, bank, near, device=device)
        cd.append(best)
        cnt.append(abs(log_count_ratio(crop.total_points, totals[near])))
    if cd:
        out["chamfer"] = ComponentScore(float(np.mean(cd)), bank.class_d_max(class_name, "chamfer"))
        out["count"] = ComponentScore(float(np.mean(cnt)), bank.class_d_max(class_name, "count"))
    mine = stats.class_roughness(class_name)
    ref = bank.class_roughness(class_name)
    d_max = bank.class_d_max(class_name, "roughness")
    if mine.size >= MIN_ROUGHNESS_SAMPLES and ref.size >= MIN_ROUGHNESS_SAMPLES and math.isfinite(d_max):
        out["roughness"] = ComponentScore(float(wasserstein_1d(mine, ref)), d_max)
    dens, ref_dens = stats.class_density(class_name), bank.class_density(class_name)
    d_max = bank.class_d_max(class_name, "density")
    enough = stats.class_points.get(class_name, 0) >= MIN_DENSITY_POINTS
    if enough and dens is not None and ref_dens is not None and math.isfinite(d_max):
        out["density"] = ComponentScore(abs(dens - ref_dens), d_max)
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
