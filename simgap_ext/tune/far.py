"""What the real scans allow the searched far-range loss to remove, per class.

The far-range loss ``1 / (1 + exp((r - far_range50) / far_width))`` is class-blind: it removes the same share of
far ground, facades and trees. Searched on rendered frames it can also remove far surfaces the rendered *world*
has too many of (a street with more far facades than the real one), which is not a sensor property: on the
nuScenes fit scans the search put it at 59 m although those scans hold 3.4 % of their vegetation returns beyond
60 m (docs/backend.md, "Issue 10, sixth pass"). A sensor cannot lose what its own scans show: for each class and
far range ``R``, the share of the class's returns beyond ``R`` after the loss must not fall below the real share.
With ``s_clean`` the share in the clean rendered frames and ``s_real`` the fit scans' share, the loss must keep at
least ``min(1, s_real / s_clean)`` of the clean returns beyond ``R``; :func:`far_loss_shortfall` returns by how
much a candidate loss misses that, summed over the classes and ranges with enough real far returns to say so. The
search adds it to its objective, so the loss may remove a world's *excess* far returns of a class only as far as
every other class allows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from .model import head_class

__all__ = [
    "FarShares",
    "far_shares",
    "prepare_clean",
    "far_loss_shortfall",
    "ranges_and_classes",
    "FAR_RANGES",
    "MIN_FAR_RETURNS",
]

#: Far ranges (metres) the shares are taken beyond: where a sigmoid loss with a 50 % point inside the sensor's
#: range starts to act (the model's last range bins).
FAR_RANGES: tuple[float, ...] = (30.0, 45.0, 60.0)
#: Real returns beyond ``R`` a class needs before its share bounds the loss (fewer: a binomial share too noisy).
MIN_FAR_RETURNS = 50


@dataclass(frozen=True)
class FarShares:
    """Per class: all returns, and returns beyond each of ``ranges``.

    Attributes:
        ranges: (R,) float64 far ranges, metres.
        total: class -> returns (int).
        beyond: class -> (R,) int64 returns beyond each range.
    """

    ranges: np.ndarray
    total: Mapping[str, int]
    beyond: Mapping[str, np.ndarray]


def ranges_and_classes(frame: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """((N,) float64 ranges, (N,) object head-class names, ``""`` for an id without a label) of a frame's returns
    (points at the sensor, no-return encodings, left out).

    Raises:
        SimGapInputError: points not (N, 3), or not one semantic id per point.
    """
    pts = np.asarray(frame["data"], dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise SimGapInputError(f"frame points must be (N, 3), got {pts.shape}")
    r = np.linalg.norm(pts, axis=1)
    sem = np.asarray(frame["info"]["pointSemantic"]).reshape(-1)
    if sem.shape[0] != r.shape[0]:
        raise SimGapInputError(f"frame has {r.shape[0]} points but {sem.shape[0]} semantic ids")
    labels = frame["info"]["idToLabels"]
    lut = {int(k): head_class(v["class"] if isinstance(v, Mapping) else v) for k, v in labels.items()}
    # one lookup per distinct id, not per point
    ids, inverse = np.unique(sem, return_inverse=True)
    cls = np.array([lut.get(int(s), "") for s in ids], dtype=object)[inverse.reshape(-1)]
    ok = r > 1e-6
    return r[ok], cls[ok]


def far_shares(frames: Sequence[Mapping[str, Any]], ranges: Sequence[float] = FAR_RANGES) -> FarShares:
    """Count every head class's returns and its returns beyond each far range, pooled over ``frames``.

    Args:
        frames: frames in the DESIGN.md layout (sensor frame; real frames' classes roll up to head classes).
        ranges: (R,) far ranges, metres.

    Raises:
        SimGapInputError: no frames, or a frame without one semantic id per point.
    """
    if not frames:
        raise SimGapInputError("far shares need at least one frame")
    return _count_shares([ranges_and_classes(f) for f in frames], ranges)


def _count_shares(per_frame: Sequence[tuple[np.ndarray, np.ndarray]], ranges: Sequence[float]) -> FarShares:
    """:func:`far_shares` of frames already read as ((N,) ranges, (N,) head classes)."""
    rr = np.asarray(ranges, dtype=np.float64)
    total: dict[str, int] = {}
    beyond: dict[str, np.ndarray] = {}
    for r, cls in per_frame:
        for name in np.unique(cls):
            if not name:
                continue
            rc = r[cls == name]
            total[name] = total.get(name, 0) + int(rc.size)
            beyond[name] = beyond.get(name, np.zeros(rr.size, np.int64)) + (rc[:, None] > rr[None, :]).sum(axis=0)
    return FarShares(rr, total, beyond)


def far_loss_shortfall(
    clean: Sequence[Mapping[str, Any]] | tuple[FarShares, Mapping[str, list[np.ndarray]]],
    real: FarShares,
    far_range50: float,
    far_width: float,
    *,
    min_returns: int = MIN_FAR_RETURNS,
) -> float:
    """How far a far-range loss removes more of a class's far returns than the real scans allow (0 = nowhere).

    Args:
        clean: the clean rendered frames (no far loss), or ``prepare_clean(frames, real.ranges)`` of them.
        real: :func:`far_shares` of the real fit scans.
        far_range50: the loss's 50 % range, metres (0 = no loss).
        far_width: the loss's width, metres (> 0).
        min_returns: real returns beyond ``R`` a class needs to count.

    Returns:
        Sum over (class, far range) of ``max(0, min(1, s_real / s_clean) - kept)``, where ``kept`` is the mean keep
        probability of the loss over the clean returns of that class beyond ``R``.
    """
    if far_width <= 0 or not np.isfinite(far_width):
        raise ValueError(f"far_width must be finite and > 0, got {far_width}")
    if far_range50 <= 0:
        return 0.0
    shares, far_r = clean if isinstance(clean, tuple) else prepare_clean(clean, real.ranges)
    if not np.array_equal(shares.ranges, real.ranges):
        raise ValueError(f"clean and real shares use different far ranges: {shares.ranges} vs {real.ranges}")
    total = 0.0
    for name, n_real in real.total.items():
        if name not in shares.total or shares.total[name] == 0 or n_real == 0:
            continue
        for j in range(real.ranges.size):
            n_beyond = int(real.beyond[name][j])
            c_beyond = int(shares.beyond[name][j])
            if n_beyond < min_returns or c_beyond == 0:
                continue
            s_real, s_clean = n_beyond / n_real, c_beyond / shares.total[name]
            need = min(1.0, s_real / s_clean)
            z = np.clip((far_r[name][j] - far_range50) / far_width, -60.0, 60.0)
            kept = float(np.mean(1.0 / (1.0 + np.exp(z))))
            total += max(0.0, need - kept)
    return total


def prepare_clean(
    frames: Sequence[Mapping[str, Any]], ranges: Sequence[float] = FAR_RANGES
) -> tuple[FarShares, dict[str, list[np.ndarray]]]:
    """The clean frames' shares and, per class and far range, the ranges of its returns beyond it (computed once
    for a whole search)."""
    if not frames:
        raise SimGapInputError("far shares need at least one frame")
    per_frame = [ranges_and_classes(f) for f in frames]  # read once for the shares and the far ranges
    shares = _count_shares(per_frame, ranges)
    rs, cs = zip(*per_frame, strict=True)
    r, cls = np.concatenate(rs), np.concatenate(cs)
    far_r = {name: [r[(cls == name) & (r > rf)] for rf in shares.ranges] for name in shares.total}
    return shares, far_r
