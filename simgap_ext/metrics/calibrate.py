"""Automatic ``d_max`` (``max_expected_distance``) from real-vs-real pairs of a reference set.

Rule (documented in docs/metrics.md): take pairs of consecutive real frames (frame i with frame i+1, in the
order given: neighbouring scans of one drive are the closest real analogue of a real/synthetic twin), at most
``max_pairs`` of them spread evenly over the sequence, compute their exact Chamfer distance, and set

    d_max = Q_quantile(CD_real) / (1 - target_g)

so that a fraction ``quantile`` of real-vs-real pairs scores ``G >= target_g`` (the acceptance threshold,
0.75 by default): real data passes the gate it calibrates. With ``squared=True`` the distances are squared
Chamfer (metres^2) and ``d_max = sqrt(Q / (1 - target_g))`` stays in metres (see :mod:`.dogss`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import ReferenceDataError, SimGapInputError
from .chamfer import chamfer_distance

__all__ = ["calibrate", "calibration_distances", "d_max_from_distances"]

log = logging.getLogger(__name__)


def _points_of(item: Any, i: int) -> np.ndarray:
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Mapping):
        item = item[1]  # (name, frame) as yielded by simgap_ext.data.iter_scans
    if isinstance(item, Mapping):
        if "data" not in item:
            raise SimGapInputError(f"real frame {i}: missing 'data'")
        item = item["data"]
    return np.asarray(item)


def calibration_distances(
    real_frames: Iterable[Any],
    *,
    max_pairs: int = 64,
    squared: bool = False,
    device: str | None = None,
    n_frames: int | None = None,
) -> np.ndarray:
    """Chamfer distances of consecutive real-frame pairs (see module docstring), streaming.

    Only the previous frame is kept in memory, so a long sequence can be read lazily (``iter_scans``).

    Args:
        real_frames: frames (dicts with ``data`` (N, 3)), ``(name, frame)`` tuples or (N, 3) arrays.
        max_pairs: at most this many pairs, spread evenly over the sequence.
        squared: squared Chamfer (metres^2).
        device: Warp device.
        n_frames: number of frames when ``real_frames`` is a lazy iterator (needed to spread the pairs);
            taken from ``len()`` for sequences, else every pair up to ``max_pairs`` from the start is used.

    Returns:
        (P,) float64 Chamfer distances.

    Raises:
        ReferenceDataError: fewer than two frames.
        SimGapInputError: ``max_pairs < 1``.
    """
    if int(max_pairs) < 1:
        raise SimGapInputError(f"max_pairs must be >= 1, got {max_pairs}")
    if n_frames is None and hasattr(real_frames, "__len__"):
        n_frames = len(real_frames)  # type: ignore[arg-type]
    wanted: set[int] | None = None
    if n_frames is not None and n_frames >= 2:
        n_pairs = n_frames - 1
        k = min(n_pairs, int(max_pairs))
        wanted = set(np.unique(np.linspace(0, n_pairs - 1, num=k).round().astype(int)).tolist())
    out: list[float] = []
    prev: np.ndarray | None = None
    count = 0
    for i, item in enumerate(real_frames):
        cur = _points_of(item, i)
        count += 1
        if prev is not None and (wanted is None and len(out) < max_pairs or wanted is not None and i - 1 in wanted):
            out.append(chamfer_distance(prev, cur, squared=squared, device=device, a_name=f"real frame {i - 1}",
                                        b_name=f"real frame {i}"))  # fmt: skip
        prev = cur
    if count < 2:
        raise ReferenceDataError(f"calibration needs at least 2 real frames, got {count}")
    cds = np.asarray(out, dtype=np.float64)
    log.debug("calibration: %d pairs, CD median %.4g max %.4g", cds.size, np.median(cds), cds.max())
    return cds


def d_max_from_distances(
    cds: np.ndarray, *, quantile: float = 0.95, target_g: float = 0.75, squared: bool = False
) -> float:
    """Apply the calibration rule to real-vs-real Chamfer distances.

    Args:
        cds: (P,) float Chamfer distances (metres, or metres^2 when ``squared``).
        quantile: quantile of the distances that must still reach ``target_g``.
        target_g: the G acceptance threshold real data should pass.
        squared: the distances are squared Chamfer.

    Returns:
        ``d_max`` in metres.

    Raises:
        ReferenceDataError: no distances, or all zero (identical frames).
        SimGapInputError: ``quantile`` or ``target_g`` out of range.
    """
    if not (0.0 < quantile <= 1.0):
        raise SimGapInputError(f"quantile must be in (0, 1], got {quantile}")
    if not (0.0 <= target_g < 1.0):
        raise SimGapInputError(f"target_g must be in [0, 1), got {target_g}")
    if len(cds) == 0:
        raise ReferenceDataError("no real-vs-real pairs to calibrate from")
    q = float(np.quantile(cds, quantile))
    if q <= 0:
        raise ReferenceDataError("real frames are identical (Chamfer 0): cannot calibrate d_max from them")
    d = q / (1.0 - target_g)
    return math.sqrt(d) if squared else d


def calibrate(
    real_frames: Iterable[Any],
    *,
    quantile: float = 0.95,
    target_g: float = 0.75,
    max_pairs: int = 64,
    squared: bool = False,
    device: str | None = None,
) -> float:
    """Calibrate ``d_max`` (metres) from real-vs-real Chamfer distances.

    Args:
        real_frames: at least two real frames (dicts, ``(name, frame)`` tuples or (N, 3) arrays), in
            acquisition order.
        quantile: quantile of the real-vs-real distances that must still reach ``target_g``.
        target_g: the G acceptance threshold real data should pass.
        max_pairs: at most this many consecutive pairs.
        squared: calibrate for squared Chamfer (result still in metres).
        device: Warp device.

    Returns:
        ``d_max`` in metres, > 0.

    Raises:
        ReferenceDataError: fewer than two frames, or all pairs identical (CD = 0).
        SimGapInputError: ``quantile`` or ``target_g`` outside their ranges, or ``max_pairs < 1``.
    """
    d_max_from_distances(np.ones(1), quantile=quantile, target_g=target_g)  # validate before the expensive part
    cds = calibration_distances(real_frames, max_pairs=max_pairs, squared=squared, device=device)
    return d_max_from_distances(cds, quantile=quantile, target_g=target_g, squared=squared)
