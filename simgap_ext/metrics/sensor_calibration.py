"""Sensor noise floor from consecutive real scans, ego motion removed (``simgap calibrate --out calib.toml``).

Two consecutive scans of one drive differ by the sensor's noise and sampling *and* by the vehicle's motion
(0.65 m between SemanticKITTI scans); a Chamfer distance of the raw pair measures mostly the motion. Each pair
is therefore first registered: with the given poses file (KITTI-360 ``velodyne_poses.txt``: frame number and a
row-major 3x4 sensor-to-world matrix per line; MCD ``pose_inW.csv``: ``num,t,x,y,z,qx,qy,qz,qw``), else with
small_gicp's GICP (a LiDAR registration library; voxel-downsampled, initialised at identity). A pair whose
registered overlap (share of points with a neighbour within ``overlap_radius``) stays below ``min_overlap`` is
refused with the reason: it is not two views of one place, and its distance says nothing about the sensor.

On the registered pairs, per class and for the whole scene, the trimmed Chamfer distance is the real-vs-real
noise floor; ``d_max = quantile / (1 - target_g)`` as in :mod:`simgap_ext.metrics.calibrate`. Classes get their
own ``d_max`` (thin and sparse classes are naturally 2-3.5x larger than the scene value).
:func:`write_calibration` / :func:`read_calibration` store it as TOML that ``score``, ``reference build`` and
``generate`` read (``--calib``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from ..errors import ReferenceDataError, SimGapInputError

__all__ = [
    "SensorCalibration",
    "calibrate_sensor",
    "read_poses",
    "register_pair",
    "write_calibration",
    "read_calibration",
]

log = logging.getLogger(__name__)

# Points a class needs in both scans of a pair before its Chamfer distance counts (fewer: sampling noise).
_MIN_CLASS_POINTS = 50
# Share of nearest-neighbour distances kept (mixed pixels and newly visible surfaces are the rest).
_TRIM = 0.9


@dataclass
class SensorCalibration:
    """The result of :func:`calibrate_sensor`.

    Attributes:
        d_max: scene ``d_max`` (metres) for paired Chamfer scoring.
        class_d_max: class -> ``d_max`` (metres) from that class's own registered distances.
        scene_distances: (P,) trimmed Chamfer distances of the registered pairs, metres.
        class_distances: class -> its distances over the pairs where both scans had enough points.
        refused: ``(pair, reason)`` for every pair left out.
        meta: quantile, target G, registration method, sensor, source.
    """

    d_max: float
    class_d_max: dict[str, float]
    scene_distances: np.ndarray
    class_distances: dict[str, list[float]] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def read_poses(path: str | Path) -> dict[int, np.ndarray]:
    """Sensor poses by frame number from a KITTI-360 ``velodyne_poses.txt`` or an MCD ``pose_inW.csv``.

    Returns:
        frame number -> (4, 4) float64 sensor-to-world transform.

    Raises:
        SimGapInputError: unreadable file or a line in neither format.
    """
    p = Path(path)
    if not p.is_file():
        raise SimGapInputError(f"poses file {p}: not found")
    out: dict[int, np.ndarray] = {}
    for ln, line in enumerate(p.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line[0].isalpha():
            continue  # header (MCD: num,t,x,y,z,...)
        vals = [float(v) for v in line.replace(",", " ").split()]
        T = np.eye(4)
        if len(vals) == 13:  # frame + 3x4
            T[:3, :4] = np.asarray(vals[1:], np.float64).reshape(3, 4)
        elif len(vals) == 9:  # num, t, x, y, z, qx, qy, qz, qw
            from scipy.spatial.transform import Rotation

            T[:3, :3] = Rotation.from_quat(vals[5:9]).as_matrix()
            T[:3, 3] = vals[2:5]
        else:
            raise SimGapInputError(f"poses file {p}, line {ln}: {len(vals)} numbers (expected 13 or 9)")
        out[int(vals[0])] = T
    if not out:
        raise SimGapInputError(f"poses file {p}: no poses")
    return out


def register_pair(source: np.ndarray, target: np.ndarray, *, voxel: float = 0.25) -> tuple[np.ndarray, float]:
    """Rigid transform taking ``source`` onto ``target`` with small_gicp's GICP.

    Args:
        source, target: (N, 3) / (M, 3) float32 sensor-frame points.
        voxel: downsampling resolution, metres.

    Returns:
        ((4, 4) float64 transform T with ``target ~ T @ source``, GICP error).

    Raises:
        SimGapInputError: small_gicp is not installed.
    """
    try:
        import small_gicp
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise SimGapInputError("registration needs small_gicp (pip install small_gicp)") from exc
    res = small_gicp.align(
        np.asarray(target, np.float64),
        np.asarray(source, np.float64),
        registration_type="GICP",
        downsampling_resolution=voxel,
        max_correspondence_distance=2.0,
        num_threads=2,
    )
    return np.asarray(res.T_target_source, np.float64), float(res.error)


def _transform(points: np.ndarray, T: np.ndarray) -> np.ndarray:
    return (np.asarray(points, np.float64) @ T[:3, :3].T + T[:3, 3]).astype(np.float32)


def _trimmed_chamfer(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(trimmed Chamfer, share of a with a neighbour in b within r, same for b) with r the overlap radius."""
    from scipy.spatial import cKDTree

    da = cKDTree(b).query(a)[0]
    db = cKDTree(a).query(b)[0]

    def tmean(d: np.ndarray) -> float:
        d = np.sort(d)
        return float(d[: max(1, int(math.ceil(_TRIM * d.size)))].mean())

    return 0.5 * (tmean(da) + tmean(db)), da, db  # type: ignore[return-value]


