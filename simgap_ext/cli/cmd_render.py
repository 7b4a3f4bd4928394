"""``simgap render``: render frames with the embedded Warp LiDAR backend into a SemanticKITTI directory.

Writes ``OUT/velodyne/NNNNNN.bin``, ``OUT/labels/NNNNNN.label``, ``OUT/label_map.yaml`` and ``OUT/render.json``
(the settings and, per frame, the seeds and per-class point/instance counts). Frame ``i`` uses scene seed
``--seed + i``; two renders with the same ``--seed`` show the same scenes, so they pair frame by frame in
``simgap score`` (use ``--noise-seed`` to redraw only the sensor noise).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SimGapInputError

__all__ = ["register", "run"]

log = logging.getLogger(__name__)


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [s.strip() for s in v.split(",") if s.strip()]
    return out


def _refuse_stale_scans(out: Path, n_frames: int) -> None:
    """Refuse an ``--out`` whose ``velodyne/`` holds scans this render would not overwrite.

    They would stay beside the new frames, be read as part of the set (``simgap score`` pairs them) and not be
    described by the new ``render.json``. Re-running the same render (same ``--frames``) is fine: it overwrites
    every scan.
    """
    velodyne = out / "velodyne"
    if not velodyne.is_dir():
        return
    ours = {f"{i:06d}.bin" for i in range(n_frames)}
    stale = sorted(p.name for p in velodyne.iterdir() if p.suffix == ".bin" and p.name not in ours)
    if stale:
        shown = ", ".join(stale[:3]) + (", ..." if len(stale) > 3 else "")
        raise SimGapInputError(
            f"--out {out} already holds {len(stale)} scan(s) this render would not overwrite ({shown}); they would "
            "mix with the new frames: use an empty or new directory"
        )


def register(subparsers: Any) -> None:
    """Add the ``render`` sub-command."""
    from ..backends.warp.scene import RARE_MODES
    from ..sensors import EFFECT_NAMES

    p = subparsers.add_parser(
        "render",
        help="render LiDAR frames with the embedded Warp backend (SemanticKITTI layout)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sensor", default="os1-64", help="sensor profile name or .toml path (default: os1-64)")
    p.add_argument(
        "--preset",
        default="realistic",
        help="effect preset: ideal, realistic, or a tuned profile from `simgap tune --out tuned.toml` (its beam "
        "table, columns and fitted sensor-effect model replace the sensor's) (default: realistic)",
    )
    p.add_argument(
        "--rotation-rate", type=float, default=None, metavar="HZ", help="spin rate, Hz (default: the profile's)"
    )
    p.add_argument(
        "--layout", choices=("street", "open"), default="street", help="embedded scene layout (default: street)"
    )
    p.add_argument("--frames", type=int, default=10, help="number of frames (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="scene seed of the first frame; frame i uses seed+i")
    p.add_argument("--noise-seed", type=int, default=0, help="sensor-noise seed (same scenes, other noise draws)")
    p.add_argument("--focus", action="append", metavar="CLASS", help="emphasise a class (repeat or comma-separate)")
    p.add_argument("--rare", choices=[m for m in RARE_MODES if m], help="rare configuration for targeted objects")
    p.add_argument(
        "--disable", action="append", metavar="EFFECT", help=f"switch an effect off ({', '.join(EFFECT_NAMES)})"
    )
    p.add_argument("--device", default=None, help="Warp device: cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument("--out", required=True, type=Path, help="output directory (SemanticKITTI sequence layout)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Render ``args.frames`` frames into ``args.out``; returns the exit code."""
    from ..backends import get_scene_source
    from ..data import atomic_write_bytes, write_label_map, write_semantickitti_scan
    from ..frame import id_to_class

    if args.frames < 1:
        raise SimGapInputError(f"--frames must be >= 1, got {args.frames}")
    if args.seed < 0 or args.noise_seed < 0:
        raise SimGapInputError("--seed and --noise-seed must be >= 0")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise SimGapInputError(f"--out {out} exists and is not a directory")
    focus = _split(args.focus)
    source = get_scene_source(
        "warp",
        sensor=args.sensor,
        preset=args.preset,
        device=args.device,
        disable=_split(args.disable),
        rare=args.rare,
        noise_seed=args.noise_seed,
        rotation_rate_hz=args.rotation_rate,
        layout=args.layout,
    )
    unknown = [c for c in focus if c not in source.class_names]
    if unknown:
        raise SimGapInputError(f"--focus: unknown class(es) {unknown} (known: {', '.join(source.class_names)})")
    _refuse_stale_scans(out, args.frames)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    label_map: dict[int, str] = {}
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm = None
    indices = range(args.frames)
    bar = (
        tqdm(indices, desc=f"render {source.sensor_name}/{source.preset}", unit="frame", disable=args.no_progress)
        if tqdm
        else indices
    )
    for i in bar:
        frame = source.render(seed=args.seed + i, focus_classes=focus, frame_id=i)
        write_semantickitti_scan(out, i, frame)
        names = id_to_class(frame)
        label_map.update(names)
        sem, inst = frame["info"]["pointSemantic"], frame["info"]["pointInstance"]
        per_class: dict[str, dict[str, int]] = {}
        for sid in np.unique(sem).tolist():
            m = sem == sid
            per_class[names[int(sid)]] = {
                "points": int(m.sum()),
                "instances": int(np.unique(inst[m & (inst > 0)]).size),
            }
        rows.append(
            {
                "index": i,
                "name": f"{i:06d}",
                "seed": int(frame["seed"]),
                "noise_seed": int(frame["noise_seed"]),
                "n_points": int(frame["data"].shape[0]),
                "classes": per_class,
            }
        )
    write_label_map(out / "label_map.yaml", label_map)
    meta = {
        "backend": source.describe(),
        "columns": source.profile.horizontal_resolution,
        "rotation_rate_hz": source.profile.rotation_rate_hz,
        "layout": args.layout,
        "focus_classes": focus,
        "rare": args.rare,
        "frames": rows,
    }
    atomic_write_bytes(out / "render.json", (json.dumps(meta, indent=2) + "\n").encode("utf-8"))
    total = sum(r["n_points"] for r in rows)
    print(f"rendered {len(rows)} frame(s), {total} points, {source.sensor_name}/{source.preset} -> {out}")
    return 0
