"""Stratified real:synthetic mixing: buckets, exact ratios and splits, determinism, files and CLI.

Expected numbers are worked out by hand in the comments from the rules in simgap_ext/pipeline/mixing.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simgap_ext.cli import main
from simgap_ext.data.manifest import ManifestWriter, make_row, read_manifest
from simgap_ext.errors import SimGapInputError
from simgap_ext.pipeline.mixing import class_frequencies, frequency_buckets, mix_manifests, mix_rows

TS = "2026-11-25T12:00:00.000000Z"


def _real_rows() -> list[dict]:
    # 20 real scans: ground in all, car in 16, pedestrian in 8, bike in 4, wheelchair_user in 1.
    rows = []
    for i in range(20):
        pts = {"ground": 500, "unlabeled": 10}
        if i < 16:
            pts["car"] = 100
        if i < 8:
            pts["pedestrian"] = 30
        if i < 4:
            pts["bike"] = 20
        if i == 0:
            pts["wheelchair_user"] = 15
        rows.append(
            make_row(
                domain="real",
                sensor="vlp-16",
                decision="accepted",
                path=f"velodyne/{i:06d}.bin",
                label_path=f"labels/{i:06d}.label",
                index=i,
                frame_id=i,
                class_points=pts,
                name=f"{i:06d}",
                timestamp=TS,
            )
        )
    return rows


def _synth_rows() -> list[dict]:
    # 10 with wheelchair_user (tail), 10 with cargo_pallet (never in real: tail), 6 car+pedestrian (body),
    # 4 ground only (head), and 5 rejected attempts that must never be mixed.
    kinds = (
        [{"ground": 400, "wheelchair_user": 20}] * 10
        + [{"ground": 400, "cargo_pallet": 50}] * 10
        + [{"ground": 400, "car": 90, "pedestrian": 25}] * 6
        + [{"ground": 400}] * 4
    )
    rows = []
    for i, pts in enumerate(kinds):
        rows.append(
            make_row(
                domain="synthetic",
                sensor="vlp-16",
                decision="accepted",
                path=f"velodyne/{i:06d}.bin",
                label_path=f"labels/{i:06d}.label",
                index=i,
                seed=i,
                frame_id=i,
                class_points=pts,
                timestamp=TS,
            )
        )
    for j in range(5):
        rows.append(
            make_row(
                domain="synthetic",
                sensor="vlp-16",
                decision="rejected",
                seed=1000 + j,
                frame_id=100 + j,
                class_points={"ground": 1, "wheelchair_user": 3},
                timestamp=TS,
            )
        )
    return rows


def test_frequencies_and_buckets():
    freq = class_frequencies(_real_rows())
    assert freq == {"bike": 4, "car": 16, "ground": 20, "pedestrian": 8, "unlabeled": 20, "wheelchair_user": 1}
    # sorted frequencies [1, 4, 8, 16, 20, 20]: p20 (linear) = 4 -> tail {wheelchair_user, bike};
    # p80 = 20 -> head {ground, unlabeled}; body {pedestrian, car}; cargo_pallet (synthetic only) -> tail.
    b = frequency_buckets(freq, extra_classes=["cargo_pallet"])
    assert b == {
        "bike": "tail",
        "car": "body",
        "cargo_pallet": "tail",
        "ground": "head",
        "pedestrian": "body",
        "unlabeled": "head",
        "wheelchair_user": "tail",
    }


# Sample buckets (rarest class, 'unlabeled' ignored): real rows 0-3 tail (bike/wheelchair), 4-15 body, 16-19 head
# -> real tail 4, body 12, head 4. Synthetic: tail 20, body 6, head 4.
@pytest.mark.parametrize(
    "ratio, expected",
    [
        # ratio 1/2: units = min(R // 1, S // 1); val units = round(0.2 * units)
        (0.5, {"tail": (4, 4, 1), "body": (6, 6, 1), "head": (4, 4, 1)}),
        # ratio 1/4 -> 3 real : 1 synthetic; units = min(R // 3, S // 1)
        (0.25, {"tail": (3, 1, 0), "body": (12, 4, 1), "head": (3, 1, 0)}),
        # ratio 2/3 -> 1 real : 2 synthetic; units = min(R // 1, S // 2)
        (2 / 3, {"tail": (4, 8, 1), "body": (3, 6, 1), "head": (2, 4, 0)}),
    ],
)
def test_exact_counts_per_bucket(ratio, expected):
    res = mix_rows(_real_rows(), _synth_rows(), ratio=ratio, val_fraction=0.2, seed=3)
    avail = {"tail": (4, 20), "body": (12, 6), "head": (4, 4)}
    for bucket, (n_real, n_syn, val_units) in expected.items():
        t = res.buckets[bucket]
        assert (t["real_available"], t["synthetic_available"]) == avail[bucket]
        assert (t["real"], t["synthetic"]) == (n_real, n_syn)
        frac = res.ratio
        assert t["val_real"] == val_units * (frac.denominator - frac.numerator)
        assert t["val_synthetic"] == val_units * frac.numerator
        for split in ("train", "val"):
            rows = [r for r in getattr(res, split) if r["bucket"] == bucket]
            syn = sum(r["domain"] == "synthetic" for r in rows)
            assert (len(rows) - syn, syn) == (t[f"{split}_real"], t[f"{split}_synthetic"])
            if rows:  # the ratio holds exactly in every split of every bucket
                assert syn * frac.denominator == len(rows) * frac.numerator


def test_only_accepted_synthetic_rows_and_no_overlap():
    res = mix_rows(_real_rows(), _synth_rows(), ratio=0.5, seed=1)
    keys = [(r["domain"], r["index"]) for r in res.train + res.val]
    assert len(keys) == len(set(keys))
    assert all(r["decision"] == "accepted" for r in res.train + res.val)
    assert {r["split"] for r in res.train} == {"train"} and {r["split"] for r in res.val} == {"val"}


def test_ratio_zero_and_one():
    res0 = mix_rows(_real_rows(), _synth_rows(), ratio=0.0, val_fraction=0.25)
    assert sum(b["real"] for b in res0.buckets.values()) == 20
    assert all(r["domain"] == "real" for r in res0.train + res0.val)
    # val = round(0.25 * n) per bucket: tail 1, body 3, head 1
    assert {b: res0.buckets[b]["val_real"] for b in res0.buckets} == {"head": 1, "body": 3, "tail": 1}
    res1 = mix_rows(_real_rows(), _synth_rows(), ratio=1.0)
    assert sum(b["synthetic"] for b in res1.buckets.values()) == 30
    assert all(r["domain"] == "synthetic" for r in res1.train + res1.val)


def test_deterministic_per_seed():
    a = mix_rows(_real_rows(), _synth_rows(), seed=7)
    b = mix_rows(_real_rows(), _synth_rows(), seed=7)
    assert a.train == b.train and a.val == b.val
    picks = {
        tuple(sorted((r["domain"], r["index"]) for r in mix_rows(_real_rows(), _synth_rows(), seed=s).train))
        for s in range(5)
    }
    assert len(picks) > 1  # the seed really drives the draw (body: 6 of 12 real)


def test_class_table_counts_match_rows():
    res = mix_rows(_real_rows(), _synth_rows(), ratio=0.5, seed=2)
    for cls, row in res.class_table.items():
        for split in ("train", "val"):
            for dom in ("real", "synthetic"):
                n = sum(1 for r in getattr(res, split) if r["domain"] == dom and r["class_points"].get(cls, 0) > 0)
                assert row[f"{split}_{dom}"] == n, (cls, split, dom)


@pytest.mark.parametrize("kw, match", [({"ratio": 1.5}, "ratio"), ({"val_fraction": -0.1}, "val_fraction")])
def test_bad_arguments(kw, match):
    with pytest.raises(SimGapInputError, match=match):
        mix_rows(_real_rows(), _synth_rows(), **kw)


def test_no_real_rows():
    with pytest.raises(SimGapInputError, match="no real rows"):
        mix_rows([], _synth_rows())


def _write(path: Path, rows: list[dict]) -> Path:
    with ManifestWriter(path) as w:
        for r in rows:
            w.append(r)
    return path


def test_mix_manifests_rebases_paths(tmp_path):
    real_m = _write(tmp_path / "real_data" / "real.jsonl", _real_rows())
    _write(tmp_path / "gen" / "manifest.jsonl", _synth_rows())
    out = tmp_path / "mixes" / "m1"
    res = mix_manifests(real_m, tmp_path / "gen", out, ratio=0.5, seed=0)
    train = read_manifest(out / "train.jsonl")
    val = read_manifest(out / "val.jsonl")
    assert train == res.train and val == res.val
    for r in train + val:
        base = tmp_path / ("real_data" if r["domain"] == "real" else "gen")
        assert (out / r["path"]).resolve() == (base / f"velodyne/{r['index']:06d}.bin").resolve()
        assert (out / r["label_path"]).resolve() == (base / f"labels/{r['index']:06d}.label").resolve()
        assert r["source_manifest"] in ("../../real_data/real.jsonl", "../../gen/manifest.jsonl")


def test_cli_mix_prints_tables(tmp_path, capsys):
    real_m = _write(tmp_path / "real.jsonl", _real_rows())
    syn_m = _write(tmp_path / "syn.jsonl", _synth_rows())
    rc = main(["mix", "--real-manifest", str(real_m), "--synthetic-manifest", str(syn_m), "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "wheelchair_user" in out and "cargo_pallet" in out and "per bucket" in out
    n_train = len((tmp_path / "o" / "train.jsonl").read_text().splitlines())
    assert f"train: {n_train} rows" in out
    assert n_train + len((tmp_path / "o" / "val.jsonl").read_text().splitlines()) == 28  # 2 * (4 + 6 + 4)


def test_cli_mix_bad_ratio_is_one_line_error(tmp_path, capsys):
    real_m = _write(tmp_path / "real.jsonl", _real_rows())
    rc = main(["mix", "--real-manifest", str(real_m), "--synthetic-manifest", str(real_m), "--out", str(tmp_path)])
    assert rc == 0  # no synthetic rows: a valid, empty 50:50 mix
    rc = main(
        [
            "mix",
            "--real-manifest",
            str(real_m),
            "--synthetic-manifest",
            str(real_m),
            "--out",
            str(tmp_path),
            "--ratio",
            "2",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().startswith("simgap: error: ratio") and len(err.strip().splitlines()) == 1


def test_an_empty_mix_is_valid_but_warned_about(caplog):
    accepted_none = [r for r in _synth_rows() if r["decision"] != "accepted"]
    with caplog.at_level("WARNING", logger="simgap_ext.pipeline.mixing"):
        res = mix_rows(_real_rows(), accepted_none, ratio=0.5)
    assert res.train == [] and res.val == []
    assert "the mix is empty: 20 real and 0 accepted synthetic rows" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="simgap_ext.pipeline.mixing"):
        mix_rows(_real_rows(), _synth_rows(), ratio=0.5)
    assert "mix is empty" not in caplog.text
