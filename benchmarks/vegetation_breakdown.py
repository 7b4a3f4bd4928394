"""Rendered vegetation against real vegetation as the gate sees it: where `bench_fidelity`'s class rejections start.

Over 100 scenes the shipped ``hdl-32-nuscenes`` renders are rejected mostly on ``vegetation``'s class tests (joint
deviation of plausibility, height, foreign votes, roughness; docs/backend.md "Issue 10, tenth pass"). This script
puts the class's statistics side by side for real and rendered frames:

- per set: frames holding vegetation, its points per frame and share of the frame, sensor-frame height and range
  quantiles (10/50/90 %), mean clipped along-ring roughness and ring continuity (the gate's ``roughness`` and
  ``density`` inputs), the medians of the gate's local-geometry descriptors (:data:`~simgap_ext.gate.plausibility.
  DESCRIPTOR_NAMES`) and where the real kNN votes of its points go (the ``plausibility`` and ``foreign`` inputs);
- per rendered set: the gate's acceptance against the bank, the frames whose vegetation fails (joint test, segment
  test, other) and the mean and 90th percentile of each vegetation component's distance over its d_max.

The bank is ``bench_fidelity``'s: the held-out nuScenes keyframes 20-39, real classes rolled up to the scene level
(``--bank fit``: the fit keyframes 0-19 instead, the stretch ``hdl-32-nuscenes`` was fitted on). The yardstick is the
other stretch (outside the bank: its votes are as independent as the rendered frames'). The bank's own keyframes are
printed for their geometry; their votes include themselves and are not shown. Rendered sets: ``bench_fidelity``'s
world and scene seeds (``bench_world``, ``SCENE_SEED + i``) with the shipped ``hdl-32-nuscenes``'s ``realistic``
preset (the default tune), or with ``--profile`` that profile's fitted model (its ``tuned`` preset: a ``simgap tune``
output, e.g. ``bench_fidelity.py --save-tuned``; else its ``realistic`` one); with ``--street-tree-clearance H``
also the same world whose street-tree slots hold trees pruned to ``H`` metres instead of trees and bushes
(``RandomizerConfig.street_tree_clearance``), with ``--penetration M`` the shipped world with a foliage mean free path
of ``M`` metres (``RandomizerConfig.penetration``).

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/vegetation_breakdown.py [--frames 40] [--street-tree-clearance 2.4]
        [--penetration 0.3] [--bank held|fit] [--profile P.toml] [--device cpu] [--real DIR] [--fit 20] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from _realdata import NUSCENES, realdata_root  # benchmarks/ helper (run as a script)
from bench_fidelity import SCENE_SEED, bench_world, load_fold

__all__ = ["main", "run", "class_summary"]

_DEFAULT_REAL = realdata_root() / NUSCENES
CLASS = "vegetation"
#: vote columns printed (the bank's other classes are summed as "other")
VOTE_COLUMNS = ("vegetation", "building", "vehicle", "ground")


def class_summary(stats: Any, votes: np.ndarray | None, class_names: list[str], cls: str = CLASS) -> dict | None:
    """One frame's statistics of ``cls`` (None when the frame lacks it).

    Args:
        stats: the frame's :class:`~simgap_ext.gate.frame_stats.FrameStats` (``FrameGate.stats``).
        votes: (S, k) int class indices of the real voters of the frame's described points, or None (no votes).
        class_names: the bank's class names (what the vote indices point to).
        cls: the class.

    Returns:
        ``{"n", "share", "height_q", "range_q", "roughness", "continuity", "descriptors", "votes"}`` (quantiles at
        10/50/90 %, descriptor medians in ``DESCRIPTOR_NAMES`` order, vote shares per bank class or None).
    """
    mask = stats.class_mask(cls)
    if not mask.any():
        return None
    mine = mask[stats.desc_index] if stats.desc_index.size else np.zeros(0, bool)
    profile = None
    if votes is not None and mine.any():
        profile = np.bincount(votes[mine].ravel(), minlength=len(class_names)) / votes[mine].size
    rough = stats.class_roughness(cls)
    return {
        "n": int(mask.sum()),
        "share": stats.class_share(cls),
        "height_q": np.percentile(stats.class_heights(cls), [10, 50, 90]),
        "range_q": np.percentile(stats.ranges[mask], [10, 50, 90]),
        "roughness": float(rough.mean()) if rough.size else float("nan"),
        "continuity": stats.class_density(cls),
        "descriptors": np.median(stats.descriptors[mine], axis=0) if mine.any() else None,
        "votes": profile,
    }


def _pool(rows: list[dict]) -> dict[str, Any]:
    """Mean over frames of each statistic (descriptor medians and vote shares averaged frame by frame)."""

    def mean(key: str) -> Any:
        vals = [r[key] for r in rows if r[key] is not None]
        return np.mean(vals, axis=0) if vals else None

    return {"frames": len(rows), **{k: mean(k) for k in rows[0]}} if rows else {"frames": 0}


def run(
    real_dir: Path,
    *,
    n_fit: int,
    frames: int,
    device: str | None,
    profile: Path | None = None,
    clearance: float | None = None,
    penetration: float | None = None,
    bank_stretch: str = "held",
) -> dict[str, Any]:
    """Measure every set (see the module docstring); returns ``{"sets": {label: pooled}, "gate": {label: ...},
    "class_names": [...]}`` with numpy values."""
    from simgap_ext.backends.warp import SceneRandomizer, WarpLidarSource
    from simgap_ext.gate import FrameGate, GateConfig, ReferenceBank
    from simgap_ext.gate.plausibility import VoteIndex
    from simgap_ext.sensors import load_sensor_profile

    prof = load_sensor_profile(str(profile) if profile is not None else "hdl-32-nuscenes")
    # a simgap tune output keeps the base profile's presets beside the fitted one, which it names `tuned`
    preset = "tuned" if profile is not None and "tuned" in prof.presets else "realistic"
    _, fit, held = load_fold(real_dir, load_sensor_profile("hdl-32"), n_fit)
    if bank_stretch not in ("held", "fit"):
        raise ValueError(f"bank_stretch must be 'held' or 'fit', got {bank_stretch!r}")
    named = {"fit": (f"0-{n_fit - 1}", fit), "held": (f"{n_fit}-{n_fit + len(held) - 1}", held)}
    (bank_span, bank_frames), (other_span, other_frames) = (
        (named["held"], named["fit"]) if bank_stretch == "held" else (named["fit"], named["held"])
    )
    config = GateConfig()
    bank = ReferenceBank.build(bank_frames, config=config, device=device)
    gate = FrameGate(bank, config, device=device, quarantine=False)
    index = VoteIndex(bank.desc_vals, bank.desc_class, bank.desc_scale())
    names = list(bank.class_names)

    shipped = bench_world(prof)
    worlds = {"rendered (shipped world)": shipped}
    variants = {}
    if clearance is not None:
        variants[f"rendered, street trees pruned to {clearance:g} m"] = {"street_tree_clearance": clearance}
    if penetration is not None:
        variants[f"rendered, foliage mean {penetration:g} m"] = {"penetration": {"vegetation": penetration}}
    for label, change in variants.items():
        cfg = replace(shipped.config, **change)
        worlds[label] = SceneRandomizer(cfg, sensor_height=prof.mount_height, max_range=prof.max_range)
    # (frames, vote on them: not the bank's own, judge them: the renders)
    sets: dict[str, tuple[list[dict[str, Any]], bool, bool]] = {
        f"real {other_span}": (other_frames, True, False),
        f"real {bank_span} (the bank)": (bank_frames, False, False),
    }
    for label, world in worlds.items():
        src = WarpLidarSource(prof, preset, device=device, randomizer=world)
        sets[label] = ([src.render(seed=SCENE_SEED + i, frame_id=i) for i in range(frames)], True, True)

    spec = gate.stats_spec()  # validation and the roll-up to the bank's level, then the statistics evaluate uses
    pooled: dict[str, Any] = {}
    verdicts: dict[str, Any] = {}
    for label, (frs, with_votes, judged) in sets.items():
        rows, decisions = [], []
        for fr in frs:
            st = spec(fr)
            v = index.votes(st.descriptors) if with_votes and st.descriptors.shape[0] else None
            row = class_summary(st, v, names)
            if row is not None:
                rows.append(row)
            if judged:
                decisions.append(gate.evaluate(fr, update_quarantine=False, stats=st))
        pooled[label] = _pool(rows)
        if not judged:
            continue
        fails: Counter[str] = Counter()
        ratios: dict[str, list[float]] = {}
        accepted = 0
        for d in decisions:
            accepted += int(d.accepted)
            fails.update(_failure_kinds(d.reasons))
            pc = d.per_class.get(CLASS)
            if pc is not None:
                for comp, (dist, d_max) in pc.evidence.items():
                    if np.isfinite(d_max) and d_max > 0:
                        ratios.setdefault(comp, []).append(dist / d_max)
        verdicts[label] = {
            "frames": len(decisions),
            "accepted": accepted,
            "failing": dict(fails),
            "ratio_mean": {k: float(np.mean(v)) for k, v in ratios.items()},
            "ratio_q90": {k: float(np.percentile(v, 90)) for k, v in ratios.items()},
        }
    return {"sets": pooled, "gate": verdicts, "class_names": names}


def _failure_kinds(reasons: list[str]) -> set[str]:
    """The kinds of failure among a frame's reasons (a frame counts once per kind)."""
    kinds = set()
    for r in reasons:
        if r.startswith(f"class {CLASS}:"):
            kinds.add(f"{CLASS} joint" if "joint deviation" in r else f"{CLASS} segments" if "segment" in r else
                      f"{CLASS} other")  # fmt: skip
        elif r.startswith("scene:"):
            kinds.add("scene G")
        else:
            kinds.add("other class")
    return kinds


