"""The extension inside a REAL headless Kit (isaacsim-kernel from PyPI): tests/kit/run_kit_tests.py via ``--exec``.

Needs the Kit venv that ``scripts/kit_env.sh`` creates (``.venv-kit``, Python 3.12, ~1 min to build); skipped with
the reason when it is absent. The runner prints a sentinel line; a Kit that exits 0 without it ran nothing (an
experience without a run loop does exactly that), so its absence fails this test whatever the exit code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KIT_VENV = Path(os.environ.get("SIMGAP_KIT_VENV", ROOT / ".venv-kit"))
LAUNCHER = KIT_VENV / "bin" / "isaacsim"
EXPERIENCE = ROOT / "tests" / "kit" / "simgap_test.kit"
RUNNER = ROOT / "tests" / "kit" / "run_kit_tests.py"
SENTINEL = re.compile(r"^SIMGAP-KIT-TESTS: (\d+) passed, (\d+) failed, (\d+) skipped$", re.MULTILINE)
EXPECTED_TESTS = 7  # the AsyncTestCase methods of simgap_ext/tests/test_kit.py
FRAMES = 2

pytestmark = pytest.mark.kit


def _site_packages() -> Path:
    found = sorted((KIT_VENV / "lib").glob("python3.*/site-packages/isaacsim/exts"))
    if not found:
        pytest.fail(f"{KIT_VENV} has no isaacsim/exts folder: re-run scripts/kit_env.sh")
    return found[0]


@pytest.mark.skipif(
    not LAUNCHER.is_file(),
    reason=f"Kit kernel venv not found ({LAUNCHER}); create it with scripts/kit_env.sh (~1 min, needs Python 3.12)",
)
def test_extension_runs_its_headless_batch_in_real_kit(tmp_path):
    # Kit finds an extension by its folder name: link the repository (whatever its checkout directory is called)
    # as <tmp>/exts/simgap_ext and pass <tmp>/exts as an extension folder.
    exts = tmp_path / "exts"
    exts.mkdir()
    (exts / "simgap_ext").symlink_to(ROOT, target_is_directory=True)
    scratch = tmp_path / "home"
    scratch.mkdir()
    out = tmp_path / "out"
    env = dict(os.environ)
    env.update(
        OMNI_KIT_ACCEPT_EULA="YES",
        OMNI_KIT_ALLOW_ROOT="1",
        HOME=str(scratch),  # Kit writes logs, caches and user config under HOME
        WARP_CACHE_PATH=str(tmp_path / "warp-cache"),
    )
    # The Kit venv must import THIS checkout's simgap_ext, not an installed copy.
    env.pop("PYTHONPATH", None)
    cmd = [
        str(LAUNCHER),
        str(EXPERIENCE),
        "--ext-folder",
        str(_site_packages()),
        "--ext-folder",
        str(exts),
        "--enable",
        "simgap_ext",
        "--/exts/simgap_ext/headless_batch=true",
        "--/exts/simgap_ext/sensor=vlp-16",
        f"--/exts/simgap_ext/frames={FRAMES}",
        f"--/exts/simgap_ext/out_dir={out}",
        "--/exts/simgap_ext/device=cpu",
        "--/exts/simgap_ext/reference_frames=3",
        "--/exts/simgap_ext/show_window=false",
        "--exec",
        f"{RUNNER} --timeout 240",
        "--no-window",
    ]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=540)
    output = proc.stdout + proc.stderr
    tail = output[-6000:]
    match = SENTINEL.search(output)
    assert match is not None, f"Kit exited {proc.returncode} without the runner's sentinel (ran nothing?):\n{tail}"
    passed, failed, skipped = (int(g) for g in match.groups())
    failures = re.findall(r"^SIMGAP-KIT-TEST: FAIL .*$", output, re.MULTILINE)
    assert failed == 0, f"{failed} Kit test(s) failed: {failures}\n{tail}"
    assert passed + skipped == EXPECTED_TESTS, f"expected {EXPECTED_TESTS} Kit tests, {passed} ran\n{tail}"
    # Only the USD test may skip (the PyPI kernel has no pxr); everything else must run.
    assert skipped == len(re.findall(r"^SIMGAP-KIT-TEST: SKIP .*no pxr", output, re.MULTILINE)) <= 1, tail
    assert proc.returncode == 0, f"Kit exit code {proc.returncode}\n{tail}"
    # The batch's export is on disk, outside Kit: check it with this interpreter too.
    assert (out / "manifest.jsonl").is_file() and (out / "run.json").is_file()
    print(re.findall(r"^SIMGAP-KIT-INFO: .*$", output, re.MULTILINE), file=sys.stderr)
