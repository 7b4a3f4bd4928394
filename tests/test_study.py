"""Composition study (simgap_ext.study, `simgap study`): ratios, exact stratification, metrics, runner, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.errors import SimGapInputError
from simgap_ext.study import (
    Cell,
    StudyScanCache,
    StudyVocabulary,
    fixed_size_mix,
    list_pool,
    max_total,
    parse_ratios,
    split_stretches,
    unit_metrics,
)

ROOT = Path(__file__).resolve().parents[1]
NUSCENES = ROOT / "tests" / "data" / "nuscenes_hdl32"


# --------------------------------------------------------------------------------------------------- ratios


def test_parse_ratios_exact_shares_and_errors():
    rs = parse_ratios("100:0, 75:25,50:50,25:75,0:100")
    assert [r.label for r in rs] == ["100:0", "75:25", "50:50", "25:75", "0:100"]
    assert [r.share for r in rs] == [Fraction(0), Fraction(1, 4), Fraction(1, 2), Fraction(3, 4), Fraction(1)]
    assert rs[1].key == "75-25"
    for bad, msg in (("0:0", "both parts"), ("75", "REAL:SYNTHETIC"), ("a:b", "REAL:SYNTHETIC"),
                     ("50:50,1:1", "twice"), ("1:200", "denominator")):  # fmt: skip
        with pytest.raises(SimGapInputError, match=msg):
            parse_ratios(bad)


# ------------------------------------------------------------------------------------ exact stratification


def _row(domain, i, classes):
    return {"domain": domain, "decision": "accepted", "name": f"{domain}{i}", "index": i,
            "class_points": {c: 10 for c in classes}}  # fmt: skip


def _pools():
    # Real class frequencies (rows holding the class): a 20, b 20, c 20, d 20, e 10, f 2.
    # 20th percentile of [20, 20, 20, 20, 10, 2] = 10 -> tail {e, f}; 80th percentile = 20 -> head {a, b, c, d};
    # no body. A row's bucket is its rarest class's: rows with e or f are tail, the others head.
    real = [_row("real", i, ["a", "b", "c", "d"] + (["e"] if i < 10 else []) + (["f"] if i < 2 else []))
            for i in range(20)]  # fmt: skip
    real_tail = sum(1 for r in real if "e" in r["class_points"] or "f" in r["class_points"])
    synth = [_row("synthetic", i, ["a", "b"] + (["f"] if i % 3 == 0 else [])) for i in range(30)]
    synth_tail = sum(1 for r in synth if "f" in r["class_points"])
    return real, synth, real_tail, synth_tail


def test_fixed_size_mix_exact_ratio_and_bucket_counts():
    real, synth, real_tail, synth_tail = _pools()
    assert (real_tail, synth_tail) == (10, 10)  # head: 10 real, 20 synthetic
    for spec, total in (("100:0", 8), ("75:25", 8), ("50:50", 8), ("25:75", 8), ("0:100", 8), ("50:50", 12)):
        ratio = parse_ratios(spec)[0]
        mix = fixed_size_mix(real, synth, ratio, total, seed=3)
        p, q = ratio.share.numerator, ratio.share.denominator
        assert len(mix.rows) == total
        n_syn = sum(r["domain"] == "synthetic" for r in mix.rows)
        assert Fraction(n_syn, total) == ratio.share
        # Units per bucket (independent of the code: counted from the pools above), shared by largest remainder.
        if p == 0:
            units = {"head": 10, "tail": 10}
        elif p == q:
            units = {"head": 20, "tail": 10}
        else:
            units = {b: min(nr // (q - p), ns // p) for b, nr, ns in (("head", 10, 20), ("tail", 10, 10))}
        k_total = total // q
        exact = {b: k_total * u / sum(units.values()) for b, u in units.items()}
        k = {b: int(np.floor(e)) for b, e in exact.items()}
        rest = k_total - sum(k.values())
        for b in sorted(exact, key=lambda b: (-(exact[b] - k[b]), ["head", "body", "tail"].index(b)))[:rest]:
            k[b] += 1
        for b in ("head", "tail"):
            got_r = sum(r["domain"] == "real" and r["bucket"] == b for r in mix.rows)
            got_s = sum(r["domain"] == "synthetic" and r["bucket"] == b for r in mix.rows)
            assert (got_r, got_s) == (k[b] * (q - p), k[b] * p), (spec, b)
            assert (mix.buckets[b]["real"], mix.buckets[b]["synthetic"]) == (got_r, got_s)
        assert mix.buckets["body"]["real"] == mix.buckets["body"]["synthetic"] == 0
        # Each row sits in the bucket of its rarest class.
        for r in mix.rows:
            rare = {"e", "f"} & set(r["class_points"])
            assert r["bucket"] == ("tail" if rare else "head")
        assert len({(r["domain"], r["index"]) for r in mix.rows}) == total  # no sample twice


def test_fixed_size_mix_seeded_and_validated():
    real, synth, _, _ = _pools()
    r = parse_ratios("50:50")[0]
    names = lambda m: [x["name"] for x in m.rows]  # noqa: E731
    assert names(fixed_size_mix(real, synth, r, 8, seed=1)) == names(fixed_size_mix(real, synth, r, 8, seed=1))
    assert names(fixed_size_mix(real, synth, r, 8, seed=1)) != names(fixed_size_mix(real, synth, r, 8, seed=2))
    with pytest.raises(SimGapInputError, match="multiple of 4"):
        fixed_size_mix(real, synth, parse_ratios("75:25")[0], 6)
    with pytest.raises(SimGapInputError, match="fewer than"):
        fixed_size_mix(real, synth, r, 42)
    # 20 real and 30 synthetic; 50:50 takes min(10,20)+min(10,10) = 20 units of 2 -> 40; 100:0 fills 20.
    assert max_total(real, synth, parse_ratios("100:0,50:50")) == 20
    # 75:25 (3 real + 1 synthetic): head min(10 // 3, 20) + tail min(10 // 3, 10) = 6 units of 4 -> 24
    assert max_total(real, synth, parse_ratios("75:25,50:50")) == 24
    # 25:75 (1 + 3): head min(10, 20 // 3) + tail min(10, 10 // 3) = 9 units -> 36; 0:100 fills 30; a multiple
    # of 4 -> 28
    assert max_total(real, synth, parse_ratios("25:75,0:100")) == 28


# --------------------------------------------------------------------------------------------------- metrics


def test_unit_metrics_against_hand_computed_values():
    # truth rows, prediction columns; classes x, y, z (z tail)
    conf = [[8, 2, 0], [1, 5, 1], [0, 3, 0]]
    m = unit_metrics(conf, ["x", "y", "z"], ["z"])
    assert m["iou"]["x"] == pytest.approx(8 / (8 + 1 + 2))
    assert m["iou"]["y"] == pytest.approx(5 / (5 + 5 + 2))
    assert m["iou"]["z"] == pytest.approx(0.0)
    assert m["fpr"]["x"] == pytest.approx(1 / 10)  # one y point called x, 10 points are not x
    assert m["fpr"]["y"] == pytest.approx(5 / 13)
    assert m["fpr"]["z"] == pytest.approx(1 / 17)
    assert m["tail_miou"] == pytest.approx(0.0)
    assert m["common_miou"] == pytest.approx((8 / 11 + 5 / 12) / 2)
    assert m["miou"] == pytest.approx((8 / 11 + 5 / 12) / 3)
    assert m["accuracy"] == pytest.approx(13 / 20)
    # a class absent from labels and predictions has no IoU and does not count in the mean
    m2 = unit_metrics([[4, 0], [0, 0]], ["x", "w"], [])
    assert m2["iou"] == {"x": 1.0, "w": None} and m2["miou"] == 1.0 and m2["fpr"]["w"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        unit_metrics([[1]], ["x", "y"], [])


def test_cell_mean_and_sample_std():
    c = Cell.of([0.5, None, 0.7, 0.6])
    assert c.n == 3 and c.mean == pytest.approx(0.6) and c.std == pytest.approx(np.std([0.5, 0.7, 0.6], ddof=1))
    assert Cell.of([0.3]).std == 0.0 and Cell.of([None]).n == 0 and Cell.of([None]).text() == "-"
    assert Cell.of([0.5, 0.7]).text() == "60.0 ± 14.1"


# --------------------------------------------------------------------------------------------- pools, vocab


def test_split_stretches_keeps_order_and_gap():
    items = list(range(40))
    train, test = split_stretches(items, 0.25, 2)
    assert train == list(range(28)) and test == list(range(30, 40))
    with pytest.raises(SimGapInputError, match="cannot be split"):
        split_stretches(items[:3], 0.25, 2)
    with pytest.raises(SimGapInputError, match="test fraction"):
        split_stretches(items, 1.0, 0)


def test_vocabulary_rolls_dataset_names_onto_real_head_classes():
    v = StudyVocabulary(["ground", "pedestrian", "vehicle"], "head")
    assert v.index("car") == v.index("truck") == v.index("vehicle") == 2
    assert v.index("road") == v.index("sidewalk") == 0
    assert v.index("cyclist") == 1  # head class cyclist not studied -> its parent pedestrian
    assert v.index("pole") == v.index("unlabeled") == v.index("no_such_class") == -1
    with pytest.raises(SimGapInputError, match="class level"):
        StudyVocabulary(["ground"], "coarse")


def test_real_nuscenes_keyframes_read_with_layout_and_head_classes():
    """The two shipped nuScenes keyframes (5-column points.bin + lidarseg ground.bin) through the study's reader."""
    pool = list_pool(NUSCENES, "real")
    assert [s.name for s in pool] == ["data30", "data31", "data32"]
    s31 = pool[1]
    cache = StudyScanCache("drop")
    pts = cache.points(s31)
    raw = np.fromfile(NUSCENES / "data31" / "points.bin", dtype=np.float32).reshape(-1, 5)
    assert pts.shape[1] == 4 and np.all(pts[:, 3] == 0.0)
    assert pts.shape[0] <= raw.shape[0] and np.isin(pts[:50, 0], raw[:, 0]).all()
    vocab = StudyVocabulary.from_real(pool, cache, "head")
    assert {"ground", "vehicle", "vegetation"} <= set(vocab.names)
    lab = cache.labels(s31, vocab)
    raw_ids = np.fromfile(NUSCENES / "data31" / "ground.bin", dtype=np.uint8)
    # nuScenes ids 24-27 (driveable surface, other flat, sidewalk, terrain) are all "ground"
    n_flat = int(np.isin(raw_ids, [24, 25, 26, 27]).sum())
    assert int((lab == vocab.index("ground")).sum()) == n_flat


