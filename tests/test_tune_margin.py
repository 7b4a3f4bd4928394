"""The search's gate term (simgap_ext.tune.margin): hand-computed margins, and the sign of the margin against the
real gate's own decisions on real nuScenes keyframes and embedded renders."""

from __future__ import annotations

import numpy as np
import pytest

from simgap_ext.gate import GateConfig
from simgap_ext.gate.decision import ClassDecision, GateDecision
from simgap_ext.tune.margin import GATE_CAP, GATE_MARGIN, gate_margin, gate_shortfall
from simgap_ext.tune.search import objective


def _decision(joint: float, accepted: bool, scene_g: float = 0.80) -> GateDecision:
    veg = ClassDecision("vegetation", 3000, 0, g=0.87)
    veg.components = {"roughness": 0.90, "density": 0.85, "plausibility": 0.91, "joint": joint, "segments": 1.0}
    ped = ClassDecision("pedestrian", 40, 2)  # no G: not judged alone, its share only
    ped.components = {"share": 0.2}
    return GateDecision(
        accepted=accepted,
        per_class={"vegetation": veg, "pedestrian": ped},
        scene_g=scene_g,
        scene_components={"range": 0.62, "roughness": 0.53, "beams": 0.90},
    )


def test_margin_by_hand():
    cfg = GateConfig()
    assert cfg.scene_threshold == 0.75 and cfg.g_threshold == 0.75 and cfg.strict_components
    # joint 0.405 -> 0.405 - 0.5 = -0.095, below scene G 0.80 - 0.75, scene roughness 0.53 - 0.5 and vegetation's
    # G 0.87 - 0.75; the pedestrian's share (no G) is no test of its own
    assert gate_margin(_decision(0.405, False), cfg) == pytest.approx(-0.095)
    # joint passing: the smallest margin is the scene roughness 0.03
    assert gate_margin(_decision(0.70, True), cfg) == pytest.approx(0.03)
    # scene G the weakest
    assert gate_margin(_decision(0.70, False, scene_g=0.74), cfg) == pytest.approx(-0.01)
    # rejected with every score passing (a class without reference): a hard failure
    assert gate_margin(_decision(0.70, False), cfg) == -1.0
    # without strict components the weighted components are no tests; the test components still are
    loose = GateConfig(strict_components=False)
    assert gate_margin(_decision(0.70, True), loose) == pytest.approx(0.05)
    assert gate_margin(_decision(0.405, False), loose) == pytest.approx(-0.095)


def test_shortfall_and_objective_by_hand():
    # mean(min(0.1, max(0, 0.05 - m))) over (-0.095, 0.2, 0.03) = (0.1 + 0 + 0.02) / 3; uncapped (0.145 + 0 + 0.02) / 3
    assert GATE_MARGIN == 0.05 and GATE_CAP == 0.1
    assert gate_shortfall([-0.095, 0.2, 0.03]) == pytest.approx(0.04)
    assert gate_shortfall([-0.095, 0.2, 0.03], cap=np.inf) == pytest.approx(0.055)
    # a hopeless frame costs the cap, as does one just past it
    assert gate_shortfall([-0.9]) == gate_shortfall([-0.05]) == pytest.approx(0.1)
    assert gate_shortfall([0.2, 0.3]) == 0.0
    assert gate_shortfall([0.0], target=0.0) == 0.0
    # 1 - mean(0.8, 0.9) + 0.02 * 2 deg + 0.1 + 0.05 + 0.055
    v = objective([0.8, 0.9], {"elevation_w1": 2.0}, 0.1, 0.05, 0.055)
    assert v == pytest.approx(1 - 0.85 + 0.04 + 0.1 + 0.05 + 0.055)
    with pytest.raises(ValueError, match="gate_shortfall"):
        objective([0.8], {"elevation_w1": 0.0}, gate_shortfall=-0.1)
    with pytest.raises(ValueError, match="at least one finite margin"):
        gate_shortfall([])
    with pytest.raises(ValueError, match="at least one finite margin"):
        gate_shortfall([np.nan])
    with pytest.raises(ValueError, match="target"):
        gate_shortfall([0.1], target=-1.0)
    with pytest.raises(ValueError, match="cap"):
        gate_shortfall([0.1], cap=0.0)


