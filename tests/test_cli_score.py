"""``simgap score`` and ``simgap calibrate`` end to end on small SemanticKITTI-layout folders."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from simgap_ext.cli import main

LABELS = {0: "unlabeled", 40: "ground", 30: "pedestrian", 10: "vehicle"}


def _scene(rng: np.random.Generator, *, with_vehicle: bool = True):
    """A ground patch, two pedestrians and (optionally) one vehicle: (N,3) points, semantic, instance."""
    parts = [(np.c_[rng.uniform(-10, 10, (400, 2)), np.zeros(400)], 40, 0)]
    parts.append((rng.normal(0, 0.15, (60, 3)) * [1, 1, 4] + [3, 2, 0.9], 30, 1))
    parts.append((rng.normal(0, 0.15, (50, 3)) * [1, 1, 4] + [-4, 1, 0.9], 30, 2))
    if with_vehicle:
        parts.append((rng.uniform(-1, 1, (120, 3)) * [2.2, 0.9, 0.7] + [0, -5, 0.8], 10, 3))
    pts = np.vstack([p for p, _, _ in parts]).astype(np.float32)
    sem = np.concatenate([np.full(len(p), s) for p, s, _ in parts]).astype(np.uint32)
    inst = np.concatenate([np.full(len(p), i) for p, _, i in parts]).astype(np.uint32)
    return pts, sem, inst


def _write_seq(root: Path, scans: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Path:
    (root / "velodyne").mkdir(parents=True)
    (root / "labels").mkdir()
    for name, (pts, sem, inst) in scans.items():
        np.c_[pts, np.full(len(pts), 0.5, np.float32)].astype(np.float32).tofile(root / "velodyne" / f"{name}.bin")
        (sem | (inst << 16)).astype(np.uint32).tofile(root / "labels" / f"{name}.label")
    (root / "label_map.yaml").write_text(yaml.safe_dump({"labels": LABELS}))
    return root


def _brute_chamfer(a, b):
    d = np.linalg.norm(a[:, None].astype(np.float64) - b[None].astype(np.float64), axis=-1)
    return 0.5 * (d.min(1).mean() + d.min(0).mean())


def _brute_dcd(a, b, alpha=10.0):
    """Density-aware Chamfer (Wu et al. 2021) from a dense distance matrix: the reference for small scans."""
    d = np.linalg.norm(a[:, None].astype(np.float64) - b[None].astype(np.float64), axis=-1)
    i_ab, i_ba = d.argmin(1), d.argmin(0)
    n_b, n_a = np.bincount(i_ab, minlength=len(b)), np.bincount(i_ba, minlength=len(a))
    term_a = 1 - np.exp(-alpha * d.min(1) ** 2) / n_b[i_ab]
    term_b = 1 - np.exp(-alpha * d.min(0) ** 2) / n_a[i_ba]
    return 0.5 * (term_a.mean() + term_b.mean())


@pytest.fixture
def real_dir(tmp_path):
    rng = np.random.default_rng(0)
    return _write_seq(tmp_path / "real", {f"{i:06d}": _scene(rng) for i in range(3)})


def _read_real(real_dir: Path, name: str):
    pts = np.fromfile(real_dir / "velodyne" / f"{name}.bin", np.float32).reshape(-1, 4)[:, :3]
    lab = np.fromfile(real_dir / "labels" / f"{name}.label", np.uint32)
    return pts, lab & 0xFFFF, lab >> 16


def test_identical_sets_score_perfectly(real_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["score", "--real", str(real_dir), "--synthetic", str(real_dir), "--max-expected-distance", "0.5",
               "--json", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["pairing"] == "name" and len(rep["frames"]) == 3
    assert all(f["g"] == 1.0 and f["chamfer"] == 0.0 for f in rep["frames"])
    assert rep["passed"] and rep["failed_classes"] == []
    assert set(rep["classes"]) == {"ground", "pedestrian", "vehicle"}  # unlabeled is not scored
    assert rep["classes"]["pedestrian"]["js"] == 0.0 and rep["classes"]["pedestrian"]["n_real_instances"] == 6
    assert "PASS" in capsys.readouterr().out


def test_perturbed_and_missing_class(real_dir, tmp_path, capsys):
    rng = np.random.default_rng(1)
    scans = {}
    for i in range(3):
        pts, sem, inst = _read_real(real_dir, f"{i:06d}")
        keep = sem != 10  # the synthetic set never renders the vehicle
        noisy = pts[keep] + rng.normal(0, 0.05, (int(keep.sum()), 3)).astype(np.float32)
        scans[f"{i:06d}"] = (noisy, sem[keep], inst[keep])
    synth = _write_seq(tmp_path / "synth", scans)
    out = tmp_path / "r.json"
    rc = main(["score", "--real", str(real_dir), "--synthetic", str(synth), "--max-expected-distance", "0.5",
               "--json", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    rep = json.loads(out.read_text())
    for i, f in enumerate(rep["frames"]):
        r_pts, r_sem, _ = _read_real(real_dir, f"{i:06d}")
        s_pts = scans[f"{i:06d}"][0]
        assert f["g"] == pytest.approx(1 - _brute_chamfer(r_pts, s_pts) / 0.5, rel=1e-5)
        assert f["dcd"] == pytest.approx(_brute_dcd(r_pts, s_pts), rel=1e-5)
        ped = f["per_class"]["pedestrian"]
        want = 1 - _brute_chamfer(r_pts[r_sem == 30], s_pts[scans[f"{i:06d}"][1] == 30]) / 0.5
        assert ped["g"] == pytest.approx(want, rel=1e-5)
        assert f["per_class"]["vehicle"]["g"] is None and f["per_class"]["vehicle"]["note"] == "absent in synthetic"
    veh = rep["classes"]["vehicle"]
    assert veh["js"] == 1.0 and not veh["passed"] and "no synthetic instances" in veh["reasons"][0]
    assert "vehicle" in rep["failed_classes"] and not rep["passed"]
    assert "FAIL" in capsys.readouterr().out


def test_only_paired_scans_are_read(real_dir, tmp_path, capsys):
    # a real scan without a synthetic twin is not scored, so it is not even opened (here: a corrupt file)
    synth = _write_seq(tmp_path / "synth", {f"{i:06d}": _read_real(real_dir, f"{i:06d}") for i in range(3)})
    (real_dir / "velodyne" / "000009.bin").write_bytes(b"\0" * 20)
    (real_dir / "labels" / "000009.label").write_bytes(b"\0" * 4)
    out = tmp_path / "r.json"
    assert main(["score", "--real", str(real_dir), "--synthetic", str(synth), "--max-expected-distance", "1",
                 "--json", str(out), "--no-progress"]) == 0  # fmt: skip
    assert [f["real"] for f in json.loads(out.read_text())["frames"]] == ["000000", "000001", "000002"]
    assert "1 real scans have no synthetic twin" in capsys.readouterr().err


def test_names_differ_fall_back_to_order(real_dir, tmp_path, capsys):
    rng = np.random.default_rng(2)
    synth = _write_seq(tmp_path / "synth", {f"sim_{i}": _scene(rng) for i in range(2)})
    out = tmp_path / "r.json"
    assert main(["score", "--real", str(real_dir), "--synthetic", str(synth), "--max-expected-distance", "1",
                 "--json", str(out), "--no-progress"]) == 0  # fmt: skip
    rep = json.loads(out.read_text())
    assert rep["pairing"] == "order"
    assert [(f["real"], f["synthetic"]) for f in rep["frames"]] == [("000000", "sim_0"), ("000001", "sim_1")]
    assert "do not match" in capsys.readouterr().err


def test_sensor_profile_gives_d_max(real_dir, tmp_path):
    from simgap_ext.sensors import load_sensor_profile

    out = tmp_path / "r.json"
    assert main(["score", "--real", str(real_dir), "--synthetic", str(real_dir), "--sensor", "vlp-16",
                 "--json", str(out), "--no-progress"]) == 0  # fmt: skip
    assert json.loads(out.read_text())["d_max"] == load_sensor_profile("vlp-16").max_expected_distance


@pytest.mark.parametrize(
    "extra, match",
    [
        ([], "--sensor PROFILE or --max-expected-distance"),
        (["--max-expected-distance", "-1"], "must be > 0"),
        (["--sensor", "no-such-lidar"], "unknown sensor profile"),
        (["--max-expected-distance", "1", "--threshold-g", "2"], "threshold_g must be in [0, 1]"),
        (["--max-expected-distance", "1", "--threshold-js", "-0.1"], "threshold_js must be in [0, 1]"),
        (["--max-expected-distance", "1", "--min-points", "0"], "min_points must be >= 1"),
    ],
)
def test_bad_arguments_exit_2(real_dir, extra, match, capsys):
    assert main(["score", "--real", str(real_dir), "--synthetic", str(real_dir), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simgap: error:") and match in err and err.count("\n") == 1


def test_scorer_checks_its_settings_before_any_pair():
    from simgap_ext.errors import SimGapInputError
    from simgap_ext.metrics.paired import PairedScorer

    for kw, match in (
        ({"threshold_js": 1.5}, "threshold_js"),
        ({"threshold_g": -0.5}, "threshold_g"),
        ({"method": "kl"}, "method"),
        ({"min_points": 0}, "min_points"),
    ):
        with pytest.raises(SimGapInputError, match=match):
            PairedScorer(d_max=1.0, **kw)


class _FullDisk:
    """Stand-in for a file object on a full disk (the OS is what is simulated)."""

    def __init__(self, fd, mode):
        os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("command", ["score", "calibrate"])
def test_json_report_on_a_full_disk_keeps_the_previous_report(real_dir, tmp_path, monkeypatch, capsys, command):
    from simgap_ext.data import atomic as atomic_mod

    out = tmp_path / "r.json"
    out.write_text('{"previous": true}\n')
    args = ["score", "--real", str(real_dir), "--synthetic", str(real_dir), "--max-expected-distance", "1",
            "--no-progress"] if command == "score" else ["calibrate", "--real", str(real_dir), "--raw"]  # fmt: skip
    monkeypatch.setattr(atomic_mod.os, "fdopen", _FullDisk)
    assert main([*args, "--json", str(out)]) == 2
    assert "no space left on device writing" in capsys.readouterr().err
    assert json.loads(out.read_text()) == {"previous": True}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".r.json")) == []


def test_missing_path_exit_2(real_dir, tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["score", "--real", str(real_dir), "--synthetic", str(missing), "--max-expected-distance", "1"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_nan_scan_exit_2(real_dir, tmp_path, capsys):
    pts, sem, inst = _read_real(real_dir, "000000")
    pts = pts.copy()
    pts[3] = np.nan
    synth = _write_seq(tmp_path / "synth", {"000000": (pts, sem, inst)})
    assert main(["score", "--real", str(real_dir), "--synthetic", str(synth), "--max-expected-distance", "1",
                 "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "synth/velodyne/000000.bin" in err and "NaN/inf" in err


def test_calibrate(real_dir, tmp_path, capsys):
    out = tmp_path / "c.json"
    assert main(["calibrate", "--real", str(real_dir), "--raw", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    cds = [
        _brute_chamfer(_read_real(real_dir, f"{i:06d}")[0], _read_real(real_dir, f"{i + 1:06d}")[0]) for i in range(2)
    ]
    np.testing.assert_allclose(rep["chamfer_pairs"], cds, rtol=1e-5)
    assert rep["d_max"] == pytest.approx(np.quantile(cds, 0.95) / 0.25, rel=1e-5)
    assert f"{rep['d_max']:.6g}" in capsys.readouterr().out
    one = _write_seq(tmp_path / "one", {"000000": _read_real(real_dir, "000000")})
    assert main(["calibrate", "--real", str(one), "--raw"]) == 2
    assert "at least 2 real frames" in capsys.readouterr().err
    assert main(["calibrate", "--real", str(one)]) == 2
    assert "at least 2 consecutive real scans" in capsys.readouterr().err


def test_squared_convention(real_dir, tmp_path):
    rng = np.random.default_rng(3)
    pts, sem, inst = _read_real(real_dir, "000000")
    noisy = pts + rng.normal(0, 0.05, pts.shape).astype(np.float32)
    synth = _write_seq(tmp_path / "synth", {"000000": (noisy, sem, inst)})
    out = tmp_path / "r.json"
    assert main(["score", "--real", str(real_dir), "--synthetic", str(synth), "--max-expected-distance", "0.5",
                 "--squared", "--method", "norm", "--json", str(out), "--no-progress"]) == 0  # fmt: skip
    rep = json.loads(out.read_text())
    d = np.linalg.norm(pts[:, None].astype(np.float64) - noisy[None].astype(np.float64), axis=-1)
    cd2 = 0.5 * ((d.min(1) ** 2).mean() + (d.min(0) ** 2).mean())
    assert rep["squared"] and rep["frames"][0]["chamfer"] == pytest.approx(cd2, rel=1e-5)
    assert rep["frames"][0]["g"] == pytest.approx(1 - cd2 / 0.25, rel=1e-5)


def _perturbed_synth(real_dir: Path, root: Path) -> Path:
    """Noisy copies of the real scans without the vehicle (so that one class fails and one has no JS twin)."""
    rng = np.random.default_rng(1)
    scans = {}
    for i in range(3):
        pts, sem, inst = _read_real(real_dir, f"{i:06d}")
        keep = sem != 10
        scans[f"{i:06d}"] = (pts[keep] + rng.normal(0, 0.05, (int(keep.sum()), 3)).astype(np.float32), sem[keep],
                             inst[keep])  # fmt: skip
    return _write_seq(root, scans)


def test_html_page_agrees_with_json(real_dir, tmp_path, capsys):
    import base64
    import re

    synth = _perturbed_synth(real_dir, tmp_path / "synth")
    out, page_path = tmp_path / "r.json", tmp_path / "pages" / "score.html"
    assert main(["score", "--real", str(real_dir), "--synthetic", str(synth), "--max-expected-distance", "0.5",
                 "--json", str(out), "--html", str(page_path), "--no-progress"]) == 0  # fmt: skip
    rep = json.loads(out.read_text())
    page = page_path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page, flags=re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    pngs = re.findall(r'<img alt="([a-z_]+)" id="[a-z_]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert [n for n, _ in pngs] == ["scene_g", "class_scores", "nn_distances"]
    assert all(base64.b64decode(d)[:8] == b"\x89PNG\r\n\x1a\n" for _, d in pngs)
    body = page.split('<table id="per-class">', 1)[1].split("</table>", 1)[0]
    rows = {}
    for tr in body.split("<tr>"):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr)
        if cells:
            rows[cells[0]] = cells[1:]

    def f3(v):
        return "-" if v is None else f"{v:.3f}"

    assert set(rows) == set(rep["classes"]) == {"ground", "pedestrian", "vehicle"}
    for name, c in rep["classes"].items():
        want = [str(c["n_frames"]), f3(c["g_mean"]), f3(c["g_min"]), f3(c["js"]), f3(c["combined"]),
                f"{c['n_real_instances']}/{c['n_synthetic_instances']}"]  # fmt: skip
        assert rows[name][:6] == want
        assert rows[name][6] == ("pass" if c["passed"] else "FAIL")
    assert rows["vehicle"] == [
        "0",
        "-",
        "-",
        "1.000",
        "-",
        "3/0",
        "FAIL",
        "JS 1.000 &gt; 0.15 (no synthetic instances)",
    ]
    # the pooled histogram counts every point of every pair once per direction
    dist = rep["distances"]
    assert sum(dist["real_to_synthetic"]["counts"]) == sum(f["n_real"] for f in rep["frames"])
    assert sum(dist["synthetic_to_real"]["counts"]) == sum(f["n_synthetic"] for f in rep["frames"])
    assert "FAIL" in page.split('<p id="verdict">', 1)[1].split("</p>", 1)[0]


@pytest.mark.parametrize("where", ["directory", "under_a_file"])
def test_bad_html_path_exit_2_before_scoring(real_dir, tmp_path, capsys, where):
    if where == "directory":
        target = tmp_path / "pages"
        target.mkdir()
        match = "is a directory"
    else:
        (tmp_path / "notes.txt").write_text("x")
        target = tmp_path / "notes.txt" / "score.html"
        match = "is not a directory"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["score", "--real", str(real_dir), "--synthetic", str(real_dir), "--max-expected-distance", "1",
                 "--html", str(target), "--no-progress"]) == 2  # fmt: skip
    captured = capsys.readouterr()
    assert captured.err.startswith("simgap: error: --html") and match in captured.err
    assert captured.err.count("\n") == 1
    assert captured.out == ""  # refused before any pair was scored
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, no partial file


def test_html_on_a_full_disk_keeps_the_previous_page(real_dir, tmp_path, monkeypatch, capsys):
    from simgap_ext.data import atomic as atomic_mod

    page = tmp_path / "score.html"
    page.write_text("previous page")
    monkeypatch.setattr(atomic_mod.os, "fdopen", _FullDisk)
    assert main(["score", "--real", str(real_dir), "--synthetic", str(real_dir), "--max-expected-distance", "1",
                 "--html", str(page), "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("simgap: error: no space left on device writing") and err.count("\n") == 1
    assert page.read_text() == "previous page"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".score.html")] == []
