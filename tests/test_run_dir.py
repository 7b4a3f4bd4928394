"""The run directory owner: one writer at a time, never touching what SimGap did not write, clean errors.

Real CLI (``simgap_ext.cli.main``), real Warp backend and gate on the CPU, a small vlp-16 bank (``conftest.py``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.cli import main
from simgap_ext.data.manifest import make_row, read_manifest, validate_manifest_row
from simgap_ext.errors import SimGapInputError
from simgap_ext.pipeline.run_dir import RunDir, RunDirBusyError, check_schedule


def _gen(bank: Path, out: Path, *extra: str, frames: int = 1) -> list[str]:
    return ["generate", "--sensor", "vlp-16", "--frames", str(frames), "--bank", str(bank), "--out", str(out),
            "--max-retries", "0", "--device", "cpu", "--no-progress", *extra]  # fmt: skip


def _tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` -> sha256 (files), "dir" or "link -> target" (without following links)."""
    out = {}
    for p in sorted(root.rglob("*")):
        key = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[key] = f"link -> {os.readlink(p)}"
        elif p.is_dir():
            out[key] = "dir"
        else:
            out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simgap: error: "), err
    return err[0]


# ---------------------------------------------------------------------------------------------- lock
def test_a_second_writer_is_refused_naming_the_pid_and_the_manifest_stays_intact(small_bank, tmp_path, capsys):
    out = tmp_path / "run"
    manifest = out / "manifest.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "simgap_ext.cli", *_gen(small_bank.path, out, frames=400)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while (not manifest.exists() or manifest.read_bytes().count(b"\n") < 1) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-2000:]
            time.sleep(0.02)
        capsys.readouterr()
        # The same run resumed (the bug: both wrote rows), and a second process taking the directory.
        assert main(_gen(small_bank.path, out, "--resume", frames=400)) == 2
        assert f"being written by another simgap run (pid {proc.pid})" in _err_line(capsys)
        assert main(_gen(small_bank.path, out, frames=400)) == 2
        _err_line(capsys)
        assert proc.poll() is None, "the first writer must still be running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    rows = read_manifest(manifest)
    assert len(rows) >= 1
    check_schedule(rows, manifest)  # no duplicated attempt or export index
    assert [(r["frame_id"], r["attempt"]) for r in rows] == [(k, 0) for k in range(len(rows))]
    assert len({r["run_id"] for r in rows}) == 1


def test_the_lock_is_exclusive_between_threads_and_reentrant_within_one(tmp_path):
    rd = RunDir(tmp_path / "d")
    errors = []
    with rd.lock(), rd.lock():  # re-entrant: the CLI locks for the bank build, the runner again for the run

        def other():
            try:
                with RunDir(tmp_path / "d").lock():
                    errors.append(None)
            except RunDirBusyError as exc:
                errors.append(str(exc))

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and errors[0] is not None and f"pid {os.getpid()}" in errors[0]
    with RunDir(tmp_path / "d").lock():  # released
        pass
    assert (tmp_path / "d" / ".simgap.lock").read_text() == f"{os.getpid()}\n"


# ---------------------------------------------------------------------------------------------- foreign files
@pytest.mark.parametrize("resume", [False, True])
def test_a_foreign_folder_is_left_byte_identical(small_bank, tmp_path, capsys, resume):
    out = tmp_path / "data"
    (out / "velodyne").mkdir(parents=True)
    (out / "labels").mkdir()
    (out / "velodyne" / "000000.bin").write_bytes(b"\1" * 32)
    (out / "labels" / "000000.label").write_bytes(b"\2" * 8)
    (out / "notes.txt").write_text("mine")
    (out / "bank.npz").write_bytes(b"a user's bank")
    (out / "manifest.jsonl").write_bytes(b'{"schema_version": 1, "mine": true}')  # no newline: looks "torn"
    before = _tree(out)
    extra = ("--resume",) if resume else ()
    assert main(_gen(small_bank.path, out, *extra)) == 2
    _err_line(capsys)
    # --real would build the bank cache OUT/bank.npz: the user's file there must survive too.
    assert main([a if a != "--bank" else "--real" for a in _gen(small_bank.real_dir, out, *extra)]) == 2
    _err_line(capsys)
    assert _tree(out) == before  # not even a lock file


