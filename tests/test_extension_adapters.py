"""Annotator adapters: each Isaac Sim annotator payload -> the DESIGN.md frame, checked by hand-built payloads."""

from __future__ import annotations

import numpy as np
import pytest

from simgap_ext.errors import SimGapInputError
from simgap_ext.frame import class_names, class_points
from simgap_ext.replicator import adapters as A


def _cloud(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-10, 10, size=(n, 3)).astype(np.float32)


def test_pointcloud_nested_layout_with_label_map():
    pts = _cloud(6)
    payload = {
        "data": pts,
        "info": {
            "pointSemantic": np.array([0, 0, 3, 3, 5, 5], dtype=np.int32),
            "pointInstance": np.array([0, 0, 7, 7, 9, 9], dtype=np.int32),
            "pointNormals": np.zeros(24, np.float32),
            "pointRgb": np.zeros(24, np.uint8),
            "idToLabels": {"0": {"class": "BACKGROUND"}, "3": {"class": "pedestrian"}, "5": {"class": "vehicle"}},
        },
    }
    f = A.from_pointcloud(payload, metadata={"frame_id": 4, "sensor": "vlp-16", "seed": 11})
    assert f["data"].dtype == np.float32 and f["data"].shape == (6, 3)
    np.testing.assert_array_equal(f["data"], pts)
    assert f["info"]["pointSemantic"].dtype == np.uint32
    assert class_names(f) == ["pedestrian", "unlabeled", "vehicle"]
    np.testing.assert_array_equal(class_points(f, "pedestrian"), pts[2:4])
    np.testing.assert_array_equal(f["info"]["pointInstance"], [0, 0, 7, 7, 9, 9])
    assert (f["frame_id"], f["sensor"], f["seed"]) == (4, "vlp-16", 11)
    assert f["coordinate_frame"] == "world"  # the camera annotator emits world-space points
    assert f["source_annotator"] == "pointcloud" and f["adapter_issues"] == []


def test_pointcloud_flat_layout_uses_external_labels_and_names_unknown_ids():
    pts = _cloud(4)
    payload = {"data": pts, "pointSemantic": [2, 2, 8, 0], "pointInstance": [1, 1, 2, 0]}
    f = A.from_pointcloud(payload, id_to_labels={2: "cyclist"})
    names = {int(k): v["class"] for k, v in f["info"]["idToLabels"].items()}
    assert names == {0: "unlabeled", 2: "cyclist", 8: "semantic_8"}
    assert any("semantic ids [8] have no label" in i for i in f["adapter_issues"])


def test_pointcloud_drops_non_finite_points_with_their_labels():
    pts = _cloud(4)
    pts[1] = np.nan
    f = A.from_pointcloud({"data": pts, "info": {"pointSemantic": [1, 2, 1, 1], "pointInstance": [1, 2, 1, 1]}})
    assert f["data"].shape == (3, 3)
    np.testing.assert_array_equal(f["info"]["pointSemantic"], [1, 1, 1])
    assert "dropped 1 non-finite point(s)" in f["adapter_issues"]


def test_pointcloud_shape_errors_name_the_key():
    with pytest.raises(SimGapInputError, match=r"'data' must be \(N, 3\)"):
        A.from_pointcloud({"data": np.zeros((4, 2)), "info": {}})
    with pytest.raises(SimGapInputError, match=r"'pointSemantic' has 3 entries for 4 points"):
        A.from_pointcloud({"data": np.zeros((4, 3)), "info": {"pointSemantic": [0, 0, 0]}})


