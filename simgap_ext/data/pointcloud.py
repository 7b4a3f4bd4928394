"""The in-memory point cloud every reader returns and every writer takes.

:class:`PointCloud` is deliberately thin: arrays plus a label map. Conversion to and from the frame contract
(:mod:`simgap_ext.frame`) lives here too so that readers never build frame dicts by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from ..frame import make_frame
from .taxonomy import UNLABELED

__all__ = ["PointCloud", "UNLABELED_NAME", "default_class_name"]

UNLABELED_NAME = UNLABELED  # the one unlabeled name (simgap_ext.data.taxonomy)
_MAX_ID = 0xFFFFFFFF


def default_class_name(semantic_id: int) -> str:
    """Name given to a semantic id that no label map names: ``class_<id>`` (``unlabeled`` for 0)."""
    return UNLABELED_NAME if int(semantic_id) == 0 else f"class_{int(semantic_id)}"


@dataclass
class PointCloud:
    """One LiDAR scan.

    Attributes:
        points: (N, 3) float32 x, y, z in metres.
        intensity: (N,) float32 intensity/remission (usually in [0, 1]) or ``None``.
        semantic: (N,) uint32 semantic id per point or ``None`` (unlabelled scan).
        instance: (N,) uint32 instance id per point or ``None``.
        id_to_labels: semantic id -> class name, for the ids this cloud uses (may name more).
    """

    points: np.ndarray
    intensity: np.ndarray | None = None
    semantic: np.ndarray | None = None
    instance: np.ndarray | None = None
    id_to_labels: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.points = np.ascontiguousarray(_as_numbers(self.points, "points"), dtype=np.float32)
        if self.intensity is not None:
            inten = _as_numbers(self.intensity, "intensity")
            self.intensity = np.ascontiguousarray(inten, dtype=np.float32).reshape(-1)
        if self.semantic is not None:
            self.semantic = _as_ids(self.semantic, "semantic")
        if self.instance is not None:
            self.instance = _as_ids(self.instance, "instance")
        self.id_to_labels = {int(k): str(v) for k, v in self.id_to_labels.items()}

    def __len__(self) -> int:
        return int(self.points.shape[0]) if self.points.ndim == 2 else 0

    def validate(self, name: str = "point cloud", *, drop_nonfinite: bool = False) -> PointCloud:
        """Check shapes and finiteness; fill missing label names.

        Args:
            name: how to call the cloud in error messages (usually the file path).
            drop_nonfinite: remove points with a NaN/inf coordinate (organised PCD/PLY clouds mark missing
                returns that way) instead of raising.

        Returns:
            ``self`` (or a filtered copy when ``drop_nonfinite`` removed points), with every semantic id in
            use named in ``id_to_labels``.

        Raises:
            SimGapInputError: wrong shapes, per-point arrays of the wrong length, NaN/inf points, or NaN/inf
                intensities on the points kept.
        """
        n = self.check_shapes(name)
        pts = self.points
        finite = np.isfinite(pts).all(axis=1)
        if not finite.all():
            bad = int(n - finite.sum())
            if not drop_nonfinite:
                raise SimGapInputError(f"{name}: {bad} of {n} points are NaN/inf")
            return PointCloud(
                pts[finite],
                None if self.intensity is None else self.intensity[finite],
                None if self.semantic is None else self.semantic[finite],
                None if self.instance is None else self.instance[finite],
                dict(self.id_to_labels),
            ).validate(name)
        if self.intensity is not None and n and not np.isfinite(self.intensity).all():
            bad = int((~np.isfinite(self.intensity)).sum())
            raise SimGapInputError(f"{name}: {bad} of {n} intensity values are NaN/inf")
        if self.semantic is not None and n:
            for sid in np.unique(self.semantic).tolist():
                self.id_to_labels.setdefault(int(sid), default_class_name(sid))
        return self

    def check_shapes(self, name: str = "point cloud") -> int:
        """Check the array shapes only (NaN/inf allowed): what every writer needs before it lays out a file.

        Args:
            name: how to call the cloud in error messages (usually the file path).

        Returns:
            The point count N.

        Raises:
            SimGapInputError: ``points`` not (N, 3), or a per-point array whose length is not N.
        """
        pts = self.points
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise SimGapInputError(f"{name}: points must have shape (N, 3), got {pts.shape}")
        n = pts.shape[0]
        for attr in ("intensity", "semantic", "instance"):
            arr = getattr(self, attr)
            if arr is not None and arr.shape[0] != n:
                raise SimGapInputError(f"{name}: {attr} has {arr.shape[0]} values for {n} points")
        return n

    def to_frame(self, **metadata: Any) -> dict[str, Any]:
        """Convert to a validated frame dict (:func:`simgap_ext.frame.make_frame`).

        An unlabelled cloud becomes all-``unlabeled`` (semantic 0); missing instances become 0.

        Args:
            **metadata: ``frame_id``, ``seed``, ``sensor``, ``focus_classes``, ``attempt``, ``coordinate_frame``.
        """
        n = len(self)
        semantic = self.semantic if self.semantic is not None else np.zeros(n, dtype=np.uint32)
        instance = self.instance if self.instance is not None else np.zeros(n, dtype=np.uint32)
        labels = dict(self.id_to_labels)
        for sid in np.unique(semantic).tolist():
            labels.setdefault(int(sid), default_class_name(sid))
        return make_frame(self.points, semantic, instance, labels, intensity=self.intensity, **metadata)

    @classmethod
    def from_frame(cls, frame: Mapping[str, Any]) -> PointCloud:
        """Build a cloud from a frame dict (validated or not; it is validated here)."""
        from ..frame import validate_frame

        f = validate_frame(frame)
        info = f["info"]
        return cls(
            points=f["data"],
            intensity=f.get("intensity"),
            semantic=info["pointSemantic"],
            instance=info["pointInstance"],
            id_to_labels={int(k): v["class"] for k, v in info["idToLabels"].items()},
        )


def _as_numbers(arr: Any, what: str) -> np.ndarray:
    a = np.asarray(arr)
    # integer, floating or bool: a string, object or complex array would fail (or lose its imaginary part) later
    if a.dtype.kind not in "iufb":
        raise SimGapInputError(f"{what} must be numeric, got dtype {a.dtype}")
    return a


def _as_ids(arr: Any, what: str) -> np.ndarray:
    a = _as_numbers(arr, f"{what} ids").reshape(-1)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise SimGapInputError(f"{what} ids must be integers")
    if a.size and a.min() < 0:
        raise SimGapInputError(f"{what} ids must be non-negative, got {a.min()}")
    # the uint32 cast would wrap a wider id around into another class / instance
    if a.size and a.max() > _MAX_ID:
        raise SimGapInputError(f"{what} ids must fit uint32, got {a.max()}")
    return np.ascontiguousarray(a, dtype=np.uint32)
