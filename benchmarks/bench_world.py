"""What a LiDAR sees around it: real urban scans of ``../shared/realdata`` against the embedded street world.

The gate's scene ``composition`` component compares the class shares of a frame's points with the real bank's.
This benchmark measures where that share comes from, on every labelled urban set of ``../shared/realdata``
(nuScenes HDL-32E keyframes 0-19 and 20-39, KITTI-360 HDL-64E, MCD KTH Ouster OS1-128) and on embedded frames of
the street world before and after open lots (``RandomizerConfig.facade_occupancy``, ``lot_depth``,
``lot_vegetation``, ``tree_occupancy``; docs/backend.md "Scenes"):

- ``horizon``: in each 1-degree azimuth sector, the class of the nearest return whose elevation lies in
  [-1, +1.5] deg (a band every shipped profile covers), or ``none``: the share of sectors per class. It is what
  stands around the sensor at its own height: facades, trees, vehicles, or nothing within range;
- ``points``: the class shares of all points (what the gate's ``composition`` compares);
- ``rough``: the mean clipped range roughness of the frame (the gate's scene ``roughness`` statistic,
  ``simgap_ext.gate.frame_stats``), for the HDL-32E rows only (it depends on the beam table);
- ``vegetation``: the 10/50/90 % quantiles of the vegetation points' height above the local ground (each frame's
  median ground height within 15 m of the sensor; sensor-independent, unlike the sensor-frame heights of
  ``vegetation_breakdown.py``) and their median horizontal range: how tall the plants a city's scans see stand.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_world.py [--frames 20] [--sensors hdl-32-nuscenes,hdl-64,os1-128]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _realdata import NUSCENES, realdata_root  # benchmarks/ helper (run as a script)

__all__ = ["main", "horizon_shares", "point_shares", "vegetation_heights"]

_BAND_DEG = (-1.0, 1.5)
_SECTORS = 360
_SHOWN = ("building", "vegetation", "vehicle", "ground", "none")
_POINT_CLASSES = ("ground", "building", "vegetation", "vehicle")
#: ground points within this horizontal distance of the sensor give a frame's ground height
_GROUND_RADIUS = 15.0
#: a frame with fewer such ground points has no ground height and is left out of ``vegetation_heights``
_MIN_GROUND = 50
# real sets beside the nuScenes keyframes: (folder, profile their scans are organised on)
_OTHER_REAL = (("kitti360_osm_bki", "hdl-64"), ("mcd_kth_day_06", "os1-128"))
# the street world before open lots: 80 % of the blocks hold a facade, the others stay empty; half the tree slots
_BEFORE = {"facade_occupancy": 0.8, "tree_occupancy": 0.5, "lot_vegetation": (0.0, 0.0), "lot_depth": (0.0, 0.0)}


def _names(frame: Mapping[str, Any]) -> dict[int, str]:
    return {int(k): (v["class"] if isinstance(v, Mapping) else str(v)) for k, v in frame["info"]["idToLabels"].items()}


def horizon_shares(frames: Sequence[Mapping[str, Any]], band_deg: tuple[float, float] = _BAND_DEG) -> dict[str, float]:
    """Share of azimuth sectors (1 deg) whose nearest return in the elevation band has each class (``none``: no
    return in the band), over ``frames`` (sensor frame, labels rolled up)."""
    acc: Counter[str] = Counter()
    for f in frames:
        p = np.asarray(f["data"], dtype=np.float64)
        sem = np.asarray(f["info"]["pointSemantic"])
        names = _names(f)
        r = np.linalg.norm(p, axis=1)
        el = np.degrees(np.arcsin(np.clip(p[:, 2] / np.maximum(r, 1e-9), -1.0, 1.0)))
        m = (r > 1.0) & (el >= band_deg[0]) & (el < band_deg[1])
        az = ((np.degrees(np.arctan2(p[m, 1], p[m, 0])) % 360.0) / 360.0 * _SECTORS).astype(np.int64) % _SECTORS
        order = np.lexsort((r[m], az))
        az, cls = az[order], sem[m][order]
        first = np.r_[True, az[1:] != az[:-1]] if az.size else np.zeros(0, bool)
        got = dict(zip(az[first].tolist(), cls[first].tolist(), strict=True))
        for s in range(_SECTORS):
            acc[names.get(int(got[s]), "unlabeled") if s in got else "none"] += 1
    n = max(1, _SECTORS * len(frames))
    return {k: v / n for k, v in acc.items()}


def point_shares(frames: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean class share of the points per frame."""
    acc: Counter[str] = Counter()
    for f in frames:
        sem = np.asarray(f["info"]["pointSemantic"])
        names = _names(f)
        ids, counts = np.unique(sem, return_counts=True)
        for i, c in zip(ids.tolist(), counts.tolist(), strict=True):
            acc[names.get(int(i), "unlabeled")] += c / max(1, sem.size) / len(frames)
    return dict(acc)


