"""The CLI parser is built without the heavy libraries (Warp ~1.5 s, SciPy, torch): ``simgap --help`` and argument
errors answer at once; the libraries load when a command runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("warp", "scipy", "torch", "matplotlib", "open3d", "pykdtree")


def _imported_after(code: str) -> list[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", probe]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_building_the_parser_imports_no_heavy_library():
    assert _imported_after("from simgap_ext.cli import build_parser\nbuild_parser().format_help()") == []


def test_every_subcommand_help_imports_no_heavy_library():
    code = (
        "from simgap_ext.cli import build_parser\n"
        "p = build_parser()\n"
        "sub = next(a for a in p._actions if a.__class__.__name__ == '_SubParsersAction')\n"
        "for name, sp in sub.choices.items():\n"
        "    sp.format_help()\n"
    )
    assert _imported_after(code) == []


def test_the_light_backend_names_do_not_load_warp():
    """``backends.warp`` exposes its scene constants without importing Warp; the source still loads on use."""
    assert _imported_after("from simgap_ext.backends.warp import RARE_MODES, CLASS_IDS") == []
    assert "warp" in _imported_after("from simgap_ext.backends.warp import WarpLidarSource")
