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
  (ray drop makes gaps on a ring, subsampling makes many); its ``d_max`` widens for a class of few points
  (:meth:`~simgap_ext.gate.ReferenceBank.density_d_max`).

Scene components: ``range`` (W1 of point ranges), ``beams`` (mean |per-beam return ratio - bank mean|),
``roughness`` (W1 of all |range roughness| samples), ``composition`` (total variation of class shares) and
``origin`` (distance of the apparent sensor origin, :mod:`~simgap_ext.gate.origin`, from the real frames' mean).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import SimGapInputError
from .frame_stats import Crop, FrameStats

__all__ = [
    "ComponentScore",
    "batched_trimmed_chamfer",
    "cap_points",
    "best_exemplar_match",
    "best_exemplar_matches",
    "log_count_ratio",
    "object_components",
    "scene_components",
    "weighted_g",
]

# Per-point samples a class needs in a frame before its roughness / density is compared: fewer make the
# statistic too noisy to judge (small, distant or occluded objects).
MIN_ROUGHNESS_SAMPLES = 50
MIN_DENSITY_POINTS = 25
# Share of nearest-neighbour distances kept in the trimmed Chamfer distance (see best_exemplar_match).
TRIM_KEEP = 0.9
# Chamfer clouds are thinned to at most this many points (a near vehicle on a 128-beam sensor has thousands).
MAX_CHAMFER_POINTS = 1024
# Scene distributions of a frame are thinned to this many samples before the 1-D Wasserstein distance.
MAX_SCENE_SAMPLES = 8192


@dataclass
class ComponentScore:
    """One component's distance, its ``d_max`` and the resulting score in [0, 1]."""

    distance: float
    d_max: float
    score: float = field(init=False)

    def __post_init__(self) -> None:
        from ..metrics import normalized_score

        self.score = float(normalized_score(self.distance, self.d_max))


def cap_points(points: np.ndarray, cap: int = MAX_CHAMFER_POINTS) -> np.ndarray:
    """At most ``cap`` points, by a deterministic stride (a near vehicle can have thousands).

    Args:
        points: (N, 3) float32 points.
        cap: the most points to keep (>= 1).

    Returns:
        (M, 3) float32, ``M <= cap``: ``points`` itself when ``N <= cap``, else every ``ceil(N / cap)``-th point.
    """
    if points.shape[0] <= cap:
        return points
    return points[:: int(math.ceil(points.shape[0] / cap))]


def batched_trimmed_chamfer(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], *, device: str | None = None, backend: str = "auto"
) -> np.ndarray:
    """Trimmed Chamfer distance of many small cloud pairs with one nearest-neighbour pass.

    Each pair is moved to its own cell of a 3-D lattice whose spacing exceeds every possible within-pair
    nearest-neighbour distance plus the pairs' extents, so that every point's nearest neighbour in the combined
    clouds is in its own pair: one :func:`simgap_ext.metrics.directional_distances` call (a few Warp launches)
    instead of one per pair, which is what makes per-frame exemplar matching cheap.

    On the CPU, Warp's per-launch overhead (milliseconds) dwarfs the work for clouds of a few hundred points
    and the lattice makes its hash grid coarse, so the ``"auto"`` backend uses SciPy's exact KD-tree per pair
    there and the batched Warp pass on CUDA; both are exact nearest neighbours (tests compare them with a
    brute-force reference).

    Args:
        pairs: (a, b) clouds, each (K, 3) float32 with K >= 1, centred near the origin (canonical crops).
        device: Warp device.
        backend: ``"auto"`` (KD-tree on CPU, Warp on CUDA), ``"warp"`` or ``"kdtree"``.

    Returns:
        (P,) float64 ``1/2 (tmean_a min_b d + tmean_b min_a d)``, ``tmean`` the mean of the nearest
        ``TRIM_KEEP`` share.
    """
    from .._warp import resolve_device
    from ..metrics import directional_distances

    if backend not in ("auto", "warp", "kdtree"):
        raise SimGapInputError(f"chamfer backend must be 'auto', 'warp' or 'kdtree', got {backend!r}")
    if not pairs:
        return np.zeros(0, dtype=np.float64)
    if backend == "kdtree" or (backend == "auto" and resolve_device(device) == "cpu"):
        return _kdtree_trimmed_chamfer(pairs)
    capped = [(cap_points(np.asarray(a, np.float32)), cap_points(np.asarray(b, np.float32))) for a, b in pairs]
    extent = max(float(np.abs(c).max()) for pair in capped for c in pair)
    # Own-pair neighbour within 2*sqrt(3)*E, any other pair at least (spacing - 2E) away per axis.
    spacing = 6.0 * extent + 1.0
    n = len(capped)
    side = int(math.ceil(n ** (1.0 / 3.0) - 1e-9))
    cells = np.array([(i % side, (i // side) % side, i // (side * side)) for i in range(n)], dtype=np.float64)
    offsets = cells * spacing
    a_all = np.concatenate([a + offsets[i] for i, (a, _) in enumerate(capped)]).astype(np.float32)
    b_all = np.concatenate([b + offsets[i] for i, (_, b) in enumerate(capped)]).astype(np.float32)
    d_ab, d_ba = directional_distances(a_all, b_all, device=device)
    a_split = np.cumsum([a.shape[0] for a, _ in capped])[:-1]
    b_split = np.cumsum([b.shape[0] for _, b in capped])[:-1]
    return np.array(
        [
            0.5 * (_trimmed_mean(x) + _trimmed_mean(y))
            for x, y in zip(np.split(d_ab, a_split), np.split(d_ba, b_split), strict=True)
        ],
        dtype=np.float64,
    )


def _kdtree_trimmed_chamfer(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """:func:`batched_trimmed_chamfer` with SciPy's KD-tree, one tree per distinct cloud.

    A crop is paired with its ``k`` candidate exemplars, and an exemplar can be a candidate of several crops: each
    distinct cloud (the same array object) is capped, converted and built into a tree once per call instead of
    once per pair. A tree is a deterministic function of its points and a nearest-neighbour distance does not
    depend on the tree, so the distances are those of a tree per pair.
    """
    from scipy.spatial import cKDTree

    prepared: dict[int, tuple[np.ndarray, cKDTree]] = {}

    def cloud(points: np.ndarray) -> tuple[np.ndarray, cKDTree]:
        got = prepared.get(id(points))
        if got is None:
            p64 = cap_points(np.asarray(points, np.float32)).astype(np.float64)
            got = prepared[id(points)] = (p64, cKDTree(p64))
        return got

    out = np.empty(len(pairs), dtype=np.float64)
    for i, (a, b) in enumerate(pairs):
        (a64, tree_a), (b64, tree_b) = cloud(a), cloud(b)
        out[i] = 0.5 * (_trimmed_mean(tree_b.query(a64)[0]) + _trimmed_mean(tree_a.query(b64)[0]))
    return out


def best_exemplar_matches(
    crops: Sequence[np.ndarray],
    candidates: Sequence[np.ndarray],
    bank,
    *,
    device: str | None = None,
    backend: str = "auto",
) -> list[tuple[float, int]]:
    """For each canonical crop, the best (smallest) trimmed Chamfer distance to its candidate exemplars.

    The Chamfer distance is ``1/2 (mean_a min_b d + mean_b min_a d)`` with each mean taken over the nearest
    ``TRIM_KEEP`` share of the per-point distances: mixed pixels trail "veil" points metres behind
    silhouettes, and a handful of them would otherwise decide which exemplar is nearest. Clouds above
    ``MAX_CHAMFER_POINTS`` points are thinned by a deterministic stride.

    Args:
        crops: (K_i, 3) float32 canonical crops.
        candidates: per crop, (C_i,) int64 exemplar indices (C_i >= 1).
        bank: the :class:`~simgap_ext.gate.ReferenceBank`.
        device: Warp device.
        backend: nearest-neighbour backend (see :func:`batched_trimmed_chamfer`).

    Returns:
        Per crop, (best Chamfer distance in metres, index of the best exemplar).
    """
    pairs, owner = [], []
    exemplars: dict[int, np.ndarray] = {}  # one array per exemplar, so that the batch sees repeats (one tree each)
    for i, (crop, cand) in enumerate(zip(crops, candidates, strict=True)):
        for e in cand:
            e = int(e)
            if e not in exemplars:
                exemplars[e] = bank.exemplar(e)
            pairs.append((crop, exemplars[e]))
            owner.append((i, e))
    dist = batched_trimmed_chamfer(pairs, device=device, backend=backend)
    best = [(math.inf, -1)] * len(crops)
    for (i, e), d in zip(owner, dist, strict=True):
        if d < best[i][0]:
            best[i] = (float(d), e)
    return best


def best_exemplar_match(
    crop: np.ndarray, bank, candidates: np.ndarray, *, device: str | None = None, backend: str = "auto"
) -> tuple[float, int]:
    """:func:`best_exemplar_matches` for one crop: (best trimmed Chamfer distance, best exemplar index)."""
    return best_exemplar_matches([crop], [candidates], bank, device=device, backend=backend)[0]


def _thin(values: np.ndarray, cap: int) -> np.ndarray:
    """At most ``cap`` values by a deterministic stride: a 1-D W1 needs a few thousand samples, not 140 000."""
    return values if values.shape[0] <= cap else values[:: int(math.ceil(values.shape[0] / cap))]


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
    min_points: int = 8,
    device: str | None = None,
    matches: Sequence[tuple[float, int]] | None = None,
    near: Sequence[np.ndarray] | None = None,
    reference_class: str | None = None,
) -> dict[str, ComponentScore]:
    """Per-class component scores of one class (object or stuff: ``chamfer``/``count`` need instance crops).

    Args:
        class_name: the class.
        crops: every crop of the class in the frame (may be empty); those with >= ``min_points`` surface
            points are scored.
        stats: the frame's statistics (for the class's roughness samples).
        bank: the reference bank.
        k: exemplars compared per crop.
        min_points: surface points a crop needs for the shape distance.
        device: Warp device.
        matches: precomputed :func:`best_exemplar_matches` of the scorable crops that have candidate exemplars, in order
            (the gate matches every class of a frame in one batch).
        near: precomputed ``bank.exemplars_near(class_name, crop.range, k)`` of every scorable crop, in order
            ((C_i,) int64 each, possibly empty), so that the gate's range lookup is not done a second time.
        reference_class: the bank class the frame's ``class_name`` is compared with (default: the same; a
            taxonomy parent for a synthetic class without real exemplars).

    Returns:
        component name -> :class:`ComponentScore`; a component without data (no crops, no exemplars, too few
        roughness samples) is absent.
    """
    from ..metrics import wasserstein_1d
    from .bank import log_count_ratio_f

    ref_name = reference_class or class_name
    out: dict[str, ComponentScore] = {}
    totals = bank.ex_total
    cd, cnt = [], []
    scored = [c for c in crops if c.n_points >= min_points]
    if near is not None and len(near) != len(scored):
        raise SimGapInputError(f"class {class_name}: {len(near)} exemplar lists for {len(scored)} scorable crops")
    near_all = list(near) if near is not None else [bank.exemplars_near(ref_name, crop.range, k) for crop in scored]
    usable = [(crop, near) for crop, near in zip(scored, near_all, strict=True) if near.size]
    if matches is None:
        matches = best_exemplar_matches([c.points for c, _ in usable], [n for _, n in usable], bank, device=device)
    for best, _ in matches:
        cd.append(best)
    # The count uses the same crops as the shape distance: the bank's exemplars are crops with >= min_points
    # surface points, and comparing a small, occluded instance with them would fail realistic frames.
    for crop, near in usable:
        cnt.append(abs(log_count_ratio(crop.total_points, totals[near])))
    # A d_max the bank lacks is NaN, and ComponentScore refuses it: a statistic the frame has but the reference
    # cannot judge is an error, never a silent pass (a bank that loads has every calibrated value finite).
    if cd:
        out["chamfer"] = ComponentScore(float(np.mean(cd)), bank.class_d_max(ref_name, "chamfer"))
    if cnt:
        out["count"] = ComponentScore(float(np.mean(cnt)), bank.class_d_max(ref_name, "count"))
    mine = stats.class_roughness(class_name)
    ref = bank.class_roughness(ref_name)
    d_max = bank.class_d_max(ref_name, "roughness")
    if mine.size >= MIN_ROUGHNESS_SAMPLES and ref.size >= MIN_ROUGHNESS_SAMPLES and math.isfinite(d_max):
        out["roughness"] = ComponentScore(float(wasserstein_1d(mine, ref)), d_max)
    dens, ref_dens = stats.class_density(class_name), bank.class_density(ref_name)
    enough = stats.class_points.get(class_name, 0) >= MIN_DENSITY_POINTS
    if enough and dens is not None and ref_dens is not None:
        # widened for a class of few points, whose continuity carries its own binomial sampling error
        d_max = bank.density_d_max(ref_name, stats.class_points[class_name], dens)
        if math.isfinite(d_max):
            out["density"] = ComponentScore(abs(dens - ref_dens), d_max)
    shares = bank.class_shares(ref_name)
    d_max = bank.class_d_max(ref_name, "share")
    if stats.class_points.get(class_name, 0) and shares.size and math.isfinite(d_max):
        out["share"] = ComponentScore(abs(log_count_ratio_f(stats.class_share(class_name), shares)), d_max)
    mine = stats.class_heights(class_name)
    ref = bank.class_height_samples(ref_name)
    d_max = bank.class_d_max(ref_name, "height")
    if mine.size >= MIN_ROUGHNESS_SAMPLES and ref.size >= MIN_ROUGHNESS_SAMPLES and math.isfinite(d_max):
        out["height"] = ComponentScore(float(wasserstein_1d(_thin(mine, MAX_SCENE_SAMPLES), ref)), d_max)
    return out


def scene_components(
    stats: FrameStats, bank, reference_of: Mapping[str, str] | None = None
) -> dict[str, ComponentScore]:
    """Scene-level component scores of a frame (absent when the bank has no calibration for one).

    ``reference_of`` maps frame classes onto the bank classes they are judged as (taxonomy parents) for the class
    composition."""
    from ..metrics import wasserstein_1d

    out: dict[str, ComponentScore] = {}
    d_max = bank.scene_d_max("range")
    if stats.ranges.size and bank.scene_ranges.size and math.isfinite(d_max):
        mine = _thin(stats.ranges, MAX_SCENE_SAMPLES)
        ref = _thin(bank.scene_ranges, MAX_SCENE_SAMPLES)
        out["range"] = ComponentScore(float(wasserstein_1d(mine, ref)), d_max)
    d_max = bank.scene_d_max("roughness")
    mine = _thin(stats.scene_roughness(), MAX_SCENE_SAMPLES)
    if mine.size >= MIN_ROUGHNESS_SAMPLES and bank.scene_rough.size >= MIN_ROUGHNESS_SAMPLES and math.isfinite(d_max):
        ref = _thin(bank.scene_rough, MAX_SCENE_SAMPLES)
        out["roughness"] = ComponentScore(float(wasserstein_1d(mine, ref)), d_max)
    d_max = bank.scene_d_max("beams")
    if (
        stats.beam_ratio is not None
        and bank.beam_ratio.shape[1] == stats.beam_ratio.shape[0]
        and bank.beam_ratio.shape[1] > 0
        and math.isfinite(d_max)
    ):
        diff = np.abs(stats.beam_ratio - bank.beam_ratio.mean(axis=0)).mean()
        out["beams"] = ComponentScore(float(diff), d_max)
    d_max = bank.scene_d_max("composition")
    if stats.n_points and math.isfinite(d_max):
        out["composition"] = ComponentScore(frame_composition_distance(stats, bank, reference_of), d_max)
    d_max = bank.scene_d_max("origin")
    ref = bank.origin_reference() if math.isfinite(d_max) else None
    if stats.origin_offset is not None and ref is not None:
        out["origin"] = ComponentScore(float(np.hypot(*(np.asarray(stats.origin_offset) - ref))), d_max)
    return out


def frame_composition_distance(stats: FrameStats, bank, reference_of: Mapping[str, str] | None = None) -> float:
    """Total variation between a frame's class shares and the bank's mean shares.

    A frame class counts as ``reference_of[c]`` when given (a child class judged as its taxonomy parent); classes
    the bank lacks count in full: their share has no real counterpart."""
    from .bank import composition_distance

    ref = dict(reference_of or {})
    mine = np.zeros(len(bank.class_names), np.float64)
    extra = 0.0
    for c in stats.class_points:
        i = bank.class_index(ref.get(c, c))
        if i < 0:
            extra += stats.class_share(c)
        else:
            mine[i] += stats.class_share(c)
    return composition_distance(mine, bank.composition()) + 0.5 * float(extra)


def weighted_g(components: Mapping[str, ComponentScore], weights: Mapping[str, float]) -> float | None:
    """Weighted mean of component scores over the components present with a positive weight (None if none)."""
    num = den = 0.0
    for name, comp in components.items():
        w = float(weights.get(name, 0.0))
        if w > 0:
            num += w * comp.score
            den += w
    return num / den if den > 0 else None
