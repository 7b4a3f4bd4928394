"""How well the raw ``.bin`` layout check separates correct reads from misreads, on every real scan available.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_layout_checks.py [--realdata ../shared/realdata] [--data tests/data]

For every raw float32 scan found (KITTI/SemanticKITTI/KITTI-360/MCD/RELLIS ``.bin`` with 4 columns, nuScenes
``points.bin`` with 5), it prints the share of integer-valued non-zero x/y/z values when the file is read with its
true column count and with the other one (4 <-> 5, where the byte size allows), and whether
:func:`simgap_ext.data.raw_bin.read_raw_bin` accepts each read. The refusal threshold (10 % in each of x, y, z, plus
a clean alternative column count) should sit far from both columns of the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from simgap_ext.data.raw_bin import KITTI_COLUMNS, NUSCENES_COLUMNS, read_raw_bin
from simgap_ext.errors import SimGapInputError


def _share(xyz: np.ndarray) -> float:
    out = []
    for i in range(3):
        v = xyz[:, i][(xyz[:, i] != 0) & np.isfinite(xyz[:, i])]
        out.append(float(np.mean(v == np.round(v))) if v.size else 0.0)
    return min(out)


def _accepts(path: Path, cols: tuple[str, ...]) -> str:
    try:
        read_raw_bin(path, cols)
        return "accepted"
    except SimGapInputError as exc:
        return "refused (" + str(exc).split(": ", 1)[1][:40] + "...)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realdata", type=Path, default=Path("../shared/realdata"))
    ap.add_argument("--data", type=Path, default=Path("tests/data"))
    args = ap.parse_args()
    files = []
    for root in (args.realdata, args.data):
        if root.is_dir():
            files += [p for p in sorted(root.rglob("*.bin")) if "label" not in str(p) and p.name != "ground.bin"]
    head = f"{'scan':70s} {'cols':>4s} {'int share (min xyz)':>20s}  reader   |"
    print(head + f" {'misread':>7s} {'int share':>10s}  reader")
    worst_ok, best_bad = 0.0, 1.0
    n_ok = n_ok_accepted = n_bad = n_bad_refused = 0
    for f in files:
        true = NUSCENES_COLUMNS if f.name == "points.bin" else KITTI_COLUMNS
        other = KITTI_COLUMNS if true == NUSCENES_COLUMNS else NUSCENES_COLUMNS
        flat = np.fromfile(f, dtype="<f4")
        ok = _share(flat.reshape(-1, len(true))[:, :3])
        worst_ok = max(worst_ok, ok)
        verdict = _accepts(f, true)
        n_ok += 1
        n_ok_accepted += verdict == "accepted"
        line = f"{str(f)[-70:]:70s} {len(true):4d} {100 * ok:19.2f}%  {verdict:8s} |"
        if flat.size % len(other) == 0:
            bad = _share(flat.reshape(-1, len(other))[:, :3])
            if len(other) == 4:  # the integer-share route; 4-column files read as 5 fail the ring check instead
                best_bad = min(best_bad, bad)
            verdict = _accepts(f, other)
            n_bad += 1
            n_bad_refused += verdict != "accepted"
            line += f" {len(other):7d} {100 * bad:9.2f}%  {verdict}"
        else:
            line += f" {len(other):7d} {'-':>10s}  refused (size not a multiple of {4 * len(other)})"
        print(line)
    print(f"\ncorrect reads accepted: {n_ok_accepted} of {n_ok}; misreads refused: {n_bad_refused} of {n_bad}")
    print(f"largest integer share of a correct read: {100 * worst_ok:.2f} %")
    print(f"smallest integer share of a 5-column file read as 4: {100 * best_bad:.2f} %")


if __name__ == "__main__":
    main()