def test_margin_sign_is_the_gates_decision(keyframes, bank7):
    """On the real gate's own decisions (held-out real keyframe, the bank's keyframes, embedded renders): margin >= 0
    exactly when the gate accepts."""
    from simgap_ext.backends.warp import WarpLidarSource
    from simgap_ext.gate import FrameGate, load_gate_config

    cfg = load_gate_config()
    gate = FrameGate(bank7, cfg, device="cpu", quarantine=False)
    frames = [f for _, f in keyframes[-3:]]
    src = WarpLidarSource("hdl-32", "ideal", device="cpu", rotation_rate_hz=20.0)
    frames += [src.render(seed=s, frame_id=s) for s in (0, 1)]
    decisions = [gate.evaluate(f, update_quarantine=False) for f in frames]
    margins = [gate_margin(d, cfg) for d in decisions]
    accepted = [d.accepted for d in decisions]
    assert any(accepted) and not all(accepted), (accepted, margins)
    assert [m >= 0 for m in margins] == accepted, margins
    assert gate_shortfall(margins) > 0


def test_search_scores_the_gate_term():
    """One CMA-ES generation with the gate term on three real nuScenes keyframes and one clean render: the best
    objective is the hand sum of its parts, and its gate shortfall is what a gate built independently (same bank
    recipe) decides on the best model's post-processed frame."""
    from pathlib import Path

    from simgap_ext.backends.warp import WarpLidarSource
    from simgap_ext.gate import FrameGate, ReferenceBank
    from simgap_ext.sensors import EffectSettings, load_sensor_profile
    from simgap_ext.tune import apply_sensor_effects, fit_effect_model
    from simgap_ext.tune.real import list_nuscenes_scans, load_nuscenes_scan, nuscenes_frame
    from simgap_ext.tune.search import search_scene_terms

    dirs = list_nuscenes_scans(Path(__file__).parent / "data" / "nuscenes_hdl32")
    real = [nuscenes_frame(d) for d in dirs]
    model = fit_effect_model([load_nuscenes_scan(d) for d in dirs])
    src = WarpLidarSource(load_sensor_profile("hdl-32").at_rotation_rate(20.0), effects=EffectSettings(), device="cpu")
    clean = [src.render(seed=0, frame_id=0)]
    seed = 3
    tuned, rep = search_scene_terms(
        model, clean, real, max_range=100.0, evaluations=8, seed=seed, device="cpu", gate_term=True
    )
    best = rep["distances_best"]
    assert rep["objective_best"] == pytest.approx(
        1 - best["scene_g"] + 0.02 * best["elevation_w1"] + best["continuity_shortfall"] + best["gate_shortfall"]
    )
    cfg = GateConfig()
    bank = ReferenceBank.build(real, config=cfg, device="cpu", seed=seed)
    gate = FrameGate(bank, cfg, device="cpu", quarantine=False)
    decision = gate.evaluate(apply_sensor_effects(clean[0], tuned, seed), update_quarantine=False)
    assert best["gate_shortfall"] == pytest.approx(gate_shortfall([gate_margin(decision, cfg)]))
    assert best["gate_accepted"] == float(decision.accepted)
    # without the term the report has no gate entries and the objective is the old one
    _, rep0 = search_scene_terms(model, clean, real, max_range=100.0, evaluations=1, seed=seed, device="cpu")
    assert "gate_shortfall" not in rep0["distances_best"]


def test_search_world_holds_the_real_object_classes():
    """With the gate term the search renders only the object classes the real scans hold (a class without real
    reference would be rejected outright by the gate, whatever the sensor terms)."""
    from pathlib import Path

    from simgap_ext.backends.warp import WarpLidarSource
    from simgap_ext.sensors import load_sensor_profile
    from simgap_ext.tune.profile import _search_world
    from simgap_ext.tune.real import list_nuscenes_scans, nuscenes_frame

    profile = load_sensor_profile("hdl-32")
    real = [nuscenes_frame(d) for d in list_nuscenes_scans(Path(__file__).parent / "data" / "nuscenes_hdl32")]
    assert _search_world(profile, real, False) is None
    world = _search_world(profile, real, True)
    labels = {str(v["class"]) for f in real for v in f["info"]["idToLabels"].values()}
    assert {"truck", "pedestrian"} <= labels and not {"car", "bicycle", "cyclist"} & labels
    # truck rolls up to vehicle; nothing in the scans is a cyclist, wheelchair user or pallet
    assert dict(world.config.base_counts) == {"pedestrian": (1, 3), "vehicle": (2, 4)}
    frame = WarpLidarSource(profile, "ideal", device="cpu", randomizer=world).render(seed=5, frame_id=0)
    names = {int(k): str(v["class"]) for k, v in frame["info"]["idToLabels"].items()}
    rendered = {names[int(i)] for i in np.unique(frame["info"]["pointSemantic"])}
    assert {"vehicle", "ground"} <= rendered
    assert not {"cyclist", "wheelchair_user", "cargo_pallet"} & rendered
