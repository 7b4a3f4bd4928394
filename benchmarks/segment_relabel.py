"""Segment-level evidence for a relabelled class (``gate.segments``): does it separate relabelled from real frames?

Every scan is rolled up onto the gate's scene vocabulary (as the bank does) and cut into Euclidean segments with
shape descriptors (:func:`simgap_ext.gate.segments.segment_descriptors`). Printed per dataset:

- the per-segment AUC of vehicle vs vegetation segments, scored by the share of a segment's ``K_SEGMENTS`` nearest
  real segments that are vehicles (each scan's segments voted on by the other scans' only), and the share of vehicle
  segments voted vehicle by a majority per range band (with the share of vegetation segments that are);
- over ``--folds`` held-out scans (evenly spaced, as ``validate_real.py``; the other scans form the bank each time):
  the segment test exactly as the gate runs it (:func:`~simgap_ext.gate.segments.count_limits` over the bank scans'
  leave-one-out pair counts under both vote rules, majority and plurality, per-class Bonferroni level
  ``1 - 0.05 / K`` divided by the number of (rule, other class) columns, ``calibration_margin`` 1.5), on the scan
  as it is (``real``: flagged = a false alarm), with its scene class ``vehicle`` relabelled ``vegetation``
  (``relabel_scene``) and with its most populous fine thing class relabelled (``relabel``;
  ``gate.validation.perturb``). Per fold: the worst (class -> looks like, rule m/p) pair, its excess over the real
  mean in units of its limit, and the count / the largest real count.

    SIMGAP_REALDATA=/work/shared/realdata PYTHONPATH=$PWD python benchmarks/segment_relabel.py [--folds 10] [DIR ...]

The gate itself (bank format 7) is validated by ``validate_real.py``; this isolates the segment test (seconds per
dataset instead of minutes, no other component involved).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from _realdata import realdata_root  # benchmarks/ helper (run as a script)
from scipy.stats import mannwhitneyu

from simgap_ext.data.taxonomy import roll_up_frame
from simgap_ext.gate.bank import sensor_geometry
from simgap_ext.gate.config import load_gate_config
from simgap_ext.gate.frame_stats import _sensor_points, frame_stats
from simgap_ext.gate.realsets import iter_real_scans
from simgap_ext.gate.segments import (
    DESCRIPTOR_NAMES,
    K_SEGMENTS,
    MIN_SEGMENT_FRAMES,
    RULES,
    SegmentIndex,
    count_limits,
    segment_counts,
    segment_descriptors,
)
from simgap_ext.gate.validation import perturb

REALDATA = realdata_root()
DEFAULT = [
    REALDATA / "open3d_ml" / "kitti_seq01_pr",
    REALDATA / "kitti360_osm_bki",
    REALDATA / "nuscenes_lidarseg_cascol",
    REALDATA / "mcd_kth_day_06",
]
SRC, DST = "vehicle", "vegetation"


def _segments(frame, sensor: str, vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """(descriptors, class index in ``vocab`` (grown as new classes appear), classes present) of a rolled-up frame."""
    beams, cols = sensor_geometry(sensor)
    st = frame_stats(frame, vertical_angles_deg=beams, horizontal_resolution=cols)
    lut = np.array([vocab.setdefault(c, len(vocab)) for c in st.class_list] + [-1], np.int64)
    skip = [vocab[c] for c in st.class_list if c in ("unlabeled", "unlabelled")] + [-1]
    desc, cls = segment_descriptors(_sensor_points(frame), lut[st.class_of_point], st.roughness, skip=skip)
    return desc, cls, len(st.class_points)


def _vote_share(index_desc, index_cls, query, target: int) -> np.ndarray:
    from scipy.spatial import cKDTree

    sd = index_desc.std(axis=0)
    sd = np.where(sd > 1e-9, sd, 1.0)
    _, nn = cKDTree(index_desc / sd).query(query / sd, k=K_SEGMENTS)
    return (index_cls[nn] == target).mean(axis=1)


def run(path: Path, folds: int) -> None:
    t0 = time.time()
    cfg = load_gate_config()
    raw = [f for _, f in iter_real_scans(path)]
    sensor = str(raw[0].get("sensor", "unknown"))
    vocab: dict[str, int] = {}
    segs = [_segments(roll_up_frame(f), sensor, vocab) for f in raw]
    n = len(raw)
    names = {i: c for c, i in vocab.items()}
    src, dst = vocab.get(SRC, -1), vocab.get(DST, -1)
    pos, neg, pos_range = [], [], []
    log_range = DESCRIPTOR_NAMES.index("log_range")
    for i in range(n):
        rest = [j for j in range(n) if j != i]
        bd = np.concatenate([segs[j][0] for j in rest]).astype(np.float64)
        bc = np.concatenate([segs[j][1] for j in rest])
        share = _vote_share(bd, bc, segs[i][0].astype(np.float64), src)
        pos += share[segs[i][1] == src].tolist()
        neg += share[segs[i][1] == dst].tolist()
        pos_range += np.exp(segs[i][0][segs[i][1] == src, log_range]).tolist()
    auc = mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)) if pos and neg else math.nan
    print(
        f"\n**{path.name}** ({n} scans; {len(pos)} {SRC} / {len(neg)} {DST} segments): per-segment AUC {SRC} vs "
        f"{DST} {auc:.3f}\n"
    )
    if pos and neg:
        # Majority votes by range: where the descriptor runs out (far, sparse objects), no count rule can help.
        share, rng_m = np.asarray(pos), np.asarray(pos_range)
        bands = [(0, 10), (10, 20), (20, 40), (40, math.inf)]
        txt = "; ".join(
            f"{f'{lo:.0f}-{hi:.0f}' if math.isfinite(hi) else f'>= {lo:.0f}'} m "
            f"{np.mean(share[(rng_m >= lo) & (rng_m < hi)] > 0.5):.2f} "
            f"({int(((rng_m >= lo) & (rng_m < hi)).sum())})"
            for lo, hi in bands
            if ((rng_m >= lo) & (rng_m < hi)).any()
        )
        print(
            f"{SRC} segments voted {SRC} by a majority, by range (share, segments): {txt}; {DST} segments voted "
            f"{SRC}: {np.mean(np.asarray(neg) > 0.5):.4f}\n"
        )
    held = np.unique(np.linspace(0, n - 1, min(folds, n)).round().astype(int))
    kinds = ("real", "relabel_scene", "relabel")
    res: dict[str, list] = {k: [] for k in kinds}
    rng = np.random.default_rng(0)
    for i in held:
        others = [j for j in range(n) if j != i]
        desc = np.concatenate([segs[j][0] for j in others])
        cls = np.concatenate([segs[j][1] for j in others])
        frm = np.concatenate([np.full(segs[j][1].shape[0], j) for j in others])
        index = SegmentIndex(desc, cls, frm, len(vocab) + 4)  # room for a class only a perturbation adds
        q_class = 1 - (1 - cfg.calibration_quantile) / max(1.0, float(np.median([segs[j][2] for j in others])))
        level = 1 - (1 - q_class) / (len(RULES) * max(1, np.unique(cls).size - 1))
        rows: dict[int, list[np.ndarray]] = {}
        for j in others:
            pc = segment_counts(index.tallies(segs[j][0], exclude_frame=j), segs[j][1], index.n_classes)
            for ci in np.unique(segs[j][1]).tolist():
                rows.setdefault(ci, []).append(pc[ci])
        fits = {
            ci: count_limits(np.array(r), level, cfg.calibration_margin)
            for ci, r in rows.items()
            if len(r) >= MIN_SEGMENT_FRAMES
        }
        for kind in kinds:
            frame = raw[i] if kind == "real" else perturb(raw[i], kind, 0, rng)
            if frame is None:
                continue
            d, c, _ = _segments(roll_up_frame(frame), sensor, vocab)
            pc = segment_counts(index.tallies(d), c, index.n_classes)
            best = (-math.inf, "-", 0.0, 0.0)
            for ci in np.unique(c).tolist():
                if ci not in fits:
                    continue
                mean, top, limit = fits[ci]
                n_cls = index.n_classes
                ratio = (pc[ci] - mean) / limit
                ratio[ci::n_cls] = -math.inf  # the class's own column under each rule
                j = int(np.argmax(ratio))
                if ratio[j] > best[0]:
                    rule = RULES[j // n_cls][0]  # m(ajority) / p(lurality)
                    best = (float(ratio[j]), f"{names[ci]}->{names[j % n_cls]} ({rule})", pc[ci][j], top[j])
            res[kind].append(best)
    print("| case | flagged | worst pair per fold: excess / limit, class -> looks like, count / largest real count |")
    print("|---|---:|---|")
    for kind in kinds:
        if res[kind]:
            flagged = 100 * np.mean([b[0] > 1.0 for b in res[kind]])
            txt = "; ".join(f"{b[0]:.2f} {b[1]} {b[2]:.0f}/{b[3]:.0f}" for b in res[kind])
            print(f"| {kind} | {flagged:.0f} % | {txt} |")
    print(f"\n({len(held)} folds, {time.time() - t0:.0f} s)")
    sys.stdout.flush()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="*", type=Path)
    ap.add_argument("--folds", type=int, default=10)
    args = ap.parse_args()
    for d in args.dirs or [d for d in DEFAULT if d.is_dir()]:
        run(d, args.folds)
