"""``simgap reference build|show`` and ``simgap budget`` on a small SemanticKITTI export of Warp frames."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simgap_ext.backends import get_scene_source
from simgap_ext.cli import main
from simgap_ext.data import write_label_map, write_semantickitti_scan
from simgap_ext.frame import id_to_class
from simgap_ext.gate import ReferenceBank, compute_synthetic_generation_budget, identify_tail_classes

BACKGROUND = {"ground", "building", "pole", "vegetation", "unlabeled"}


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("real") / "seq"
    src = get_scene_source("warp", sensor="vlp-16", preset="realistic", device="cpu")
    frames = [src.render(seed=500 + i, frame_id=i) for i in range(5)]
    for i, f in enumerate(frames):
        write_semantickitti_scan(root, i, f)
    write_label_map(root / "label_map.yaml", id_to_class(frames[0]))
    # Independent count of instances per object class, straight from the frames.
    counts: dict[str, int] = {}
    for f in frames:
        names = id_to_class(f)
        sem, inst = f["info"]["pointSemantic"], f["info"]["pointInstance"]
        for sid in np.unique(sem):
            if names[int(sid)] not in BACKGROUND:
                ids = set(inst[sem == sid].tolist()) - {0}
                counts[names[int(sid)]] = counts.get(names[int(sid)], 0) + len(ids)
    return root, counts


def test_reference_build_show_and_budget(real_dir, tmp_path, capsys):
    root, counts = real_dir
    out = tmp_path / "bank.npz"
    assert main(["reference", "build", "--real", str(root), "--out", str(out), "--sensor", "vlp-16"]) == 0
    assert "5 scans" in capsys.readouterr().out
    bank = ReferenceBank.load(out)
    assert bank.sensor == "vlp-16" and bank.frame_count == 5
    assert bank.class_counts == counts

    assert main(["reference", "show", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sensor: vlp-16" in text and "vehicle" in text
    assert main(["reference", "show", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frame_count"] == 5

    target = max(counts.values()) + 10
    args = ["--target-per-class", str(target), "--frames-per-hour", "100", "--json"]
    assert main(["budget", "--bank", str(out), *args]) == 0
    from_bank = json.loads(capsys.readouterr().out)
    assert main(["budget", "--real", str(root), *args]) == 0
    from_real = json.loads(capsys.readouterr().out)
    assert from_real["class_counts"] == counts
    assert from_bank["tail_classes"] == from_real["tail_classes"] == identify_tail_classes(counts)
    expected = compute_synthetic_generation_budget(counts, target, frames_per_hour=100)
    assert {k: r.to_dict() for k, r in expected.items()} == from_real["budget"]

    assert main(["budget", "--bank", str(out), "--target-per-class", str(target), "--all"]) == 0
    table = capsys.readouterr().out
    assert "tail classes (<= 20th percentile" in table
    for name in counts:
        assert name in table


def test_reference_build_limit_opens_only_the_chosen_scans(real_dir, tmp_path, capsys):
    root, _ = real_dir
    seq = tmp_path / "seq"
    for p in root.rglob("*"):
        if p.is_file():
            (seq / p.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            (seq / p.relative_to(root)).write_bytes(p.read_bytes())
    (seq / "velodyne" / "000001.bin").write_bytes(b"\0" * 15)  # corrupt, but --limit 2 picks scans 0 and 4
    out = tmp_path / "bank.npz"
    assert main(["reference", "build", "--real", str(seq), "--out", str(out), "--limit", "2"]) == 0
    assert "2 scans" in capsys.readouterr().out and ReferenceBank.load(out).frame_count == 2
    assert main(["reference", "build", "--real", str(seq), "--out", str(out), "--limit", "3"]) == 0  # 0, 2, 4
    assert ReferenceBank.load(out).frame_count == 3
    assert main(["reference", "build", "--real", str(seq), "--out", str(out), "--limit", "4"]) == 2  # 0, 1, 3, 4
    assert main(["reference", "build", "--real", str(seq), "--out", str(out)]) == 2  # every scan: 000001 is read
    assert "000001.bin" in capsys.readouterr().err


def test_reference_errors_are_one_line(tmp_path, capsys):
    assert main(["reference", "show", str(tmp_path / "nope.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simgap: error: reference bank") and "nope.npz: file not found" in err
    assert main(["reference", "build", "--real", str(tmp_path), "--out", str(tmp_path / "b.txt")]) == 2
    assert "the bank is an .npz file" in capsys.readouterr().err
    assert main(["budget", "--bank", str(tmp_path / "nope.npz"), "--target-per-class", "5"]) == 2
    assert "nope.npz: file not found" in capsys.readouterr().err
