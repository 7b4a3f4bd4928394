"""The extension's headless batch on ``backend=replicator`` applies the fitted sensor-effect model (issue 10).

Stand-ins: ``omni.replicator.core`` / ``omni.timeline`` of tests/stubs, with the embedded Warp LiDAR playing Isaac
Sim's renderer behind an RTX scan-buffer annotator (the fixtures of test_extension_replicator_source). Reference:
for every manifest row, :func:`apply_sensor_effects` of the Warp frame of the recorded seed and focus with the
noise seed :func:`frame_effect_seed` gives the writer for that frame id and attempt (a direct call of the core
post-process), through a fresh :class:`FrameGate`, must give the batch's per-class point counts and decision.
"""

# ruff: noqa: F811  (pytest fixtures imported from test_extension_replicator_source are redefined as arguments)
from __future__ import annotations

import json

import numpy as np
import pytest
from test_extension_replicator_source import EVENT, SENSOR, stage, warp_source  # noqa: F401 (fixtures)
from test_tune import _flat_model

from simgap_ext.errors import SimGapInputError
from simgap_ext.sensors import load_sensor_profile, profile_to_toml
from simgap_ext.settings import BatchSettings, WriterSettings
from simgap_ext.tune import apply_sensor_effects
from simgap_ext.tune.model import DEFAULT_RANGE_EDGES
from simgap_ext.tune.profile import tuned_profile

RP = "/Render/RP_lidar"


@pytest.fixture
def replicator_backend(stage, warp_source):
    """Register the ``replicator`` scene source (as the extension does on startup) over an RTX annotator."""
    from simgap_ext.backends import register_scene_source, unregister_scene_source
    from simgap_ext.replicator.source import ReplicatorSceneSource

    rep, state = stage
    names: dict[int, str] = {}
    made: list[ReplicatorSceneSource] = []

    def render_rtx():  # IsaacCreateRTXLidarScanBuffer (5.0): objectId uint32 beside data and in info
        f = state["frame"]
        labels = {int(k): v["class"] for k, v in f["info"]["idToLabels"].items()}
        oid = (f["info"]["pointSemantic"].astype(np.uint32) + 100).astype(np.uint32)
        names.update({int(o): labels[int(o) - 100] for o in np.unique(oid)})
        made[-1].annotator._set_data({"data": f["data"], "objectId": oid, "info": {"objectId": oid}})

    def factory(*, sensor, preset="realistic", device=None):
        src = ReplicatorSceneSource(
            sensor=sensor,
            preset=preset,
            render_product=RP,
            randomize_event=EVENT,
            annotator="auto",
            isaac_version="5.0.0",
            adapter_kwargs={"object_labels": names},
            on_focus=lambda focus, seed: state.update(focus=list(focus)),
        )
        made.append(src)
        return src

    rep.orchestrator._STEP_HOOKS[:] = [render_rtx]
    register_scene_source("replicator", factory)
    yield rep
    unregister_scene_source("replicator")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, warp_source):
    from simgap_ext.gate import ReferenceBank

    root = tmp_path_factory.mktemp("batch_effects")
    # Hand-set VLP-16 model: 2 cm range noise, ~12 % ray drop (logit -2), 30 % mixed pixels.
    prof = load_sensor_profile(SENSOR)
    model = _flat_model(sigma=0.02, drop_logits=[-2.0] * (len(DEFAULT_RANGE_EDGES) - 1), profile=prof)
    model = model.replace(mixed_pixel_prob=0.3)
    tuned = root / "tuned.toml"
    tuned.write_text(profile_to_toml(tuned_profile(prof, model), header="test"))
    bank = ReferenceBank.build([warp_source.render(seed=900 + i) for i in range(3)], sensor=SENSOR, device="cpu")
    return {"model": model, "tuned": tuned, "bank": bank.save(root / "bank.npz")}


def _rows(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _batch(out, bank, **kw):
    return BatchSettings(
        backend="replicator",
        sensor=SENSOR,
        frames=2,
        seed=5,
        out_dir=str(out),
        bank_path=str(bank),
        device="cpu",
        max_retries=1,
        **kw,
    )


def test_replicator_batch_applies_the_writer_post_process(replicator_backend, warp_source, setup, tmp_path):
    from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
    from simgap_ext.replicator.batch import prepare_batch, run_batch
    from simgap_ext.replicator.writer import frame_effect_seed

    out = tmp_path / "run"
    writer = WriterSettings(render_product=RP, annotator="auto", effects_profile=str(setup["tuned"]))
    plan = prepare_batch(_batch(out, setup["bank"]), replicator=writer)
    assert plan.backend == "replicator"
    summary = run_batch(plan)
    rows = _rows(out)
    assert rows and len(rows) == summary.counts["attempts"]
    run_cfg = json.loads((out / "run.json").read_text())
    assert run_cfg["effects_profile"] == str(setup["tuned"]) and len(run_cfg["effects_model_sha256"]) == 64

    reference = FrameGate(ReferenceBank.load(setup["bank"]), load_gate_config(), device="cpu", quarantine=False)
    for row in rows:
        clean = warp_source.render(seed=row["seed"], focus_classes=row["focus_classes"])
        seed = frame_effect_seed(5, row["frame_id"], row["attempt"], RP)
        expected = apply_sensor_effects(clean, setup["model"], seed)
        n_out, n_in = expected["data"].shape[0], clean["data"].shape[0]
        assert 0 < n_out < n_in  # the model thins, never adds
        assert sum(row["class_points"].values()) == n_out
        decision = reference.evaluate(expected, update_quarantine=False)
        assert row["class_points"] == {n: c.n_points for n, c in decision.per_class.items()}
        if row["path"]:  # exported scans hold the post-processed points
            got = np.fromfile(out / row["path"], dtype=np.float32).reshape(-1, 4)[:, :3]
            np.testing.assert_array_equal(got, expected["data"])

    # Without effects_profile the same batch gates the frames as rendered (every point).
    plain = tmp_path / "plain"
    run_batch(
        prepare_batch(_batch(plain, setup["bank"]), replicator=WriterSettings(render_product=RP, annotator="auto"))
    )
    for row in _rows(plain):
        n = warp_source.render(seed=row["seed"], focus_classes=row["focus_classes"])["data"].shape[0]
        assert sum(row["class_points"].values()) == n


def test_replicator_batch_refuses_effects_on_world_frame_pointclouds(replicator_backend, setup, tmp_path):
    from simgap_ext.replicator.batch import prepare_batch

    writer = WriterSettings(render_product=RP, annotator="pointcloud", effects_profile=str(setup["tuned"]))
    with pytest.raises(SimGapInputError, match="batch.*needs sensor-frame points"):
        prepare_batch(_batch(tmp_path / "run", setup["bank"]), replicator=writer)
