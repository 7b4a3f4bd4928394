"""SimGapWriter's ``effects`` option: the fitted sensor-effect model applied to every frame before the gate.

Reference: each frame the writer gates must equal :func:`apply_sensor_effects` of the adapted RTX frame with the
seed :func:`frame_effect_seed` gives for that frame (a direct call of the core post-process, not of the writer), and
a fresh :class:`FrameGate` over those frames must give the writer's decisions and per-class point counts.
"""

# ruff: noqa: F811  (pytest fixtures imported from test_writer are redefined as arguments)
from __future__ import annotations

import importlib

import pytest
from test_tune import _flat_model
from test_writer import SENSOR, _object_payload, _rows, omni_timeline, rep, world  # noqa: F401 (fixtures)

from simgap_ext.errors import SimGapInputError
from simgap_ext.sensors import load_sensor_profile, profile_to_toml
from simgap_ext.tune import SensorEffectModel, apply_sensor_effects
from simgap_ext.tune.model import DEFAULT_RANGE_EDGES
from simgap_ext.tune.profile import tuned_profile


def _vlp16_model() -> SensorEffectModel:
    """A hand-set model on the VLP-16 beam table: 2 cm noise, ~12 % drop (logit -2), 30 % mixed pixels."""
    drop = [-2.0] * (len(DEFAULT_RANGE_EDGES) - 1)
    model = _flat_model(sigma=0.02, drop_logits=drop, profile=load_sensor_profile(SENSOR))
    return model.replace(mixed_pixel_prob=0.3)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    model = _vlp16_model()
    path = tmp_path_factory.mktemp("tuned") / "tuned.toml"
    path.write_text(profile_to_toml(tuned_profile(load_sensor_profile(SENSOR), model), header="test"))
    return path, model


def _rtx_writer(writer_mod, out, world, labels, **kw):
    from simgap_ext.replicator import adapters as A

    return writer_mod.SimGapWriter(
        out,
        world["bank_path"],
        sensor=SENSOR,
        annotator=A.RTX_SCAN_BUFFER_V50,
        isaac_version="5.0.0",
        object_labels=labels,
        device="cpu",
        **kw,
    )


def _capture(rep_mod, writer, payloads):
    """Deliver one RTX payload per trigger; returns the reference_time each frame was written with."""
    from simgap_ext.replicator import adapters as A

    omni_timeline().play()
    times = []
    for p in payloads:
        rep_mod._deliver(writer, {"annotators": {A.RTX_SCAN_BUFFER_V50: {"RP_lidar": p}}})
        times.append(writer._last_data["reference_time"])
    writer.wait_until_idle()
    return times


def _payloads(frames):
    out, labels = [], {}
    for f in frames:
        oids, lab = _object_payload(f)
        labels |= lab
        out.append({"data": f["data"], "objectId": oids, "intensity": f["intensity"], "info": {"objectId": oids}})
    return out, labels


def test_writer_applies_the_fitted_model_before_the_gate(rep, world, tuned, tmp_path):
    from simgap_ext.gate import FrameGate
    from simgap_ext.replicator import adapters as A

    rep_mod, writer_mod = rep
    path, model = tuned
    payloads, labels = _payloads(world["frames"])
    writer = _rtx_writer(writer_mod, tmp_path / "a", world, labels, effects=path, seed=5)
    assert writer.effects_preset == "tuned" and writer.metadata["effects_profile"] == str(path)
    times = _capture(rep_mod, writer, payloads)
    rows = _rows(tmp_path / "a")
    assert [r["frame_id"] for r in rows] == [0, 1, 2]
    reference = FrameGate(world["bank"], world["config"], device="cpu")
    for i, (p, row) in enumerate(zip(payloads, rows, strict=True)):
        clean = A.from_rtx_scan_buffer_v50(p, object_labels=labels, metadata={"sensor": SENSOR, "frame_id": i})
        seed = writer_mod.frame_effect_seed(5, i, 0, "RP_lidar", times[i])
        expected = apply_sensor_effects(clean, model, seed)
        n_out, n_in = expected["data"].shape[0], clean["data"].shape[0]
        assert 0 < n_out < n_in  # the model thins, never adds
        decision = reference.evaluate(expected)
        assert row["class_points"] == {n: c.n_points for n, c in decision.per_class.items()}
        assert sum(row["class_points"].values()) == n_out
        assert (row["decision"] == "accepted") == decision.accepted