def test_study_package_imports_without_torch():
    code = "import sys, simgap_ext.study, simgap_ext.cli.cmd_study; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------- runner (torch)

_REAL_NAMES = {0: "unlabeled", 11: "car", 41: "road", 55: "other_structure", 30: "pedestrian"}
_SYN_NAMES = {0: "unlabeled", 10: "vehicle", 40: "ground", 50: "building", 30: "pedestrian", 80: "pole"}


def _scan(rng, ids):
    """A small scan on hdl-32-like beams: ground ring below, a wall, a car, sometimes a pedestrian."""
    n = 300
    az = rng.uniform(-np.pi, np.pi, n)
    el = np.deg2rad(rng.choice(np.linspace(-30.67, 10.67, 32), n))
    r = rng.uniform(3, 20, n)
    x, y, z = r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)
    lab = np.full(n, ids["ground"], np.uint32)
    lab[z > 0.5] = ids["building"]
    lab[(np.abs(az) < 0.3) & (z <= 0.5) & (z > -1.0)] = ids["vehicle"]
    if rng.random() < 0.5:
        lab[(np.abs(az - 1.5) < 0.1) & (z <= 0.5)] = ids["pedestrian"]
    lab[rng.random(n) < 0.02] = 0
    pts = np.stack([x, y, z, rng.uniform(0, 1, n)], axis=1).astype(np.float32)
    return pts, lab


