"""What the hidden-class check (gate.missing) costs per frame, next to the whole gate, on real OS1-128 scans.

A bank is built from all but the first ``--held-out`` scans of MCD kth_day_06 (OS1-128, ../shared/realdata), and
each held-out scan (as it is, and with its most populous scene class relabelled as vegetation) is gated
``--repeats`` times. The table gives, per case, the median ``FrameGate.evaluate`` time, the median time of the
hidden-class check inside it (the vote profiles of the frame's classes and the rank tests), and its share.

    SIMGAP_REALDATA=/work/shared/realdata PYTHONPATH=$PWD python benchmarks/bench_hidden_classes.py [--held-out 2]

``--absence`` instead counts, in each real dataset (classes rolled up to the scene vocabulary, as the bank does),
the scans that lack a class every other scan of the dataset holds: how often real frames do what the check flags.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from _realdata import realdata_root  # benchmarks/ helper (run as a script)

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    import simgap_ext.gate.gate as gate_module
    from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
    from simgap_ext.gate.realsets import iter_real_scans
    from simgap_ext.gate.validation import perturb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mcd_kth_day_06", help="folder under ../shared/realdata")
    parser.add_argument("--held-out", type=int, default=2, help="scans gated (the rest build the bank)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--absence", action="store_true", help="count real scans lacking a class all others hold")
    args = parser.parse_args(argv)
    if args.absence:
        return _absence()
    root = realdata_root() / args.dataset
    if not root.is_dir():
        print(f"no real data at {root} (set SIMGAP_REALDATA)", file=sys.stderr)
        return 2
    scans = list(iter_real_scans(root))
    held, rest = scans[: args.held_out], scans[args.held_out :]
    cfg = load_gate_config()
    t0 = time.perf_counter()
    bank = ReferenceBank.build(rest, config=cfg, device="cpu")
    print(f"bank of {bank.frame_count} {bank.sensor} scans built in {time.perf_counter() - t0:.1f} s")
    gate = FrameGate(bank, cfg, device="cpu", quarantine=False)
    spent: list[float] = []
    original = gate_module._hidden

    def timed(*a, **k):
        t = time.perf_counter()
        out = original(*a, **k)
        spent.append(time.perf_counter() - t)
        return out

    gate_module._hidden = timed
    print("| scan | case | points | gate ms/frame | hidden-class check ms/frame | share | accepted |")
    print("|---|---|---:|---:|---:|---:|---:|")
    try:
        for name, frame in held:
            cases = {"real": frame, "relabelled": perturb(frame, "relabel_scene", 0, np.random.default_rng(0))}
            for case, f in cases.items():
                gate.evaluate(f, update_quarantine=False)  # warm-up
                spent.clear()
                total = []
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    d = gate.evaluate(f, update_quarantine=False)
                    total.append(time.perf_counter() - t)
                g_ms, h_ms = 1000 * statistics.median(total), 1000 * statistics.median(spent)
                n = len(f["data"])
                print(f"| {name} | {case} | {n} | {g_ms:.0f} | {h_ms:.2f} | {h_ms / g_ms:.2%} | {d.accepted} |")
    finally:
        gate_module._hidden = original
    return 0


def _absence() -> int:
    import numpy as np

    from simgap_ext.data.taxonomy import roll_up_frame
    from simgap_ext.gate.realsets import iter_real_scans

    sets = ("open3d_ml/kitti_seq01_pr", "kitti360_osm_bki", "nuscenes_lidarseg_cascol", "mcd_kth_day_06")
    print("| dataset | scans | scans lacking a class every other scan holds |")
    print("|---|---:|---|")
    for rel in sets:
        root = realdata_root() / rel
        if not root.is_dir():
            continue
        held = []
        for name, frame in iter_real_scans(root):
            info = roll_up_frame(frame)["info"]
            names = {int(k): v["class"] if isinstance(v, dict) else str(v) for k, v in info["idToLabels"].items()}
            ids = np.unique(np.asarray(info["pointSemantic"]))  # classes with points, not every name of the map
            held.append((name, {names[int(i)] for i in ids if int(i) in names}))
        odd = []
        for i, (name, classes) in enumerate(held):
            others = [c for j, (_, c) in enumerate(held) if j != i]
            always = set.intersection(*others) if others else set()
            if always - classes:
                odd.append(f"{name} (no {', '.join(sorted(always - classes))})")
        print(f"| {rel} | {len(held)} | {'; '.join(odd) or 'none'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
