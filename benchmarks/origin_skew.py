"""Why real nuScenes scans show their sensor 0.2-0.4 m behind the origin: ego motion during the sweep.

The gate's ``origin`` component (``simgap_ext.gate.origin``) reads the apex of the lowest beam's cone. On the 40
nuScenes-lidarseg keyframes of ``../shared/realdata`` it lies 0.2-0.4 m along -y (LIDAR_TOP: y forward), on
KITTI-360 within centimetres of the origin. nuScenes point clouds are ego-motion compensated into the sensor frame
at the sweep's end (nuScenes-devkit issues #976 and #902; NVIDIA ncore's converters compensate nuScenes to the
frame end), so the column fired at sweep fraction ``tau`` was measured from ``s(tau) = w (tau - 1)``.

For every keyframe the script prints:

- the gate's apparent origin (``apparent_origin``, the bank's statistic);
- ``w`` and the reference fraction fitted from the scan alone (``simgap_ext.tune.motion.measure_sweep_motion``:
  every low beam's cone with its apex moving linearly over the sweep; columns in firing order give ``tau``);
- the ego speed from GICP registration (small_gicp) of the neighbouring keyframes (2 Hz, taken as 0.5 s apart) and
  the displacement it predicts over one 20 Hz sweep (0.05 s), with its heading;
- the apparent origin after removing the *registration-predicted* skew (``w_reg (tau - 1)``): what a sensor at
  rest would show (the rest is the ego body hiding the low beams ahead and behind, which the tuned model's
  self-occlusion table reproduces).

Control: KITTI-360 (HDL-64E, 10 Hz, poses given): scans are not motion compensated (each point in the sensor frame
of its own firing), so the fit reads ``w ~ 0`` although the car drives at 10-12 m/s (1 m per sweep), and ``tau``
comes from the azimuth (sweep starting behind the car, clockwise).

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/origin_skew.py [--real DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _realdata import NUSCENES, realdata_root  # benchmarks/ helper (run as a script)

__all__ = ["main", "nuscenes_rows", "kitti360_rows"]

_KEYFRAME_DT = 0.5  # s: nuScenes keyframes are sampled at 2 Hz
_NUSCENES_HZ = 20.0
_KITTI360 = "kitti360_osm_bki"
_KITTI_HZ = 10.0


def _register(target: np.ndarray, source: np.ndarray, init: np.ndarray) -> np.ndarray:
    """(4, 4) transform of ``source`` onto ``target`` (small_gicp GICP, coarse then fine)."""
    import small_gicp

    res = small_gicp.align(
        target, source, init_T_target_source=init, downsampling_resolution=0.5, max_correspondence_distance=5.0,
        num_threads=1, max_iterations=50,
    )  # fmt: skip
    res = small_gicp.align(
        target, source, init_T_target_source=res.T_target_source, downsampling_resolution=0.25,
        max_correspondence_distance=1.0, num_threads=1, max_iterations=50,
    )  # fmt: skip
    return np.asarray(res.T_target_source, dtype=np.float64)


def _deskew(points: np.ndarray, tau: np.ndarray, w: np.ndarray, reference: float) -> np.ndarray:
    """Points moved back to where a sensor at rest at the reference pose would have placed its cone apexes."""
    out = np.asarray(points, dtype=np.float64).copy()
    out[:, :2] -= (np.asarray(tau) - reference)[:, None] * np.asarray(w)[None, :2]
    return out


def nuscenes_rows(root: Path) -> list[dict[str, Any]]:
    """One row per nuScenes keyframe (see the module docstring)."""
    from simgap_ext.gate.origin import apparent_origin
    from simgap_ext.tune.motion import measure_sweep_motion, spin_of
    from simgap_ext.tune.real import list_nuscenes_scans, load_nuscenes_scan

    files = list_nuscenes_scans(root)
    scans = [load_nuscenes_scan(f) for f in files]
    pts, taus, beams = [], [], []
    for s in scans:
        b, c = np.nonzero(s.range > 0)
        pts.append(s.xyz[b, c].astype(np.float64))
        taus.append(c / s.range.shape[1])
        beams.append(b)
    # ego translation between consecutive keyframes (constant-velocity initial guess after the first pair)
    steps: list[np.ndarray] = []
    init = np.eye(4)
    for i in range(len(scans) - 1):
        far0 = pts[i][np.linalg.norm(pts[i], axis=1) > 2.0]
        far1 = pts[i + 1][np.linalg.norm(pts[i + 1], axis=1) > 2.0]
        T = _register(far0, far1, init)
        steps.append(T[:3, 3].copy())
        init = T
    rows = []
    for i, s in enumerate(scans):
        nb = [steps[j] for j in (i - 1, i) if 0 <= j < len(steps)]
        v = np.mean(nb, axis=0)[:2] / _KEYFRAME_DT  # m/s in the sensor frame (keyframe i-1 or i: same heading)
        w_reg = v / _NUSCENES_HZ
        m = measure_sweep_motion(pts[i], taus[i], beams[i], s.elevations_deg)
        app = apparent_origin(pts[i])
        desk = apparent_origin(_deskew(pts[i], taus[i], w_reg, 1.0))
        spin = spin_of(s.azimuth_deg)
        rows.append(
            {
                "scan": s.name,
                "apparent": app.tolist() if app is not None else None,
                "fit_w": m.displacement.tolist() if m else None,
                "fit_reference": m.reference if m else None,
                "speed_reg": float(np.hypot(*v)),
                "reg_w": w_reg.tolist(),
                "deskewed_apparent": desk.tolist() if desk is not None else None,
                "sweep_start_deg": spin[0] if spin else None,
                "clockwise": spin[1] if spin else None,
            }
        )
    return rows


def _kitti_poses(path: Path) -> dict[int, np.ndarray]:
    out = {}
    for line in path.read_text().splitlines():
        v = line.split()
        if len(v) >= 13:
            T = np.eye(4)
            T[:3, :4] = np.array(v[1:13], dtype=np.float64).reshape(3, 4)
            out[int(v[0])] = T
    return out


def kitti360_rows(root: Path) -> list[dict[str, Any]]:
    """One row per KITTI-360 scan: speed from the poses, ``w`` fitted with ``tau`` from the azimuth."""
    from simgap_ext.gate.origin import apparent_origin
    from simgap_ext.sensors import load_sensor_profile
    from simgap_ext.tune.motion import measure_sweep_motion, sweep_fraction
    from simgap_ext.tune.range_image import organize

    prof = load_sensor_profile("hdl-64")
    el = np.asarray(prof.vertical_angles_deg)
    poses = _kitti_poses(root / "velodyne_poses.txt")
    rows = []
    for f in sorted((root / "velodyne_points" / "data").glob("*.bin")):
        k = int(f.stem)
        p = np.fromfile(f, dtype=np.float32).reshape(-1, 4)[:, :3].astype(np.float64)
        p = p[np.linalg.norm(p, axis=1) > 1.0]
        img = organize(p, el, 2048)
        b, c = np.nonzero(img.valid)
        q = p[img.index[b, c]]
        tau = sweep_fraction(np.arctan2(q[:, 1], q[:, 0]), 180.0, True)
        m = measure_sweep_motion(q, tau, b, el)
        speed = None
        if k - 1 in poses and k + 1 in poses:
            d = poses[k][:3, :3].T @ (poses[k + 1][:3, 3] - poses[k - 1][:3, 3])
            speed = float(np.hypot(d[0], d[1]) * _KITTI_HZ / 2.0)
        app = apparent_origin(p)
        rows.append(
            {
                "scan": f.stem,
                "apparent": app.tolist() if app is not None else None,
                "fit_w": m.displacement.tolist() if m else None,
                "speed_poses": speed,
            }
        )
    return rows


def _heading(v: Any) -> float:
    return math.degrees(math.atan2(v[1], v[0])) % 360.0


def main(argv: list[str] | None = None) -> int:
    """Run and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=realdata_root(), help="the realdata folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    nus = args.real / NUSCENES
    if not nus.is_dir():
        print(f"origin_skew: {nus} not found (needs ../shared/realdata)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows = nuscenes_rows(nus)
    print(f"nuScenes HDL-32E keyframes ({len(rows)}), LIDAR_TOP frame (y forward); offsets in metres")
    head = (
        f"{'scan':<8} {'apparent (x, y)':>16} {'|app|':>6} {'speed reg m/s':>13} {'w reg (pred)':>12} "
        f"{'w fit':>7} {'hdg reg/fit':>12} {'ref fit':>7} {'deskewed (x, y)':>16} {'|desk|':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        a, fw, rw, d = r["apparent"], r["fit_w"], r["reg_w"], r["deskewed_apparent"]
        print(
            f"{r['scan']:<8} {f'{a[0]:+.3f}, {a[1]:+.3f}':>16} {math.hypot(*a):6.3f} {r['speed_reg']:13.2f} "
            f"{math.hypot(*rw):12.3f} {math.hypot(*fw):7.3f} {f'{_heading(rw):.0f}/{_heading(fw):.0f}':>12} "
            f"{r['fit_reference']:7.2f} {f'{d[0]:+.3f}, {d[1]:+.3f}':>16} {math.hypot(*d):6.3f}"
        )
    fit = np.array([math.hypot(*r["fit_w"]) for r in rows])
    pred = np.array([math.hypot(*r["reg_w"]) for r in rows])
    app = np.array([math.hypot(*r["apparent"]) for r in rows])
    desk = np.array([math.hypot(*r["deskewed_apparent"]) for r in rows])
    refs = np.array([r["fit_reference"] for r in rows])
    corr = float(np.corrcoef(fit, pred)[0, 1])
    print(
        f"\nw fit vs registration-predicted: median ratio {np.median(fit / pred):.3f}, correlation {corr:.3f} "
        f"(fit {fit.mean():.3f} +- {fit.std():.3f} m, predicted {pred.mean():.3f} +- {pred.std():.3f} m per sweep); "
        f"reference fraction {np.median(refs):.3f} (1 = sweep end); sweep start "
        f"{np.median([r['sweep_start_deg'] for r in rows]):.1f} deg, clockwise {all(r['clockwise'] for r in rows)}"
    )
    y = np.array([r["apparent"][1] for r in rows])
    corr_app = float(np.corrcoef(y, pred)[0, 1])
    print(
        f"apparent |offset| {app.mean():.3f} +- {app.std():.3f} m -> {desk.mean():.3f} +- {desk.std():.3f} m with the "
        f"registration-predicted skew removed; correlation of apparent y with predicted w: {corr_app:.3f}"
    )
    out: dict[str, Any] = {"nuscenes": rows}
    kit = args.real / _KITTI360
    if kit.is_dir():
        krows = kitti360_rows(kit)
        out["kitti360"] = krows
        print("\ncontrol: KITTI-360 HDL-64E (10 Hz; tau from azimuth, sweep from behind, clockwise)")
        head = f"{'scan':<12} {'apparent (x, y)':>16} {'speed poses m/s':>15} {'w if compensated':>16} {'w fit':>7}"
        print(head)
        print("-" * len(head))
        for r in krows:
            a, fw, sp = r["apparent"], r["fit_w"], r["speed_poses"]
            comp = f"{sp / _KITTI_HZ:.3f}" if sp is not None else "n/a"
            spd = f"{sp:.2f}" if sp is not None else "n/a"
            print(
                f"{r['scan']:<12} {f'{a[0]:+.3f}, {a[1]:+.3f}':>16} {spd:>15} {comp:>16} "
                f"{math.hypot(*fw) if fw else math.nan:7.3f}"
            )
        ok = [r for r in krows if r["speed_poses"] is not None and r["fit_w"]]
        if len(ok) >= 3:
            sp = np.array([r["speed_poses"] / _KITTI_HZ for r in ok])
            fw = np.array([math.hypot(*r["fit_w"]) for r in ok])
            print(
                f"KITTI-360: w fit {fw.mean():.3f} +- {fw.std():.3f} m against {sp.mean():.3f} m per sweep if it were "
                f"compensated (correlation {float(np.corrcoef(fw, sp)[0, 1]):.2f}): not motion compensated, apex at "
                "the sensor"
            )
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
