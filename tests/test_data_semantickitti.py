"""SemanticKITTI .bin/.label reading/writing, label packing, label maps and iter_scans over sequence dirs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simgap_ext.data import (
    PointCloud,
    count_scans,
    iter_scans,
    load_point_cloud,
    pack_labels,
    read_label_map,
    unpack_labels,
    write_label_map,
    write_semantickitti_scan,
)
from simgap_ext.errors import SimGapInputError
from simgap_ext.frame import make_frame


def _frame(n: int = 50, seed: int = 0, *, intensity: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, 3)).astype(np.float32) * 10
    sem = rng.choice([0, 10, 30], size=n).astype(np.uint32)
    ins = np.where(sem == 0, 0, rng.integers(1, 5, size=n)).astype(np.uint32)
    inten = rng.random(n).astype(np.float32) if intensity else None
    return make_frame(pts, sem, ins, {0: "unlabeled", 10: "car", 30: "person"}, intensity=inten)


def test_label_packing_hand_checked() -> None:
    packed = pack_labels(np.array([10, 0, 65535]), np.array([3, 0, 65535]))
    assert packed.dtype == np.uint32
    assert packed.tolist() == [196618, 0, 0xFFFFFFFF]  # 10 | 3 << 16 = 10 + 196608
    sem, ins = unpack_labels(packed)
    assert sem.tolist() == [10, 0, 65535] and ins.tolist() == [3, 0, 65535]


def test_label_packing_rejects_ids_beyond_16_bits() -> None:
    with pytest.raises(SimGapInputError, match="semantic ids must lie in"):
        pack_labels(np.array([70000]), np.array([0]))
    with pytest.raises(SimGapInputError, match="instance ids must lie in"):
        pack_labels(np.array([1]), np.array([65536]))


def test_write_then_read_exact_bytes_and_values(tmp_path: Path) -> None:
    f = _frame(37)
    bin_path, label_path = write_semantickitti_scan(tmp_path, 3, f)
    assert bin_path == tmp_path / "velodyne" / "000003.bin"
    assert label_path == tmp_path / "labels" / "000003.label"
    # Independent reference: the raw bytes, decoded by hand.
    raw = np.fromfile(bin_path, dtype="<f4").reshape(-1, 4)
    np.testing.assert_array_equal(raw[:, :3], f["data"])
    np.testing.assert_array_equal(raw[:, 3], f["intensity"])
    lab = np.fromfile(label_path, dtype="<u4")
    expected = f["info"]["pointSemantic"].astype(np.int64) + f["info"]["pointInstance"].astype(np.int64) * 65536
    np.testing.assert_array_equal(lab, expected)
    # without a label_map.yaml the ids are read as SemanticKITTI raw ids (10 car -> taxonomy car 11, 30 person ->
    # pedestrian 30); with the names the export writes beside it they are kept as they are
    cloud = load_point_cloud(bin_path)
    np.testing.assert_array_equal(cloud.points, f["data"])
    np.testing.assert_array_equal(cloud.intensity, f["intensity"])
    sem = f["info"]["pointSemantic"]
    np.testing.assert_array_equal(cloud.semantic, np.where(sem == 10, 11, sem))
    np.testing.assert_array_equal(cloud.instance, f["info"]["pointInstance"])
    write_label_map(tmp_path / "label_map.yaml", {0: "unlabeled", 10: "car", 30: "person"})
    cloud = load_point_cloud(bin_path)
    np.testing.assert_array_equal(cloud.semantic, sem)


def test_frame_without_intensity_writes_zeros(tmp_path: Path) -> None:
    bin_path, _ = write_semantickitti_scan(tmp_path, 0, _frame(5, intensity=False))
    assert np.fromfile(bin_path, dtype="<f4").reshape(-1, 4)[:, 3].tolist() == [0.0] * 5


def test_default_names_are_the_semantickitti_map_onto_the_taxonomy(tmp_path: Path) -> None:
    pts = np.zeros((6, 4), dtype="<f4")
    pts[:, 0] = np.arange(1, 7)
    (tmp_path / "velodyne").mkdir()
    (tmp_path / "labels").mkdir()
    pts.tofile(tmp_path / "velodyne" / "000000.bin")
    # car, moving-car (-> car), person (-> pedestrian), road, lane-marking, outlier (-> unlabeled)
    np.array([10, 252, 30, 40, 60, 1], dtype="<u4").tofile(tmp_path / "labels" / "000000.label")
    (name, frame), *_ = list(iter_scans(tmp_path))
    assert name == "000000"
    names = {k: v["class"] for k, v in frame["info"]["idToLabels"].items()}
    per_point = [names[int(s)] for s in frame["info"]["pointSemantic"]]
    assert per_point == ["car", "car", "pedestrian", "road", "lane_marking", "unlabeled"]
    # an id SemanticKITTI does not define is refused, not named class_123
    np.array([10, 252, 30, 40, 60, 123], dtype="<u4").tofile(tmp_path / "labels" / "000000.label")
    with pytest.raises(SimGapInputError, match=r"ids 123 \(1 points\) are not classes of label map 'semantickitti'"):
        list(iter_scans(tmp_path))


def test_label_map_yaml_overrides_defaults_and_round_trips(tmp_path: Path) -> None:
    path = write_label_map(tmp_path / "label_map.yaml", {0: "unlabeled", 10: {"class": "vehicle"}, 7: "pedestrian"})
    assert read_label_map(path) == {0: "unlabeled", 7: "pedestrian", 10: "vehicle"}
    f = make_frame(np.ones((2, 3)), np.array([10, 7]), np.array([1, 2]), {10: "vehicle", 7: "pedestrian"})
    write_semantickitti_scan(tmp_path, 0, f)
    (_, frame), *_ = list(iter_scans(tmp_path, sensor="vlp-16"))
    assert frame["sensor"] == "vlp-16"
    assert frame["info"]["idToLabels"] == {10: {"class": "vehicle"}, 7: {"class": "pedestrian"}}


def test_label_map_semantic_kitti_yaml_layout_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "sk.yaml"
    p.write_text('labels:\n  0 : "unlabeled"\n  10: "car"\ncolor_map:\n  0: [0, 0, 0]\n')
    assert read_label_map(p) == {0: "unlabeled", 10: "car"}
    p.write_text("labels:\n  car: 10\n")
    with pytest.raises(SimGapInputError, match=r"sk\.yaml: label id 'car' is not an integer"):
        read_label_map(p)
    p.write_text("labels: [1, 2\n")
    with pytest.raises(SimGapInputError, match=r"sk\.yaml: invalid YAML"):
        read_label_map(p)
    with pytest.raises(SimGapInputError, match="label map not found"):
        read_label_map(tmp_path / "nope.yaml")


def test_iter_scans_order_names_and_frame_ids(tmp_path: Path) -> None:
    for idx in (12, 2, 100, 0):
        write_semantickitti_scan(tmp_path, idx, _frame(8, seed=idx))
    got = list(iter_scans(tmp_path))
    assert [n for n, _ in got] == ["000000", "000002", "000012", "000100"]
    assert [f["frame_id"] for _, f in got] == [0, 2, 12, 100]
    assert count_scans(tmp_path) == 4
    np.testing.assert_array_equal(got[2][1]["data"], _frame(8, seed=12)["data"])
    # The velodyne/ directory itself and a single file work too, with the labels found in ../labels.
    assert [n for n, _ in iter_scans(tmp_path / "velodyne")] == ["000000", "000002", "000012", "000100"]
    (name, f12), *_ = list(iter_scans(tmp_path / "velodyne" / "000012.bin"))
    assert name == "000012"
    np.testing.assert_array_equal(f12["info"]["pointInstance"], _frame(8, seed=12)["info"]["pointInstance"])


def test_sequence_without_labels_is_unlabeled(tmp_path: Path) -> None:
    (tmp_path / "velodyne").mkdir()
    np.arange(12, dtype="<f4").tofile(tmp_path / "velodyne" / "000001.bin")
    (_, frame), *_ = list(iter_scans(tmp_path))
    assert frame["info"]["pointSemantic"].tolist() == [0, 0, 0]
    assert frame["info"]["pointInstance"].tolist() == [0, 0, 0]
    assert frame["info"]["idToLabels"] == {0: {"class": "unlabeled"}}
    np.testing.assert_array_equal(frame["intensity"], [3.0, 7.0, 11.0])


def test_bin_size_not_multiple_of_16(tmp_path: Path) -> None:
    p = tmp_path / "000000.bin"
    p.write_bytes(b"\0" * 20)
    with pytest.raises(SimGapInputError, match=r"000000\.bin: size 20 bytes is not a multiple of 16"):
        load_point_cloud(p)


def test_label_count_mismatch_names_file(tmp_path: Path) -> None:
    (tmp_path / "velodyne").mkdir()
    (tmp_path / "labels").mkdir()
    np.zeros((1300, 4), dtype="<f4").tofile(tmp_path / "velodyne" / "000003.bin")
    np.zeros(1200, dtype="<u4").tofile(tmp_path / "labels" / "000003.label")
    with pytest.raises(SimGapInputError, match=r"labels/000003\.label has 1200 labels for 1300 points"):
        list(iter_scans(tmp_path))


def test_missing_label_file_when_others_exist(tmp_path: Path) -> None:
    write_semantickitti_scan(tmp_path, 0, _frame(4))
    write_semantickitti_scan(tmp_path, 1, _frame(4))
    (tmp_path / "labels" / "000001.label").unlink()
    with pytest.raises(SimGapInputError, match=r"000001\.label: missing label file for 000001\.bin"):
        list(iter_scans(tmp_path))


def test_missing_label_file_via_velodyne_dir_or_single_scan(tmp_path: Path) -> None:
    # the same rule when the velodyne/ directory or one scan is given (it used to read as all-unlabeled)
    write_semantickitti_scan(tmp_path, 0, _frame(4))
    write_semantickitti_scan(tmp_path, 1, _frame(4))
    (tmp_path / "labels" / "000001.label").unlink()
    for path in (tmp_path / "velodyne", tmp_path / "velodyne" / "000001.bin"):
        with pytest.raises(SimGapInputError, match=r"000001\.label: missing label file for 000001\.bin"):
            list(iter_scans(path))
    (_, f0), *_ = list(iter_scans(tmp_path / "velodyne" / "000000.bin"))
    sem = _frame(4)["info"]["pointSemantic"]
    assert f0["info"]["pointSemantic"].tolist() == np.where(sem == 10, 11, sem).tolist()  # SemanticKITTI car -> 11


def test_iter_scans_only_reads_the_named_scans(tmp_path: Path) -> None:
    for idx in (0, 1, 2):
        write_semantickitti_scan(tmp_path, idx, _frame(6, seed=idx))
    (tmp_path / "velodyne" / "000001.bin").write_bytes(b"\0" * 20)  # corrupt, but not asked for
    got = list(iter_scans(tmp_path, only={"000002", "000000"}))
    assert [n for n, _ in got] == ["000000", "000002"] and [f["frame_id"] for _, f in got] == [0, 2]
    np.testing.assert_array_equal(got[1][1]["data"], _frame(6, seed=2)["data"])
    with pytest.raises(SimGapInputError, match=r"000001\.bin: size 20 bytes"):
        list(iter_scans(tmp_path))


def test_nan_points_are_counted(tmp_path: Path) -> None:
    rows = np.ones((10, 4), dtype="<f4")
    rows[[1, 4, 5], 2] = np.nan
    p = tmp_path / "000000.bin"
    rows.tofile(p)
    with pytest.raises(SimGapInputError, match=r"000000\.bin: 3 of 10 points are NaN/inf"):
        load_point_cloud(p)
    assert len(load_point_cloud(p, drop_nonfinite=True)) == 7


def test_missing_and_empty_paths(tmp_path: Path) -> None:
    with pytest.raises(SimGapInputError, match="no such file or directory"):
        list(iter_scans(tmp_path / "missing"))
    with pytest.raises(SimGapInputError, match=f"no point clouds found in {tmp_path}"):
        count_scans(tmp_path)
    (tmp_path / "velodyne").mkdir()
    with pytest.raises(SimGapInputError, match="no point clouds found in .*velodyne"):
        list(iter_scans(tmp_path))
    with pytest.raises(SimGapInputError, match="no such file"):
        load_point_cloud(tmp_path / "x.bin")


def test_pointcloud_frame_round_trip() -> None:
    f = _frame(9)
    cloud = PointCloud.from_frame(f)
    g = cloud.to_frame(frame_id=4)
    np.testing.assert_array_equal(g["data"], f["data"])
    np.testing.assert_array_equal(g["info"]["pointSemantic"], f["info"]["pointSemantic"])
    assert g["info"]["idToLabels"] == f["info"]["idToLabels"] and g["frame_id"] == 4


def test_sibling_label_file_and_ragged_label_file(tmp_path: Path) -> None:
    rows = np.arange(8, dtype="<f4").reshape(2, 4)
    rows.tofile(tmp_path / "a.bin")
    np.array([10 | 7 << 16, 40], dtype="<u4").tofile(tmp_path / "a.label")
    c = load_point_cloud(tmp_path / "a.bin")
    # SemanticKITTI raw ids 10 car / 40 road -> taxonomy ids 11 / 41
    assert c.semantic.tolist() == [11, 41] and c.instance.tolist() == [7, 0]
    assert c.id_to_labels == {11: "car", 41: "road"}
    (tmp_path / "a.label").write_bytes(b"\0" * 7)
    with pytest.raises(SimGapInputError, match=r"a\.label: size 7 bytes is not a multiple of 4"):
        load_point_cloud(tmp_path / "a.bin")


def test_public_names_import() -> None:
    import simgap_ext.data as data

    for name in data.__all__:
        assert callable(getattr(data, name)) or isinstance(getattr(data, name), (dict, tuple, str)), name


def test_write_refuses_ids_beyond_16_bits_naming_the_file(tmp_path: Path) -> None:
    f = make_frame(np.ones((1, 3)), [70_000], [0], {70_000: "big"})
    with pytest.raises(SimGapInputError, match=r"000005\.label: semantic ids must lie in \[0, 65535\]"):
        write_semantickitti_scan(tmp_path, 5, f)
    assert not (tmp_path / "velodyne").exists()
