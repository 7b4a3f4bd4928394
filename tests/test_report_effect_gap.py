"""The report's "gap without / with the sensor-effect model" section (simgap_ext/pipeline/effect_gap.py).

Real reference: the three nuScenes HDL-32E keyframes of tests/data/nuscenes_hdl32. The section's numbers are
checked against :mod:`simgap_ext.tune.stats` computed here from the frames themselves, and against properties the
model must have (it only removes returns, so no beam gains returns; it moves beam ratios towards the real scans).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.backends.warp import WarpLidarSource
from simgap_ext.cli import main
from simgap_ext.data import iter_scans, write_label_map, write_semantickitti_scan
from simgap_ext.data.manifest import ManifestWriter, make_row
from simgap_ext.pipeline.effect_gap import effect_gap
from simgap_ext.sensors import EffectSettings, ReadOnlyMapping, load_sensor_profile, profile_to_toml
from simgap_ext.tune.load import load_effect_model
from simgap_ext.tune.stats import compare, scene_stats, summarize

DATA = Path(__file__).parent / "data" / "nuscenes_hdl32"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    d = tmp_path_factory.mktemp("tuned")
    out = d / "tuned.toml"
    args = ["tune", "--real", str(DATA), "--sensor", "hdl-32", "--rotation-rate", "20", "--out", str(out)]
    assert main([*args, "--no-search", "--no-progress"]) == 0
    return out


def _plain_run(root: Path, frames: list[dict]) -> Path:
    """A run directory of accepted frames rendered with the realistic preset (not tuned)."""
    run = root / "run"
    with ManifestWriter(run / "manifest.jsonl") as w:
        for i, f in enumerate(frames):
            write_semantickitti_scan(run, i, f)
            w.append(
                make_row(
                    domain="synthetic",
                    sensor="hdl-32",
                    decision="accepted",
                    path=f"velodyne/{i:06d}.bin",
                    label_path=f"labels/{i:06d}.label",
                    index=i,
                    seed=100 + i,
                    attempt=0,
                    frame_id=i,
                    class_points={"ground": 10},
                    g={"ground": 0.9},
                )
            )
    write_label_map(run / "label_map.yaml", frames[0]["info"]["idToLabels"])
    (run / "run.json").write_text(json.dumps({"backend": "warp", "preset": "realistic", "real": str(DATA)}))
    return run


def test_a_tuned_generate_run_reports_the_gap_both_ways(tuned, tmp_path):
    run = tmp_path / "run"
    gen = ["generate", "--sensor", "hdl-32", "--preset", str(tuned), "--real", str(DATA), "--frames", "2"]
    assert main([*gen, "--out", str(run), "--device", "cpu", "--no-progress", "--max-retries", "0"]) == 0
    assert main(["report", str(run), "--effect-frames", "2"]) == 0
    page = (run / "report.html").read_text()
    assert 'id="effect-gap-table"' in page and 'id="effect_beam_ratio"' in page
    # the same numbers from tune.stats directly: the run's scenes rendered with and without the model
    rows = [json.loads(line) for line in (run / "manifest.jsonl").read_text().splitlines()]
    model, profile, preset = load_effect_model(tuned)
    el, cols = model.elevations_deg, model.columns
    real = summarize([scene_stats(f, el, cols) for _, f in iter_scans(DATA, only={"data30", "data32"})])
    sides = {}
    for name in (preset, "ideal"):
        src = WarpLidarSource(profile, name, device="cpu")
        fr = [src.render(seed=r["seed"], focus_classes=r["focus_classes"], frame_id=r["frame_id"]) for r in rows[:2]]
        sides[name] = compare(real, summarize([scene_stats(f, el, cols) for f in fr]))
    cells = re.findall(r"<tr><td>per-beam return ratio[^<]*</td><td>([\d.]+)</td><td>([\d.]+)</td>", page)
    ((without, with_),) = cells
    assert float(without) == pytest.approx(sides["ideal"]["beam_ratio_l1"], abs=1e-4)
    assert float(with_) == pytest.approx(sides[preset]["beam_ratio_l1"], abs=1e-4)
    assert float(with_) < float(without)  # the fitted drop model brings the beam returns towards the real ones


def test_a_plain_run_with_a_tuned_profile_applies_the_model(tuned, tmp_path):
    src = WarpLidarSource("hdl-32", "realistic", device="cpu", rotation_rate_hz=20.0)
    run = _plain_run(tmp_path, [src.render(seed=s, frame_id=s) for s in (3, 4)])
    rows = [json.loads(line) for line in (run / "manifest.jsonl").read_text().splitlines()]
    cfg = json.loads((run / "run.json").read_text())
    assert "did not use a tuned preset" in effect_gap(run, rows, cfg)
    gap = effect_gap(run, rows, cfg, effects=tuned, frames=2)
    assert gap.mode == "applied" and gap.frames == 2 and gap.real_frames == 2
    # the post-process only removes returns. The tuned model's motion skew moves points by up to 0.3 m, which moves
    # some near-ground returns to a neighbouring beam as seen from the origin (as in the real scans), so per beam
    # only the total cannot grow; without motion no beam gains any.
    assert gap.beam_ratio["with"].sum() <= gap.beam_ratio["without"].sum() + 1e-9
    model, _, _ = load_effect_model(tuned)
    assert model.has_motion
    still = tmp_path / "still.toml"
    prof = load_sensor_profile(tuned)
    presets = {**prof.presets, "tuned": EffectSettings(model=model.replace(motion_sweep_m=0.0, motion_sweep_sd_m=0.0))}
    still.write_text(profile_to_toml(replace(prof, presets=ReadOnlyMapping(presets), source="")))
    gap0 = effect_gap(run, rows, cfg, effects=still, frames=2)
    assert np.all(gap0.beam_ratio["with"] <= gap0.beam_ratio["without"] + 1e-12)
    assert set(gap.without) == {"range_w1", "elevation_w1", "beam_ratio_l1", "roughness"}
    assert "ground" in gap.per_class and all(np.isfinite(v).all() for v in gap.per_class.values())


def test_the_section_says_why_it_is_missing(tuned, tmp_path):
    src = WarpLidarSource("hdl-32", "realistic", device="cpu", rotation_rate_hz=20.0)
    run = _plain_run(tmp_path, [src.render(seed=1)])
    rows = [json.loads(line) for line in (run / "manifest.jsonl").read_text().splitlines()]
    plain = tmp_path / "plain.toml"
    plain.write_text((Path(__file__).parents[1] / "config" / "sensors" / "hdl-32.toml").read_text())
    assert "not a tuned sensor profile" in effect_gap(run, rows, {}, effects=plain)
    assert "used a bank" in effect_gap(run, rows, {"bank": "b.npz"}, effects=tuned)
    assert "does not exist" in effect_gap(run, rows, {}, effects=tuned, real=tmp_path / "nope")
    assert main(["report", str(run)]) == 0
    assert "Not computed: the run did not use a tuned preset" in (run / "report.html").read_text()
    assert main(["report", str(run), "--effect-frames", "-1"]) == 2
