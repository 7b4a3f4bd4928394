"""ASPRS ``.las`` / ``.laz`` point clouds via :mod:`laspy` (LAZ through the ``lazrs`` backend).

Read: scaled ``x y z`` -> (N, 3) float32; ``intensity`` (uint16) -> float32 in [0, 1] (divided by 65535);
``classification`` -> semantic id; instance id from an extra dimension ``instance`` when present, else
``point_source_id``. Class names from a SimGap VLR (user id ``SimGap``, record 1, JSON ``{id: name}``) that
:func:`write_las` writes, else a ``label_map.yaml`` beside the file, else the ASPRS class table.

LAS stores coordinates as integers times a scale: :func:`write_las` uses 0.1 mm by default, far below LiDAR
noise but not bit-exact for arbitrary float32 values (points on the scale grid round-trip exactly).
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np

from ..errors import SimGapInputError
from .atomic import atomic_write_bytes
from .header_guards import READ_TIME_LIMIT_S, check_las_header, time_limit
from .pointcloud import PointCloud

__all__ = ["read_las", "write_las", "LAS_VLR_USER_ID", "LAS_VLR_RECORD_ID"]

LAS_VLR_USER_ID = "SimGap"
LAS_VLR_RECORD_ID = 1
_INTENSITY_SCALE = 65535.0


def read_las(path: str | Path) -> PointCloud:
    """Read a ``.las`` or ``.laz`` cloud (mapping in the module docstring).

    Raises:
        SimGapInputError: unreadable or corrupt file (including LAZ without a backend), a header whose declared
            sizes do not fit the file (:func:`~simgap_ext.data.header_guards.check_las_header`), a read that runs
            past :data:`~simgap_ext.data.header_guards.READ_TIME_LIMIT_S`.
    """
    import laspy

    p = Path(path)
    check_las_header(p)  # declared VLR / point counts against the file size, before laspy allocates
    try:
        with time_limit(READ_TIME_LIMIT_S, str(p)):
            las = laspy.read(str(p))
    except FileNotFoundError as exc:
        raise SimGapInputError(f"{p}: file not found") from exc
    except MemoryError as exc:
        raise SimGapInputError(f"{p}: LAS/LAZ file needs more memory than is available") from exc
    except SimGapInputError:
        raise
    except (
        laspy.LaspyException,
        ValueError,
        ArithmeticError,
        OSError,
        EOFError,
        KeyError,
        IndexError,
        TypeError,
        struct.error,
    ) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SimGapInputError(f"{p}: unreadable LAS/LAZ file ({msg})") from exc
    except BaseException as exc:
        # lazrs (Rust, via pyo3) raises its own LazrsError on truncated/corrupt LAZ data, and reports a panic as
        # pyo3's PanicException, a BaseException
        if type(exc).__name__ != "PanicException" and not type(exc).__module__.startswith("lazrs"):
            raise
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SimGapInputError(f"{p}: unreadable LAZ file ({msg})") from exc
    pts = np.stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)], axis=1).astype(np.float32)
    dims = set(las.point_format.dimension_names)
    intensity = np.asarray(las.intensity, dtype=np.float64) / _INTENSITY_SCALE if "intensity" in dims else None
    semantic = np.asarray(las.classification, dtype=np.uint32) if "classification" in dims else None
    extra = set(las.point_format.extra_dimension_names)
    if "instance" in extra:
        instance = np.asarray(las["instance"], dtype=np.uint32)
    elif "point_source_id" in dims:
        instance = np.asarray(las.point_source_id, dtype=np.uint32)
    else:
        instance = None
    names: dict[int, str] = {}
    for vlr in las.header.vlrs:
        if vlr.user_id == LAS_VLR_USER_ID and vlr.record_id == LAS_VLR_RECORD_ID:
            try:
                names = {int(k): str(v) for k, v in json.loads(bytes(vlr.record_data).decode()).items()}
            except (ValueError, AttributeError, TypeError) as exc:
                raise SimGapInputError(f"{p}: bad SimGap label-map VLR ({exc})") from exc
    try:
        return PointCloud(pts, intensity, semantic, instance, names)
    except SimGapInputError as exc:
        raise SimGapInputError(f"{p}: {exc}") from exc


def write_las(path: str | Path, cloud: PointCloud, *, scale: float = 1e-4, compress: bool | None = None) -> Path:
    """Write ``cloud`` as LAS 1.4 point format 6, atomically.

    Semantic ids go to ``classification`` (0..255), instance ids to an extra ``uint32`` dimension ``instance``,
    intensity (clipped to [0, 1]) to ``round(i * 65535)``, class names to a SimGap VLR.

    Args:
        path: destination file (``.laz`` compresses by default).
        cloud: the cloud.
        scale: coordinate quantum in metres.
        compress: LAZ compression; default: ``True`` for a ``.laz`` suffix.

    Returns:
        The path written.

    Raises:
        SimGapInputError: semantic ids above 255 (LAS classification is one byte), a non-positive scale,
            NaN/inf points (LAS stores scaled integers) or per-point arrays of the wrong length.
        ExportError: the write failed (an existing file at ``path`` is left untouched).
    """
    import laspy

    p = Path(path)
    if not scale > 0:
        raise SimGapInputError(f"{p}: LAS scale must be > 0, got {scale}")
    n = cloud.check_shapes(str(p))
    finite = np.isfinite(cloud.points).all(axis=1)
    if not finite.all():
        # a NaN would also become the header offset and turn every other point's coordinate into NaN
        raise SimGapInputError(f"{p}: {int(n - finite.sum())} of {n} points are NaN/inf; LAS cannot store them")
    if cloud.semantic is not None and cloud.semantic.size and int(cloud.semantic.max()) > 255:
        raise SimGapInputError(f"{p}: semantic id {int(cloud.semantic.max())} does not fit LAS classification (0..255)")
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.add_extra_dim(laspy.ExtraBytesParams(name="instance", type=np.uint32))
    pts = cloud.points.astype(np.float64)
    header.offsets = np.floor(pts.min(axis=0)) if len(cloud) else np.zeros(3)
    header.scales = np.full(3, scale)
    if cloud.id_to_labels:
        payload = json.dumps({str(k): v for k, v in sorted(cloud.id_to_labels.items())}).encode()
        header.vlrs.append(laspy.VLR(LAS_VLR_USER_ID, LAS_VLR_RECORD_ID, "class names (JSON id -> name)", payload))
    las = laspy.LasData(header)
    las.x, las.y, las.z = pts[:, 0], pts[:, 1], pts[:, 2]
    if cloud.intensity is not None:
        las.intensity = np.round(np.clip(cloud.intensity.astype(np.float64), 0.0, 1.0) * _INTENSITY_SCALE).astype(
            np.uint16
        )
    if cloud.semantic is not None:
        las.classification = cloud.semantic.astype(np.uint8)
    las["instance"] = (cloud.instance if cloud.instance is not None else np.zeros(len(cloud), np.uint32)).astype(
        np.uint32
    )
    do_compress = p.suffix.lower() == ".laz" if compress is None else compress
    buf = io.BytesIO()
    las.write(buf, do_compress=do_compress)
    return atomic_write_bytes(p, buf.getvalue())
