"""RTX LiDAR payloads in the layouts Isaac Sim 4.5 / 5.0 / 5.1 / 6.x really deliver, byte for byte.

Every fixture is built from the format in the public Isaac Sim sources (repository isaac-sim/IsaacSim, file and
tag in its docstring), with an encoder written here from that description; the expected values come from an
independent reference (``int.from_bytes`` per point, as ``LidarRtx.get_object_ids`` decodes them), never from
SimGap's own decoder.
"""

from __future__ import annotations

import numpy as np
import pytest

from simgap_ext.errors import SimGapInputError
from simgap_ext.replicator import adapters as A
from simgap_ext.replicator import rtx_ids, rtx_settings, semantics

PATHS = {
    "/World/ped_0": "pedestrian",
    "/World/car_1": "vehicle",
    "/World/wall": None,  # a prim without semantics
}


def _stable_id_map_bytes(entries: dict[int, str]) -> bytes:
    """``StableIdMap`` buffer: per entry six little-endian uint32 (stable id as 4 words, label length, label
    offset from the buffer start), then the UTF-8 labels, then the entry count as the last 4 bytes.

    Format: ``LidarRtx.decode_stable_id_mapping`` (``source/extensions/isaacsim.sensors.rtx/python/impl/
    lidar_rtx.py`` at ``v5.1.0``) and ``parse_stable_id_map_data`` (``source/extensions/
    isaacsim.sensors.experimental.rtx/python/impl/utils.py`` at ``v6.0.1``): both read ``num_entries`` from the last
    4 bytes, the ``(stable_id <u4 x4, label_length <u4, label_offset <u4)`` records from the start, and decode
    ``buf[offset:offset + length]`` as UTF-8 with trailing whitespace stripped.
    """
    table = bytearray()
    labels = bytearray()
    base = 24 * len(entries)
    for sid, path in entries.items():
        raw = path.encode("utf-8") + b"\x00"  # NUL-terminated, as C strings are laid out in the buffer
        table += sid.to_bytes(16, "little")
        table += len(raw).to_bytes(4, "little") + (base + len(labels)).to_bytes(4, "little")
        labels += raw
    return bytes(table + labels) + len(entries).to_bytes(4, "little")


def _ids_u32_words(values: list[int]) -> np.ndarray:
    """128-bit stable ids as ``IsaacCreateRTXLidarScanBuffer`` 5.1 hands them over: 16 bytes per point
    (``objectIdBuffers[i].resize(m_maxPoints * 16); // object id is stride 16`` in ``source/extensions/
    isaacsim.sensors.rtx/nodes/OgnIsaacCreateRTXLidarScanBuffer.cpp`` at ``v5.1.0``) read through the ``uint``
    ``objectIdDataType`` of the .ogn: a flat (N * 4,) uint32 array.
    """
    return np.frombuffer(b"".join(v.to_bytes(16, "little") for v in values), "<u4").copy()


def _reference_ids(raw: np.ndarray) -> list[int]:
    """Isaac Sim's decoding: one little-endian integer per 16 bytes (``LidarRtx.get_object_ids``, v5.1.0)."""
    buf = np.ascontiguousarray(raw).tobytes()
    return [int.from_bytes(buf[i : i + 16], "little") for i in range(0, len(buf), 16)]


def _scan_buffer_v51(n: int, ids: list[int], seed: int = 0) -> dict:
    """``IsaacCreateRTXLidarScanBuffer`` get_data() with ``outputObjectId=True, outputIntensity=True``.

    Keys from ``_test_object_id``'s setUp in ``source/extensions/isaacsim.sensors.rtx/python/tests/
    test_annotators.py`` at ``v5.1.0``: ``data`` (N, 3) float32 plus each enabled output both at the top level and
    in ``info`` with ``numChannels``, ``numEchos``, ``numReturnsPerScan``, ``renderProductPath``, ``ticksPerScan``,
    ``transform``. Outputs not enabled are empty arrays.
    """
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-20, 20, (n, 3)).astype(np.float32)
    obj = _ids_u32_words(ids)
    inten = rng.uniform(0, 1, n).astype(np.float32)
    per_point = {"objectId": obj, "intensity": inten, "distance": np.linalg.norm(pts, axis=1).astype(np.float32)}
    empty = {k: np.zeros(0, np.float32) for k in ("azimuth", "elevation", "velocity", "normal", "timestamp")}
    info = {
        "numChannels": 128,
        "numEchos": 1,
        "numReturnsPerScan": n,
        "renderProductPath": "/Render/RenderProduct_Lidar",
        "ticksPerScan": 1024,
        "transform": np.eye(4).reshape(-1),
        **per_point,
        **empty,
    }
    return {"data": pts, **per_point, **empty, "info": info}


