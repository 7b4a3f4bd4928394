"""SimGapWriter with the omni.replicator.core stand-in (tests/stubs), against a real bank and a real FrameGate.

Reference: the same frames gated directly by a fresh :class:`FrameGate` over the same bank must give the same
decisions, and the exported scans must hold exactly the accepted frames' points.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

STUBS = Path(__file__).resolve().parent / "stubs"
SENSOR = "vlp-16"


def _drop_modules() -> None:
    for name in list(sys.modules):
        if name == "omni" or name.startswith("omni.") or name == "simgap_ext.replicator.writer":
            del sys.modules[name]


@pytest.fixture
def rep(monkeypatch):
    """The Replicator stand-in on sys.path and a writer module imported against it (removed afterwards)."""
    _drop_modules()
    monkeypatch.syspath_prepend(str(STUBS))
    rep_mod = importlib.import_module("omni.replicator.core")
    rep_mod.WriterRegistry._writers.clear()
    rep_mod.utils.SENT_EVENTS.clear()
    writer_mod = importlib.import_module("simgap_ext.replicator.writer")
    yield rep_mod, writer_mod
    # Take the stand-in off sys.path BEFORE re-importing, or the "omni-less" writer would import it again and
    # leave omni.replicator.core in sys.modules for the tests that run after this one.
    monkeypatch.undo()
    _drop_modules()
    importlib.import_module("simgap_ext.replicator.writer")  # back to the omni-less module for other tests


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A real reference bank from the embedded backend and a few synthetic frames to write."""
    from simgap_ext.backends import get_scene_source
    from simgap_ext.gate import ReferenceBank, load_gate_config

    source = get_scene_source("warp", sensor=SENSOR, preset="realistic", device="cpu")
    real = [source.render(seed=1000 + i, frame_id=i) for i in range(3)]
    synth = [source.render(seed=2000 + i, frame_id=i) for i in range(3)]
    config = load_gate_config()
    bank = ReferenceBank.build(real, sensor=SENSOR, config=config, device="cpu")
    bank_path = bank.save(tmp_path_factory.mktemp("bank") / "bank.npz")
    return {"bank_path": Path(bank_path), "bank": bank, "config": config, "frames": synth}


def _payload(frame: dict) -> dict:
    """What Replicator's pointcloud annotator delivers for a frame (no idToLabels: it comes from elsewhere)."""
    n = frame["data"].shape[0]
    return {
        "data": frame["data"].copy(),
        "info": {
            "pointSemantic": frame["info"]["pointSemantic"].astype(np.int32),
            "pointInstance": frame["info"]["pointInstance"].astype(np.int32),
            "pointNormals": np.zeros(4 * n, np.float32),
            "pointRgb": np.zeros(4 * n, np.uint8),
        },
    }


