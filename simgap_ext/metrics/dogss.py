"""DoGSS-PCL scores: normalised geometric score G, and the combined per-class score.

``G = 1 - clamp(CD / d_max, 0, 1)`` where ``CD`` is the exact Chamfer distance (:mod:`.chamfer`) and ``d_max``
the sensor's ``max_expected_distance`` (metres; ``config/sensors/*.toml`` or :func:`~.calibrate.calibrate`).

Units: with ``squared=False`` CD is in metres and is compared with ``d_max``; with ``squared=True`` CD is in
metres^2 and is compared with ``d_max**2``, so one ``max_expected_distance`` in metres serves both conventions.
In density-normalised mode CD is dimensionless (multiples of the real point spacing) and ``d_max`` must be given
in those units too.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import SimGapInputError
from .chamfer import chamfer_distance

__all__ = ["normalized_score", "dogss_geometric_score", "combined_score"]


def normalized_score(distance: float, d_max: float) -> float:
    """``1 - clamp(distance / d_max, 0, 1)``: 1 for identical clouds, 0 at or beyond ``d_max``.

    Raises:
        SimGapInputError: ``d_max`` not positive and finite, or ``distance`` NaN/negative.
    """
    d_max = float(d_max)
    distance = float(distance)
    if not (math.isfinite(d_max) and d_max > 0):
        raise SimGapInputError(f"d_max (max_expected_distance) must be positive and finite, got {d_max}")
    if math.isnan(distance) or distance < 0:
        raise SimGapInputError(f"distance must be >= 0, got {distance}")
    return 1.0 - min(max(distance / d_max, 0.0), 1.0)


def dogss_geometric_score(
    real: Any,
    synth: Any,
    *,
    max_expected_distance: float,
    squared: bool = False,
    density_normalized: bool = False,
    device: str | None = None,
) -> float:
    """Geometric DoGSS-PCL score G in [0, 1] of a synthetic cloud against a real one.

    Args:
        real: (N, 3) float array or torch tensor, metres.
        synth: (M, 3) float array or torch tensor, metres.
        max_expected_distance: ``d_max`` in metres (see module docstring for squared / normalised modes).
        squared: squared-distance Chamfer (compared with ``d_max**2``).
        density_normalized: divide distances by the local real spacing (see :mod:`.chamfer`).
        device: Warp device.

    Returns:
        G as a Python float.
    """
    cd = chamfer_distance(real, synth, squared=squared, density_normalized=density_normalized, device=device)
    d_max = float(max_expected_distance)
    return normalized_score(cd, d_max * d_max if squared else d_max)


def combined_score(g: float, js: float) -> float:
    """Combined per-class score ``sqrt(G * (1 - JS))`` for reports.

    Raises:
        SimGapInputError: ``g`` or ``js`` outside [0, 1].
    """
    g, js = float(g), float(js)
    for name, v in (("g", g), ("js", js)):
        if not (0.0 <= v <= 1.0):
            raise SimGapInputError(f"{name} must be in [0, 1], got {v}")
    return math.sqrt(g * (1.0 - js))
