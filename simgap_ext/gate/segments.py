"""Segment (object) level label evidence: segments of a class that look like segments of another class.

Point-level descriptors (:mod:`~simgap_ext.gate.plausibility`: the local geometry of 16 neighbours) cannot tell a
parked car from a hedge, and a few relabelled cars hardly move a large class's statistics. A relabelled class
arrives in the receiving class as *whole objects*, though: car-sized boxes with smooth sides standing on the ground
inside a class whose real segments are trees, hedges and bushes. This module compares classes at that level.

- **Segments** (:func:`segment_descriptors`): each class's points are cut into Euclidean segments, the connected
  components of the class's occupied :data:`VOXEL` m voxels linked within :data:`LINK` m (a car parked beside a
  hedge stays two segments when they are labelled apart; a relabelled car merges with the hedge it touches).
  Segments of fewer than :data:`MIN_SEGMENT_POINTS` points are left out. Each gets a class-agnostic descriptor
  (:data:`DESCRIPTOR_NAMES`): its horizontal extents along and across its main axis, its height, the heights of its
  bottom and top above the local ground (the lowest point of the frame within ~3 m), its point count times the
  squared range (points per steradian: a density that does not fall with range), its log range, the linearity /
  planarity / scattering of its covariance, and its mean clipped range roughness (smooth panels vs foliage).
- **Votes** (:class:`SegmentIndex`): a segment is voted on by its :data:`K_SEGMENTS` nearest real segments in
  descriptor space (scaled by the bank's per-column spread; KD-tree). Two rules (:data:`RULES`) count it for another
  class ``k``: *majority*, more than half of its votes go to ``k`` (:func:`majority_vote`); *plurality*, its own
  class holds less than half of them and ``k`` the most of the rest (:func:`plurality_vote`: a relabelled pedestrian
  whose votes split between ``pedestrian`` and ``static_object`` wins no majority, but its new class holds few). For
  every class ``c`` of a frame and rule, ``n_ck`` is the number of its segments counted for ``k``
  (:func:`pair_counts`, :func:`segment_counts`: ``(C, 2C)``, the majority columns first).
- **Calibration** (in the bank): every calibrated real frame's counts, its segments voted on by the other frames'
  segments only (leave one frame out), one row per (class, frame).
- **Test** (:class:`SegmentTests`, :func:`count_limits`): for a frame's class ``c`` and each other class ``k``, the
  excess ``n_ck - mean_j(n_ck,j)`` over the real frames that hold ``c`` is held to the wider of ``margin`` x the
  normal prediction bound of the real frames' leave-one-out deviations
  (:func:`~simgap_ext.gate.tailbound.loo_deviation_bound`) and the Poisson count model's bound (negative binomial
  posterior predictive under Jeffreys' prior, minus the mean), never below :data:`COUNT_FLOOR` (1 segment, the
  resolution of a count); both at the per-class Bonferroni level divided by the number of (rule, other class)
  columns tested, ``1 - (1 - q_class) / (2 (C - 1))``. The class fails on its largest excess in units of its limit.

Measured (``benchmarks/segment_relabel.py``, 10 folds per set, docs/gate.md "Segment test"): per-segment AUC of
vehicle vs vegetation segments 0.90 (KITTI-360), 0.97 (nuScenes), 0.98 (MCD); the test alone flags no real held-out
scan and 30 / 80 / 90 % of scene-class relabels (KITTI-360 / nuScenes / MCD; 40 / 80 / 70 % with the majority rule
alone). The count model replaced a fixed floor of ``margin`` x 1 segment after that first rule flagged one real MCD
scan (MCD had been held out while the constants were chosen on KITTI-360 and nuScenes). The plurality rule was
added after comparing seven rules on all three sets (``benchmarks/segment_vote_rules.py``): a choice made on the
validation data itself, see docs/gate.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .frame_stats import ROUGHNESS_CLIP

__all__ = [
    "DESCRIPTOR_NAMES",
    "RULES",
    "SegmentIndex",
    "SegmentResult",
    "SegmentTests",
    "count_limits",
    "majority_vote",
    "pair_counts",
    "plurality_vote",
    "segment_counts",
    "segment_descriptors",
]

#: Voxel edge (metres) the class's points are clustered on (clustering voxels keeps the link graph small).
VOXEL = 0.25
#: Voxel centres closer than this (metres) belong to one segment: Euclidean clustering at half a metre.
LINK = 0.5
#: Segments with fewer points carry no shape.
MIN_SEGMENT_POINTS = 20
#: At most this many segments (the largest) per class and frame, in the bank and in a judged frame alike.
MAX_SEGMENTS_PER_CLASS = 256
#: Real segments voting on a segment (as the point-level plausibility votes).
K_SEGMENTS = 15
#: Horizontal cell (metres) of the local-ground estimate; the ground under a segment is the lowest point of the
#: 3 x 3 cells around its centre.
GROUND_CELL = 2.0
#: Resolution of a count: the smallest limit the excess of a (class, other class) count is held to.
COUNT_FLOOR = 1.0
#: Fewest real frames holding a class for its segment test.
MIN_SEGMENT_FRAMES = 3
#: The vote rules a class's segments are counted under, in the order of the count columns (:func:`segment_counts`).
RULES = ("majority", "plurality")

DESCRIPTOR_NAMES = (
    "length",
    "width",
    "height",
    "bottom_above_ground",
    "top_above_ground",
    "log_points_sr",
    "log_range",
    "linearity",
    "planarity",
    "scattering",
    "roughness",
)


def _pack(cells: np.ndarray) -> np.ndarray:
    """(M,) int64 one key per row of (M, D) non-negative int64 cells (1-D uniques are far faster than axis=0)."""
    key = np.zeros(cells.shape[0], np.int64)
    for d in range(cells.shape[1]):
        key = key * (int(cells[:, d].max(initial=0)) + 3) + cells[:, d]
    return key


class _Ground:
    """The lowest point of each GROUND_CELL x GROUND_CELL column of a frame."""

    def __init__(self, pts: np.ndarray) -> None:
        cells = np.floor(pts[:, :2] / GROUND_CELL).astype(np.int64)
        self._lo = cells.min(axis=0) - 1  # one spare cell on each side for the 3 x 3 neighbourhood
        rel = cells - self._lo
        self._width = int(rel[:, 1].max()) + 3
        keys, inv = np.unique(rel[:, 0] * self._width + rel[:, 1], return_inverse=True)
        self._keys = keys
        self._zmin = np.full(keys.shape[0], np.inf)
        np.minimum.at(self._zmin, inv.reshape(-1), pts[:, 2])

    def under(self, xy: np.ndarray) -> float:
        """Lowest z of the 3 x 3 cells around the cell of ``xy`` (inf when none holds a point)."""
        c = np.floor(xy / GROUND_CELL).astype(np.int64) - self._lo
        near = np.array([(c[0] + dx) * self._width + c[1] + dy for dx in (-1, 0, 1) for dy in (-1, 0, 1)])
        at = np.minimum(np.searchsorted(self._keys, near), self._keys.shape[0] - 1)
        hit = self._keys[at] == near
        return float(self._zmin[at[hit]].min()) if hit.any() else math.inf


def _clusters(p: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the Euclidean segments of ``p`` ((M, 3) float64) with >= MIN_SEGMENT_POINTS points."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    cells = np.floor(p / VOXEL).astype(np.int64)
    cells -= cells.min(axis=0)
    _, first, inv = np.unique(_pack(cells), return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    pairs = cKDTree((cells[first] + 0.5) * VOXEL).query_pairs(LINK, output_type="ndarray")
    m = first.shape[0]
    graph = coo_matrix((np.ones(pairs.shape[0], np.int8), (pairs[:, 0], pairs[:, 1])), shape=(m, m))
    _, lab = connected_components(graph, directed=False)
    plab = lab[inv]
    order = np.argsort(plab, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(plab[order])) + 1)
    return [g for g in groups if g.size >= MIN_SEGMENT_POINTS]


def _describe(q: np.ndarray, rough: np.ndarray, ground: _Ground) -> list[float]:
    mu = q.mean(axis=0)
    rng = max(float(np.linalg.norm(mu)), 1.0)
    xy = q[:, :2] - mu[:2]
    _, axes = np.linalg.eigh(np.cov(xy.T) + 1e-9 * np.eye(2))
    proj = xy @ axes
    span = np.percentile(np.c_[proj, q[:, 2]], [2, 98], axis=0)
    ext = np.sort(span[1, :2] - span[0, :2])[::-1]
    z_lo, z_hi = span[0, 2], span[1, 2]
    gz = ground.under(mu[:2])
    if not math.isfinite(gz):
        # A curved segment (a ring of hedge) can have its centre over empty cells: its own lowest point stands in.
        gz = float(q[:, 2].min())
    ev = np.sort(np.linalg.eigvalsh(np.cov(q.T) + 1e-9 * np.eye(3)))[::-1]
    s = np.sqrt(np.maximum(ev, 1e-12))
    r = rough[np.isfinite(rough)]
    return [
        float(ext[0]),
        float(ext[1]),
        float(z_hi - z_lo),
        float(z_lo - gz),
        float(z_hi - gz),
        math.log(q.shape[0] * rng * rng),
        math.log(rng),
        float((s[0] - s[1]) / s[0]),
        float((s[1] - s[2]) / s[0]),
        float(s[2] / s[0]),
        # A segment without smooth ring neighbours (sparse returns, foliage) reads as rough as the clip.
        float(np.minimum(np.abs(r), ROUGHNESS_CLIP).mean()) if r.size >= 5 else ROUGHNESS_CLIP,
    ]


def segment_descriptors(
    points: np.ndarray,
    class_of_point: np.ndarray,
    roughness: np.ndarray | None = None,
    *,
    skip: Sequence[int] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean segments of every class of a frame and their shape descriptors.

    Args:
        points: (N, 3) float points in the sensor frame (origin at the sensor).
        class_of_point: (N,) int class index of every point (e.g. ``FrameStats.class_of_point``).
        roughness: (N,) float signed range roughness (``FrameStats.roughness``; NaN where undefined), or None.
        skip: class indices not segmented (unlabelled points).

    Returns:
        ``(D, C)``: (S, 11) float32 descriptors (:data:`DESCRIPTOR_NAMES`) and (S,) int32 class index of each
        segment; per class at most :data:`MAX_SEGMENTS_PER_CLASS` segments, the largest.

    Raises:
        ValueError: wrong shapes or non-finite points.
    """
    pts = np.asarray(points, np.float64)
    cls = np.asarray(class_of_point).reshape(-1)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {pts.shape}")
    if cls.shape[0] != pts.shape[0]:
        raise ValueError(f"class_of_point must be ({pts.shape[0]},), got {cls.shape}")
    rough = np.full(pts.shape[0], np.nan) if roughness is None else np.asarray(roughness, np.float64).reshape(-1)
    if rough.shape[0] != pts.shape[0]:
        raise ValueError(f"roughness must be ({pts.shape[0]},), got {rough.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("points hold NaN or infinite coordinates")
    out: list[list[float]] = []
    owner: list[int] = []
    if pts.shape[0] == 0:
        return np.zeros((0, len(DESCRIPTOR_NAMES)), np.float32), np.zeros(0, np.int32)
    ground = _Ground(pts)
    for c in np.unique(cls).tolist():
        if c in skip:
            continue
        sel = np.flatnonzero(cls == c)
        if sel.size < MIN_SEGMENT_POINTS:
            continue
        groups = sorted(_clusters(pts[sel]), key=lambda g: -g.size)[:MAX_SEGMENTS_PER_CLASS]
        for g in groups:
            out.append(_describe(pts[sel[g]], rough[sel[g]], ground))
            owner.append(int(c))
    desc = np.asarray(out, np.float32).reshape(-1, len(DESCRIPTOR_NAMES))
    return desc, np.asarray(owner, np.int32)


class SegmentIndex:
    """Real segments that vote on a frame's segments (KD-tree over scaled descriptors).

    Args:
        desc: (S, 11) real segment descriptors; ``cls`` (S,) int their class index; ``frame`` (S,) int their frame.
        n_classes: number of classes (columns of the counts).
    """

    def __init__(self, desc: np.ndarray, cls: np.ndarray, frame: np.ndarray, n_classes: int) -> None:
        from scipy.spatial import cKDTree

        self._desc = np.asarray(desc, np.float64).reshape(-1, len(DESCRIPTOR_NAMES))
        self._cls = np.asarray(cls, np.int64).reshape(-1)
        self._frame = np.asarray(frame, np.int64).reshape(-1)
        if not self._cls.shape[0] == self._frame.shape[0] == self._desc.shape[0]:
            raise ValueError("segment descriptors, classes and frames differ in length")
        self.n_classes = int(n_classes)
        sd = self._desc.std(axis=0) if self._desc.shape[0] else np.ones(len(DESCRIPTOR_NAMES))
        self._scale = np.where(sd > 1e-9, sd, 1.0)
        self._tree = cKDTree(self._desc / self._scale) if self._desc.shape[0] else None

    def __len__(self) -> int:
        return int(self._desc.shape[0])

    def tallies(self, desc: np.ndarray, *, exclude_frame: int | None = None) -> np.ndarray:
        """(Q, n_classes) int64 votes of each segment's :data:`K_SEGMENTS` nearest real segments per class (fewer
        than :data:`K_SEGMENTS` in all only when the bank holds fewer); real segments of ``exclude_frame`` do not
        vote."""
        q = np.asarray(desc, np.float64).reshape(-1, len(DESCRIPTOR_NAMES))
        out = np.zeros((q.shape[0], self.n_classes), np.int64)
        if self._tree is None or q.shape[0] == 0:
            return out
        own = 0 if exclude_frame is None else int((self._frame == exclude_frame).sum())
        k = min(K_SEGMENTS + own, len(self))
        _, nn = self._tree.query(q / self._scale, k=k)
        nn = nn.reshape(q.shape[0], k)
        for i in range(q.shape[0]):
            row = nn[i]
            if own:
                row = row[self._frame[row] != exclude_frame]
            out[i] = np.bincount(self._cls[row[:K_SEGMENTS]], minlength=self.n_classes)
        return out

    def majority(self, desc: np.ndarray, *, exclude_frame: int | None = None) -> np.ndarray:
        """(Q,) int64 the class most of each segment's :data:`K_SEGMENTS` nearest real segments hold, -1 without
        a majority (more than half of the votes); real segments of ``exclude_frame`` do not vote."""
        return majority_vote(self.tallies(desc, exclude_frame=exclude_frame))


def majority_vote(tally: np.ndarray) -> np.ndarray:
    """(Q,) int64 the class holding more than half of each row's votes, -1 where none does.

    Args:
        tally: (Q, C) int votes per segment and class (:meth:`SegmentIndex.tallies`).
    """
    t = np.asarray(tally, np.int64).reshape(tally.shape[0], -1)
    top = t.argmax(axis=1) if t.shape[1] else np.zeros(t.shape[0], np.int64)
    won = t[np.arange(t.shape[0]), top] * 2 > t.sum(axis=1) if t.shape[1] else np.zeros(t.shape[0], bool)
    return np.where(won, top, -1).astype(np.int64)


def plurality_vote(tally: np.ndarray, seg_class: np.ndarray) -> np.ndarray:
    """(Q,) int64 where a segment's own class holds less than half its votes, the other class holding the most
    (the lowest index on a tie); -1 elsewhere and for a segment without votes.

    A relabelled object often wins no majority for its true class (its votes split between, say, ``static_object``
    and ``pedestrian``), yet its new class holds few of them: this catches it where :func:`majority_vote` cannot.

    Args:
        tally: (Q, C) int votes per segment and class; ``seg_class`` (Q,) int each segment's own class.
    """
    t = np.asarray(tally, np.int64).reshape(tally.shape[0], -1)
    own = np.asarray(seg_class, np.int64).reshape(-1)
    rows = np.arange(t.shape[0])
    total = t.sum(axis=1)
    other = t.copy()
    other[rows, own] = -1
    lost = (total > 0) & (t[rows, own] * 2 < total)
    return np.where(lost, other.argmax(axis=1) if t.shape[1] else -1, -1).astype(np.int64)


def segment_counts(tally: np.ndarray, seg_class: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, 2 n_classes) float64 a frame's pair counts under both vote rules (:data:`RULES`): columns
    ``[0, C)`` the segments whose *majority* is another class (:func:`majority_vote`), ``[C, 2C)`` those whose own
    class holds under half the votes, by the other class with the most (:func:`plurality_vote`).

    Args:
        tally: (S, C) votes of the frame's segments (:meth:`SegmentIndex.tallies`); ``seg_class`` (S,) int their
            classes; ``n_classes`` C.
    """
    cls = np.asarray(seg_class, np.int64).reshape(-1)
    return np.hstack(
        [
            pair_counts(cls, majority_vote(tally), n_classes),
            pair_counts(cls, plurality_vote(tally, cls), n_classes),
        ]
    )


def pair_counts(seg_class: np.ndarray, majority: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) float64: entry ``[c, k]`` (k != c) counts class ``c``'s segments that look like ``k``.

    Args:
        seg_class: (S,) int class index of each segment; ``majority`` (S,) int its majority vote (-1: none).
        n_classes: number of classes.
    """
    out = np.zeros((n_classes, n_classes), np.float64)
    sel = (majority >= 0) & (majority != seg_class)
    np.add.at(out, (np.asarray(seg_class)[sel], np.asarray(majority)[sel]), 1.0)
    return out


def _count_model(total: np.ndarray | float, frames: int) -> tuple[np.ndarray | float, float]:
    """(r, p) of the negative binomial posterior predictive of one more frame's count, after ``total`` segments in
    ``frames`` real frames, of a Poisson rate under Jeffreys' prior."""
    return np.asarray(total, np.float64) + 0.5, frames / (frames + 1.0)


def count_limits(rows: np.ndarray, level: float, margin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, largest value and limit of the excess of each column of real frames' counts.

    Two prediction bounds of a new frame's count, the wider taken: the frames' own spread (normal model,
    :func:`~simgap_ext.gate.tailbound.loo_deviation_bound` of the leave-one-out deviations ``|v_j - mean(v_-j)|``,
    times ``margin`` as every d_max), and the Poisson count model's (the posterior predictive of a Poisson rate
    under Jeffreys' prior after ``S`` segments in ``n`` frames, a negative binomial with ``r = S + 1/2``,
    ``p = n / (n + 1)``, quantile at ``level``, minus the mean). The second is what a column of zeros needs (a class
    whose real segments never looked like ``k`` in ``n`` frames has no spread, yet a new frame may hold one or two).

    Args:
        rows: (n, C) counts of one class in ``n >= 2`` real frames (each frame voted on by the others).
        level: coverage of the prediction bounds, in (0, 1).
        margin: factor on the normal-model bound (``calibration_margin``).

    Returns:
        (C,) float64 each: the mean, the maximum, and the limit of ``count - mean``.

    Raises:
        ValueError: fewer than 2 rows, negative counts, level outside (0, 1).
    """
    from scipy.stats import nbinom

    from .tailbound import loo_deviation_bound

    v = np.asarray(rows, np.float64)
    if v.ndim != 2 or v.shape[0] < 2:
        raise ValueError(f"counts must be (n >= 2, C), got {v.shape}")
    if not np.isfinite(v).all() or (v < 0).any():
        raise ValueError("counts must be finite and >= 0")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    n = v.shape[0]
    mean = v.mean(axis=0)
    dev = np.abs(v - (v.sum(axis=0) - v) / (n - 1))
    spread = margin * np.array([loo_deviation_bound(dev[:, k], level) for k in range(v.shape[1])])
    poisson = nbinom.ppf(level, *_count_model(v.sum(axis=0), n)) - mean
    return mean, v.max(axis=0), np.maximum(np.maximum(spread, poisson), COUNT_FLOOR)


@dataclass
class SegmentResult:
    """The segment test of one class: its worst (class, other class, rule) count.

    Attributes:
        other: the class its segments look like; ``count`` how many do; ``real_mean`` / ``real_max`` the real
            frames' counts; ``n_real`` the real frames holding the class; ``limit`` the excess it is held to;
            ``rule`` the vote rule of the count (:data:`RULES`); ``level`` the coverage of the bound ``limit``
            comes from (:class:`SegmentTests`: the per-class level, Bonferroni-divided over the columns tested).
    """

    other: str
    count: float
    real_mean: float
    real_max: float
    n_real: int
    limit: float
    rule: str = "majority"
    level: float = 0.0

    @property
    def excess(self) -> float:
        """``count - real_mean``."""
        return self.count - self.real_mean

    @property
    def tail_probability(self) -> float:
        """Probability of ``count`` or more under the count model the limit's Poisson bound comes from (the real
        frames' total, ``real_mean x n_real``, under Jeffreys' prior); compare with ``1 - level``."""
        from scipy.stats import nbinom

        count = round(self.count)
        if count <= 0:
            return 1.0
        return float(nbinom.sf(count - 1, *_count_model(self.real_mean * self.n_real, self.n_real)))

    @property
    def failed(self) -> bool:
        """Whether the excess is beyond the limit."""
        return self.excess > self.limit

    def reason(self, class_name: str) -> str:
        """The failure reason with its numbers."""
        how = "look like" if self.rule == "majority" else f"hold under half {class_name} votes, most for"
        return (
            f"class {class_name}: {self.count:.0f} segment(s) {how} {self.other} (real frames: mean "
            f"{self.real_mean:.1f}, at most {self.real_max:.0f} in {self.n_real}); excess {self.excess:.1f} > "
            f"{self.limit:.1f} ({self.excess / self.limit:.2f}x): relabelled {self.other}?"
        )


class SegmentTests:
    """Per-class segment tests of one bank (format 7: segment descriptors and leave-one-out counts under both vote
    rules; a format 6 bank holds the majority counts only, and is tested on those).

    Args:
        bank: a :class:`~simgap_ext.gate.ReferenceBank`.
        margin: factor on the bound (``calibration_margin``).
    """

    def __init__(self, bank: object, margin: float) -> None:
        self._bank = bank
        names = list(bank.class_names)  # type: ignore[attr-defined]
        self._names = names
        self._index = SegmentIndex(bank.seg_desc, bank.seg_class, bank.seg_frame, len(names))  # type: ignore[attr-defined]
        n = len(names)
        cols = int(bank.seg_count.shape[1]) if bank.seg_count.shape[0] else 0  # type: ignore[attr-defined]
        #: How many vote rules the bank's counts hold (2 from format 7 on, 1 before).
        self.rules = cols // n if n and cols in (n, 2 * n) else 0
        q_class = float(bank.meta.get("calibration_class_quantile", 0.0))  # type: ignore[attr-defined]
        tested = max(1, self.rules * (int(np.unique(bank.seg_class).size) - 1))  # type: ignore[attr-defined]
        # Bonferroni over the (rule, other class) columns a class is tested on, on top of the per-class level.
        self._level = 1.0 - (1.0 - q_class) / tested if 0.0 < q_class < 1.0 else 0.0
        self._margin = float(margin)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, int] | None] = {}

    @property
    def available(self) -> bool:
        """Whether the bank holds segments and leave-one-out counts to test against."""
        return bool(len(self._index)) and self.rules > 0 and self._level > 0.0

    def counts(self, desc: np.ndarray, seg_class: np.ndarray) -> np.ndarray:
        """(C, rules x C) pair counts of a frame's segments (class indices of the bank), voted on by every real
        segment (:func:`segment_counts`; the majority columns only for a format 6 bank)."""
        n = len(self._names)
        return segment_counts(self._index.tallies(desc), seg_class, n)[:, : self.rules * n]

    def _fit(self, ci: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
        if ci not in self._cache:
            rows = self._bank.seg_count[self._bank.seg_count_class == ci]  # type: ignore[attr-defined]
            fit = count_limits(rows, self._level, self._margin) if rows.shape[0] >= MIN_SEGMENT_FRAMES else None
            self._cache[ci] = None if fit is None else (*fit, rows.shape[0])
        return self._cache[ci]

    def evaluate(self, reference: str, counts_row: np.ndarray) -> SegmentResult | None:
        """The segment test of a frame's class judged as ``reference`` (None without one).

        Args:
            reference: the bank class the frame's class is compared with.
            counts_row: (rules x C,) its segments' counts per rule and class they look like (a row of
                :meth:`counts`).
        """
        if not self.available or reference not in self._names:
            return None
        ci = self._names.index(reference)
        fit = self._fit(ci)
        if fit is None:
            return None
        mean, real_max, limit, n_real = fit
        n = len(self._names)
        ratio = (np.asarray(counts_row, np.float64) - mean) / limit
        ratio[ci::n] = -np.inf  # a class's own columns under every rule
        j = int(np.argmax(ratio))
        return SegmentResult(
            self._names[j % n],
            float(counts_row[j]),
            float(mean[j]),
            float(real_max[j]),
            n_real,
            float(limit[j]),
            RULES[j // n],
            self._level,
        )
