"""Hostile and malformed scan files: every reader refuses them with a clean SimGapInputError naming the file, within
seconds (declared sizes are checked against the file before anything is allocated), and a seeded fuzz run over
every reader never ends in another exception or a hang."""

from __future__ import annotations

import io
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _timeouts import fail_after  # noqa: E402  (tests/ helper module)

from simgap_ext.cli import main
from simgap_ext.data import PointCloud, load_label_map, load_point_cloud, write_point_cloud
from simgap_ext.data.kitti_object import read_kitti_calib, read_kitti_labels
from simgap_ext.data.label_map import read_label_map
from simgap_ext.errors import SimGapError, SimGapInputError

DATA = Path(__file__).resolve().parent / "data"


def _hang_guard(seconds: int = 30):
    """Fail (instead of hanging the suite) when a read runs longer than ``seconds``; not a timing assertion."""
    return fail_after(seconds, "read")


def _cloud(n: int = 64, seed: int = 0) -> PointCloud:
    rng = np.random.default_rng(seed)
    return PointCloud(
        (rng.normal(size=(n, 3)) * 10).astype(np.float32),
        rng.random(n).astype(np.float32),
        rng.choice([0, 11, 30], size=n).astype(np.uint32),
        rng.integers(0, 4, size=n).astype(np.uint32),
        {0: "unlabeled", 11: "car", 30: "pedestrian"},
    )


def _las_bytes(tmp_path: Path, version_14: bool = True) -> bytearray:
    p = write_point_cloud(tmp_path / "seed.las", _cloud())
    return bytearray(p.read_bytes())


def _refused(path: Path, match: str, **kw) -> None:
    with _hang_guard(), pytest.raises(SimGapInputError, match=match) as exc:
        load_point_cloud(path, **kw)
    assert str(path.name) in str(exc.value)


# --- the hostile headers of issue #8 -----------------------------------------------------------------------------


def test_las_with_0xffffffff_vlrs_is_refused_not_hung(tmp_path):
    raw = _las_bytes(tmp_path)
    struct.pack_into("<I", raw, 100, 0xFFFFFFFF)
    (tmp_path / "vlrs.las").write_bytes(raw)
    _refused(tmp_path / "vlrs.las", r"declares 4294967295 VLRs")


def test_las_version_9_9_is_refused(tmp_path):
    raw = _las_bytes(tmp_path)
    raw[24], raw[25] = 9, 9
    (tmp_path / "v99.las").write_bytes(raw)
    _refused(tmp_path / "v99.las", r"LAS version 9\.9 does not exist")


def test_las_declaring_10_to_the_12_points_is_refused(tmp_path):
    raw = _las_bytes(tmp_path)
    struct.pack_into("<I", raw, 107, 0)
    struct.pack_into("<Q", raw, 247, 10**12)
    (tmp_path / "huge.las").write_bytes(raw)
    _refused(tmp_path / "huge.las", r"declares 1000000000000 points")


def test_ply_declaring_10_to_the_12_vertices_is_refused(tmp_path):
    p = tmp_path / "huge.ply"
    p.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000000000\nproperty float x\n"
                  b"property float y\nproperty float z\nend_header\n" + b"\0" * 24)  # fmt: skip
    _refused(p, r"needing at least 12000000000000 bytes")


def test_pcd_declaring_10_to_the_12_points_is_refused(tmp_path):
    p = tmp_path / "huge.pcd"
    p.write_bytes(b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1000000000000\nHEIGHT 1\n"
                  b"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 1000000000000\nDATA binary\n" + b"\0" * 24)  # fmt: skip
    _refused(p, r"declares 1000000000000 points")


def test_pcd_with_points_0_is_an_empty_cloud_refused(tmp_path):
    p = tmp_path / "empty.pcd"
    p.write_bytes(b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 0\nHEIGHT 1\n"
                  b"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 0\nDATA ascii\n")  # fmt: skip
    _refused(p, r"empty point cloud \(0 points\)|unreadable PCD")


def test_zero_byte_bin_is_refused(tmp_path):
    p = tmp_path / "000000.bin"
    p.write_bytes(b"")
    _refused(p, r"empty scan file \(0 bytes\)")


def _npy(arr: np.ndarray, shape_override: tuple | None = None) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr)
    raw = buf.getvalue()
    if shape_override is not None:
        raw = raw.replace(repr(arr.shape).encode(), repr(shape_override).encode().ljust(len(repr(arr.shape))), 1)
    return raw


def test_npz_with_a_non_npy_member_is_refused(tmp_path):
    p = tmp_path / "evil.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("points.npy", _npy(np.zeros((4, 3), np.float32)))
        z.writestr("payload.pkl", b"\x80\x04K\x01.")
    _refused(p, r"member 'payload\.pkl' is not a \.npy array")


def test_npz_member_declaring_a_huge_shape_is_refused(tmp_path):
    p = tmp_path / "huge.npz"
    arr = np.zeros((4000, 3), np.float32)
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("points.npy", _npy(arr, shape_override=(10**9, 3)))
    _refused(p, r"declares shape \(1000000000, 3\)")


def test_npz_float_label_ids_are_refused_not_truncated(tmp_path):
    p = tmp_path / "f.npz"
    np.savez(p, points=np.ones((2, 3)), semantic=np.array([2, 3]), label_ids=np.array([2.7, 3.0]),
             label_names=np.array(["car", "road"]))  # fmt: skip
    _refused(p, r"'label_ids' must be an integer array, got dtype float64")