def test_rtx_v45_flat_payload_maps_object_ids_to_classes_and_instances():
    pts = _cloud(5)
    payload = {
        "data": pts,
        "objectId": np.array([0, 101, 101, 202, 303], dtype=np.uint32),
        "intensity": np.array([0, 255, 128, 51, 0], dtype=np.float32),  # raw counts
        "distance": np.linalg.norm(pts, axis=1),
    }
    labels = {101: "pedestrian", 202: "vehicle", 303: "pedestrian"}
    f = A.from_rtx_scan_buffer_v45(payload, object_labels=labels, metadata={"attempt": 2})
    sem_names = {k: v["class"] for k, v in f["info"]["idToLabels"].items()}
    per_point = [sem_names[int(s)] for s in f["info"]["pointSemantic"]]
    assert per_point == ["unlabeled", "pedestrian", "pedestrian", "vehicle", "pedestrian"]
    np.testing.assert_array_equal(f["info"]["pointInstance"], [0, 101, 101, 202, 303])
    np.testing.assert_allclose(f["intensity"], [0, 1, 128 / 255, 0.2, 0], rtol=1e-6)
    assert f["coordinate_frame"] == "sensor" and f["attempt"] == 2
    assert f["source_annotator"] == A.RTX_SCAN_BUFFER_V45


def test_rtx_v50_info_layout_with_callable_resolver_and_unknown_objects():
    pts = _cloud(4)
    payload = {"data": pts, "info": {"objectId": [5, 5, 6, 0], "intensity": [0.1, 0.2, 0.3, 0.4]}}
    f = A.from_rtx_point_cloud_v50(payload, object_labels=lambda oid: {5: "cargo_pallet"}.get(oid))
    names = {k: v["class"] for k, v in f["info"]["idToLabels"].items()}
    assert [names[int(s)] for s in f["info"]["pointSemantic"]] == ["cargo_pallet"] * 2 + ["unlabeled"] * 2
    assert any("1 object id(s) have no class label" in i for i in f["adapter_issues"])
    np.testing.assert_allclose(f["intensity"], [0.1, 0.2, 0.3, 0.4])  # already normalised: kept


def test_rtx_v50_all_zero_object_ids_is_a_fatal_issue():
    f = A.from_rtx_point_cloud_v50({"data": _cloud(8), "info": {"objectId": np.zeros(8, np.uint32)}})
    issues = A.frame_issues(f)
    assert any("IsaacSim issue 180" in i for i in issues)


def test_gmo_v60_spherical_coordinates_and_stable_ids():
    az = np.array([0.0, 90.0, 180.0, 0.0])
    el = np.array([0.0, 0.0, 0.0, 30.0])
    rng = np.array([10.0, 5.0, 2.0, 4.0])
    # 128-bit stable ids as (N, 16) bytes, little endian: ids 7, 7, 1<<100, 0.
    big = 1 << 100
    ids = np.zeros((4, 16), np.uint8)
    ids[0] = np.frombuffer((7).to_bytes(16, "little"), np.uint8)
    ids[1] = ids[0]
    ids[2] = np.frombuffer(big.to_bytes(16, "little"), np.uint8)
    gmo = {
        "numElements": 4,
        "elementsCoordsType": "spherical",
        "x": az,
        "y": el,
        "z": rng,
        "scalar": [0.5, 0.5, 0.5, 0.5],
        "objId": ids,
    }
    f = A.from_generic_model_output_v60(
        gmo,
        stable_id_map={7: "/World/ped_0", big: "/World/car_3"},
        prim_labels={"/World/ped_0": "pedestrian", "/World/car_3": "vehicle"},
    )
    expected = np.array([[10, 0, 0], [0, 5, 0], [-2, 0, 0], [4 * np.cos(np.pi / 6), 0, 2]], np.float32)
    np.testing.assert_allclose(f["data"], expected, atol=1e-5)
    names = {k: v["class"] for k, v in f["info"]["idToLabels"].items()}
    assert [names[int(s)] for s in f["info"]["pointSemantic"]] == ["pedestrian", "pedestrian", "vehicle", "unlabeled"]
    # Dense instance numbering in sorted stable-id order: 7 -> 1, 1<<100 -> 2.
    np.testing.assert_array_equal(f["info"]["pointInstance"], [1, 1, 2, 0])


