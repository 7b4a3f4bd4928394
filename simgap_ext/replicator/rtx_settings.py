"""Attach-time check of what RTX LiDAR per-point object ids need, with the fix named for each missing piece.

Without these, Isaac Sim silently delivers frames with no (or all-zero) object ids and every point ends up
unlabelled. From the public Isaac Sim sources (isaac-sim/IsaacSim):

* the OmniLidar prim's auxiliary output level (``omni:sensor:Core:auxOutputType``) must be ``EXTRA`` or ``FULL``:
  ``OgnIsaacCreateRTXLidarScanBuffer.cpp`` (``v5.0.0``, ``v5.1.0``) fills ``objectId`` only when
  ``outputObjectId && auxType >= AuxType::EXTRA``; GenericModelOutput carries ``objId`` only then
  (``resolve_lidar_object_ids.py`` at ``v6.0.1``);
* 128-bit stable ids (5.1, 6.x) are resolved to prims by the ``StableIdMap`` annotator, which is empty unless Kit
  runs with ``--/rtx-transient/stableIds/enabled=true`` (``resolve_object_ids_from_gmo.py`` at ``v5.1.0``).

Pure Python: the writer passes in carb's setting getter and the stage; tests pass plain functions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from .adapters import (
    GENERIC_MODEL_OUTPUT_V60,
    POINTCLOUD,
    RTX_POINT_CLOUD_V50,
    RTX_POINT_CLOUD_V60,
    RTX_SCAN_BUFFER_V45,
    RTX_SCAN_BUFFER_V50,
    parse_isaac_version,
)

__all__ = [
    "AUX_OUTPUT_ATTR",
    "STABLE_IDS_SETTING",
    "aux_output_level",
    "check_rtx_id_settings",
    "detect_isaac_version",
    "uses_stable_ids",
]

STABLE_IDS_SETTING = "/rtx-transient/stableIds/enabled"
AUX_OUTPUT_ATTR = "omni:sensor:Core:auxOutputType"
_ID_LEVELS = ("EXTRA", "FULL")


def detect_isaac_version() -> str | None:
    """The running Isaac Sim's version (``isaacsim.core.version.get_version()[0]``), or None outside Isaac Sim."""
    if "carb" not in sys.modules:
        # Not inside a running Kit: importing the pip ``isaacsim`` package here would bootstrap a Kit kernel (and
        # prompt for its EULA on stdin).
        return None
    try:
        from isaacsim.core.version import get_version
    except ImportError:
        return None
    try:
        core = get_version()[0]
    except Exception:  # a missing VERSION file raises in some builds: treat as unknown
        return None
    return str(core) or None


def uses_stable_ids(annotator: str, isaac_version: str | None) -> bool:
    """Whether the annotator's object ids are 128-bit stable ids that need ``StableIdMap`` (5.1+ and 6.x)."""
    if annotator in (GENERIC_MODEL_OUTPUT_V60, RTX_POINT_CLOUD_V60):
        return True
    if annotator in (RTX_SCAN_BUFFER_V50, RTX_POINT_CLOUD_V50):
        return isaac_version is None or parse_isaac_version(isaac_version) >= (5, 1)
    return False


def aux_output_level(stage: Any, render_product: str) -> str | None:
    """The auxiliary output level of the OmniLidar behind a render product (None when it cannot be read).

    Follows the render product's ``camera`` relationship to the sensor prim and reads ``AUX_OUTPUT_ATTR``.
    """
    if stage is None:
        return None
    rp = stage.GetPrimAtPath(str(render_product))
    if not rp or not rp.IsValid():
        return None
    rel = rp.GetRelationship("camera")
    targets = list(rel.GetTargets()) if rel else []
    if not targets:
        return None
    sensor = stage.GetPrimAtPath(str(targets[0]))
    if not sensor or not sensor.IsValid():
        return None
    attr = sensor.GetAttribute(AUX_OUTPUT_ATTR)
    value = attr.Get() if attr else None
    return None if value is None else str(value).upper()


def check_rtx_id_settings(
    annotator: str,
    *,
    isaac_version: str | None,
    get_setting: Callable[[str], Any],
    aux_levels: Mapping[str, str | None],
) -> list[str]:
    """Problems that would leave an RTX annotator without usable per-point object ids, each naming its fix.

    Args:
        annotator: the annotator SimGap reads.
        isaac_version: running Isaac Sim version (None: unknown, the stricter 5.1+ rules apply).
        get_setting: carb setting getter (``carb.settings.get_settings().get``).
        aux_levels: render product path -> the sensor's aux output level (None: not readable, not reported).

    Returns:
        Human-readable problems; empty when everything needed is in place (or the annotator is ``pointcloud``).
    """
    if annotator == POINTCLOUD:
        return []
    problems: list[str] = []
    if annotator != RTX_SCAN_BUFFER_V45 or aux_levels:
        for rp, level in sorted(aux_levels.items()):
            if level is not None and level not in _ID_LEVELS:
                problems.append(
                    f"{rp}: the LiDAR's {AUX_OUTPUT_ATTR} is {level!r}, object ids need 'EXTRA' or 'FULL' (set it "
                    f"on the OmniLidar prim, e.g. LidarRtx(..., **{{{AUX_OUTPUT_ATTR!r}: 'FULL'}}) or "
                    "Lidar.create(..., aux_output_level='FULL'))"
                )
    if uses_stable_ids(annotator, isaac_version) and not get_setting(STABLE_IDS_SETTING):
        problems.append(
            f"{STABLE_IDS_SETTING} is not enabled: StableIdMap stays empty and no point can be named (start Isaac "
            f'Sim with --{STABLE_IDS_SETTING}=true, or SimulationApp({{"extra_args": '
            f'["--{STABLE_IDS_SETTING}=true"]}}))'
        )
    return problems
