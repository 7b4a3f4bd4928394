"""Dataset layouts read from real scans (tests/data/, copied from ../shared/realdata): nuScenes 5 columns + lidarseg,
KITTI object boxes -> per-point classes, MCD gt_labels with "no return" slots; expected values computed here with
plain NumPy from the raw bytes, independently of the readers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.data import detect_layout, iter_scans, list_scans, load_point_cloud, scan_name
from simgap_ext.data.taxonomy import load_taxonomy
from simgap_ext.errors import SimGapInputError

DATA = Path(__file__).resolve().parent / "data"
NUS = DATA / "nuscenes"
KITTI_OBJ = DATA / "kitti_object"
KITTI_FLAT = DATA / "kitti_object_flat"
MCD = DATA / "mcd"
REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
if not REALDATA.is_dir():
    REALDATA = Path("/work/shared/realdata")


def _class_counts(cloud) -> dict[str, int]:
    ids, n = np.unique(cloud.semantic, return_counts=True)
    return {cloud.id_to_labels[int(i)]: int(c) for i, c in zip(ids, n, strict=True)}


# --- nuScenes ----------------------------------------------------------------------------------------------------


def test_nuscenes_points_bin_reads_five_columns_with_lidarseg_labels():
    f = NUS / "data0" / "points.bin"
    assert detect_layout(f) == "nuscenes" and scan_name(f) == "data0"
    rows = np.fromfile(f, dtype="<f4").reshape(-1, 5)  # x, y, z, intensity, ring
    lab = np.fromfile(NUS / "data0" / "ground.bin", dtype=np.uint8)
    assert rows.shape[0] == lab.size == 34720
    keep = np.any(rows[:, :3] != 0, axis=1)
    cloud = load_point_cloud(f)
    assert len(cloud) == int(keep.sum())
    np.testing.assert_array_equal(cloud.points, rows[keep, :3])
    np.testing.assert_array_equal(cloud.intensity, rows[keep, 3])
    # nuScenes-lidarseg ids -> taxonomy, written out by hand for the classes this scan holds
    by_hand = {0: "unlabeled", 31: "unlabeled", 17: "car", 23: "truck", 2: "pedestrian", 24: "road", 26: "sidewalk",
               27: "terrain", 25: "other_ground", 28: "other_structure", 30: "vegetation", 12: "traffic_cone",
               4: "pedestrian", 11: "movable_object", 18: "construction_vehicle"}  # fmt: skip
    expected: dict[str, int] = {}
    for i, c in zip(*np.unique(lab[keep], return_counts=True), strict=True):
        expected[by_hand[int(i)]] = expected.get(by_hand[int(i)], 0) + int(c)
    assert _class_counts(cloud) == expected
    assert expected["road"] == int((lab[keep] == 24).sum()) > 10000  # the driveable surface dominates


def test_nuscenes_file_read_as_four_columns_is_refused_with_the_reason():
    f = NUS / "data0" / "points.bin"
    assert (f.stat().st_size // 4) % 4 == 0  # 34720 * 5 floats also split into 4-float rows: size alone passes
    with pytest.raises(SimGapInputError, match=r"integer-valued .*ring indices.*--columns x,y,z,intensity,ring"):
        load_point_cloud(f, columns=("x", "y", "z", "intensity"))
    with pytest.raises(SimGapInputError, match="integer-valued"):
        load_point_cloud(f, layout="semantickitti")


def test_pcd_bin_name_means_nuscenes_and_a_kitti_scan_renamed_so_is_refused(tmp_path):
    shutil.copy(NUS / "data1" / "points.bin", tmp_path / "n015-sweep.pcd.bin")
    c = load_point_cloud(tmp_path / "n015-sweep.pcd.bin")  # no lidarseg file beside it: unlabeled
    assert c.semantic is None and len(c) > 30000
    kitti = KITTI_FLAT / "000134.bin"
    n4 = kitti.stat().st_size // 16
    dst = tmp_path / "fake.pcd.bin"
    raw = np.fromfile(kitti, dtype="<f4")
    raw[: (raw.size // 20) * 5].tofile(dst)  # trimmed so that the 5-column size check passes
    with pytest.raises(SimGapInputError, match=r"'ring' column .* not ring indices"):
        load_point_cloud(dst)
    assert n4 == 19097


def test_nuscenes_folder_of_keyframes_iterates_by_folder_name():
    assert [scan_name(p) for p in list_scans(NUS)] == ["data0", "data1"]
    got = list(iter_scans(NUS))
    assert [n for n, _ in got] == ["data0", "data1"]
    assert all("road" in {v["class"] for v in f["info"]["idToLabels"].values()} for _, f in got)


def test_lidarseg_file_of_the_wrong_length_is_refused(tmp_path):
    shutil.copy(NUS / "data0" / "points.bin", tmp_path / "points.bin")
    (tmp_path / "ground.bin").write_bytes(b"\x18" * 100)
    with pytest.raises(SimGapInputError, match=r"ground\.bin: lidarseg label file has 100 bytes, expected 34720"):
        load_point_cloud(tmp_path / "points.bin")


# --- KITTI object ------------------------------------------------------------------------------------------------


def _calib(path: Path) -> tuple[np.ndarray, np.ndarray]:
    vals = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            vals[k] = np.array(v.split(), dtype=float)
    r0 = np.eye(4)
    r0[:3, :3] = vals["R0_rect"].reshape(3, 3)
    tr = np.eye(4)
    tr[:3, :] = vals["Tr_velo_to_cam"].reshape(3, 4)
    return r0, tr


def _reference_owner(scan: Path, label: Path, calib: Path) -> tuple[np.ndarray, list[str]]:
    """First box containing each point, by a different route than the reader: the box's eight corners go to the
    velodyne frame through the inverse calibration, and a point is inside when its projections on the three box
    edges from one corner lie within the edges."""
    pts = np.fromfile(scan, dtype="<f4").reshape(-1, 4)[:, :3].astype(np.float64)
    r0, tr = _calib(calib)
    cam_to_velo = np.linalg.inv(r0 @ tr)
    owner = np.full(len(pts), -1)
    kinds = []
    k = 0
    for line in label.read_text().splitlines():
        t = line.split()
        if not t or t[0] == "DontCare":
            continue
        h, w, l, x, y, z, ry = map(float, t[8:15])  # noqa: E741
        # corners in the object frame (x along length, y down, z along width), rotated about y, shifted
        cx = np.array([l, l, -l, -l, l, l, -l, -l]) / 2
        cy = np.array([0, 0, 0, 0, -h, -h, -h, -h])
        cz = np.array([w, -w, -w, w, w, -w, -w, w]) / 2
        rot = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
        corners = rot @ np.vstack([cx, cy, cz]) + np.array([[x], [y], [z]])
        cv = (cam_to_velo @ np.vstack([corners, np.ones(8)]))[:3].T
        o = cv[0]
        edges = [cv[3] - o, cv[1] - o, cv[4] - o]  # length, width, height edges from corner 0
        inside = np.ones(len(pts), dtype=bool)
        for e in edges:
            proj = (pts - o) @ e
            inside &= (proj >= -1e-9) & (proj <= e @ e + 1e-9)
        owner[(owner < 0) & inside] = k
        kinds.append(t[0])
        k += 1
    return owner, kinds


@pytest.mark.parametrize(
    "scan, label, calib",
    [
        (KITTI_OBJ / "velodyne_reduced/002155.bin", KITTI_OBJ / "label_2/002155.txt", KITTI_OBJ / "calib/002155.txt"),
        (KITTI_FLAT / "000134.bin", KITTI_FLAT / "000134_gt.txt", KITTI_FLAT / "000134.txt"),
    ],
)
def test_kitti_object_boxes_give_per_point_classes_and_instances(scan, label, calib):
    assert detect_layout(scan) == "kitti_object"
    owner, kinds = _reference_owner(scan, label, calib)
    cloud = load_point_cloud(scan)
    assert len(cloud) == scan.stat().st_size // 16
    # per-box point counts: instance k + 1 <-> the k-th non-DontCare box
    got = np.bincount(cloud.instance, minlength=len(kinds) + 1)
    want = np.bincount(owner + 1, minlength=len(kinds) + 1)
    np.testing.assert_array_equal(got, want)
    assert (want[1:] > 0).sum() >= 5  # several boxes actually hold points
    to_class = {"Car": "car", "Van": "car", "Pedestrian": "pedestrian", "Cyclist": "cyclist"}
    names = [cloud.id_to_labels[int(s)] for s in cloud.semantic[cloud.instance > 0]]
    assert names == [to_class[kinds[int(i) - 1]] for i in cloud.instance[cloud.instance > 0]]
    assert (cloud.semantic[cloud.instance == 0] == load_taxonomy().class_id("unlabeled")).all()


def test_kitti_object_hand_checked_counts():
    # 000134: 15 labelled boxes (2 DontCare ignored); the nearest cyclist (box 1, z = 15.18 m) and pedestrian
    # (box 3, z = 19.57 m) are well inside the crop and must hold points.
    cloud = load_point_cloud(KITTI_FLAT / "000134.bin")
    counts = np.bincount(cloud.instance, minlength=16)
    owner, kinds = _reference_owner(KITTI_FLAT / "000134.bin", KITTI_FLAT / "000134_gt.txt", KITTI_FLAT / "000134.txt")
    assert len(kinds) == 15 and kinds[0] == "Car" and kinds[1] == "Cyclist" and kinds[3] == "Pedestrian"
    assert counts[2] == int((owner == 1).sum()) > 20 and counts[4] == int((owner == 3).sum()) > 20
    # the first three boxes (car at 12.7 m, two cyclists) as counted by the reference when this test was written
    assert counts[1:4].tolist() == [523, 160, 80]


def test_kitti_object_without_calib_is_refused(tmp_path):
    for d in ("velodyne", "label_2"):
        (tmp_path / d).mkdir()
    shutil.copy(KITTI_OBJ / "velodyne_reduced/002155.bin", tmp_path / "velodyne" / "002155.bin")
    shutil.copy(KITTI_OBJ / "label_2/002155.txt", tmp_path / "label_2" / "002155.txt")
    with pytest.raises(SimGapInputError, match=r"calib/002155\.txt: missing KITTI calib file"):
        load_point_cloud(tmp_path / "velodyne" / "002155.bin")
    (tmp_path / "calib").mkdir()
    (tmp_path / "calib" / "002155.txt").write_text("P0: 1 2 3\n")
    with pytest.raises(SimGapInputError, match="calib file has no R0_rect"):
        load_point_cloud(tmp_path / "velodyne" / "002155.bin")


# --- MCD / KITTI-360 ---------------------------------------------------------------------------------------------


def test_mcd_organised_scan_drops_no_return_slots_and_maps_classes():
    f = MCD / "lidar_bin/data/0000000011.bin"
    assert detect_layout(f) == "mcd"
    rows = np.fromfile(f, dtype="<f4").reshape(-1, 4)
    lab = np.fromfile(MCD / "gt_labels/0000000011.bin", dtype="<u4") & 0xFFFF
    keep = np.any(rows[:, :3] != 0, axis=1)
    assert rows.shape[0] == 65536 and 0 < (~keep).sum() < 10000
    cloud = load_point_cloud(f)
    assert len(cloud) == int(keep.sum())
    counts = _class_counts(cloud)
    # MCD 2 building, 18 sidewalk + 19 stairs, 14 pedestrian (mcd_config.yaml names)
    assert counts["building"] == int((lab[keep] == 2).sum())
    assert counts["sidewalk"] == int(np.isin(lab[keep], [18, 19]).sum())
    assert counts["pedestrian"] == int((lab[keep] == 14).sum())
    assert sum(counts.values()) == len(cloud)
    ((name, frame),) = list(iter_scans(MCD))
    assert name == "0000000011" and frame["data"].shape[0] == len(cloud)


def test_mcd_labels_read_with_the_wrong_map_are_refused():
    with pytest.raises(SimGapInputError, match="are not classes of label map 'semantickitti'"):
        load_point_cloud(MCD / "lidar_bin/data/0000000011.bin", label_map="semantickitti")


@pytest.mark.skipif(not (REALDATA / "kitti360_osm_bki").is_dir(), reason="../shared/realdata not present")
def test_kitti360_scan_with_gt_labels():
    seq = REALDATA / "kitti360_osm_bki"
    f = seq / "velodyne_points/data/0000002000.bin"
    assert detect_layout(f) == "kitti360"
    lab = np.fromfile(seq / "gt_labels/0000002000.bin", dtype="<u4") & 0xFFFF
    cloud = load_point_cloud(f)
    counts = _class_counts(cloud)
    assert counts["road"] == int((lab == 7).sum()) and counts["vegetation"] == int((lab == 21).sum())
    assert counts["unlabeled"] >= int((lab == 65535).sum())


@pytest.mark.skipif(not (REALDATA / "rellis3d").is_dir(), reason="../shared/realdata not present")
def test_rellis_needs_its_map_and_drops_no_return_slots():
    f = REALDATA / "rellis3d/000104.bin"
    with pytest.raises(SimGapInputError, match="not classes of label map 'semantickitti'"):
        load_point_cloud(f)
    cloud = load_point_cloud(f, label_map="rellis3d")
    assert len(cloud) == 77708  # the valid returns SOURCES.md lists, of 131072 slots
    assert {"terrain", "vegetation", "bush"} <= set(cloud.id_to_labels.values())
