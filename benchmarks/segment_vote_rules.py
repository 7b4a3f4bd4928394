"""Alternative vote rules and descriptors for the segment test (``gate.segments``), against the shipped one (``both``).

The segment test counts, per class ``c`` of a frame, its segments whose ``K_SEGMENTS`` nearest real segments vote
for another class ``k`` by a majority (``n_ck``), and holds each count to a prediction bound from the bank's
leave-one-out counts (:func:`~simgap_ext.gate.segments.count_limits`, Bonferroni over the other classes). Issue #7
asks it to catch more relabelled classes on KITTI-360 and MCD without costing real acceptance. This script measures
alternatives on every held-out scan (``--all``; or ``--folds`` evenly spaced, as ``validate_real.py``), each scored
exactly as the gate scores its own (same limits, same level rule, Bonferroni over the columns tested):

- ``majority``: the rule shipped until bank format 6 (the gate's own :class:`~simgap_ext.gate.segments.SegmentIndex`
  and :func:`~simgap_ext.gate.segments.pair_counts`).
- ``balanced``: each vote weighted by the inverse of its class's number of bank segments (the Bayes rule under equal
  class priors), then a majority of the weight.
- ``soft``: ``n_ck`` = the sum over ``c``'s segments of the share of votes for ``k`` (no threshold).
- ``plurality``: a segment counts for ``k`` when its own class holds less than half the votes and ``k`` holds the
  most of the rest.
- ``both``: the ``majority`` and ``plurality`` counts, both tested (Bonferroni over twice the columns): the shipped
  rule from bank format 7 on (the gate's own :func:`~simgap_ext.gate.segments.segment_counts`).
- ``pooled``: the ``majority`` counts plus one column, the segments whose majority is *any* thing class (taxonomy
  kind ``thing``) other than ``c`` (Bonferroni over one more column).
- ``things``: that pooled column alone, one test per class at the per-class level.

``--descriptors shipped,shape``: ``shape`` appends three local-shape columns to the 11-number descriptor: the mean
and spread of ``|n_z|`` of local normals (8 nearest points of the segment, at up to 128 points per segment) and the
mean local curvature ``λ3 / (λ1 + λ2 + λ3)`` (cars: smooth panels, horizontal roofs and vertical sides; foliage:
scattered).

Printed per dataset and rule: the share of held-out scans the segment test alone flags (``real``: false alarms; the
scene class ``vehicle`` relabelled ``vegetation``; the most populous fine thing class relabelled), the largest real
value in units of the limit, and with ``--gate`` the share the whole gate would accept: the gate without the segment
test (``segment_test = false``, a bank built from the other scans, as ``validate_real.py``) accepts the scan and the
rule does not flag it. That estimate reproduced ``validate_real.py``'s rows for the majority rule on its 10 folds.

    SIMGAP_REALDATA=/work/shared/realdata PYTHONPATH=$PWD python benchmarks/segment_vote_rules.py --all --gate \\
        [--descriptors shipped,shape] [--rules majority,plurality,...] [DIR ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np
from _realdata import realdata_root  # benchmarks/ helper (run as a script)
from scipy.spatial import cKDTree

from simgap_ext.data.taxonomy import default_taxonomy, roll_up_frame
from simgap_ext.gate import FrameGate, ReferenceBank
from simgap_ext.gate import segments as seg
from simgap_ext.gate.bank import sensor_geometry
from simgap_ext.gate.config import load_gate_config
from simgap_ext.gate.frame_stats import _sensor_points, frame_stats
from simgap_ext.gate.realsets import iter_real_scans
from simgap_ext.gate.validation import perturb

REALDATA = realdata_root()
DEFAULT = [
    REALDATA / "kitti360_osm_bki",
    REALDATA / "nuscenes_lidarseg_cascol",
    REALDATA / "mcd_kth_day_06",
]
RULES = ("majority", "balanced", "soft", "plurality", "both", "pooled", "things")
KINDS = ("real", "relabel_scene", "relabel")
#: Local-shape columns (``--shape``): neighbours per local normal, points sampled per segment.
LOCAL_K, LOCAL_SAMPLES = 8, 128


def _local_shape(q: np.ndarray) -> list[float]:
    """Mean and spread of |n_z| of local normals and mean local curvature of an (M, 3) segment."""
    idx = np.arange(0, q.shape[0], max(1, q.shape[0] // LOCAL_SAMPLES))[:LOCAL_SAMPLES]
    k = min(LOCAL_K, q.shape[0])
    _, nn = cKDTree(q).query(q[idx], k=k)
    nb = q[nn.reshape(idx.size, k)]
    d = nb - nb.mean(axis=1, keepdims=True)
    ev, vec = np.linalg.eigh(np.einsum("ski,skj->sij", d, d) / k)
    nz = np.abs(vec[:, 2, 0])
    return [float(nz.mean()), float(nz.std()), float((ev[:, 0] / np.maximum(ev.sum(axis=1), 1e-12)).mean())]


def _segments(frame, sensor: str, vocab: dict[str, int], shape: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """(S, D) descriptors, (S,) class index in ``vocab`` and the number of classes of a rolled-up frame; the gate's
    :func:`~simgap_ext.gate.segments.segment_descriptors`, plus the local-shape columns with ``shape``."""
    beams, cols = sensor_geometry(sensor)
    st = frame_stats(frame, vertical_angles_deg=beams, horizontal_resolution=cols)
    lut = np.array([vocab.setdefault(c, len(vocab)) for c in st.class_list] + [-1], np.int64)
    skip = {vocab[c] for c in st.class_list if c in ("unlabeled", "unlabelled")} | {-1}
    pts, cls = _sensor_points(frame), lut[st.class_of_point]
    if not shape:
        desc, owner = seg.segment_descriptors(pts, cls, st.roughness, skip=sorted(skip))
        return desc.astype(np.float64), owner.astype(np.int64), len(st.class_points)
    # The same segments in the same order as segment_descriptors, with three more columns each.
    pts = np.asarray(pts, np.float64)
    ground = seg._Ground(pts)
    rows, owner = [], []
    for c in np.unique(cls).tolist():
        sel = np.flatnonzero(cls == c)
        if c in skip or sel.size < seg.MIN_SEGMENT_POINTS:
            continue
        for g in sorted(seg._clusters(pts[sel]), key=lambda g: -g.size)[: seg.MAX_SEGMENTS_PER_CLASS]:
            q = pts[sel[g]]
            rows.append(seg._describe(q, st.roughness[sel[g]], ground) + _local_shape(q))
            owner.append(c)
    return (
        np.asarray(rows, np.float64).reshape(-1, len(seg.DESCRIPTOR_NAMES) + 3),
        np.asarray(owner),
        len(st.class_points),
    )


def _neighbours(bank: tuple[np.ndarray, np.ndarray, np.ndarray], query: np.ndarray, exclude: int | None) -> np.ndarray:
    """(Q, K_SEGMENTS) class of each query segment's nearest real segments (scaled as the gate scales; -1 pads)."""
    desc, cls, frame = bank
    sd = desc.std(axis=0)
    scale = np.where(sd > 1e-9, sd, 1.0)
    own = 0 if exclude is None else int((frame == exclude).sum())
    k = min(seg.K_SEGMENTS + own, desc.shape[0])
    _, nn = cKDTree(desc / scale).query(query / scale, k=k)
    nn = nn.reshape(query.shape[0], k)
    out = np.full((query.shape[0], seg.K_SEGMENTS), -1, np.int64)
    for i, row in enumerate(nn):
        if own:
            row = row[frame[row] != exclude]
        out[i, : min(row.size, seg.K_SEGMENTS)] = cls[row[: seg.K_SEGMENTS]]
    return out


