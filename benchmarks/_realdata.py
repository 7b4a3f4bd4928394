"""Where the benchmarks find ``../shared/realdata`` (the real scans; see its SOURCES.md for the licences)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["NUSCENES", "realdata_root"]

#: The 40 consecutive nuScenes-lidarseg HDL-32E keyframes the sensor-model benchmarks fit and evaluate on.
NUSCENES = "nuscenes_lidarseg_cascol"

_ROOT = Path(__file__).resolve().parents[1]


def realdata_root() -> Path:
    """``$SIMGAP_REALDATA``, else ``shared/realdata`` beside the checkout (or one level up: a git worktree sits one
    level deeper than the main checkout); the first candidate when none exists, so the error names it."""
    env = os.environ.get("SIMGAP_REALDATA")
    if env:
        return Path(env)
    for parent in (_ROOT.parent, _ROOT.parent.parent):
        if (parent / "shared" / "realdata").is_dir():
            return parent / "shared" / "realdata"
    return _ROOT.parent / "shared" / "realdata"
