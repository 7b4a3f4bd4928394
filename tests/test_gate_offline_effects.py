"""``simgap gate --effects``: the fitted sensor-effect model applied to an existing dataset before the gate (issue 10).

Real nuScenes keyframes (tests/data) stand in for the synthetic dataset; the shipped ``hdl-32-nuscenes`` profile
carries a model fitted by ``simgap tune``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.cli import main
from simgap_ext.data import iter_scans
from simgap_ext.data.manifest import read_manifest
from simgap_ext.gate import ReferenceBank, load_gate_config
from simgap_ext.pipeline.offline import effects_transform
from simgap_ext.tune import apply_sensor_effects
from simgap_ext.tune.load import load_effect_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
PROFILE = ROOT / "config" / "sensors" / "hdl-32-nuscenes.toml"


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    path = tmp_path_factory.mktemp("bank") / "bank.npz"
    bank = ReferenceBank.build(iter_scans(DATA / "nuscenes_hdl32"), config=load_gate_config(), device="cpu")
    return bank.save(path)


def _digest(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*.bin")) + sorted(out.rglob("*.label"))
    }


def test_transform_equals_apply_sensor_effects_with_derived_seeds():
    from simgap_ext.pipeline import derive_seed

    model, _, _ = load_effect_model(PROFILE)
    frames = [f for _, f in iter_scans(DATA / "nuscenes")]
    apply = effects_transform(model, seed=11)
    for i, frame in enumerate(frames):
        got = apply(frame)
        ref = apply_sensor_effects(frame, model, derive_seed(11, i, 0))
        np.testing.assert_array_equal(got["data"], ref["data"])
        assert 0 < got["data"].shape[0] < frame["data"].shape[0]  # rays dropped, never a point added


def test_gate_effects_processes_every_scan_deterministically(bank, tmp_path, capsys):
    n_in = {name: f["data"].shape[0] for name, f in iter_scans(DATA / "nuscenes")}
    outs = []
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = tmp_path / run
        args = ["gate", "--bank", str(bank), "--synthetic", str(DATA / "nuscenes"), "--out", str(out),
                "--effects", str(PROFILE), "--effects-seed", str(seed), "--device", "cpu", "--no-progress"]  # fmt: skip
        assert main(args) == 0, capsys.readouterr().err
        outs.append(out)
        rows = read_manifest(out / "manifest.jsonl")
        assert sorted(r["name"] for r in rows) == sorted(n_in)
        for r in rows:
            total = sum(r["class_points"].values())
            assert total < n_in[r["name"]]  # the gate judged the processed scan
    assert _digest(outs[0]) == _digest(outs[1])  # same seed, same export
    counts = [[r["class_points"] for r in read_manifest(o / "manifest.jsonl")] for o in outs]
    assert counts[0] == counts[1] and counts[0] != counts[2]  # the same seed gives the same drops, another seed not


def test_gate_effects_refuses_a_negative_seed_and_a_profile_without_model(bank, tmp_path, capsys):
    base = ["gate", "--bank", str(bank), "--synthetic", str(DATA / "nuscenes"), "--device", "cpu", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "a"), "--effects", str(PROFILE), "--effects-seed", "-1"]) == 2
    assert "--effects-seed must be >= 0" in capsys.readouterr().err
    plain = ROOT / "config" / "sensors" / "vlp-16.toml"
    assert main([*base, "--out", str(tmp_path / "b"), "--effects", str(plain)]) == 2
    assert capsys.readouterr().err.startswith("simgap: error:")
