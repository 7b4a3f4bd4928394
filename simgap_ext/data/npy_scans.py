"""NumPy ``.npy`` scans: Open3D-ML's SemanticKITTI demo arrays and SqueezeSeg range images.

- ``npy`` layout: an (N, 3) or (N, 4) float array (x, y, z[, intensity]); labels from ``../labels/<name>.npy``
  (Open3D-ML ``points/`` + ``labels/`` folders) or the sibling whose name has ``labels`` for ``points``
  (``kitti_01_points_000000.npy`` -> ``kitti_01_labels_000000.npy``): (N,) or (N, 1) integer ids, by default the
  SemanticKITTI 0-19 learning ids (label map ``semantickitti_learning``).
- ``squeezeseg`` layout: an (H, W, C >= 6) float range image with channels x, y, z, intensity, range, label
  (label map ``squeezeseg``); pixels with range 0 hold no return and are dropped.

The NPY header is checked against the file size before the array is loaded (never a declared shape on trust).
"""

from __future__ import annotations

from pathlib import Path
from tokenize import TokenError

import numpy as np

from ..errors import SimGapInputError
from .pointcloud import PointCloud

__all__ = ["npy_shape", "npy_layout", "npy_label_file", "read_npy_scan"]


def npy_shape(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """The (shape, dtype) an ``.npy`` header declares, checked against the file's size.

    Raises:
        SimGapInputError: not an NPY file, an object dtype, or a shape whose bytes differ from the data stored.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=10000)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=10000)
            offset = fh.tell()
    except FileNotFoundError as exc:
        raise SimGapInputError(f"{p}: file not found") from exc
    except (ValueError, OSError, EOFError, SyntaxError, TokenError) as exc:
        # numpy parses the header dict with tokenize/ast: a mangled header raises their errors
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SimGapInputError(f"{p}: not a readable .npy array ({msg})") from exc
    if dtype.hasobject or dtype.kind not in "iufb":
        raise SimGapInputError(f"{p}: .npy array of dtype {dtype} is not numeric")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes != size - offset:
        raise SimGapInputError(f"{p}: .npy header declares shape {shape} ({nbytes} bytes) but stores {size - offset}")
    return tuple(shape), dtype


def npy_layout(path: str | Path) -> str:
    """``"squeezeseg"`` for an (H, W, C >= 6) range image, else ``"npy"``."""
    shape, _ = npy_shape(path)
    return "squeezeseg" if len(shape) == 3 and shape[2] >= 6 else "npy"


def npy_label_file(path: str | Path) -> Path | None:
    """The label array of an Open3D-ML style points array, or ``None``."""
    p = Path(path)
    cands = []
    if p.parent.name == "points":
        cands.append(p.parent.parent / "labels" / p.name)
    if "points" in p.stem:
        cands.append(p.with_name(p.name.replace("points", "labels")))
    return next((c for c in cands if c.is_file()), None)


def _load(p: Path) -> np.ndarray:
    npy_shape(p)
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SimGapInputError(f"{p}: not a readable .npy array ({exc})") from exc


def read_npy_scan(path: str | Path, layout: str) -> PointCloud:
    """Read an ``.npy`` scan in ``layout`` (``npy`` or ``squeezeseg``; see the module docstring).

    Returns:
        The cloud with the dataset's own ids and no names (the caller applies the label map). Not validated.

    Raises:
        SimGapInputError: a shape that is not the layout's, a label array of the wrong length or a float one
            with fractional ids.
    """
    p = Path(path)
    arr = _load(p)
    if layout == "squeezeseg":
        if arr.ndim != 3 or arr.shape[2] < 6:
            raise SimGapInputError(f"{p}: expected an (H, W, 6) SqueezeSeg range image, got shape {arr.shape}")
        flat = arr.reshape(-1, arr.shape[2]).astype(np.float32)
        flat = flat[flat[:, 4] > 0]  # range 0: no return in this pixel
        return PointCloud(flat[:, :3], flat[:, 3], _ids(flat[:, 5], p), None, {})
    if arr.ndim != 2 or arr.shape[1] not in (3, 4):
        raise SimGapInputError(f"{p}: expected an (N, 3) or (N, 4) points array, got shape {arr.shape}")
    pts = arr[:, :3]
    inten = arr[:, 3] if arr.shape[1] == 4 else None
    semantic = None
    lp = npy_label_file(p)
    if lp is not None:
        lab = _load(lp).reshape(-1)
        if lab.size != pts.shape[0]:
            raise SimGapInputError(f"{lp}: {lab.size} labels for {pts.shape[0]} points in {p.name}")
        semantic = _ids(lab, lp)
    return PointCloud(pts, inten, semantic, None, {})


def _ids(a: np.ndarray, p: Path) -> np.ndarray:
    if a.dtype.kind == "f" and not (np.isfinite(a).all() and (a == np.round(a)).all()):
        raise SimGapInputError(f"{p}: class ids must be integers, found fractional values")
    if a.size and a.min() < 0:
        raise SimGapInputError(f"{p}: class ids must be non-negative, got {a.min()}")
    return a.astype(np.uint32)
