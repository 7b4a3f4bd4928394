"""The gate part of ``bench_fidelity.py``'s ``real (fit stretch)`` row, without rendering or tuning.

The first ``--fit`` nuScenes-lidarseg keyframes (rolled up to the scene vocabulary) are gated against a
``ReferenceBank`` of the remaining ones with the default ``GateConfig`` (geometric, no quarantine): the real-vs-real
floor of ``bench_fidelity.py``'s acceptance column, in seconds rather than the minutes its renders and CMA-ES take.
Prints each frame's thin classes (under ``--thin`` points) with their ring-continuity distance and d_max (widened
for the frame's own binomial sampling error, ``ReferenceBank.density_d_max``) next to the class's d_max, and the
reasons of every rejection.

    SIMGAP_REALDATA=/work/shared/realdata PYTHONPATH=$PWD python benchmarks/real_stretch_gate.py [--fit 20] [--thin 60]
"""

from __future__ import annotations

import argparse
import sys

from _realdata import NUSCENES, realdata_root  # benchmarks/ helper (run as a script)


def main(argv: list[str] | None = None) -> int:
    from simgap_ext.data.taxonomy import roll_up_frame
    from simgap_ext.gate import FrameGate, GateConfig, ReferenceBank
    from simgap_ext.sensors import load_sensor_profile
    from simgap_ext.tune.profile import load_real_scans

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", default=str(realdata_root() / NUSCENES))
    ap.add_argument("--fit", type=int, default=20)
    ap.add_argument("--thin", type=int, default=60)
    args = ap.parse_args(argv)
    _, frames = load_real_scans(args.real, load_sensor_profile("hdl-32"))
    if len(frames) <= args.fit + 2:
        print(f"need more than {args.fit + 2} real scans in {args.real}, found {len(frames)}", file=sys.stderr)
        return 2
    config = GateConfig()
    bank = ReferenceBank.build(frames[args.fit :], config=config, device="cpu")
    gate = FrameGate(bank, config, device="cpu", quarantine=False)
    print(f"bank: keyframes {args.fit}-{len(frames) - 1}; gated: keyframes 0-{args.fit - 1}")
    print("| keyframe | accepted | thin class: points, continuity distance / d_max (class d_max) | reasons |")
    print("|---:|---|---|---|")
    accepted = 0
    for i, frame in enumerate(frames[: args.fit]):
        d = gate.evaluate(roll_up_frame(frame), update_quarantine=False)
        accepted += d.accepted
        thin = [
            f"{c}: {cd.n_points}, {cd.evidence['density'][0]:.3f} / {cd.evidence['density'][1]:.3f} "
            f"({bank.class_d_max(gate.reference_class(c) or c, 'density'):.3f})"
            for c, cd in sorted(d.per_class.items())
            if cd.n_points < args.thin and "density" in cd.evidence
        ]
        print(f"| {i} | {'yes' if d.accepted else 'no'} | {'; '.join(thin)} | {'; '.join(d.reasons)} |")
    print(f"\naccepted {accepted} of {args.fit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
