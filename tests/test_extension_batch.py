"""The extension's headless batch outside Kit: settings -> prepare_batch/run_batch, and the asyncio controller
(worker thread, cancellation, resume) that the extension drives on Kit's loop."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.errors import SimGapInputError
from simgap_ext.replicator.batch import (
    BANK_CACHE_NAME,
    BatchCancelled,
    BatchController,
    prepare_batch,
    resolve_backend,
    run_batch,
)
from simgap_ext.settings import settings_from_mapping
from simgap_ext.ui.panel_model import PanelModel


def _settings(out: Path, **kw):
    values = {"sensor": "vlp-16", "frames": 2, "out_dir": str(out), "device": "cpu", "reference_frames": 2}
    values.update(kw)
    return settings_from_mapping(values)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_resolve_backend_without_replicator():
    assert resolve_backend("auto") == "warp"
    assert resolve_backend("warp") == "warp"
    with pytest.raises(SimGapInputError, match="backend=replicator needs omni.replicator.core"):
        resolve_backend("replicator")


def test_batch_from_settings_equals_the_runner_with_the_same_bank(tmp_path):
    from simgap_ext.backends import get_scene_source
    from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
    from simgap_ext.pipeline import GenerationRunner

    s = _settings(tmp_path / "kit")
    plan = prepare_batch(s.batch, s.gate)
    assert plan.self_reference and plan.bank_path == tmp_path / "kit" / BANK_CACHE_NAME
    assert plan.backend == "warp" and plan.n_frames == 2
    summary = run_batch(plan)
    assert summary.frames_done == 2 and summary.counts["attempts"] == len(_rows(tmp_path / "kit"))
    run_cfg = json.loads((tmp_path / "kit" / "run.json").read_text())
    assert run_cfg["launched_by"] == "kit-extension" and run_cfg["sensor_profile"] == "vlp-16"

    # Reference: the same bank, source and gate driven by GenerationRunner directly.
    config = load_gate_config()
    ref = GenerationRunner(
        get_scene_source("warp", sensor="vlp-16", preset="realistic", device="cpu"),
        FrameGate(ReferenceBank.load(plan.bank_path), config, device="cpu"),
        tmp_path / "ref",
        tail_classes=plan.tail_classes,
        max_retries=s.batch.max_retries,
        seed=s.batch.seed,
    ).run(2, progress=False)
    strip = ("timestamp", "run_id")  # run_id: a hash of the run configuration, which names the launcher
    kit_rows = [{k: v for k, v in r.items() if k not in strip} for r in _rows(tmp_path / "kit")]
    ref_rows = [{k: v for k, v in r.items() if k not in strip} for r in _rows(tmp_path / "ref")]
    assert kit_rows == ref_rows
    assert ref.exported == summary.exported
    for row in (r for r in kit_rows if r["path"]):
        a = np.fromfile(tmp_path / "kit" / row["path"], dtype=np.float32)
        b = np.fromfile(tmp_path / "ref" / row["path"], dtype=np.float32)
        np.testing.assert_array_equal(a, b)


def test_gate_overrides_reach_the_gate(tmp_path):
    s = _settings(tmp_path, g_threshold=0.5, js_threshold=0.3, tail_percentile=50)
    plan = prepare_batch(s.batch, s.gate)
    assert plan.runner.gate.config.g_threshold == pytest.approx(0.5)
    assert plan.runner.gate.config.js_threshold == pytest.approx(0.3)
    assert (plan.g_threshold, plan.js_threshold) == (pytest.approx(0.5), pytest.approx(0.3))
    assert not (tmp_path / "run.json").exists()  # preparing renders and records nothing of the run
    assert plan.runner.config()["tail_percentile"] == 50


def test_bad_settings_name_the_setting(tmp_path):
    s = _settings(tmp_path, bank_path=str(tmp_path / "nope.npz"))
    with pytest.raises(SimGapInputError, match=r"/exts/simgap_ext/bank_path: no such file"):
        prepare_batch(s.batch, s.gate)
    s = _settings(tmp_path, real_dir=str(tmp_path / "no_real"))
    with pytest.raises(SimGapInputError, match=r"/exts/simgap_ext/real_dir: no such directory"):
        prepare_batch(s.batch, s.gate)
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(SimGapInputError, match=r"already holds a generation run; set /exts/simgap_ext/resume=true"):
        prepare_batch(_settings(tmp_path).batch)


def test_controller_runs_a_batch_updates_the_panel_and_reports_the_exit_code(tmp_path):
    model = PanelModel()
    codes: list[int] = []
    controller = BatchController(model, on_finish=codes.append)
    s = _settings(tmp_path)

    async def main():
        task = controller.start(s.batch, s.gate, quit_code=True)
        assert controller.running
        with pytest.raises(RuntimeError, match="already running"):
            controller.start(s.batch, s.gate)
        return await task

    summary = asyncio.run(main())
    controller.shutdown()
    assert summary is controller.result and controller.error is None
    assert codes == [0]
    c = summary.counts
    assert model.status_text.startswith(f"SimGap batch done: {c['attempts']} attempts, {c['accepted']} accepted")
    assert model.stats is None  # shutdown detaches the panel
    assert controller.executor is None


def test_controller_failure_is_reported_not_raised(tmp_path):
    codes: list[int] = []
    controller = BatchController(on_finish=codes.append)
    s = _settings(tmp_path, bank_path=str(tmp_path / "missing.npz"))

    async def main():
        return await controller.start(s.batch, s.gate, quit_code=True)

    result = asyncio.run(main())
    controller.shutdown()
    assert result is None and isinstance(controller.error, SimGapInputError)
    assert codes == [1]


def test_shutdown_cancels_between_frames_and_the_run_resumes_cleanly(tmp_path):
    out = tmp_path / "run"
    s = _settings(out, frames=200)
    controller = BatchController()

    async def main():
        task = controller.start(s.batch, s.gate)
        manifest = out / "manifest.jsonl"
        for _ in range(6000):
            await asyncio.sleep(0.01)
            if manifest.is_file() and manifest.read_text().count("\n") >= 1:
                break
            assert not task.done(), controller.error
        controller.shutdown()  # blocks until the worker stopped before its next render
        return await task

    assert asyncio.run(main()) is None
    assert isinstance(controller.error, BatchCancelled)
    rows = _rows(out)
    frames_done = len({r["frame_id"] for r in rows if r["decision"] != "rerandomized"})
    assert 1 <= len(rows) < 200
    exported = sum(r["decision"] == "accepted" for r in rows)
    assert len(list((out / "velodyne").glob("*.bin"))) == exported

    # Resume to one more frame than was finished: the schedule continues, nothing is duplicated.
    resumed = dataclasses.replace(s.batch, resume=True, frames=frames_done + 1)
    summary = run_batch(prepare_batch(resumed, s.gate))
    rows2 = _rows(out)
    assert rows2[: len(rows)] == rows
    assert summary.n_frames == frames_done + 1
    keys = [(r["frame_id"], r["attempt"]) for r in rows2]
    assert len(keys) == len(set(keys))
    assert max(r["frame_id"] for r in rows2) == frames_done


def test_a_fresh_batch_rebuilds_a_leftover_bank_cache(tmp_path):
    # A prepared batch that never ran leaves OUT/bank.npz behind; new settings must not run against it.
    from simgap_ext.gate import ReferenceBank

    out = tmp_path / "kit"
    # (a bank needs at least 2 real frames: its d_max values are calibrated leaving one frame out)
    plan = prepare_batch(_settings(out, reference_frames=2).batch)
    assert ReferenceBank.load(plan.bank_path).frame_count == 2
    plan = prepare_batch(_settings(out, reference_frames=3).batch)
    assert ReferenceBank.load(plan.bank_path).frame_count == 3


def test_a_bank_of_another_sensor_is_refused_up_front(tmp_path):
    bank = prepare_batch(_settings(tmp_path / "ref", reference_frames=2).batch).bank_path  # a vlp-16 bank
    s = _settings(tmp_path / "kit", sensor="hdl-32", bank_path=str(bank))
    with pytest.raises(SimGapInputError, match=r"/exts/simgap_ext/sensor: .* holds vlp-16 scans but the sensor is"):
        prepare_batch(s.batch, s.gate)
    assert not (tmp_path / "kit" / "run.json").exists()