def _counts(rule: str, votes: np.ndarray, seg_class: np.ndarray, n: int, n_bank: np.ndarray, things: np.ndarray):
    """(n, M) counts of a frame's segments under ``rule`` (M = n, 2n, n + 1 or 1 columns; see the module doc)."""
    tally = np.zeros((votes.shape[0], n))
    for j in range(votes.shape[1]):
        ok = votes[:, j] >= 0
        np.add.at(tally, (np.flatnonzero(ok), votes[ok, j]), 1.0)
    if rule == "balanced":
        # A majority of class-weighted votes (the gate's rules count votes unweighted).
        weight = tally / np.maximum(n_bank, 1.0)
        share = weight / np.maximum(weight.sum(axis=1, keepdims=True), 1e-12)
        top = share.argmax(axis=1)
        return seg.pair_counts(seg_class, np.where(share[np.arange(share.shape[0]), top] > 0.5, top, -1), n)
    if rule == "soft":
        out = np.zeros((n, n))
        np.add.at(out, seg_class, tally / np.maximum(tally.sum(axis=1, keepdims=True), 1e-12))
        out[np.arange(n), np.arange(n)] = 0.0
        return out
    votes_int = tally.astype(np.int64)
    if rule == "plurality":
        return seg.pair_counts(seg_class, seg.plurality_vote(votes_int, seg_class), n)
    if rule == "both":
        return seg.segment_counts(votes_int, seg_class, n)
    major = seg.majority_vote(votes_int)
    if rule == "majority":
        return seg.pair_counts(seg_class, major, n)
    pooled = np.zeros((n, 1))
    hit = (major >= 0) & (major != seg_class) & np.isin(major, things)
    np.add.at(pooled[:, 0], seg_class[hit], 1.0)
    return pooled if rule == "things" else np.hstack([seg.pair_counts(seg_class, major, n), pooled])


