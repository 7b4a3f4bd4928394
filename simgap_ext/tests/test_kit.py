"""SimGap inside a running Kit: extension lifecycle, settings, USD semantics, the headless batch.

Runs in Isaac Sim under ``omni.kit.test`` and in the kernel-only Kit under ``tests/kit/run_kit_tests.py`` (same
classes, see :mod:`simgap_ext.tests._base`). Checks depend only on what the running Kit offers: with Replicator the
writer must be registered, without it not.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import carb.settings
import omni.kit.app

from ._base import AsyncTestCase

__all__ = ["TestSimGapExtension", "TestSimGapHeadlessBatch"]

_TIMEOUT_S = 240.0


def _has(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing (e.g. no omni.replicator at all)
        return False


def _ext():
    import simgap_ext.extension as extension

    ext = extension.get_instance()
    assert ext is not None, "simgap_ext.extension.get_instance() is None: the extension did not start"
    return ext


async def _wait(task, app, timeout: float = _TIMEOUT_S) -> int:
    updates = 0
    deadline = time.monotonic() + timeout
    while not task.done():
        await app.next_update_async()
        updates += 1
        assert time.monotonic() < deadline, f"batch still running after {timeout}s"
    return updates


class TestSimGapExtension(AsyncTestCase):
    """The extension as Kit loaded it."""

    async def test_enabled_and_module_loaded(self):
        manager = omni.kit.app.get_app().get_extension_manager()
        self.assertTrue(manager.is_extension_enabled("simgap_ext"))
        self.assertIn("simgap_ext.extension", sys.modules)
        ext_id = manager.get_enabled_extension_id("simgap_ext")
        self.assertTrue(ext_id.startswith("simgap_ext-"), ext_id)
        import simgap_ext

        self.assertTrue(hasattr(simgap_ext, "SimGapExtension"), "simgap_ext does not expose its IExt inside Kit")
        self.assertEqual(_ext().ext_id, ext_id)

    async def test_settings_come_from_carb(self):
        s = _ext().settings
        self.assertIsNotNone(s, "settings failed to parse")
        get = carb.settings.get_settings().get
        self.assertEqual(s.batch.sensor, str(get("/exts/simgap_ext/sensor")).strip('"'))
        self.assertEqual(s.batch.frames, int(get("/exts/simgap_ext/frames")))
        self.assertEqual(s.writer.annotator, get("/exts/simgap_ext/annotator"))  # a default from extension.toml

    async def test_optional_kit_modules_decide_what_is_registered(self):
        ext = _ext()
        import simgap_ext.replicator as rep_layer

        has_rep = _has("omni.replicator.core")
        self.assertEqual(rep_layer.HAS_REPLICATOR, has_rep)
        self.assertEqual(ext.writer_registered, has_rep and ext.settings.writer.register_writer)
        self.assertEqual(ext.source_registered, has_rep)
        if _has("omni.kit.menu.utils"):
            self.assertTrue(ext._menu_items, "Window > SimGap was not registered")
        if not _has("omni.ui"):
            self.assertIsNone(ext._window)

    async def test_warp_runs_on_cpu(self):
        import numpy as np

        from simgap_ext._warp import get_warp
        from simgap_ext.metrics import nearest_neighbor_distances

        self.assertIn("cpu", [str(d) for d in get_warp().get_devices()])
        a = np.array([[0, 0, 0], [1, 0, 0]], np.float32)
        b = np.array([[0, 0, 0.5], [3, 0, 0]], np.float32)
        np.testing.assert_allclose(nearest_neighbor_distances(a, b, device="cpu"), [0.5, np.sqrt(1.25)], atol=1e-6)

    async def test_prim_labels_and_aux_level_read_a_real_usd_stage(self):
        if not _has("pxr"):
            self.skipTest("no pxr in this Kit (the PyPI kernel ships without USD)")
        from pxr import Sdf, Usd

        from simgap_ext.replicator.rtx_settings import aux_output_level
        from simgap_ext.replicator.semantics import stage_prim_labels

        stage = Usd.Stage.CreateInMemory()
        car = stage.DefinePrim("/World/car", "Xform")
        stage.DefinePrim("/World/car/wheel", "Mesh")
        car.AddAppliedSchema("SemanticsLabelsAPI:class")  # what UsdSemantics.LabelsAPI.Apply(prim, "class") adds
        car.CreateAttribute("semantics:labels:class", Sdf.ValueTypeNames.TokenArray).Set(["vehicle"])
        ped = stage.DefinePrim("/World/ped", "Xform")
        ped.AddAppliedSchema("SemanticsAPI:Semantics")  # the deprecated Semantics.SemanticsAPI
        ped.CreateAttribute("semantic:Semantics:params:semanticType", Sdf.ValueTypeNames.Token).Set("class")
        ped.CreateAttribute("semantic:Semantics:params:semanticData", Sdf.ValueTypeNames.Token).Set("pedestrian")
        resolve = stage_prim_labels(lambda: stage)
        got = [resolve(p) for p in ("/World/car/wheel", "/World/ped", "/World", "/missing")]
        self.assertEqual(got, ["vehicle", "pedestrian", None, None])

        lidar = stage.DefinePrim("/World/lidar", "OmniLidar")
        lidar.CreateAttribute("omni:sensor:Core:auxOutputType", Sdf.ValueTypeNames.Token).Set("BASIC")
        rp = stage.DefinePrim("/Render/RP_lidar", "RenderProduct")
        rp.CreateRelationship("camera").SetTargets([Sdf.Path("/World/lidar")])
        self.assertEqual(aux_output_level(stage, "/Render/RP_lidar"), "BASIC")
        self.assertIsNone(aux_output_level(stage, "/Render/none"))


class TestSimGapHeadlessBatch(AsyncTestCase):
    """A generation batch driven through the extension (the ``--/exts/simgap_ext/headless_batch=true`` one when
    Kit was started with it, else one started here into a temporary folder)."""

    async def test_headless_batch_runs_through_settings_and_exports(self):
        import dataclasses

        from simgap_ext.data import load_point_cloud
        from simgap_ext.settings import SimGapSettings

        ext = _ext()
        app = omni.kit.app.get_app()
        task = ext.batch_task
        if task is None:  # Isaac Sim's test runner: no headless batch on the command line
            out = Path(tempfile.mkdtemp(prefix="simgap_kit_test_")) / "out"
            batch = dataclasses.replace(
                ext.settings.batch, out_dir=str(out), frames=2, device="cpu", reference_frames=3, quit_on_finish=False
            )
            task = ext.start_batch(SimGapSettings(batch=batch, gate=ext.settings.gate, writer=ext.settings.writer))
        await _wait(task, app)
        self.assertIsNone(ext.batch_error, f"batch failed: {ext.batch_error!r}")
        summary = task.result()
        out = Path(ext.batch.plan.out_dir)
        rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
        self.assertEqual(summary.frames_done, summary.n_frames)
        self.assertTrue(len(rows) == summary.attempts >= summary.n_frames)
        accepted = [r for r in rows if r["decision"] == "accepted"]
        self.assertEqual(len(accepted), summary.exported)
        bins = sorted((out / "velodyne").glob("*.bin")) if (out / "velodyne").is_dir() else []
        self.assertEqual(len(bins), summary.exported)
        for row in accepted:
            pc = load_point_cloud(out / row["path"])
            self.assertTrue(pc.points.shape[0] > 0 and pc.semantic.shape == (pc.points.shape[0],))
            self.assertLessEqual(set(row["class_points"]), set(pc.id_to_labels.values()))
        self.assertEqual(json.loads((out / "run.json").read_text())["launched_by"], "kit-extension")
        summary_line, panel = ext.panel_model.snapshot()
        self.assertIs(ext.panel_model.stats, summary.stats)
        self.assertTrue(panel and f"{len(rows)} attempt" in summary_line)
        print(f"SIMGAP-KIT-INFO: batch {summary.n_frames} frame(s), {len(rows)} attempts, {summary.exported} exported")

    async def test_shutdown_cancels_a_running_batch_and_reenable_restores(self):
        import dataclasses

        import simgap_ext.extension as extension
        from simgap_ext.settings import SimGapSettings

        ext = _ext()
        out2 = Path(tempfile.mkdtemp(prefix="simgap_kit_cancel_")) / "out"
        long_batch = dataclasses.replace(ext.settings.batch, out_dir=str(out2), frames=500, quit_on_finish=False)
        task = ext.start_batch(SimGapSettings(batch=long_batch, gate=ext.settings.gate, writer=ext.settings.writer))
        app = omni.kit.app.get_app()
        manifest = out2 / "manifest.jsonl"
        deadline = time.monotonic() + _TIMEOUT_S
        while not (manifest.is_file() and manifest.read_text().count("\n") >= 1):
            await app.next_update_async()
            self.assertFalse(task.done(), f"long batch ended early: {ext.batch_error!r}")
            self.assertLess(time.monotonic(), deadline, "long batch wrote no manifest row in time")
        # Kit clears a disabled extension object's attributes: keep what is checked afterwards, drop the object.
        controller, model = ext.batch, ext.panel_model
        executor, plan = controller.executor, controller.plan
        del ext
        manager = app.get_extension_manager()
        manager.set_extension_enabled_immediate("simgap_ext", False)  # runs on_shutdown
        for _ in range(5):
            await app.next_update_async()
        self.assertFalse(manager.is_extension_enabled("simgap_ext"))
        self.assertIsNone(extension.get_instance(), "on_shutdown did not clear the instance")
        self.assertTrue(plan.cancel.is_set(), "on_shutdown did not cancel the batch")
        self.assertTrue(executor._shutdown, "on_shutdown did not stop the worker thread")
        self.assertIsNone(model.stats, "the panel model still observes the stats")
        self.assertTrue(controller.executor is None and task.done())
        self.assertEqual(type(controller.error).__name__, "BatchCancelled")
        rows = [json.loads(line) for line in manifest.read_text().splitlines()]
        self.assertTrue(1 <= len(rows) < 500, len(rows))
        exported = sum(r["decision"] == "accepted" for r in rows)
        self.assertEqual(len(list((out2 / "velodyne").glob("*.bin"))), exported, "cancelled run left orphan scans")
        # Enabled again (without a second headless batch), the extension is whole: what Kit's runner expects.
        carb.settings.get_settings().set("/exts/simgap_ext/headless_batch", False)
        manager.set_extension_enabled_immediate("simgap_ext", True)
        for _ in range(10):
            await app.next_update_async()
            if extension.get_instance() is not None:
                break
        self.assertTrue(manager.is_extension_enabled("simgap_ext"))
        import simgap_ext.extension as extension  # re-enabling may have reloaded the module

        self.assertIsNotNone(extension.get_instance())
        self.assertIsNone(extension.get_instance().batch_task)
        print(f"SIMGAP-KIT-INFO: cancelled after {len(rows)} attempts")