def _structure_overlap(a: np.ndarray, b: np.ndarray, radius: float) -> float:
    """Share of the points above the ground (5th height percentile + 0.5 m) of each registered scan with a
    neighbour in the other within ``radius``, the smaller of the two. The ground is left out because any two
    scans of a flat road overlap there once GICP has levelled them (unrelated KITTI-360 scans: 37 % of all
    points, 10 % above the ground; scans 2 s apart: 22-60 %)."""
    from scipy.spatial import cKDTree

    ground = float(np.percentile(np.concatenate([a[:, 2], b[:, 2]]), 5)) + 0.5
    a_up, b_up = a[a[:, 2] > ground], b[b[:, 2] > ground]
    if a_up.shape[0] < 10 or b_up.shape[0] < 10:
        return 0.0
    d_a = cKDTree(b_up).query(a_up)[0]
    d_b = cKDTree(a_up).query(b_up)[0]
    return min(float((d_a <= radius).mean()), float((d_b <= radius).mean()))


def calibrate_sensor(
    frames: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    poses: Mapping[int, np.ndarray] | None = None,
    quantile: float = 0.95,
    target_g: float = 0.75,
    max_pairs: int = 64,
    min_overlap: float = 0.2,
    overlap_radius: float = 0.5,
    progress: Any = None,
) -> SensorCalibration:
    """Per-class and scene ``d_max`` from registered consecutive real scans (see module docstring).

    Args:
        frames: ``(name, frame)`` real scans in acquisition order (frames carry ``frame_id`` = the scan number
            the poses are keyed by).
        poses: frame number -> (4, 4) sensor-to-world pose; ``None``: register with small_gicp.
        quantile: quantile of the real-vs-real distances that must still reach ``target_g``.
        target_g: the G acceptance threshold real data should pass.
        max_pairs: at most this many consecutive pairs (the first ones).
        min_overlap: a pair whose registered overlap above the ground is below this share is refused.
        overlap_radius: metres within which a point counts as overlapping.
        progress: called once per pair.

    Returns:
        The :class:`SensorCalibration`.

    Raises:
        SimGapInputError: ``quantile``/``target_g``/``min_overlap`` out of range.
        ReferenceDataError: fewer than 2 scans, or every pair refused (the reasons named).
    """
    from ..frame import id_to_class

    if not 0.0 < quantile <= 1.0:
        raise SimGapInputError(f"quantile must be in (0, 1], got {quantile}")
    if not 0.0 <= target_g < 1.0:
        raise SimGapInputError(f"target_g must be in [0, 1), got {target_g}")
    if not 0.0 < min_overlap <= 1.0:
        raise SimGapInputError(f"min_overlap must be in (0, 1], got {min_overlap}")
    scene: list[float] = []
    per_class: dict[str, list[float]] = {}
    refused: list[tuple[str, str]] = []
    prev: tuple[str, Mapping[str, Any]] | None = None
    n_scans = 0
    for name, frame in frames:
        n_scans += 1
        if prev is not None and len(scene) + len(refused) < max_pairs:
            pname, pframe = prev
            pair = f"{pname} -> {name}"
            src, dst = np.asarray(frame["data"], np.float32), np.asarray(pframe["data"], np.float32)
            if poses is not None:
                a, b = int(pframe.get("frame_id", -1)), int(frame.get("frame_id", -1))
                if a not in poses or b not in poses:
                    raise ReferenceDataError(f"poses file has no pose for scan {pname if a not in poses else name}")
                T = np.linalg.inv(poses[a]) @ poses[b]
            else:
                T, _ = register_pair(src, dst)
            moved = _transform(src, T)
            cd, d_src, d_dst = _trimmed_chamfer(moved, dst)
            overlap = _structure_overlap(moved, dst, overlap_radius)
            if overlap < min_overlap:
                refused.append(
                    (
                        pair,
                        f"the scans do not overlap after registration ({overlap:.0%} of the points above the ground "
                        f"within {overlap_radius:g} m < {min_overlap:.0%}): not consecutive scans of one place",
                    )
                )
            else:
                scene.append(cd)
                names_a, names_b = id_to_class(frame), id_to_class(pframe)
                sem_a = np.asarray(frame["info"]["pointSemantic"])
                sem_b = np.asarray(pframe["info"]["pointSemantic"])
                # Per class, only where the two views overlap: a car seen in one scan only, or newly visible
                # behind another, is not sensor noise.
                seen_a, seen_b = d_src <= overlap_radius, d_dst <= overlap_radius
                for c in sorted(set(names_a.values()) & set(names_b.values())):
                    ma = np.isin(sem_a, [k for k, v in names_a.items() if v == c]) & seen_a
                    mb = np.isin(sem_b, [k for k, v in names_b.items() if v == c]) & seen_b
                    if ma.sum() >= _MIN_CLASS_POINTS and mb.sum() >= _MIN_CLASS_POINTS:
                        per_class.setdefault(c, []).append(_trimmed_chamfer(moved[ma], dst[mb])[0])
            if progress is not None:
                progress()
        prev = (name, frame)
    if n_scans < 2:
        raise ReferenceDataError(f"calibration needs at least 2 consecutive real scans, got {n_scans}")
    if not scene:
        reasons = "; ".join(f"{p}: {r}" for p, r in refused[:3])
        raise ReferenceDataError(f"no usable pair of real scans ({len(refused)} refused): {reasons}")
    scale = 1.0 / (1.0 - target_g)
    q_scene = float(np.quantile(scene, quantile))
    class_d_max = {c: float(np.quantile(v, quantile)) * scale for c, v in per_class.items() if len(v) >= 1}
    for c, v in class_d_max.items():
        if not (math.isfinite(v) and v > 0):
            raise ReferenceDataError(f"calibration: class {c} gives d_max {v} (identical scans?)")
    if not (math.isfinite(q_scene) and q_scene > 0):
        raise ReferenceDataError("calibration: real scans are identical (Chamfer 0): cannot calibrate d_max")
    return SensorCalibration(
        d_max=q_scene * scale,
        class_d_max=dict(sorted(class_d_max.items())),
        scene_distances=np.asarray(scene),
        class_distances=per_class,
        refused=refused,
        meta={
            "quantile": quantile,
            "target_g": target_g,
            "registration": "poses" if poses is not None else "small_gicp",
            "pairs": len(scene),
            "scans": n_scans,
        },
    )


