"""Round-trips and corrupt-file errors for .npz, .ply, .pcd and .las/.laz, and iter_scans over a directory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import laspy
import numpy as np
import pytest

from simgap_ext.data import (
    PointCloud,
    count_scans,
    iter_scans,
    load_point_cloud,
    write_label_map,
    write_npz,
    write_point_cloud,
)
from simgap_ext.data.las import write_las
from simgap_ext.data.pcd import write_pcd
from simgap_ext.data.ply import write_ply
from simgap_ext.errors import SimGapInputError


def _cloud(n: int = 64, seed: int = 0, *, grid: bool = False) -> PointCloud:
    rng = np.random.default_rng(seed)
    if grid:
        # LAS stores scaled integers: millimetre-grid points and k/65535 intensities survive exactly.
        pts = (rng.integers(-80_000, 80_000, size=(n, 3)) / 1000.0).astype(np.float32)
        inten = (rng.integers(0, 65536, size=n) / 65535.0).astype(np.float32)
    else:
        pts = (rng.normal(size=(n, 3)) * 20).astype(np.float32)
        pts[0] = [1e-7, -3.4e-5, 123456.7]  # tiny and large magnitudes stress text formats
        inten = rng.random(n).astype(np.float32)
    sem = rng.choice([0, 10, 30, 200], size=n).astype(np.uint32)
    ins = rng.integers(0, 70_000, size=n).astype(np.uint32)
    return PointCloud(pts, inten, sem, ins, {0: "unlabeled", 10: "vehicle", 30: "pedestrian", 200: "cargo_pallet"})


def _assert_same(a: PointCloud, b: PointCloud) -> None:
    np.testing.assert_array_equal(a.points, b.points)
    for k in ("intensity", "semantic", "instance"):
        x, y = getattr(a, k), getattr(b, k)
        assert (x is None) == (y is None), k
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=k)
    assert b.points.dtype == np.float32 and b.semantic.dtype == np.uint32 and b.instance.dtype == np.uint32
    used = set(np.unique(a.semantic).tolist())  # readers keep the names of the ids in use
    assert {k: v for k, v in a.id_to_labels.items() if k in used} == b.id_to_labels


WRITERS = {
    "npz": lambda p, c: write_npz(p, c),
    "npz-uncompressed": lambda p, c: write_npz(p, c, compressed=False),
    "ply-binary": lambda p, c: write_ply(p, c),
    "ply-ascii": lambda p, c: write_ply(p, c, binary=False),
    "pcd-ascii": lambda p, c: write_pcd(p, c, encoding="ascii"),
    "pcd-binary": lambda p, c: write_pcd(p, c, encoding="binary"),
    "pcd-binary_compressed": lambda p, c: write_pcd(p, c, encoding="binary_compressed"),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_lossless_round_trip(tmp_path: Path, kind: str) -> None:
    c = _cloud()
    path = tmp_path / f"scan.{kind.split('-')[0]}"
    WRITERS[kind](path, c)
    _assert_same(c, load_point_cloud(path))


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_las_round_trip_on_grid(tmp_path: Path, suffix: str) -> None:
    c = _cloud(grid=True)
    c.instance = c.instance % 1000
    path = write_las(tmp_path / f"scan{suffix}", c, scale=0.001)
    _assert_same(c, load_point_cloud(path))
    raw = laspy.read(path)  # independent check of the on-disk encoding
    assert raw.header.point_format.id == 6
    np.testing.assert_array_equal(raw.intensity, np.round(c.intensity.astype(np.float64) * 65535))
    np.testing.assert_array_equal(raw.classification, c.semantic)


def test_las_foreign_file_uses_asprs_names_and_point_source_id(tmp_path: Path) -> None:
    las = laspy.create(point_format=3, file_version="1.2")
    las.header.scales = [0.01, 0.01, 0.01]
    las.x, las.y, las.z = [1.0, 2.0, 3.0], [0.5, 0.25, 0.0], [0.0, 0.0, 1.0]
    las.classification = [2, 6, 7]
    las.intensity = [0, 65535, 32768]
    las.point_source_id = [4, 4, 9]
    las.write(tmp_path / "aerial.las")
    c = load_point_cloud(tmp_path / "aerial.las")
    # ASPRS 2 ground / 6 building / 7 low noise -> taxonomy ground 40, building 50, unlabeled 0
    assert c.semantic.tolist() == [40, 50, 0]
    assert c.id_to_labels == {40: "ground", 50: "building", 0: "unlabeled"}
    assert c.instance.tolist() == [4, 4, 9]
    np.testing.assert_allclose(c.intensity, [0.0, 1.0, 32768 / 65535], rtol=0, atol=1e-7)
    np.testing.assert_array_equal(c.points[:, 0], np.float32([1.0, 2.0, 3.0]))


def test_las_rejects_semantic_ids_beyond_a_byte(tmp_path: Path) -> None:
    c = _cloud(4)
    c.semantic[:] = 300
    with pytest.raises(SimGapInputError, match="semantic id 300 does not fit LAS classification"):
        write_las(tmp_path / "x.las", c)


def test_write_point_cloud_dispatches_by_suffix(tmp_path: Path) -> None:
    c = _cloud(10)
    for suffix in (".npz", ".ply", ".pcd"):
        _assert_same(c, load_point_cloud(write_point_cloud(tmp_path / f"a{suffix}", c)))
    with pytest.raises(SimGapInputError, match=r"unsupported point-cloud format '\.xyz'"):
        write_point_cloud(tmp_path / "a.xyz", c)


def test_npz_alternative_keys(tmp_path: Path) -> None:
    pts4 = np.arange(24, dtype=np.float32).reshape(6, 4)
    np.savez(
        tmp_path / "a.npz",
        points=pts4,
        label=np.array([1, 1, 2, 2, 0, 0]),
        label_ids=np.array([1, 2]),
        label_names=np.array(["pole", "vegetation"]),
    )
    c = load_point_cloud(tmp_path / "a.npz")
    np.testing.assert_array_equal(c.points, pts4[:, :3])
    np.testing.assert_array_equal(c.intensity, pts4[:, 3])
    assert c.semantic.tolist() == [1, 1, 2, 2, 0, 0] and c.instance is None
    assert c.id_to_labels == {0: "unlabeled", 1: "pole", 2: "vegetation"}
    np.savez(tmp_path / "b.npz", xyz=pts4[:, :3])
    assert load_point_cloud(tmp_path / "b.npz").semantic is None


def test_sibling_label_map_names_unnamed_ids_but_file_names_win(tmp_path: Path) -> None:
    c = _cloud(20)
    write_pcd(tmp_path / "named.pcd", c)
    unnamed = PointCloud(c.points, None, c.semantic, None, {})
    write_pcd(tmp_path / "unnamed.pcd", unnamed)
    assert load_point_cloud(tmp_path / "unnamed.pcd").id_to_labels == {
        0: "unlabeled",
        10: "class_10",
        30: "class_30",
        200: "class_200",
    }
    write_label_map(tmp_path / "label_map.yaml", {10: "car", 30: "person", 200: "pallet"})
    assert load_point_cloud(tmp_path / "unnamed.pcd").id_to_labels[200] == "pallet"
    assert load_point_cloud(tmp_path / "named.pcd").id_to_labels[200] == "cargo_pallet"
    assert load_point_cloud(tmp_path / "named.pcd", id_to_labels={200: "x"}).id_to_labels[200] == "x"


def test_iter_scans_directory_of_mixed_files(tmp_path: Path) -> None:
    write_npz(tmp_path / "scan_10.npz", _cloud(5, 10))
    write_ply(tmp_path / "scan_2.ply", _cloud(6, 2))
    write_pcd(tmp_path / "scan_1.pcd", _cloud(7, 1))
    (tmp_path / "notes.txt").write_text("not a cloud")
    got = list(iter_scans(tmp_path, sensor="os1-64"))
    assert [n for n, _ in got] == ["scan_1", "scan_2", "scan_10"]  # natural, not lexicographic, order
    assert [f["frame_id"] for _, f in got] == [0, 1, 2]
    assert [f["data"].shape[0] for _, f in got] == [7, 6, 5]
    assert all(f["sensor"] == "os1-64" for _, f in got)
    assert got[0][1]["info"]["idToLabels"][30] == {"class": "pedestrian"}
    assert count_scans(tmp_path) == 3
    write_npz(tmp_path / "scan_1.npz", _cloud(3))
    with pytest.raises(SimGapInputError, match="two scans are named 'scan_1'"):
        count_scans(tmp_path)


def test_corrupt_files_name_the_file(tmp_path: Path) -> None:
    header = (
        b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 10\nHEIGHT 1\nPOINTS 10\nDATA binary\n"
    )
    cases = {
        "bad.ply": (
            b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nproperty float x\nend_header\n\x00",
            "PLY header declares elements needing at least 20 bytes, the file holds 1",
        ),
        "ragged.pcd": (header + b"\x00" * 20, r"PCD header declares 10 points \(120 bytes\) but only 20 bytes"),
        "short.pcd": (header + b"\x00" * 24, r"PCD header declares 10 points \(120 bytes\) but only 24 bytes"),
        "text.pcd": (b"hello", "PCD header has no 'DATA' line"),
        "bad.las": (b"LASF" + b"\x00" * 50, "not a LAS file"),
        "bad.laz": (b"garbage", "not a LAS file"),
        "bad.npz": (b"PK\x03\x04 not really a zip", r"not a readable \.npz archive"),
    }
    for name, (data, problem) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SimGapInputError, match=rf"{name}: {problem}"):
            load_point_cloud(tmp_path / name)


def test_missing_xyz_fields(tmp_path: Path) -> None:
    (tmp_path / "noz.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nend_header\n1 2\n3 4\n"
    )
    with pytest.raises(SimGapInputError, match=r"noz\.ply: PLY vertex element has no z field"):
        load_point_cloud(tmp_path / "noz.ply")
    (tmp_path / "noy.pcd").write_text(
        "VERSION 0.7\nFIELDS x z\nSIZE 4 4\nTYPE F F\nCOUNT 1 1\nWIDTH 1\nHEIGHT 1\nPOINTS 1\nDATA ascii\n1 2\n"
    )
    with pytest.raises(SimGapInputError, match=r"noy\.pcd: PCD has no y field"):
        load_point_cloud(tmp_path / "noy.pcd")
    np.savez(tmp_path / "nopts.npz", semantic=np.zeros(3))
    with pytest.raises(SimGapInputError, match=r"nopts\.npz: no 'points' or 'xyz' array"):
        load_point_cloud(tmp_path / "nopts.npz")


def test_nan_points_in_organised_pcd(tmp_path: Path) -> None:
    c = _cloud(12)
    c.points[[0, 5], 1] = np.nan
    write_pcd(tmp_path / "org.pcd", c)
    with pytest.raises(SimGapInputError, match=r"org\.pcd: 2 of 12 points are NaN/inf"):
        load_point_cloud(tmp_path / "org.pcd")
    kept = load_point_cloud(tmp_path / "org.pcd", drop_nonfinite=True)
    keep = np.ones(12, bool)
    keep[[0, 5]] = False
    np.testing.assert_array_equal(kept.points, c.points[keep])
    np.testing.assert_array_equal(kept.instance, c.instance[keep])


def test_ply_comment_carries_names(tmp_path: Path) -> None:
    c = _cloud(3)
    write_ply(tmp_path / "a.ply", c, binary=False)
    header = (tmp_path / "a.ply").read_bytes().split(b"end_header")[0].decode()
    line = next(ln for ln in header.splitlines() if ln.startswith("comment simgap_labels "))
    assert json.loads(line.split(" ", 2)[2])["200"] == "cargo_pallet"


def test_label_length_mismatch_in_npz(tmp_path: Path) -> None:
    np.savez(tmp_path / "m.npz", points=np.zeros((4, 3), np.float32), semantic=np.zeros(3, np.uint32))
    with pytest.raises(SimGapInputError, match=r"m\.npz: semantic has 3 values for 4 points"):
        load_point_cloud(tmp_path / "m.npz")


def test_bad_arrays_in_a_file_name_the_file(tmp_path: Path) -> None:
    cases = {
        # a wider id would wrap around in the uint32 cast and silently become another class
        "wide.npz": (
            {"points": np.zeros((2, 3)), "semantic": np.array([2**33 + 10, 10])},
            "semantic ids must fit uint32",
        ),
        "text.npz": ({"points": np.array([["a", "b", "c"]])}, "points must be numeric, got dtype <U1"),
        "complex.npz": ({"points": np.zeros((2, 3), complex)}, "points must be numeric, got dtype complex128"),
        "nan_i.npz": ({"points": np.zeros((2, 3)), "intensity": np.array([np.nan, 1.0])}, "1 of 2 intensity values"),
        "ids.npz": (
            {"points": np.zeros((1, 3)), "label_ids": np.array(["q"]), "label_names": np.array(["a"])},
            "'label_ids' must be an integer array",
        ),
    }
    for name, (arrays, problem) in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(SimGapInputError, match=rf"{name}: {problem}"):
            load_point_cloud(tmp_path / name)
    with pytest.raises(SimGapInputError, match=r"nan_i\.npz: 1 of 2 intensity values are NaN/inf"):
        list(iter_scans(tmp_path / "nan_i.npz"))


def test_bad_header_names_and_label_map_name_the_file_once(tmp_path: Path) -> None:
    (tmp_path / "a.pcd").write_text(
        "# simgap_labels [1]\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1\nHEIGHT 1\n"
        "POINTS 1\nDATA ascii\n1 2 3\n"
    )
    with pytest.raises(SimGapInputError) as info:
        load_point_cloud(tmp_path / "a.pcd")
    assert str(info.value) == f"{tmp_path / 'a.pcd'}: bad 'simgap_labels' header comment " + (
        "('list' object has no attribute 'items')"
    )
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "label_map.yaml").write_bytes(b"\xff\xfelabels: {}\n")
    np.savez(sub / "b.npz", points=np.zeros((1, 3)), semantic=np.array([1]))
    with pytest.raises(SimGapInputError, match=r"label_map\.yaml: label map is not UTF-8 text"):
        load_point_cloud(sub / "b.npz")


@pytest.mark.parametrize("suffix", [".npz", ".ply", ".pcd", ".las", ".bin"])
def test_writers_refuse_mismatched_arrays_naming_the_file(tmp_path: Path, suffix: str) -> None:
    c = _cloud(6)
    c.intensity = c.intensity[:4]
    with pytest.raises(SimGapInputError, match=rf"x{re.escape(suffix)}: intensity has 4 values for 6 points"):
        write_point_cloud(tmp_path / f"x{suffix}", c)
    assert list(tmp_path.iterdir()) == []


def test_las_refuses_nan_points_instead_of_a_nan_offset(tmp_path: Path) -> None:
    c = _cloud(5, grid=True)
    c.points[2, 0] = np.nan
    with pytest.raises(SimGapInputError, match=r"x\.las: 1 of 5 points are NaN/inf; LAS cannot store them"):
        write_las(tmp_path / "x.las", c)
    assert not (tmp_path / "x.las").exists()
