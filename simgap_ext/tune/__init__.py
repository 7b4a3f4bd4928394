"""Sensor-effect model fitted to real scans (``simgap tune``) and applied to any synthetic frame.

- :class:`SensorEffectModel` (:mod:`.model`): the fitted tables, TOML round trip;
- :func:`fit_effect_model` (:mod:`.fit`): estimate it from organised real scans (:class:`RealScan`);
- :func:`apply_sensor_effects` (:mod:`.apply`): the deterministic post-process on a frame (never adds points);
- :mod:`.search`: CMA-ES over the terms a neighbour test cannot see, on the gate's scene statistics;
- :mod:`.far`: the bound the real scans' own far returns put on the searched far-range loss;
- :mod:`.stats`: those scene statistics (range / elevation W1, per-beam return ratio, roughness, object density);
- :mod:`.real`: organised real scans (nuScenes keyframes, any frame on a known beam table).
"""

from __future__ import annotations

from typing import Any

from .apply import apply_sensor_effects
from .model import SensorEffectModel

__all__ = ["SensorEffectModel", "RealScan", "fit_effect_model", "apply_sensor_effects"]


def __getattr__(name: str) -> Any:
    # The fitting side needs scipy.optimize (~0.8 s to import); sensors.py imports this package for the model, and
    # building the CLI parser must not pay for it (tests/test_cli_startup.py).
    if name in ("RealScan", "fit_effect_model"):
        from . import fit

        return getattr(fit, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
