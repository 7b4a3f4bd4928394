"""Annotator payload -> SimGap frame adapters, one per Isaac Sim annotator generation.

Pure Python and NumPy (no omni import), so that every mapping is tested outside Kit. Each adapter turns what one
annotator delivers for one render product into the frame layout of DESIGN.md (:mod:`simgap_ext.frame`):

=====================================  ==================  =====================================================
annotator                              Isaac Sim           adapter
=====================================  ==================  =====================================================
``pointcloud`` (camera / RGB-D)        all (Replicator)    :func:`from_pointcloud`
``RtxSensorCpuIsaacCreateRTXLidarScanBuffer``  4.5         :func:`from_rtx_scan_buffer_v45`
``IsaacExtractRTXSensorPointCloudNoAccumulator``  5.0/5.1  :func:`from_rtx_point_cloud_v50`
``GenericModelOutput`` + ``StableIdMap``  6.0+             :func:`from_generic_model_output_v60`
=====================================  ==================  =====================================================

RTX LiDAR annotators deliver per-point *object* ids (prim handles) rather than semantic ids, so their adapters take
a ``object_labels`` resolver (object id -> class name: a mapping or a callable, e.g. one built on
``omni.syntheticdata``'s id -> prim path lookup and the prim's semantic label). Semantic ids come from a
``class_ids`` mapping (class name -> id, 0 = ``unlabeled``) that callers share across a run's frames so that an id
names the same class in every exported scan; the object id becomes the instance id.

Every adapter records what it noticed about the payload in ``frame["adapter_issues"]`` (empty cloud, all-zero
object ids -- IsaacSim issue 180 --, points with no label); :func:`frame_issues` is the writer's pre-gate check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np

from ..data.taxonomy import UNLABELED, normalize_class_name
from ..errors import SimGapInputError
from ..frame import make_frame

__all__ = [
    "POINTCLOUD",
    "RTX_SCAN_BUFFER_V45",
    "RTX_POINT_CLOUD_V50",
    "GENERIC_MODEL_OUTPUT_V60",
    "STABLE_ID_MAP_V60",
    "UNLABELED",
    "UNLABELLED",
    "ADAPTERS",
    "LabelResolver",
    "from_pointcloud",
    "from_rtx_scan_buffer_v45",
    "from_rtx_point_cloud_v50",
    "from_generic_model_output_v60",
    "adapt",
    "annotator_for_isaac_version",
    "iter_annotator_payloads",
    "frame_issues",
    "seed_class_ids",
    "unusable_frame",
    "MALFORMED_PAYLOAD",
]

POINTCLOUD = "pointcloud"
RTX_SCAN_BUFFER_V45 = "RtxSensorCpuIsaacCreateRTXLidarScanBuffer"
RTX_POINT_CLOUD_V50 = "IsaacExtractRTXSensorPointCloudNoAccumulator"
GENERIC_MODEL_OUTPUT_V60 = "GenericModelOutput"
STABLE_ID_MAP_V60 = "StableIdMap"
#: Kept as an alias of the one unlabeled name (:data:`simgap_ext.data.taxonomy.UNLABELED`).
UNLABELLED = UNLABELED

LabelResolver = Mapping[Any, str] | Callable[[Any], str | None]


def _resolve(resolver: LabelResolver | None, key: Any) -> str | None:
    if resolver is None:
        return None
    if callable(resolver) and not isinstance(resolver, Mapping):
        return resolver(key)
    return resolver.get(key)


def _normalise_class(name: str | None) -> str:
    """Replicator labels may be ``"class"`` dicts, comma-joined multi-labels or upper-case BACKGROUND."""
    if not name:
        return UNLABELED
    # Replicator's "no semantic label" spellings (UNLABELLED, BACKGROUND, ...) become the one unlabeled name.
    return normalize_class_name(str(name).strip())


def _label_name(entry: Any) -> str:
    if isinstance(entry, Mapping):
        return _normalise_class(entry.get("class"))
    return _normalise_class(entry)


def _points(payload: Mapping[str, Any], key: str, what: str) -> np.ndarray:
    if key not in payload:
        raise SimGapInputError(f"{what}: payload has no {key!r} (keys: {sorted(payload)})")
    pts = np.asarray(payload[key], dtype=np.float32)
    if pts.size == 0:
        return np.zeros((0, 3), dtype=np.float32)
    if pts.ndim == 1 and pts.size % 3 == 0:
        pts = pts.reshape(-1, 3)  # flat x,y,z buffers as some annotators return them
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise SimGapInputError(f"{what}: {key!r} must be (N, 3) points, got shape {pts.shape}")
    return pts


def _per_point(value: Any, n: int, what: str, key: str, dtype: Any) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.size == 0 and n == 0:
        return np.zeros(0, dtype=dtype)
    arr = arr.reshape(-1)
    if arr.shape[0] != n:
        raise SimGapInputError(f"{what}: {key!r} has {arr.shape[0]} entries for {n} points")
    return arr.astype(dtype, copy=False)


def _finite_rows(pts: np.ndarray, *arrays: np.ndarray | None) -> tuple[np.ndarray, list[np.ndarray | None], int]:
    """Drop rows with non-finite coordinates (RTX returns NaN for no-hit beams); returns the count dropped."""
    keep = np.isfinite(pts).all(axis=1)
    dropped = int((~keep).sum())
    if not dropped:
        return pts, list(arrays), 0
    return pts[keep], [None if a is None else a[keep] for a in arrays], dropped


def _metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    meta = dict(metadata or {})
    out = {
        "frame_id": int(meta.pop("frame_id", 0)),
        "seed": int(meta.pop("seed", 0)),
        "sensor": str(meta.pop("sensor", "unknown")),
        "focus_classes": list(meta.pop("focus_classes", ())),
        "attempt": int(meta.pop("attempt", 0)),
        "coordinate_frame": str(meta.pop("coordinate_frame", "world")),
    }
    return out | {"extra": meta} if meta else out


def _finish(
    pts: np.ndarray,
    semantic: np.ndarray,
    instance: np.ndarray,
    id_to_labels: dict[int, str],
    *,
    intensity: np.ndarray | None,
    metadata: Mapping[str, Any] | None,
    annotator: str,
    issues: list[str],
) -> dict[str, Any]:
    meta = _metadata(metadata)
    extra = meta.pop("extra", {})
    frame = make_frame(pts, semantic, instance, id_to_labels, intensity=intensity, **meta)
    frame.update(extra)
    frame["source_annotator"] = annotator
    frame["adapter_issues"] = issues
    return frame


def _labels_from_object_ids(
    object_ids: np.ndarray,
    object_labels: LabelResolver | None,
    issues: list[str],
    class_ids: MutableMapping[str, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Object id per point -> (semantic id, instance id, id_to_labels).

    Semantic ids come from ``class_ids`` (class name -> id), which is extended in place with the next free id for
    a class it lacks: pass the same mapping for every frame of a run so that an id means the same class in every
    exported scan. ``unlabeled`` is 0. Instance ids are the object ids (0 = no object).
    """
    n = object_ids.shape[0]
    semantic = np.zeros(n, dtype=np.uint32)
    class_ids = class_ids if class_ids is not None else {}
    class_ids.setdefault(UNLABELED, 0)
    id_to_labels: dict[int, str] = {class_ids[UNLABELED]: UNLABELED}
    if n and not object_ids.any():
        issues.append("all object ids are zero (RTX LiDAR object ids missing; IsaacSim issue 180)")
    unknown: list[int] = []
    uniq, inverse = np.unique(object_ids, return_inverse=True)
    # One semantic id per distinct object, then one gather: a scene has hundreds of prims, and a mask per prim
    # would cost O(N x objects) on every frame.
    sem_of_object = np.zeros(uniq.shape[0], dtype=np.uint32)
    for idx, oid in enumerate(uniq.tolist()):
        if oid == 0:
            continue
        name = _resolve(object_labels, oid)
        if name is None:
            unknown.append(oid)
        cls = _normalise_class(name)
        if cls not in class_ids:
            class_ids[cls] = max(class_ids.values()) + 1
        id_to_labels[class_ids[cls]] = cls
        sem_of_object[idx] = class_ids[cls]
    if n:
        semantic = sem_of_object[inverse.reshape(-1)]
    if unknown:
        issues.append(f"{len(unknown)} object id(s) have no class label and count as {UNLABELED!r}")
    # Instance ids travel as uint32 (SemanticKITTI packs them in 16 bits later); wider ids are folded, not clipped.
    instance = (object_ids.astype(np.uint64) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return semantic, instance, id_to_labels


def seed_class_ids(
    existing: Mapping[int, str] | None = None, preferred: Mapping[str, int] | None = None
) -> dict[str, int]:
    """A ``class_ids`` mapping for a run: the ids already exported first, then preferred ids that are still free.

    Args:
        existing: semantic id -> class name already in the export (``Exporter.id_to_labels``); these win.
        preferred: class name -> id to use when free (e.g. the embedded backend's SemanticKITTI-like numbering, so
            that Replicator and Warp exports agree).

    Returns:
        class name -> semantic id with ``unlabeled`` = 0 unless the export says otherwise.
    """
    out: dict[str, int] = {}
    for sid, name in sorted((existing or {}).items()):
        out.setdefault(_normalise_class(name), int(sid))
    out.setdefault(UNLABELED, 0)
    used = set(out.values())
    for name, sid in sorted((preferred or {}).items(), key=lambda kv: kv[1]):
        cls = _normalise_class(name)
        if cls not in out and int(sid) not in used:
            out[cls] = int(sid)
            used.add(int(sid))
    return out


def from_pointcloud(
    payload: Mapping[str, Any],
    *,
    id_to_labels: Mapping[Any, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Adapter for Replicator's camera ``pointcloud`` annotator (every Isaac Sim version).

    Args:
        payload: ``{"data": (N, 3) float32, "info": {"pointSemantic": (N,), "pointInstance": (N,),
            "pointNormals": (N*4,) float32, "pointRgb": (N*4,) uint8, ["idToLabels"]}}``, or the flat form in
            which the ``info`` keys sit beside ``data`` (BasicWriter's annotator layout).
        id_to_labels: semantic id -> ``{"class": name}`` (or a bare name) when the payload carries none, e.g. the
            ``idToLabels`` of a ``semantic_segmentation`` annotator of the same render product.
        metadata: frame provenance (``frame_id``, ``seed``, ``sensor``, ``focus_classes``, ``attempt``,
            ``coordinate_frame``; default ``"world"``, as the annotator emits world-space points).

    Returns:
        A validated frame; semantic ids absent from every label map are named ``unlabeled`` (id 0) or
        ``semantic_<id>`` and reported in ``adapter_issues``.
    """
    what = f"annotator {POINTCLOUD!r}"
    info = payload.get("info")
    info = dict(info) if isinstance(info, Mapping) else {}
    for key in ("pointSemantic", "pointInstance", "pointNormals", "pointRgb", "idToLabels"):
        if key not in info and key in payload:
            info[key] = payload[key]
    pts = _points(payload, "data", what)
    n = pts.shape[0]
    issues: list[str] = []
    semantic = _per_point(info.get("pointSemantic"), n, what, "pointSemantic", np.int64)
    instance = _per_point(info.get("pointInstance"), n, what, "pointInstance", np.int64)
    if semantic is None:
        issues.append("no pointSemantic: every point counts as unlabeled")
        semantic = np.zeros(n, dtype=np.int64)
    if instance is None:
        instance = np.zeros(n, dtype=np.int64)
    pts, (semantic, instance), dropped = _finite_rows(pts, semantic, instance)
    if dropped:
        issues.append(f"dropped {dropped} non-finite point(s)")
    raw_labels = info.get("idToLabels") or id_to_labels or {}
    labels: dict[int, str] = {}
    for key, entry in raw_labels.items():
        try:
            labels[int(key)] = _label_name(entry)
        except (TypeError, ValueError) as exc:
            raise SimGapInputError(f"{what}: idToLabels key {key!r} is not an integer id") from exc
    missing = sorted(set(np.unique(semantic).tolist()) - set(labels))
    for sid in missing:
        labels[int(sid)] = UNLABELED if sid == 0 else f"semantic_{sid}"
    if [s for s in missing if s != 0]:
        issues.append(f"semantic ids {[s for s in missing if s != 0]} have no label")
    if n == 0:
        issues.append("empty point cloud")
    return _finish(
        pts,
        semantic.astype(np.uint32),
        instance.astype(np.uint32),
        labels,
        intensity=None,
        metadata=metadata,
        annotator=POINTCLOUD,
        issues=issues,
    )


def _rtx_common(
    pts: np.ndarray,
    object_ids: np.ndarray | None,
    intensity: np.ndarray | None,
    *,
    object_labels: LabelResolver | None,
    metadata: Mapping[str, Any] | None,
    annotator: str,
    default_frame: str,
    class_ids: MutableMapping[str, int] | None,
) -> dict[str, Any]:
    issues: list[str] = []
    n = pts.shape[0]
    if object_ids is None:
        issues.append("no per-point object ids (enable them in the annotator / aux output level)")
        object_ids = np.zeros(n, dtype=np.uint64)
    pts, (object_ids, intensity), dropped = _finite_rows(pts, object_ids, intensity)
    if dropped:
        issues.append(f"dropped {dropped} non-finite point(s)")
    if pts.shape[0] == 0:
        issues.append("empty point cloud")
    semantic, instance, labels = _labels_from_object_ids(object_ids, object_labels, issues, class_ids)
    if intensity is not None and intensity.size and float(np.nanmax(intensity)) > 1.0:
        # RTX reports intensity either normalised or in raw 0..255 counts; the frame contract wants [0, 1].
        intensity = intensity / np.float32(255.0)
    meta = {"coordinate_frame": default_frame} | dict(metadata or {})
    return _finish(
        pts, semantic, instance, labels, intensity=intensity, metadata=meta, annotator=annotator, issues=issues
    )


def from_rtx_scan_buffer_v45(
    payload: Mapping[str, Any],
    *,
    object_labels: LabelResolver | None = None,
    metadata: Mapping[str, Any] | None = None,
    class_ids: MutableMapping[str, int] | None = None,
) -> dict[str, Any]:
    """Adapter for Isaac Sim 4.5's ``RtxSensorCpuIsaacCreateRTXLidarScanBuffer`` annotator.

    Args:
        payload: flat dict: ``data`` (N, 3) float32 points (the sensor frame unless the annotator was created
            with ``transformPoints=True``), ``objectId`` (N,) uint32, ``intensity`` (N,) float32, plus
            ``distance``, ``azimuth``, ``elevation``, ``timestamp``, ... which are not needed here. An ``info`` dict
            holding the same per-point keys is accepted too.
        object_labels: object id -> class name (mapping or callable).
        metadata: frame provenance; ``coordinate_frame`` defaults to ``"sensor"``.
        class_ids: class name -> semantic id, shared across a run's frames and extended in place (default: a
            fresh mapping: ids are numbered within this frame only, by object id).

    Returns:
        A validated frame (see module docstring for the id mapping).
    """
    what = f"annotator {RTX_SCAN_BUFFER_V45!r}"
    flat = dict(payload.get("info") or {}) | {k: v for k, v in payload.items() if k != "info"}
    pts = _points(flat, "data", what)
    n = pts.shape[0]
    oids = _per_point(flat.get("objectId"), n, what, "objectId", np.uint64)
    inten = _per_point(flat.get("intensity"), n, what, "intensity", np.float32)
    return _rtx_common(
        pts,
        oids,
        inten,
        object_labels=object_labels,
        metadata=metadata,
        annotator=RTX_SCAN_BUFFER_V45,
        default_frame="sensor",
        class_ids=class_ids,
    )


def from_rtx_point_cloud_v50(
    payload: Mapping[str, Any],
    *,
    object_labels: LabelResolver | None = None,
    metadata: Mapping[str, Any] | None = None,
    class_ids: MutableMapping[str, int] | None = None,
) -> dict[str, Any]:
    """Adapter for Isaac Sim 5.0 / 5.1's ``IsaacExtractRTXSensorPointCloudNoAccumulator`` annotator.

    Args:
        payload: ``{"data": (N, 3) float32 Cartesian points in the sensor frame, "info": {"objectId": (N,) uint32,
            "intensity": (N,) float32, "azimuth", "elevation", "distance", "transform": (16,) ...}}``; which
            ``info`` members are filled depends on the sensor's aux output level. Per-point keys beside ``data``
            are accepted too.
        object_labels: object id -> class name (mapping or callable).
        metadata: frame provenance; ``coordinate_frame`` defaults to ``"sensor"``.
        class_ids: class name -> semantic id, shared across a run's frames and extended in place (default: a
            fresh mapping: ids are numbered within this frame only, by object id).

    Returns:
        A validated frame. Isaac Sim 5.0 may return all-zero object ids (issue 180): reported in
        ``adapter_issues`` so that the writer drops the frame instead of scoring an unlabeled cloud.
    """
    what = f"annotator {RTX_POINT_CLOUD_V50!r}"
    info = payload.get("info")
    flat = {k: v for k, v in payload.items() if k != "info"} | (dict(info) if isinstance(info, Mapping) else {})
    pts = _points(flat, "data", what)
    n = pts.shape[0]
    oid_key = "objectId" if "objectId" in flat else "objId"
    oids = _per_point(flat.get(oid_key), n, what, oid_key, np.uint64)
    inten = _per_point(flat.get("intensity"), n, what, "intensity", np.float32)
    return _rtx_common(
        pts,
        oids,
        inten,
        object_labels=object_labels,
        metadata=metadata,
        annotator=RTX_POINT_CLOUD_V50,
        default_frame="sensor",
        class_ids=class_ids,
    )


def _gmo_field(gmo: Any, name: str, n: int) -> np.ndarray | None:
    """A per-element GMO member as a NumPy array, from a mapping, an attribute array or a ctypes pointer."""
    if isinstance(gmo, Mapping):
        value = gmo.get(name)
    else:
        value = getattr(gmo, name, None)
    if value is None:
        return None
    if isinstance(value, np.ndarray | list | tuple):
        return np.asarray(value)
    try:  # parse_generic_model_output_data exposes ctypes pointers
        return np.ctypeslib.as_array(value, shape=(n,))
    except (TypeError, ValueError, AttributeError):
        return np.asarray(value)


def _dense_stable_ids(raw: np.ndarray, n: int, what: str) -> tuple[np.ndarray, list[int]]:
    """Dense instance numbering of 128-bit stable ids, vectorised (a Python int per point costs ~1 us each).

    Args:
        raw: (N, 16) uint8 / (N, 4) uint32 / (N, 2) uint64 little-endian ids, their flat (N * k,) form, or (N,)
            integers.
        n: number of points.
        what: how to name the payload in errors.

    Returns:
        ((N,) uint64 dense ids: 0 for stable id 0, else 1..K in ascending stable-id order; the K non-zero stable
        ids as Python ints, ascending).
    """
    arr = np.asarray(raw)
    if arr.ndim == 1 and arr.shape[0] == n and arr.dtype.kind in "iu":
        uniq, inverse = np.unique(arr, return_inverse=True)
        ints = [int(u) for u in uniq.tolist()]
    elif arr.ndim == 1 and arr.shape[0] == n:  # Python ints (object array): few enough to take the slow path
        values = [int(v) for v in arr.tolist()]
        ints = sorted(set(values))
        pos = {v: i for i, v in enumerate(ints)}
        inverse = np.array([pos[v] for v in values], dtype=np.int64)
    else:
        if arr.ndim == 1 and n and arr.size % n == 0:
            arr = arr.reshape(n, -1)
        if arr.ndim != 2 or arr.shape[0] != n:
            raise SimGapInputError(f"{what}: objId has shape {arr.shape} for {n} points")
        as_bytes = np.ascontiguousarray(arr).view(np.uint8).reshape(n, -1)
        width = -(-as_bytes.shape[1] // 8) * 8
        if width != as_bytes.shape[1]:
            as_bytes = np.pad(as_bytes, ((0, 0), (0, width - as_bytes.shape[1])))
        # Little-endian 64-bit words; lexsort's last key is the primary one, so the most significant word goes
        # last and the sort is the integer order (np.unique(axis=0) does the same several times slower).
        words = np.ascontiguousarray(as_bytes).view("<u8")
        order = np.lexsort(words.T)
        ranked = words[order]
        first = np.ones(n, dtype=bool)
        first[1:] = np.any(ranked[1:] != ranked[:-1], axis=1)
        inverse = np.empty(n, dtype=np.int64)
        inverse[order] = np.cumsum(first) - 1
        ints = [sum(int(w) << (64 * i) for i, w in enumerate(row)) for row in ranked[first].tolist()]
    dense_of_unique = np.arange(len(ints), dtype=np.uint64) + np.uint64(0 if ints and ints[0] == 0 else 1)
    dense = dense_of_unique[np.asarray(inverse).reshape(-1)] if n else np.zeros(0, np.uint64)
    return dense, [v for v in ints if v != 0]


def from_generic_model_output_v60(
    gmo: Any,
    *,
    stable_id_map: Mapping[int, str] | None = None,
    prim_labels: LabelResolver | None = None,
    metadata: Mapping[str, Any] | None = None,
    class_ids: MutableMapping[str, int] | None = None,
) -> dict[str, Any]:
    """Adapter for Isaac Sim 6.0's ``GenericModelOutput`` (parsed) plus ``StableIdMap``.

    Args:
        gmo: the parsed GMO (``isaacsim.sensors.experimental.rtx.parse_generic_model_output_data``: attributes
            ``numElements``, ``elementsCoordsType``, ``x``, ``y``, ``z``, ``scalar`` and, with an EXTRA/FULL aux
            output level, ``objId``) or a mapping with those keys. ``elementsCoordsType`` 0 / ``"cartesian"``: x, y,
            z in metres; 1 / ``"spherical"``: x = azimuth (deg), y = elevation (deg), z = range (m).
        stable_id_map: 128-bit stable id -> prim path (the ``StableIdMap`` annotator, which needs
            ``--/rtx-transient/stableIds/enabled=true``).
        prim_labels: prim path -> class name (mapping or callable, e.g. reading the prim's semantic label).
        metadata: frame provenance; ``coordinate_frame`` defaults to ``"sensor"``.
        class_ids: see :func:`from_rtx_scan_buffer_v45`.

    Returns:
        A validated frame; instance ids are a dense 1..K numbering of the stable ids present (128-bit ids do
        not fit SemanticKITTI's 16-bit instance field).
    """
    what = f"annotator {GENERIC_MODEL_OUTPUT_V60!r}"
    n_raw = gmo.get("numElements") if isinstance(gmo, Mapping) else getattr(gmo, "numElements", None)
    if n_raw is None:
        x0 = _gmo_field(gmo, "x", 0)
        if x0 is None:
            raise SimGapInputError(f"{what}: no 'x' member (is this a parsed GenericModelOutput?)")
        n_raw = np.asarray(x0).reshape(-1).shape[0]
    n = int(n_raw)
    cols = []
    for name in ("x", "y", "z"):
        col = _gmo_field(gmo, name, n)
        if col is None:
            raise SimGapInputError(f"{what}: no {name!r} member")
        col = np.asarray(col, dtype=np.float64).reshape(-1)[:n]
        if col.shape[0] != n:
            raise SimGapInputError(f"{what}: {name!r} has {col.shape[0]} entries for numElements={n}")
        cols.append(col)
    coords = gmo.get("elementsCoordsType", 0) if isinstance(gmo, Mapping) else getattr(gmo, "elementsCoordsType", 0)
    coords_name = str(getattr(coords, "name", coords)).lower()
    if coords_name in ("1", "spherical", "coordstype.spherical") or coords_name.endswith("spherical"):
        az, el, rng = np.radians(cols[0]), np.radians(cols[1]), cols[2]
        pts = np.stack([rng * np.cos(el) * np.cos(az), rng * np.cos(el) * np.sin(az), rng * np.sin(el)], axis=1)
    else:
        pts = np.stack(cols, axis=1)
    pts = pts.astype(np.float32)
    inten_raw = _gmo_field(gmo, "scalar", n)
    inten = None if inten_raw is None else np.asarray(inten_raw, dtype=np.float32).reshape(-1)[:n]
    raw_ids = _gmo_field(gmo, "objId", n)
    oids: np.ndarray | None = None
    object_labels: Callable[[int], str | None] | None = None
    if raw_ids is not None:
        if np.asarray(raw_ids).ndim == 1 and np.asarray(raw_ids).shape[0] != n:
            raw_ids = _gmo_field(gmo, "objId", n * 16)  # ctypes byte pointer: 16 bytes per element
        # Dense renumbering keeps instance ids small; the class comes from stable id -> prim path -> label.
        oids, uniq = _dense_stable_ids(raw_ids, n, what)
        paths = {i + 1: (stable_id_map or {}).get(sid) for i, sid in enumerate(uniq)}

        def object_labels(oid: int) -> str | None:
            path = paths.get(oid)
            return None if path is None else _resolve(prim_labels, path)

    return _rtx_common(
        pts,
        oids,
        inten,
        object_labels=object_labels,
        metadata=metadata,
        annotator=GENERIC_MODEL_OUTPUT_V60,
        default_frame="sensor",
        class_ids=class_ids,
    )


ADAPTERS: dict[str, Callable[..., dict[str, Any]]] = {
    POINTCLOUD: from_pointcloud,
    RTX_SCAN_BUFFER_V45: from_rtx_scan_buffer_v45,
    RTX_POINT_CLOUD_V50: from_rtx_point_cloud_v50,
    GENERIC_MODEL_OUTPUT_V60: from_generic_model_output_v60,
}


def adapt(annotator: str, payload: Any, **kwargs: Any) -> dict[str, Any]:
    """Dispatch a payload to the adapter of ``annotator`` (a key of :data:`ADAPTERS`).

    Raises:
        SimGapInputError: unknown annotator name.
    """
    try:
        fn = ADAPTERS[annotator]
    except KeyError:
        raise SimGapInputError(
            f"no SimGap adapter for annotator {annotator!r} (supported: {', '.join(ADAPTERS)})"
        ) from None
    return fn(payload, **kwargs)


def annotator_for_isaac_version(version: str, *, lidar: bool = True) -> str:
    """The annotator SimGap requests in a given Isaac Sim version.

    Args:
        version: Isaac Sim version string, e.g. ``"4.5.0"``, ``"5.1.0"``, ``"6.0.1"``.
        lidar: RTX LiDAR (True) or a depth camera's ``pointcloud`` annotator (False).

    Raises:
        SimGapInputError: unparsable version or an RTX LiDAR request for Isaac Sim < 4.5.
    """
    if not lidar:
        return POINTCLOUD
    try:
        major, minor = (int(p) for p in (str(version).split(".") + ["0"])[:2])
    except ValueError as exc:
        raise SimGapInputError(f"Isaac Sim version {version!r} is not of the form MAJOR.MINOR[.PATCH]") from exc
    if (major, minor) >= (6, 0):
        return GENERIC_MODEL_OUTPUT_V60
    if (major, minor) >= (5, 0):
        return RTX_POINT_CLOUD_V50
    if (major, minor) >= (4, 5):
        return RTX_SCAN_BUFFER_V45
    raise SimGapInputError(f"Isaac Sim {version}: RTX LiDAR annotators older than 4.5 are not supported")


def iter_annotator_payloads(data: Mapping[str, Any], annotator: str) -> Iterator[tuple[str, Any]]:
    """Yield ``(render_product_name, payload)`` for one annotator from a Writer's ``data`` in any layout.

    Layouts (``Writer.data_structure``): ``"legacy"`` -- ``data[annotator]`` for one render product or
    ``data[f"{annotator}-{rp}"]`` for several; ``"annotator"`` -- ``data["annotators"][annotator][rp]``;
    ``"renderProduct"`` -- ``data["renderProducts"][rp][annotator]``. Render products come in sorted order so
    that frame numbering is reproducible.
    """
    if isinstance(data.get("annotators"), Mapping) and annotator in data["annotators"]:
        per_rp = data["annotators"][annotator]
        for rp in sorted(per_rp):
            yield str(rp), per_rp[rp]
        return
    if isinstance(data.get("renderProducts"), Mapping):
        found = False
        for rp in sorted(data["renderProducts"]):
            entry = data["renderProducts"][rp]
            if isinstance(entry, Mapping) and annotator in entry:
                found = True
                yield str(rp), entry[annotator]
        if found:
            return
    if annotator in data:
        yield "", data[annotator]
        return
    prefix = f"{annotator}-"
    for key in sorted(k for k in data if isinstance(k, str) and k.startswith(prefix)):
        yield key[len(prefix) :], data[key]


#: Prefix of the adapter issue that marks a payload the adapters could not read (see :func:`unusable_frame`).
MALFORMED_PAYLOAD = "malformed payload"


def unusable_frame(reason: str, *, metadata: Mapping[str, Any] | None = None, annotator: str = "") -> dict[str, Any]:
    """An empty frame standing for a payload that could not be read, so that it is recorded, not raised.

    Args:
        reason: what was wrong with the payload (an adapter's error message).
        metadata: frame provenance (``frame_id``, ``seed``, ``sensor``, ``attempt``, ...).
        annotator: the annotator the payload came from.

    Returns:
        A validated empty frame whose ``adapter_issues`` holds ``"malformed payload: <reason>"``.
    """
    empty = np.zeros(0, np.uint32)
    return _finish(
        np.zeros((0, 3), np.float32),
        empty,
        empty,
        {},
        intensity=None,
        metadata=metadata,
        annotator=annotator,
        issues=[f"{MALFORMED_PAYLOAD}: {reason}"],
    )


def frame_issues(frame: Mapping[str, Any], *, min_points: int = 1) -> list[str]:
    """Reasons not to score a frame at all (before the gate): empty, too small, or unusable labels.

    Args:
        frame: an adapted frame (``adapter_issues`` is read when present).
        min_points: fewer points than this is an empty frame (IsaacSim issues 110 / 319).

    Returns:
        Fatal issues; an empty list means the frame goes on to the gate.
    """
    malformed = [i for i in frame.get("adapter_issues", ()) if i.startswith(MALFORMED_PAYLOAD)]
    if malformed:  # nothing was read from the payload: its other issues would only be echoes of that
        return malformed
    issues: list[str] = []
    n = int(np.asarray(frame["data"]).shape[0])
    if n < min_points:
        issues.append(f"empty frame: {n} point(s) < {min_points}")
    for issue in frame.get("adapter_issues", ()):
        if issue.startswith("all object ids are zero") or issue.startswith("no per-point object ids"):
            issues.append(issue)
    if n and np.all(np.asarray(frame["info"]["pointSemantic"]) == 0) and not issues:
        issues.append("every point is unlabeled: nothing to score")
    return issues
