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

__all__ = ["calibrate", "calibration_distances"]

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
    real_frames: Iterable[Any], *, max_pairs: int = 64, squared: bool = False, device: str | None = None
) -> np.ndarray:
    """Chamfer distances of consecutive real-frame pairs (see module docstring).

    Args:
        real_frames: frames (dicts with ``data`` (N, 3)), ``(name, frame)`` tuples or (N, 3) arrays.
        max_pairs: at most this many pairs, spread evenly.
        squared: squared Chamfer (metres^2).
        device: Warp device.

    Returns:
        (P,) float64 Chamfer distances.

    Raises:
        ReferenceDataError: fewer than two frames.
    """
    clouds = [_points_of(f, i) for i, f in enumerate(real_frames)]
    if len(clouds) < 2:
        raise ReferenceDataError(f"calibration needs at least 2 real frames, got {len(clouds)}")
    n_pairs = len(clouds) - 1
    starts = np.unique(np.linspace(0, n_pairs - 1, num=min(n_pairs, max(int(max_pairs), 1))).round().astype(int))
    out = np.array(
        [chamfer_distance(clouds[i], clouds[i + 1], squared=squared, device=device) for i in starts.tolist()],
        dtype=np.float64,
    )
    log.debug("calibration: %d pairs, CD median %.4g max %.4g", out.size, np.median(out), out.max())
    return out


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
        SimGapInputError: ``quantile`` or ``target_g`` outside (0, 1).
    """
    if not (0.0 < quantile <= 1.0):
        raise SimGapInputError(f"quantile must be in (0, 1], got {quantile}")
    if not (0.0 <= target_g < 1.0):
        raise SimGapInputError(f"target_g must be in [0, 1), got {target_g}")
    cds = calibration_distances(real_frames, max_pairs=max_pairs, squared=squared, device=device)
    q = float(np.quantile(cds, quantile))
    if q <= 0:
        raise ReferenceDataError("real frames are identical (Chamfer 0): cannot calibrate d_max from them")
    d = q / (1.0 - target_g)
    return math.sqrt(d) if squared else d
