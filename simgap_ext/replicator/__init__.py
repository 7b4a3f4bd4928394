"""Replicator side of SimGap: annotator adapters, the push-style gate sink and ``SimGapWriter``.

Imports cleanly without Kit: :mod:`.adapters` and :mod:`.sink` are pure Python; :mod:`.writer` defines
``SimGapWriter`` only when ``omni.replicator.core`` is importable (:data:`HAS_REPLICATOR`).
"""

from __future__ import annotations

from .adapters import (
    ADAPTERS,
    GENERIC_MODEL_OUTPUT_V60,
    POINTCLOUD,
    RTX_POINT_CLOUD_V50,
    RTX_SCAN_BUFFER_V45,
    STABLE_ID_MAP_V60,
    adapt,
    annotator_for_isaac_version,
    frame_issues,
    iter_annotator_payloads,
)
from .writer import HAS_REPLICATOR, WRITER_NAME, on_writer_created, register_writer, unregister_writer

__all__ = [
    "ADAPTERS",
    "GENERIC_MODEL_OUTPUT_V60",
    "POINTCLOUD",
    "RTX_POINT_CLOUD_V50",
    "RTX_SCAN_BUFFER_V45",
    "STABLE_ID_MAP_V60",
    "adapt",
    "annotator_for_isaac_version",
    "frame_issues",
    "iter_annotator_payloads",
    "HAS_REPLICATOR",
    "WRITER_NAME",
    "on_writer_created",
    "register_writer",
    "unregister_writer",
]
