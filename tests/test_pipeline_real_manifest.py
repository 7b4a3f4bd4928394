"""Real manifests from a SemanticKITTI directory (``simgap manifest``) and ``simgap mix`` over a real directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from simgap_ext.cli import main
from simgap_ext.data.manifest import ManifestWriter, make_row, read_manifest


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("real") / "seq"
    assert main(["render", "--sensor", "vlp-16", "--preset", "realistic", "--frames", "4", "--seed", "2000",
                 "--out", str(d), "--no-progress", "--device", "cpu"]) == 0  # fmt: skip
    return d


def _expected_counts(label_file: Path, names: dict[int, str]) -> tuple[dict[str, int], dict[str, int]]:
    # Independent of the readers: raw uint32 labels, semantic = low 16 bits, instance = high 16 bits.
    raw = np.fromfile(label_file, dtype="<u4")
    sem, ins = raw & 0xFFFF, raw >> 16
    points, instances = {}, {}
    for sid in np.unique(sem):
        name = names[int(sid)]
        points[name] = points.get(name, 0) + int((sem == sid).sum())
        ids = set(np.unique(ins[sem == sid]).tolist()) - {0}
        instances[name] = instances.get(name, 0) + len(ids)
    return points, instances


def test_manifest_command(real_dir, tmp_path, capsys):
    out = tmp_path / "manifests" / "real.jsonl"
    assert main(["manifest", "--real", str(real_dir), "--out", str(out), "--sensor", "vlp-16"]) == 0
    assert capsys.readouterr().out.strip() == f"4 real rows -> {out}"
    rows = read_manifest(out)
    names = {int(k): v for k, v in yaml.safe_load((real_dir / "label_map.yaml").read_text())["labels"].items()}
    assert [r["name"] for r in rows] == [f"{i:06d}" for i in range(4)]
    for r in rows:
        assert r["domain"] == "real" and r["decision"] == "accepted" and r["sensor"] == "vlp-16"
        scan = (out.parent / r["path"]).resolve()
        label = (out.parent / r["label_path"]).resolve()
        assert scan == (real_dir / "velodyne" / f"{r['name']}.bin").resolve()
        points, instances = _expected_counts(label, names)
        assert r["class_points"] == points and r["class_instances"] == instances
        assert sum(points.values()) == scan.stat().st_size // 16
    assert not list(out.parent.glob(".*partial"))


def test_mix_from_a_real_directory(real_dir, tmp_path, capsys):
    # A synthetic manifest whose rows point at the real scans (enough for mixing, which never reads the scans).
    syn = tmp_path / "syn.jsonl"
    with ManifestWriter(syn) as w:
        for i in range(4):
            w.append(
                make_row(
                    domain="synthetic",
                    sensor="vlp-16",
                    decision="accepted",
                    path=f"s/{i:06d}.bin",
                    label_path=f"s/{i:06d}.label",
                    index=i,
                    seed=i,
                    frame_id=i,
                    class_points={"ground": 100, "vehicle": 50},
                )
            )
    out = tmp_path / "mix"
    rc = main(["mix", "--real-manifest", str(real_dir), "--synthetic-manifest", str(syn), "--out", str(out),
               "--sensor", "vlp-16", "--val-fraction", "0"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    real_rows = read_manifest(out / "real.jsonl")
    train = read_manifest(out / "train.jsonl")
    assert len(real_rows) == 4 and read_manifest(out / "val.jsonl") == []
    n_real = sum(r["domain"] == "real" for r in train)
    assert n_real == sum(r["domain"] == "synthetic" for r in train)  # 50:50 in every bucket
    assert f"train: {len(train)} rows" in text


def test_a_corrupt_scan_keeps_the_previous_manifest_and_leaves_no_partial_file(real_dir, tmp_path, capsys):
    seq = tmp_path / "seq"
    for p in real_dir.rglob("*"):
        if p.is_file():
            (seq / p.relative_to(real_dir)).parent.mkdir(parents=True, exist_ok=True)
            (seq / p.relative_to(real_dir)).write_bytes(p.read_bytes())
    out = tmp_path / "real.jsonl"
    assert main(["manifest", "--real", str(seq), "--out", str(out)]) == 0
    before = out.read_bytes()
    (seq / "velodyne" / "000002.bin").write_bytes(b"\0" * 15)  # not a whole number of float32 x4 points
    capsys.readouterr()
    assert main(["manifest", "--real", str(seq), "--out", str(out)]) == 2
    assert "000002.bin" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.jsonl", "seq"]
