"""The active-learning loop: stop criteria, resume, oracles, region labelling, the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _active_scenes import write_sequence  # noqa: E402

from simgap_ext.active.dataset import ClassVocabulary, ScanCache, load_samples  # noqa: E402
from simgap_ext.active.loop import ActiveLearningConfig, run_active_learning  # noqa: E402
from simgap_ext.active.model import RangeSegNet  # noqa: E402
from simgap_ext.active.oracle import LabelFileOracle, read_queue  # noqa: E402
from simgap_ext.active.training import TrainConfig, evaluate, predict_labels, train_and_evaluate  # noqa: E402
from simgap_ext.sensors import load_sensor_profile  # noqa: E402

torch.set_num_threads(1)
VLP16 = load_sensor_profile("vlp-16").vertical_angles_deg


def _factory(c: int) -> RangeSegNet:
    return RangeSegNet(c, VLP16, width=48, base=4, dropout=0.2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("al")
    return {
        "labelled": load_samples(write_sequence(root / "labelled", [0, 1])),
        "heldout": load_samples(write_sequence(root / "heldout", [2, 3])),
        "pool": load_samples(write_sequence(root / "pool", range(10, 16))),
        "root": root,
    }


def _cfg(**kw) -> ActiveLearningConfig:
    base = dict(rounds=2, budget=100, count=1, passes=2, sensor="vlp-16", width=48, train=TrainConfig(epochs=1))
    return ActiveLearningConfig(**{**base, **kw})


def _run(data, out, cfg, **kw):
    return run_active_learning(data["pool"], data["labelled"], data["heldout"], out, cfg, model_factory=_factory,
                               **kw)  # fmt: skip


def test_loop_stops_after_the_rounds_and_logs_each_round(data, tmp_path):
    res = _run(data, tmp_path / "run", _cfg())
    assert res.stop_reason == "rounds"
    assert [h["round"] for h in res.history] == [0, 1, 2]
    assert [h["labelled_scans"] for h in res.history] == [0, 1, 2]
    assert res.history[1]["labelled_points"] == 768  # one whole scan of the tiny scenes
    lines = [json.loads(x) for x in (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(res.history))
    assert set(lines[0]["iou"]) == {"building", "car", "road"}
    assert set(lines[0]["entropy"]) == {"p50", "p90", "p95", "p99"}
    queue = read_queue(tmp_path / "run" / "queue" / "round_00.jsonl")
    assert len(queue) == 1 and queue[0]["region"] == {"kind": "scan"} and queue[0]["points"] == 768
    # the selected scan is the pool scan with the highest mean entropy score
    assert queue[0]["path"] in {s.path for s in data["pool"]}
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "round_00.pt", "round_01.pt", "round_02.pt"]  # fmt: skip


def test_loop_stops_when_the_budget_is_spent(data, tmp_path):
    res = _run(data, tmp_path / "run", _cfg(rounds=10, budget=2))
    assert res.stop_reason == "budget"
    assert res.history[-1]["labelled_scans"] == 2 and len(res.history) == 3


def test_loop_stops_when_the_entropy_falls_below_the_threshold(data, tmp_path):
    # normalised entropy is at most 1, so a threshold above 1 is met at once
    res = _run(data, tmp_path / "run", _cfg(entropy_threshold=1.01))
    assert res.stop_reason == "entropy" and len(res.history) == 1
    assert res.history[0]["entropy"]["p95"] < 1.01


def test_resume_continues_the_same_round(data, tmp_path):
    out = tmp_path / "run"

    def crash(phase: str, rnd: int) -> None:
        if (phase, rnd) == ("trained", 1):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(data, out, _cfg(), on_event=crash)
    state = json.loads((out / "state.json").read_text())
    assert (state["round"], state["phase"]) == (1, "trained")
    ckpt = out / "checkpoints" / "round_01.pt"
    stamp = (ckpt.stat().st_ino, ckpt.stat().st_mtime_ns)
    events = []
    res = _run(data, out, _cfg(), resume=True, on_event=lambda p, r: events.append((p, r)))
    assert events[0] == ("queued", 1)  # round 1 is not trained again
    assert (ckpt.stat().st_ino, ckpt.stat().st_mtime_ns) == stamp
    assert [h["round"] for h in res.history] == [0, 1, 2]
    # same numbers as a run that was never interrupted
    ref = _run(data, tmp_path / "ref", _cfg())
    assert [h["miou"] for h in res.history] == pytest.approx([h["miou"] for h in ref.history])
    with pytest.raises(ValueError, match="already holds an active-learning run"):
        _run(data, out, _cfg())


def test_annotator_oracle_waits_for_label_files_then_resume_reads_them(data, tmp_path):
    pool_dir = tmp_path / "pool"
    write_sequence(pool_dir, range(20, 24), labels=False)
    truth = write_sequence(tmp_path / "truth", range(20, 24))
    pool = load_samples(pool_dir)
    answers = tmp_path / "answers"
    answers.mkdir()
    cfg = _cfg(rounds=1)
    args = (pool, data["labelled"], data["heldout"], tmp_path / "run", cfg)
    res = run_active_learning(*args, oracle=LabelFileOracle(answers), model_factory=_factory)
    assert res.stop_reason == "waiting_for_labels"
    (queued,) = read_queue(tmp_path / "run" / "queue" / "round_00.jsonl")
    shutil.copy(truth / "labels" / f"{queued['name']}.label", answers / f"{queued['name']}.label")
    res = run_active_learning(*args, oracle=LabelFileOracle(answers), model_factory=_factory, resume=True)
    assert res.stop_reason == "rounds"
    assert [h["labelled_scans"] for h in res.history] == [0, 1]
    assert str(pool_dir / "velodyne" / f"{queued['name']}.bin") in res.labelled


def test_region_selection_labels_voxels_within_the_point_budget(data, tmp_path):
    res = _run(data, tmp_path / "run", _cfg(regions="voxel", voxel_size=8.0, budget_points=500, count=None,
                                            percentile=90.0, rounds=3))  # fmt: skip
    assert res.stop_reason in ("budget", "rounds")
    assert 0 < res.history[-1]["labelled_points"] <= 500
    rows = [json.loads(x) for f in sorted((tmp_path / "run" / "queue").iterdir()) for x in f.read_text().splitlines()]
    assert rows and all(r["region"]["kind"] == "voxel" for r in rows)
    assert sum(r["points"] for r in rows) == res.history[-1]["labelled_points"]
    masks = [m for m in res.labelled.values() if m is not None]
    assert masks and all(0 < m.sum() < m.size for m in masks)  # partial scans
    keys = [(r["main_class"], r["scene"]) for r in rows if r["round"] == 0]
    assert keys == sorted(keys)  # grouped by predicted class, then scene


def test_evaluate_matches_brute_force_iou_and_train_and_evaluate_learns(data):
    cache = ScanCache()
    vocab = ClassVocabulary.from_samples(data["labelled"], cache)
    torch.manual_seed(0)
    model, metrics = train_and_evaluate(
        data["labelled"] + data["pool"], data["heldout"], vocab=vocab, model=_factory(3),
        config=TrainConfig(epochs=6, seed=0, device="cpu"), cache=cache,
    )  # fmt: skip
    truth = np.concatenate([cache.labels(s, vocab) for s in data["heldout"]])
    pred = np.concatenate([predict_labels(model, cache.points(s), "cpu") for s in data["heldout"]])
    for i, name in enumerate(vocab.names):
        inter = np.sum((truth == i) & (pred == i))
        union = np.sum((truth == i) | (pred == i))
        assert metrics.iou[name] == pytest.approx(inter / union)
    assert metrics.accuracy == pytest.approx(np.mean(truth == pred))
    assert evaluate(model, data["heldout"], cache, vocab).miou == pytest.approx(metrics.miou)
    assert metrics.accuracy > 0.8  # road / building / car are easy from range and height


def test_cli_runs_and_reports_bad_input(data, tmp_path, capsys):
    from simgap_ext.cli import main

    root = data["root"]
    rc = main(["active-learn", "--pool", str(root / "pool"), "--labelled", str(root / "labelled"), "--heldout",
               str(root / "heldout"), "--budget", "1", "--rounds", "3", "--count", "1", "--passes", "2", "--epochs",
               "1", "--sensor", "vlp-16", "--width", "48", "--out", str(tmp_path / "run"), "--no-progress",
               "--export-backbone", str(tmp_path / "bb.pt")])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "stopped: budget" in out and (tmp_path / "bb.pt").is_file()
    write_sequence(tmp_path / "nolabels", [40, 41], labels=False)
    rc = main(["active-learn", "--pool", str(tmp_path / "nolabels"), "--labelled", str(root / "labelled"),
               "--heldout", str(root / "heldout"), "--budget", "1", "--out", str(tmp_path / "run2")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "simgap: error: pool scans without labels need --answers" in err
    rc = main(["active-learn", "--pool", str(root / "pool"), "--labelled", str(root / "labelled"), "--budget", "1",
               "--heuristic", "nope", "--out", str(tmp_path / "run3")])  # fmt: skip
    assert rc == 2 and "unknown heuristic 'nope'" in capsys.readouterr().err
