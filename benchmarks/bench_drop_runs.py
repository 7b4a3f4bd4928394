"""Ring continuity of the background classes: real scans against the searched drop shift per return and per run.

The gate's ring continuity of a class (share of its points with a same-label neighbour in the adjacent column of
their ring, ``FrameStats.class_density``) is what a drop shift per return lowers and a shift per run of columns
(``SensorEffectModel.drop_run_columns``) keeps. This prints it, with each class's points per frame, for the real
nuScenes fit (keyframes 0-19) and held-out (20-39) stretches, and for clean renders of the bench_fidelity world
(scene seeds 1000+) post-processed with the shipped ``hdl-32-nuscenes`` model with its far loss off and the shift
varied: none, per return (the shipped 1.62 and the 2.19 the bounded search chose), per run (the fitted run length
and 12 columns), per run with a per-return share. It also prints the mean length of the real scans' multi-column
gaps on one surface (what ``simgap tune`` fits as ``drop_run_columns``).

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_drop_runs.py [--frames 10] [--real DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _realdata import NUSCENES, realdata_root  # benchmarks/ helper (run as a script)

__all__ = ["main"]

_CLASSES = ("vegetation", "ground", "building")


def _summary(frames: list, el: tuple, cols: int) -> dict[str, tuple[float, float]]:
    from simgap_ext.gate import GateConfig
    from simgap_ext.gate.frame_stats import frame_stats
    from simgap_ext.tune.search import continuity

    bg = GateConfig().background_classes
    sts = [frame_stats(f, vertical_angles_deg=el, horizontal_resolution=cols, background_classes=bg) for f in frames]
    return {c: (v, n / len(frames)) for c, (v, n) in continuity(sts, _CLASSES).items()}


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=realdata_root() / NUSCENES, help="nuScenes keyframe folders")
    parser.add_argument("--frames", type=int, default=10, help="frames per row (default 10)")
    args = parser.parse_args(argv)
    if not args.real.is_dir():
        print(f"bench_drop_runs: {args.real} not found (needs ../shared/realdata)", file=sys.stderr)
        return 2
    from simgap_ext.backends.warp import RandomizerConfig, SceneRandomizer, WarpLidarSource
    from simgap_ext.backends.warp.labels import PENETRATION_MEAN
    from simgap_ext.data.taxonomy import roll_up_frame
    from simgap_ext.gate import GateConfig
    from simgap_ext.sensors import load_sensor_profile
    from simgap_ext.tune import fit_effect_model
    from simgap_ext.tune.apply import apply_sensor_effects
    from simgap_ext.tune.model import OTHER_CLASS
    from simgap_ext.tune.profile import load_real_scans

    t0 = time.perf_counter()
    n = args.frames
    shipped = load_sensor_profile("hdl-32-nuscenes")
    scans, real = load_real_scans(args.real, load_sensor_profile("hdl-32"))
    m0 = shipped.preset("tuned").model
    el, cols = m0.elevations_deg, m0.columns
    fitted = fit_effect_model(scans[:20], run_classes=(OTHER_CLASS, *GateConfig().background_classes))
    run_cols = fitted.drop_run_columns
    cfg = RandomizerConfig(base_counts={"pedestrian": (1, 3), "vehicle": (2, 4)}, penetration=PENETRATION_MEAN)
    world = SceneRandomizer(cfg, sensor_height=shipped.mount_height, max_range=shipped.max_range)
    src = WarpLidarSource(shipped, "ideal", device="cpu", randomizer=world)
    clean = [src.render(seed=1000 + i, frame_id=i) for i in range(n)]
    base = m0.replace(far_range50=0.0)
    k = len(m0.classes)
    veg_half = tuple(0.5 if c == "vegetation" else 1.0 for c in m0.classes)
    rows = {
        "real fit (0-19)": [roll_up_frame(f) for f in real[:n]],
        "real held-out (20-)": [roll_up_frame(f) for f in real[20 : 20 + n]],
    }
    variants = {
        "no shift": base.replace(drop_offset=0.0),
        "per return +1.62": base,
        "per return +2.19": base.replace(drop_offset=2.19),
        f"runs {run_cols:.2f} +2.19": base.replace(drop_offset=2.19, drop_run_columns=run_cols),
        "runs 12 +2.19": base.replace(drop_offset=2.19, drop_run_columns=12.0),
        f"runs {run_cols:.2f} +2.19, all 0.5": base.replace(
            drop_offset=2.19, drop_run_columns=run_cols, drop_offset_isolated=(0.5,) * k
        ),
        f"runs {run_cols:.2f} +2.19, veg 0.5": base.replace(
            drop_offset=2.19, drop_run_columns=run_cols, drop_offset_isolated=veg_half
        ),
    }
    for name, m in variants.items():
        rows[name] = [apply_sensor_effects(f, m, 7 + i) for i, f in enumerate(clean)]
    print(
        f"real multi-column gaps on one surface (background classes, keyframes 0-19): mean {run_cols:.2f} columns; "
        f"{n} frames per row; shipped hdl-32-nuscenes model, far loss off; shift on {', '.join(m0.drop_offset_classes)}"
    )
    head = f"{'row':<30}" + "".join(f" {c + ' cont':>16} {'pts':>6}" for c in _CLASSES)
    print(head)
    print("-" * len(head))
    for name, frames in rows.items():
        s = _summary(frames, el, cols)
        cells = "".join(f" {s[c][0]:>16.3f} {s[c][1]:>6.0f}" if c in s else f" {'-':>16} {'-':>6}" for c in _CLASSES)
        print(f"{name:<30}{cells}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