class _Gmo:
    """The parsed GenericModelOutput as ``parse_generic_model_output_data`` returns it (attributes, numpy arrays):
    member names from ``source/extensions/isaacsim.sensors.experimental.rtx/config/python_api.md`` at ``v6.0.1``
    (``numElements``, ``elementsCoordsType``, ``x``, ``y``, ``z``, ``scalar``, ``objId``, ``scanComplete``,
    ``timestampNs``); ``objId`` holds 16 bytes per element (``parse_object_ids`` in ``.../impl/utils.py``, v6.0.1).
    """

    def __init__(self, pts: np.ndarray, ids: list[int] | None, *, complete: int = 1, stamp: int = 100_000_000):
        self.magicNumber = 0x4E474D4F
        self.numElements = pts.shape[0]
        self.elementsCoordsType = 0  # CARTESIAN
        self.x, self.y, self.z = (pts[:, i].astype(np.float32) for i in range(3))
        self.scalar = np.linspace(0, 1, pts.shape[0], dtype=np.float32)
        empty = np.zeros(0, np.uint8)
        self.objId = empty if ids is None else np.frombuffer(b"".join(v.to_bytes(16, "little") for v in ids), np.uint8)
        self.scanComplete = complete
        self.timestampNs = stamp


def _names(frame: dict) -> list[str]:
    by_id = {int(k): v["class"] for k, v in frame["info"]["idToLabels"].items()}
    return [by_id[int(s)] for s in frame["info"]["pointSemantic"]]


def _ids_for(n: int, seed: int = 1) -> tuple[list[int], dict[int, str]]:
    ped, car, wall = 0x1234_0000_0000_0000_0000_0007, (1 << 90) + 3, 42
    rng = np.random.default_rng(seed)
    ids = [int(v) for v in rng.choice([0, ped, car, wall], size=n)]
    return ids, {ped: "/World/ped_0", car: "/World/car_1", wall: "/World/wall"}


def test_stable_id_map_bytes_parse_like_isaac_sim():
    entries = {7: "/World/ped_0", (1 << 127) + 9: "/World/car_1", 0: "/World/ünïcode"}
    buf = _stable_id_map_bytes(entries)
    assert rtx_ids.parse_stable_id_map(np.frombuffer(buf, np.uint8)) == entries
    assert rtx_ids.parse_stable_id_map(buf) == entries
    assert rtx_ids.parse_stable_id_map({"data": np.frombuffer(buf, np.uint8)}) == entries
    assert rtx_ids.parse_stable_id_map(np.zeros(0, np.uint8)) == {}


def test_truncated_or_corrupt_stable_id_maps_raise_naming_the_problem():
    buf = _stable_id_map_bytes({7: "/World/ped_0", 8: "/World/car_1"})
    with pytest.raises(SimGapInputError, match="2 entries need 52 bytes"):
        rtx_ids.parse_stable_id_map(buf[:24] + buf[-4:])
    bad = bytearray(buf)
    bad[20:24] = (10_000).to_bytes(4, "little")  # first label offset far outside
    with pytest.raises(SimGapInputError, match="lies outside"):
        rtx_ids.parse_stable_id_map(bytes(bad))
    with pytest.raises(SimGapInputError, match="shorter than its 4-byte entry count"):
        rtx_ids.parse_stable_id_map(b"\x01\x00")


@pytest.mark.parametrize("layout", ["u32_flat", "u32_rows", "u8_flat", "u8_rows", "u64_rows"])
def test_128_bit_ids_decode_like_get_object_ids_in_every_layout(layout):
    ids, _ = _ids_for(500)
    words = _ids_u32_words(ids)
    raw = {
        "u32_flat": words,
        "u32_rows": words.reshape(-1, 4),
        "u8_flat": words.view(np.uint8),
        "u8_rows": words.view(np.uint8).reshape(-1, 16),
        "u64_rows": words.view("<u8").reshape(-1, 2),
    }[layout]
    dense, uniq, wide = rtx_ids.decode_object_ids(raw, 500, "test")
    assert wide
    ref = _reference_ids(raw)
    assert [uniq[d - 1] if d else 0 for d in dense.tolist()] == ref
    assert uniq == sorted(set(ref) - {0})


