"""``simgap tune``: fit a sensor-effect model to real labelled scans and write a tuned sensor profile.

The model (ray drop per beam / range / incidence / class, range noise per class and range, intensity per class
and range, mixed pixels, self-occlusion, beam table and columns per turn) is read off the real range images;
the far-range terms no neighbour test can see are searched with CMA-ES on scene statistics of clean embedded
renders (``--no-search`` skips that). Use the result with ``simgap render --preset tuned.toml`` or
``simgap generate --preset tuned.toml``. See docs/backend.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import SimGapInputError

__all__ = ["add_search_options", "register", "run", "search_options"]


def register(subparsers: Any) -> None:
    """Add the ``tune`` sub-command."""
    p = subparsers.add_parser(
        "tune",
        help="fit a sensor-effect model to real scans and write a tuned sensor profile (TOML)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--real",
        required=True,
        type=Path,
        help="real labelled scans: nuScenes keyframe folders (points.bin + lidarseg labels), or any scan "
        "directory simgap reads (organised on --sensor's beam table)",
    )
    p.add_argument("--sensor", required=True, help="base sensor profile name or TOML path (ranges, mount, d_max)")
    p.add_argument("--out", required=True, type=Path, help="tuned profile to write (.toml)")
    p.add_argument("--rotation-rate", type=float, default=None, metavar="HZ", help="the real sensor's spin rate")
    p.add_argument("--limit", type=int, default=None, help="use at most this many real scans")
    p.add_argument("--no-search", action="store_true", help="skip the CMA-ES search of the far-range terms")
    add_search_options(p)
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="search seed (default 0); the searched far-range loss and drop shift vary with it: compare two or three "
        "seeds on scans the tune did not see (docs/backend.md)",
    )
    p.add_argument("--device", default=None, help="Warp device for the clean renders")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the fit/search report")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def add_search_options(p: argparse.ArgumentParser) -> None:
    """Add the options of the tune's CMA-ES search (``simgap tune``, ``benchmarks/bench_fidelity.py``); read them
    back with :func:`search_options`."""
    p.add_argument(
        "--far-bound",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="bound the searched far-range loss by the real scans' own far returns per class (docs/backend.md)",
    )
    p.add_argument(
        "--shift",
        choices=("runs", "per-return"),
        default=None,
        help="how the searched drop shift of the background classes drops returns: whole runs of columns (per-class "
        "share per return under a ring-continuity bound) or every return's isolated drop (default: runs with "
        "--far-bound, per-return without; docs/backend.md)",
    )
    p.add_argument(
        "--gate-term",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the search also scores each search frame's full gate decision (class tests such as vegetation's joint "
        "deviation) and renders only the object classes the real scans hold (default: with --far-bound; "
        "docs/backend.md)",
    )
    p.add_argument(
        "--synthetic-frames",
        type=int,
        default=None,
        help="clean renders the search uses (default 8; 12 with the gate term)",
    )
    p.add_argument(
        "--evaluations",
        type=int,
        default=None,
        help="CMA-ES objective evaluations (default 48; 96 with the drop shift per run of columns)",
    )


def search_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`~simgap_ext.tune.profile.tune_profile` keywords of the options :func:`add_search_options` added.

    Raises:
        SimGapInputError: ``--synthetic-frames`` or ``--evaluations`` below 1.
    """
    for flag, val in (("--synthetic-frames", args.synthetic_frames), ("--evaluations", args.evaluations)):
        if val is not None and val < 1:
            raise SimGapInputError(f"{flag} must be >= 1, got {val}")
    return {
        "far_bound": args.far_bound,
        "shift_runs": None if args.shift is None else args.shift == "runs",
        "gate_term": args.gate_term,
        "synthetic_frames": args.synthetic_frames,
        "evaluations": args.evaluations,
    }


def run(args: argparse.Namespace) -> int:
    """Entry point of ``simgap tune``."""
    from ..data import atomic_write_bytes
    from ..sensors import profile_to_toml
    from ..tune.profile import tune_profile

    if args.out.suffix != ".toml":
        raise SimGapInputError(f"--out must be a .toml file, got {args.out}")
    if args.out.parent and not args.out.parent.is_dir():
        raise SimGapInputError(f"--out: directory {args.out.parent} does not exist")
    search = search_options(args)
    if args.limit is not None and args.limit < 1:
        raise SimGapInputError(f"--limit must be >= 1, got {args.limit}")

    def say(msg: str) -> None:
        if not args.no_progress:
            print(f"simgap tune: {msg}", file=sys.stderr, flush=True)

    profile, report = tune_profile(
        args.real,
        args.sensor,
        rotation_rate_hz=args.rotation_rate,
        search=not args.no_search,
        **search,
        seed=args.seed,
        device=args.device,
        limit=args.limit,
        progress=say,
    )
    header = f"SimGap tuned sensor profile: simgap tune --real {args.real} --sensor {args.sensor}\n"
    header += "Use with: simgap render --preset <this file> (docs/backend.md, 'Tuned presets')."
    atomic_write_bytes(args.out, profile_to_toml(profile, header=header).encode("utf-8"))
    if args.json:
        atomic_write_bytes(args.json, (json.dumps(report, indent=2, default=float) + "\n").encode("utf-8"))
    model = profile.preset("tuned").model
    msg = (
        f"tuned {profile.name} on {report['scans']} real scan(s): {model.channels} beams x {model.columns} columns, "
        f"{len(model.classes) - 1} classes, mixed-pixel p {model.mixed_pixel_prob:.2f}, "
        f"{len(model.occlusion)} self-occlusion interval(s)"
    )
    if model.has_motion:
        msg += (
            f", motion skew {model.motion_sweep_m:.3f} m per sweep towards {model.motion_heading_deg:.0f} deg "
            f"(points at sweep fraction {model.motion_reference:.2f})"
        )
    if "search" in report:
        s = report["search"]
        msg += f"; CMA-ES objective {s['objective_start']:.3f} -> {s['objective_best']:.3f}"
    print(f"{msg} -> {args.out}")
    return 0
