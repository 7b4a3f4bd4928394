"""Volumetric foliage: does embedded vegetation look like real vegetation, with and without beam penetration?

Two measurements, each for the embedded world without penetration (``penetration = {}``: every crown a smooth
mesh hull, the world before this change) and with the shipped default (:data:`PENETRATION_MEAN`):

1. **Real vs embedded vegetation geometry.** On the first ``--fit`` nuScenes-lidarseg HDL-32E keyframes of
   ``../shared/realdata/nuscenes_lidarseg_cascol`` (the stretch the shipped ``hdl-32-nuscenes`` profile was fitted
   on; ``bench_fidelity.py`` judges on the later one) and on ``--frames`` embedded street frames of the shipped
   ``hdl-32-nuscenes`` profile: the medians of the gate's local descriptors (:mod:`simgap_ext.gate.plausibility`:
   scattering, planarity, z_spread) over vegetation points, and the along-beam depth scatter of vegetation
   (robust sigma of the range second difference between three adjacent vegetation returns of one beam, metres,
   the estimator of :mod:`simgap_ext.tune.stats`). The real scatter, with the embedded no-penetration scatter
   (hull curvature and sensor noise) removed in quadrature, gives the mean free path an exponential penetration
   would need if each ray drew its own depth: ``mu = sqrt(s_real^2 - s_hull^2) / c`` with ``c`` the robust sigma
   of ``e1 - 2 e2 + e3`` for independent unit exponentials (Monte Carlo here). The shipped model draws one depth
   per leaf clump (:mod:`simgap_ext.backends.warp.foliage`), so its own along-beam scatter is lower than this
   estimator's premise; the columns beside it (scattering, planarity, z_spread) say how close the result is.
   The same rows at every mean of ``--means`` (the shipped clump model) give the mean at which the embedded median
   local scattering (the gate's plausibility descriptor) equals the real one, by linear interpolation between the
   two means that bracket it (:func:`scattering_match`): the estimate for the model the world ships.
2. **Issue 7's embedded relabel.** A ``vlp-16`` bank of 8 ``realistic`` renders (open layout, seeds 1000-1007, as
   tests/test_gate_frames.py builds it); test seeds 0-3: acceptance of the frames as rendered, and of the same
   frames with every vehicle point relabelled ``vegetation``, with vegetation's plausibility and foreign
   components.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_foliage.py [--real DIR] [--fit 20] [--frames 10] [--device cpu]
        [--means 0.2,0.3,0.4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _realdata import NUSCENES, realdata_root  # benchmarks/ helper (run as a script)

__all__ = ["main", "run"]

_DEFAULT_REAL = realdata_root() / NUSCENES


def _robust_sigma(d2: np.ndarray) -> float:
    if d2.size == 0:
        return float("nan")
    return 1.4826 * float(np.median(np.abs(d2 - np.median(d2)))) / np.sqrt(6.0)


def _veg_mask(frame: dict[str, Any]) -> np.ndarray:
    from simgap_ext.frame import id_to_class

    ids = [i for i, n in id_to_class(frame).items() if n == "vegetation"]
    return np.isin(np.asarray(frame["info"]["pointSemantic"]), ids)


def vegetation_geometry(frames: list[dict[str, Any]], elevations_deg: Any, columns: int) -> dict[str, float]:
    """Median descriptors and along-beam depth scatter of the vegetation points of ``frames``."""
    from simgap_ext.gate.plausibility import DESCRIPTOR_NAMES, local_descriptors
    from simgap_ext.tune.range_image import organize, second_difference

    desc, d2s, n_pts = [], [], 0
    for fr in frames:
        pts = np.asarray(fr["data"], dtype=np.float64)
        veg = _veg_mask(fr)
        n_pts += int(veg.sum())
        idx, d = local_descriptors(pts)
        desc.append(d[veg[idx]])
        img = organize(pts, np.asarray(elevations_deg, dtype=np.float64), int(columns))
        is_veg = np.zeros(img.index.shape, bool)
        is_veg[img.valid] = veg[img.index[img.valid]]
        trip = is_veg & np.roll(is_veg, 1, axis=1) & np.roll(is_veg, -1, axis=1)
        d2s.append(second_difference(img.range)[trip])
    dd = np.concatenate(desc) if desc else np.zeros((0, len(DESCRIPTOR_NAMES)))
    col = {n: i for i, n in enumerate(DESCRIPTOR_NAMES)}
    return {
        "points_per_frame": n_pts / max(len(frames), 1),
        "scattering": float(np.median(dd[:, col["scattering"]])) if dd.size else float("nan"),
        "planarity": float(np.median(dd[:, col["planarity"]])) if dd.size else float("nan"),
        "z_spread": float(np.median(dd[:, col["z_spread"]])) if dd.size else float("nan"),
        "depth_scatter": _robust_sigma(np.concatenate(d2s)) if d2s else float("nan"),
    }


def _exp_constant(rng: np.random.Generator, n: int = 400_000) -> float:
    e = rng.standard_exponential((3, n))
    return _robust_sigma(e[0] - 2.0 * e[1] + e[2])


def relabel_vehicles(frame: dict[str, Any]) -> dict[str, Any]:
    """A copy of an embedded frame with every vehicle point labelled vegetation (stuff: instance 0)."""
    from simgap_ext.backends.warp import CLASS_IDS

    info = dict(frame["info"])
    sem = np.asarray(info["pointSemantic"]).copy()
    inst = np.asarray(info["pointInstance"]).copy()
    moved = sem == CLASS_IDS["vehicle"]
    sem[moved], inst[moved] = CLASS_IDS["vegetation"], 0
    info["pointSemantic"], info["pointInstance"] = sem, inst
    return {**frame, "info": info}


def _relabel_case(penetration: dict[str, float] | None, device: str | None) -> dict[str, Any]:
    from simgap_ext.backends.warp import RandomizerConfig, SceneRandomizer, WarpLidarSource
    from simgap_ext.gate import FrameGate, GateConfig, ReferenceBank
    from simgap_ext.sensors import load_sensor_profile

    kw = {} if penetration is None else {"penetration": penetration}
    prof = load_sensor_profile("vlp-16")
    world = SceneRandomizer(
        RandomizerConfig(street=False, **kw), sensor_height=prof.mount_height, max_range=prof.max_range
    )
    src = WarpLidarSource(prof, "realistic", device=device, randomizer=world)
    bank = ReferenceBank.build([src.render(seed=s, frame_id=i) for i, s in enumerate(range(1000, 1008))], device=device)
    gate = FrameGate(bank, GateConfig(), device=device, quarantine=False)
    plain, relab, plaus, foreign = 0, 0, [], []
    seeds = (0, 1, 2, 3)
    for s in seeds:
        fr = src.render(seed=s, frame_id=s)
        plain += int(gate.evaluate(fr, update_quarantine=False).accepted)
        d = gate.evaluate(relabel_vehicles(fr), update_quarantine=False)
        relab += int(d.accepted)
        veg = d.per_class.get("vegetation")
        if veg is not None:
            plaus.append(veg.components.get("plausibility", float("nan")))
            foreign.append(veg.components.get("foreign", float("nan")))
    return {
        "frames": len(seeds),
        "accepted": plain,
        "relabel_accepted": relab,
        "veg_plausibility": float(np.mean(plaus)) if plaus else float("nan"),
        "veg_foreign": float(np.mean(foreign)) if foreign else float("nan"),
    }


def scattering_match(means: list[float], scattering: list[float], target: float) -> float | None:
    """The mean free path at which the embedded vegetation's median local scattering equals ``target``: linear
    interpolation between the two grid means that bracket it (scattering grows with the mean), None when none do."""
    pairs = sorted(zip(means, scattering, strict=True))
    for (m0, s0), (m1, s1) in zip(pairs, pairs[1:], strict=False):
        if min(s0, s1) <= target <= max(s0, s1) and s1 != s0:
            return float(m0 + (target - s0) * (m1 - m0) / (s1 - s0))
    return None


def run(
    real_dir: Path, *, n_fit: int, frames: int, device: str | None, means: tuple[float, ...] = (0.2, 0.3, 0.4)
) -> dict[str, Any]:
    """Both measurements, and the foliage rows at every mean of ``means``; a JSON-safe dict."""
    from simgap_ext.backends.warp import RandomizerConfig, SceneRandomizer, WarpLidarSource
    from simgap_ext.backends.warp.labels import PENETRATION_MEAN
    from simgap_ext.data.taxonomy import roll_up_frame
    from simgap_ext.sensors import load_sensor_profile
    from simgap_ext.tune.profile import load_real_scans

    shipped = load_sensor_profile("hdl-32-nuscenes")
    el, cols = shipped.vertical_angles_deg, shipped.horizontal_resolution
    _, real_frames = load_real_scans(real_dir, shipped)
    # the fit stretch only (as `simgap tune` for the shipped profile): bench_fidelity judges on the later stretch
    real_frames = real_frames[:n_fit]
    rows = {"real nuScenes": vegetation_geometry([roll_up_frame(f) for f in real_frames], el, cols)}
    worlds = {"embedded, hull (none)": {}, "embedded, foliage": dict(PENETRATION_MEAN)}
    grid = {f"embedded, mean {m:g} m": {"vegetation": m} for m in means if m != PENETRATION_MEAN["vegetation"]}
    for name, pen in {**worlds, **grid}.items():
        kw = {} if pen is None else {"penetration": pen}
        cfg = RandomizerConfig(base_counts={"pedestrian": (1, 3), "vehicle": (2, 4)}, **kw)
        src = WarpLidarSource(
            shipped,
            "realistic",
            device=device,
            randomizer=SceneRandomizer(cfg, sensor_height=shipped.mount_height, max_range=shipped.max_range),
        )
        rows[name] = vegetation_geometry([src.render(seed=1000 + i, frame_id=i) for i in range(frames)], el, cols)
    c = _exp_constant(np.random.default_rng(0))
    s_real, s_hull = rows["real nuScenes"]["depth_scatter"], rows["embedded, hull (none)"]["depth_scatter"]
    mu = float(np.sqrt(max(s_real**2 - s_hull**2, 0.0)) / c)
    relabel = {name: _relabel_case(pen, device) for name, pen in worlds.items()}
    at = {PENETRATION_MEAN["vegetation"]: rows["embedded, foliage"]}
    at.update({m: rows[f"embedded, mean {m:g} m"] for m in means if m != PENETRATION_MEAN["vegetation"]})
    return {
        "scattering_match": scattering_match(
            list(at), [r["scattering"] for r in at.values()], rows["real nuScenes"]["scattering"]
        ),
        "real_frames": len(real_frames),
        "rows": rows,
        "exp_constant": c,
        "mu_estimate": mu,
        "default_mean": dict(PENETRATION_MEAN),
        "relabel": relabel,
    }


def main(argv: list[str] | None = None) -> int:
    """Run and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=_DEFAULT_REAL, help="nuScenes keyframe folders")
    parser.add_argument("--fit", type=int, default=20, help="real keyframes measured (the fit stretch, default 20)")
    parser.add_argument("--frames", type=int, default=10, help="embedded frames per world (default 10)")
    parser.add_argument("--device", default=None, help="Warp device (default: CUDA when available, else CPU)")
    parser.add_argument(
        "--means",
        default="0.2,0.3,0.4",
        help="foliage mean free paths (metres, comma-separated) rendered beside the default (default 0.2,0.3,0.4)",
    )
    args = parser.parse_args(argv)
    try:
        means = tuple(float(m) for m in args.means.split(",") if m.strip())
    except ValueError:
        parser.error(f"--means: numbers separated by commas, got {args.means!r}")
    if any(not m >= 0 for m in means):
        parser.error(f"--means must be >= 0, got {args.means!r}")
    if not args.real.is_dir():
        print(f"bench_foliage: {args.real} not found (needs ../shared/realdata)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    res = run(args.real, n_fit=args.fit, frames=args.frames, device=args.device, means=means)
    head = (
        f"{'vegetation points':<24} {'pts/frame':>9} {'scattering':>10} {'planarity':>9} {'z_spread m':>10} "
        f"{'depth scatter m':>15}"
    )
    print(head)
    print("-" * len(head))
    for name, r in res["rows"].items():
        print(
            f"{name:<24} {r['points_per_frame']:>9.0f} {r['scattering']:>10.3f} {r['planarity']:>9.3f} "
            f"{r['z_spread']:>10.3f} {r['depth_scatter']:>15.3f}"
        )
    print(
        f"mean free path from the real depth scatter: mu = sqrt(s_real^2 - s_hull^2) / {res['exp_constant']:.3f} = "
        f"{res['mu_estimate']:.2f} m (PENETRATION_MEAN: {res['default_mean']})"
    )
    match = res["scattering_match"]
    print(
        "mean free path at which the embedded median local scattering (one depth per leaf clump) equals the real: "
        + (f"{match:.2f} m" if match is not None else "not bracketed by --means")
    )
    head = (
        f"{'vlp-16 open, bank of 8 realistic':<32} {'accepted':>8} {'relabel accepted':>16} {'veg plaus.':>10} "
        f"{'veg foreign':>11}"
    )
    print(head)
    print("-" * len(head))
    for name, r in res["relabel"].items():
        print(
            f"{name:<32} {r['accepted']:>6}/{r['frames']} {r['relabel_accepted']:>14}/{r['frames']} "
            f"{r['veg_plausibility']:>10.3f} {r['veg_foreign']:>11.3f}"
        )
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
