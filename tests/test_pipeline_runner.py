"""GenerationRunner on the real Warp backend and the real gate (vlp-16, a few frames).

The tests must not hinge on how well today's backend matches the real data, so the fixture *probes* the gate:
it scores a few frames and sets ``g_threshold`` to the median of each frame's lowest class G, and makes every
class a tail class. Then about half of the attempts fail on a tail class, and a run shows accepted,
re-randomized and rejected attempts whatever the calibration. The small quarantine window (3 frames, 2 samples,
threshold 1.0: JS is computed but never quarantines) makes the gate's semantic state matter within a few frames,
so that a resume must restore it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.backends import get_scene_source
from simgap_ext.backends.warp import WarpLidarSource
from simgap_ext.cli import main
from simgap_ext.data import iter_scans, read_bin, read_label, read_label_map
from simgap_ext.data.manifest import read_manifest, validate_manifest_row
from simgap_ext.errors import ExportError, SimGapInputError
from simgap_ext.gate import FrameGate, ReferenceBank, identify_tail_classes, load_gate_config
from simgap_ext.gate.frame_stats import DEFERRABLE
from simgap_ext.pipeline import AcceptanceStats, GenerationRunner, derive_seed, write_report
from simgap_ext.pipeline.render_worker import RenderWorkerError, processes_available
from simgap_ext.pipeline.run_dir import RunDir

DEVICE = "cpu"  # pipeline logic is device-independent; the metrics' own tests cover CUDA
SEED = 5
QUARANTINE = {"quarantine_window": 3, "quarantine_min_samples": 2, "js_threshold": 1.0}


@dataclass
class Env:
    bank_path: Path
    gate: dict  # GateConfig overrides
    tails: list[str]


def probe_g_threshold(bank: ReferenceBank, tails: list[str], seed: int, n: int = 8) -> float:
    """Median over ``n`` first attempts of the lowest class G in the frame."""
    source = get_scene_source("warp", sensor="vlp-16", preset="realistic", device=DEVICE)
    gate = FrameGate(bank, load_gate_config(), device=DEVICE, quarantine=False)
    lowest = []
    for k in range(n):
        frame = source.render(seed=derive_seed(seed, k, 0), focus_classes=[tails[k % len(tails)]], frame_id=k)
        scores = [c.g for c in gate.evaluate(frame).per_class.values() if c.g is not None]
        if scores:
            lowest.append(min(scores))
    assert len(lowest) >= n // 2, "the backend renders too few scorable objects for these tests"
    return float(np.median(lowest))


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    root = tmp_path_factory.mktemp("real")
    real = root / "seq"
    assert main(["render", "--sensor", "vlp-16", "--preset", "realistic", "--frames", "6", "--seed", "1000",
                 "--out", str(real), "--no-progress", "--device", DEVICE]) == 0  # fmt: skip
    bank = ReferenceBank.build(
        iter_scans(real, sensor="vlp-16"), sensor="vlp-16", config=load_gate_config(), device=DEVICE
    )
    # Every class of the bank is a tail class, stuff included: whichever class is a frame's weakest (the bank's
    # per-class d_max decides that, e.g. building's plausibility), its failure re-randomizes the scene. The runner
    # focuses only on the renderable ones (the object classes the probe focuses on).
    threshold = probe_g_threshold(bank, sorted(bank.object_classes), SEED)
    return Env(bank.save(root / "bank.npz"), {**QUARANTINE, "g_threshold": threshold}, sorted(bank.class_names))


def _runner(env: Env, out: Path, *, max_retries: int = 2, seed: int = SEED, **kw) -> GenerationRunner:
    bank = ReferenceBank.load(env.bank_path)
    config = load_gate_config(**{**env.gate, **kw.pop("gate", {})})
    source = get_scene_source("warp", sensor="vlp-16", preset="realistic", device=DEVICE)
    gate = FrameGate(bank, config, device=DEVICE)
    tails = kw.pop("tail_classes", env.tails)
    return GenerationRunner(source, gate, out, tail_classes=tails, max_retries=max_retries, seed=seed, **kw)


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "timestamp"} for r in rows]


def _hashes(out: Path) -> dict[str, str]:
    files = sorted(p for sub in ("velodyne", "labels") for p in (out / sub).glob("*") if p.is_file())
    files += [out / "label_map.yaml"] if (out / "label_map.yaml").exists() else []
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def reference_run(env, tmp_path_factory):
    """An uninterrupted 5-frame run that other tests compare against."""
    out = tmp_path_factory.mktemp("ref") / "run"
    summary = _runner(env, out).run(5, progress=False)
    return out, summary


def test_rows_schedule_and_export(reference_run, env):
    out, summary = reference_run
    rows = read_manifest(out / "manifest.jsonl")
    assert len(rows) == summary.counts["attempts"] == summary.attempts
    # the configuration really exercises every path (tests below rely on at least two exports)
    assert summary.counts["rerandomized"] > 0 and summary.counts["accepted"] >= 2
    source = get_scene_source("warp", sensor="vlp-16", preset="realistic", device=DEVICE)
    index = 0
    prev = None
    for row in rows:
        validate_manifest_row(row)
        fid, att = row["frame_id"], row["attempt"]
        assert row["seed"] == derive_seed(SEED, fid, att)
        if prev is not None and prev["decision"] == "rerandomized":
            assert (fid, att) == (prev["frame_id"], prev["attempt"] + 1)
            assert row["focus_classes"] == prev["focus_classes"]  # same focus, new seed
            assert row["seed"] != prev["seed"]
        else:
            assert att == 0 and fid == (prev["frame_id"] + 1 if prev else 0)
        failing_tail = set(row["failing_classes"]) & set(env.tails)
        if row["decision"] == "rerandomized":
            assert failing_tail and att < 2
        elif row["decision"] != "accepted":
            assert not failing_tail or att == 2  # retried while the budget lasts
        if row["decision"] == "accepted":
            assert row["index"] == index and row["path"] == f"velodyne/{index:06d}.bin"
            # The exported files hold exactly the frame the source renders for this seed.
            frame = source.render(seed=row["seed"], focus_classes=row["focus_classes"], frame_id=fid, attempt=att)
            pts, inten = read_bin(out / row["path"])
            sem, ins = read_label(out / row["label_path"], pts.shape[0])
            np.testing.assert_array_equal(pts, frame["data"])
            np.testing.assert_array_equal(sem, frame["info"]["pointSemantic"])
            np.testing.assert_array_equal(ins, frame["info"]["pointInstance"])
            names = read_label_map(out / "label_map.yaml")
            counts = {}
            for sid in np.unique(sem):
                counts[names[int(sid)]] = counts.get(names[int(sid)], 0) + int((sem == sid).sum())
            assert counts == row["class_points"]
            index += 1
        else:
            assert row["path"] is None
        prev = row
    assert sorted(p.name for p in (out / "velodyne").iterdir()) == [f"{i:06d}.bin" for i in range(index)]
    assert summary.exported == index
    # The live model and a rebuild from the manifest agree exactly; so does the report built from it.
    assert AcceptanceStats.from_manifest(out / "manifest.jsonl").to_dict() == summary.stats.to_dict()
    html = write_report(out).read_text()
    for r in summary.stats.rows():
        cells = [r.accepted, r.rejected, r.rerandomized, r.held_back, f"{100 * r.acceptance_rate:.1f}"]
        assert "<tr><td>" + r.class_name + "</td>" + "".join(f"<td>{c}</td>" for c in cells) in html


def test_retry_budget_is_respected(env, tmp_path):
    # g_threshold 1.0: every scored class fails, so every frame with a tail class is retried to the budget.
    runner = _runner(
        env, tmp_path / "run", max_retries=2, gate={"g_threshold": 1.0}, tail_classes=["vehicle", "pedestrian"]
    )
    summary = runner.run(2, progress=False)
    rows = read_manifest(tmp_path / "run" / "manifest.jsonl")
    assert [(r["frame_id"], r["attempt"], r["decision"]) for r in rows] == [
        (0, 0, "rerandomized"),
        (0, 1, "rerandomized"),
        (0, 2, "rejected"),
        (1, 0, "rerandomized"),
        (1, 1, "rerandomized"),
        (1, 2, "rejected"),
    ]
    assert "retry budget spent (2 re-randomizations)" in rows[2]["reasons"]
    assert summary.exported == 0 and not (tmp_path / "run" / "velodyne").exists()
    assert len({r["seed"] for r in rows}) == 6


def test_no_retries_without_tail_failure(env, tmp_path):
    runner = _runner(env, tmp_path / "run", max_retries=3, gate={"g_threshold": 1.0}, tail_classes=[])
    runner.run(3, progress=False)
    rows = read_manifest(tmp_path / "run" / "manifest.jsonl")
    assert [(r["frame_id"], r["attempt"], r["decision"]) for r in rows] == [(i, 0, "rejected") for i in range(3)]


def test_resume_in_process_equals_uninterrupted(reference_run, env, tmp_path):
    ref_out, _ = reference_run
    out = tmp_path / "run"
    _runner(env, out).run(2, progress=False)
    summary = _runner(env, out).run(5, resume=True, progress=False)
    assert summary.resumed_at == (2, 0)
    assert _strip(read_manifest(out / "manifest.jsonl")) == _strip(read_manifest(ref_out / "manifest.jsonl"))
    assert _hashes(out) == _hashes(ref_out)


def test_resume_without_gate_replay_would_differ(reference_run, env, tmp_path):
    # Proves the replay matters: the quarantine window is gate state that the manifest alone does not restore.
    ref_out, _ = reference_run
    out = tmp_path / "run"
    _runner(env, out).run(2, progress=False)
    _runner(env, out, replay_on_resume=False).run(5, resume=True, progress=False)
    assert _strip(read_manifest(out / "manifest.jsonl")) != _strip(read_manifest(ref_out / "manifest.jsonl"))


def test_resume_repairs_torn_line_and_orphans(reference_run, env, tmp_path):
    ref_out, _ = reference_run
    out = tmp_path / "run"
    runner = _runner(env, out)
    runner.run(3, progress=False)
    run_id = runner.run_id
    rows = read_manifest(out / "manifest.jsonl")
    assert {r["run_id"] for r in rows} == {run_id} and json.loads((out / "run.json").read_text())["run_id"] == run_id
    n_exported = sum(r["decision"] == "accepted" for r in rows)
    # What a kill leaves: the pending record of a scan written but not recorded, the scan, a temp file of this run
    # and a torn manifest line (rows start with their run_id).
    (out / "velodyne").mkdir(exist_ok=True)
    (out / "labels").mkdir(exist_ok=True)
    RunDir(out).record_pending(run_id, n_exported, 2)
    orphan = out / "velodyne" / f"{n_exported:06d}.bin"
    orphan.write_bytes(b"\0" * 32)  # 2 points x 16 bytes: what the pending record announced
    (out / "labels" / f".{n_exported:06d}.label.{run_id}.x1y2.tmp").write_bytes(b"\0" * 8)
    with open(out / "manifest.jsonl", "ab") as fh:
        fh.write(b'{"run_id":"' + run_id.encode() + b'","schema_version": 1, "domain": "synth')
    summary = _runner(env, out).run(5, resume=True, progress=False)
    assert summary.orphans_removed == 2
    assert orphan in summary.removed
    assert _strip(read_manifest(out / "manifest.jsonl")) == _strip(read_manifest(ref_out / "manifest.jsonl"))
    assert _hashes(out) == _hashes(ref_out)
    assert not list(out.rglob("*.tmp"))


def test_resume_leaves_what_it_cannot_prove_it_wrote(reference_run, env, tmp_path):
    out = tmp_path / "run"
    runner = _runner(env, out)
    runner.run(2, progress=False)
    before = (out / "manifest.jsonl").read_bytes()
    n_exported = sum(r["decision"] == "accepted" for r in read_manifest(out / "manifest.jsonl"))
    (out / "velodyne").mkdir(exist_ok=True)
    user_scan = out / "velodyne" / f"{n_exported:06d}.bin"
    user_scan.write_bytes(b"\1" * 48)  # no pending record of this run names it
    foreign_tmp = out / ".notes.txt.abc.tmp"  # not tagged with the run id
    foreign_tmp.write_bytes(b"mine")
    with pytest.raises(SimGapInputError, match=r"000\d{3}\.bin is not recorded in manifest.jsonl and this run did not"):
        _runner(env, out).run(4, resume=True, progress=False)
    assert user_scan.read_bytes() == b"\1" * 48 and foreign_tmp.read_bytes() == b"mine"
    user_scan.unlink()
    # A torn line that is not a row of this run: refused, the manifest byte-identical.
    with open(out / "manifest.jsonl", "ab") as fh:
        fh.write(b'{"schema_version": 1, "domain": "synth')
    torn = (out / "manifest.jsonl").read_bytes()
    assert torn.startswith(before)
    with pytest.raises(SimGapInputError, match="last line is incomplete and not a row of this run"):
        _runner(env, out).run(4, resume=True, progress=False)
    assert (out / "manifest.jsonl").read_bytes() == torn
    assert foreign_tmp.read_bytes() == b"mine"


def test_existing_run_needs_resume_and_same_config(reference_run, env, tmp_path):
    out = tmp_path / "run"
    _runner(env, out).run(1, progress=False)
    with pytest.raises(SimGapInputError, match="already holds a generation run"):
        _runner(env, out).run(2, progress=False)
    with pytest.raises(SimGapInputError, match=r"configuration differs from run.json in max_retries, seed"):
        _runner(env, out, max_retries=1, seed=6).run(2, resume=True, progress=False)
    assert len(read_manifest(out / "manifest.jsonl")) >= 1  # untouched by the refused runs


def test_enospc_during_export_stops_cleanly_then_resumes(reference_run, env, tmp_path, monkeypatch):
    ref_out, _ = reference_run
    out = tmp_path / "run"
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to see which file an fsync is for")
    real_fsync = os.fsync

    def fsync(fd):
        # The disk is full when the second scan's temp file is synced (its label file is already written).
        if "/velodyne/.000001.bin." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(ExportError, match=r"^no space left on device writing .*run/velodyne/000001\.bin$"):
        _runner(env, out).run(5, progress=False)
    monkeypatch.setattr(os, "fsync", real_fsync)
    rows = read_manifest(out / "manifest.jsonl")  # only complete, valid lines
    assert [r["index"] for r in rows if r["decision"] == "accepted"] == [0]
    assert (out / "labels" / "000001.label").exists()  # written before the failed scan: an orphan now
    assert (out / "manifest.jsonl").read_bytes().endswith(b"\n")
    assert not list(out.rglob("*.tmp"))
    assert _strip(rows) == _strip(read_manifest(ref_out / "manifest.jsonl"))[: len(rows)]
    assert _runner(env, out).run(5, resume=True, progress=False).orphans_removed == 1
    assert _strip(read_manifest(out / "manifest.jsonl")) == _strip(read_manifest(ref_out / "manifest.jsonl"))
    assert _hashes(out) == _hashes(ref_out)


def test_cli_generate_and_errors(env, tmp_path, capsys):
    out = tmp_path / "gen"
    gate_toml = tmp_path / "gate.toml"
    gate_toml.write_text("[gate]\nquarantine_window = 3\nquarantine_min_samples = 2\n")
    args = ["generate", "--sensor", "vlp-16", "--frames", "2", "--bank", str(env.bank_path), "--out", str(out),
            "--gate-config", str(gate_toml), "--device", DEVICE, "--no-progress",
            "--tail-percentile", "40"]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    rows = read_manifest(out / "manifest.jsonl")
    tails = identify_tail_classes(ReferenceBank.load(env.bank_path).class_counts, 40.0)
    assert f"{len(rows)} attempts" in text and f"tail classes: {', '.join(tails)}" in text
    cfg = json.loads((out / "run.json").read_text())
    assert cfg["bank"] == str(env.bank_path.resolve()) and cfg["gate_config"]["quarantine_window"] == 3
    # resuming a finished run: nothing to do, JSON summary on request
    assert main([*args, "--resume", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["resumed_at"] == [2, 0] and summary["frames_done"] == 0 and summary["attempts"] == 0
    assert summary["counts"]["attempts"] == len(rows) and read_manifest(out / "manifest.jsonl") == rows
    # again without --resume: refused, one line
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a generation run" in err[0]
    # a different seed on resume: refused
    assert main([*args, "--resume", "--seed", "9"]) == 2
    assert "configuration differs from run.json in seed" in capsys.readouterr().err
    # a bank of another sensor
    other = [{"vlp-16": "hdl-32", str(out): str(tmp_path / "o2")}.get(a, a) for a in args]
    assert main(other) == 2
    assert "holds vlp-16 scans but the sensor is hdl-32" in capsys.readouterr().err
    # replicator outside Isaac Sim
    assert main([*args, "--backend", "replicator"]) == 2
    assert "needs Isaac Sim" in capsys.readouterr().err
    # an output path that is a file
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = [a if a != str(out) else str(blocker / "sub") for a in args]
    assert main(bad) == 2
    assert capsys.readouterr().err.startswith("simgap: error: ")


def test_refuses_foreign_scans(env, tmp_path):
    out = tmp_path / "data"
    (out / "velodyne").mkdir(parents=True)
    (out / "velodyne" / "000000.bin").write_bytes(b"\0" * 16)
    with pytest.raises(SimGapInputError, match="holds SemanticKITTI scans but no manifest.jsonl"):
        _runner(env, out).run(1, progress=False)
    assert sorted(p.name for p in out.rglob("*")) == ["000000.bin", "velodyne"]  # nothing written, nothing deleted
    # --resume on someone else's data must not "clean up" their scans as orphans
    with pytest.raises(SimGapInputError, match="holds SemanticKITTI scans but no manifest.jsonl"):
        _runner(env, out).run(1, resume=True, progress=False)
    assert sorted(p.name for p in out.rglob("*")) == ["000000.bin", "velodyne"]


def test_cli_generate_from_real_dir_caches_the_bank(tmp_path, capsys):
    real = tmp_path / "real"
    assert main(["render", "--sensor", "vlp-16", "--preset", "realistic", "--frames", "3", "--seed", "3000",
                 "--out", str(real), "--no-progress", "--device", DEVICE]) == 0  # fmt: skip
    out = tmp_path / "gen"
    args = ["generate", "--sensor", "vlp-16", "--frames", "1", "--real", str(real), "--out", str(out),
            "--device", DEVICE, "--no-progress"]  # fmt: skip
    assert main(args) == 0
    bank = out / "bank.npz"
    stamp = (bank.stat().st_mtime_ns, bank.read_bytes())
    cfg = json.loads((out / "run.json").read_text())
    assert cfg["real"] == str(real.resolve()) and len(cfg["bank_sha256"]) == 64
    assert ReferenceBank.load(bank).frame_count == 3
    # resume with more frames: the cached bank is reused, not rebuilt
    assert main([*[a if a != "1" else "2" for a in args], "--resume"]) == 0
    assert (bank.stat().st_mtime_ns, bank.read_bytes()) == stamp
    assert {r["frame_id"] for r in read_manifest(out / "manifest.jsonl")} == {0, 1}
    # resuming against other real data is refused
    other = tmp_path / "other"
    other.mkdir()
    capsys.readouterr()
    assert main([*[a if a != str(real) else str(other) for a in args], "--resume"]) == 2
    assert "configuration differs from run.json in real" in capsys.readouterr().err


def test_cli_generate_fresh_run_rebuilds_a_leftover_bank_cache(tmp_path, capsys):
    real = tmp_path / "real"
    assert main(["render", "--sensor", "vlp-16", "--preset", "realistic", "--frames", "3", "--seed", "3100",
                 "--out", str(real), "--no-progress", "--device", DEVICE]) == 0  # fmt: skip
    fewer = tmp_path / "fewer"  # a bank needs at least 2 real frames
    for p in real.rglob("*"):
        if p.is_file() and not p.name.startswith("000002"):
            (fewer / p.relative_to(real)).parent.mkdir(parents=True, exist_ok=True)
            (fewer / p.relative_to(real)).write_bytes(p.read_bytes())
    out = tmp_path / "gen"
    (out / "velodyne").mkdir(parents=True)
    (out / "velodyne" / "000000.bin").write_bytes(b"\0" * 16)  # refused before any bank work
    args = ["generate", "--sensor", "vlp-16", "--frames", "0", "--real", str(real), "--out", str(out),
            "--device", DEVICE, "--no-progress"]  # fmt: skip
    assert main(args) == 2
    assert not (out / "bank.npz").exists()
    (out / "velodyne" / "000000.bin").unlink()
    # A user's bank.npz in the output folder is never overwritten (nor used as the cache).
    user_bank = (out / "bank.npz").write_bytes(b"my bank") and out / "bank.npz"
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "holds a bank.npz that no SimGap run here records" in err and "never overwrites" in err
    assert user_bank.read_bytes() == b"my bank"
    user_bank.unlink()
    # A cache SimGap built here for a run that never recorded anything (killed after the bank build) is replaced.
    assert main(args) == 0
    assert ReferenceBank.load(out / "bank.npz").frame_count == 3
    for name in ("run.json", "manifest.jsonl"):
        (out / name).unlink()
    assert main([a if a != str(real) else str(fewer) for a in args]) == 0
    assert ReferenceBank.load(out / "bank.npz").frame_count == 2  # the new --real, not the leftover cache
    assert json.loads((out / "run.json").read_text())["real"] == str(fewer.resolve())


def test_cli_generate_checks_the_tail_percentile_before_any_bank_work(tmp_path, capsys):
    args = ["generate", "--sensor", "vlp-16", "--frames", "1", "--real", str(tmp_path / "none"), "--out",
            str(tmp_path / "gen"), "--tail-percentile", "150", "--no-progress"]  # fmt: skip
    assert main(args) == 2
    assert "--tail-percentile must lie in [0, 100], got 150" in capsys.readouterr().err
    assert not (tmp_path / "gen").exists()


def test_cli_generate_replicator_needs_omni_replicator_core_not_just_omni(tmp_path, monkeypatch, capsys):
    # A kernel-only Kit has an `omni` package but no Replicator: refused before any bank work.
    (tmp_path / "site" / "omni").mkdir(parents=True)
    (tmp_path / "site" / "omni" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    args = ["generate", "--sensor", "vlp-16", "--frames", "1", "--real", str(tmp_path / "none"), "--out",
            str(tmp_path / "gen"), "--backend", "replicator", "--no-progress"]  # fmt: skip
    try:
        assert main(args) == 2
    finally:
        sys.modules.pop("omni", None)
    assert "needs Isaac Sim" in capsys.readouterr().err


def test_quarantined_class_scenes_are_re_rendered_then_held_back(env, tmp_path):
    # Geometry always passes (thresholds 0, no joint test) and a quarantine whose JS is always 1 bit quarantines every
    # class with real embeddings: each frame is re-rendered (no tail class involved) until the budget is spent, then
    # held back.
    from simgap_ext.gate import SemanticQuarantine

    bank = ReferenceBank.load(env.bank_path)
    quarantine = SemanticQuarantine(1, 0.15, 1, js_fn=lambda name, real, synth: 1.0)
    cfg = load_gate_config(g_threshold=0.0, scene_threshold=0.0, joint_test=False)
    gate = FrameGate(bank, cfg, device=DEVICE, quarantine=quarantine)
    source = get_scene_source("warp", sensor="vlp-16", preset="realistic", device=DEVICE)
    out = tmp_path / "q"
    GenerationRunner(source, gate, out, tail_classes=[], max_retries=1, seed=SEED).run(2, progress=False)
    rows = read_manifest(out / "manifest.jsonl")
    assert [(r["frame_id"], r["attempt"], r["decision"]) for r in rows] == [
        (0, 0, "rerandomized"),
        (0, 1, "held_back"),
        (1, 0, "rerandomized"),
        (1, 1, "held_back"),
    ]
    for r in rows:
        assert r["quarantined"] and set(r["quarantined"]) <= set(bank.class_features())
        # JS is null where this frame's window held too few samples: the class stays quarantined meanwhile.
        assert r["path"] is None and all(r["js"][c] in (1.0, None) for c in r["quarantined"])
    assert "in quarantine (re-randomization 1 of 1)" in rows[0]["reasons"][-1]
    assert rows[1]["reasons"][-1] == "retry budget spent (1 re-randomizations)"
    assert rows[1]["seed"] == derive_seed(SEED, 0, 1) and rows[1]["focus_classes"] == rows[0]["focus_classes"]
    assert not (out / "velodyne").exists() or not list((out / "velodyne").iterdir())


def test_a_focus_plan_without_describe_still_resumes(env, tmp_path):
    class NoFocus:  # a user plan that skipped the optional describe()
        def focus_for(self, frame_id, stats):
            return []

    out = tmp_path / "nf"
    _runner(env, out, max_retries=0, focus_plan=NoFocus()).run(1, progress=False)
    summary = _runner(env, out, max_retries=0, focus_plan=NoFocus()).run(2, resume=True, progress=False)
    assert summary.resumed_at == (1, 0) and summary.frames_done == 1
    assert json.loads((out / "run.json").read_text())["focus_plan"].endswith("NoFocus")


def _tree(out: Path) -> dict[str, str]:
    """Every file of a run directory except the manifest (compared row by row: timestamps differ)."""
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "manifest.jsonl"
    }


@pytest.fixture(scope="module")
def sequential_tree(env, tmp_path_factory):
    seq = tmp_path_factory.mktemp("seq") / "run"
    _runner(env, seq).run(5, progress=False)
    return _tree(seq)


@pytest.mark.parametrize("mode", ["process", "thread", "process-deferred", "process-all"])
def test_pipelined_run_is_byte_identical_to_sequential(reference_run, sequential_tree, env, tmp_path, mode):
    """Rendering the next frame in a worker process (with the gate's frame statistics) or thread while the gate
    runs changes nothing on disk: same rows, same scans/labels/label map/run.json/gate state; the config has
    retries, so some prefetches are mispredicted. ``process-deferred``: the worker leaves every deferrable
    statistics part to the main process (what the balancer does when the worker is the slower one);
    ``process-all``: the worker computes no statistics (the balancer's last step), only renders."""
    deferred = {"process-deferred": len(DEFERRABLE), "process-all": len(DEFERRABLE) + 1}.get(mode)
    mode = "process" if deferred else mode
    if mode == "process" and not processes_available():
        pytest.skip("no worker processes on this platform")
    ref_out, ref_summary = reference_run
    out = tmp_path / "pipelined"
    runner = _runner(env, out, pipeline=mode)
    if deferred:
        runner.defer_stats = deferred
    summary = runner.run(5, progress=False)
    assert runner.pipeline_worker == mode
    if deferred:  # every frame the worker rendered for us came with those parts left to this process
        assert set(runner.deferred_stats) == {deferred} and runner.deferred_stats[deferred] > 0
    assert _strip(read_manifest(out / "manifest.jsonl")) == _strip(read_manifest(ref_out / "manifest.jsonl"))
    assert _tree(out) == sequential_tree
    assert summary.counts == ref_summary.counts
    # both paths were taken: prefetched frames used, and mispredicted ones (a retry came next) dropped
    assert runner.prefetched["used"] > 0 and runner.prefetched["dropped"] > 0
    # a process worker may be cancelled while it starts up (the main process renders that frame itself)
    slack = 1 if mode == "thread" else 2
    assert runner.prefetched["used"] + summary.counts["rerandomized"] >= summary.attempts - slack


class _DiesInWorker(WarpLidarSource):
    """The embedded source, except that its copy in a render worker process dies from frame 2 on."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.parent_pid = os.getpid()

    def render(self, *, frame_id: int = 0, **kw):
        if frame_id >= 2 and os.getpid() != self.parent_pid:
            os._exit(3)
        return super().render(frame_id=frame_id, **kw)


@pytest.mark.skipif(not processes_available(), reason="no worker processes on this platform")
def test_a_dead_render_worker_stops_the_run_cleanly_and_it_resumes(reference_run, env, tmp_path):
    ref_out, _ = reference_run
    out = tmp_path / "run"
    runner = _runner(env, out, pipeline="process")
    runner.source = _DiesInWorker("vlp-16", "realistic", device=DEVICE)
    with pytest.raises(RenderWorkerError, match=r"render worker process \(pid \d+\) exited with code 3"):
        runner.run(5, progress=False)
    rows = read_manifest(out / "manifest.jsonl")
    assert _strip(rows) == _strip(read_manifest(ref_out / "manifest.jsonl"))[: len(rows)]
    summary = _runner(env, out).run(5, resume=True, progress=False)
    assert summary.resumed_at is not None
    assert _strip(read_manifest(out / "manifest.jsonl")) == _strip(read_manifest(ref_out / "manifest.jsonl"))
    assert _hashes(out) == _hashes(ref_out)


def test_pipelined_resume_equals_uninterrupted(reference_run, env, tmp_path):
    ref_out, _ = reference_run
    out = tmp_path / "run"
    _runner(env, out, pipeline=True).run(2, progress=False)
    summary = _runner(env, out, pipeline=True).run(5, resume=True, progress=False)
    assert summary.resumed_at == (2, 0)
    assert _strip(read_manifest(out / "manifest.jsonl")) == _strip(read_manifest(ref_out / "manifest.jsonl"))
    assert _hashes(out) == _hashes(ref_out)
