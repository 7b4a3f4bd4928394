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


def main(argv: list[str] | None = None) -> int:
    from simgap_ext.data.taxonomy import roll_up_frame
    from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
    from simgap_ext.gate.realsets import iter_real_scans

    # private helpers of perturb: the class it relabels is defined there once
    from simgap_ext.gate.validation import RELABEL_TARGET, _arrays, _source_class, perturb

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
            # the class perturb relabelled (its own rule), and what the roll-up leaves of its scene class
            _, sem, _, names = _arrays(frame)
            src = _source_class(names, sem)
            n_src = int(np.isin(sem, [k for k, v in names.items() if v == src]).sum())
            parent = _parent(src)
            _, up_sem, _, up_names = _arrays(roll_up_frame(out))
            left = int(np.isin(up_sem, [k for k, v in up_names.items() if v == parent]).sum())
            seg = gate.segment_test(out, RELABEL_TARGET)
            tail = (
                "no segment test"
                if seg is None
                else f"{seg.count:.0f} {seg.rule} for {seg.other} ({seg.real_mean:.2f}), limit {seg.limit:.2f}, "
                f"P {seg.tail_probability:.1e} vs {1.0 - seg.level:.1e}"
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