def test_object_id_buffers_of_the_wrong_size_raise():
    with pytest.raises(SimGapInputError, match="fit neither one id nor 16 bytes per point"):
        rtx_ids.decode_object_ids(np.zeros(10, np.uint32), 4, "annotator 'x'")


def test_scan_buffer_v51_names_points_through_stable_id_map_and_prim_labels():
    n = 400
    ids, sid_paths = _ids_for(n)
    payload = _scan_buffer_v51(n, ids)
    stable = rtx_ids.parse_stable_id_map(np.frombuffer(_stable_id_map_bytes(sid_paths), np.uint8))
    f = A.from_rtx_scan_buffer_v50(payload, stable_id_map=stable, prim_labels=PATHS.get)
    expected = [PATHS.get(sid_paths.get(v, ""), None) or "unlabeled" for v in ids]
    assert _names(f) == expected
    assert f["scan_complete"] is True and f["coordinate_frame"] == "sensor"
    np.testing.assert_allclose(f["intensity"], payload["intensity"])
    assert A.frame_issues(f) == []
    # the wall has a prim path but no semantics: reported, not guessed
    assert any("have no class label" in i for i in f["adapter_issues"])


def test_scan_buffer_v50_uint32_ids_keep_their_ids_as_instances():
    """5.0: ``DeviceBufferBase<uint32_t> objectIdBuffers`` (OgnIsaacCreateRTXLidarScanBuffer.cpp at v5.0.0)."""
    pts = np.random.default_rng(3).uniform(-5, 5, (6, 3)).astype(np.float32)
    oid = np.array([0, 11, 11, 12, 13, 0], np.uint32)
    payload = {"data": pts, "objectId": oid, "info": {"objectId": oid, "numReturnsPerScan": 6}}
    f = A.from_rtx_scan_buffer_v50(payload, object_labels={11: "vehicle", 12: "pedestrian"})
    assert _names(f) == ["unlabeled", "vehicle", "vehicle", "pedestrian", "unlabeled", "unlabeled"]
    np.testing.assert_array_equal(f["info"]["pointInstance"], oid)


def test_scan_buffer_without_output_object_id_is_rejected_with_the_fix():
    payload = _scan_buffer_v51(20, [0] * 20)
    payload["objectId"] = payload["info"]["objectId"] = np.zeros(0, np.uint32)  # outputObjectId not requested
    f = A.from_rtx_scan_buffer_v50(payload)
    (issue,) = [i for i in A.frame_issues(f) if "object ids" in i]
    assert "outputObjectId=True" in issue and "EXTRA or FULL" in issue


def test_per_frame_annotators_are_partial_scans_never_scored():
    n = 50
    ids, sid_paths = _ids_for(n)
    v51 = A.from_rtx_point_cloud_v50(
        _scan_buffer_v51(n, ids), stable_id_map=sid_paths, prim_labels=PATHS.get
    )  # 5.1 NoAccumulator = the scan buffer node with enablePerFrameOutput (isaacsim.sensors.rtx CHANGELOG, v5.1.0)
    # 6.x IsaacExtractRTXSensorPointCloud: objectId typed uint[4] per point (OgnIsaacExtractRTXSensorPointCloud.ogn
    # of isaacsim.sensors.rtx.nodes at v6.0.1)
    pts = np.random.default_rng(0).uniform(-5, 5, (n, 3)).astype(np.float32)
    v60 = A.from_rtx_point_cloud_v60(
        {"data": pts, "objectId": _ids_u32_words(ids).reshape(n, 4)}, stable_id_map=sid_paths, prim_labels=PATHS.get
    )
    for f in (v51, v60):
        assert f["scan_complete"] is False
        assert any(i.startswith("partial scan") and "IsaacCreateRTXLidarScanBuffer" in i for i in A.frame_issues(f))
        assert _names(f) == [PATHS.get(sid_paths.get(v, ""), None) or "unlabeled" for v in ids]


