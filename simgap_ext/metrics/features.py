"""Class-conditional instance embeddings for the semantic component (docs/metrics.md, "Semantic component").

:class:`FrozenBackbone` is the default shipped with the package: no download, no training, deterministic.
It is a random-feature PointNet in NumPy -- the crop is centred on its centroid (metres, not rescaled, so size
differences between real and synthetic objects show), passed through a shared two-layer ReLU MLP whose weights
are drawn once from a fixed seed, and max- and mean-pooled -- concatenated with hand-made shape descriptors:
square roots of the covariance eigenvalues (3, descending), sorted bounding-box extents (3), log(1 + point
count) and the mean distance to the centroid. Random-feature networks preserve distances between point sets
well enough for distribution comparison, which is all the JS test needs.

A trained model can be plugged in with :meth:`FrozenBackbone.from_torchscript`: a TorchScript module mapping a
(1, K, 3) float32 tensor to a (1, D) embedding.

:func:`instance_features` cuts a frame into instance crops (``info.pointInstance``; id 0 means "no instance",
as in SemanticKITTI, and is skipped) and embeds each crop with at least ``min_points`` points.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from ..frame import id_to_class, validate_frame
from ._validate import as_points

__all__ = ["FrozenBackbone", "TorchScriptBackbone", "instance_features", "DEFAULT_BACKBONE_SEED"]

DEFAULT_BACKBONE_SEED = 20250523


class FrozenBackbone:
    """Deterministic random-feature PointNet embedding of an instance crop.

    Args:
        seed: seed of the fixed MLP weights (the default reproduces the shipped embedding).
        widths: hidden widths of the two shared layers.
        max_points: crops with more points are subsampled deterministically to this many.
    """

    def __init__(
        self, *, seed: int = DEFAULT_BACKBONE_SEED, widths: tuple[int, int] = (64, 128), max_points: int = 2048
    ):
        rng = np.random.default_rng(seed)
        w1, w2 = int(widths[0]), int(widths[1])
        # per-metre first-layer frequencies: objects are 0.3-10 m, so unit-variance weights resolve them
        self._w1 = rng.normal(0.0, 1.0, size=(3, w1))
        self._b1 = rng.normal(0.0, 0.5, size=w1)
        self._w2 = rng.normal(0.0, np.sqrt(2.0 / w1), size=(w1, w2))
        self._b2 = rng.normal(0.0, 0.1, size=w2)
        self.max_points = int(max_points)
        self.seed = int(seed)

    @property
    def dim(self) -> int:
        """Embedding length D."""
        return 2 * self._w2.shape[1] + 8

    def embed(self, points: Any) -> np.ndarray:
        """Embed one crop.

        Args:
            points: (K, 3) float points of one instance, K >= 1, metres.

        Returns:
            (D,) float32 embedding.
        """
        p = as_points(points, "instance crop")
        n_pts = p.shape[0]
        if p.shape[0] > self.max_points:
            # deterministic subsample: the same crop always gives the same embedding
            keep = np.random.default_rng(p.shape[0]).choice(p.shape[0], self.max_points, replace=False)
            p = p[np.sort(keep)]
        centred = p - p.mean(axis=0)
        h = np.maximum(centred @ self._w1 + self._b1, 0.0)
        h = np.maximum(h @ self._w2 + self._b2, 0.0)
        pooled = np.concatenate([h.max(axis=0), h.mean(axis=0)])
        cov = np.cov(centred.T) if p.shape[0] > 1 else np.zeros((3, 3))
        eig = np.sqrt(np.clip(np.sort(np.linalg.eigvalsh(cov))[::-1], 0.0, None))
        extent = np.sort(centred.max(axis=0) - centred.min(axis=0))[::-1]
        shape = np.concatenate([eig, extent, [np.log1p(n_pts), np.linalg.norm(centred, axis=1).mean()]])
        return np.concatenate([pooled, shape]).astype(np.float32)

    @classmethod
    def from_torchscript(cls, path: str | os.PathLike[str], *, device: str = "cpu") -> TorchScriptBackbone:
        """Load a user TorchScript backbone mapping (1, K, 3) float32 to (1, D).

        Raises:
            SimGapInputError: the file does not exist or is not a TorchScript module.
        """
        return TorchScriptBackbone(path, device=device)


class TorchScriptBackbone(FrozenBackbone):
    """A TorchScript model used as backbone (see :meth:`FrozenBackbone.from_torchscript`)."""

    def __init__(self, path: str | os.PathLike[str], *, device: str = "cpu") -> None:
        if not os.path.isfile(path):
            raise SimGapInputError(f"TorchScript backbone {os.fspath(path)!r} does not exist")
        import torch

        try:
            self._model = torch.jit.load(os.fspath(path), map_location=device)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
            raise SimGapInputError(f"{os.fspath(path)!r} is not a TorchScript module: {exc}") from exc
        self._model.eval()
        self._device = device
        self._dim: int | None = None
        self.path = os.fspath(path)
        self.max_points = 1 << 30
        self.seed = -1

    @property
    def dim(self) -> int:
        """Embedding length D (known after the first call of :meth:`embed`)."""
        return -1 if self._dim is None else self._dim

    def embed(self, points: Any) -> np.ndarray:
        """Embed one crop with the TorchScript model: (K, 3) -> (D,) float32."""
        import torch

        p = as_points(points, "instance crop").astype(np.float32)
        with torch.no_grad():
            out = self._model(torch.from_numpy(p[None]).to(self._device))
        arr = out.detach().cpu().numpy().astype(np.float32)
        if arr.ndim != 2 or arr.shape[0] != 1:
            raise SimGapInputError(f"TorchScript backbone {self.path!r} returned shape {arr.shape}, expected (1, D)")
        self._dim = arr.shape[1]
        return arr[0]


def instance_features(
    frame: Mapping[str, Any], backbone: FrozenBackbone | None = None, *, min_points: int = 8
) -> dict[str, np.ndarray]:
    """One embedding per instance crop of a frame, grouped by class name.

    Args:
        frame: a frame dict (``simgap_ext.frame`` layout).
        backbone: embedding model (default: a shared :class:`FrozenBackbone`).
        min_points: crops with fewer points are skipped (too few to describe a shape).

    Returns:
        class name -> (K_c, D) float32, one row per instance (in increasing instance id); classes without a
        usable instance are absent.
    """
    f = validate_frame(frame)
    bb = backbone if backbone is not None else _default_backbone()
    sem = f["info"]["pointSemantic"]
    inst = f["info"]["pointInstance"]
    names = id_to_class(f)
    keep = inst != 0
    if not keep.any():
        return {}
    pts = f["data"][keep]
    # one crop per (semantic id, instance id): instance ids are only unique within a class in some datasets;
    # unsigned keys, since a semantic id >= 2**31 shifted by 32 bits would overflow int64
    key = (sem[keep].astype(np.uint64) << np.uint64(32)) | inst[keep].astype(np.uint64)
    order = np.argsort(key, kind="stable")
    uniq, starts, counts = np.unique(key[order], return_index=True, return_counts=True)
    out: dict[str, list[np.ndarray]] = defaultdict(list)
    for k, s, c in zip(uniq.tolist(), starts.tolist(), counts.tolist(), strict=True):
        if c < min_points:
            continue
        out[names[k >> 32]].append(bb.embed(pts[order[s : s + c]]))
    return {cls: np.stack(rows).astype(np.float32) for cls, rows in sorted(out.items())}


_DEFAULT: FrozenBackbone | None = None


def _default_backbone() -> FrozenBackbone:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = FrozenBackbone()
    return _DEFAULT
