"""Per-frame statistics the gate compares with the real reference (pure NumPy).

One pass over a validated frame gives everything the reference bank stores and the gate scores:

- instance *crops* of every object class in a canonical pose: translated so that the crop's ground contact
  point (median position, lowest z) is the origin and rotated about z so that the sensor looks along +x; the
  same object seen at the same range then lands on the same points wherever it stands in the scene;
- the *range roughness* of each point: on its scan ring, the range minus the mean range of its two azimuth
  neighbours (same ring, adjacent columns, same instance). On any smooth surface this second difference is
  ~0 for an ideal sensor and ~N(0, 1.5 sigma^2) with range noise sigma, whatever the scene, so it separates
  ideal from realistic scans where Chamfer distances cannot (noise is small next to the ring spacing);
- *ring continuity* per class: the share of points with an adjacent-column neighbour on their ring;
- per-beam *return ratios* (returns per ring / columns per revolution): ray drop and incidence drop lower
  them, an ideal sensor returns every ray that hits something;
- the frame's range distribution.

Rings come from the sensor profile's beam table (points must be in the sensor frame, origin at the sensor, or
the frame must carry ``sensor_origin``); without a profile, rings are found by quantising elevations. Columns per
revolution are *measured* on the frame (:func:`measured_columns`): the profile's datasheet count holds at one
rotation rate only (an HDL-32E fires 2170 columns a turn at 10 Hz, 1085 at 20 Hz as in nuScenes), and ring
neighbours judged on the wrong azimuth step are never adjacent, which would silently empty every ring statistic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..frame import id_to_class

__all__ = [
    "Crop",
    "FrameStats",
    "frame_stats",
    "finish_frame_stats",
    "DEFERRABLE",
    "canonical_crop",
    "ring_ids",
    "range_roughness",
    "measured_columns",
    "ROUGHNESS_CLIP",
]

log = logging.getLogger(__name__)

# Roughness beyond this (metres) is a depth edge or a mixed pixel, not surface noise: clipping keeps those rare
# large values from dominating the Wasserstein distance, which should measure the noise floor.
ROUGHNESS_CLIP = 0.1
# Ring neighbours whose ranges differ by more than this (metres) lie on different surfaces: the pair straddles
# a depth edge or involves a mixed pixel. Range noise (centimetres) stays far below it.
SURFACE_GAP = 0.3
# Returns closer than this (metres) are no-return encodings, not measurements (sensor minimum ranges: 0.5-1 m).
NO_RETURN_RANGE = 0.3
# Without a beam table, elevations closer than this (degrees) are one ring; real beam spacings are >= 0.1 deg.
_RING_QUANTUM_DEG = 0.05
# Column measurement: fewest same-ring azimuth gaps to measure from (fewer: the nominal count is kept), the
# log-width of the histogram bins the modal gap is found with, the half-width (log) of the window around the mode
# whose median is the step (real firings jitter by a few per cent), and the relative deviation from the nominal
# count within which the nominal count is kept (a measured 1081 on a 1085-column sensor is jitter, not a rate).
_MIN_COLUMN_GAPS = 200
_GAP_BIN_LOG = 0.05
_GAP_WINDOW_LOG = 0.2
_NOMINAL_TOLERANCE = 0.1
#: Parts of the statistics that :func:`frame_stats` can leave to :func:`finish_frame_stats` (``skip``): a render
#: worker computes the rest beside the render and the gate's process these, which balances the two processes.
DEFERRABLE = ("origin", "descriptors")


@dataclass
class Crop:
    """One instance crop.

    Attributes:
        class_name: semantic class.
        instance: instance id in the frame.
        points: (K, 3) float32 canonical-pose *surface* points (those with a surface neighbour on their ring;
            K may be 0): mixed-pixel veils trail metres behind silhouettes and would dominate any shape distance.
        range: horizontal distance of the surface points' x-y median from the sensor, metres.
        total_points: every point of the instance, veils included.
        roughness: (R,) float32 min(|range second difference|, ROUGHNESS_CLIP) where defined (R <= K).
    """

    class_name: str
    instance: int
    points: np.ndarray
    range: float
    roughness: np.ndarray
    total_points: int = 0

    @property
    def n_points(self) -> int:
        """Number of (surface) points in the crop."""
        return int(self.points.shape[0])


@dataclass
class FrameStats:
    """Statistics of one frame (see module docstring).

    Attributes:
        n_points: points in the frame.
        class_points: class name -> number of points.
        class_instances: class name -> number of distinct instance ids != 0.
        zero_instance_classes: object classes whose points all carry instance id 0.
        crops: instance crops of object classes (every size; the gate filters by ``min_points``).
        ranges: (N,) float32 distance of every point from the sensor, metres.
        roughness: (N,) float32 signed range second difference, NaN where undefined.
        adjacent: (N,) bool the point is a *surface* point: it has an adjacent-column neighbour on its ring in
            the same segment within ``SURFACE_GAP`` metres of range (mixed pixels and lone returns have none).
        continuous: (N,) bool the point has an adjacent-column neighbour on its ring in the same segment, at
            any range (ray drop breaks rings a little, subsampling or displaced points break them a lot).
        class_of_point: (N,) int32 index into ``class_list``.
        class_list: class names indexed by ``class_of_point``.
        beam_ratio: (B,) float32 return ratio per beam, or ``None`` without a beam table.
        duplicate_fraction: share of points that coincide with another point (within the tolerance).
        columns: columns per revolution the ring statistics used (measured on the frame, see
            :func:`measured_columns`), ``None`` without a profile column count.
        heights: (N,) float32 sensor-frame z of every point.
        desc_index: (S,) int64 points with a local-geometry descriptor; ``descriptors`` (S, 6) float32 those.
        origin_offset: (2,) float64 apparent horizontal offset of the sensor from the origin, metres
            (:func:`~simgap_ext.gate.origin.apparent_origin`), or None when too few azimuth sectors hold a return.
    """

    n_points: int
    class_points: dict[str, int]
    class_instances: dict[str, int]
    zero_instance_classes: list[str]
    crops: list[Crop]
    ranges: np.ndarray
    roughness: np.ndarray
    adjacent: np.ndarray
    continuous: np.ndarray
    class_of_point: np.ndarray
    class_list: list[str]
    beam_ratio: np.ndarray | None
    duplicate_fraction: float
    extra: dict[str, Any] = field(default_factory=dict)
    heights: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    desc_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    descriptors: np.ndarray = field(default_factory=lambda: np.zeros((0, 6), np.float32))
    columns: int | None = None
    origin_offset: np.ndarray | None = None
    #: parts of :data:`DEFERRABLE` not computed yet (:func:`finish_frame_stats` computes them)
    pending: tuple[str, ...] = ()

    def class_descriptors(self, class_name: str) -> np.ndarray:
        """(S_c, 6) float32 local-geometry descriptors (:mod:`~simgap_ext.gate.plausibility`) of a class's points."""
        if not self.desc_index.size:
            return self.descriptors[:0]
        return self.descriptors[self.class_mask(class_name)[self.desc_index]]

    def class_mask(self, class_name: str) -> np.ndarray:
        """(N,) bool the points of one class (all False when the class is absent)."""
        if class_name not in self.class_list:
            return np.zeros(self.n_points, dtype=bool)
        return self.class_of_point == self.class_list.index(class_name)

    def class_heights(self, class_name: str) -> np.ndarray:
        """(K,) float32 sensor-frame z of one class's points (what a class looks like from the side)."""
        if self.heights.shape[0] != self.n_points:
            return np.zeros(0, np.float32)
        return self.heights[self.class_mask(class_name)]

    def class_share(self, class_name: str) -> float:
        """Share of the frame's points that carry this class (0 when absent or the frame is empty)."""
        return self.class_points.get(class_name, 0) / self.n_points if self.n_points else 0.0

    def class_roughness(self, class_name: str, clip: float = ROUGHNESS_CLIP) -> np.ndarray:
        """(R,) float32 min(|roughness|, clip) of one class's points where defined."""
        if class_name not in self.class_list:
            return np.zeros(0, np.float32)
        sel = self.class_of_point == self.class_list.index(class_name)
        r = self.roughness[sel]
        return np.minimum(np.abs(r[np.isfinite(r)]), clip).astype(np.float32)

    def scene_roughness(self, clip: float = ROUGHNESS_CLIP) -> np.ndarray:
        """(R,) float32 min(|roughness|, clip) of all points where defined."""
        r = self.roughness
        return np.minimum(np.abs(r[np.isfinite(r)]), clip).astype(np.float32)

    def class_density(self, class_name: str) -> float | None:
        """Ring continuity of a class: share of its points with a continuous ring neighbour (None if absent)."""
        if class_name not in self.class_list:
            return None
        sel = self.class_of_point == self.class_list.index(class_name)
        return float(self.continuous[sel].mean()) if sel.any() else None