def write_calibration(path: str | Path, calib: SensorCalibration, **extra: Any) -> Path:
    """Write ``calib`` as TOML (atomically); ``extra`` (source, sensor) goes into ``[calibration]``."""
    from ..data import atomic_write_bytes

    def q(s: Any) -> str:
        return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["# SimGap sensor calibration (simgap calibrate): real-vs-real noise floor, ego motion removed.", ""]
    lines.append("[calibration]")
    for k, v in {**calib.meta, **extra}.items():
        if v is None:
            continue
        lines.append(f"{k} = {v!r}" if isinstance(v, (int, float)) and not isinstance(v, bool) else f"{k} = {q(v)}")
    lines.append(f"d_max = {calib.d_max!r}")
    lines.append(f"scene_chamfer_median = {float(np.median(calib.scene_distances))!r}")
    lines += ["", "# per-class d_max (metres): thin and sparse classes are naturally larger than the scene value"]
    lines.append("[class_d_max]")
    for c, v in calib.class_d_max.items():
        lines.append(f"{q(c)} = {v!r}")
    if calib.refused:
        lines += ["", "# pairs left out, with the reason", "[refused]"]
        for pair, reason in calib.refused:
            lines.append(f"{q(pair)} = {q(reason)}")
    return Path(atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8")))


def read_calibration(path: str | Path) -> dict[str, Any]:
    """Read a ``calib.toml``: ``{"d_max": float, "class_d_max": {class: float}, "meta": {...}}``.

    Raises:
        ReferenceDataError: missing/corrupt file, or a missing, non-finite or non-positive value (named).
    """
    p = Path(path)
    if not p.is_file():
        raise ReferenceDataError(f"calibration {p}: file not found (write one with `simgap calibrate --out`)")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ReferenceDataError(f"calibration {p}: unreadable ({exc})") from exc
    meta = doc.get("calibration")
    if not isinstance(meta, dict) or "d_max" not in meta:
        raise ReferenceDataError(f"calibration {p}: no [calibration] d_max")
    values = {"d_max": meta["d_max"], **{f"class_d_max.{k}": v for k, v in doc.get("class_d_max", {}).items()}}
    for key, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ReferenceDataError(f"calibration {p}: {key} is {v!r} (must be a finite number > 0)")
    return {
        "d_max": float(meta["d_max"]),
        "class_d_max": {str(k): float(v) for k, v in doc.get("class_d_max", {}).items()},
        "meta": meta,
    }
