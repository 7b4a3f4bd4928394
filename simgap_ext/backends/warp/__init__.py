"""The embedded scene backend: a LiDAR simulator on NVIDIA Warp over procedurally randomized scenes.

- :mod:`.meshes`: triangle primitives and class object builders (NumPy);
- :mod:`.scene`: :class:`SceneRandomizer` (seeded scenes, focus classes, rare configurations);
- :mod:`.raycast`: ``wp.Mesh`` upload and the spinning-LiDAR ray-cast kernel;
- :mod:`.foliage`: volumetric foliage (beam penetration into vegetation, a property of the world);
- :mod:`.effects`: switchable sensor effects (noise, drop, mixed pixels, intensity);
- :mod:`.source`: :class:`WarpLidarSource`, the :class:`~simgap_ext.backends.SceneSource` tying them together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .labels import BACKGROUND_CLASSES, CLASS_IDS, OBJECT_CLASSES, id_to_labels
from .scene import RARE_MODES, RandomizerConfig, Scene, SceneObject, SceneRandomizer, StreetBlock

if TYPE_CHECKING:
    from .source import WarpLidarSource

__all__ = [
    "BACKGROUND_CLASSES",
    "CLASS_IDS",
    "OBJECT_CLASSES",
    "RARE_MODES",
    "RandomizerConfig",
    "Scene",
    "SceneObject",
    "SceneRandomizer",
    "StreetBlock",
    "WarpLidarSource",
    "id_to_labels",
]


def __getattr__(name: str) -> Any:
    # WarpLidarSource imports Warp (~1.5 s): loaded on first use so that importing scene/labels (CLI parsers,
    # Replicator writer) stays cheap
    if name == "WarpLidarSource":
        from .source import WarpLidarSource

        return WarpLidarSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
