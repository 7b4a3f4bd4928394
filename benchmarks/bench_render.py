"""Frames per second of the embedded Warp LiDAR backend (scene sampling + mesh build + ray cast + effects).

Usage::

    python benchmarks/bench_render.py                       # os1-64 and os1-128, ideal and realistic, every device
    python benchmarks/bench_render.py --sensors vlp-16 --frames 20 --devices cpu

Prints one table row per (sensor, preset, device): rays per frame, mean points per frame, frames/s and the share
of time spent in each stage. The first frame per configuration (kernel compilation, warm-up) is not timed.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from simgap_ext._warp import available_devices, get_warp
from simgap_ext.backends.warp import WarpLidarSource
from simgap_ext.backends.warp.effects import apply_effects
from simgap_ext.backends.warp.raycast import build_mesh, cast_spinning

log = logging.getLogger("bench_render")


def bench(sensor: str, preset: str, device: str, frames: int) -> dict[str, float]:
    """Time ``frames`` renders; returns fps, points and per-stage seconds (means)."""
    wp = get_warp()
    src = WarpLidarSource(sensor, preset, device=device)
    src.render(seed=10_000)  # warm-up: kernel compile / load
    wp.synchronize_device(device)
    t_total = time.perf_counter()
    points = []
    for i in range(frames):
        points.append(src.render(seed=i, frame_id=i)["data"].shape[0])
    wp.synchronize_device(device)
    total = time.perf_counter() - t_total
    # Stage split on a second pass (same work, timed piecewise).
    prof = src.profile
    stages = {"scene": 0.0, "mesh": 0.0, "cast": 0.0, "effects": 0.0}
    for i in range(frames):
        t0 = time.perf_counter()
        scene = src.sample_scene(seed=i)
        t1 = time.perf_counter()
        mesh = build_mesh(scene.vertices, scene.faces, device=device)
        wp.synchronize_device(device)
        t2 = time.perf_counter()
        hits = cast_spinning(
            mesh,
            scene.sensor_origin,
            prof.vertical_angles_rad(),
            prof.horizontal_resolution,
            min_range=prof.min_range,
            max_range=prof.max_range,
            device=device,
        )
        t3 = time.perf_counter()
        apply_effects(
            hits.range,
            hits.cos_incidence,
            np.full(hits.range.shape, 0.3, dtype=np.float32),
            src.effects,
            max_range=prof.max_range,
            rng=np.random.default_rng(i),
            elevations_deg=np.asarray(prof.vertical_angles_deg),
        )
        t4 = time.perf_counter()
        for k, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stages[k] += dt
    return {
        "fps": frames / total,
        "ms": 1000.0 * total / frames,
        "rays": prof.n_rays,
        "points": float(np.mean(points)),
        **{k: v / frames for k, v in stages.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sensors", nargs="+", default=["os1-64", "os1-128"])
    parser.add_argument("--presets", nargs="+", default=["ideal", "realistic"])
    parser.add_argument("--devices", nargs="+", default=None, help="default: every Warp device here")
    parser.add_argument("--frames", type=int, default=10)
    args = parser.parse_args()
    devices = args.devices or available_devices()
    header = (
        f"{'sensor':8} {'preset':9} {'device':7} {'rays':>7} {'points':>8} {'ms/frame':>9} {'frames/s':>9}"
        "   stage split (scene/mesh/cast/effects ms)"
    )
    print(header)
    print("-" * len(header))
    for device in devices:
        for sensor in args.sensors:
            for preset in args.presets:
                r = bench(sensor, preset, device, args.frames)
                split = "/".join(f"{1000 * r[k]:.1f}" for k in ("scene", "mesh", "cast", "effects"))
                row = (
                    f"{sensor:8} {preset:9} {device:7} {r['rays']:7d} {r['points']:8.0f} {r['ms']:9.1f} {r['fps']:9.1f}"
                )
                print(f"{row}   {split}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