def test_resume_of_a_run_whose_rows_are_not_ours_modifies_nothing(small_bank, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_gen(small_bank.path, out)) == 0
    # Someone replaces the manifest with their own (valid rows, another run id) plus a torn line.
    row = make_row(domain="synthetic", sensor="vlp-16", decision="rejected", seed=1, frame_id=0, run_id="0" * 16)
    (out / "manifest.jsonl").write_bytes((json.dumps(row) + "\n").encode() + b'{"run_id":"ffff')
    before = _tree(out)
    capsys.readouterr()
    assert main(_gen(small_bank.path, out, "--resume", frames=3)) == 2
    assert "not a row of this run" in _err_line(capsys)
    assert _tree(out) == before


def test_symlinked_manifest_and_velodyne_are_refused_and_their_targets_untouched(small_bank, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "precious.jsonl"
    target.write_bytes(b"not a manifest")
    out = tmp_path / "a"
    out.mkdir()
    (out / "manifest.jsonl").symlink_to(target)
    for extra in ((), ("--resume",)):
        assert main(_gen(small_bank.path, out, *extra)) == 2
        assert "manifest.jsonl is a symbolic link" in _err_line(capsys)
    assert target.read_bytes() == b"not a manifest"
    # A recorded run whose velodyne/ was replaced by a link to a user's scans.
    out = tmp_path / "b"
    assert main(_gen(small_bank.path, out, frames=2)) == 0
    scans = elsewhere / "scans"
    scans.mkdir()
    (scans / "000000.bin").write_bytes(b"\3" * 16)
    (scans / "000007.bin").write_bytes(b"\3" * 16)
    os.rename(out / "velodyne", tmp_path / "moved") if (out / "velodyne").exists() else None
    (out / "velodyne").symlink_to(scans, target_is_directory=True)
    before = _tree(elsewhere)
    capsys.readouterr()
    assert main(_gen(small_bank.path, out, "--resume", frames=4)) == 2
    assert "velodyne is a symbolic link" in _err_line(capsys)
    assert _tree(elsewhere) == before


def test_removed_files_are_named_in_the_plain_output(small_bank, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_gen(small_bank.path, out)) == 0
    rows = read_manifest(out / "manifest.jsonl")
    run_id = rows[0]["run_id"]
    n = sum(r["decision"] == "accepted" for r in rows)
    (out / "labels").mkdir(exist_ok=True)
    # A kill after the pending record and the label file of export n, before its row.
    RunDir(out).record_pending(run_id, n, 5)
    (out / "labels" / f"{n:06d}.label").write_bytes(b"\0" * 20)
    (out / f".gate_state.json.{run_id}.abc123.tmp").write_bytes(b"{")
    capsys.readouterr()
    assert main(_gen(small_bank.path, out, "--resume", frames=1)) == 0
    text = capsys.readouterr().out
    assert "removed 2 file(s) left by the interrupted run" in text
    assert f"labels/{n:06d}.label" in text and f".gate_state.json.{run_id}.abc123.tmp" in text


# ---------------------------------------------------------------------------------------------- manifests
def _row(**kw):
    base = dict(domain="synthetic", sensor="vlp-16", decision="rejected", seed=1, frame_id=0)
    return make_row(**{**base, **kw})


@pytest.mark.parametrize("field", ["g", "js", "scene_g"])
def test_nan_scores_are_refused(field):
    row = _row(g={"car": 0.5}, js={"car": 0.1}, scene_g=0.5)
    row[field] = {"car": math.nan} if field != "scene_g" else math.nan
    with pytest.raises(SimGapInputError, match=rf"field {field}.*finite"):
        validate_manifest_row(row)
    row[field] = {"car": math.inf} if field != "scene_g" else -math.inf
    with pytest.raises(SimGapInputError):
        validate_manifest_row(row)


@pytest.mark.parametrize("path", ["../x/000000.bin", "/etc/passwd", "velodyne/../../x.bin", "C:/x.bin"])
def test_a_generation_row_may_not_point_out_of_its_directory(path):
    row = _row(decision="accepted", path="velodyne/000000.bin", label_path="labels/000000.label", index=0)
    row["path"] = path
    with pytest.raises(SimGapInputError, match="leaves the manifest's directory"):
        validate_manifest_row(row)
    # real rows (scans elsewhere) and mixed rows (rebased onto the mix directory) may
    assert validate_manifest_row({**row, "source_manifest": "../gen/manifest.jsonl"})
    real = make_row(domain="real", sensor="vlp-16", decision="accepted", path="../real/000000.bin")
    assert real["path"] == "../real/000000.bin"


def test_report_and_mix_refuse_a_manifest_that_breaks_the_schedule(tmp_path, capsys):
    run_id = "ab" * 8
    rows = [
        _row(decision="accepted", path="velodyne/000000.bin", label_path="labels/000000.label", index=0,
             frame_id=0, run_id=run_id),
        _row(decision="accepted", path="velodyne/000001.bin", label_path="labels/000001.label", index=1,
             frame_id=1, run_id=run_id),
    ]  # fmt: skip
    for name, bad in (
        ("attempt", {**rows[1], "index": 2, "path": "velodyne/000002.bin", "frame_id": 0}),
        ("index", {**rows[1], "frame_id": 2, "index": 0, "path": "velodyne/000000.bin"}),
    ):
        d = tmp_path / name
        d.mkdir()
        (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (*rows, bad)))
        capsys.readouterr()
        assert main(["report", str(d)]) == 2
        assert (
            "breaks the schedule" in _err_line(capsys) if name == "attempt" else "recorded twice" in _err_line(capsys)
        )
        assert main(["mix", "--real", str(d / "manifest.jsonl"), "--synthetic", str(d), "--out", str(d / "m")]) == 2
        _err_line(capsys)
        assert not (d / "report.html").exists()


