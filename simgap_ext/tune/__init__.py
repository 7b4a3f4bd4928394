"""Sensor-effect model fitted to real scans (``simgap tune``) and applied to any synthetic frame.

- :class:`SensorEffectModel` (:mod:`.model`): the fitted tables, TOML round trip;
- :func:`fit_effect_model` (:mod:`.fit`): estimate it from organised real scans (:class:`RealScan`);
- :func:`apply_sensor_effects` (:mod:`.apply`): the deterministic post-process on a frame (never adds points);
- :mod:`.search`: CMA-ES over the terms a neighbour test cannot see, on the gate's scene statistics;
- :mod:`.stats`: those scene statistics (range / elevation W1, per-beam return ratio, roughness, object density);
- :mod:`.real`: organised real scans (nuScenes keyframes, any frame on a known beam table).
"""

from __future__ import annotations

from .apply import apply_sensor_effects
from .fit import RealScan, fit_effect_model
from .model import SensorEffectModel

__all__ = ["SensorEffectModel", "RealScan", "fit_effect_model", "apply_sensor_effects"]
