"""``simgap calibrate``: the sensor's real-vs-real noise floor (d_max per class and scene), ego motion removed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ._scan_options import add_scan_options, scan_options

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``calibrate`` sub-command."""
    p = subparsers.add_parser(
        "calibrate",
        help="calibrate d_max per class from registered consecutive real scans (writes calib.toml)",
        description=(
            "Register consecutive real scans (with --poses, else small_gicp GICP) so that ego motion is removed, "
            "refuse pairs that do not overlap (the reason named), compute the trimmed Chamfer distance per class "
            "and for the scene, and set d_max = quantile / (1 - target G), so that that fraction of real pairs "
            "passes. --out writes calib.toml, which score, reference build and generate read with --calib. --raw: "
            "the unregistered exact Chamfer of consecutive scans (measures the drive, not the sensor)."
        ),
    )
    p.add_argument("--out", type=Path, default=None, metavar="calib.toml", help="write the calibration as TOML")
    p.add_argument(
        "--poses",
        type=Path,
        default=None,
        help="sensor poses (KITTI-360 velodyne_poses.txt or MCD pose_inW.csv) instead of GICP registration",
    )
    p.add_argument(
        "--min-overlap",
        type=float,
        default=0.2,
        help="refuse pairs whose registered points above the ground overlap less (default 0.2)",
    )
    p.add_argument("--raw", action="store_true", help="unregistered scene Chamfer of consecutive scans only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--real", required=True, type=Path, help="real scans: file, directory or SemanticKITTI sequence")
    add_scan_options(p)
    p.add_argument("--quantile", type=float, default=0.95, help="quantile of real-vs-real distances (default 0.95)")
    p.add_argument("--target-g", type=float, default=0.75, help="G threshold real pairs must reach (default 0.75)")
    p.add_argument("--max-pairs", type=int, default=64, help="at most this many pairs, spread evenly (default 64)")
    p.add_argument("--squared", action="store_true", help="calibrate for squared-distance Chamfer")
    p.add_argument("--device", default=None, help="Warp device (default: CUDA when available)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``simgap calibrate``."""
    import numpy as np

    from ..errors import SimGapInputError

    if args.raw and (args.out is not None or args.poses is not None):
        raise SimGapInputError("--raw measures unregistered pairs: it takes neither --out nor --poses")
    if not args.raw:
        return _run_registered(args)

    from ..data import count_scans, iter_scans
    from ..metrics.calibrate import calibration_distances, d_max_from_distances

    # validate the numbers before reading any scan
    d_max_from_distances(np.ones(1), quantile=args.quantile, target_g=args.target_g)
    n = count_scans(args.real)
    cds = calibration_distances(
        iter_scans(args.real, **scan_options(args)),
        max_pairs=args.max_pairs,
        squared=args.squared,
        device=args.device,
        n_frames=n,
    )
    d_max = d_max_from_distances(cds, quantile=args.quantile, target_g=args.target_g, squared=args.squared)
    unit = "m^2" if args.squared else "m"
    print(
        f"d_max = {d_max:.6g} m  ({len(cds)} pairs of {n} scans; Chamfer median {np.median(cds):.4g} {unit}, "
        f"q{args.quantile:g} {np.quantile(cds, args.quantile):.4g} {unit})"
    )
    if args.json:
        from ..data import atomic_write_bytes

        out = {
            "real": str(args.real),
            "d_max": d_max,
            "quantile": args.quantile,
            "target_g": args.target_g,
            "squared": bool(args.squared),
            "n_scans": n,
            "chamfer_pairs": cds.tolist(),
        }
        atomic_write_bytes(args.json, (json.dumps(out, indent=2) + "\n").encode("utf-8"))
    return 0


def _run_registered(args: argparse.Namespace) -> int:
    """Registered, per-class calibration (the default)."""
    from ..data import count_scans, iter_scans
    from ..metrics.sensor_calibration import calibrate_sensor, read_poses, write_calibration
    from ._progress import progress_bar

    poses = read_poses(args.poses) if args.poses is not None else None
    n = count_scans(args.real)
    with progress_bar("registering", disable=args.no_progress) as progress:
        task = progress.add_task("pairs", total=max(0, min(n - 1, args.max_pairs)))
        calib = calibrate_sensor(
            iter_scans(args.real, **scan_options(args)),
            poses=poses,
            quantile=args.quantile,
            target_g=args.target_g,
            max_pairs=args.max_pairs,
            min_overlap=args.min_overlap,
            progress=lambda: progress.advance(task),
        )
    import sys

    for pair, reason in calib.refused:
        print(f"simgap: warning: pair {pair} refused: {reason}", file=sys.stderr)
    print(
        f"d_max = {calib.d_max:.6g} m (scene; {calib.meta['pairs']} registered pairs of {n} scans, "
        f"{calib.meta['registration']}; {len(calib.refused)} refused)"
    )
    for c, v in calib.class_d_max.items():
        print(f"  {c:20s} d_max {v:.4g} m  ({v / calib.d_max:.2f}x scene, {len(calib.class_distances[c])} pairs)")
    if args.out is not None:
        path = write_calibration(args.out, calib, source=str(args.real))
        print(f"wrote {path}")
    if args.json:
        from ..data import atomic_write_bytes

        out = {
            "real": str(args.real),
            "d_max": calib.d_max,
            "class_d_max": calib.class_d_max,
            "chamfer_pairs": calib.scene_distances.tolist(),
            "refused": [{"pair": p, "reason": r} for p, r in calib.refused],
            **calib.meta,
        }
        atomic_write_bytes(args.json, (json.dumps(out, indent=2) + "\n").encode("utf-8"))
    return 0
