"""Why a relabelled class is still accepted: each miss of the fine-level relabel, with its segment count's odds.

For every scan of a real set held out in turn (leave one out, the shipped ``config/gate.toml``), the most populous
thing class is relabelled as vegetation (``gate.validation.perturb(..., "relabel")``, the ``class relabelled`` case
of ``validate_real.py``). For each relabel the gate still accepts, the table prints the class relabelled and its
points, the points left in its scene class (the hidden-class check, :mod:`simgap_ext.gate.missing`, judges a scene
class only when it is absent or holds under ``MIN_JUDGED_POINTS``), and the receiving class's segment test
(:mod:`simgap_ext.gate.segments`) at its worst column: the segments counted for another class, the real frames'
mean, the limit of the excess, and the probability of at least that count under the test's own count model (the
negative binomial posterior predictive of a Poisson rate under Jeffreys' prior) beside the level the test holds it
to (the per-class level, Bonferroni-divided over the 2 x (C - 1) rule and class columns). A miss whose probability
is above that level is at the resolution of the bank: a bank of ``n`` real frames cannot call that count
improbable without flagging real frames as often as the level allows.

    SIMGAP_REALDATA=/work/shared/realdata PYTHONPATH=$PWD python benchmarks/relabel_misses.py [DIR ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from _realdata import realdata_root  # benchmarks/ helper (run as a script)

__all__ = ["main"]

SETS = ("kitti360_osm_bki", "nuscenes_lidarseg_cascol", "mcd_kth_day_06")


def _segment_odds(gate, frame, class_name: str) -> dict | None:
    """The receiving class's segment test as the gate runs it (its worst column), with the tail odds of its count."""
    from scipy.stats import nbinom

    from simgap_ext.gate.segments import SegmentTests, segment_descriptors

    bank = gate.bank
    tests = SegmentTests(bank, gate.config.calibration_margin)
    prepared = gate.stats_spec().prepare(frame)
    stats = gate.stats(prepared)
    names = list(bank.class_names)
    # real scans are in the sensor frame (no sensor_origin); their classes are the bank's own (-1: none)
    lut = np.array([names.index(c) if c in names else -1 for c in stats.class_list] + [-1], np.int64)
    desc, seg_class = segment_descriptors(
        np.asarray(prepared["data"], np.float32), lut[stats.class_of_point], stats.roughness, skip=(-1,)
    )
    result = tests.evaluate(class_name, tests.counts(desc, seg_class)[names.index(class_name)])
    if result is None:
        return None
    n, total = result.n_real, result.real_mean * result.n_real
    count = int(round(result.count))
    p = float(nbinom.sf(count - 1, total + 0.5, n / (n + 1.0))) if count > 0 else 1.0
    return {"result": result, "p": p, "alpha": 1.0 - tests.level}


def main(argv: list[str] | None = None) -> int:
    from simgap_ext.data.taxonomy import roll_up_frame
    from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
    from simgap_ext.gate.realsets import iter_real_scans
    from simgap_ext.gate.validation import RELABEL_TARGET, perturb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", type=Path, help=f"real scan folders (default: {', '.join(SETS)})")
    args = parser.parse_args(argv)
    dirs = args.dirs or [realdata_root() / s for s in SETS]
    config = load_gate_config()
    print(
        f"{'scan':<12} {'class':<14} {'points':>6} {'scene class left':>17} | receiving class's worst segment column: "
        "count (real mean), limit of the excess, P(count or more | real) vs level"
    )
    for root in dirs:
        if not root.is_dir():
            print(f"{root}: not found, skipped")
            continue
        frames = list(iter_real_scans(root))
        misses = 0
        print(f"-- {root.name} ({len(frames)} scans, leave one out)")
        for i, (name, frame) in enumerate(frames):
            bank = ReferenceBank.build([f for j, f in enumerate(frames) if j != i], config=config, device="cpu", seed=0)
            gate = FrameGate(bank, config, device="cpu", quarantine=False)
            out = perturb(frame, "relabel", 0, np.random.default_rng(0))
            if out is None:
                continue
            decision = gate.evaluate(out, update_quarantine=False)
            if not decision.accepted:
                continue
            misses += 1
            info = frame["info"]
            names = {int(k): (v["class"] if isinstance(v, dict) else str(v)) for k, v in info["idToLabels"].items()}
            # the relabelled class is the one the perturbation took out of the label map
            sem = np.asarray(info["pointSemantic"]).astype(np.int64)
            kept = {v["class"] if isinstance(v, dict) else str(v) for v in out["info"]["idToLabels"].values()}
            gone = sorted(set(names.values()) - kept - {RELABEL_TARGET})
            src = gone[0] if gone else "?"
            n_src = int(np.isin(sem, [k for k, v in names.items() if v == src]).sum())
            up = roll_up_frame(out)
            up_sem = np.asarray(up["info"]["pointSemantic"]).astype(np.int64)
            parent = _parent(src)
            up_names = {
                int(k): (v["class"] if isinstance(v, dict) else str(v)) for k, v in up["info"]["idToLabels"].items()
            }
            left = int(np.isin(up_sem, [k for k, v in up_names.items() if v == parent]).sum())
            odds = _segment_odds(gate, out, RELABEL_TARGET) if RELABEL_TARGET in bank.class_names else None
            tail = (
                "no segment test"
                if odds is None
                else f"{odds['result'].count:.0f} {odds['result'].rule} for {odds['result'].other} "
                f"({odds['result'].real_mean:.2f}), limit {odds['result'].limit:.2f}, "
                f"P {odds['p']:.1e} vs {odds['alpha']:.1e}"
            )
            print(f"{name:<12} {src:<14} {n_src:>6} {parent + ' ' + str(left):>17} | {tail}", flush=True)
        print(f"   {misses} of {len(frames)} relabels accepted")
    return 0


def _parent(name: str) -> str:
    """The scene class ``name`` rolls up onto (as the gate's bank rolls real classes up)."""
    from simgap_ext.data.taxonomy import default_taxonomy

    tax = default_taxonomy()
    return (tax.resolve(name, tax.scene_vocabulary) or name) if name in tax else name


if __name__ == "__main__":
    sys.exit(main())
