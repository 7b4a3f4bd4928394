"""The frame contract between scene sources and the gate (docs/data.md).

A frame is a plain ``dict`` in the layout of Replicator's ``pointcloud`` annotator so that the Replicator path
and the embedded Warp path share every line downstream::

    {
        "data": (N, 3) float32 points in metres,
        "info": {
            "pointSemantic": (N,) uint32 semantic id per point,
            "pointInstance": (N,) uint32 instance id per point,
            "idToLabels": {semantic_id: {"class": name}},   # keys may be int or str, as Replicator emits
            # optional, as Replicator emits: "pointNormals" (N*4,), "pointRgb" (N*4,)
        },
        "intensity": (N,) float32 or absent,
        "frame_id": int, "seed": int, "sensor": str, "focus_classes": list[str], "attempt": int,
        "coordinate_frame": "sensor" | "world",
    }

:func:`make_frame` builds one; :func:`validate_frame` checks one and returns it normalised (numpy arrays of
the documented dtypes, integer label ids), raising :class:`~simgap_ext.errors.SimGapInputError` naming the
problem otherwise. :func:`class_names` and :func:`class_points` are the accessors the gate uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import SimGapInputError

__all__ = [
    "Frame",
    "COORDINATE_FRAMES",
    "FRAME_METADATA_KEYS",
    "make_frame",
    "validate_frame",
    "id_to_class",
    "class_names",
    "class_points",
]

FRAME_METADATA_KEYS = ("frame_id", "seed", "sensor", "focus_classes", "attempt")
#: Accepted values of a frame's ``coordinate_frame``.
COORDINATE_FRAMES = ("sensor", "world")

# label arrays are (N,) uint32 in the contract
_MAX_ID = 0xFFFFFFFF


def _is_real_number_dtype(dtype: np.dtype) -> bool:
    # integer, floating or bool: not object, string, complex or datetime
    return dtype.kind in "iufb"


class Frame(dict):
    """A frame that :func:`validate_frame` checked and normalised: later stages accept it as is.

    The gate, the exporter and the SemanticKITTI writer each call :func:`validate_frame`; for an unchanged
    ``Frame`` that is a no-op, so an accepted frame is validated once instead of at every stage. Replacing a
    validated part (``data``, ``info`` or one of its entries, ``intensity``, ``coordinate_frame``) is noticed (the
    identities of the validated parts are recorded) and validates again. Writing into the arrays in place is not
    noticed: a frame's arrays are treated as immutable once validated.
    """

    __slots__ = ("_signature",)

    def __init__(self, items: Mapping[str, Any] = ()) -> None:
        dict.__init__(self, items)
        self._signature = _signature(self)

    @property
    def unchanged(self) -> bool:
        """The validated parts are the objects that were validated (nothing was swapped in since)."""
        now = _signature(self)
        return len(now) == len(self._signature) and all(a is b for a, b in zip(now, self._signature, strict=True))

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        # Rebuilt from its items: the recorded identities are those of the new objects.
        return (_restore_frame, (dict(self),))


def _restore_frame(items: dict[str, Any]) -> Frame:
    return Frame(items)


def _signature(frame: Mapping[str, Any]) -> tuple[Any, ...]:
    # The objects themselves, compared with `is` (ids of freed objects are reused).
    info = frame.get("info")
    parts = [frame.get("data"), info, frame.get("intensity"), frame.get("coordinate_frame")]
    if isinstance(info, Mapping):
        parts += [info.get("pointSemantic"), info.get("pointInstance"), info.get("idToLabels")]
        parts += list(info)  # interned key strings: a removed or added key changes the tuple
    return tuple(parts)


def make_frame(
    points: np.ndarray,
    semantic: np.ndarray,
    instance: np.ndarray,
    id_to_labels: Mapping[int, Mapping[str, str] | str],
    *,
    intensity: np.ndarray | None = None,
    frame_id: int = 0,
    seed: int = 0,
    sensor: str = "unknown",
    focus_classes: Sequence[str] = (),
    attempt: int = 0,
    coordinate_frame: str = "sensor",
) -> dict[str, Any]:
    """Build a validated frame dict.

    Args:
        points: (N, 3) float points in metres.
        semantic: (N,) integer semantic id per point.
        instance: (N,) integer instance id per point.
        id_to_labels: semantic id -> ``{"class": name}`` (a bare name string is accepted too).
        intensity: optional (N,) float intensity in [0, 1].
        frame_id, seed, sensor, focus_classes, attempt: provenance metadata (module docstring).
        coordinate_frame: ``"sensor"`` or ``"world"``.

    Returns:
        The frame dict described in the module docstring.
    """
    frame: dict[str, Any] = {
        "data": points,
        # validate_frame normalises the labels (int keys, {"class": name} values) and names what is wrong
        "info": {"pointSemantic": semantic, "pointInstance": instance, "idToLabels": id_to_labels},
        "frame_id": int(frame_id),
        "seed": int(seed),
        "sensor": str(sensor),
        "focus_classes": list(focus_classes),
        "attempt": int(attempt),
        "coordinate_frame": coordinate_frame,
    }
    if intensity is not None:
        frame["intensity"] = intensity
    return validate_frame(frame)


def validate_frame(frame: Mapping[str, Any], *, name: str | None = None) -> dict[str, Any]:
    """Check a frame against the contract and return a normalised copy.

    Args:
        frame: a frame dict (see module docstring).
        name: how to call the frame in error messages (default: ``frame <frame_id>``).

    Returns:
        A new read-only :class:`Frame` with ``data`` as (N, 3) float32, label arrays as (N,) uint32,
        ``intensity`` (if present) as (N,) float32 and ``idToLabels`` keyed by ``int``; a :class:`Frame` is
        returned as it is (validated already).

    Raises:
        SimGapInputError: missing keys, wrong shapes or dtypes, non-finite points or intensities, label ids that
            are negative or beyond uint32, semantic ids absent from ``idToLabels``, or a ``coordinate_frame``
            other than ``"sensor"`` / ``"world"``.
    """
    if type(frame) is Frame and frame.unchanged:
        return frame  # validated when it was made, nothing swapped in since
    if not isinstance(frame, Mapping):
        raise SimGapInputError(f"frame must be a mapping, got {type(frame).__name__}")
    label = name or f"frame {frame.get('frame_id', '?')}"
    if "data" not in frame or "info" not in frame:
        raise SimGapInputError(f"{label}: missing 'data' or 'info' (Replicator pointcloud layout expected)")
    pts = np.asarray(frame["data"])
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise SimGapInputError(f"{label}: 'data' must have shape (N, 3), got {pts.shape}")
    if not _is_real_number_dtype(pts.dtype):
        raise SimGapInputError(f"{label}: 'data' must hold numbers, got dtype {pts.dtype}")
    pts = pts.astype(np.float32, copy=False)
    if pts.size and not np.isfinite(pts).all():
        bad = int((~np.isfinite(pts).all(axis=1)).sum())
        raise SimGapInputError(f"{label}: 'data' contains {bad} non-finite (NaN/inf) points")
    n = pts.shape[0]
    info = frame["info"]
    if not isinstance(info, Mapping):
        raise SimGapInputError(f"{label}: 'info' must be a mapping, got {type(info).__name__}")
    out_info: dict[str, Any] = dict(info)
    for key in ("pointSemantic", "pointInstance"):
        if key not in info:
            raise SimGapInputError(f"{label}: info is missing {key!r}")
        arr = np.asarray(info[key]).reshape(-1)
        if arr.shape[0] != n:
            raise SimGapInputError(f"{label}: info[{key!r}] has {arr.shape[0]} entries for {n} points")
        if arr.size and not _is_real_number_dtype(arr.dtype):
            raise SimGapInputError(f"{label}: info[{key!r}] must hold integer ids, got dtype {arr.dtype}")
        if arr.size and (not np.issubdtype(arr.dtype, np.integer)) and not np.all(arr == np.round(arr)):
            raise SimGapInputError(f"{label}: info[{key!r}] must hold integer ids")
        if arr.size and arr.min() < 0:
            raise SimGapInputError(f"{label}: info[{key!r}] holds negative ids")
        # a wider id would wrap around in the uint32 cast and silently become another class / instance
        if arr.size and arr.max() > _MAX_ID:
            raise SimGapInputError(f"{label}: info[{key!r}] holds id {arr.max()} beyond uint32 ({_MAX_ID})")
        out_info[key] = arr.astype(np.uint32, copy=False)
    raw_labels = info.get("idToLabels", {}) or {}
    if not isinstance(raw_labels, Mapping):
        raise SimGapInputError(f"{label}: idToLabels must be a mapping of id -> {{'class': name}}")
    labels: dict[int, dict[str, str]] = {}
    for k, v in raw_labels.items():
        try:
            key = int(k)
        except (TypeError, ValueError) as exc:
            raise SimGapInputError(f"{label}: idToLabels key {k!r} is not an integer id") from exc
        if not isinstance(v, str | Mapping):
            raise SimGapInputError(f"{label}: idToLabels[{k!r}] must be a name or {{'class': name}}, got {v!r}")
        entry = {"class": v} if isinstance(v, str) else dict(v)
        if "class" not in entry:
            raise SimGapInputError(f"{label}: idToLabels[{k!r}] has no 'class' name")
        labels[key] = entry
    unknown = sorted(set(np.unique(out_info["pointSemantic"]).tolist()) - set(labels))
    if unknown:
        raise SimGapInputError(f"{label}: semantic ids {unknown} are not in idToLabels")
    out_info["idToLabels"] = labels
    # the gate measures ranges from the origin unless the frame says "world": a misspelt value must not pass
    if frame.get("coordinate_frame") is not None and frame["coordinate_frame"] not in COORDINATE_FRAMES:
        raise SimGapInputError(
            f"{label}: coordinate_frame must be one of {COORDINATE_FRAMES}, got {frame['coordinate_frame']!r}"
        )
    out = dict(frame)
    out["data"] = pts
    out["info"] = out_info
    if frame.get("intensity") is not None:
        inten = np.asarray(frame["intensity"])
        if not _is_real_number_dtype(inten.dtype):
            raise SimGapInputError(f"{label}: 'intensity' must hold numbers, got dtype {inten.dtype}")
        inten = inten.astype(np.float32, copy=False).reshape(-1)
        if inten.shape[0] != n:
            raise SimGapInputError(f"{label}: 'intensity' has {inten.shape[0]} entries for {n} points")
        if inten.size and not np.isfinite(inten).all():
            bad = int((~np.isfinite(inten)).sum())
            raise SimGapInputError(f"{label}: 'intensity' contains {bad} non-finite (NaN/inf) values")
        out["intensity"] = inten
    out.setdefault("frame_id", 0)
    out.setdefault("seed", 0)
    out.setdefault("sensor", "unknown")
    out.setdefault("focus_classes", [])
    out.setdefault("attempt", 0)
    return Frame(out)


def id_to_class(frame: Mapping[str, Any]) -> dict[int, str]:
    """Semantic id -> class name of a validated frame."""
    return {int(k): v["class"] for k, v in frame["info"]["idToLabels"].items()}


def class_names(frame: Mapping[str, Any]) -> list[str]:
    """Sorted names of the classes that have at least one point in a validated frame."""
    names = id_to_class(frame)
    present = np.unique(frame["info"]["pointSemantic"])
    return sorted({names[int(i)] for i in present})


def class_points(frame: Mapping[str, Any], class_name: str) -> np.ndarray:
    """(K, 3) float32 points of one class in a validated frame (K may be 0)."""
    ids = [i for i, n in id_to_class(frame).items() if n == class_name]
    mask = np.isin(frame["info"]["pointSemantic"], np.asarray(ids, dtype=np.uint32))
    return frame["data"][mask]
