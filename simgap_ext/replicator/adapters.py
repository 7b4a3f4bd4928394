"""Annotator payload -> SimGap frame adapters, one per Isaac Sim annotator generation.

Pure Python and NumPy (no omni import), so that every mapping is tested outside Kit. Each adapter turns what one
annotator delivers for one render product into the frame layout of DESIGN.md (:mod:`simgap_ext.frame`):

===================================================  ==========  ==========  ======================================
annotator                                            Isaac Sim   scan        adapter
===================================================  ==========  ==========  ======================================
``pointcloud`` (+ ``semantic_segmentation`` names)   all         camera      :func:`from_pointcloud`
``RtxSensorCpuIsaacCreateRTXLidarScanBuffer``        4.5         full        :func:`from_rtx_scan_buffer_v45`
``IsaacCreateRTXLidarScanBuffer``                    5.0 / 5.1   full        :func:`from_rtx_scan_buffer_v50`
``IsaacExtractRTXSensorPointCloudNoAccumulator``     5.0 / 5.1   per frame   :func:`from_rtx_point_cloud_v50`
``GenericModelOutput`` + ``StableIdMap``             6.x         full        :func:`from_generic_model_output_v60`
``IsaacExtractRTXSensorPointCloud``                  6.x         per frame   :func:`from_rtx_point_cloud_v60`
===================================================  ==========  ==========  ======================================

:func:`annotator_for_isaac_version` picks the full-scan annotator of a version and :func:`annotator_init_params` its
init parameters (``outputObjectId`` / ``outputIntensity``: without them the scan buffer emits no ids --
``OgnIsaacCreateRTXLidarScanBuffer.ogn`` at IsaacSim ``v5.1.0``). Per-frame annotators deliver a slice of a
rotation: their frames carry a ``partial scan`` issue and are never scored against a bank of full scans, nor is a
GenericModelOutput with ``scanComplete`` false.

RTX LiDAR annotators deliver per-point *object* ids rather than semantic ids. 4.5 / 5.0 ids are ``uint32`` and are
named by an ``object_labels`` resolver (object id -> class); 5.1 / 6.x ids are 128-bit stable ids
(:mod:`.rtx_ids`), resolved to prim paths by the ``StableIdMap`` annotator and to classes by ``prim_labels`` (by
default the stage's semantics, :mod:`.semantics`). Semantic ids come from a ``class_ids`` mapping (class name -> id,
0 = ``unlabeled``) that callers share across a run's frames so that an id names the same class in every exported
scan; the object id (32-bit) or a dense 1..K numbering of the stable ids (128-bit) becomes the instance id.

Every adapter records what it noticed about the payload in ``frame["adapter_issues"]`` (empty cloud, all-zero
object ids -- IsaacSim issue 180 --, points with no label, partial scans); :func:`frame_issues` is the writer's
pre-gate check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np

from ..data.taxonomy import UNLABELED, normalize_class_name
from ..errors import SimGapInputError
from ..frame import make_frame
from .rtx_ids import decode_object_ids, lookup_stable_id

__all__ = [
    "POINTCLOUD",
    "SEMANTIC_SEGMENTATION",
    "RTX_SCAN_BUFFER_V45",
    "RTX_SCAN_BUFFER_V50",
    "RTX_POINT_CLOUD_V50",
    "RTX_POINT_CLOUD_V60",
    "GENERIC_MODEL_OUTPUT_V60",
    "STABLE_ID_MAP_V60",
    "PARTIAL_SCAN",
    "TIMELINE_NOT_PLAYING",
    "UNLABELED",
    "UNLABELLED",
    "ADAPTERS",
    "LabelResolver",
    "from_pointcloud",
    "from_rtx_scan_buffer_v45",
    "from_rtx_scan_buffer_v50",
    "from_rtx_point_cloud_v50",
    "from_rtx_point_cloud_v60",
    "from_generic_model_output_v60",
    "adapt",
    "annotator_for_isaac_version",
    "annotator_init_params",
    "parse_isaac_version",
    "iter_annotator_payloads",
    "frame_issues",
    "seed_class_ids",
    "unusable_frame",
    "MALFORMED_PAYLOAD",
]

POINTCLOUD = "pointcloud"
SEMANTIC_SEGMENTATION = "semantic_segmentation"
RTX_SCAN_BUFFER_V45 = "RtxSensorCpuIsaacCreateRTXLidarScanBuffer"
RTX_SCAN_BUFFER_V50 = "IsaacCreateRTXLidarScanBuffer"
RTX_POINT_CLOUD_V50 = "IsaacExtractRTXSensorPointCloudNoAccumulator"
RTX_POINT_CLOUD_V60 = "IsaacExtractRTXSensorPointCloud"
GENERIC_MODEL_OUTPUT_V60 = "GenericModelOutput"
STABLE_ID_MAP_V60 = "StableIdMap"
#: Kept as an alias of the one unlabeled name (:data:`simgap_ext.data.taxonomy.UNLABELED`).
UNLABELLED = UNLABELED
#: Prefix of the adapter issue of a frame that holds only part of a LiDAR rotation (never scored).
PARTIAL_SCAN = "partial scan"
#: Why an RTX frame is empty when the timeline is not playing (IsaacSim issue 110); the writer adds it.
TIMELINE_NOT_PLAYING = (
    "timeline not playing: RTX sensors produce no data (call timeline.play() and step with "
    "rep.orchestrator.step(pause_timeline=False))"
)
_PER_FRAME_FIX = (
    "per-frame output holds a slice of a rotation; read full scans with IsaacCreateRTXLidarScanBuffer (5.x) or "
    "GenericModelOutput (6.x)"
)

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
    # Replicator's "no semantic label" spellings (UNLABELED, BACKGROUND, ...) become the one unlabeled name.
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


def _resolve_object_ids(
    raw: Any,
    n: int,
    what: str,
    *,
    object_labels: LabelResolver | None,
    stable_id_map: Mapping[int, str] | None,
    prim_labels: LabelResolver | None,
) -> tuple[np.ndarray | None, LabelResolver | None]:
    """Per-point ids of any generation -> (object ids for :func:`_labels_from_object_ids`, their class resolver).

    32-bit ids (4.5 / 5.0) stay as they are and are named by ``object_labels``. 128-bit stable ids (5.1 / 6.x)
    become a dense 1..K numbering (they do not fit SemanticKITTI's 16-bit instance field) whose class is
    stable id -> prim path (``StableIdMap``) -> ``prim_labels``, with ``object_labels`` (keyed on the stable id)
    as a fallback.
    """
    if raw is None:
        return None, None
    dense, ids, wide = decode_object_ids(raw, n, what)
    if not wide:
        return np.asarray(raw).reshape(-1).astype(np.uint64), object_labels

    def resolve(oid: int) -> str | None:
        sid = ids[oid - 1]
        path = lookup_stable_id(stable_id_map, sid)
        name = None if path is None else _resolve(prim_labels, path)
        return name if name is not None else _resolve(object_labels, sid)

    return dense, resolve


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
    partial: str | None = None,
) -> dict[str, Any]:
    issues: list[str] = []
    if partial:
        issues.append(f"{PARTIAL_SCAN}: {partial}")
    n = pts.shape[0]
    missing = object_ids is None
    if missing:
        issues.append(
            "no per-point object ids (request outputObjectId=True and set the LiDAR's aux output level to EXTRA or "
            "FULL; see docs/kit.md)"
        )
        object_ids = np.zeros(n, dtype=np.uint64)
    pts, (object_ids, intensity), dropped = _finite_rows(pts, object_ids, intensity)
    if dropped:
        issues.append(f"dropped {dropped} non-finite point(s)")
    if pts.shape[0] == 0:
        issues.append("empty point cloud")
    semantic, instance, labels = _labels_from_object_ids(object_ids, object_labels, issues, class_ids)
    if missing:  # the zero ids are our placeholder, not Isaac Sim's issue-180 zeros
        issues = [i for i in issues if not i.startswith("all object ids are zero")]
    if intensity is not None and intensity.size and float(np.nanmax(intensity)) > 1.0:
        # RTX reports intensity either normalised or in raw 0..255 counts; the frame contract wants [0, 1].
        intensity = intensity / np.float32(255.0)
    meta = {"coordinate_frame": default_frame} | dict(metadata or {})
    frame = _finish(
        pts, semantic, instance, labels, intensity=intensity, metadata=meta, annotator=annotator, issues=issues
    )
    frame["scan_complete"] = partial is None
    return frame


def _flat_rtx_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Scan-buffer payloads put per-point arrays both beside ``data`` and in ``info``; merge them (top level wins)."""
    info = payload.get("info")
    return (dict(info) if isinstance(info, Mapping) else {}) | {k: v for k, v in payload.items() if k != "info"}


def _rtx_point_payload(
    payload: Mapping[str, Any],
    annotator: str,
    *,
    object_labels: LabelResolver | None,
    stable_id_map: Mapping[int, str] | None,
    prim_labels: LabelResolver | None,
    metadata: Mapping[str, Any] | None,
    class_ids: MutableMapping[str, int] | None,
    partial: str | None,
) -> dict[str, Any]:
    what = f"annotator {annotator!r}"
    flat = _flat_rtx_payload(payload)
    pts = _points(flat, "data", what)
    n = pts.shape[0]
    oid_key = "objectId" if "objectId" in flat else "objId"
    raw = flat.get(oid_key)
    if raw is not None and np.asarray(raw).size == 0 and n:
        raw = None  # the annotator allocates the key but fills it only with ids enabled
    oids, resolver = _resolve_object_ids(
        raw, n, what, object_labels=object_labels, stable_id_map=stable_id_map, prim_labels=prim_labels
    )
    inten = _per_point(flat.get("intensity"), n, what, "intensity", np.float32)
    if inten is not None and inten.size == 0 and n:
        inten = None
    return _rtx_common(
        pts,
        oids,
        inten,
        object_labels=resolver,
        metadata=metadata,
        annotator=annotator,
        default_frame="sensor",
        class_ids=class_ids,
        partial=partial,
    )


def from_rtx_scan_buffer_v45(
    payload: Mapping[str, Any],
    *,
    object_labels: LabelResolver | None = None,
    metadata: Mapping[str, Any] | None = None,
    class_ids: MutableMapping[str, int] | None = None,
) -> dict[str, Any]:
    """Adapter for Isaac Sim 4.5's ``RtxSensorCpuIsaacCreateRTXLidarScanBuffer`` annotator (full scans).

    Args:
        payload: ``data`` (N, 3) float32 points (the sensor frame unless the annotator was created with
            ``transformPoints=True``), ``objectId`` (N,) uint32, ``intensity`` (N,) float32, plus ``distance``,
            ``azimuth``, ... which are not needed here, beside ``data`` and/or in ``info``.
        object_labels: object id -> class name (mapping or callable).
        metadata: frame provenance; ``coordinate_frame`` defaults to ``"sensor"``.
        class_ids: class name -> semantic id, shared across a run's frames and extended in place (default: a
            fresh mapping: ids are numbered within this frame only, by object id).

    Returns:
        A validated frame (see module docstring for the id mapping).
    """
    return _rtx_point_payload(
        payload,
        RTX_SCAN_BUFFER_V45,
        object_labels=object_labels,
        stable_id_map=None,
        prim_labels=None,
        metadata=metadata,
        class_ids=class_ids,
        partial=None,
    )


def from_rtx_scan_buffer_v50(
    payload: Mapping[str, Any],
    *,
    object_labels: LabelResolver | None = None,
    stable_id_map: Mapping[int, str] | None = None,
    prim_labels: LabelResolver | None = None,
    metadata: Mapping[str, Any] | None = None,
    class_ids: MutableMapping[str, int] | None = None,
) -> dict[str, Any]:
    """Adapter for Isaac Sim 5.0 / 5.1's ``IsaacCreateRTXLidarScanBuffer`` annotator (full scans).

    Layout (``test_annotators.py`` of ``isaacsim.sensors.rtx`` at IsaacSim ``v5.1.0``): ``data`` (N, 3) float32
    sensor-frame points, and with ``outputObjectId=True`` / ``outputIntensity=True`` (see
    :func:`annotator_init_params`) ``objectId`` and ``intensity`` both beside ``data`` and in ``info`` (with
    ``numReturnsPerScan``, ``transform``, ...). ``objectId`` is (N,) uint32 in 5.0 and a 128-bit stable id per
    point in 5.1 ((N * 4,) uint32 words).

    Args:
        payload: the annotator's ``get_data()`` dict.
        object_labels: 32-bit object id (5.0) or stable id (5.1) -> class name, mapping or callable.
        stable_id_map: 5.1 stable id -> prim path (the ``StableIdMap`` annotator, parsed).
        prim_labels: prim path -> class name (mapping or callable), used with ``stable_id_map``.
        metadata: frame provenance; ``coordinate_frame`` defaults to ``"sensor"``.
        class_ids: see :func:`from_rtx_scan_buffer_v45`.
    """
    return _rtx_point_payload(
        payload,
        RTX_SCAN_BUFFER_V50,
        object_labels=object_labels,
        stable_id_map=stable_id_map,
        prim_labels=prim_labels,
        metadata=metadata,
        class_ids=class_ids,
        partial=None,
    )


def from_rtx_point_cloud_v50(
    payload: Mapping[str, Any],
    *,
    object_labels: LabelResolver | None = None,
    stable_id_map: Mapping[int, str] | None = None,
    prim_labels: LabelResolver | None = None,
    metadata: Mapping[str, Any] | None = None,
    class_ids: MutableMapping[str, int] | None = None,
) -> dict[str, Any]:
    """Adapter for Isaac Sim 5.0 / 5.1's ``IsaacExtractRTXSensorPointCloudNoAccumulator`` (per-frame output).

    In 5.0 the node (``IsaacExtractRTXSensorPointCloud``) outputs points and a transform only, no object ids; in 5.1
    it is ``IsaacCreateRTXLidarScanBuffer`` with ``enablePerFrameOutput`` (``isaacsim.sensors.rtx`` extension.py
    and CHANGELOG at IsaacSim ``v5.0.0`` / ``v5.1.0``), so its payload is that of :func:`from_rtx_scan_buffer_v50`.
    Either way a frame is a slice of a rotation: it carries a ``partial scan`` issue and is never scored.

    Args:
        payload, object_labels, stable_id_map, prim_labels, metadata, class_ids: see
            :func:`from_rtx_scan_buffer_v50`.
    """
    return _rtx_point_payload(
        payload,
        RTX_POINT_CLOUD_V50,
        object_labels=object_labels,
        stable_id_map=stable_id_map,
        prim_labels=prim_labels,
        metadata=metadata,
        class_ids=class_ids,
        partial=_PER_FRAME_FIX,
    )


def from_rtx_point_cloud_v60(
    payload: Mapping[str, Any],
    *,
    object_labels: LabelResolver | None = None,
    stable_id_map: Mapping[int, str] | None = None,
    prim_labels: LabelResolver | None = None,
    metadata: Mapping[str, Any] | None = None,
    class_ids: MutableMapping[str, int] | None = None,
) -> dict[str, Any]:
    """Adapter for Isaac Sim 6.x's ``IsaacExtractRTXSensorPointCloud`` (Cartesian points, per-frame output).

    Layout (``OgnIsaacExtractRTXSensorPointCloud.ogn`` of ``isaacsim.sensors.rtx.nodes`` at IsaacSim ``v6.0.1``):
    ``data`` (N, 3) float32 points; ``objectId`` as ``uint[4]`` per point (128-bit stable ids) and ``intensity``
    when the aux output level fills them. A frame is what the sensor produced during one render frame: it carries a
    ``partial scan`` issue and is never scored.

    Args:
        payload, object_labels, stable_id_map, prim_labels, metadata, class_ids: see
            :func:`from_rtx_scan_buffer_v50`.
    """
    return _rtx_point_payload(
        payload,
        RTX_POINT_CLOUD_V60,
        object_labels=object_labels,
        stable_id_map=stable_id_map,
        prim_labels=prim_labels,
        metadata=metadata,
        class_ids=class_ids,
        partial=_PER_FRAME_FIX,
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


def _gmo_scalar(gmo: Any, name: str) -> Any:
    return gmo.get(name) if isinstance(gmo, Mapping) else getattr(gmo, name, None)


def from_generic_model_output_v60(
    gmo: Any,
    *,
    stable_id_map: Mapping[int, str] | None = None,
    prim_labels: LabelResolver | None = None,
    object_labels: LabelResolver | None = None,
    metadata: Mapping[str, Any] | None = None,
    class_ids: MutableMapping[str, int] | None = None,
) -> dict[str, Any]:
    """Adapter for Isaac Sim 6.x's ``GenericModelOutput`` (parsed) plus ``StableIdMap`` (full scans).

    Args:
        gmo: the parsed GMO (``parse_generic_model_output_data`` of ``isaacsim.sensors.experimental.rtx``, IsaacSim
            ``v6.0.1``: attributes ``numElements``, ``elementsCoordsType``, ``x``, ``y``, ``z``, ``scalar``,
            ``scanComplete``, ``timestampNs`` and, with an EXTRA/FULL aux output level, ``objId`` -- 16 bytes per
            element) or a mapping with those keys. ``elementsCoordsType`` 0 / ``"cartesian"``: x, y, z in metres;
            1 / ``"spherical"``: x = azimuth (deg), y = elevation (deg), z = range (m).
        stable_id_map: 128-bit stable id -> prim path (the ``StableIdMap`` annotator, parsed with
            :func:`~simgap_ext.replicator.rtx_ids.parse_stable_id_map`; needs
            ``--/rtx-transient/stableIds/enabled=true``).
        prim_labels: prim path -> class name (mapping or callable, e.g.
            :func:`~simgap_ext.replicator.semantics.stage_prim_labels`).
        object_labels: stable id -> class name, for ids ``stable_id_map`` does not name.
        metadata: frame provenance; ``coordinate_frame`` defaults to ``"sensor"``.
        class_ids: see :func:`from_rtx_scan_buffer_v45`.

    Returns:
        A validated frame; instance ids are a dense 1..K numbering of the stable ids present. ``scan_complete`` is
        False (and a ``partial scan`` issue is recorded) when the GMO says ``scanComplete`` is 0;
        ``scan_timestamp_ns`` is the GMO's ``timestampNs`` (the writer drops a scan delivered twice).
    """
    what = f"annotator {GENERIC_MODEL_OUTPUT_V60!r}"
    n_raw = _gmo_scalar(gmo, "numElements")
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
    coords = _gmo_scalar(gmo, "elementsCoordsType") or 0
    coords_name = str(getattr(coords, "name", coords)).lower()
    if coords_name in ("1", "spherical", "coordstype.spherical") or coords_name.endswith("spherical"):
        az, el, rng = np.radians(cols[0]), np.radians(cols[1]), cols[2]
        pts = np.stack([rng * np.cos(el) * np.cos(az), rng * np.cos(el) * np.sin(az), rng * np.sin(el)], axis=1)
    else:
        pts = np.stack(cols, axis=1)
    pts = pts.astype(np.float32)
    inten_raw = _gmo_field(gmo, "scalar", n)
    inten = None if inten_raw is None else np.asarray(inten_raw, dtype=np.float32).reshape(-1)[:n]
    if inten is not None and inten.shape[0] != n:
        inten = None
    raw_ids = _gmo_field(gmo, "objId", n)
    if raw_ids is not None and not isinstance(raw_ids, np.ndarray):
        raw_ids = np.asarray(raw_ids)
    if raw_ids is not None and raw_ids.ndim == 1 and raw_ids.shape[0] == n and raw_ids.dtype == np.uint8 and n:
        raw_ids = _gmo_field(gmo, "objId", n * 16)  # a ctypes byte pointer read as n bytes: 16 bytes per element
    if raw_ids is not None and np.asarray(raw_ids).size == 0 and n:
        raw_ids = None  # aux level below EXTRA: the member exists but is empty
    oids, resolver = _resolve_object_ids(
        raw_ids, n, what, object_labels=object_labels, stable_id_map=stable_id_map, prim_labels=prim_labels
    )
    complete = _gmo_scalar(gmo, "scanComplete")
    partial = None
    if complete is not None and not bool(complete):
        partial = "GenericModelOutput scanComplete is 0 (the sensor has not finished this rotation)"
    frame = _rtx_common(
        pts,
        oids,
        inten,
        object_labels=resolver,
        metadata=metadata,
        annotator=GENERIC_MODEL_OUTPUT_V60,
        default_frame="sensor",
        class_ids=class_ids,
        partial=partial,
    )
    stamp = _gmo_scalar(gmo, "timestampNs")
    if stamp is not None:
        frame["scan_timestamp_ns"] = int(stamp)
    return frame


ADAPTERS: dict[str, Callable[..., dict[str, Any]]] = {
    POINTCLOUD: from_pointcloud,
    RTX_SCAN_BUFFER_V45: from_rtx_scan_buffer_v45,
    RTX_SCAN_BUFFER_V50: from_rtx_scan_buffer_v50,
    RTX_POINT_CLOUD_V50: from_rtx_point_cloud_v50,
    RTX_POINT_CLOUD_V60: from_rtx_point_cloud_v60,
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


def parse_isaac_version(version: str) -> tuple[int, int]:
    """``"5.1.0"`` -> ``(5, 1)``.

    Raises:
        SimGapInputError: not of the form MAJOR.MINOR[.PATCH...].
    """
    try:
        major, minor = (int(p) for p in (str(version).split("-")[0].split(".") + ["0"])[:2])
    except ValueError as exc:
        raise SimGapInputError(f"Isaac Sim version {version!r} is not of the form MAJOR.MINOR[.PATCH]") from exc
    return major, minor


def annotator_for_isaac_version(version: str, *, lidar: bool = True) -> str:
    """The full-scan annotator SimGap requests in a given Isaac Sim version.

    Args:
        version: Isaac Sim version string, e.g. ``"4.5.0"``, ``"5.1.0"``, ``"6.0.1"``.
        lidar: RTX LiDAR (True) or a depth camera's ``pointcloud`` annotator (False).

    Raises:
        SimGapInputError: unparsable version or an RTX LiDAR request for Isaac Sim < 4.5.
    """
    if not lidar:
        return POINTCLOUD
    major, minor = parse_isaac_version(version)
    if (major, minor) >= (6, 0):
        return GENERIC_MODEL_OUTPUT_V60
    if (major, minor) >= (5, 0):
        return RTX_SCAN_BUFFER_V50
    if (major, minor) >= (4, 5):
        return RTX_SCAN_BUFFER_V45
    raise SimGapInputError(f"Isaac Sim {version}: RTX LiDAR annotators older than 4.5 are not supported")


def annotator_init_params(annotator: str, isaac_version: str | None = None) -> dict[str, Any] | None:
    """The ``init_params`` SimGap creates an annotator with (None: the annotator takes none).

    * ``pointcloud``: ``includeUnlabelled`` -- unlabelled points (ground, walls) are part of a LiDAR scene.
    * scan buffers (4.5, 5.x) and the 5.1 per-frame annotator: ``outputObjectId`` and ``outputIntensity``, which
      default to False (``OgnIsaacCreateRTXLidarScanBuffer.ogn`` at IsaacSim ``v5.0.0`` / ``v5.1.0``; the 5.1
      ``NoAccumulator`` annotator is that node with ``enablePerFrameOutput``).
    * 5.0's per-frame annotator, 6.x ``GenericModelOutput`` / ``IsaacExtractRTXSensorPointCloud``: none (their
      outputs follow the sensor's aux output level).
    """
    if annotator == POINTCLOUD:
        return {"includeUnlabelled": True}
    ids = {"outputObjectId": True, "outputIntensity": True}
    if annotator in (RTX_SCAN_BUFFER_V45, RTX_SCAN_BUFFER_V50):
        return ids
    if annotator == RTX_POINT_CLOUD_V50 and (isaac_version is None or parse_isaac_version(isaac_version) >= (5, 1)):
        return ids
    return None


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
        if issue.startswith(("all object ids are zero", "no per-point object ids", PARTIAL_SCAN, "timeline not")):
            issues.append(issue)
    if n and np.all(np.asarray(frame["info"]["pointSemantic"]) == 0) and not issues:
        issues.append("every point is unlabeled: nothing to score")
    return issues
