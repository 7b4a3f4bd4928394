"""Gate pieces that need no scene backend: config, decisions, tail classes, budget, quarantine state machine."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from simgap_ext.errors import SimGapInputError
from simgap_ext.gate import (
    ClassDecision,
    GateConfig,
    GateDecision,
    SemanticQuarantine,
    compute_synthetic_generation_budget,
    identify_tail_classes,
    load_gate_config,
)

# --------------------------------------------------------------------------------------------------- config


def test_shipped_gate_toml_matches_defaults_and_is_valid():
    shipped = load_gate_config()
    assert shipped.g_threshold == 0.75
    assert shipped.js_threshold == 0.15
    assert set(shipped.object_weights) == {
        "chamfer",
        "count",
        "roughness",
        "density",
        "share",
        "height",
        "plausibility",
        "foreign",
    }
    assert shipped == GateConfig(), "config/gate.toml and the built-in defaults differ"
    json.dumps(shipped.to_dict())


def test_gate_config_file_and_overrides(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('[gate]\ng_threshold = 0.6\nunknown_class = "ignore"\nobject_weights = { chamfer = 2.0 }\n')
    cfg = load_gate_config(path, js_threshold=0.2)
    assert cfg.g_threshold == 0.6 and cfg.unknown_class == "ignore" and cfg.js_threshold == 0.2
    # Missing weights default to 0 so that a user can switch a component off by omission.
    assert cfg.object_weights == {
        "chamfer": 2.0,
        "count": 0.0,
        "roughness": 0.0,
        "density": 0.0,
        "share": 0.0,
        "height": 0.0,
        "plausibility": 0.0,
        "foreign": 0.0,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.g_threshold = 0.1  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.object_weights["chamfer"] = 5.0  # type: ignore[index]
    assert hash(cfg) == hash(load_gate_config(path, js_threshold=0.2)) and cfg == load_gate_config(
        path, js_threshold=0.2
    )
    assert cfg.replace(g_threshold=0.7).g_threshold == 0.7


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("g_threshold = 1.5", "g_threshold must lie in"),
        ('unknown_class = "drop"', "unknown_class must be one of"),
        ("bogus = 1", "unknown keys \\['bogus'\\]"),
        ("object_weights = { chamfer = -1.0 }", "object_weights must be non-negative"),
        ("object_weights = { colour = 1.0 }", "unknown keys \\['colour'\\]"),
        ("js_hysteresis = 0.5", "js_hysteresis must lie"),
        ("g_threshold = [", "not valid TOML"),
        ('min_points = "8"', "min_points must be an integer, got '8'"),
        ("k_exemplars = 2.5", "k_exemplars must be an integer"),
        ('g_threshold = "0.8"', "g_threshold must be a finite number"),
        ("duplicate_tolerance = nan", "duplicate_tolerance must be a finite number"),
        ("calibration_margin = inf", "calibration_margin must be a finite number"),
        ("require_same_sensor = 1", "require_same_sensor must be true or false"),
        ('background_classes = "ground"', "background_classes must be a list of class names"),
        ("object_weights = { chamfer = true }", "object_weights.chamfer must be a finite number"),
        ("semantic_permutations = -1", "semantic_permutations must be >= 0"),
    ],
)
def test_gate_config_rejects_bad_values(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(SimGapInputError, match=match):
        load_gate_config(path)


def test_gate_config_normalises_numbers():
    cfg = GateConfig(g_threshold=1, min_points=8.0, semantic_permutations=0, background_classes=["ground"])
    assert type(cfg.g_threshold) is float and type(cfg.min_points) is int and cfg.min_points == 8
    assert cfg.background_classes == ("ground",) and cfg.semantic_permutations == 0


def test_gate_config_missing_named_file(tmp_path):
    with pytest.raises(SimGapInputError, match="missing.toml: file not found"):
        load_gate_config(tmp_path / "missing.toml")


def test_env_config_dir_without_gate_toml_gives_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMGAP_CONFIG_DIR", str(tmp_path))
    assert load_gate_config() == GateConfig()


# --------------------------------------------------------------------------------------------------- decisions


def test_gate_decision_round_trips_through_json():
    cls = ClassDecision("pedestrian", 120, 2, g=0.8, js=float("nan"), passed=True, components={"chamfer": 0.9})
    dec = GateDecision(
        accepted=False,
        per_class={"pedestrian": cls},
        scene_g=0.9,
        failing_classes=["pedestrian"],
        reasons=["class pedestrian quarantined (JS=0.23 > 0.15)"],
        quarantined_classes=["pedestrian"],
        status="quarantined",
        frame_id=3,
        seed=7,
    )
    row = json.loads(json.dumps(dec.to_dict(), allow_nan=False))
    assert row["decision"] == "quarantined"
    assert row["per_class"]["pedestrian"]["js"] is None  # NaN is not JSON
    back = GateDecision.from_dict(row)
    assert back.status == "quarantined" and back.per_class["pedestrian"].g == 0.8 and back.frame_id == 3
    assert GateDecision(accepted=True).decision == "accepted"
    with pytest.raises(ValueError, match="contradicts"):
        GateDecision(accepted=True, status="rejected")


# --------------------------------------------------------------------------------------------------- tail + budget


def test_tail_classes_follow_numpy_percentile():
    counts = {"vehicle": 900, "pedestrian": 300, "cyclist": 40, "wheelchair_user": 6, "cargo_pallet": 12}
    # Hand check: sorted counts 6, 12, 40, 300, 900; 20th percentile (linear) = 6 + 0.8 * (12 - 6) = 10.8.
    assert identify_tail_classes(counts) == ["wheelchair_user"]
    # 40th percentile = 12 + 0.6 * (40 - 12) = 28.8 -> rarest first.
    assert identify_tail_classes(counts, 40) == ["wheelchair_user", "cargo_pallet"]
    assert identify_tail_classes(counts, 100) == sorted(counts, key=counts.get)
    # A count exactly at the cutoff is a tail class ("at or below").
    assert identify_tail_classes({"a": 1, "b": 1, "c": 5}, 0) == ["a", "b"]


@pytest.mark.parametrize(
    ("counts", "pct", "match"),
    [({}, 20, "non-empty"), ({"a": -1}, 20, "class_counts\\['a'\\]"), ({"a": 1}, 120, "percentile")],
)
def test_tail_classes_validation(counts, pct, match):
    with pytest.raises(SimGapInputError, match=match):
        identify_tail_classes(counts, pct)


def test_budget_deficit_hours_and_frames():
    counts = {"vehicle": 900, "pedestrian": 300, "cyclist": 40, "wheelchair_user": 6, "cargo_pallet": 12}
    rows = compute_synthetic_generation_budget(
        counts, 100, percentile=40, frames_per_hour=50, instances_per_frame={"cargo_pallet": 2.0}, acceptance_rate=0.5
    )
    assert list(rows) == ["wheelchair_user", "cargo_pallet"]  # largest deficit first
    w, c = rows["wheelchair_user"], rows["cargo_pallet"]
    assert (w.deficit, w.rate_per_hour, w.frames_needed) == (94, 25.0, 188)
    assert w.estimated_hours == pytest.approx(94 / 25)
    assert (c.deficit, c.rate_per_hour, c.frames_needed) == (88, 50.0, 88)
    assert c.estimated_hours == pytest.approx(88 / 50)
    all_rows = compute_synthetic_generation_budget(counts, 100, include_all=True)
    assert all_rows["vehicle"].deficit == 0 and all_rows["vehicle"].estimated_hours == 0.0
    assert not all_rows["vehicle"].is_tail and all_rows["wheelchair_user"].is_tail
    zero = compute_synthetic_generation_budget(counts, 100, acceptance_rate=0.0)
    assert math.isinf(zero["wheelchair_user"].estimated_hours) and zero["wheelchair_user"].frames_needed is None
    json.dumps({k: r.to_dict() for k, r in zero.items()}, allow_nan=False)


def test_budget_validation():
    with pytest.raises(SimGapInputError, match="target_per_class"):
        compute_synthetic_generation_budget({"a": 1}, -5)
    with pytest.raises(SimGapInputError, match="frames_per_hour"):
        compute_synthetic_generation_budget({"a": 1}, 5, frames_per_hour=0)
    with pytest.raises(SimGapInputError, match="not in class_counts"):
        compute_synthetic_generation_budget({"a": 1}, 5, tail_classes=["zebra"])


# --------------------------------------------------------------------------------------------------- quarantine


def _mean_gap_js(name, real, synth):
    """A transparent stand-in divergence: |mean difference| of the first feature, clipped to [0, 1]."""
    return float(min(1.0, abs(real[:, 0].mean() - synth[:, 0].mean())))


def _feats(value, k=4):
    return np.full((k, 3), value, dtype=np.float32)


def test_quarantine_triggers_holds_and_recovers_with_hysteresis():
    q = SemanticQuarantine(window=3, threshold=0.15, min_samples=8, hysteresis=0.05, js_fn=_mean_gap_js)
    q.set_reference({"pedestrian": _feats(0.0, 10)})
    events = []
    unsubscribe = q.subscribe(events.append)
    s = q.update({"pedestrian": _feats(0.5)})
    assert s["pedestrian"].js is None and not s["pedestrian"].quarantined  # 4 < min_samples
    s = q.update({"pedestrian": _feats(0.5)})
    assert s["pedestrian"].js == pytest.approx(0.5) and q.is_quarantined("pedestrian")
    assert q.quarantined_classes() == ["pedestrian"] and q.state("pedestrian").times_quarantined == 1
    q.record_held_back(["pedestrian"])
    # Window of 3 frames: [0.5, 0.5, 0.0] -> mean 1/3; [0.5, 0.0, 0.0] -> 1/6 (above threshold - hysteresis).
    assert q.update({"pedestrian": _feats(0.0)})["pedestrian"].quarantined
    s = q.update({"pedestrian": _feats(0.0)})["pedestrian"]
    assert s.js == pytest.approx(1 / 6) and s.quarantined
    s = q.update({"pedestrian": _feats(0.0)})["pedestrian"]
    assert s.js == pytest.approx(0.0) and not s.quarantined
    assert s.held_back == 1 and s.n_frames == 3 and s.n_samples == 12
    assert len(events) == 5
    unsubscribe()
    q.update({"pedestrian": _feats(0.0)})
    assert len(events) == 5
    json.dumps(q.to_dict())


def test_quarantine_ignores_classes_without_reference_and_validates():
    q = SemanticQuarantine(window=2, threshold=0.1, min_samples=1, js_fn=_mean_gap_js, reference={"a": _feats(0)})
    s = q.update({"b": _feats(1.0), "a": np.zeros((0, 3), np.float32)})
    assert not s["b"].quarantined and s["b"].js is None and not s["b"].has_reference
    assert s["a"].js is None and s["a"].n_frames == 1
    with pytest.raises(SimGapInputError, match="window must be >= 1"):
        SemanticQuarantine(window=0)
    with pytest.raises(SimGapInputError, match="class 'x'"):
        q.set_reference({"x": np.zeros((0, 3))})
