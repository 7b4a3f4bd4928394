"""SemanticKITTI scans: ``velodyne/NNNNNN.bin`` + ``labels/NNNNNN.label``.

- ``.bin``: (N, 4) float32 little-endian rows ``x, y, z, remission``.
- ``.label``: (N,) uint32 little-endian, ``semantic | instance << 16`` (lower 16 bits semantic id, upper 16 bits
  instance id).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from ..frame import validate_frame
from .atomic import atomic_write_bytes
from .pointcloud import PointCloud

__all__ = [
    "pack_labels",
    "unpack_labels",
    "read_bin",
    "read_label",
    "find_label_file",
    "load_semantickitti_scan",
    "write_semantickitti_scan",
    "write_bin",
]

_MAX_ID = 0xFFFF


def pack_labels(semantic: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """Pack per-point ids into SemanticKITTI labels.

    Args:
        semantic: (N,) integer semantic ids, each < 65536.
        instance: (N,) integer instance ids, each < 65536.

    Returns:
        (N,) uint32 ``semantic | instance << 16``.

    Raises:
        SimGapInputError: ids that do not fit in 16 bits or mismatched lengths.
    """
    sem = np.asarray(semantic).reshape(-1).astype(np.int64)
    ins = np.asarray(instance).reshape(-1).astype(np.int64)
    if sem.shape != ins.shape:
        raise SimGapInputError(f"semantic has {sem.size} ids but instance has {ins.size}")
    for what, arr in (("semantic", sem), ("instance", ins)):
        if arr.size and (arr.min() < 0 or arr.max() > _MAX_ID):
            raise SimGapInputError(
                f"{what} ids must lie in [0, 65535] for SemanticKITTI labels, got [{arr.min()}, {arr.max()}]"
            )
    return (sem | (ins << 16)).astype(np.uint32)


def unpack_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split (N,) uint32 SemanticKITTI labels into ((N,) uint32 semantic, (N,) uint32 instance)."""
    lab = np.asarray(labels, dtype=np.uint32).reshape(-1)
    return (lab & np.uint32(0xFFFF)).astype(np.uint32), (lab >> np.uint32(16)).astype(np.uint32)


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise SimGapInputError(f"{path}: {what} not found") from exc
    except IsADirectoryError as exc:
        raise SimGapInputError(f"{path}: is a directory, expected a {what}") from exc
    except OSError as exc:
        raise SimGapInputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from exc