def _q(v: Any, nd: int = 1) -> str:
    return "/".join(f"{x:.{nd}f}" for x in v) if v is not None else "-"


def report(res: dict[str, Any]) -> list[str]:
    """The printed tables."""
    from simgap_ext.gate.plausibility import DESCRIPTOR_NAMES

    names = res["class_names"]
    idx = [names.index(c) for c in VOTE_COLUMNS if c in names]
    vote_cols = [names[i] for i in idx]
    lines = [f"{CLASS}: per frame holding it, averaged over frames", ""]
    head = (
        f"{'set':40s} {'frames':>6s} {'pts':>6s} {'share':>6s} {'height q10/50/90 m':>19s} {'range q10/50/90 m':>18s}"
        f" {'rough m':>8s} {'contin.':>7s}"
    )
    lines += [head, "-" * len(head)]
    for label, p in res["sets"].items():
        if not p["frames"]:
            lines.append(f"{label:40s} {0:6d}")
            continue
        lines.append(
            f"{label:40s} {p['frames']:6d} {p['n']:6.0f} {p['share']:6.3f} {_q(p['height_q'], 2):>19s}"
            f" {_q(p['range_q']):>18s} {p['roughness']:8.4f} {p['continuity']:7.3f}"
        )
    lines += ["", "medians of the gate's local descriptors, and where the real kNN votes of its points go"]
    head = (
        f"{'set':40s} "
        + " ".join(f"{n[:10]:>10s}" for n in DESCRIPTOR_NAMES)
        + " | "
        + " ".join(f"{c[:10]:>10s}" for c in [*vote_cols, "other"])
    )
    lines += [head, "-" * len(head)]
    for label, p in res["sets"].items():
        if not p["frames"]:
            continue
        d = " ".join(f"{x:10.3f}" for x in p["descriptors"])
        if p["votes"] is None:
            v = " ".join(f"{'-':>10s}" for _ in range(len(vote_cols) + 1))
        else:
            shares = [p["votes"][i] for i in idx]
            v = " ".join(f"{x:10.3f}" for x in [*shares, 1.0 - sum(shares)])
        lines.append(f"{label:40s} {d} | {v}")
    lines += ["", f"gate against the bank: acceptance, failing frames by kind, {CLASS}'s distance / d_max (mean, q90)"]
    for label, g in res["gate"].items():
        fails = ", ".join(f"{k} {n}" for k, n in sorted(g["failing"].items(), key=lambda kv: -kv[1])) or "none"
        lines.append(f"{label}: {g['accepted']}/{g['frames']} accepted; failing: {fails}")
        lines.append(
            "    "
            + ", ".join(f"{k} {g['ratio_mean'][k]:.3f} ({g['ratio_q90'][k]:.3f})" for k in sorted(g["ratio_mean"]))
        )
    return lines


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=_DEFAULT_REAL, help="nuScenes keyframe folders")
    parser.add_argument("--fit", type=int, default=20, help="fit keyframes; the rest are the bank (default 20)")
    parser.add_argument("--frames", type=int, default=40, help="rendered frames per set (default 40)")
    parser.add_argument("--device", default=None, help="Warp device (default: CUDA when available, else CPU)")
    parser.add_argument("--profile", type=Path, default=None, help="sensor profile TOML (default hdl-32-nuscenes)")
    parser.add_argument(
        "--street-tree-clearance",
        type=float,
        default=None,
        metavar="H",
        help="also render the world with street trees pruned to H metres (RandomizerConfig.street_tree_clearance)",
    )
    parser.add_argument(
        "--penetration",
        type=float,
        default=None,
        metavar="M",
        help="also render the shipped world with a vegetation foliage mean free path of M metres",
    )
    parser.add_argument(
        "--bank",
        choices=("held", "fit"),
        default="held",
        help="which real stretch makes the bank: the held-out keyframes (bench_fidelity's, default) or the fit ones",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the measurements here")
    args = parser.parse_args(argv)
    if not args.real.is_dir():
        parser.error(f"real scans not found: {args.real}")
    if args.profile is not None and not args.profile.is_file():
        parser.error(f"--profile: {args.profile} not found")
    if args.frames < 1:
        parser.error("--frames must be >= 1")
    if args.street_tree_clearance is not None and not args.street_tree_clearance > 0:
        parser.error(f"--street-tree-clearance must be > 0, got {args.street_tree_clearance}")
    if args.penetration is not None and not args.penetration >= 0:
        parser.error(f"--penetration must be >= 0, got {args.penetration}")
    t0 = time.perf_counter()
    res = run(
        args.real,
        n_fit=args.fit,
        frames=args.frames,
        device=args.device,
        profile=args.profile,
        clearance=args.street_tree_clearance,
        penetration=args.penetration,
        bank_stretch=args.bank,
    )
    print("\n".join(report(res)))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(_jsonable(res), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
