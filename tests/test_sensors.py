"""Sensor profiles: real beam tables, presets, d_max rule, and validation errors that name file and key."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.config_files import config_dir, load_toml
from simgap_ext.errors import SimGapInputError
from simgap_ext.sensors import EFFECT_NAMES, EffectSettings, list_sensor_profiles, load_sensor_profile

REQUIRED = ("vlp-16", "hdl-32", "hdl-64", "os1-64", "os1-128")


def test_config_dir_is_repo_config_and_env_overrides(monkeypatch, tmp_path):
    monkeypatch.delenv("SIMGAP_CONFIG_DIR", raising=False)
    assert config_dir() == Path(__file__).resolve().parent.parent / "config"
    monkeypatch.setenv("SIMGAP_CONFIG_DIR", str(tmp_path))
    assert config_dir() == tmp_path.resolve()
    assert list_sensor_profiles() == []


def test_required_profiles_present():
    names = list_sensor_profiles()
    for n in REQUIRED:
        assert n in names


def test_vlp16_table_and_sampling():
    p = load_sensor_profile("vlp-16")
    assert p.channels == 16
    np.testing.assert_allclose(p.vertical_angles_deg, np.arange(15, -16, -2))
    assert p.horizontal_resolution == 1800 and p.azimuth_step_deg == pytest.approx(0.2)
    assert p.max_range == 100.0
    assert p.n_rays == 16 * 1800


def test_hdl32_table():
    p = load_sensor_profile("hdl-32")
    a = np.asarray(p.vertical_angles_deg)
    assert p.channels == 32 == a.size
    assert a[0] == pytest.approx(10.67) and a[-1] == pytest.approx(-30.67)
    np.testing.assert_allclose(-np.diff(a), 4.0 / 3.0, atol=0.011)


def test_hdl64_two_block_table():
    """HDL-64E S2 (KITTI): upper block +2 .. -8.33 deg every 1/3 deg, lower block -8.83 .. -24.33 every 1/2 deg."""
    a = np.asarray(load_sensor_profile("hdl-64").vertical_angles_deg)
    assert a.size == 64
    np.testing.assert_allclose(a[:32], np.linspace(2.0, -8.333, 32), atol=2e-3)
    np.testing.assert_allclose(a[32:], np.linspace(-8.83, -24.33, 32), atol=2e-3)


@pytest.mark.parametrize(("name", "channels", "columns"), [("os1-64", 64, 1024), ("os1-128", 128, 2048)])
def test_ouster_uniform_45deg(name, channels, columns):
    p = load_sensor_profile(name)
    a = np.asarray(p.vertical_angles_deg)
    assert p.channels == channels == a.size and p.horizontal_resolution == columns
    assert p.vertical_fov_deg == pytest.approx((-22.5, 22.5), abs=1e-3)
    np.testing.assert_allclose(-np.diff(a), 45.0 / (channels - 1), atol=1.5e-3)
    assert p.max_range == 120.0
    assert 0.0 < p.preset("realistic").range_noise_sigma <= 0.03


@pytest.mark.parametrize("name", REQUIRED)
def test_d_max_is_ring_gap_at_50m(name):
    """max_expected_distance follows the documented rule: 50 m * tan(mean vertical spacing), rounded."""
    p = load_sensor_profile(name)
    a = np.asarray(p.vertical_angles_deg)
    spacing = (a.max() - a.min()) / (a.size - 1)
    assert p.max_expected_distance == pytest.approx(50.0 * math.tan(math.radians(spacing)), rel=0.03)


@pytest.mark.parametrize("name", REQUIRED)
def test_presets_ideal_has_no_effects_realistic_has_all(name):
    p = load_sensor_profile(name)
    assert p.preset("ideal").active_effects() == []
    # Every sensor effect; the per-beam terms of the carrying vehicle (sky, self-occlusion) only where they were
    # measured (hdl-32: the nuScenes car, benchmarks/derive_realistic.py).
    vehicle = ["sky_drop", "self_occlusion"] if name == "hdl-32" else []
    assert (
        p.preset("realistic").active_effects()
        == [n for n in EFFECT_NAMES if n not in ("sky_drop", "self_occlusion")] + vehicle
    )


def test_effect_toggles():
    s = load_sensor_profile("os1-64").preset("realistic")
    off = s.without("range_noise", "mixed_pixels", "incidence_drop")
    assert off.range_noise_sigma == 0 and off.mixed_pixel_prob == 0 and not off.incidence_drop
    gone = {"range_noise", "mixed_pixels", "incidence_drop", "sky_drop", "self_occlusion"}  # os1-64: no vehicle terms
    assert set(off.active_effects()) == set(EFFECT_NAMES) - gone
    with pytest.raises(SimGapInputError, match="unknown sensor effect 'rain'"):
        s.without("rain")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"random_drop": 1.5}, "'random_drop' is a probability"),
        ({"range_noise_sigma": -0.02}, "'range_noise_sigma' must be >= 0"),
        ({"detection_range": float("nan")}, "'detection_range' must be a finite number"),
        ({"range_drop": 1}, "'range_drop' must be true or false"),
        ({"intensity_model": "lidar"}, "'intensity_model' must be one of"),
        ({"mixed_pixel_min_gap": 5.0}, "'mixed_pixel_max_gap' must be > 'mixed_pixel_min_gap'"),
    ],
)
def test_effect_settings_built_in_code_are_checked_too(kw, match):
    # the same kernels run them as TOML presets: random_drop = 1.5 used to drop every return silently
    with pytest.raises(SimGapInputError, match=match):
        EffectSettings(**kw)


def test_unknown_profile_and_preset():
    with pytest.raises(SimGapInputError, match=r"unknown sensor profile 'nope' \(known: .*vlp-16"):
        load_sensor_profile("nope")
    with pytest.raises(SimGapInputError, match="unknown preset 'foggy'"):
        load_sensor_profile("vlp-16").preset("foggy")


def _write_profile(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


_GOOD = """
name = "tiny"
channels = 3
vertical_angles_deg = [2.0, 0.0, -2.0]
horizontal_resolution = 90
max_range = 50.0
max_expected_distance = 0.5
[presets.realistic]
range_noise_sigma = 0.01
"""


def test_profile_from_path_and_env_dir(tmp_path, monkeypatch):
    p = load_sensor_profile(_write_profile(tmp_path, _GOOD))
    assert p.name == "tiny" and p.channels == 3 and p.source.endswith("s.toml")
    assert p.preset("ideal") == EffectSettings()
    (tmp_path / "sensors").mkdir()
    (tmp_path / "sensors" / "tiny.toml").write_text(_GOOD)
    monkeypatch.setenv("SIMGAP_CONFIG_DIR", str(tmp_path))
    assert list_sensor_profiles() == ["tiny"]
    assert load_sensor_profile("tiny").horizontal_resolution == 90


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("channels = 3", "channels = 4", r"'vertical_angles_deg' has 3 entries for channels = 4"),
        ("[2.0, 0.0, -2.0]", "[0.0, 2.0, -2.0]", "strictly decreasing"),
        ("max_expected_distance = 0.5", "max_expected_distance = 0.0", "'max_expected_distance' must be > 0"),
        ("max_expected_distance = 0.5", "", "missing key 'max_expected_distance'"),
        ("horizontal_resolution = 90", "horizontal_resolution = 0.5", "'horizontal_resolution' must be a positive"),
        ("range_noise_sigma = 0.01", "random_drop = 1.5", "'random_drop' is a probability"),
        ("range_noise_sigma = 0.01", "range_drop = 1", "'range_drop' must be true or false"),
        ("range_noise_sigma = 0.01", "mixed_pixel_max_gap = 0.1", "'mixed_pixel_max_gap' must be > "),
        ("range_noise_sigma = 0.01", "fog = 0.2", r"\[presets.realistic\]: unknown key\(s\) \['fog'\]"),
        ("[presets.realistic]\nrange_noise_sigma = 0.01", "", "missing \\[presets.realistic\\]"),
        ("max_range = 50.0", "max_range = 50.0\nmin_range = 60.0", "need 0 <= 'min_range' < 'max_range'"),
        ('name = "tiny"', 'name = "tiny"\nchanels = 3', r"unknown key\(s\) \['chanels'\]"),
        ("range_noise_sigma = 0.01", 'range_noise_sigma = "0.01"', "'range_noise_sigma' must be a finite number"),
        ("range_noise_sigma = 0.01", "range_noise_sigma = -0.01", "'range_noise_sigma' must be >= 0"),
        ("range_noise_sigma = 0.01", 'intensity_model = "lidar"', "'intensity_model' must be one of"),
        ("max_range = 50.0", "max_range = 50.0\nmount_height = -1.7", "'mount_height' must be > 0"),
    ],
)
def test_invalid_profiles_name_file_and_key(tmp_path, old, new, match):
    text = _GOOD.replace(old, new)
    assert text != _GOOD
    path = _write_profile(tmp_path, text)
    with pytest.raises(SimGapInputError, match=match) as exc:
        load_sensor_profile(path)
    assert "s.toml" in str(exc.value)


def test_load_toml_errors_name_the_file(tmp_path):
    with pytest.raises(SimGapInputError, match=r"missing\.toml: config file not found"):
        load_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("channels = = 3\n")
    with pytest.raises(SimGapInputError, match=r"bad\.toml: invalid TOML"):
        load_toml(bad)


def test_profiles_pickle_and_stay_immutable():
    import copy
    import pickle

    p = load_sensor_profile("os1-64")
    q = pickle.loads(pickle.dumps(p))
    assert q == p and q.preset("realistic") == p.preset("realistic")
    assert copy.deepcopy(p) == p
    with pytest.raises(TypeError):
        p.presets["foggy"] = EffectSettings()  # type: ignore[index]
    with pytest.raises(AttributeError):
        p.channels = 3  # type: ignore[misc]
