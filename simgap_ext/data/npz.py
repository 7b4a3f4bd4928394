"""NumPy ``.npz`` point clouds (SimGap's lossless interchange format).

Keys (loaded with ``allow_pickle=False``):

| key | shape / dtype | notes |
|---|---|---|
| ``points`` (or ``xyz``) | (N, 3) float | required; (N, 4) gives intensity from column 3 |
| ``intensity`` | (N,) float | optional |
| ``semantic`` (or ``label``/``labels``) | (N,) integer | optional |
| ``instance`` | (N,) integer | optional |
| ``id_to_labels`` | 0-d str | optional JSON object ``{"10": "car", ...}`` |
| ``label_ids`` + ``label_names`` | (K,) integer + (K,) str | optional alternative to ``id_to_labels`` |
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import SimGapInputError
from .atomic import atomic_write_bytes
from .header_guards import check_npz_members
from .pointcloud import PointCloud

__all__ = ["read_npz", "write_npz"]


def read_npz(path: str | Path) -> PointCloud:
    """Read a ``.npz`` cloud (layout in the module docstring).

    Raises:
        SimGapInputError: unreadable archive, no ``points``/``xyz`` key, wrong shapes or a bad label map.
    """
    p = Path(path)
    if p.is_file():
        check_npz_members(p)  # member names and declared shapes against the stored bytes, before loading
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError as exc:
        raise SimGapInputError(f"{p}: file not found") from exc
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise SimGapInputError(f"{p}: not a readable .npz archive ({exc})") from exc
    key = "points" if "points" in arrays else "xyz" if "xyz" in arrays else None
    if key is None:
        raise SimGapInputError(f"{p}: no 'points' or 'xyz' array (found {sorted(arrays)})")
    pts = arrays[key]
    intensity = arrays.get("intensity")
    if pts.ndim == 2 and pts.shape[1] == 4 and intensity is None:
        intensity = pts[:, 3]
        pts = pts[:, :3]
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise SimGapInputError(f"{p}: '{key}' must have shape (N, 3), got {pts.shape}")
    semantic = next((arrays[k] for k in ("semantic", "label", "labels") if k in arrays), None)
    names = _read_names(p, arrays)
    try:
        return PointCloud(pts, intensity, semantic, arrays.get("instance"), names)
    except SimGapInputError as exc:
        raise SimGapInputError(f"{p}: {exc}") from exc


def _read_names(p: Path, arrays: dict[str, np.ndarray]) -> dict[int, str]:
    if "id_to_labels" in arrays:
        raw = arrays["id_to_labels"]
        try:
            doc = json.loads(str(raw.item() if raw.ndim == 0 else raw.reshape(-1)[0]))
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            return {int(k): (v if isinstance(v, str) else str(v["class"])) for k, v in doc.items()}
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise SimGapInputError(f"{p}: 'id_to_labels' is not a JSON object of id -> name ({exc})") from exc
    if "label_ids" in arrays and "label_names" in arrays:
        ids, names = arrays["label_ids"].reshape(-1), arrays["label_names"].reshape(-1)
        if ids.size and ids.dtype.kind not in "iu":
            # a float id would be truncated onto another class (2.7 -> 2)
            raise SimGapInputError(f"{p}: 'label_ids' must be an integer array, got dtype {ids.dtype}")
        if ids.shape != names.shape:
            raise SimGapInputError(f"{p}: 'label_ids' has {ids.size} entries but 'label_names' has {names.size}")
        try:
            return {int(i): str(n) for i, n in zip(ids.tolist(), names.tolist(), strict=True)}
        except (TypeError, ValueError) as exc:
            raise SimGapInputError(f"{p}: 'label_ids' must hold integer ids ({exc})") from exc
    return {}


def write_npz(path: str | Path, cloud: PointCloud, *, compressed: bool = True) -> Path:
    """Write ``cloud`` as ``.npz`` (layout in the module docstring), atomically.

    Args:
        path: destination file.
        cloud: the cloud; absent optional arrays are omitted.
        compressed: zip-deflate the arrays.

    Returns:
        The path written.

    Raises:
        SimGapInputError: per-point arrays whose lengths differ from the point count.
        ExportError: the write failed (an existing file at ``path`` is left untouched).
    """
    cloud.check_shapes(str(path))
    arrays: dict[str, np.ndarray] = {"points": np.asarray(cloud.points, dtype=np.float32)}
    for k in ("intensity", "semantic", "instance"):
        v = getattr(cloud, k)
        if v is not None:
            arrays[k] = v
    if cloud.id_to_labels:
        arrays["id_to_labels"] = np.array(json.dumps({str(k): v for k, v in sorted(cloud.id_to_labels.items())}))
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())
