"""config_dir(): the repository's config/ beside the package, else the copy a regular install puts in <prefix>/share."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from simgap_ext.config_files import config_dir

ROOT = Path(__file__).resolve().parents[1]


def test_source_checkout_uses_the_config_beside_the_package(monkeypatch) -> None:
    monkeypatch.delenv("SIMGAP_CONFIG_DIR", raising=False)
    assert config_dir() == ROOT / "config"


def test_environment_variable_wins(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SIMGAP_CONFIG_DIR", str(tmp_path))
    assert config_dir() == tmp_path.resolve()


def test_installed_package_finds_the_data_files_under_its_prefix(tmp_path: Path) -> None:
    # A copy of the package with no config/ beside it, as in site-packages after `pip install .`.
    site = tmp_path / "site"
    shutil.copytree(ROOT / "simgap_ext", site / "simgap_ext", ignore=shutil.ignore_patterns("__pycache__"))
    prefix = tmp_path / "prefix"
    shutil.copytree(ROOT / "config", prefix / "share" / "simgap" / "config")
    code = (
        f"import sys; sys.prefix = {str(prefix)!r}; sys.path.insert(0, {str(site)!r}); "
        "from simgap_ext.config_files import config_dir; from simgap_ext.sensors import load_sensor_profile; "
        "print(config_dir()); print(load_sensor_profile('vlp-16').channels)"
    )
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == [str(prefix / "share" / "simgap" / "config"), "16"]
