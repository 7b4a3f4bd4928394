"""What the joint deviation test costs on in-distribution synthetic frames (Warp ``realistic`` preset).

A bank of ``--bank`` realistic frames (scene seeds 1000...) and ``--frames`` other realistic frames (seeds
5000...) of the same sensor, gated with the shipped configuration with and without the joint test (``joint_test``,
:mod:`simgap_ext.gate.joint`), quarantine off: the realistic frames play "real" here, so every rejection the joint
test adds is a false alarm, and the table prints how many and why.

    PYTHONPATH=$PWD python benchmarks/joint_synthetic.py [--sensor vlp-16] [--bank 8] [--frames 30]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter


def main(argv: list[str] | None = None) -> int:
    from simgap_ext.backends import get_scene_source
    from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensor", nargs="+", default=["vlp-16", "os1-64"])
    ap.add_argument("--bank", type=int, default=8)
    ap.add_argument("--frames", type=int, default=30)
    args = ap.parse_args(argv)
    print("| sensor | bank frames | realistic accepted, joint off | joint on | joint rejections (class: components) |")
    print("|---|---:|---:|---:|---|")
    for sensor in args.sensor:
        src = get_scene_source("warp", sensor=sensor, preset="realistic", device="cpu")
        real = [src.render(seed=1000 + i, frame_id=i) for i in range(args.bank)]
        bank = ReferenceBank.build(real, sensor=sensor, config=load_gate_config(), device="cpu")
        gates = {
            on: FrameGate(bank, load_gate_config(joint_test=on), device="cpu", quarantine=False) for on in (False, True)
        }
        accepted = Counter()
        why: list[str] = []
        for i in range(args.frames):
            frame = src.render(seed=5000 + i, frame_id=i)
            for on, gate in gates.items():
                d = gate.evaluate(frame, update_quarantine=False)
                accepted[on] += d.accepted
                if on:
                    why += [r.split(" (")[0] for r in d.reasons if "joint deviation" in r]
        print(
            f"| {sensor} | {args.bank} | {accepted[False]}/{args.frames} | {accepted[True]}/{args.frames} | "
            f"{'; '.join(why)} |"
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
