"""Why the tune's search puts the far-range loss where it does: the objective against the held-out range W1.

Takes the shipped ``hdl-32-nuscenes`` model (``simgap tune`` on nuScenes keyframes 0-19) and sweeps its
``far_range50`` with every other term fixed, on clean embedded renders post-processed with the model (as the
search does). For each value it prints

- the search objective (``1 - mean scene G + 0.02 elevation W1``) on the search's own frames (default world, scene
  seeds 0-7; ``--search-frames N``: 0 .. N-1) against a bank of the fit scans, and on the benchmark's world
  (``bench_fidelity.py``: vehicles and pedestrians only, scene seeds 1000+),
- the pooled range W1 to the fit scans and to the held-out keyframes 20-39,
- the share of returns beyond 60 m, and the far-loss shortfall of ``simgap_ext.tune.far`` (how much of a class's far
  returns the loss removes beyond what the fit scans allow),

and, first, the range quantiles and per-class far shares of the real stretches and the clean worlds. The search
renders through the post-process only (no moving-sensor cast), so the numbers are the search's view.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_far_loss.py [--frames 20] [--far 59.2,75,90,105,0]
        [--search-frames 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from _realdata import NUSCENES, realdata_root  # benchmarks/ helper (run as a script)

_CLASSES = ("ground", "building", "vegetation", "vehicle", "pole")


def _ranges_classes(frames: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    from simgap_ext.tune.far import ranges_and_classes

    rs, cs = zip(*(ranges_and_classes(f) for f in frames), strict=True)
    return np.concatenate(rs), np.concatenate(cs)


def _describe(name: str, frames: Sequence[Mapping[str, Any]]) -> str:
    r, c = _ranges_classes(frames)
    q = np.percentile(r, [50, 90, 99, 99.9])
    per = []
    for k in _CLASSES:
        m = c == k
        if m.any():
            f40, f60 = 100 * np.mean(r[m] > 40), 100 * np.mean(r[m] > 60)
            per.append(f"{k} {100 * m.mean():.1f}% (>40 m {f40:.1f}%, >60 m {f60:.2f}%)")
    return (
        f"{name:26s} {r.size / len(frames):6.0f} pts/frame, range q50/q90/q99/q99.9 "
        + "/".join(f"{x:.1f}" for x in q)
        + f" m, >60 m {100 * np.mean(r > 60):.2f}%\n    "
        + "; ".join(per)
    )


def main(argv: list[str] | None = None) -> int:
    """Run the sweep and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="benchmark-world frames (default 20)")
    parser.add_argument("--far", default="59.2,75,90,105,0", help="far_range50 values, metres (0 = no loss)")
    parser.add_argument(
        "--search-frames",
        type=int,
        default=8,
        help="search-world frames, scene seeds 0 .. N-1 (default 8: the search's own; more: the world's, not the "
        "search sample's, preference)",
    )
    args = parser.parse_args(argv)
    if args.frames < 1 or args.search_frames < 1:
        parser.error("--frames and --search-frames must be >= 1")
    real_dir = realdata_root() / NUSCENES
    if not real_dir.is_dir():
        print(f"bench_far_loss: {real_dir} not found (needs ../shared/realdata)", file=sys.stderr)
        return 2
    from simgap_ext.backends.warp import RandomizerConfig, SceneRandomizer, WarpLidarSource
    from simgap_ext.backends.warp.labels import PENETRATION_MEAN
    from simgap_ext.gate import FrameGate, GateConfig, ReferenceBank
    from simgap_ext.gate.geometric import scene_components, weighted_g
    from simgap_ext.sensors import load_sensor_profile
    from simgap_ext.tune.apply import apply_sensor_effects
    from simgap_ext.tune.far import far_loss_shortfall, far_shares, prepare_clean
    from simgap_ext.tune.profile import load_real_scans
    from simgap_ext.tune.search import objective
    from simgap_ext.tune.stats import compare, scene_stats, summarize

    t0 = time.perf_counter()
    shipped = load_sensor_profile("hdl-32-nuscenes")
    model = shipped.preset("tuned").model
    _, frames = load_real_scans(real_dir, load_sensor_profile("hdl-32"))
    fit, held = frames[:20], frames[20:40]
    el, cols = shipped.vertical_angles_deg, shipped.horizontal_resolution
    world = SceneRandomizer(
        RandomizerConfig(base_counts={"pedestrian": (1, 3), "vehicle": (2, 4)}, penetration=PENETRATION_MEAN),
        sensor_height=shipped.mount_height,
        max_range=shipped.max_range,
    )
    clean = {
        f"search (seeds 0-{args.search_frames - 1})": [
            WarpLidarSource(shipped, "ideal").render(seed=i, frame_id=i) for i in range(args.search_frames)
        ],
        f"bench (seeds 1000-{999 + args.frames})": [
            WarpLidarSource(shipped, "ideal", randomizer=world).render(seed=1000 + i, frame_id=i)
            for i in range(args.frames)
        ],
    }
    print(f"shipped model: far_range50 {model.far_range50:.1f} m, width {model.far_width:.2f} m")
    print(_describe("real fit (keyframes 0-19)", fit))
    print(_describe("real held-out (20-39)", held))
    for name, frs in clean.items():
        print(_describe(f"clean {name}", frs))
    cfg = GateConfig()
    bank = ReferenceBank.build(list(fit), config=cfg, seed=0)
    gate = FrameGate(bank, cfg, quarantine=False)
    real_fit = summarize([scene_stats(f, el, cols) for f in fit])
    real_held = summarize([scene_stats(f, el, cols) for f in held])
    fit_far = far_shares(fit)
    prepared = {name: prepare_clean(frs, fit_far.ranges) for name, frs in clean.items()}
    print()
    print(
        f"{'far_range50':>11} | {'world':26s} {'objective':>9} {'scene G':>7} {'W1 fit':>6} {'W1 held':>7} "
        f"{'>60 m':>6} {'shortfall':>9} | mean scene components"
    )
    for far in [float(x) for x in args.far.split(",")]:
        m = model.replace(far_range50=far)
        for name, frs in clean.items():
            syn = [apply_sensor_effects(f, m, i) for i, f in enumerate(frs)]
            s = summarize([scene_stats(f, el, cols) for f in syn])
            comps = [scene_components(gate.stats(f), bank) for f in syn]
            gs = [weighted_g(c, cfg.scene_weights) for c in comps]
            d_fit, d_held = compare(real_fit, s), compare(real_held, s)
            mean_c = {k: float(np.mean([c[k].score for c in comps if k in c])) for k in comps[0]}
            short = far_loss_shortfall(prepared[name], fit_far, far, model.far_width)
            print(
                f"{far:11.1f} | {name:26s} {objective(gs, d_fit):9.4f} {np.mean(gs):7.4f} {d_fit['range_w1']:6.3f} "
                f"{d_held['range_w1']:7.3f} {100 * np.mean(s['ranges'] > 60):5.2f}% {short:9.3f} | "
                + " ".join(f"{k} {v:.3f}" for k, v in mean_c.items()),
                flush=True,
            )
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