def _write_dir(path, names, count, seed):
    rng = np.random.default_rng(seed)
    inv = {v: k for k, v in names.items()}
    ids = {"ground": inv.get("road", inv.get("ground")), "building": inv.get("other_structure", inv.get("building")),
           "vehicle": inv.get("car", inv.get("vehicle")), "pedestrian": inv["pedestrian"]}  # fmt: skip
    (path / "velodyne").mkdir(parents=True)
    (path / "labels").mkdir()
    (path / "label_map.yaml").write_text("labels:\n" + "".join(f"  {k}: {v}\n" for k, v in names.items()))
    for i in range(count):
        pts, lab = _scan(rng, ids)
        pts.tofile(path / "velodyne" / f"{i:06d}.bin")
        lab.tofile(path / "labels" / f"{i:06d}.label")
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    return {
        "real": _write_dir(root / "real", _REAL_NAMES, 10, 1),
        "gated": _write_dir(root / "gated", _SYN_NAMES, 6, 2),
        "ungated": _write_dir(root / "ungated", _SYN_NAMES, 8, 3),
        "root": root,
    }


def _config(**kw):
    from simgap_ext.study import StudyConfig

    base = dict(ratios=parse_ratios("100:0,50:50,0:100"), seeds=[0, 1], total=4, epochs=1, width=16,
                sensor="hdl-32", threads=1, device="cpu")  # fmt: skip
    base.update(kw)
    return StudyConfig(**base)


def _pools_of(tiny):
    from simgap_ext.study import StudyPools

    real = list_pool(tiny["real"], "real")
    train, test = split_stretches(real, 0.3, 1)
    return StudyPools(train, test, list_pool(tiny["gated"], "synthetic"), list_pool(tiny["ungated"], "synthetic"))


