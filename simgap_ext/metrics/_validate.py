"""Input validation shared by every metric: point clouds and histograms become checked NumPy arrays.

Validation comes first so that a NaN, an empty cloud or a wrong shape fails with a message naming the
array instead of surfacing as a wrong score or a Warp crash.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SimGapInputError

__all__ = ["as_points", "as_vector", "bounds", "pair_distances"]


def _is_real(dtype: np.dtype) -> bool:
    # integer, floating or bool; complex would lose its imaginary part in the float64 cast
    return dtype.kind in "iufb"


def _to_numpy(x: Any) -> np.ndarray:
    # torch tensors (CPU or CUDA, with or without grad) without importing torch here
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def as_points(x: Any, name: str, *, allow_empty: bool = False) -> np.ndarray:
    """Check a point cloud and return it as float64.

    Args:
        x: (N, 3) array-like of floats (NumPy array, torch tensor, nested lists).
        name: how to call the cloud in error messages.
        allow_empty: accept N == 0.

    Returns:
        (N, 3) float64 array.

    Raises:
        SimGapInputError: wrong shape, non-numeric dtype, empty (unless allowed) or non-finite values.
    """
    try:
        arr = _to_numpy(x)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is bad input
        raise SimGapInputError(f"{name}: cannot convert {type(x).__name__} to an array: {exc}") from exc
    if not _is_real(arr.dtype):
        raise SimGapInputError(f"{name}: expected a numeric (N, 3) array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise SimGapInputError(f"{name}: expected shape (N, 3), got {tuple(arr.shape)}")
    if arr.shape[0] == 0 and not allow_empty:
        raise SimGapInputError(f"{name}: empty point cloud (0 points)")
    arr = arr.astype(np.float64, copy=False)
    # fast path: a finite sum proves every value finite; otherwise count the bad points (or find none when
    # only the sum overflowed)
    if np.isfinite(arr.sum()):
        return arr
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        raise SimGapInputError(f"{name}: {int((~finite).sum())} of {arr.shape[0]} points are non-finite (NaN/inf)")
    return arr


def bounds(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis minimum and maximum of a point cloud.

    Column by column: NumPy's ``min(axis=0)`` on a C-ordered (N, 3) array is a strided reduction about 40x
    slower than three contiguous-stride column reductions at 131k points.

    Args:
        points: (N, 3) float array, N >= 1.

    Returns:
        ((3,) min, (3,) max) in the array's dtype.
    """
    lo = np.array([points[:, k].min() for k in range(3)], dtype=points.dtype)
    hi = np.array([points[:, k].max() for k in range(3)], dtype=points.dtype)
    return lo, hi


def pair_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean distances ``|a_i - b_i|`` (einsum: ``linalg.norm(axis=1)`` is a slow strided reduction).

    Args:
        a, b: (N, 3) float arrays.

    Returns:
        (N,) float64 distances.
    """
    d = a - b
    return np.sqrt(np.einsum("ij,ij->i", d, d))


def as_vector(x: Any, name: str, *, nonnegative: bool = False, allow_empty: bool = False) -> np.ndarray:
    """Check a 1-D numeric array and return it as float64.

    Args:
        x: (N,) array-like.
        name: how to call the array in error messages.
        nonnegative: reject negative entries (weights, histograms).
        allow_empty: accept N == 0.

    Returns:
        (N,) float64 array.

    Raises:
        SimGapInputError: not 1-D, empty (unless allowed), non-finite or (optionally) negative values.
    """
    arr = _to_numpy(x)
    if not _is_real(arr.dtype):
        raise SimGapInputError(f"{name}: expected a numeric 1-D array, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise SimGapInputError(f"{name}: expected a 1-D array, got shape {tuple(arr.shape)}")
    if arr.shape[0] == 0 and not allow_empty:
        raise SimGapInputError(f"{name}: empty array")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise SimGapInputError(f"{name}: contains non-finite (NaN/inf) values")
    if nonnegative and (arr < 0).any():
        raise SimGapInputError(f"{name}: contains negative values")
    return arr