def vegetation_heights(frames: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Where the vegetation of ``frames`` stands (sensor frame, labels rolled up).

    A frame's ground height is the median z of its ``ground`` points within 15 m (horizontally) of the sensor;
    frames with fewer than 50 such points, or no vegetation, are left out.

    Returns:
        ``{"frames", "height_q", "range_median"}``: frames used, the (3,) 10/50/90 % quantiles of the pooled
        vegetation points' height above their frame's ground (m) and their median horizontal range (m); None when
        no frame qualifies.
    """
    heights, ranges = [], []
    for f in frames:
        p = np.asarray(f["data"], dtype=np.float64)
        sem = np.asarray(f["info"]["pointSemantic"])
        names = _names(f)
        r = np.hypot(p[:, 0], p[:, 1])
        ground = np.isin(sem, [i for i, n in names.items() if n == "ground"]) & (r < _GROUND_RADIUS)
        veg = np.isin(sem, [i for i, n in names.items() if n == "vegetation"])
        if ground.sum() < _MIN_GROUND or not veg.any():
            continue
        heights.append(p[veg, 2] - np.median(p[ground, 2]))
        ranges.append(r[veg])
    if not heights:
        return None
    return {
        "frames": len(heights),
        "height_q": np.percentile(np.concatenate(heights), [10, 50, 90]),
        "range_median": float(np.median(np.concatenate(ranges))),
    }


def _roughness(frames: Sequence[Mapping[str, Any]], elevations: Sequence[float], columns: int) -> float:
    from simgap_ext.gate.frame_stats import frame_stats

    vals = [
        float(frame_stats(f, vertical_angles_deg=elevations, horizontal_resolution=columns).scene_roughness().mean())
        for f in frames
    ]
    return float(np.mean(vals))


def _real_sets(root: Path) -> dict[str, tuple[list[dict[str, Any]], str]]:
    from simgap_ext.data import iter_scans
    from simgap_ext.data.taxonomy import roll_up_frame
    from simgap_ext.sensors import load_sensor_profile
    from simgap_ext.tune.profile import load_real_scans

    out: dict[str, tuple[list[dict[str, Any]], str]] = {}
    if (root / NUSCENES).is_dir():
        _, frames = load_real_scans(root / NUSCENES, load_sensor_profile("hdl-32"))
        half = len(frames) // 2
        out["nuScenes 0-19 (HDL-32E)"] = ([roll_up_frame(f) for f in frames[:half]], "hdl-32")
        out["nuScenes 20-39"] = ([roll_up_frame(f) for f in frames[half:]], "hdl-32")
    for folder, sensor in _OTHER_REAL:
        if (root / folder).is_dir():
            frs = [roll_up_frame(fr) for _, fr in iter_scans(root / folder, sensor=sensor)]
            out[f"{folder} ({sensor})"] = (frs, sensor)
    return out


def _render(sensor: str, frames: int, world: Mapping[str, Any]) -> list[dict[str, Any]]:
    from simgap_ext.backends.warp import RandomizerConfig, SceneRandomizer, WarpLidarSource
    from simgap_ext.sensors import load_sensor_profile

    prof = load_sensor_profile(sensor)
    # the object classes of the real urban scans, as bench_fidelity renders them
    cfg = RandomizerConfig(base_counts={"pedestrian": (1, 3), "vehicle": (2, 4)}, **world)
    rz = SceneRandomizer(cfg, sensor_height=prof.mount_height, max_range=prof.max_range)
    kw = {"rotation_rate_hz": 20.0} if sensor == "hdl-32" else {}
    src = WarpLidarSource(prof, "realistic", device="cpu", randomizer=rz, **kw)
    return [src.render(seed=1000 + i, frame_id=i) for i in range(frames)]


def _veg_cell(v: dict[str, Any] | None) -> str:
    if v is None:
        return "-"
    q = v["height_q"]
    return f"{q[0]:5.2f} {q[1]:5.2f} {q[2]:5.2f}  {v['range_median']:5.1f}"


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="embedded frames per row (default 20)")
    parser.add_argument(
        "--sensors", default="hdl-32-nuscenes,hdl-64,os1-128", help="profiles of the embedded rows (realistic preset)"
    )
    args = parser.parse_args(argv)
    root = realdata_root()
    if not root.is_dir():
        print(f"bench_world: {root} not found (needs ../shared/realdata)", file=sys.stderr)
        return 2
    from simgap_ext.sensors import load_sensor_profile

    t0 = time.perf_counter()
    rows: list[tuple[str, list[dict[str, Any]], str]] = [(k, v[0], v[1]) for k, v in _real_sets(root).items()]
    for sensor in [s.strip() for s in args.sensors.split(",") if s.strip()]:
        rows.append((f"embedded before, {sensor}", _render(sensor, args.frames, _BEFORE), sensor))
        rows.append((f"embedded default, {sensor}", _render(sensor, args.frames, {}), sensor))
    head = (
        f"{'set':<34} {'n':>3} | horizon [-1,+1.5] deg: "
        + " ".join(f"{c[:5]:>5}" for c in _SHOWN)
        + " | points: "
        + " ".join(f"{c[:5]:>5}" for c in _POINT_CLASSES)
        + f" | {'rough m':>7}"
        + " | vegetation above ground q10/50/90 m, range m"
    )
    print(head)
    print("-" * len(head))
    for name, frs, sensor in rows:
        h, p = horizon_shares(frs), point_shares(frs)
        rough = ""
        if sensor.startswith("hdl-32"):
            prof = load_sensor_profile(sensor)
            cols = 1085 if sensor == "hdl-32" else prof.horizontal_resolution  # nuScenes: 20 Hz
            rough = f"{_roughness(frs, prof.vertical_angles_deg, cols):.4f}"
        print(
            f"{name:<34} {len(frs):>3} | {'':>22}"
            + " ".join(f"{h.get(c, 0.0):>5.2f}" for c in _SHOWN)
            + " | "
            + " " * 8
            + " ".join(f"{p.get(c, 0.0):>5.2f}" for c in _POINT_CLASSES)
            + f" | {rough:>7}"
            + f" | {_veg_cell(vegetation_heights(frs))}"
        )
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