def test_a_manifest_line_of_deep_brackets_is_a_clean_error(tmp_path, capsys):
    d = tmp_path / "r"
    d.mkdir()
    (d / "manifest.jsonl").write_bytes(b"[" * 200_000 + b"]" * 200_000 + b"\n" + b"{}\n")
    assert main(["report", str(d)]) == 2
    _err_line(capsys)


# ---------------------------------------------------------------------------------------------- bad inputs
def test_run_json_that_is_a_list_is_a_clean_error(small_bank, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text("[1, 2]")
    (out / "manifest.jsonl").write_text("")
    before = _tree(out)
    assert main(_gen(small_bank.path, out, "--resume")) == 2
    assert "run.json: expected a JSON object, got list" in _err_line(capsys)
    assert main(["report", str(out)]) == 0  # report ignores it (the manifest is fine)
    assert _tree(out) | {"report.html": "x"} == before | {"report.html": "x"}


def _bank_with(src: Path, dst: Path, *, meta=None, arrays=None) -> Path:
    with np.load(src, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    header = json.loads(bytes(data["__meta__"]).decode())
    if meta is not None:
        header = meta(header)
    data["__meta__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    for k, fn in (arrays or {}).items():
        data[k] = fn(data[k])
    with open(dst, "wb") as fh:
        np.savez(fh, **data)
    return dst


@pytest.mark.parametrize(
    "name, meta, arrays, message",
    [
        ("meta_list", lambda h: [h], None, "__meta__ is not a JSON object"),
        ("counts_list", lambda h: {**h, "class_counts": [1, 2]}, None, "class_counts must map"),
        ("counts_str", lambda h: {**h, "class_counts": {"car": "many"}}, None, "class_counts must map"),
        ("dmax_str", lambda h: {**h, "d_max_table": "big"}, None, "d_max_table must map"),
        ("dmax_nested", lambda h: {**h, "d_max_table": {"chamfer": [1]}}, None, "d_max_table must map"),
        ("frames_float", lambda h: {**h, "frame_count": 2.5}, None, "frame_count must be an integer"),
        ("nan_feat", None, {"feat": lambda a: np.full_like(a, np.nan)}, "feat holds NaN"),
        ("str_array", None, {"ex_range": lambda a: a.astype(str)}, "ex_range is not a numeric array"),
    ],
)
def test_a_malformed_bank_is_refused_before_any_row_is_written(
    small_bank, tmp_path, capsys, name, meta, arrays, message
):
    bank = _bank_with(small_bank.path, tmp_path / f"{name}.npz", meta=meta, arrays=arrays)
    out = tmp_path / "run"
    t0 = time.monotonic()
    assert main(_gen(bank, out)) == 2
    assert message in _err_line(capsys)
    assert time.monotonic() - t0 < 60
    assert not (out / "manifest.jsonl").exists()


def test_bad_configs_and_flags_are_one_line_errors(small_bank, tmp_path, capsys):
    gate = tmp_path / "gate.toml"
    gate.write_text("gate = 5\n")
    assert main(_gen(small_bank.path, tmp_path / "g", "--gate-config", str(gate))) == 2
    assert "'gate' must be a table" in _err_line(capsys)
    sensor = tmp_path / "huge.toml"
    sensor.write_text(  # 1024 beams x 10^9 columns: 10^12 rays declared
        "channels = 1024\nvertical_angles_deg = [" + ", ".join(f"{89 - i * 0.1:.1f}" for i in range(1024))
        + "]\nhorizontal_resolution = 1000000000\nmax_range = 100.0\nmax_expected_distance = 1.0\n"
        "[presets.realistic]\n"
    )  # fmt: skip
    t0 = time.monotonic()
    assert (
        main(["render", "--sensor", str(sensor), "--frames", "1", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    )
    assert "rays per revolution" in _err_line(capsys) and time.monotonic() - t0 < 30
    # A misspelt sensor is refused before a bank is built or written.
    assert main(["reference", "build", "--real", str(small_bank.real_dir), "--out", str(tmp_path / "b.npz"),
                 "--sensor", "vlp16", "--device", "cpu"]) == 2  # fmt: skip
    assert "unknown sensor profile 'vlp16'" in _err_line(capsys)
    assert not (tmp_path / "b.npz").exists()
    out = tmp_path / "gen"
    assert main(["generate", "--sensor", "vlp16", "--frames", "1", "--real", str(small_bank.real_dir),
                 "--out", str(out), "--device", "cpu", "--no-progress"]) == 2  # fmt: skip
    assert "vlp16" in _err_line(capsys) and not (out / "bank.npz").exists()
    assert main(["budget", "--bank", str(small_bank.path), "--target-per-class", "10", "--acceptance-rate", "0"]) == 2
    assert "--acceptance-rate must be in (0, 1], got 0.0" in _err_line(capsys)
    assert main(["generate", "--frames", "x"]) == 2
    _err_line(capsys)
    assert main(["no-such-command"]) == 2
    _err_line(capsys)


def test_two_writer_sinks_on_one_directory_are_refused_even_in_one_thread(small_bank, tmp_path):
    from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
    from simgap_ext.replicator.sink import GatedExportSink

    gate = FrameGate(ReferenceBank.load(small_bank.path), load_gate_config(), device="cpu", quarantine=False)
    first = GatedExportSink(gate, tmp_path / "w")
    with pytest.raises(RunDirBusyError, match=rf"being written by another simgap run \(pid {os.getpid()}"):
        GatedExportSink(gate, tmp_path / "w")
    first.flush()  # releases the directory
    GatedExportSink(gate, tmp_path / "w").flush()
