"""Extension settings (carb paths -> frozen dataclasses) and the extension manifest's consistency with them."""

from __future__ import annotations

import dataclasses

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import pytest

from simgap_ext.errors import SimGapInputError
from simgap_ext.settings import (
    SETTINGS_ROOT,
    BatchSettings,
    GateSettings,
    SimGapSettings,
    read_setting,
    read_settings,
    setting_paths,
    settings_from_mapping,
)

ROOT = Path(__file__).resolve().parents[1]


def _manifest() -> dict:
    return tomllib.loads((ROOT / "extension.toml").read_text(encoding="utf-8"))


def test_unset_settings_give_the_dataclass_defaults():
    s = read_settings(lambda path: None)
    assert s == SimGapSettings()
    assert s.batch.sensor == "vlp-16" and s.batch.frames == 10 and s.batch.headless_batch is False
    assert s.gate.overrides() == {}


def test_extension_toml_defaults_equal_the_dataclass_defaults():
    # Kit puts [settings] exts."simgap_ext".X at /exts/simgap_ext/X: reading them back must give the defaults,
    # and every field must be declared (an undeclared one cannot be discovered by users).
    declared = _manifest()["settings"]["exts"]["simgap_ext"]
    paths = setting_paths()
    assert set(declared) == set(paths)
    from_toml = read_settings({f"{SETTINGS_ROOT}/{k}": v for k, v in declared.items()}.get)
    assert from_toml == SimGapSettings()


def test_values_are_read_from_their_carb_paths_and_coerced_from_strings():
    carb = {
        "/exts/simgap_ext/headless_batch": "true",
        "/exts/simgap_ext/frames": "3",
        "/exts/simgap_ext/sensor": '"os1-64"',  # quotes kept by some shells / Kit versions
        "/exts/simgap_ext/max_retries": 0,
        "/exts/simgap_ext/bank_path": "",
        "/exts/simgap_ext/real_dir": "/data/kitti",
        "/exts/simgap_ext/g_threshold": "0.8",
        "/exts/simgap_ext/js_threshold": -1.0,
        "/exts/simgap_ext/backend": "AUTO",
        "/exts/simgap_ext/show_window": 0,
    }
    s = read_settings(carb.get)
    assert s.batch.headless_batch is True
    assert s.batch.frames == 3 and isinstance(s.batch.frames, int)
    assert s.batch.sensor == "os1-64"
    assert s.batch.max_retries == 0
    assert s.batch.bank_path is None  # empty string = unset
    assert s.batch.real_dir == "/data/kitti"
    assert s.batch.backend == "auto"
    assert s.gate.g_threshold == pytest.approx(0.8)
    assert s.gate.js_threshold is None  # negative = keep gate.toml's value
    assert s.gate.overrides() == {"g_threshold": pytest.approx(0.8)}
    assert s.ui.show_window is False


def test_settings_are_frozen():
    s = read_settings(lambda path: None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.batch.frames = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("frames", "0", r"/exts/simgap_ext/frames: must be >= 1, got 0"),
        ("frames", "2.5", r"/exts/simgap_ext/frames: expected an integer"),
        ("frames", True, r"/exts/simgap_ext/frames: expected an integer"),
        ("max_retries", -1, r"/exts/simgap_ext/max_retries: must be >= 0"),
        ("headless_batch", "maybe", r"/exts/simgap_ext/headless_batch: expected a boolean"),
        ("backend", "unreal", r"/exts/simgap_ext/backend: unknown backend 'unreal'"),
        ("g_threshold", "1.5", r"/exts/simgap_ext/g_threshold: must be in \[0, 1\]"),
        ("g_threshold", "nan", r"/exts/simgap_ext/g_threshold: must be finite"),
        ("tail_percentile", 150, r"/exts/simgap_ext/tail_percentile: must be in \(0, 100\]"),
        ("sensor", "", r"/exts/simgap_ext/sensor: must not be empty"),
        ("out_dir", ["a"], r"/exts/simgap_ext/out_dir: expected a string"),
    ],
)
def test_bad_values_name_the_setting_path(key, value, message):
    with pytest.raises(SimGapInputError, match=message):
        settings_from_mapping({key: value})


def test_settings_from_mapping_accepts_flat_names_and_full_paths_and_rejects_typos():
    s = settings_from_mapping({"frames": 2, "/exts/simgap_ext/sensor": "hdl-32"})
    assert s.batch == BatchSettings(frames=2, sensor="hdl-32")
    with pytest.raises(SimGapInputError, match=r"unknown SimGap setting 'frame'"):
        settings_from_mapping({"frame": 2})


def test_gate_overrides_feed_load_gate_config():
    from simgap_ext.gate import load_gate_config

    gs = GateSettings(g_threshold=0.6, js_threshold=0.2)
    cfg = load_gate_config(gs.gate_config, **gs.overrides())
    assert cfg.g_threshold == pytest.approx(0.6) and cfg.js_threshold == pytest.approx(0.2)


def test_manifest_declares_kit_dependencies_optional_and_the_python_module():
    m = _manifest()
    pkg = m["package"]
    assert pkg["title"] == "SimGap"
    assert pkg["readme"] == "docs/README.md" and pkg["changelog"] == "docs/CHANGELOG.md"
    for key in ("icon", "preview_image", "readme"):
        assert (ROOT / pkg[key]).is_file(), f"extension.toml [package] {key} -> missing {pkg[key]}"
    deps = m["dependencies"]
    assert {"omni.replicator.core", "omni.ui"} <= set(deps)
    # A required dependency the kernel-only Kit lacks makes it exit 55: every one must be optional.
    assert all(spec.get("optional") is True for spec in deps.values()), deps
    assert {"name": "simgap_ext"} in m["python"]["module"]
    assert m["test"], "extension.toml needs a [[test]] entry"
    py_version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert pkg["version"] == py_version


def test_read_setting_reads_one_value_like_read_settings():
    carb = {f"{SETTINGS_ROOT}/effects_profile": ' "tuned.toml" ', f"{SETTINGS_ROOT}/frames": "0"}
    assert read_setting(carb.get, "effects_profile") == "tuned.toml"  # quotes Kit keeps are stripped
    assert read_setting({}.get, "effects_profile") is None
    assert read_setting({f"{SETTINGS_ROOT}/effects_profile": ""}.get, "effects_profile") is None
    assert read_setting({}.get, "frames") == BatchSettings().frames
    # one bad unrelated value does not stop a single read, but reading it raises naming its path
    with pytest.raises(SimGapInputError, match="frames: must be >= 1"):
        read_setting(carb.get, "frames")
    with pytest.raises(SimGapInputError, match="unknown SimGap setting 'effect'"):
        read_setting(carb.get, "effect")