def test_gmo_v60_cartesian_attribute_object():
    class Parsed:  # what parse_generic_model_output_data returns: attributes, not keys
        numElements = 2
        elementsCoordsType = 0
        x = np.array([1.0, 2.0])
        y = np.array([3.0, 4.0])
        z = np.array([5.0, 6.0])
        scalar = np.array([0.1, 0.2])

    f = A.from_generic_model_output_v60(Parsed())
    np.testing.assert_allclose(f["data"], [[1, 3, 5], [2, 4, 6]])
    assert any("no per-point object ids" in i for i in f["adapter_issues"])


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("4.5.0", A.RTX_SCAN_BUFFER_V45),
        ("5.0.0", A.RTX_POINT_CLOUD_V50),
        ("5.1", A.RTX_POINT_CLOUD_V50),
        ("6.0.1", A.GENERIC_MODEL_OUTPUT_V60),
        ("6.2.0.0", A.GENERIC_MODEL_OUTPUT_V60),
    ],
)
def test_annotator_for_isaac_version(version, expected):
    assert A.annotator_for_isaac_version(version) == expected
    assert A.annotator_for_isaac_version(version, lidar=False) == A.POINTCLOUD


def test_annotator_for_old_or_bad_versions_raises():
    with pytest.raises(SimGapInputError, match="older than 4.5"):
        A.annotator_for_isaac_version("4.2.0")
    with pytest.raises(SimGapInputError, match="MAJOR.MINOR"):
        A.annotator_for_isaac_version("latest")


def test_adapt_dispatches_and_rejects_unknown_annotators():
    f = A.adapt("pointcloud", {"data": _cloud(2), "info": {"pointSemantic": [0, 0], "pointInstance": [0, 0]}})
    assert f["source_annotator"] == "pointcloud"
    with pytest.raises(SimGapInputError, match="no SimGap adapter for annotator 'rgb'"):
        A.adapt("rgb", {})


def test_iter_annotator_payloads_in_every_data_structure():
    a, b = object(), object()
    legacy_one = {"reference_time": 0, "pointcloud": a}
    legacy_many = {"pointcloud-RP_b": b, "pointcloud-RP_a": a, "rgb-RP_a": None}
    annotator = {"annotators": {"pointcloud": {"RP_b": b, "RP_a": a}}}
    render_product = {"renderProducts": {"RP_b": {"pointcloud": b, "camera": "/c"}, "RP_a": {"pointcloud": a}}}
    assert list(A.iter_annotator_payloads(legacy_one, "pointcloud")) == [("", a)]
    assert list(A.iter_annotator_payloads(legacy_many, "pointcloud")) == [("RP_a", a), ("RP_b", b)]
    assert list(A.iter_annotator_payloads(annotator, "pointcloud")) == [("RP_a", a), ("RP_b", b)]
    assert list(A.iter_annotator_payloads(render_product, "pointcloud")) == [("RP_a", a), ("RP_b", b)]
    assert list(A.iter_annotator_payloads({"rgb": a}, "pointcloud")) == []


def test_frame_issues_flags_empty_and_unlabelled_frames():
    empty = A.from_pointcloud({"data": np.zeros((0, 3)), "info": {"pointSemantic": [], "pointInstance": []}})
    assert A.frame_issues(empty) == ["empty frame: 0 point(s) < 1"]
    unl = A.from_pointcloud({"data": _cloud(3), "info": {"pointSemantic": [0, 0, 0], "pointInstance": [0, 0, 0]}})
    assert A.frame_issues(unl) == ["every point is unlabeled: nothing to score"]
    ok = A.from_pointcloud({"data": _cloud(3), "info": {"pointSemantic": [1, 0, 0], "pointInstance": [1, 0, 0]}})
    assert A.frame_issues(ok) == []


def test_shared_class_ids_keep_semantic_ids_stable_across_frames():
    ids = A.seed_class_ids({10: "vehicle"}, {"pedestrian": 30, "unlabeled": 0, "vehicle": 11, "cyclist": 10})
    # The export's ids win, preferred ids fill in where free (cyclist's 10 is taken), unlabelled stays 0.
    assert ids == {"vehicle": 10, "unlabeled": 0, "pedestrian": 30}
    labels = {1: "cyclist", 2: "vehicle", 3: "pedestrian"}
    f1 = A.from_rtx_point_cloud_v50(
        {"data": _cloud(3), "info": {"objectId": [1, 2, 0]}}, object_labels=labels, class_ids=ids
    )
    f2 = A.from_rtx_point_cloud_v50(
        {"data": _cloud(3), "info": {"objectId": [3, 1, 2]}}, object_labels=labels, class_ids=ids
    )
    n1 = {v["class"]: k for k, v in f1["info"]["idToLabels"].items()}
    n2 = {v["class"]: k for k, v in f2["info"]["idToLabels"].items()}
    assert n1["cyclist"] == n2["cyclist"] == 31  # first free id after the largest (30)
    assert n1["vehicle"] == n2["vehicle"] == 10 and n2["pedestrian"] == 30
    assert ids["cyclist"] == 31  # the shared table grew in place


