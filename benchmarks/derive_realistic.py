"""Derive the per-beam terms of a parametric ``realistic`` preset from real scans: sky no-return and self-occlusion.

A parametric preset cannot hold a fitted table, but two per-beam terms explain most of what separates real
HDL-32E sweeps from the embedded world's `ideal` frames (docs/backend.md, "Fidelity"):

- self-occlusion: the low beams of a roof-mounted sensor hit the vehicle's own body, which returns nothing; the
  hidden share of the azimuth circle grows with the depression angle;
- sky: real upper beams look at sky through gaps the synthetic street fills with facades and trees.

Both are read off the per-beam return ratios (returns / columns, the gate's own statistic,
``simgap_ext.gate.frame_stats``) of real keyframes against `ideal` frames of the embedded street world at the same
rotation rate: ``loss_b = 1 - (real_b / ideal_b) / baseline`` with ``baseline`` the median of ``real_b / ideal_b``
over the middle beams (-14..-2 degrees: the isolated ray drop every beam has). A least-squares fit (SciPy) of the
clipped ramps ``clip(k (e0 - el), 0, 1)`` below the horizon and ``clip(k (el - e0), 0, 1)`` above it gives
``self_occlusion_per_deg``/``self_occlusion_elevation_deg`` and ``sky_drop_per_deg``/``sky_drop_elevation_deg``;
the sector centre is the doubled-angle circular mean of the self-occluded cells of the fitted model
(``simgap tune``'s occlusion table). Only the fit keyframes are used: bench_fidelity evaluates on the others.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/derive_realistic.py [--real DIR] [--fit 20] [--frames 8]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _realdata import NUSCENES, realdata_root  # benchmarks/ helper (run as a script)

__all__ = ["derive", "main"]

_DEFAULT_REAL = realdata_root() / NUSCENES


def _ramp_fit(el: np.ndarray, loss: np.ndarray, sign: float) -> tuple[float, float]:
    """(k, e0) of ``clip(k * sign * (el - e0), 0, 1)`` fitted to ``loss`` by least squares."""
    from scipy.optimize import least_squares

    def resid(x: np.ndarray) -> np.ndarray:
        return np.clip(x[0] * sign * (el - x[1]), 0.0, 1.0) - loss

    start = np.array([0.05, float(el[np.argmin(np.abs(loss - 0.05))])])
    res = least_squares(resid, start, bounds=([0.0, -90.0], [1.0, 90.0]))
    return float(res.x[0]), float(res.x[1])


def derive(real_dir: Path, *, n_fit: int, frames: int, device: str | None) -> dict[str, Any]:
    """Measure the per-beam losses and fit the four preset values; returns a JSON-safe dict."""
    from simgap_ext.backends.warp import RandomizerConfig, SceneRandomizer, WarpLidarSource
    from simgap_ext.gate.frame_stats import frame_stats
    from simgap_ext.sensors import load_sensor_profile
    from simgap_ext.tune.fit import fit_effect_model
    from simgap_ext.tune.profile import load_real_scans

    base = load_sensor_profile("hdl-32")
    scans, real_frames = load_real_scans(real_dir, base)
    scans, real_frames = scans[:n_fit], real_frames[:n_fit]
    el = np.asarray(base.vertical_angles_deg, dtype=np.float64)

    def ratios(frs: list[dict[str, Any]]) -> np.ndarray:
        stats = [frame_stats(f, vertical_angles_deg=el, horizontal_resolution=base.horizontal_resolution) for f in frs]
        return np.mean([s.beam_ratio for s in stats], axis=0)

    cfg = RandomizerConfig(base_counts={"pedestrian": (1, 3), "vehicle": (2, 4)})
    world = SceneRandomizer(cfg, sensor_height=base.mount_height, max_range=base.max_range)
    src = WarpLidarSource("hdl-32", "ideal", device=device, rotation_rate_hz=20.0, randomizer=world)
    ideal = ratios([src.render(seed=1000 + i, frame_id=i) for i in range(frames)])
    real = ratios(real_frames)
    rel = real / np.maximum(ideal, 1e-6)
    mid = (el >= -14.0) & (el <= -2.0)
    baseline = float(np.median(rel[mid]))
    loss = np.clip(1.0 - rel / baseline, 0.0, 1.0)
    low, high = el < -2.0, el > -2.0
    k_occ, e_occ = _ramp_fit(el[low], loss[low], -1.0)
    k_sky, e_sky = _ramp_fit(el[high], loss[high], 1.0)

    model = fit_effect_model(scans)
    cells = [(b, a0, a1) for b, a0, a1 in model.occlusion]
    if cells:
        mids = np.radians([0.5 * (a0 + a1) for _, a0, a1 in cells])
        wts = np.array([a1 - a0 for _, a0, a1 in cells])
        ang = math.degrees(math.atan2(float((wts * np.sin(2 * mids)).sum()), float((wts * np.cos(2 * mids)).sum())))
        azimuth = (0.5 * ang) % 180.0
    else:
        azimuth = 0.0
    return {
        "elevations_deg": el.tolist(),
        "real_ratio": real.tolist(),
        "ideal_ratio": ideal.tolist(),
        "baseline": baseline,
        "loss": loss.tolist(),
        "self_occlusion_per_deg": k_occ,
        "self_occlusion_elevation_deg": e_occ,
        "self_occlusion_azimuth_deg": azimuth,
        "sky_drop_per_deg": k_sky,
        "sky_drop_elevation_deg": e_sky,
    }


def main(argv: list[str] | None = None) -> int:
    """Print the per-beam table and the derived preset values."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=_DEFAULT_REAL, help="nuScenes keyframe folders")
    parser.add_argument("--fit", type=int, default=20, help="real keyframes to derive from (default 20, the first)")
    parser.add_argument("--frames", type=int, default=8, help="ideal embedded frames (default 8)")
    parser.add_argument("--device", default=None, help="Warp device (default: CUDA when available, else CPU)")
    args = parser.parse_args(argv)
    if not args.real.is_dir():
        print(f"derive_realistic: {args.real} not found (needs ../shared/realdata)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    res = derive(args.real, n_fit=args.fit, frames=args.frames, device=args.device)
    print(f"{'beam':>4} {'elev deg':>8} {'real':>6} {'ideal':>6} {'loss':>6}")
    for b, (e, r, i, lo) in enumerate(
        zip(res["elevations_deg"], res["real_ratio"], res["ideal_ratio"], res["loss"], strict=True)
    ):
        print(f"{b:>4} {e:>8.2f} {r:>6.3f} {i:>6.3f} {lo:>6.3f}")
    print(f"baseline real/ideal on the middle beams: {res['baseline']:.3f}")
    for key in (
        "sky_drop_per_deg",
        "sky_drop_elevation_deg",
        "self_occlusion_per_deg",
        "self_occlusion_elevation_deg",
        "self_occlusion_azimuth_deg",
    ):
        print(f"{key} = {res[key]:.3f}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