def test_gmo_v6_with_raw_stable_id_map_bytes_and_sub_mesh_ids():
    n = 300
    ids, sid_paths = _ids_for(n, seed=5)
    # the renderer puts a sub-mesh index in a stable id's upper 32 bits; the map holds only the base id
    # (parse_stable_id_map_data docstring, isaacsim.sensors.experimental.rtx/python/impl/utils.py at v6.0.1)
    car = next(s for s, p in sid_paths.items() if p == "/World/car_1")
    sub = car | (2 << 96)
    ids = [sub if v == car and i % 2 else v for i, v in enumerate(ids)]
    pts = np.random.default_rng(6).uniform(-30, 30, (n, 3)).astype(np.float32)
    stable = rtx_ids.parse_stable_id_map(np.frombuffer(_stable_id_map_bytes(sid_paths), np.uint8))
    f = A.from_generic_model_output_v60(_Gmo(pts, ids), stable_id_map=stable, prim_labels=PATHS.get)
    base = [v & ((1 << 96) - 1) if v >> 96 else v for v in ids]
    assert _names(f) == [PATHS.get(sid_paths.get(v, ""), None) or "unlabeled" for v in base]
    np.testing.assert_allclose(f["data"], pts)
    assert f["scan_complete"] is True and f["scan_timestamp_ns"] == 100_000_000
    assert A.frame_issues(f) == []


def test_gmo_scan_complete_false_is_a_partial_scan():
    pts = np.ones((4, 3), np.float32)
    f = A.from_generic_model_output_v60(_Gmo(pts, [7, 7, 0, 0], complete=0), stable_id_map={7: "/World/ped_0"},
                                        prim_labels=PATHS.get)  # fmt: skip
    assert f["scan_complete"] is False
    assert any("scanComplete is 0" in i for i in A.frame_issues(f))


def test_gmo_without_obj_id_names_the_aux_level_fix():
    f = A.from_generic_model_output_v60(_Gmo(np.ones((3, 3), np.float32), None))
    assert any("EXTRA or FULL" in i for i in A.frame_issues(f))


@pytest.mark.parametrize(
    ("annotator", "version", "params"),
    [
        (A.POINTCLOUD, None, {"includeUnlabelled": True}),
        (A.RTX_SCAN_BUFFER_V45, "4.5.0", {"outputObjectId": True, "outputIntensity": True}),
        (A.RTX_SCAN_BUFFER_V50, "5.0.0", {"outputObjectId": True, "outputIntensity": True}),
        (A.RTX_POINT_CLOUD_V50, "5.1.0", {"outputObjectId": True, "outputIntensity": True}),
        (A.RTX_POINT_CLOUD_V50, "5.0.0", None),  # IsaacExtractRTXSensorPointCloud node: no such inputs in 5.0
        (A.GENERIC_MODEL_OUTPUT_V60, "6.0.1", None),
        (A.RTX_POINT_CLOUD_V60, "6.0.1", None),
    ],
)
def test_annotator_init_params_follow_the_ogn_inputs(annotator, version, params):
    assert A.annotator_init_params(annotator, version) == params


def test_settings_check_names_each_fix():
    off = {rtx_settings.STABLE_IDS_SETTING: False}.get
    on = {rtx_settings.STABLE_IDS_SETTING: True}.get
    problems = rtx_settings.check_rtx_id_settings(
        A.GENERIC_MODEL_OUTPUT_V60, isaac_version="6.0.1", get_setting=off, aux_levels={"/Render/RP": "BASIC"}
    )
    assert len(problems) == 2
    assert "--/rtx-transient/stableIds/enabled=true" in problems[1]
    assert "'BASIC'" in problems[0] and "EXTRA" in problems[0]
    assert (
        rtx_settings.check_rtx_id_settings(
            A.GENERIC_MODEL_OUTPUT_V60, isaac_version="6.0.1", get_setting=on, aux_levels={"/Render/RP": "FULL"}
        )
        == []
    )
    # 5.0 ids are 32-bit: no StableIdMap, no setting needed; 5.1 ids are stable ids: the setting is needed
    assert rtx_settings.check_rtx_id_settings(A.RTX_SCAN_BUFFER_V50, isaac_version="5.0.0", get_setting=off,
                                              aux_levels={}) == []  # fmt: skip
    assert rtx_settings.check_rtx_id_settings(A.RTX_SCAN_BUFFER_V50, isaac_version="5.1.0", get_setting=off,
                                              aux_levels={})  # fmt: skip
    assert rtx_settings.check_rtx_id_settings(A.POINTCLOUD, isaac_version=None, get_setting=off, aux_levels={}) == []


class _Attr:
    def __init__(self, value):
        self._v = value

    def __bool__(self):
        return self._v is not None

    def Get(self):  # noqa: N802 - Usd.Attribute API
        return self._v


