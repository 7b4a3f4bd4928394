"""The hidden-class check on *every* real scan: real-vs-real acceptance and the relabel / removal cases, all folds.

``validate_real.py --folds 10`` holds out 10 evenly spaced scans per dataset and runs all 17 cases. This script holds
out every scan of each multi-scan real set (leave one out, the shipped ``config/gate.toml`` and label maps) and
runs only the cases the hidden-class check (:mod:`simgap_ext.gate.missing`) decides: the scan as it is, its most
populous thing class relabelled as vegetation / removed (fine level) and the whole scene class relabelled / removed.
It prints the acceptance per case and dataset, and the real scans the gate rejects with their first reason, so a
change of the check's absence prior can be judged on all 71 scans rather than on 10 folds.

    SIMGAP_REALDATA=/work/shared/realdata PYTHONPATH=$PWD python benchmarks/hidden_all_scans.py [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _realdata import realdata_root  # benchmarks/ helper (run as a script)

__all__ = ["main"]

SETS = ("open3d_ml/kitti_seq01_pr", "kitti360_osm_bki", "nuscenes_lidarseg_cascol", "mcd_kth_day_06")
CASES = ("class relabelled", "class removed", "scene class relabelled", "scene class removed")


def main(argv: list[str] | None = None) -> int:
    from simgap_ext.gate.realsets import iter_real_scans
    from simgap_ext.gate.validation import PERTURBATIONS, validate_gate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    cases = [p for p in PERTURBATIONS if p[0] in CASES]
    out = []
    print("| dataset | scans | real accepted | " + " | ".join(f"{c} accepted" for c in CASES) + " | s |")
    print("|---|---:|---:|" + "---:|" * len(CASES) + "---:|")
    for rel in SETS:
        root = realdata_root() / rel
        if not root.is_dir():
            continue
        frames = list(iter_real_scans(root))
        t0 = time.perf_counter()
        rows = validate_gate(frames, max_folds=len(frames), perturbations=cases)
        cells = [f"{r.accepted}/{r.n} ({100 * r.accept_rate:.0f} %)" for r in rows]
        print(f"| {rel} | {len(frames)} | " + " | ".join(cells) + f" | {time.perf_counter() - t0:.0f} |", flush=True)
        for reason in rows[0].reasons:
            print(f"|   real scan rejected: {reason} |", flush=True)
        out.append({"dataset": rel, "rows": [r.to_dict() for r in rows]})
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