def canonical_crop(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Move a crop into the canonical pose (see module docstring).

    Args:
        points: (K, 3) float32 points in the sensor frame, K >= 1.

    Returns:
        ((K, 3) float32 canonical points, horizontal range of the crop's median position in metres).
    """
    pts = np.asarray(points, dtype=np.float64)
    # Bearing from the mean: mixed-pixel veils lie along rays, so they hardly move the bearing. The position
    # along and across the view is then the median in the rotated frame (veils drag a mean far behind), which
    # keeps the whole construction rotation-equivariant.
    yaw = float(np.arctan2(pts[:, 1].mean(), pts[:, 0].mean()))
    c, s = np.cos(-yaw), np.sin(-yaw)
    x = c * pts[:, 0] - s * pts[:, 1]
    y = s * pts[:, 0] + c * pts[:, 1]
    mx, my = float(np.median(x)), float(np.median(y))
    rng = float(np.hypot(mx, my))
    out = np.empty_like(pts)
    out[:, 0] = x - mx
    out[:, 1] = y - my
    out[:, 2] = pts[:, 2] - pts[:, 2].min()
    return out.astype(np.float32), rng


def ring_ids(points: np.ndarray, vertical_angles_deg: Sequence[float] | None = None) -> np.ndarray:
    """Scan ring of each point.

    Args:
        points: (N, 3) float32 points in the sensor frame.
        vertical_angles_deg: (B,) beam elevations; ``None`` quantises elevations instead.

    Returns:
        (N,) int64 ring ids (beam index with a table, else an arbitrary but consistent id).
    """
    pts = np.asarray(points, dtype=np.float64)
    elev = np.degrees(np.arctan2(pts[:, 2], np.hypot(pts[:, 0], pts[:, 1])))
    if vertical_angles_deg is None or len(vertical_angles_deg) == 0:
        return np.round(elev / _RING_QUANTUM_DEG).astype(np.int64)
    beams = np.asarray(vertical_angles_deg, dtype=np.float64)
    order = np.argsort(beams)
    sorted_b = beams[order]
    idx = np.clip(np.searchsorted(sorted_b, elev), 1, len(sorted_b) - 1) if len(sorted_b) > 1 else np.zeros_like(elev)
    idx = np.asarray(idx, dtype=np.int64)
    if len(sorted_b) > 1:
        left = sorted_b[idx - 1]
        right = sorted_b[idx]
        idx = np.where(np.abs(elev - left) <= np.abs(elev - right), idx - 1, idx)
    return order[idx].astype(np.int64)


def measured_columns(
    points: np.ndarray, rings: np.ndarray, nominal: int | None = None, *, min_gaps: int = _MIN_COLUMN_GAPS
) -> int | None:
    """Columns per revolution a frame actually has, from the azimuth gaps between consecutive returns of a ring.

    The step is the *modal* gap (median of the gaps within a few per cent of the histogram mode), not the median:
    ray drop and subsampling remove returns at random, which makes gaps of 2, 3, ... steps, but one step stays the
    most frequent gap (geometric distribution), so a thinned frame is not mistaken for a slower-spinning sensor.

    Args:
        points: (N, 3) float32 sensor-frame points (returns closer than ``NO_RETURN_RANGE`` are ignored).
        rings: (N,) int64 ring id per point.
        nominal: the sensor profile's columns per revolution; returned when the measurement lies within 10 % of
            it (jitter) or when the frame has too few same-ring gaps to measure.
        min_gaps: fewest same-ring gaps a measurement needs.

    Returns:
        Columns per revolution (``nominal``, possibly ``None``, when not measurable).
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[0] < 2:
        return nominal
    az, order = _ring_order(pts, rings)
    return _columns_in_order(pts, rings, az, order, nominal, min_gaps)


def _ring_order(pts: np.ndarray, rings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((N,) float64 azimuth, (N,) int64 permutation ordering the points by ring, then azimuth): the one sort that
    :func:`measured_columns` and :func:`range_roughness` both walk (``frame_stats`` computes it once for both)."""
    az = np.arctan2(pts[:, 1], pts[:, 0])
    rings = np.asarray(rings)
    if not rings.size or not (0 <= rings.min() and rings.max() < 1 << 15):
        return az, np.lexsort((az, rings))
    # np.lexsort((az, rings)), 7x faster on os1-128 frames: a stable sort by ring (int16: NumPy's radix sort), then a
    # stable sort by azimuth within each ring, whose points a spinning scan already holds in firing order (a few
    # sorted runs). Both order by (ring, azimuth, index).
    by_ring = np.argsort(rings.astype(np.int16), kind="stable")
    ring_sorted, az_sorted = rings[by_ring], az[by_ring]
    cuts = [0, *(np.flatnonzero(ring_sorted[1:] != ring_sorted[:-1]) + 1).tolist(), int(rings.size)]
    order = np.empty_like(by_ring)
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        order[lo:hi] = by_ring[lo:hi][np.argsort(az_sorted[lo:hi], kind="stable")]
    return az, order


def _columns_in_order(
    pts: np.ndarray, rings: np.ndarray, az: np.ndarray, order: np.ndarray, nominal: int | None, min_gaps: int
) -> int | None:
    """:func:`measured_columns` on float64 points already sorted by :func:`_ring_order`."""
    # No-return encodings are dropped after the sort: the sort is stable, so the kept points keep the order a
    # sort of the kept points alone would give them.
    keep = (np.einsum("ij,ij->i", pts, pts) >= NO_RETURN_RANGE**2)[order]
    az_s = az[order][keep]
    rg_s = np.asarray(rings)[order][keep]
    gap = np.diff(az_s)
    gap = gap[(rg_s[1:] == rg_s[:-1]) & (gap > 1e-7)]
    if gap.size < min_gaps:
        return nominal
    lg = np.log(gap)
    n_bins = max(1, int(np.ceil((lg.max() - lg.min()) / _GAP_BIN_LOG)))
    hist, edges = np.histogram(lg, bins=n_bins)
    mode = 0.5 * (edges[hist.argmax()] + edges[hist.argmax() + 1])
    step = float(np.exp(np.median(lg[np.abs(lg - mode) <= _GAP_WINDOW_LOG])))
    columns = int(round(2.0 * np.pi / step))
    if columns < 1:
        return nominal
    if nominal and abs(columns / float(nominal) - 1.0) <= _NOMINAL_TOLERANCE:
        return int(nominal)
    return columns


def range_roughness(
    points: np.ndarray,
    rings: np.ndarray,
    labels: np.ndarray,
    *,
    azimuth_step: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ring-neighbour analysis: range second difference, surface points, ring continuity.

    Two ring neighbours are *continuous* when they lie on the same ring in adjacent columns (azimuth gap <= 1.5
    steps: float jitter counts, a dropped ray in between does not) and carry the same segment label; they are
    on one *surface* when, in addition, their ranges differ by at most ``SURFACE_GAP``.

    Args:
        points: (N, 3) float32 sensor-frame points.
        rings: (N,) int64 ring id per point.
        labels: (N,) int64 segment label per point (e.g. class << 32 | instance): neighbours from two segments
            straddle a depth edge.
        azimuth_step: column spacing in radians; ``None`` estimates it as the median gap on the rings.

    Returns:
        ((N,) float32 ``r_i - (r_{i-1} + r_{i+1}) / 2`` where point i has a surface neighbour on both sides,
        NaN elsewhere; (N,) bool point i has a surface neighbour on at least one side; (N,) bool point i has a
        continuous neighbour on at least one side).
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[0] < 2:
        n = pts.shape[0]
        return np.full(n, np.nan, dtype=np.float32), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    az, order = _ring_order(pts, rings)
    return _roughness_in_order(pts, rings, labels, az, order, azimuth_step)


def _roughness_in_order(
    pts: np.ndarray,
    rings: np.ndarray,
    labels: np.ndarray,
    az: np.ndarray,
    order: np.ndarray,
    azimuth_step: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`range_roughness` on float64 points already sorted by :func:`_ring_order`."""
    n = pts.shape[0]
    residual = np.full(n, np.nan, dtype=np.float32)
    surface = np.zeros(n, dtype=bool)
    continuous = np.zeros(n, dtype=bool)
    r = _norms(pts)
    rs, azs, rgs, lbs = r[order], az[order], rings[order], labels[order]
    gap = np.diff(azs)
    same_ring = rgs[1:] == rgs[:-1]
    if azimuth_step is None:
        g = gap[same_ring & (gap > 0)]
        if g.size == 0:
            return residual, surface, continuous
        azimuth_step = float(np.median(g))
    cont_pair = same_ring & (gap > 0) & (gap <= 1.5 * azimuth_step) & (lbs[1:] == lbs[:-1])
    surf_pair = cont_pair & (np.abs(np.diff(rs)) <= SURFACE_GAP)
    for pair, out in ((cont_pair, continuous), (surf_pair, surface)):
        flag = np.zeros(n, dtype=bool)
        flag[1:] |= pair
        flag[:-1] |= pair
        out[order] = flag
    if n >= 3:
        mid = surf_pair[:-1] & surf_pair[1:]
        res = rs[1:-1] - 0.5 * (rs[:-2] + rs[2:])
        vals = np.full(n, np.nan)
        vals[1:-1] = np.where(mid, res, np.nan)
        residual[order] = vals.astype(np.float32)
    return residual, surface, continuous


def frame_stats(
    frame: Mapping[str, Any],
    *,
    vertical_angles_deg: Sequence[float] | None = None,
    horizontal_resolution: int | None = None,
    reference_columns: int | None = None,
    background_classes: Sequence[str] = (),
    duplicate_tolerance: float = 1e-4,
    skip: Sequence[str] = (),
) -> FrameStats:
    """Compute :class:`FrameStats` of a validated frame.

    Args:
        frame: a frame validated by :func:`simgap_ext.frame.validate_frame` (sensor frame, or with a
            ``sensor_origin`` (3,) key for world-frame points).
        vertical_angles_deg: the sensor's beam table (enables beam return ratios and exact rings).
        horizontal_resolution: the profile's columns per revolution (enables return ratios and the exact azimuth
            step); a frame that measurably has another count (another rotation rate, :func:`measured_columns`)
            is judged on its own count, recorded in :attr:`FrameStats.columns`.
        reference_columns: columns per revolution of the real reference (the bank's measured count). The beam
            return ratios are counted against it when given: ring neighbours need the frame's own count, but a
            frame that fires fewer columns than the real sensor (another rotation rate, or every k-th column kept)
            returns fewer points per beam than the real scans, and its ratios must show that.
        background_classes: classes never cropped into instances.
        duplicate_tolerance: grid size (metres) under which two points count as duplicates.
        skip: parts of :data:`DEFERRABLE` left out (listed in :attr:`FrameStats.pending`; complete them with
            :func:`finish_frame_stats`, which gives exactly what computing them here would).

    Returns:
        The frame's statistics.
    """
    unknown = sorted(set(skip) - set(DEFERRABLE))
    if unknown:
        raise ValueError(f"cannot skip {unknown} (deferrable parts: {', '.join(DEFERRABLE)})")
    pts = _sensor_points(frame)
    sem = np.asarray(frame["info"]["pointSemantic"]).astype(np.int64)
    inst = np.asarray(frame["info"]["pointInstance"]).astype(np.int64)
    names = id_to_class(frame)
    n = pts.shape[0]
    class_list = sorted(set(names.values()))
    lut = {sid: class_list.index(c) for sid, c in names.items()}
    class_of_point = np.zeros(n, np.int32)
    for sid, ci in lut.items():
        class_of_point[sem == sid] = ci

    class_points: dict[str, int] = {}
    class_instances: dict[str, int] = {}
    zero_instance: list[str] = []
    crops: list[Crop] = []
    background = set(background_classes)

    rings = ring_ids(pts, vertical_angles_deg) if n else np.zeros(0, np.int64)
    # One ring/azimuth sort serves the column count and the ring-neighbour analysis (both also hold for N < 2).
    pts64 = pts.astype(np.float64)
    az, order = _ring_order(pts64, rings)
    columns = (
        _columns_in_order(pts64, rings, az, order, horizontal_resolution, _MIN_COLUMN_GAPS)
        if horizontal_resolution
        else None
    )
    step = 2 * np.pi / columns if columns else None
    rough, adjacent, continuous = _roughness_in_order(
        pts64, rings, class_of_point.astype(np.int64) << 32 | inst, az, order, step
    )

    for ci, cname in enumerate(class_list):
        sel = class_of_point == ci
        count = int(sel.sum())
        if count == 0:
            continue
        class_points[cname] = count
        ids = np.unique(inst[sel])
        nonzero = ids[ids != 0]
        class_instances[cname] = int(nonzero.size)
        if cname in background:
            continue
        if nonzero.size == 0:
            zero_instance.append(cname)
            continue
        # Instances are picked from the class's own points (ascending indices, the order a frame-wide boolean mask
        # gives): one pass over the class per instance instead of four over the frame.
        members = np.flatnonzero(sel)
        member_inst = inst[members]
        for iid in nonzero:
            m = members[member_inst == iid]
            core = m[adjacent[m]]
            total = int(m.size)
            if not core.size:
                # Lone returns / veils only: nothing to compare a shape with; still counted as an instance.
                crops.append(Crop(cname, int(iid), np.zeros((0, 3), np.float32), 0.0, np.zeros(0, np.float32), total))
                continue
            canon, rng = canonical_crop(pts[core])
            rr = rough[m]
            rr = np.minimum(np.abs(rr[np.isfinite(rr)]), ROUGHNESS_CLIP).astype(np.float32)
            crops.append(Crop(cname, int(iid), canon, rng, rr, total))

    ranges = _norms(pts).astype(np.float32) if n else np.zeros(0, np.float32)
    parts = _deferrable_parts(pts, [p for p in DEFERRABLE if p not in skip])
    beam_ratio = None
    if vertical_angles_deg is not None and columns and n:
        counts = np.bincount(rings, minlength=len(vertical_angles_deg))[: len(vertical_angles_deg)]
        beam_ratio = (counts / float(reference_columns or columns)).astype(np.float32)
    dup = 0.0
    # Points within NO_RETURN_RANGE of the sensor are no-return encodings (nuScenes keeps them at the origin),
    # not an accumulated capture: they do not count as duplicates.
    no_return = ranges < NO_RETURN_RANGE
    far = pts[~no_return] if no_return.any() else pts  # a render has none: no copy of the frame
    if far.shape[0] > 1:
        q = np.floor(far / float(duplicate_tolerance)).astype(np.int64)
        # One 64-bit key per grid cell (wrapping multiply-xor mix): a 1-D unique is several times faster than
        # np.unique(axis=0); two distinct cells colliding has probability ~n^2 / 2^64, i.e. never in practice.
        with np.errstate(over="ignore"):
            key = (q[:, 0] * np.int64(-7046029254386353131)) ^ (q[:, 1] * np.int64(0x27D4EB2F165667C5))
            key = key ^ (q[:, 2] * np.int64(0x165667B19E3779F9))
        key.sort()
        dup = float(np.count_nonzero(key[1:] == key[:-1]) / far.shape[0])
    return FrameStats(
        n_points=n,
        class_points=class_points,
        class_instances=class_instances,
        zero_instance_classes=sorted(zero_instance),
        crops=crops,
        ranges=ranges,
        roughness=rough,
        adjacent=adjacent,
        continuous=continuous,
        class_of_point=class_of_point,
        class_list=class_list,
        beam_ratio=beam_ratio,
        duplicate_fraction=dup,
        heights=pts[:, 2].astype(np.float32, copy=True) if n else np.zeros(0, np.float32),
        columns=columns,
        pending=tuple(p for p in DEFERRABLE if p in skip),
        **parts,
    )


def finish_frame_stats(frame: Mapping[str, Any], stats: FrameStats) -> FrameStats:
    """``stats`` with its :attr:`~FrameStats.pending` parts computed (``stats`` itself when none are).

    Args:
        frame: the frame ``stats`` was computed from by :func:`frame_stats` with ``skip``.
        stats: its statistics.

    Returns:
        Statistics equal to those :func:`frame_stats` computes without ``skip``.
    """
    if not stats.pending:
        return stats
    return replace(stats, pending=(), **_deferrable_parts(_sensor_points(frame), list(stats.pending)))


def _norms(pts: np.ndarray) -> np.ndarray:
    """(N,) Euclidean norms of (N, 3) points in their own dtype: ``np.linalg.norm(pts, axis=1)``, which sums the
    three squares left to right as here, at half its cost (a reduction along a 3-long axis is slow in NumPy)."""
    x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
    return np.sqrt(x * x + y * y + z * z)


def _sensor_points(frame: Mapping[str, Any]) -> np.ndarray:
    """(N, 3) float32 points relative to the sensor."""
    pts = np.asarray(frame["data"], dtype=np.float32)
    origin = frame.get("sensor_origin")
    if origin is not None:
        pts = pts - np.asarray(origin, dtype=np.float32).reshape(1, 3)
    return pts


def _deferrable_parts(pts: np.ndarray, parts: Sequence[str]) -> dict[str, Any]:
    """The :class:`FrameStats` fields of the named :data:`DEFERRABLE` parts, computed from sensor-frame points."""
    out: dict[str, Any] = {}
    if "descriptors" in parts:
        from .plausibility import local_descriptors

        out["desc_index"], out["descriptors"] = local_descriptors(pts)
    if "origin" in parts:
        from .origin import apparent_origin

        out["origin_offset"] = apparent_origin(pts) if pts.shape[0] else None
    return out