@pytest.mark.parametrize(
    "text, match",
    [
        ("labels:\n  .inf: car\n", r"label id inf is not an integer"),
        ("labels:\n  -.inf: car\n", r"label id -inf is not an integer"),
        ("labels:\n  1e30: car\n", r"not an integer"),
        ("labels:\n  99999999999999: car\n", r"not an integer|does not fit"),
        ("labels: " + "[" * 20000 + "]" * 20000 + "\n", r"nested 20000 levels deep"),
        ("labels: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", r"nested 5000 levels deep"),
        ("labels:\n" + "".join(" " * (2 * i) + f"k{i}:\n" for i in range(200)), r"nested 199 levels deep"),
    ],
)
def test_hostile_label_map_yaml_is_a_clean_error(tmp_path, text, match):
    p = tmp_path / "label_map.yaml"
    p.write_text(text)
    with _hang_guard(), pytest.raises(SimGapInputError, match=match):
        read_label_map(p)


def test_brackets_inside_quotes_are_not_nesting(tmp_path):
    p = tmp_path / "label_map.yaml"
    p.write_text("labels:\n  1: '" + "[" * 500 + '\'\n  2: "{{{{"  # [[[[[[\n')
    assert read_label_map(p) == {1: "[" * 500, 2: "{{{{"}


def test_cli_refuses_an_empty_scan_with_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "velodyne").mkdir()
    (tmp_path / "velodyne" / "000000.bin").write_bytes(b"")
    rc = main(["manifest", "--real", str(tmp_path), "--out", str(tmp_path / "m.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and re.match(r"simgap: error: .*000000\.bin: empty scan file", err[0])


def test_cli_unknown_label_map_is_exit_2(tmp_path, capsys):
    rc = main(["manifest", "--real", str(DATA / "mcd"), "--out", str(tmp_path / "m.jsonl"), "--label-map", "mcdd"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown label map 'mcdd'" in err and "shipped: " in err


# --- seeded fuzzing ----------------------------------------------------------------------------------------------


def _seeds(tmp_path: Path) -> dict[str, bytes]:
    c = _cloud(48, seed=3)
    out: dict[str, bytes] = {}
    for name, kw in (("a.npz", {}), ("a.ply", {}), ("a.pcd", {}), ("a.las", {}), ("a.laz", {})):
        out[name] = write_point_cloud(tmp_path / name, c, **kw).read_bytes()
    from simgap_ext.data.pcd import write_pcd
    from simgap_ext.data.ply import write_ply

    out["b.ply"] = write_ply(tmp_path / "b.ply", c, binary=False).read_bytes()
    out["b.pcd"] = write_pcd(tmp_path / "b.pcd", c, encoding="ascii").read_bytes()
    out["c.pcd"] = write_pcd(tmp_path / "c.pcd", c, encoding="binary_compressed").read_bytes()
    rows = np.hstack([c.points, c.intensity[:, None]]).astype("<f4")
    out["k.bin"] = rows.tobytes()
    out["n.pcd.bin"] = np.hstack([rows, (np.arange(48) % 32)[:, None].astype("<f4")]).tobytes()
    np.save(tmp_path / "a.npy", rows)
    out["a.npy"] = (tmp_path / "a.npy").read_bytes()
    out["label_map.yaml"] = (DATA.parent.parent / "config/label_maps/nuscenes.yaml").read_bytes()
    out["calib.txt"] = (DATA / "kitti_object/calib/002155.txt").read_bytes()
    out["label.txt"] = (DATA / "kitti_object/label_2/002155.txt").read_bytes()
    return out


def _mutate(raw: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(raw)
    kind = int(rng.integers(0, 6))
    if kind == 0 and b:  # truncate
        return bytes(b[: int(rng.integers(0, len(b)))])
    if kind == 1 and b:  # flip bytes, mostly in the header
        for _ in range(int(rng.integers(1, 8))):
            i = int(rng.integers(0, min(len(b), 400)))
            b[i] = int(rng.integers(0, 256))
        return bytes(b)
    if kind == 2:  # a declared number in a text header becomes huge, negative or fractional
        m = list(re.finditer(rb"\d+", bytes(b[:2000])))
        if m:
            t = m[int(rng.integers(0, len(m)))]
            new = [b"999999999999", b"-1", b"1.5", b"0", b"18446744073709551617"][int(rng.integers(0, 5))]
            return bytes(b[: t.start()] + new + b[t.end() :])
    if kind == 3 and len(b) > 120:  # a binary header integer becomes 0xFFFFFFFF
        i = int(rng.integers(0, min(len(b), 260) - 4))
        struct.pack_into("<I", b, i, 0xFFFFFFFF)
        return bytes(b)
    if kind == 4:  # garbage appended
        return bytes(b) + rng.bytes(int(rng.integers(1, 64)))
    return bytes(rng.bytes(int(rng.integers(0, 256))))  # pure noise


def test_seeded_fuzz_over_every_reader_ends_cleanly(tmp_path):
    seeds = _seeds(tmp_path)
    rng = np.random.default_rng(20261128)
    readers = {
        "label_map.yaml": lambda p: (read_label_map(p), load_label_map(p)),
        "calib.txt": read_kitti_calib,
        "label.txt": read_kitti_labels,
    }
    bad: list[str] = []
    cases = 0
    for name, raw in seeds.items():
        for k in range(28):
            d = tmp_path / f"case_{name}_{k}"
            d.mkdir()
            p = d / name
            p.write_bytes(_mutate(raw, rng))
            cases += 1
            try:
                with _hang_guard():
                    readers.get(name, load_point_cloud)(p)
            except (SimGapError, ValueError):
                pass  # a clean refusal (SimGapInputError is a ValueError)
            except Exception as exc:  # noqa: BLE001 - the point of the test is to catch any other exception
                bad.append(f"{name} case {k}: {type(exc).__name__}: {str(exc)[:120]}")
    assert cases >= 390
    assert not bad, "\n".join(bad)
