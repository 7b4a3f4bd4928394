"""KITTI 3D-object scans: per-point classes and instance ids from the ``label_2`` boxes and the ``calib`` file.

KITTI's object benchmark labels boxes, not points. A ``label_2/NNNNNN.txt`` line is::

    type truncated occluded alpha x1 y1 x2 y2 h w l x y z ry [score]

with the box in the rectified camera frame: ``(x, y, z)`` the centre of the bottom face, ``h, w, l`` its height,
width and length in metres, ``ry`` the yaw about the camera's y axis (pointing down). Velodyne points reach that
frame through ``calib/NNNNNN.txt``: ``p_rect = R0_rect @ (Tr_velo_to_cam @ [p; 1])``. A point inside a box takes
the box's class and the box's 1-based position among the non-ignored boxes as instance id; boxes whose class
maps to ``None`` (``DontCare``) are skipped, so their points stay ``unlabeled``. Where boxes overlap, the first
box in the file wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SimGapInputError

__all__ = ["KittiBox", "read_kitti_calib", "read_kitti_labels", "velo_to_rect", "points_in_boxes"]

_MAX_TEXT_BYTES = 1 << 20  # a label or calib file is a few kB


@dataclass(frozen=True)
class KittiBox:
    """One ``label_2`` box (camera frame).

    Attributes:
        type: the KITTI class string (``Car``, ``Pedestrian``, ``DontCare``, ...).
        h, w, l: height, width, length in metres.
        x, y, z: bottom-face centre in the rectified camera frame.
        ry: yaw about the camera y axis (radians).
    """

    type: str
    h: float
    w: float
    l: float  # noqa: E741 - KITTI's own name for the box length
    x: float
    y: float
    z: float
    ry: float


def _read_text(path: Path, what: str) -> str:
    try:
        size = path.stat().st_size
        if size > _MAX_TEXT_BYTES:
            raise SimGapInputError(f"{path}: {size} bytes is too large for a KITTI {what} file")
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise SimGapInputError(f"{path}: KITTI {what} file not found") from exc
    except UnicodeDecodeError as exc:
        raise SimGapInputError(f"{path}: KITTI {what} file is not text") from exc
    except OSError as exc:
        raise SimGapInputError(f"{path}: cannot read KITTI {what} file ({exc.strerror or exc})") from exc


def read_kitti_calib(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``R0_rect`` and ``Tr_velo_to_cam`` from a KITTI calib file.

    Returns:
        ((3, 3) float64 R0_rect, (3, 4) float64 Tr_velo_to_cam).

    Raises:
        SimGapInputError: missing keys (``R_rect``/``Tr_velo_cam`` spellings of the tracking benchmark accepted),
            wrong value counts, non-finite values.
    """
    p = Path(path)
    vals: dict[str, list[float]] = {}
    for line in _read_text(p, "calib").splitlines():
        if ":" not in line:
            continue
        key, _, rest = line.partition(":")
        try:
            vals[key.strip()] = [float(t) for t in rest.split()]
        except ValueError as exc:
            raise SimGapInputError(f"{p}: calib entry {key.strip()!r} is not numeric") from exc

    def _get(names: tuple[str, ...], n: int) -> np.ndarray:
        for k in names:
            if k in vals:
                v = np.asarray(vals[k], dtype=np.float64)
                if v.size != n or not np.isfinite(v).all():
                    raise SimGapInputError(f"{p}: calib {k} needs {n} finite numbers, got {v.size}")
                return v
        raise SimGapInputError(f"{p}: calib file has no {names[0]}")

    return _get(("R0_rect", "R_rect"), 9).reshape(3, 3), _get(("Tr_velo_to_cam", "Tr_velo_cam"), 12).reshape(3, 4)


def read_kitti_labels(path: str | Path) -> list[KittiBox]:
    """Read the boxes of a ``label_2`` file (15 or 16 fields per line; blank lines skipped).

    Raises:
        SimGapInputError: a line with the wrong field count or non-numeric/non-finite box values.
    """
    p = Path(path)
    boxes: list[KittiBox] = []
    for n, line in enumerate(_read_text(p, "label").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (15, 16):
            raise SimGapInputError(f"{p}:{n}: expected 15 fields (type ... ry), got {len(parts)}")
        try:
            h, w, l, x, y, z, ry = (float(t) for t in parts[8:15])  # noqa: E741
        except ValueError as exc:
            raise SimGapInputError(f"{p}:{n}: box values are not numeric") from exc
        if parts[0] != "DontCare" and not (np.isfinite([h, w, l, x, y, z, ry]).all() and min(h, w, l) >= 0):
            raise SimGapInputError(f"{p}:{n}: box of {parts[0]} has non-finite or negative dimensions")
        boxes.append(KittiBox(parts[0], h, w, l, x, y, z, ry))
    return boxes


def velo_to_rect(points: np.ndarray, r0_rect: np.ndarray, tr_velo_to_cam: np.ndarray) -> np.ndarray:
    """(N, 3) velodyne points -> (N, 3) float64 rectified camera coordinates."""
    pts = np.asarray(points, dtype=np.float64)
    cam = pts @ tr_velo_to_cam[:, :3].T + tr_velo_to_cam[:, 3]
    return cam @ r0_rect.T


def points_in_boxes(points_rect: np.ndarray, boxes: list[KittiBox], keep: list[bool]) -> np.ndarray:
    """Index of the first kept box containing each point.

    Args:
        points_rect: (N, 3) points in the rectified camera frame.
        boxes: the boxes.
        keep: per box, whether it labels points (``False`` for DontCare).

    Returns:
        (N,) int64: the box's index in ``boxes``, or -1 for a point in no kept box.
    """
    n = points_rect.shape[0]
    owner = np.full(n, -1, dtype=np.int64)
    for i, (b, k) in enumerate(zip(boxes, keep, strict=True)):
        if not k:
            continue
        # a cheap radius test first: most points are far from any one box
        d = points_rect - np.array([b.x, b.y - b.h / 2.0, b.z])
        near = np.flatnonzero((owner < 0) & (np.einsum("ij,ij->i", d, d) <= (b.h * b.h + b.w * b.w + b.l * b.l) / 4.0))
        if near.size == 0:
            continue
        dx, dy, dz = (points_rect[near, j] - c for j, c in enumerate((b.x, b.y, b.z)))
        c, s = np.cos(b.ry), np.sin(b.ry)
        lx = c * dx - s * dz  # box-local coordinates: R_y(ry)^T (p - centre)
        lz = s * dx + c * dz
        inside = (np.abs(lx) <= b.l / 2.0) & (np.abs(lz) <= b.w / 2.0) & (dy <= 0.0) & (dy >= -b.h)
        owner[near[inside]] = i
    return owner
