"""Class labels of USD prims, read from the stage's semantics: the default ``prim_labels`` of the RTX adapters.

RTX LiDAR payloads name the prim a point hit (a 32-bit object id or a stable id resolved to a prim path through
``StableIdMap``), never its class. Isaac Sim stores classes on prims in two schemas, both read here through the
plain ``Usd.Prim`` API (``GetAttribute(...).Get()``, ``GetPropertyNames``, ``GetParent``), so no ``pxr`` import is
needed and any stage-like object works:

* ``UsdSemantics.LabelsAPI`` (Isaac Sim 4.5+): applied schema ``SemanticsLabelsAPI:<instance>``, labels in the
  ``token[]`` attribute ``semantics:labels:<instance>`` (``isaacsim.core.utils/python/impl/semantics.py``,
  ``get_labels``, at ``v5.1.0``).
* the deprecated ``Semantics.SemanticsAPI``: ``semantic:<name>:params:semanticType`` (``"class"``) and
  ``semantic:<name>:params:semanticData`` (same file, ``add_update_semantics``).

A hit on a sub-prim (a mesh under a labelled Xform) takes the nearest labelled ancestor's class, as Replicator's
semantic segmentation does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["prim_class", "stage_prim_labels"]

_OLD_PREFIX = "semantic:"
_OLD_TYPE = ":params:semanticType"
_OLD_DATA = ":params:semanticData"


def _valid(prim: Any) -> bool:
    if prim is None:
        return False
    is_valid = getattr(prim, "IsValid", None)
    return bool(is_valid()) if callable(is_valid) else True


def _attr_value(prim: Any, name: str) -> Any:
    attr = prim.GetAttribute(name)
    if not attr:
        return None
    return attr.Get()


def _own_class(prim: Any, instance: str) -> str | None:
    # Attributes, not GetAppliedSchemas(): USD drops applied schemas it has no plugin for (the old SemanticsAPI
    # outside Isaac Sim), while the attributes stay readable.
    labels = _attr_value(prim, f"semantics:labels:{instance}")
    if labels:
        return str(list(labels)[0])
    for prop in prim.GetPropertyNames() or ():
        prop = str(prop)
        if not (prop.startswith(_OLD_PREFIX) and prop.endswith(_OLD_TYPE)):
            continue
        if str(_attr_value(prim, prop) or "") == instance:
            data = _attr_value(prim, prop[: -len(_OLD_TYPE)] + _OLD_DATA)
            if data:
                return str(data)
    return None


def prim_class(prim: Any, instance: str = "class") -> str | None:
    """The class label of ``prim`` or of its nearest labelled ancestor (None when none is labelled).

    Args:
        prim: a ``Usd.Prim`` (or an object with ``GetAttribute``, ``GetPropertyNames``, ``GetParent``).
        instance: the semantic instance / type to read (``"class"``).
    """
    while _valid(prim):
        label = _own_class(prim, instance)
        if label:
            return label
        parent = prim.GetParent()
        if parent is None or parent == prim:
            return None
        prim = parent
    return None


def stage_prim_labels(get_stage: Callable[[], Any], instance: str = "class") -> Callable[[str], str | None]:
    """A ``prim_labels`` resolver (prim path -> class) over the current stage, cached per path.

    Args:
        get_stage: returns the stage to read, called on first use and whenever the stage changes identity (e.g.
            ``omni.usd.get_context().get_stage``); returning None makes every path unlabeled.
        instance: the semantic instance / type to read (``"class"``).
    """
    cache: dict[str, str | None] = {}
    current: list[Any] = [None]

    def resolve(path: str) -> str | None:
        stage = get_stage()
        if stage is not current[0]:
            cache.clear()
            current[0] = stage
        if stage is None:
            return None
        key = str(path)
        if key not in cache:
            cache[key] = prim_class(stage.GetPrimAtPath(key), instance)
        return cache[key]

    return resolve