def _labels(frames: list[dict]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for f in frames:
        out.update({int(k): dict(v) for k, v in f["info"]["idToLabels"].items()})
    return out


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_module_imports_without_replicator_and_defines_no_writer():
    _drop_modules()
    mod = importlib.import_module("simgap_ext.replicator.writer")
    assert mod.HAS_REPLICATOR is False
    assert not hasattr(mod, "SimGapWriter")
    assert mod.register_writer() is False
    mod.unregister_writer()  # a no-op, not an error


def test_registry_round_trip_and_annotator_request(rep, world, tmp_path):
    rep_mod, writer_mod = rep
    assert writer_mod.HAS_REPLICATOR and writer_mod.register_writer()
    assert "SimGapWriter" in rep_mod.WriterRegistry.get_writers()
    writer = rep_mod.WriterRegistry.get(
        "SimGapWriter",
        init_params={"output_dir": str(tmp_path), "bank_path": str(world["bank_path"]), "sensor": SENSOR},
    )
    assert isinstance(writer, rep_mod.Writer)
    assert writer.data_structure == "annotator"
    (ann,) = writer.annotators
    assert ann.get_name() == "pointcloud" and ann.init_params == {"includeUnlabelled": True}
    writer_mod.unregister_writer()
    assert "SimGapWriter" not in rep_mod.WriterRegistry.get_writers()


def test_unsupported_annotator_and_missing_paths_raise(rep, world, tmp_path):
    _, writer_mod = rep
    with pytest.raises(ValueError, match="unsupported annotator 'rgb'"):
        writer_mod.SimGapWriter(tmp_path, world["bank_path"], annotator="rgb")
    with pytest.raises(ValueError, match="needs output_dir and bank_path"):
        writer_mod.SimGapWriter(output_dir=tmp_path)


@pytest.mark.parametrize("layout", ["annotator", "legacy", "renderProduct"])
def test_writer_decisions_and_exports_match_a_direct_gate(rep, world, tmp_path, layout):
    from simgap_ext.data import load_point_cloud
    from simgap_ext.gate import FrameGate

    rep_mod, writer_mod = rep
    frames = world["frames"]
    writer = writer_mod.SimGapWriter(
        tmp_path, world["bank_path"], sensor=SENSOR, id_to_labels=_labels(frames), device="cpu"
    )
    writer.attach(["/Render/RP_lidar"])
    for f in frames:
        payload = _payload(f)
        if layout == "annotator":
            data = {"annotators": {"pointcloud": {"RP_lidar": payload}}}
        elif layout == "legacy":
            data = {"pointcloud": payload}
        else:
            data = {"renderProducts": {"RP_lidar": {"pointcloud": payload, "camera": "/World/lidar"}}}
        rep_mod._deliver(writer, data)
    writer.on_final_frame()
    assert writer.num_written == len(frames)

    reference = FrameGate(world["bank"], world["config"], device="cpu")
    expected = [reference.evaluate(dict(f, sensor=SENSOR)).accepted for f in frames]
    rows = _rows(tmp_path)
    assert [r["decision"] == "accepted" for r in rows] == expected
    assert [r["frame_id"] for r in rows] == list(range(len(frames)))
    accepted = [f for f, ok in zip(frames, expected, strict=True) if ok]
    assert writer.sink.counts["accepted"] == len(accepted)
    bins = sorted((tmp_path / "velodyne").glob("*.bin")) if accepted else []
    assert len(bins) == len(accepted)
    for f, row in zip(accepted, [r for r in rows if r["decision"] == "accepted"], strict=True):
        pc = load_point_cloud(tmp_path / row["path"])
        np.testing.assert_array_equal(pc.points, f["data"])
        np.testing.assert_array_equal(pc.semantic, f["info"]["pointSemantic"])
    # The shared stats model saw every attempt.
    assert writer.stats.frame_counts["attempts"] == len(frames)


def test_unusable_frames_are_recorded_rejected_and_not_exported(rep, world, tmp_path):
    rep_mod, writer_mod = rep
    writer = writer_mod.SimGapWriter(tmp_path, world["bank_path"], sensor=SENSOR, device="cpu")
    n = 50
    unlabelled = {
        "data": np.ones((n, 3), np.float32),
        "info": {"pointSemantic": np.zeros(n), "pointInstance": np.zeros(n)},
    }
    empty = {"data": np.zeros((0, 3), np.float32), "info": {"pointSemantic": [], "pointInstance": []}}
    rep_mod._deliver(writer, {"annotators": {"pointcloud": {"RP": unlabelled}}})
    rep_mod._deliver(writer, {"annotators": {"pointcloud": {"RP": empty}}})
    rep_mod._deliver(writer, {"annotators": {"rgb": {"RP": None}}})  # no pointcloud at all: skipped, no row
    rows = _rows(tmp_path)
    assert [r["decision"] for r in rows] == ["rejected", "rejected"]
    assert rows[0]["reasons"] == ["every point is unlabeled: nothing to score"]
    assert rows[1]["reasons"] == ["empty frame: 0 point(s) < 1"]
    assert not (tmp_path / "velodyne").exists()
    assert writer.sink.counts == {"received": 2, "accepted": 0, "rejected": 2, "invalid": 2, "rerandomized": 0}


def test_malformed_payloads_are_recorded_not_raised_into_replicator(rep, world, tmp_path):
    rep_mod, writer_mod = rep
    frames = world["frames"]
    writer = writer_mod.SimGapWriter(
        tmp_path, world["bank_path"], sensor=SENSOR, id_to_labels=_labels(frames), device="cpu"
    )
    n = 20
    bad_shape = {
        "data": np.ones((n, 2), np.float32),
        "info": {"pointSemantic": np.zeros(n), "pointInstance": np.zeros(n)},
    }
    short_labels = {
        "data": np.ones((n, 3), np.float32),
        "info": {"pointSemantic": np.zeros(n - 1), "pointInstance": np.zeros(n)},
    }
    rep_mod._deliver(writer, {"annotators": {"pointcloud": {"RP": bad_shape}}})
    rep_mod._deliver(writer, {"annotators": {"pointcloud": {"RP": short_labels}}})
    rep_mod._deliver(writer, {"annotators": {"pointcloud": {"RP": _payload(frames[0])}}})
    rows = _rows(tmp_path)
    assert [r["decision"] for r in rows[:2]] == ["rejected", "rejected"]
    for row in rows[:2]:
        assert len(row["reasons"]) == 1 and row["reasons"][0].startswith("malformed payload: ")
    assert "shape (20, 2)" in rows[0]["reasons"][0]
    assert "pointSemantic" in rows[1]["reasons"][0]
    assert [r["frame_id"] for r in rows] == [0, 1, 2]  # the capture went on
    assert writer.sink.counts["invalid"] == 2 and writer.sink.counts["received"] == 3


def test_failed_tail_frames_fire_the_rerandomize_event_until_the_budget_is_spent(rep, world, tmp_path):
    rep_mod, writer_mod = rep
    frames = world["frames"]
    tails = ["pedestrian", "vehicle", "cyclist", "wheelchair_user", "cargo_pallet"]
    writer = writer_mod.SimGapWriter(
        tmp_path,
        world["bank_path"],
        sensor=SENSOR,
        id_to_labels=_labels(frames),
        device="cpu",
        tail_classes=tails,
        max_retries=2,
        rerandomize_event="simgap_rerandomize",
        g_threshold=1.0,  # nothing is perfect: every object class fails
        scene_threshold=1.0,
    )
    for i in range(4):  # scene 0: attempts 0, 1, 2 (budget 2 re-randomizations); scene 1: attempt 0
        rep_mod._deliver(writer, {"pointcloud": _payload(frames[i % len(frames)])})
    rows = _rows(tmp_path)
    assert [(r["frame_id"], r["attempt"], r["decision"]) for r in rows] == [
        (0, 0, "rerandomized"),
        (0, 1, "rerandomized"),
        (0, 2, "rejected"),
        (1, 0, "rerandomized"),
    ]
    assert rep_mod.utils.SENT_EVENTS == [("simgap_rerandomize", {})] * 3
    assert "re-randomization 1 of 2" in rows[0]["reasons"][-1]


def test_without_an_event_no_row_claims_a_rerandomization(rep, world, tmp_path):
    rep_mod, writer_mod = rep
    frames = world["frames"]
    writer = writer_mod.SimGapWriter(
        tmp_path,
        world["bank_path"],
        sensor=SENSOR,
        id_to_labels=_labels(frames),
        device="cpu",
        tail_classes=["pedestrian", "vehicle", "cyclist", "wheelchair_user", "cargo_pallet"],
        g_threshold=1.0,
        scene_threshold=1.0,
    )
    rep_mod._deliver(writer, {"pointcloud": _payload(frames[0])})
    rep_mod._deliver(writer, {"pointcloud": _payload(frames[1])})
    assert [(r["frame_id"], r["attempt"], r["decision"]) for r in _rows(tmp_path)] == [
        (0, 0, "rejected"),
        (1, 0, "rejected"),
    ]
    assert rep_mod.utils.SENT_EVENTS == []


def test_final_frame_flushes_and_detach_resets_counters(rep, world, tmp_path):
    rep_mod, writer_mod = rep
    frames = world["frames"]
    writer = writer_mod.SimGapWriter(tmp_path, world["bank_path"], sensor=SENSOR, id_to_labels=_labels(frames))
    writer.attach(["/Render/RP_lidar"])
    (ann,) = writer.annotators
    assert ann.render_products == ["/Render/RP_lidar"]
    rep_mod._deliver(writer, {"pointcloud": _payload(frames[0])})
    assert writer.sink._manifest is not None  # open while capturing
    writer.on_final_frame()
    assert writer.sink._manifest is None
    writer.detach()
    assert ann.render_products == []
    assert writer.sink.counts["received"] == 0 and writer._frame_id == 0 and writer._attempt == 0
    # Writing again continues the same export (next index, manifest appended).
    rep_mod._deliver(writer, {"pointcloud": _payload(frames[1])})
    assert len(_rows(tmp_path)) == 2


def _object_payload(frame: dict) -> tuple[np.ndarray, dict[int, str]]:
    """RTX-style per-point object ids for a frame (objects keep their instance ids; background prims get ids
    1000 + semantic id, as every prim has one) and the object id -> class map a stage lookup would give."""
    sem = frame["info"]["pointSemantic"].astype(np.int64)
    inst = frame["info"]["pointInstance"].astype(np.int64)
    names = {int(k): v["class"] for k, v in frame["info"]["idToLabels"].items()}
    oids = np.where(inst > 0, inst, 1000 + sem).astype(np.uint32)
    labels = {int(o): names[int(s)] for o, s in zip(oids.tolist(), sem.tolist(), strict=True)}
    return oids, labels


def test_rtx_v50_annotator_with_two_render_products(rep, world, tmp_path):
    from simgap_ext.gate import FrameGate
    from simgap_ext.replicator import adapters as A

    rep_mod, writer_mod = rep
    f0, f1 = world["frames"][:2]
    (o0, l0), (o1, l1) = _object_payload(f0), _object_payload(f1)
    # Object ids are per-stage, so one resolver serves every render product.
    labels = l0 | {k + 5000: v for k, v in l1.items()}
    o1 = np.where(o1 > 0, o1 + 5000, 0).astype(np.uint32)
    writer = writer_mod.SimGapWriter(
        tmp_path, world["bank_path"], sensor=SENSOR, annotator=A.RTX_POINT_CLOUD_V50, object_labels=labels, device="cpu"
    )
    assert [a.get_name() for a in writer.annotators] == [A.RTX_POINT_CLOUD_V50]
    p0 = {"data": f0["data"], "info": {"objectId": o0, "intensity": f0["intensity"]}}
    p1 = {"data": f1["data"], "info": {"objectId": o1, "intensity": f1["intensity"]}}
    rep_mod._deliver(writer, {"annotators": {A.RTX_POINT_CLOUD_V50: {"RP_front": p0, "RP_back": p1}}})
    rows = _rows(tmp_path)
    assert [r["name"] for r in rows] == ["RP_back", "RP_front"]  # sorted render products, same scene frame 0
    assert [r["frame_id"] for r in rows] == [0, 0]
    reference = FrameGate(world["bank"], world["config"], device="cpu")
    for row, p in zip(rows, (p1, p0), strict=True):
        expected = reference.evaluate(A.from_rtx_point_cloud_v50(p, object_labels=labels, metadata={"sensor": SENSOR}))
        assert (row["decision"] == "accepted") == expected.accepted
        assert row["class_points"] == {n: c.n_points for n, c in expected.per_class.items()}


def test_gmo_v60_raw_buffer_goes_through_the_parser_and_stable_id_map(rep, world, tmp_path):
    from simgap_ext.replicator import adapters as A

    rep_mod, writer_mod = rep
    frame = world["frames"][1]
    oids, labels = _object_payload(frame)
    stable = {int(o) + (1 << 90): f"/World/obj_{int(o)}" for o in np.unique(oids)}
    prim_labels = {f"/World/obj_{o}": c for o, c in labels.items()}
    n = frame["data"].shape[0]
    ids128 = np.zeros((n, 16), np.uint8)
    for i, o in enumerate(oids.tolist()):
        ids128[i] = np.frombuffer((o + (1 << 90)).to_bytes(16, "little"), np.uint8)
    parsed = {
        "numElements": n,
        "elementsCoordsType": 0,
        "x": frame["data"][:, 0],
        "y": frame["data"][:, 1],
        "z": frame["data"][:, 2],
        "scalar": frame["intensity"],
        "objId": ids128,
    }
    raw = b"GMO-raw-buffer"
    writer = writer_mod.SimGapWriter(
        tmp_path,
        world["bank_path"],
        sensor=SENSOR,
        annotator=A.GENERIC_MODEL_OUTPUT_V60,
        prim_labels=prim_labels,
        gmo_parser=lambda buf: parsed if buf == raw else None,
        device="cpu",
    )
    assert [a.get_name() for a in writer.annotators] == [A.GENERIC_MODEL_OUTPUT_V60, A.STABLE_ID_MAP_V60]
    rep_mod._deliver(writer, {A.GENERIC_MODEL_OUTPUT_V60: {"data": raw}, A.STABLE_ID_MAP_V60: {"data": stable}})
    (row,) = _rows(tmp_path)
    names = {int(k): v["class"] for k, v in frame["info"]["idToLabels"].items()}
    expected_points: dict[str, int] = {}
    for s in frame["info"]["pointSemantic"].tolist():
        expected_points[names[s]] = expected_points.get(names[s], 0) + 1
    assert row["class_points"] == expected_points


def test_sink_re_renders_quarantined_scenes_with_the_runners_rule(world, tmp_path):
    # No Replicator needed: the push-path sink alone. A quarantine whose JS is always 1 bit quarantines every class
    # with real embeddings; no tail class is involved, yet the scene is sent back until the budget is spent.
    from simgap_ext.gate import FrameGate, SemanticQuarantine, load_gate_config
    from simgap_ext.replicator.sink import GatedExportSink

    quarantine = SemanticQuarantine(1, 0.15, 1, js_fn=lambda name, real, synth: 1.0)
    config = load_gate_config(g_threshold=0.0, scene_threshold=0.0)
    gate = FrameGate(world["bank"], config, device="cpu", quarantine=quarantine)
    sent = []
    sink = GatedExportSink(gate, tmp_path, max_retries=1, on_rerandomize=lambda f, d: sent.append(f["attempt"]))
    frame = world["frames"][0]
    for attempt in (0, 1):
        sink.submit({**frame, "frame_id": 0, "attempt": attempt})
    rows = _rows(tmp_path)
    assert [(r["attempt"], r["decision"]) for r in rows] == [(0, "rerandomized"), (1, "held_back")]
    assert sent == [0] and sink.counts["rerandomized"] == 1 and sink.next_index == 0
    assert "in quarantine (re-randomization 1 of 1)" in rows[0]["reasons"][-1]
    assert rows[1]["reasons"][-1] == "retry budget spent (1 re-randomizations)"


def test_the_panel_follows_a_writer_that_replicator_creates(rep, world, tmp_path):
    # Replicator constructs writers itself; the extension listens with on_writer_created and points the panel's
    # model at the writer's stats (PanelModel.follow_writer). Here: the same wiring without Kit.
    from simgap_ext.ui.panel_model import PanelModel, panel_rows

    rep_mod, writer_mod = rep
    model = PanelModel()
    forget = writer_mod.on_writer_created(model.follow_writer)
    broken = writer_mod.on_writer_created(lambda w: 1 / 0)  # a failing listener must not stop the writer
    try:
        frames = world["frames"]
        writer = writer_mod.SimGapWriter(
            tmp_path / "a",
            world["bank_path"],
            sensor=SENSOR,
            id_to_labels=_labels(frames),
            device="cpu",
            tail_classes=["cyclist"],
            g_threshold=0.6,
        )
        assert model.stats is writer.stats and model.tail_classes == ["cyclist"] and model.g_threshold == 0.6
        assert str(tmp_path / "a") in model.status_text
        model.take_dirty()
        rep_mod._deliver(writer, {"pointcloud": _payload(frames[0])})
        assert model.take_dirty()
        summary, rows = model.snapshot()
        assert summary.startswith("1 attempt:") and rows
        assert rows == panel_rows(writer.stats.rows(), g_threshold=0.6, js_threshold=0.15, tail_classes=["cyclist"])
    finally:
        forget()
        broken()
    other = writer_mod.SimGapWriter(tmp_path / "b", world["bank_path"], sensor=SENSOR, device="cpu")
    assert model.stats is writer.stats and other.stats is not writer.stats  # listener removed


def test_sink_continuing_a_session_removes_unrecorded_scans(world, tmp_path):
    from simgap_ext.errors import ExportError, SimGapInputError
    from simgap_ext.gate import FrameGate, load_gate_config
    from simgap_ext.replicator.sink import GatedExportSink

    gate = FrameGate(
        world["bank"], load_gate_config(g_threshold=0.0, scene_threshold=0.0), device="cpu", quarantine=False
    )
    frame = dict(world["frames"][0], sensor=SENSOR)
    first = GatedExportSink(gate, tmp_path)
    assert first.submit(frame).accepted
    first.flush()
    kept = sorted(p.name for p in tmp_path.rglob("000000.*"))
    assert kept == ["000000.bin", "000000.label"]
    # a session that died between writing scan 1 and its manifest row
    (tmp_path / "velodyne" / "000001.bin").write_bytes(b"\0" * 16)
    (tmp_path / "labels" / "000001.label").write_bytes(b"\0" * 4)
    second = GatedExportSink(gate, tmp_path)
    assert second.next_index == 1
    assert not (tmp_path / "velodyne" / "000001.bin").exists() and not (tmp_path / "labels" / "000001.label").exists()
    assert sorted(p.name for p in tmp_path.rglob("000000.*")) == kept
    assert second.submit(frame).accepted and (tmp_path / "velodyne" / "000001.bin").stat().st_size > 16
    # scans without a manifest are someone else's data: refused, never "cleaned up"
    foreign = tmp_path / "foreign"
    (foreign / "velodyne").mkdir(parents=True)
    (foreign / "velodyne" / "000000.bin").write_bytes(b"\0" * 16)
    with pytest.raises(SimGapInputError, match="holds SemanticKITTI scans but no manifest.jsonl"):
        GatedExportSink(gate, foreign)
    assert sorted(p.name for p in foreign.rglob("*")) == ["000000.bin", "velodyne"]
    # nor may it append to a `simgap generate` run (its schedule and --resume would break)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with pytest.raises(SimGapInputError, match="holds a simgap generate run"):
        GatedExportSink(gate, run)
    # our own first scan is never written before the manifest exists: a session that dies in its first export
    # leaves a manifest, so the next one continues (cleaning the orphan) instead of refusing
    ours = tmp_path / "ours"
    sink = GatedExportSink(gate, ours)
    (ours / "velodyne").write_text("in the way")  # the first export fails half-way
    with pytest.raises(ExportError):
        sink.submit(frame)
    assert (ours / "manifest.jsonl").is_file() and (ours / "manifest.jsonl").read_bytes() == b""
    (ours / "velodyne").unlink()
    assert GatedExportSink(gate, ours).next_index == 0