def test_effects_are_deterministic_per_seed_and_change_with_it(rep, world, tuned, tmp_path):
    rep_mod, writer_mod = rep
    path, _ = tuned
    payloads, labels = _payloads(world["frames"][:2])
    counts = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        importlib.import_module("omni.timeline")._reset()  # same simulation times: the seed is the only change
        writer = _rtx_writer(writer_mod, tmp_path / name, world, labels, effects=path, seed=seed)
        _capture(rep_mod, writer, payloads)
        counts[name] = [r["class_points"] for r in _rows(tmp_path / name)]
    assert counts["a"] == counts["b"]
    assert counts["a"] != counts["c"]
    # without effects the writer gates the frames as rendered (every point)
    plain = _rtx_writer(writer_mod, tmp_path / "plain", world, labels, effects="")
    importlib.import_module("omni.timeline")._reset()
    _capture(rep_mod, plain, payloads)
    n_plain = [sum(r["class_points"].values()) for r in _rows(tmp_path / "plain")]
    assert n_plain == [p["data"].shape[0] for p in payloads]
    assert all(sum(c.values()) < n for c, n in zip(counts["a"], n_plain, strict=True))


def test_pointcloud_frames_are_world_frame_and_refused(rep, world, tuned, tmp_path):
    _, writer_mod = rep
    path, _ = tuned
    with pytest.raises(SimGapInputError, match="world-frame points"):
        writer_mod.SimGapWriter(tmp_path, world["bank_path"], sensor=SENSOR, effects=path, device="cpu")
    assert not (tmp_path / "manifest.jsonl").exists()  # refused before the sink exists


def test_effects_come_from_the_carb_setting_and_bad_profiles_fail_early(rep, world, tuned, tmp_path):
    _, writer_mod = rep
    path, _ = tuned
    carb = {"/exts/simgap_ext/effects_profile": str(path)}
    writer = _rtx_writer(writer_mod, tmp_path / "a", world, {}, get_setting=carb.get, check_settings=False)
    assert writer.effects_model is not None and writer.effects_profile == str(path)
    plain = tmp_path / "plain.toml"
    plain.write_text(profile_to_toml(load_sensor_profile(SENSOR), header="no model"))
    with pytest.raises(SimGapInputError, match="no fitted sensor-effect model"):
        _rtx_writer(writer_mod, tmp_path / "b", world, {}, effects=plain)
    with pytest.raises(SimGapInputError):
        _rtx_writer(writer_mod, tmp_path / "c", world, {}, effects=tmp_path / "missing.toml")


def test_frame_effect_seed_is_a_pure_function_of_the_frames_place():
    from simgap_ext.replicator.writer import frame_effect_seed

    base = frame_effect_seed(0, 3, 0, "RP", (10, 60))
    assert base == frame_effect_seed(0, 3, 0, "RP", 10 / 60)  # rational and float reference times agree
    others = [
        frame_effect_seed(1, 3, 0, "RP", (10, 60)),
        frame_effect_seed(0, 4, 0, "RP", (10, 60)),
        frame_effect_seed(0, 3, 1, "RP", (10, 60)),
        frame_effect_seed(0, 3, 0, "RP2", (10, 60)),
        frame_effect_seed(0, 3, 0, "RP", (11, 60)),
        frame_effect_seed(0, 3, 0, "RP", None),
        frame_effect_seed(-1, 3, 0, "RP", (10, 60)),
    ]
    assert len({base, *others}) == 1 + len(others)
    assert all(0 <= s < 2**63 for s in (base, *others))
