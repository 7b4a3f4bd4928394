"""What to label next: the most informative scans, or regions of scans.

- :func:`select_top`: the top ``100 - percentile`` percent of a pool by score (default: the top 5 %, i.e. scores
  at or above the 95th percentile), or a fixed count; ties broken by pool order, so the result is deterministic.
- :func:`voxel_regions`: cut a scan into vertical voxel columns (``size`` metres on x and y); a region is the set
  of points of one column. Region labelling costs the points of the region, not a whole scan.
- :func:`select_regions`: greedy pick of the highest-scoring regions until a point budget is spent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["select_top", "voxel_regions", "Region", "region_scores", "select_regions"]


def select_top(scores: np.ndarray, *, percentile: float | None = 95.0, count: int | None = None) -> np.ndarray:
    """Indices of the highest scores.

    Args:
        scores: (M,) finite scores, higher = more informative.
        percentile: keep the top ``ceil(M * (100 - percentile) / 100)`` (at least one); ignored when ``count``
            is given.
        count: keep exactly ``min(count, M)``.

    Returns:
        (K,) int64 indices, highest score first (ties: lower index first).

    Raises:
        ValueError: non-finite scores, a percentile outside [0, 100), or a negative count.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or inf")
    if count is not None:
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        k = min(int(count), s.size)
    else:
        if percentile is None or not 0.0 <= float(percentile) < 100.0:
            raise ValueError(f"percentile must lie in [0, 100), got {percentile}")
        k = min(s.size, max(1, math.ceil(s.size * (100.0 - float(percentile)) / 100.0))) if s.size else 0
    order = np.lexsort((np.arange(s.size), -s))
    return order[:k].astype(np.int64)


def voxel_regions(points: np.ndarray, size: float = 5.0) -> np.ndarray:
    """Region id of every point: its (x, y) voxel column of ``size`` metres.

    Args:
        points: (N, >=2) float points, metres.
        size: column side, metres (> 0).

    Returns:
        (N,) int64 region ids, consecutive from 0 in sorted cell order.
    """
    if size <= 0 or not math.isfinite(size):
        raise ValueError(f"voxel size must be a positive number of metres, got {size}")
    p = np.asarray(points)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"points must be (N, >=2), got {p.shape}")
    if p.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    cells = np.floor(p[:, :2] / size).astype(np.int64)
    # One int64 key per cell (|cell| < 2**31 for any real range) is far faster than np.unique(axis=0).
    key = (cells[:, 0] << 32) + (cells[:, 1] & 0xFFFFFFFF)
    _, ids = np.unique(key, return_inverse=True)
    return ids.reshape(-1).astype(np.int64)


@dataclass(frozen=True)
class Region:
    """A labelling candidate: region ``region`` (``-1``: the whole scan) of pool scan ``scan``.

    Attributes:
        scan: index into the pool.
        region: region id within the scan (:func:`voxel_regions`), ``-1`` for the whole scan.
        points: label cost, in points.
        score: informativeness (mean per-point score of the region).
    """

    scan: int
    region: int
    points: int
    score: float


def region_scores(
    point_scores: np.ndarray, region_ids: np.ndarray, *, min_points: int = 1
) -> list[tuple[int, int, float]]:
    """(region id, points, mean score) of every region with at least ``min_points`` points."""
    s = np.asarray(point_scores, dtype=np.float64).reshape(-1)
    r = np.asarray(region_ids, dtype=np.int64).reshape(-1)
    if s.shape != r.shape:
        raise ValueError(f"{s.size} scores for {r.size} region ids")
    if r.size == 0:
        return []
    n = np.bincount(r)
    tot = np.bincount(r, weights=s)
    return [(int(i), int(n[i]), float(tot[i] / n[i])) for i in np.flatnonzero(n >= max(1, min_points))]


def select_regions(candidates: Sequence[Region], point_budget: int) -> list[Region]:
    """Highest-scoring regions whose points fit in ``point_budget`` (greedy; a region that does not fit is
    skipped and smaller ones further down may still be taken).

    Args:
        candidates: regions to choose from.
        point_budget: points that may be labelled (>= 0).

    Returns:
        The chosen regions, highest score first (ties: pool order, then region id).
    """
    if point_budget < 0:
        raise ValueError(f"point budget must be >= 0, got {point_budget}")
    order = sorted(candidates, key=lambda c: (-c.score, c.scan, c.region))
    out: list[Region] = []
    left = int(point_budget)
    for c in order:
        if c.points <= left:
            out.append(c)
            left -= c.points
        if left <= 0:
            break
    return out