class _Prim:
    """Minimal stand-in for ``pxr.Usd.Prim`` (pxr is not installable here; the Kit tests use the real one)."""

    def __init__(self, path, parent=None, schemas=(), attrs=None):
        self.path, self.parent, self.schemas, self.attrs = path, parent, list(schemas), dict(attrs or {})

    def IsValid(self):  # noqa: N802
        return True

    def GetPropertyNames(self):  # noqa: N802
        return sorted(self.attrs)

    def GetAttribute(self, name):  # noqa: N802
        return _Attr(self.attrs.get(name))

    def GetParent(self):  # noqa: N802
        return self.parent


def test_prim_labels_read_labels_api_old_semantics_api_and_ancestors():
    world = _Prim("/World")
    car = _Prim("/World/car", world, ["SemanticsLabelsAPI:class"], {"semantics:labels:class": ["vehicle", "car"]})
    wheel = _Prim("/World/car/wheel", car)
    ped = _Prim(
        "/World/ped",
        world,
        ["SemanticsAPI:Semantics"],
        {"semantic:Semantics:params:semanticType": "class", "semantic:Semantics:params:semanticData": "pedestrian"},
    )
    prims = {p.path: p for p in (world, car, wheel, ped)}

    class Stage:
        def GetPrimAtPath(self, path):  # noqa: N802
            return prims.get(path)

    stage = Stage()
    resolve = semantics.stage_prim_labels(lambda: stage)
    assert [resolve(p) for p in ("/World/car", "/World/car/wheel", "/World/ped", "/World", "/nope")] == [
        "vehicle",
        "vehicle",
        "pedestrian",
        None,
        None,
    ]


def test_prim_labels_and_aux_level_on_a_real_usd_stage():
    """The same reads on real ``pxr`` (usd-core) when it is installed; the Kit tests run it inside Isaac Sim."""
    pytest.importorskip("pxr")
    from pxr import Sdf, Usd

    stage = Usd.Stage.CreateInMemory()
    car = stage.DefinePrim("/World/car", "Xform")
    stage.DefinePrim("/World/car/wheel", "Mesh")
    car.AddAppliedSchema("SemanticsLabelsAPI:class")
    car.CreateAttribute("semantics:labels:class", Sdf.ValueTypeNames.TokenArray).Set(["vehicle"])
    ped = stage.DefinePrim("/World/ped", "Xform")
    ped.AddAppliedSchema("SemanticsAPI:Semantics")
    ped.CreateAttribute("semantic:Semantics:params:semanticType", Sdf.ValueTypeNames.Token).Set("class")
    ped.CreateAttribute("semantic:Semantics:params:semanticData", Sdf.ValueTypeNames.Token).Set("pedestrian")
    resolve = semantics.stage_prim_labels(lambda: stage)
    assert [resolve(p) for p in ("/World/car/wheel", "/World/ped", "/World", "/missing")] == [
        "vehicle",
        "pedestrian",
        None,
        None,
    ]
    lidar = stage.DefinePrim("/World/lidar", "OmniLidar")
    lidar.CreateAttribute(rtx_settings.AUX_OUTPUT_ATTR, Sdf.ValueTypeNames.Token).Set("basic")
    rp = stage.DefinePrim("/Render/RP_lidar", "RenderProduct")
    rp.CreateRelationship("camera").SetTargets([Sdf.Path("/World/lidar")])
    assert rtx_settings.aux_output_level(stage, "/Render/RP_lidar") == "BASIC"
    assert rtx_settings.aux_output_level(stage, "/Render/none") is None


def test_isaac_version_is_not_probed_outside_kit(monkeypatch):
    """Outside a running Kit, importing the pip ``isaacsim`` package would bootstrap a Kit kernel and prompt for
    its EULA on stdin: detection must not touch it. Inside Kit it reads ``isaacsim.core.version.get_version()``."""
    import sys
    import types

    calls = []
    version = types.ModuleType("isaacsim.core.version")
    version.get_version = lambda: calls.append(1) or ("5.1.0", "", "5", "1", "0", "", "", "")
    monkeypatch.setitem(sys.modules, "isaacsim.core.version", version)
    monkeypatch.delitem(sys.modules, "carb", raising=False)
    assert rtx_settings.detect_isaac_version() is None and calls == []
    monkeypatch.setitem(sys.modules, "carb", types.ModuleType("carb"))  # inside Kit
    assert rtx_settings.detect_isaac_version() == "5.1.0" and calls == [1]
