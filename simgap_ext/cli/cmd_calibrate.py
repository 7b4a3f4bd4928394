"""``simgap calibrate``: d_max (max_expected_distance) from real-vs-real Chamfer distances."""

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
        help="calibrate d_max from consecutive pairs of real scans",
        description=(
            "Compute the exact Chamfer distance of consecutive real scans and print "
            "d_max = quantile(CD) / (1 - target G), so that that fraction of real pairs passes the G threshold."
        ),
    )
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