def read_bin(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a KITTI ``.bin`` scan.

    Returns:
        ((N, 3) float32 points, (N,) float32 remission).

    Raises:
        SimGapInputError: unreadable file or a size that is not a multiple of 16 bytes.
    """
    p = Path(path)
    raw = _read_bytes(p, "scan file")
    if len(raw) % 16:
        raise SimGapInputError(
            f"{p}: size {len(raw)} bytes is not a multiple of 16 (expected float32 x, y, z, remission rows)"
        )
    arr = np.frombuffer(raw, dtype="<f4").reshape(-1, 4)
    return np.ascontiguousarray(arr[:, :3], dtype=np.float32), np.ascontiguousarray(arr[:, 3], dtype=np.float32)


def read_label(path: str | Path, n_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a SemanticKITTI ``.label`` file.

    Args:
        path: the ``.label`` file.
        n_points: the scan's point count; checked when given.

    Returns:
        ((N,) uint32 semantic, (N,) uint32 instance).

    Raises:
        SimGapInputError: unreadable file, a size not a multiple of 4 bytes, or a count that differs from
            ``n_points`` (e.g. ``labels/000003.label has 1200 labels for 1300 points``).
    """
    p = Path(path)
    raw = _read_bytes(p, "label file")
    if len(raw) % 4:
        raise SimGapInputError(f"{p}: size {len(raw)} bytes is not a multiple of 4 (expected uint32 labels)")
    lab = np.frombuffer(raw, dtype="<u4")
    if n_points is not None and lab.size != n_points:
        raise SimGapInputError(f"{_short(p)} has {lab.size} labels for {n_points} points")
    return unpack_labels(lab)


def _short(p: Path) -> str:
    # "labels/000003.label" reads better than an absolute path and still says which file.
    return str(Path(p.parent.name) / p.name) if p.parent.name else str(p)


def find_label_file(bin_path: str | Path) -> Path | None:
    """The ``.label`` file of a scan: a sibling ``<stem>.label``, else ``../labels/<stem>.label`` (SemanticKITTI
    layout); ``None`` when neither exists."""
    p = Path(bin_path)
    for cand in (p.with_suffix(".label"), p.parent.parent / "labels" / f"{p.stem}.label"):
        if cand.is_file():
            return cand
    return None


def load_semantickitti_scan(
    bin_path: str | Path,
    label_path: str | Path | None = None,
    *,
    id_to_labels: Mapping[int, str] | None = None,
) -> PointCloud:
    """Read one scan and its labels.

    Args:
        bin_path: the ``.bin`` file.
        label_path: its ``.label`` file; found with :func:`find_label_file` when ``None``. Without one the
            cloud is unlabelled (``semantic`` and ``instance`` are ``None``).
        id_to_labels: names for the semantic ids (unnamed ids are filled by :meth:`PointCloud.validate`).

    Returns:
        The cloud, not yet validated for finiteness (call :meth:`PointCloud.validate`).
    """
    points, remission = read_bin(bin_path)
    lp = Path(label_path) if label_path is not None else find_label_file(bin_path)
    semantic = instance = None
    if lp is not None:
        semantic, instance = read_label(lp, points.shape[0])
    return PointCloud(points, remission, semantic, instance, dict(id_to_labels or {}))


def write_bin(path: str | Path, points: np.ndarray, intensity: np.ndarray | None = None) -> Path:
    """Write (N, 3) points and (N,) intensity (zeros when ``None``) as a float32 ``.bin``, atomically.

    Raises:
        SimGapInputError: ``points`` not (N, 3) or ``intensity`` not N values (the message names ``path``).
        ExportError: the write failed (an existing file at ``path`` is left untouched).
    """
    pts = np.asarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise SimGapInputError(f"{path}: points must have shape (N, 3), got {pts.shape}")
    rows = np.zeros((pts.shape[0], 4), dtype="<f4")
    rows[:, :3] = pts
    if intensity is not None:
        inten = np.asarray(intensity, dtype=np.float32).reshape(-1)
        if inten.shape[0] != pts.shape[0]:
            raise SimGapInputError(f"{path}: intensity has {inten.shape[0]} values for {pts.shape[0]} points")
        rows[:, 3] = inten
    return atomic_write_bytes(path, rows.tobytes())


def write_semantickitti_scan(root: str | Path, index: int, frame: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write a frame as ``root/velodyne/NNNNNN.bin`` + ``root/labels/NNNNNN.label``, each atomically.

    The label file is written first and the scan last, so a reader that lists ``velodyne/`` never finds a scan
    without its labels after a crash. ``label_map.yaml`` is the caller's job (one per export, not per scan:
    :func:`simgap_ext.data.write_label_map`).

    Args:
        root: export directory (a SemanticKITTI sequence directory).
        index: scan number, zero-padded to six digits.
        frame: a frame dict (validated here). Intensity 0 when the frame has none.

    Returns:
        (bin_path, label_path).

    Raises:
        SimGapInputError: invalid frame or ids beyond 16 bits.
        ExportError: the write failed (nothing partial is left at either path).
    """
    if int(index) < 0:
        raise SimGapInputError(f"scan index must be >= 0, got {index}")
    f = validate_frame(frame)
    r = Path(root)
    stem = f"{int(index):06d}"
    bin_path = r / "velodyne" / f"{stem}.bin"
    label_path = r / "labels" / f"{stem}.label"
    try:
        labels = pack_labels(f["info"]["pointSemantic"], f["info"]["pointInstance"])
    except SimGapInputError as exc:
        raise SimGapInputError(f"{label_path}: {exc}") from exc
    atomic_write_bytes(label_path, labels.astype("<u4").tobytes())
    write_bin(bin_path, f["data"], f.get("intensity"))
    return bin_path, label_path
