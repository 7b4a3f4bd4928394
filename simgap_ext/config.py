"""Locating and reading SimGap's TOML configuration (``config/`` at the repository root).

``config_dir()`` is the one place that decides where configuration lives, so that the CLI, the gate and the
scene backends agree: the environment variable ``SIMGAP_CONFIG_DIR`` wins (deployments, tests), otherwise the
``config/`` folder next to the ``simgap_ext`` package (a source checkout, an editable install, or Kit loading the
repository as the extension folder), and for a regular ``pip install .`` the copy the wheel installs as data files
under ``<prefix>/share/simgap/config``.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from .errors import SimGapInputError

__all__ = ["CONFIG_ENV_VAR", "config_dir", "load_toml"]

CONFIG_ENV_VAR = "SIMGAP_CONFIG_DIR"


def config_dir() -> Path:
    """Return the configuration folder.

    Returns:
        ``$SIMGAP_CONFIG_DIR`` when set and non-empty, else ``<repo>/config`` (the folder beside the
        ``simgap_ext`` package) when it exists, else the installed ``<sys.prefix>/share/simgap/config``. The folder
        is not required to exist; readers report missing files by name.
    """
    env = os.environ.get(CONFIG_ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser().resolve()
    beside = Path(__file__).resolve().parent.parent / "config"
    if beside.is_dir():
        return beside
    installed = Path(sys.prefix) / "share" / "simgap" / "config"
    return installed if installed.is_dir() else beside


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML file into a dict.

    Args:
        path: the TOML file.

    Returns:
        The parsed document.

    Raises:
        SimGapInputError: the file is missing, unreadable or not valid TOML (the message names the file).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError as exc:
        raise SimGapInputError(f"{p}: config file not found") from exc
    except OSError as exc:
        raise SimGapInputError(f"{p}: cannot read config file ({exc.strerror or exc})") from exc
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SimGapInputError(f"{p}: invalid TOML ({exc})") from exc
    except RecursionError as exc:  # tomllib recurses into nested arrays and inline tables
        raise SimGapInputError(f"{p}: invalid TOML (nested too deeply)") from exc
