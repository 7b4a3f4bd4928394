"""SimGap's tests inside a real (headless, kernel-only) Kit. Run by Kit with ``--exec``; see docs/kit.md.

``omni.kit.test`` is not installable on the project's machines, so this runner plays its part: it schedules an
async test sequence on Kit's asyncio loop, prints one ``SIMGAP-KIT-TEST: PASS|FAIL <name>`` line per test and the
sentinel ``SIMGAP-KIT-TESTS: <n> passed, <m> failed``, then quits Kit with exit code 0 (all passed) or 1. The
pytest wrapper (tests/test_kit_headless.py) fails unless it sees the sentinel: an experience without a run loop
exits 0 having run nothing.

Arguments (after the script path inside ``--exec "..."``): ``--out DIR`` the batch's out_dir (also read back from
the extension's settings), ``--frames N`` the frames the command line asked for, ``--timeout S``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import traceback
from pathlib import Path

import carb
import carb.settings
import omni.kit.app

SENTINEL = "SIMGAP-KIT-TESTS"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="run_kit_tests.py")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--timeout", type=float, default=300.0)
    ns, _unknown = p.parse_known_args(sys.argv[1:])
    return ns


ARGS = _args()


def _ext():
    import simgap_ext.extension as extension

    ext = extension.get_instance()
    assert ext is not None, "simgap_ext.extension.get_instance() is None: the extension did not start"
    return ext


# ---------------------------------------------------------------------------------------------------- tests
async def test_extension_enabled_and_module_loaded():
    app = omni.kit.app.get_app()
    manager = app.get_extension_manager()
    assert manager.is_extension_enabled("simgap_ext"), "simgap_ext is not enabled"
    assert "simgap_ext" in sys.modules and "simgap_ext.extension" in sys.modules
    ext_id = manager.get_enabled_extension_id("simgap_ext")
    assert ext_id.startswith("simgap_ext-"), ext_id
    import simgap_ext

    # __init__ re-exports the IExt class only inside Kit (omni.ext importable).
    assert hasattr(simgap_ext, "SimGapExtension"), "simgap_ext does not expose SimGapExtension inside Kit"
    assert _ext().ext_id == ext_id


async def test_settings_come_from_carb():
    s = _ext().settings
    assert s is not None, "settings failed to parse"
    get = carb.settings.get_settings().get
    assert s.batch.headless_batch is True, "the test launches Kit with headless_batch=true"
    assert s.batch.sensor == "vlp-16" == str(get("/exts/simgap_ext/sensor")).strip('"')
    if ARGS.frames is not None:
        assert s.batch.frames == ARGS.frames, (s.batch.frames, ARGS.frames)
    # A default from extension.toml's [settings] reached carb too.
    assert s.writer.annotator == "pointcloud" == get("/exts/simgap_ext/annotator")


async def test_kernel_only_kit_has_no_replicator_or_ui_and_extension_copes():
    ext = _ext()
    import simgap_ext.replicator as rep_layer

    assert rep_layer.HAS_REPLICATOR is False and ext.writer_registered is False
    assert ext.source_registered is False  # no "replicator" scene source without Replicator
    from simgap_ext.replicator.batch import resolve_backend

    assert resolve_backend("auto") == "warp"
    assert ext._window is None


async def test_warp_runs_on_cpu_inside_kit():
    from simgap_ext._warp import get_warp, resolve_device

    wp = get_warp()
    assert "cpu" in [str(d) for d in wp.get_devices()]
    import numpy as np

    from simgap_ext.metrics import nearest_neighbor_distances

    a = np.array([[0, 0, 0], [1, 0, 0]], np.float32)
    b = np.array([[0, 0, 0.5], [3, 0, 0]], np.float32)
    d = nearest_neighbor_distances(a, b, device="cpu")
    assert np.allclose(d, [0.5, np.sqrt(1.25)], atol=1e-6), d
    assert resolve_device("cpu") == "cpu"


async def test_headless_batch_runs_through_settings_and_exports():
    ext = _ext()
    task = ext.batch_task
    assert task is not None, "headless_batch=true did not start a batch task"
    # Kit must keep updating while the batch runs (it is in a worker thread): count updates until done.
    app = omni.kit.app.get_app()
    updates = 0
    deadline = time.monotonic() + ARGS.timeout
    while not task.done():
        await app.next_update_async()
        updates += 1
        assert time.monotonic() < deadline, f"batch still running after {ARGS.timeout}s"
    assert ext.batch_error is None, f"batch failed: {ext.batch_error!r}"
    summary = task.result()
    assert summary is not None and summary is ext.batch_result
    out = Path(ext.settings.batch.out_dir)
    if ARGS.out is not None:
        assert out.resolve() == ARGS.out.resolve(), (out, ARGS.out)
    n = ext.settings.batch.frames
    assert summary.n_frames == n and summary.frames_done == n, summary.to_dict()
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == summary.attempts == summary.counts["attempts"] >= n
    accepted = [r for r in rows if r["decision"] == "accepted"]
    assert len(accepted) == summary.exported
    bins = sorted((out / "velodyne").glob("*.bin")) if (out / "velodyne").is_dir() else []
    assert len(bins) == summary.exported, (bins, summary.exported)
    from simgap_ext.data import load_point_cloud

    for row in accepted:
        pc = load_point_cloud(out / row["path"])
        assert pc.points.shape[0] > 0 and pc.semantic is not None, row["path"]
        assert pc.semantic.shape == (pc.points.shape[0],), row["label_path"]
        # Every class the manifest row counts is in the exported labels.
        assert set(row["class_points"]) <= set(pc.id_to_labels.values()), (row["class_points"], pc.id_to_labels)
    assert (out / "run.json").is_file()
    assert json.loads((out / "run.json").read_text())["launched_by"] == "kit-extension"
    # The panel model follows the batch's stats (what Window > SimGap would show).
    summary_line, panel = ext.panel_model.snapshot()
    assert ext.panel_model.stats is summary.stats
    assert [r.class_name for r in panel] != [] and f"{len(rows)} attempt" in summary_line
    print(f"SIMGAP-KIT-INFO: batch {n} frame(s), {len(rows)} attempts, {summary.exported} exported, {updates} updates")


async def test_shutdown_cancels_a_running_batch_and_releases_everything():
    import dataclasses

    import simgap_ext.extension as extension
    from simgap_ext.settings import SimGapSettings

    ext = _ext()
    out2 = Path(ext.settings.batch.out_dir).with_name(Path(ext.settings.batch.out_dir).name + "_cancel")
    long_batch = dataclasses.replace(ext.settings.batch, out_dir=str(out2), frames=500, quit_on_finish=False)
    task = ext.start_batch(SimGapSettings(batch=long_batch, gate=ext.settings.gate))
    app = omni.kit.app.get_app()
    manifest = out2 / "manifest.jsonl"
    deadline = time.monotonic() + ARGS.timeout
    while not (manifest.is_file() and manifest.read_text().count("\n") >= 1):
        await app.next_update_async()
        assert not task.done(), f"long batch ended early: {ext.batch_error!r}"
        assert time.monotonic() < deadline, "long batch wrote no manifest row in time"
    # Kit clears a disabled extension object's attributes: keep what is checked afterwards, drop the object.
    controller, model = ext.batch, ext.panel_model
    executor, plan = controller.executor, controller.plan
    del ext
    manager = app.get_extension_manager()
    manager.set_extension_enabled_immediate("simgap_ext", False)  # runs on_shutdown
    for _ in range(5):
        await app.next_update_async()
    assert not manager.is_extension_enabled("simgap_ext")
    assert extension.get_instance() is None, "on_shutdown did not clear the instance"
    assert plan.cancel.is_set(), "on_shutdown did not cancel the batch"
    assert executor._shutdown, "on_shutdown did not stop the worker thread"
    assert model.stats is None, "the panel model still observes the stats"
    assert controller.executor is None and task.done()
    assert type(controller.error).__name__ == "BatchCancelled", repr(controller.error)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert 1 <= len(rows) < 500, len(rows)
    exported = sum(r["decision"] == "accepted" for r in rows)
    assert len(list((out2 / "velodyne").glob("*.bin"))) == exported, "cancelled run left orphan scans"
    print(f"SIMGAP-KIT-INFO: cancelled after {len(rows)} attempts")


TESTS = [
    test_extension_enabled_and_module_loaded,
    test_settings_come_from_carb,
    test_kernel_only_kit_has_no_replicator_or_ui_and_extension_copes,
    test_warp_runs_on_cpu_inside_kit,
    test_headless_batch_runs_through_settings_and_exports,
    test_shutdown_cancels_a_running_batch_and_releases_everything,  # last: disables the extension
]


async def _main() -> None:
    app = omni.kit.app.get_app()
    passed = failed = 0
    try:
        for _ in range(2):  # let every extension finish its startup
            await app.next_update_async()
        for test in TESTS:
            try:
                await asyncio.wait_for(test(), timeout=ARGS.timeout)
            except Exception:  # noqa: BLE001 - a test failure is reported, never raised into Kit
                failed += 1
                print(f"SIMGAP-KIT-TEST: FAIL {test.__name__}\n{traceback.format_exc()}", flush=True)
            else:
                passed += 1
                print(f"SIMGAP-KIT-TEST: PASS {test.__name__}", flush=True)
    finally:
        print(f"{SENTINEL}: {passed} passed, {failed} failed", flush=True)
        app.post_quit(0 if failed == 0 and passed == len(TESTS) else 1)


asyncio.ensure_future(_main())
