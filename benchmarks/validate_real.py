"""Validate the gate on the real scans of ../shared/realdata (the numbers in docs/gate.md).

Leave-one-out real-vs-real acceptance and detection of perturbations, per dataset and gate component: the same
code as ``simgap validate`` (:mod:`simgap_ext.gate.validation`). Seeded; a few minutes per dataset on 2 cores.

    PYTHONPATH=$PWD python benchmarks/validate_real.py [--folds 6] [--html validation.html] [DATASET_DIR ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from _realdata import realdata_root  # benchmarks/ helper (run as a script)

from simgap_ext.cli import main

REALDATA = realdata_root()  # ../shared/realdata beside the checkout; SIMGAP_REALDATA overrides
DEFAULT = [
    REALDATA / "open3d_ml" / "kitti_seq01_pr",  # SemanticKITTI seq 01, HDL-64E
    REALDATA / "kitti360_osm_bki",  # KITTI-360, HDL-64E
    REALDATA / "nuscenes_lidarseg_cascol",  # nuScenes, HDL-32E
    REALDATA / "mcd_kth_day_06",  # MCD, OS1-128
]

if __name__ == "__main__":
    args = sys.argv[1:]
    dirs = [a for a in args if not a.startswith("--") and Path(a).is_dir()]
    opts = [a for a in args if a not in dirs]
    folders = dirs or [d for d in DEFAULT if d.is_dir()]
    if not folders:
        sys.exit(f"no real data: pass dataset folders or place ../shared/realdata ({REALDATA})")
    sys.exit(main(["validate", "--real", *map(str, folders), "--no-progress", *opts]))
