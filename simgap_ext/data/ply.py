"""Stanford ``.ply`` point clouds via :mod:`plyfile` (ASCII and binary).

Read: element ``vertex`` with float properties ``x``, ``y``, ``z``; optional ``intensity`` (or
``scalar_intensity``, as CloudCompare writes it), semantic id ``semantic`` (or ``label``/``class``/
``scalar_label``), instance id ``instance`` (or ``scalar_instance``). Class names may be stored in one header
comment ``comment simgap_labels {"10": "car", ...}`` (JSON), which :func:`write_ply` writes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..errors import SimGapInputError
from .atomic import atomic_write_bytes
from .header_guards import READ_TIME_LIMIT_S, check_ply_header, time_limit
from .pointcloud import PointCloud

__all__ = ["read_ply", "write_ply", "PLY_LABELS_COMMENT"]

PLY_LABELS_COMMENT = "simgap_labels"
_INTENSITY = ("intensity", "scalar_intensity", "scalar_Intensity", "remission")
_SEMANTIC = ("semantic", "label", "class", "scalar_label", "scalar_semantic")
_INSTANCE = ("instance", "scalar_instance", "instance_id")


def _first(names: tuple[str, ...], available: set[str]) -> str | None:
    return next((n for n in names if n in available), None)


def read_ply(path: str | Path) -> PointCloud:
    """Read a ``.ply`` cloud (properties in the module docstring).

    Returns:
        The cloud with (N, 3) float32 points and whatever optional arrays the file holds.

    Raises:
        SimGapInputError: unreadable/corrupt file, no ``vertex`` element, or missing ``x``/``y``/``z``.
    """
    from plyfile import PlyData, PlyParseError

    p = Path(path)
    if p.is_file():
        check_ply_header(p)  # element counts against the bytes after the header, before plyfile allocates
    try:
        with time_limit(READ_TIME_LIMIT_S, str(p)):
            ply = PlyData.read(str(p))
    except FileNotFoundError as exc:
        raise SimGapInputError(f"{p}: file not found") from exc
    except MemoryError as exc:
        raise SimGapInputError(f"{p}: PLY file needs more memory than is available") from exc
    except (
        PlyParseError,
        ValueError,
        ArithmeticError,
        OSError,
        EOFError,
        IndexError,
        KeyError,
        TypeError,
        AttributeError,
    ) as exc:
        raise SimGapInputError(f"{p}: unreadable PLY file ({str(exc).splitlines()[0] if str(exc) else exc!r})") from exc
    try:
        vertex = ply["vertex"]
    except KeyError as exc:
        raise SimGapInputError(f"{p}: no 'vertex' element in PLY file") from exc
    data = vertex.data
    props = set(data.dtype.names or ())
    missing = [c for c in ("x", "y", "z") if c not in props]
    if missing:
        raise SimGapInputError(f"{p}: PLY vertex element has no {'/'.join(missing)} field (found {sorted(props)})")
    pts = np.stack([np.asarray(data[c], dtype=np.float32) for c in ("x", "y", "z")], axis=1)
    ik, sk, nk = _first(_INTENSITY, props), _first(_SEMANTIC, props), _first(_INSTANCE, props)
    names: dict[int, str] = {}
    for comment in ply.comments:
        if comment.startswith(PLY_LABELS_COMMENT + " "):
            try:
                doc = json.loads(comment[len(PLY_LABELS_COMMENT) + 1 :])
                names = {int(k): str(v) for k, v in doc.items()}
            except (ValueError, AttributeError, TypeError) as exc:
                raise SimGapInputError(f"{p}: bad '{PLY_LABELS_COMMENT}' header comment ({exc})") from exc
    try:
        return PointCloud(
            pts,
            None if ik is None else np.asarray(data[ik]),
            None if sk is None else np.asarray(data[sk]),
            None if nk is None else np.asarray(data[nk]),
            names,
        )
    except SimGapInputError as exc:
        raise SimGapInputError(f"{p}: {exc}") from exc


def write_ply(path: str | Path, cloud: PointCloud, *, binary: bool = True) -> Path:
    """Write ``cloud`` as ``.ply`` atomically.

    Properties: ``x y z`` float32, ``intensity`` float32, ``semantic`` and ``instance`` uint32 (optional ones
    only when present); class names in a ``comment simgap_labels <json>`` header line.

    Args:
        path: destination file.
        cloud: the cloud.
        binary: binary little-endian (default) or ASCII (exact too: plyfile prints 18 significant digits).

    Returns:
        The path written.

    Raises:
        SimGapInputError: per-point arrays whose lengths differ from the point count.
        ExportError: the write failed (an existing file at ``path`` is left untouched).
    """
    from plyfile import PlyData, PlyElement

    n = cloud.check_shapes(str(path))
    fields: list[tuple[str, str]] = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    extra = [
        (k, dt)
        for k, dt in (("intensity", "f4"), ("semantic", "u4"), ("instance", "u4"))
        if getattr(cloud, k) is not None
    ]
    arr = np.empty(n, dtype=fields + extra)
    for i, c in enumerate("xyz"):
        arr[c] = cloud.points[:, i]
    for k, _ in extra:
        arr[k] = getattr(cloud, k)
    comments = []
    if cloud.id_to_labels:
        comments.append(
            f"{PLY_LABELS_COMMENT} " + json.dumps({str(k): v for k, v in sorted(cloud.id_to_labels.items())})
        )
    ply = PlyData([PlyElement.describe(arr, "vertex")], text=not binary, byte_order="<", comments=comments)
    buf = io.BytesIO()
    ply.write(buf)
    return atomic_write_bytes(path, buf.getvalue())