def test_without_shared_ids_each_frame_numbers_classes_by_object_id():
    labels = {1: "cyclist", 2: "vehicle"}
    f = A.from_rtx_point_cloud_v50({"data": _cloud(2), "info": {"objectId": [2, 1]}}, object_labels=labels)
    assert {v["class"]: k for k, v in f["info"]["idToLabels"].items()} == {"unlabeled": 0, "cyclist": 1, "vehicle": 2}


def test_rtx_many_objects_map_point_by_point_like_a_plain_lookup():
    # Hundreds of prims in shuffled order, some unlabelled: each point's class is its object's label (a per-point
    # dict lookup is the reference), its instance its object id.
    rng = np.random.default_rng(4)
    n = 5000
    oids = rng.integers(0, 400, n).astype(np.uint32) * 7
    names = ("vehicle", "pedestrian", "building", "vegetation")
    labels = {int(o): names[int(o) % 4] for o in np.unique(oids) if o and o % 5}  # multiples of 35: no label
    f = A.from_rtx_point_cloud_v50({"data": _cloud(n, 1), "info": {"objectId": oids}}, object_labels=labels)
    sem_names = {k: v["class"] for k, v in f["info"]["idToLabels"].items()}
    got = [sem_names[int(s)] for s in f["info"]["pointSemantic"]]
    expected = [labels.get(int(o), "unlabeled") if o else "unlabeled" for o in oids]
    assert got == expected
    np.testing.assert_array_equal(f["info"]["pointInstance"], oids)
    assert any("have no class label" in issue for issue in f["adapter_issues"])


@pytest.mark.parametrize("layout", ["bytes", "u32", "u64", "flat_bytes"])
def test_gmo_v60_dense_ids_match_a_python_int_reference_for_every_id_layout(layout):
    rng = np.random.default_rng(9)
    n = 3000
    pool = [0, 5, 1 << 64, (1 << 64) + 5, 1 << 127, (1 << 100) + 3] + [
        int(v) << 70 for v in rng.integers(1, 1 << 30, 40)
    ]
    values = [pool[i] for i in rng.integers(0, len(pool), n)]
    as_bytes = np.array([np.frombuffer(v.to_bytes(16, "little"), np.uint8) for v in values])
    raw = {
        "bytes": as_bytes,
        "u32": as_bytes.view("<u4"),
        "u64": as_bytes.view("<u8"),
        "flat_bytes": as_bytes.reshape(-1),
    }[layout]
    labels = {v: "vehicle" for v in pool[1::2]}
    gmo = {"numElements": n, "x": rng.normal(size=n), "y": rng.normal(size=n), "z": rng.normal(size=n), "objId": raw}
    paths = {v: f"/World/p{i}" for i, v in enumerate(pool)}
    f = A.from_generic_model_output_v60(gmo, stable_id_map=paths, prim_labels=lambda p: labels.get(
        next(v for v, q in paths.items() if q == p)))  # fmt: skip
    # reference: ascending non-zero stable ids numbered 1..K, 0 stays 0
    order = {v: i + 1 for i, v in enumerate(sorted(set(values) - {0}))}
    np.testing.assert_array_equal(f["info"]["pointInstance"], [order.get(v, 0) for v in values])
    names = {k: v["class"] for k, v in f["info"]["idToLabels"].items()}
    got = [names[int(s)] for s in f["info"]["pointSemantic"]]
    assert got == [labels.get(v, "unlabeled") if v else "unlabeled" for v in values]