def _tests(rule: str, n_other: int) -> int:
    """Number of (class, column) tests a class is Bonferroni-corrected over under ``rule``."""
    return {"both": 2 * n_other, "pooled": n_other + 1, "things": 1}.get(rule, n_other)


def _own_columns(rule: str, ci: int, n: int) -> list[int]:
    return {"both": [ci, n + ci], "things": []}.get(rule, [ci])


def _fold(rule, segs, pert, i, n_cls, things, cfg) -> dict[str, float]:
    """Worst excess / limit of held-out scan ``i`` (as it is and relabelled) under ``rule``."""
    others = [j for j in range(len(segs)) if j != i]
    bank = (
        np.concatenate([segs[j][0] for j in others]),
        np.concatenate([segs[j][1] for j in others]),
        np.concatenate([np.full(segs[j][1].shape[0], j) for j in others]),
    )
    n_bank = np.bincount(bank[1], minlength=n_cls).astype(np.float64)
    # The gate's own code (majority alone, or both rules as shipped) wherever the descriptor is the gate's.
    gate_code = rule in ("majority", "both") and bank[0].shape[1] == len(seg.DESCRIPTOR_NAMES)
    index = seg.SegmentIndex(bank[0], bank[1], bank[2], n_cls) if gate_code else None
    q_class = 1 - (1 - cfg.calibration_quantile) / max(1.0, float(np.median([segs[j][2] for j in others])))
    level = 1 - (1 - q_class) / _tests(rule, max(1, np.unique(bank[1]).size - 1))

    def counts(desc, cls, exclude):
        if index is not None and rule == "both":
            return seg.segment_counts(index.tallies(desc, exclude_frame=exclude), cls, n_cls)
        if index is not None:
            return seg.pair_counts(cls, index.majority(desc, exclude_frame=exclude), n_cls)
        nb = n_bank if exclude is None else n_bank - np.bincount(cls, minlength=n_cls)
        return _counts(rule, _neighbours(bank, desc, exclude), cls, n_cls, nb, things)

    rows: dict[int, list[np.ndarray]] = {}
    for j in others:
        pc = counts(segs[j][0], segs[j][1], j)
        for ci in np.unique(segs[j][1]).tolist():
            rows.setdefault(ci, []).append(pc[ci])
    fits = {
        ci: seg.count_limits(np.array(r), level, cfg.calibration_margin)
        for ci, r in rows.items()
        if len(r) >= seg.MIN_SEGMENT_FRAMES
    }
    out = {}
    for kind in KINDS:
        s = segs[i] if kind == "real" else pert.get((i, kind))
        if s is None:
            continue
        pc = counts(s[0], s[1], None)
        worst = -math.inf
        for ci in np.unique(s[1]).tolist():
            if ci in fits:
                mean, _, limit = fits[ci]
                ratio = (pc[ci] - mean) / limit
                ratio[_own_columns(rule, ci, n_cls)] = -math.inf
                worst = max(worst, float(ratio.max()))
        out[kind] = worst
    return out


