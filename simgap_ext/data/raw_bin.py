"""Raw float32 scan files (``.bin``) of a declared column layout, refused when the values do not fit the layout.

A raw scan has no header: the reader must be told its columns (KITTI/SemanticKITTI: ``x,y,z,intensity``; nuScenes
``.pcd.bin``: ``x,y,z,intensity,ring``). Reading a file with the wrong column count does not fail by itself (a
5-column file whose point count is a multiple of 4 also splits into 4-column rows) but mixes intensities and ring
indices into the coordinates, so :func:`read_raw_bin` checks what it decoded before returning it:

- the byte size is a multiple of the row size and holds at least one point;
- coordinates are within :data:`MAX_ABS_COORD_M` of the origin (misread floats are often ~1e30 or denormal);
- coordinates are not integer-valued where the file reads cleanly with another column count (the signature of
  ring indices and 0-255 intensities read as x/y/z);
- a ``ring`` column holds integers in [0, 1023], and an ``intensity`` column finite values.

Exact ``(0, 0, 0)`` rows are "no return" slots of organised scans (MCD, RELLIS-3D): callers drop them
(:func:`zero_return_mask`), since no LiDAR measures a return at its own origin.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import SimGapInputError

__all__ = [
    "KNOWN_FIELDS",
    "KITTI_COLUMNS",
    "NUSCENES_COLUMNS",
    "MAX_ABS_COORD_M",
    "parse_columns",
    "read_raw_bin",
    "zero_return_mask",
]

#: Column names a raw layout may use; ``_`` (or ``skip``) marks a float column that is read and discarded.
KNOWN_FIELDS = ("x", "y", "z", "intensity", "ring", "time", "_")
KITTI_COLUMNS: tuple[str, ...] = ("x", "y", "z", "intensity")
NUSCENES_COLUMNS: tuple[str, ...] = ("x", "y", "z", "intensity", "ring")
#: No LiDAR scan (sensor or world frame of a drive) has coordinates beyond this; misread floats do.
MAX_ABS_COORD_M = 10_000.0
_MAX_RING = 1023
# Below this share of integer-valued coordinates a column looks like measured metres; misread 5-column nuScenes
# files read as 4 columns show ~40 % (ring indices and 0-255 intensities), real KITTI/nuScenes/MCD scans < 0.2 %.
_INTEGER_SHARE = 0.10
_MIN_POINTS_FOR_SHAPE_CHECK = 100


def parse_columns(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Parse a ``--columns`` value such as ``"x,y,z,intensity,ring"``.

    Raises:
        SimGapInputError: an unknown or repeated name, or no ``x``/``y``/``z``.
    """
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    names = ["_" if n in ("skip", "") else n for n in names]
    unknown = [n for n in names if n not in KNOWN_FIELDS]
    if unknown:
        raise SimGapInputError(f"--columns: unknown column {unknown[0]!r} (known: {', '.join(KNOWN_FIELDS)})")
    named = [n for n in names if n != "_"]
    if len(set(named)) != len(named):
        raise SimGapInputError(f"--columns: a column is named twice in {','.join(names)}")
    missing = [c for c in ("x", "y", "z") if c not in names]
    if missing:
        raise SimGapInputError(f"--columns: needs x, y and z (missing {', '.join(missing)})")
    if len(names) > 64:
        raise SimGapInputError(f"--columns: {len(names)} columns is not a point layout")
    return tuple(names)


def zero_return_mask(points: np.ndarray) -> np.ndarray:
    """(N,) bool: rows whose x, y and z are all exactly 0 (the "no return" slots of organised scans)."""
    return ~np.any(points != 0, axis=1)


def _integer_share(col: np.ndarray) -> float:
    v = col[(col != 0) & np.isfinite(col)]
    return float(np.mean(v == np.round(v))) if v.size else 0.0


def _looks_misread(xyz: np.ndarray) -> bool:
    return xyz.shape[0] >= _MIN_POINTS_FOR_SHAPE_CHECK and all(
        _integer_share(xyz[:, i]) > _INTEGER_SHARE for i in range(3)
    )


def _clean_alternatives(flat: np.ndarray, ncols: int) -> list[int]:
    """Column counts (3..8, other than ``ncols``) under which the first three columns read as measured metres."""
    out = []
    for k in range(3, 9):
        if k == ncols or flat.size % k:
            continue
        xyz = flat.reshape(-1, k)[:, :3]
        finite = np.isfinite(xyz).all() and np.abs(xyz).max(initial=0.0) <= MAX_ABS_COORD_M
        if finite and all(_integer_share(xyz[:, i]) < 0.01 for i in range(3)):
            out.append(k)
    return out


