"""Scene sources: where frames come from before the gate sees them.

A scene source renders one frame (DESIGN.md layout, see :mod:`simgap_ext.frame`) per call of
``render(seed=..., focus_classes=..., frame_id=..., attempt=...)``. Two exist:

- ``"warp"``: the embedded LiDAR simulator (:class:`simgap_ext.backends.warp.WarpLidarSource`), plain Python,
  CPU or CUDA;
- ``"replicator"``: Isaac Sim's Replicator, driven by the Kit layer (``simgap_ext.replicator``); only available
  inside Isaac Sim.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import SimGapInputError

__all__ = ["SceneSource", "get_scene_source", "SCENE_SOURCES"]

SCENE_SOURCES = ("warp", "replicator")


@runtime_checkable
class SceneSource(Protocol):
    """What the pipeline needs from a renderer."""

    sensor_name: str
    class_names: list[str]

    def render(
        self, *, seed: int, focus_classes: Sequence[str] = (), frame_id: int = 0, attempt: int = 0
    ) -> dict[str, Any]:
        """Render one frame (a dict in the DESIGN.md frame layout)."""
        ...


def get_scene_source(
    name: str = "warp", *, sensor: Any, preset: str = "realistic", device: str | None = None, **kw: Any
) -> SceneSource:
    """Create a scene source by name.

    Args:
        name: ``"warp"`` or ``"replicator"``.
        sensor: sensor profile name, TOML path or :class:`~simgap_ext.sensors.SensorProfile`.
        preset: effect preset (``"ideal"`` / ``"realistic"``).
        device: Warp device for ``"warp"`` (``None``: CUDA when available).
        **kw: passed to the source (for ``"warp"``: ``effects``, ``disable``, ``randomizer``, ``rare``,
            ``noise_seed``).

    Raises:
        SimGapInputError: unknown name, or ``"replicator"`` outside Isaac Sim.
    """
    if name == "warp":
        from .warp import WarpLidarSource

        return WarpLidarSource(sensor, preset, device=device, **kw)
    if name == "replicator":
        if importlib.util.find_spec("omni") is None or importlib.util.find_spec("omni.replicator.core") is None:
            raise SimGapInputError(
                "scene source 'replicator' needs Isaac Sim (omni.replicator.core is not importable here); "
                "run inside Isaac Sim with the simgap_ext extension, or use the 'warp' source"
            )
        raise SimGapInputError(
            "scene source 'replicator' is driven by the Kit extension (SimGapWriter in simgap_ext.replicator), "
            "not created from plain Python; use the 'warp' source here"
        )
    raise SimGapInputError(f"unknown scene source {name!r} (known: {', '.join(SCENE_SOURCES)})")