def _gate_without_segments(raw, held, cfg) -> dict[tuple[int, str], bool]:
    """Whether the gate without the segment test accepts each held-out scan (as it is and relabelled)."""
    off = dataclasses.replace(cfg, segment_test=False)
    out = {}
    for i in held.tolist():
        bank = ReferenceBank.build([raw[j] for j in range(len(raw)) if j != i], config=cfg, device="cpu", seed=0)
        gate = FrameGate(bank, off, device="cpu", quarantine=False)
        for kind in KINDS:
            frame = raw[i][1] if kind == "real" else perturb(raw[i][1], kind, 0, np.random.default_rng(0))
            if frame is not None:
                out[(i, kind)] = bool(gate.evaluate(frame, update_quarantine=False).accepted)
        print(f"  gate without the segment test: scan {i + 1}/{len(raw)} done", file=sys.stderr, flush=True)
    return out


def run(path: Path, held_all: bool, folds: int, rules: list[str], shapes: list[bool], gate: bool) -> None:
    t0 = time.time()
    cfg = load_gate_config()
    raw = list(iter_real_scans(path))
    sensor = str(raw[0][1].get("sensor", "unknown"))
    n = len(raw)
    held = np.arange(n) if held_all else np.unique(np.linspace(0, n - 1, min(folds, n)).round().astype(int))
    accepted = _gate_without_segments(raw, held, cfg) if gate else {}
    tax = default_taxonomy()
    for shape in shapes:
        vocab: dict[str, int] = {}
        segs = [_segments(roll_up_frame(f), sensor, vocab, shape) for _, f in raw]
        pert = {}
        for i in held.tolist():
            for kind in KINDS[1:]:
                f = perturb(raw[i][1], kind, 0, np.random.default_rng(0))
                pert[(i, kind)] = None if f is None else _segments(roll_up_frame(f), sensor, vocab, shape)
        things = np.array([i for c, i in vocab.items() if c in tax and tax.get(c).kind == "thing"], np.int64)
        print(
            f"\n**{path.name}** ({n} scans, {len(held)} held out; descriptor: "
            f"{'11 + 3 local-shape' if shape else '11 (shipped)'} columns)\n"
        )
        head = "| rule | real flagged | scene relabel flagged | relabel flagged | largest real (x limit) |"
        if gate:
            head += " gate accepts real | gate accepts relabel | gate accepts scene relabel |"
        print(head)
        print("|---" * (head.count("|") - 1) + "|")
        for rule in rules:
            res = [(i, _fold(rule, segs, pert, i, len(vocab), things, cfg)) for i in held.tolist()]
            cells = []
            for kind in KINDS:
                vals = [r[kind] for _, r in res if kind in r]
                cells.append(f"{100 * np.mean([v > 1.0 for v in vals]):.0f} % ({len(vals)})")
            cells.append(f"{max(r['real'] for _, r in res):.2f}")
            if gate:
                for kind in ("real", "relabel", "relabel_scene"):
                    ok = [accepted[(i, kind)] and not r[kind] > 1.0 for i, r in res if kind in r]
                    cells.append(f"{100 * np.mean(ok):.0f} % ({sum(ok)}/{len(ok)})")
            print(f"| {rule} | " + " | ".join(cells) + " |")
            sys.stdout.flush()
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="*", type=Path)
    ap.add_argument("--folds", type=int, default=10, help="held-out scans, evenly spaced (default 10)")
    ap.add_argument("--all", action="store_true", help="hold out every scan")
    ap.add_argument("--rules", default=",".join(RULES), help=f"comma list of {', '.join(RULES)}")
    ap.add_argument(
        "--descriptors", default="shipped", help="comma list of shipped, shape (11 + 3 local-shape columns)"
    )
    ap.add_argument("--gate", action="store_true", help="also estimate the whole gate's acceptance (slower)")
    args = ap.parse_args()
    rules = [r for r in args.rules.split(",") if r]
    bad = [r for r in rules if r not in RULES]
    if bad:
        ap.error(f"unknown rule(s) {', '.join(bad)}; choose from {', '.join(RULES)}")
    kinds = [k for k in args.descriptors.split(",") if k]
    if not kinds or set(kinds) - {"shipped", "shape"}:
        ap.error(f"--descriptors takes shipped and/or shape, got {args.descriptors!r}")
    for d in args.dirs or [d for d in DEFAULT if d.is_dir()]:
        run(d, args.all, args.folds, rules, [k == "shape" for k in kinds], args.gate)