def read_raw_bin(path: str | Path, columns: Sequence[str] = KITTI_COLUMNS) -> dict[str, np.ndarray]:
    """Read a headerless little-endian float32 scan and check that it fits ``columns``.

    Args:
        path: the file.
        columns: the column names in file order (see :func:`parse_columns`); must contain x, y, z.

    Returns:
        ``{"points": (N, 3) float32, <other named column>: (N,) float32, ...}`` (``_`` columns omitted). Nothing
        is dropped here: see :func:`zero_return_mask`.

    Raises:
        SimGapInputError: unreadable or empty file, a size that is not a whole number of rows, or values that do
            not fit the layout (the message says which check failed and, where one fits, the column count that
            would).
    """
    p = Path(path)
    cols = parse_columns(columns)
    row = 4 * len(cols)
    try:
        size = p.stat().st_size
        if size == 0:
            raise SimGapInputError(f"{p}: empty scan file (0 bytes)")
        if size % row:
            raise SimGapInputError(
                f"{p}: size {size} bytes is not a multiple of {row} "
                f"(expected {len(cols)} float32 columns {','.join(cols)} per point)"
            )
        flat = np.fromfile(p, dtype="<f4")
    except FileNotFoundError as exc:
        raise SimGapInputError(f"{p}: scan file not found") from exc
    except IsADirectoryError as exc:
        raise SimGapInputError(f"{p}: is a directory, expected a scan file") from exc
    except OSError as exc:
        raise SimGapInputError(f"{p}: cannot read scan file ({exc.strerror or exc})") from exc
    if flat.size * 4 != size:  # the file changed under us
        raise SimGapInputError(f"{p}: read {flat.size * 4} of {size} bytes")
    arr = flat.reshape(-1, len(cols))
    idx = {c: i for i, c in enumerate(cols)}
    xyz = np.ascontiguousarray(arr[:, [idx["x"], idx["y"], idx["z"]]], dtype=np.float32)
    layout = f"{len(cols)} columns {','.join(cols)}"
    fin = np.isfinite(xyz)
    if fin.any():
        far = np.abs(np.where(fin, xyz, 0)).max(axis=1) > MAX_ABS_COORD_M
        if far.any():
            raise SimGapInputError(
                f"{p}: {int(far.sum())} of {xyz.shape[0]} points lie beyond {MAX_ABS_COORD_M:g} m when read as "
                f"{layout}: not coordinates of a LiDAR scan in this layout" + _hint(flat, len(cols))
            )
    if _looks_misread(xyz):
        alts = _clean_alternatives(flat, len(cols))
        if alts:
            shares = ", ".join(f"{c} {100 * _integer_share(xyz[:, i]):.0f} %" for i, c in enumerate("xyz"))
            raise SimGapInputError(
                f"{p}: read as {layout}, the coordinates are integer-valued ({shares}), the signature of ring "
                f"indices or intensities read as x/y/z" + _hint(flat, len(cols), alts)
            )
    out: dict[str, np.ndarray] = {"points": xyz}
    for c in cols:
        if c in ("x", "y", "z", "_"):
            continue
        out[c] = np.ascontiguousarray(arr[:, idx[c]], dtype=np.float32)
    ring = out.get("ring")
    if ring is not None:
        ok = np.isfinite(ring) & (ring == np.round(ring)) & (ring >= 0) & (ring <= _MAX_RING)
        if not ok.all():
            bad = ring[~ok][0]
            raise SimGapInputError(
                f"{p}: the 'ring' column of {layout} holds {int((~ok).sum())} values that are not ring indices "
                f"(e.g. {float(bad):g}; expected integers 0-{_MAX_RING})" + _hint(flat, len(cols))
            )
    inten = out.get("intensity")
    if inten is not None and not np.isfinite(inten).all():
        raise SimGapInputError(
            f"{p}: {int((~np.isfinite(inten)).sum())} intensity values of {layout} are NaN/inf" + _hint(flat, len(cols))
        )
    return out


def _hint(flat: np.ndarray, ncols: int, alts: list[int] | None = None) -> str:
    alts = _clean_alternatives(flat, ncols) if alts is None else alts
    if not alts:
        return ""
    k = alts[0]
    known = {4: ",".join(KITTI_COLUMNS) + " (KITTI)", 5: ",".join(NUSCENES_COLUMNS) + " (nuScenes .pcd.bin)"}
    cols = known.get(k, ",".join(["x", "y", "z"] + ["_"] * (k - 3)))
    return f"; it reads cleanly as {k} float32 columns: try --columns {cols}"
