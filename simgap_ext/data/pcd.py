"""Point Cloud Library ``.pcd`` files (ASCII, binary, binary_compressed) via :mod:`pypcd4`.

Read: fields ``x y z`` (required), optional ``intensity`` (or ``remission``/``reflectivity``), semantic id
``label`` (or ``semantic``/``class``), instance id ``object`` (or ``instance``). Organised clouds keep NaN points
for missing returns: pass ``drop_nonfinite=True`` to :func:`~simgap_ext.data.load_point_cloud` to drop them.
Class names travel in a header comment ``# simgap_labels {"10": "car", ...}`` (JSON) that :func:`write_pcd`
writes before ``VERSION`` (PCL and pypcd4 skip ``#`` lines); otherwise put a ``label_map.yaml`` beside the files.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np

from ..errors import SimGapInputError
from .atomic import atomic_write_bytes
from .header_guards import READ_TIME_LIMIT_S, check_pcd_header, time_limit
from .pointcloud import PointCloud

__all__ = ["PCD_ENCODINGS", "PCD_LABELS_COMMENT", "read_pcd", "write_pcd"]

PCD_LABELS_COMMENT = "# simgap_labels "

PCD_ENCODINGS = ("ascii", "binary", "binary_compressed")
_INTENSITY = ("intensity", "remission", "reflectivity", "i")
_SEMANTIC = ("label", "semantic", "class")
_INSTANCE = ("object", "instance", "instance_id")


def read_pcd(path: str | Path) -> PointCloud:
    """Read a ``.pcd`` cloud (fields in the module docstring).

    Raises:
        SimGapInputError: unreadable/corrupt file (bad header, truncated data), missing ``x``/``y``/``z``.
    """
    from pypcd4 import PointCloud as PcdCloud

    p = Path(path)
    if p.is_file():
        check_pcd_header(p)  # POINTS / WIDTH x HEIGHT against the bytes after DATA, before pypcd4 allocates
    try:
        with time_limit(READ_TIME_LIMIT_S, str(p)):
            pcd = PcdCloud.from_path(p)
    except FileNotFoundError as exc:
        raise SimGapInputError(f"{p}: file not found") from exc
    except MemoryError as exc:
        raise SimGapInputError(f"{p}: PCD file needs more memory than is available") from exc
    except (
        ValueError,
        ArithmeticError,
        RuntimeError,
        OSError,
        struct.error,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
    ) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SimGapInputError(f"{p}: unreadable PCD file ({msg})") from exc
    declared = int(pcd.metadata.points)
    data = np.atleast_1d(pcd.pc_data)  # a one-point ASCII file parses to a 0-d record
    if data.shape[0] != declared:
        raise SimGapInputError(f"{p}: PCD header declares {declared} points but the data holds {data.shape[0]}")
    fields = set(data.dtype.names or ())
    missing = [c for c in ("x", "y", "z") if c not in fields]
    if missing:
        raise SimGapInputError(f"{p}: PCD has no {'/'.join(missing)} field (found {sorted(fields)})")

    def _col(names: tuple[str, ...]) -> np.ndarray | None:
        key = next((k for k in names if k in fields), None)
        return None if key is None else np.asarray(data[key]).reshape(declared, -1)[:, 0]

    pts = np.stack([np.asarray(data[c], dtype=np.float32).reshape(-1) for c in ("x", "y", "z")], axis=1)
    names = _read_names(p)  # its errors already name the file
    try:
        return PointCloud(pts, _col(_INTENSITY), _col(_SEMANTIC), _col(_INSTANCE), names)
    except SimGapInputError as exc:
        raise SimGapInputError(f"{p}: {exc}") from exc


def _read_names(p: Path) -> dict[int, str]:
    # The header is short; the names comment, if any, precedes the DATA line.
    with p.open("rb") as fh:
        for _ in range(64):
            line = fh.readline()
            if not line or line.startswith(b"DATA"):
                break
            if line.startswith(PCD_LABELS_COMMENT.encode()):
                try:
                    doc = json.loads(line[len(PCD_LABELS_COMMENT) :].decode("utf-8"))
                    return {int(k): str(v) for k, v in doc.items()}
                except (ValueError, AttributeError, TypeError) as exc:
                    raise SimGapInputError(f"{p}: bad 'simgap_labels' header comment ({exc})") from exc
    return {}


def _ascii_bytes(header: str, arr: np.ndarray, kinds: list[str]) -> bytes:
    # pypcd4 prints floats with %.10f, which loses digits of small values; %.9g round-trips every float32.
    fmt = ["%.9g" if k == "F" else "%u" for k in kinds]
    buf = io.BytesIO()
    buf.write(header.encode())
    if arr.shape[0]:
        np.savetxt(buf, arr, fmt=fmt, delimiter=" ")
    return buf.getvalue()


def write_pcd(path: str | Path, cloud: PointCloud, *, encoding: str = "binary") -> Path:
    """Write ``cloud`` as ``.pcd`` atomically.

    Fields: ``x y z`` float32, ``intensity`` float32, ``label`` uint32 (semantic), ``object`` uint32 (instance),
    the optional ones only when present.

    Args:
        path: destination file.
        cloud: the cloud.
        encoding: ``"ascii"``, ``"binary"`` or ``"binary_compressed"`` (LZF).

    Returns:
        The path written.

    Raises:
        SimGapInputError: unknown encoding, or per-point arrays whose lengths differ from the point count.
        ExportError: the write failed (an existing file at ``path`` is left untouched).
    """
    from pypcd4 import Encoding
    from pypcd4 import PointCloud as PcdCloud

    if encoding not in PCD_ENCODINGS:
        raise SimGapInputError(f"PCD encoding must be one of {PCD_ENCODINGS}, got {encoding!r}")
    cloud.check_shapes(str(path))
    cols: list[np.ndarray] = [cloud.points[:, 0], cloud.points[:, 1], cloud.points[:, 2]]
    names, types = ["x", "y", "z"], [np.float32] * 3
    for attr, name, dt in (
        ("intensity", "intensity", np.float32),
        ("semantic", "label", np.uint32),
        ("instance", "object", np.uint32),
    ):
        v = getattr(cloud, attr)
        if v is not None:
            cols.append(np.asarray(v, dtype=dt))
            names.append(name)
            types.append(dt)
    pcd = PcdCloud.from_points([np.ascontiguousarray(c) for c in cols], names, types)
    prefix = b""
    if cloud.id_to_labels:
        names = json.dumps({str(k): v for k, v in sorted(cloud.id_to_labels.items())}, ensure_ascii=True)
        prefix = f"{PCD_LABELS_COMMENT}{names}\n".encode()
    if encoding == "ascii":
        header = pcd.metadata.compose_header(data=Encoding.ASCII)
        return atomic_write_bytes(path, prefix + _ascii_bytes(header, pcd.pc_data, list(pcd.metadata.type)))
    buf = io.BytesIO()
    pcd.save(buf, encoding=Encoding(encoding))
    return atomic_write_bytes(path, prefix + buf.getvalue())
