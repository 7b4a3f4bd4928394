"""The embedded scene backend: a LiDAR simulator on NVIDIA Warp over procedurally randomized scenes.

- :mod:`.meshes`: triangle primitives and class object builders (NumPy);
- :mod:`.scene`: :class:`SceneRandomizer` (seeded scenes, focus classes, rare configurations);
- :mod:`.raycast`: ``wp.Mesh`` upload and the spinning-LiDAR ray-cast kernel;
- :mod:`.effects`: switchable sensor effects (noise, drop, mixed pixels, intensity);
- :mod:`.source`: :class:`WarpLidarSource`, the :class:`~simgap_ext.backends.SceneSource` tying them together.
"""

from __future__ import annotations

from .labels import BACKGROUND_CLASSES, CLASS_IDS, OBJECT_CLASSES, id_to_labels
from .scene import RARE_MODES, RandomizerConfig, Scene, SceneObject, SceneRandomizer
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
    "WarpLidarSource",
    "id_to_labels",
]