def test_runner_complete_table_reproducible_and_resumable(tiny, tmp_path):
    pytest.importorskip("torch")
    from simgap_ext.study import run_study, write_report

    pools = _pools_of(tiny)
    out = tmp_path / "s"
    seen = []
    keys = ["100-0_real_s0", "50-50_gated_s0", "50-50_ungated_s0", "0-100_gated_s0", "0-100_ungated_s0"]
    keys += [k.replace("_s0", "_s1") for k in keys]
    run_study(pools, _config(seeds=[0]), out, on_unit=lambda u, r, sk: seen.append((u.key, sk)))
    assert seen == [(k, False) for k in keys[:5]]
    stamp = {p.name: p.stat().st_mtime_ns for p in (out / "units").iterdir()}
    # resume with more seeds: the finished units are kept (not rewritten), the new seed's trained
    seen.clear()
    plan, recs = run_study(pools, _config(), out, resume=True, on_unit=lambda u, r, sk: seen.append((u.key, sk)))
    assert seen == [(k, k.endswith("_s0")) for k in keys]
    assert all(p.stat().st_mtime_ns == stamp[p.name] for p in (out / "units").iterdir() if p.name in stamp)
    assert plan.vocab.names == ["building", "ground", "pedestrian", "vehicle"]
    for rec in recs:
        assert (out / "units" / f"{rec['key']}.json").is_file() and (out / "units" / f"{rec['key']}.pt").is_file()
        conf = np.asarray(rec["confusion"])
        assert conf.shape == (4, 4) and conf.sum() == rec["test_points"] > 0
        n_syn = sum(t["domain"] == "synthetic" for t in rec["train"])
        assert len(rec["train"]) == 4 and n_syn == {"100:0": 0, "50:50": 2, "0:100": 4}[rec["ratio"]]
    # the same real scans at the same seed in both arms; synthetic ones from the arm's own pool
    by = {r["key"]: r for r in recs}
    real_of = lambda k: [t["name"] for t in by[k]["train"] if t["domain"] == "real"]  # noqa: E731
    assert real_of("50-50_gated_s0") == real_of("50-50_ungated_s0")

    # complete, well-formed table: every (ratio, arm) with both seeds; CSV rows for every metric and class
    agg = write_report(out, json.loads((out / "study.json").read_text()), recs)
    assert list(agg) == [(r, a) for r in ("100:0", "50:50", "0:100") for a in ("gated", "ungated")]
    assert all(cell["seeds"] == [0, 1] for cell in agg.values())
    assert agg[("100:0", "gated")]["miou"].values == agg[("100:0", "ungated")]["miou"].values  # shared baseline
    lines = (out / "summary.csv").read_text().splitlines()
    assert lines[0] == "ratio,arm,metric,class,mean,std,n,values"
    assert len(lines) == 1 + 6 * (5 + 2 * 4)
    assert (out / "study.png").read_bytes()[:4] == b"\x89PNG"
    page = (out / "report.html").read_text()
    assert page.count("<img src='data:image/png;base64,") == 5 and "Tail classes" in page

    # reproducible: the same units trained again in another directory give the same confusion matrices
    _, again = run_study(pools, _config(seeds=[1], ratios=parse_ratios("50:50")), tmp_path / "t")
    assert [r["key"] for r in again] == ["50-50_gated_s1", "50-50_ungated_s1"]
    assert [r["confusion"] for r in again] == [by[r["key"]]["confusion"] for r in again]

    # a lost unit is the only one trained again, to the same result
    (out / "units" / "50-50_ungated_s1.json").unlink()
    seen.clear()
    _, recs2 = run_study(pools, _config(), out, resume=True, on_unit=lambda u, r, sk: seen.append((u.key, sk)))
    assert [k for k, sk in seen if not sk] == ["50-50_ungated_s1"]
    assert recs2[7]["confusion"] == by["50-50_ungated_s1"]["confusion"]

    # an existing study is not overwritten, nor resumed with other settings
    with pytest.raises(SimGapInputError, match="already holds a study"):
        run_study(pools, _config(), out)
    with pytest.raises(SimGapInputError, match="other settings"):
        run_study(pools, _config(epochs=2), out, resume=True)


def test_cli_study_and_errors(tiny, tmp_path, capsys):
    pytest.importorskip("torch")
    from simgap_ext.cli import main

    out = tmp_path / "cli"
    args = ["study", "--real", str(tiny["real"]), "--test-fraction", "0.3", "--gap", "1", "--synthetic",
            str(tiny["gated"]), "--ungated", str(tiny["ungated"]), "--ratios", "100:0,50:50", "--seeds", "1",
            "--train-size", "4", "--epochs", "1", "--width", "16", "--sensor", "hdl-32", "--threads", "1",
            "--device", "cpu", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "Composition study" in text and "50:50" in text and "ungated" in text
    assert {p.name for p in out.iterdir()} >= {"study.json", "summary.csv", "report.html", "study.png", "units"}
    assert main([*args, "--resume"]) == 0
    bad = list(args)
    bad[bad.index("100:0,50:50")] = "100:0,50"
    assert main([*bad[:-1], str(tmp_path / "other")]) == 2
    assert "simgap: error: ratio '50'" in capsys.readouterr().err
