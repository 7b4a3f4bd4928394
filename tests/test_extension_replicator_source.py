"""ReplicatorSceneSource on the omni.replicator.core stand-in, with the embedded Warp LiDAR playing Isaac Sim's
renderer behind it: frames must equal the Warp frames of the same seed, and a GenerationRunner driving it from a
worker thread must step Replicator on the loop's thread only."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.errors import SimGapInputError

STUBS = Path(__file__).resolve().parent / "stubs"
SENSOR = "vlp-16"
EVENT = "simgap_randomize"


def _drop() -> None:
    for name in list(sys.modules):
        if name == "omni" or name.startswith("omni."):
            del sys.modules[name]


@pytest.fixture(scope="module")
def warp_source():
    from simgap_ext.backends import get_scene_source

    return get_scene_source("warp", sensor=SENSOR, preset="realistic", device="cpu")


@pytest.fixture
def stage(monkeypatch, warp_source):
    """The stand-in Replicator plus a 'randomizer graph' that renders the Warp scene of the global seed."""
    _drop()
    monkeypatch.syspath_prepend(str(STUBS))
    rep = importlib.import_module("omni.replicator.core")
    rep.utils._LISTENERS.clear()
    rep.orchestrator._STEP_HOOKS.clear()
    rep.orchestrator.STEP_THREADS.clear()
    state = {"focus": [], "frame": None, "annotators": []}

    def randomize():  # the graph triggered by on_custom_event: a new scene from the global seed
        state["frame"] = warp_source.render(seed=rep._GLOBAL_SEED[-1], focus_classes=state["focus"])

    def render():  # the step: the annotators of the render product get the frame's point cloud
        f = state["frame"]
        if f is None:  # nothing randomized a scene: the annotators stay empty
            return
        payload = {
            "data": f["data"],
            "info": {
                "pointSemantic": f["info"]["pointSemantic"],
                "pointInstance": f["info"]["pointInstance"],
                "idToLabels": {str(k): v for k, v in f["info"]["idToLabels"].items()},
            },
        }
        for ann in state["annotators"]:
            ann._set_data(payload)

    rep.utils._LISTENERS[EVENT] = [randomize]
    rep.orchestrator._STEP_HOOKS.append(render)
    yield rep, state
    monkeypatch.undo()  # stand-in off sys.path first, so nothing below can re-import it
    _drop()


def _source(rep, state, **kw):
    from simgap_ext.replicator.source import ReplicatorSceneSource

    def on_focus(focus, seed):
        state["focus"] = list(focus)
        state.setdefault("published", []).append((list(focus), seed))

    src = ReplicatorSceneSource(
        sensor=SENSOR, render_product="/Render/RP_lidar", randomize_event=EVENT, on_focus=on_focus, **kw
    )
    state["annotators"].append(src.annotator)
    return src


def test_sync_render_equals_the_warp_frame_of_the_same_seed(stage, warp_source):
    rep, state = stage
    src = _source(rep, state)
    assert src.annotator.get_name() == "pointcloud" and src.annotator.init_params == {"includeUnlabelled": True}
    assert src.annotator.render_products == ["/Render/RP_lidar"]
    frame = src.render(seed=5, focus_classes=["cyclist"], frame_id=3, attempt=1)
    ref = warp_source.render(seed=5, focus_classes=["cyclist"])
    np.testing.assert_array_equal(frame["data"], ref["data"])
    np.testing.assert_array_equal(frame["info"]["pointSemantic"], ref["info"]["pointSemantic"])
    assert (frame["frame_id"], frame["attempt"], frame["seed"], frame["sensor"]) == (3, 1, 5, SENSOR)
    assert frame["focus_classes"] == ["cyclist"] and frame["render_product"] == "/Render/RP_lidar"
    assert rep._GLOBAL_SEED[-1] == 5 and state["published"] == [(["cyclist"], 5)]
    assert rep.utils.SENT_EVENTS[-1] == (EVENT, {})
    src.close()
    assert src.annotator.render_products == []


def test_runner_in_a_worker_thread_steps_replicator_on_the_loop_thread(stage, warp_source, tmp_path):
    from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
    from simgap_ext.pipeline import GenerationRunner

    rep, state = stage
    config = load_gate_config()
    bank = ReferenceBank.build([warp_source.render(seed=900 + i) for i in range(2)], sensor=SENSOR, device="cpu")

    async def main():
        loop = asyncio.get_running_loop()
        src = _source(rep, state, loop=loop)
        with pytest.raises(SimGapInputError, match="render_async"):
            src.render(seed=1)  # on the loop's own thread it would deadlock
        runner = GenerationRunner(
            src, FrameGate(bank, config, device="cpu"), tmp_path, tail_classes=["cyclist"], max_retries=1, seed=7
        )
        return await loop.run_in_executor(None, lambda: runner.run(2, progress=False))

    main_thread = threading.get_ident()
    summary = asyncio.run(main())
    # asyncio.run's loop runs in this (main) thread: every Replicator step happened here, none in the worker.
    assert rep.orchestrator.STEP_THREADS and set(rep.orchestrator.STEP_THREADS) == {main_thread}
    rows = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == summary.attempts == len(rep.orchestrator.STEP_THREADS)
    # Reference: the Warp frame of each recorded seed/focus through a fresh gate gives the recorded decision.
    reference = FrameGate(bank, config, device="cpu")
    for row in rows:
        d = reference.evaluate(warp_source.render(seed=row["seed"], focus_classes=row["focus_classes"]))
        assert (row["decision"] == "accepted") == d.accepted, row


def test_missing_render_product_or_data_is_a_clear_error(stage):
    from simgap_ext.replicator.source import ReplicatorSceneSource

    rep, state = stage
    with pytest.raises(SimGapInputError, match="/exts/simgap_ext/render_product"):
        ReplicatorSceneSource(sensor=SENSOR, render_product="")
    with pytest.raises(SimGapInputError, match="no adapter for annotator 'rgb'"):
        ReplicatorSceneSource(sensor=SENSOR, render_product="/rp", annotator="rgb")
    src = ReplicatorSceneSource(sensor=SENSOR, render_product="/rp", randomize_event="nobody_listens")
    with pytest.raises(SimGapInputError, match="returned no data"):
        src.render(seed=1)


def test_get_scene_source_uses_a_registered_replicator_factory(stage):
    from simgap_ext.backends import get_scene_source, register_scene_source, unregister_scene_source
    from simgap_ext.replicator.source import ReplicatorSceneSource

    rep, state = stage
    register_scene_source(
        "replicator", lambda **kw: ReplicatorSceneSource(render_product="/rp", randomize_event=EVENT, **kw)
    )
    try:
        src = get_scene_source("replicator", sensor=SENSOR, preset="ideal", device="cpu")
        assert isinstance(src, ReplicatorSceneSource) and src.sensor_name == SENSOR and src.preset == "ideal"
    finally:
        unregister_scene_source("replicator")


def test_auto_backend_picks_replicator_only_when_a_render_product_is_configured(stage):
    from simgap_ext.replicator.batch import resolve_backend

    assert resolve_backend("auto", render_product="/Render/RP_lidar") == "replicator"
    assert resolve_backend("auto") == "warp"
    assert resolve_backend("replicator") == "replicator"


def test_rtx_scan_buffer_source_plays_the_timeline_and_keeps_it_playing(stage, warp_source):
    """RTX annotators deliver nothing on a paused timeline (the stand-in's Annotator.get_data returns empty
    buffers then): stepping with pause_timeline=True would leave every frame after the first empty."""
    from simgap_ext.replicator import adapters as A
    from simgap_ext.replicator.source import ReplicatorSceneSource

    rep, state = stage
    timeline = importlib.import_module("omni.timeline").get_timeline_interface()
    timeline.stop()
    names = {}

    def render_rtx():  # IsaacCreateRTXLidarScanBuffer (5.0): objectId uint32 beside data and in info
        f = state["frame"]
        labels = {int(k): v["class"] for k, v in f["info"]["idToLabels"].items()}
        oid = (f["info"]["pointSemantic"].astype(np.uint32) + 100).astype(np.uint32)
        names.update({int(o): labels[int(o) - 100] for o in np.unique(oid)})
        payload = {"data": f["data"], "objectId": oid, "info": {"objectId": oid, "numReturnsPerScan": oid.size}}
        src.annotator._set_data(payload)

    rep.orchestrator._STEP_HOOKS[:] = [render_rtx]
    src = ReplicatorSceneSource(
        sensor=SENSOR,
        render_product="/Render/RP_lidar",
        randomize_event=EVENT,
        annotator="auto",
        isaac_version="5.0.0",
        adapter_kwargs={"object_labels": names},
    )
    assert src.annotator_name == A.RTX_SCAN_BUFFER_V50
    assert src.annotator.init_params == {"outputObjectId": True, "outputIntensity": True}
    for seed in (3, 4):
        frame = src.render(seed=seed)
        ref = warp_source.render(seed=seed)
        np.testing.assert_array_equal(frame["data"], ref["data"])
        ref_names = {int(k): v["class"] for k, v in ref["info"]["idToLabels"].items()}
        got_names = {int(k): v["class"] for k, v in frame["info"]["idToLabels"].items()}
        assert [got_names[int(s)] for s in frame["info"]["pointSemantic"]] == [
            ref_names[int(s)] for s in ref["info"]["pointSemantic"]
        ]
    assert timeline.is_playing() and rep.orchestrator.LAST_STEP_PLAYING[-2:] == [True, True]
    src.close()


def test_pointcloud_classes_come_from_semantic_segmentation_when_the_payload_has_none(stage, warp_source):
    """Replicator's pointcloud info holds numeric pointSemantic only; the source also attaches
    semantic_segmentation and names the ids with its idToLabels (read for every frame)."""
    rep, state = stage

    def render_split():
        f = state["frame"]
        info = {"pointSemantic": f["info"]["pointSemantic"], "pointInstance": f["info"]["pointInstance"]}
        src.annotator._set_data({"data": f["data"], "info": info})
        labels = {str(k): v for k, v in f["info"]["idToLabels"].items()}
        src._extra._set_data({"data": np.zeros((2, 2), np.uint32), "info": {"idToLabels": labels}})

    rep.orchestrator._STEP_HOOKS[:] = [render_split]
    src = _source(rep, state)
    assert src._extra.get_name() == "semantic_segmentation" and src._extra.render_products == ["/Render/RP_lidar"]
    frame = src.render(seed=8)
    ref = warp_source.render(seed=8)
    names = {int(k): v["class"] for k, v in frame["info"]["idToLabels"].items()}
    ref_names = {int(k): v["class"] for k, v in ref["info"]["idToLabels"].items()}
    assert [names[int(s)] for s in frame["info"]["pointSemantic"]] == [
        ref_names[int(s)] for s in ref["info"]["pointSemantic"]
    ]
    assert not frame["adapter_issues"]
