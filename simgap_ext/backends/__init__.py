"""Scene sources: where frames come from before the gate sees them.

A scene source renders one frame (the layout of :mod:`simgap_ext.frame`, docs/data.md) per call of
``render(seed=..., focus_classes=..., frame_id=..., attempt=...)``. Two exist:

- ``"warp"``: the embedded LiDAR simulator (:class:`simgap_ext.backends.warp.WarpLidarSource`), plain Python,
  CPU or CUDA;
- ``"replicator"``: Isaac Sim's Replicator, driven by the Kit layer (``simgap_ext.replicator``); only available
  inside Isaac Sim.

Layers above this one (the Kit extension) add sources with :func:`register_scene_source`, so that this package
never imports them: the Kit layer registers its ``"replicator"`` factory at startup.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import SimGapInputError

__all__ = ["SceneSource", "get_scene_source", "register_scene_source", "unregister_scene_source", "SCENE_SOURCES"]

SCENE_SOURCES = ("warp", "replicator")

_registry: dict[str, Callable[..., Any]] = {}
_registry_lock = threading.Lock()


@runtime_checkable
class SceneSource(Protocol):
    """What the pipeline needs from a renderer."""

    sensor_name: str
    class_names: list[str]

    def render(
        self, *, seed: int, focus_classes: Sequence[str] = (), frame_id: int = 0, attempt: int = 0
    ) -> dict[str, Any]:
        """Render one frame (a dict in the layout of :mod:`simgap_ext.frame`)."""
        ...


def register_scene_source(name: str, factory: Callable[..., Any]) -> None:
    """Make ``get_scene_source(name, ...)`` call ``factory(sensor=..., preset=..., device=..., **kw)``.

    Used by upper layers (the Kit extension registers ``"replicator"``); a registration replaces an earlier one
    of the same name. ``"warp"`` cannot be replaced.
    """
    if name == "warp":
        raise SimGapInputError("scene source 'warp' is built in and cannot be re-registered")
    if not callable(factory):
        raise SimGapInputError(f"scene source factory for {name!r} must be callable")
    with _registry_lock:
        _registry[name] = factory


def unregister_scene_source(name: str) -> None:
    """Remove a registered scene source (no error when absent)."""
    with _registry_lock:
        _registry.pop(name, None)


def _has_replicator() -> bool:
    try:
        return importlib.util.find_spec("omni.replicator.core") is not None
    except (ImportError, ValueError):  # a missing parent package raises instead of returning None
        return False


def get_scene_source(
    name: str = "warp", *, sensor: Any, preset: str = "realistic", device: str | None = None, **kw: Any
) -> SceneSource:
    """Create a scene source by name.

    Args:
        name: ``"warp"``, ``"replicator"`` or a name added with :func:`register_scene_source`.
        sensor: sensor profile name, TOML path or :class:`~simgap_ext.sensors.SensorProfile`.
        preset: effect preset (``"ideal"`` / ``"realistic"``).
        device: Warp device for ``"warp"`` (``None``: CUDA when available).
        **kw: passed to the source (for ``"warp"``: ``effects``, ``disable``, ``randomizer``, ``rare``,
            ``noise_seed``).

    Raises:
        SimGapInputError: unknown name, or ``"replicator"`` outside Isaac Sim / not registered.
    """
    if name == "warp":
        from .warp import WarpLidarSource

        return WarpLidarSource(sensor, preset, device=device, **kw)
    with _registry_lock:
        factory = _registry.get(name)
    if factory is not None:
        return factory(sensor=sensor, preset=preset, device=device, **kw)
    if name == "replicator":
        if not _has_replicator():
            raise SimGapInputError(
                "scene source 'replicator' needs Isaac Sim (omni.replicator.core is not importable here); "
                "run inside Isaac Sim with the simgap_ext extension, or use the 'warp' source"
            )
        raise SimGapInputError(
            "scene source 'replicator' is not registered: the simgap_ext Kit extension registers it at startup "
            "(register_scene_source); use the 'warp' source or SimGapWriter otherwise"
        )
    known = sorted(set(SCENE_SOURCES) | set(_registry))
    raise SimGapInputError(f"unknown scene source {name!r} (known: {', '.join(known)})")
