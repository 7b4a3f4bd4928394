"""Label plausibility: do a class's points *look like* that class in the real reference?

Distributions of a class's own statistics cannot see a relabelling when the receiving class is large and varied
(every car point labelled vegetation adds a few smooth points to a rough, scene-dependent class). What does see
it is the points' local geometry: each point gets a class-agnostic descriptor from its neighbourhood
(:func:`local_descriptors`: height, the three eigenvalue shape features of its 16 nearest neighbours, the
verticality of its normal, and the local height spread), and a k-nearest-neighbour vote among the real
reference's descriptors (:func:`class_votes`) says which real classes such points belong to. A class's
*plausibility* in a frame is the mean share of votes its own points get for their label. Relabelled points vote
for their true class, so the receiving class's plausibility drops; the bank calibrates how much it varies
between real frames (leave one frame out), as for every other component.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DESCRIPTOR_NAMES",
    "local_descriptors",
    "shape_neighbours",
    "class_votes",
    "vote_profile",
    "foreign_excess",
    "VoteIndex",
    "MAX_DESCRIPTORS",
    "VOTE_K",
    "PROFILE_SMOOTHING",
]

#: What each descriptor column is.
DESCRIPTOR_NAMES = ("z", "linearity", "planarity", "scattering", "verticality", "z_spread")
#: Points per frame that get a descriptor (a seeded-free stride sample: deterministic for a given frame).
MAX_DESCRIPTORS = 4096
#: Neighbours of a point in its own frame for the local shape.
_SHAPE_K = 16
# Leaf size of the sliding-midpoint tree in shape_neighbours (32: 10 % faster than 16 on os1-128 frames, 64 no better).
_SLIDING_LEAFSIZE = 32
#: Real descriptors that vote for each query point.
VOTE_K = 15
#: Added to both vote shares in :func:`foreign_excess`: one voter's share of a point. Shares below it are the noise
#: of a 15-voter kNN; a class that real frames never vote for must gain more than that before its log ratio grows.
PROFILE_SMOOTHING = 1.0 / VOTE_K


def local_descriptors(points: np.ndarray, cap: int = MAX_DESCRIPTORS) -> tuple[np.ndarray, np.ndarray]:
    """Class-agnostic local-geometry descriptors of up to ``cap`` points of a frame.

    Args:
        points: (N, 3) float32 sensor-frame points.
        cap: the most points described (a deterministic stride over the frame).

    Returns:
        ((S,) int64 indices of the described points, (S, 6) float32 descriptors in :data:`DESCRIPTOR_NAMES`
        order), S = 0 when the frame has fewer than ``_SHAPE_K + 1`` points.
    """
    pts = np.asarray(points, dtype=np.float64)
    n = pts.shape[0]
    if n <= _SHAPE_K:
        return np.zeros(0, np.int64), np.zeros((0, len(DESCRIPTOR_NAMES)), np.float32)
    idx = np.arange(0, n, max(1, int(np.ceil(n / cap))), dtype=np.int64)
    nb = pts[shape_neighbours(pts, idx)]  # (S, K, 3)
    centred = nb - nb.mean(axis=1, keepdims=True)
    cov = np.einsum("ski,skj->sij", centred, centred) / _SHAPE_K
    evals, evecs = np.linalg.eigh(cov)  # ascending
    l3, l2, l1 = (np.maximum(evals[:, i], 0.0) for i in range(3))
    denom = np.maximum(l1, 1e-12)
    normal_z = np.abs(evecs[:, 2, 0])  # eigenvector of the smallest eigenvalue
    desc = np.stack(
        [
            pts[idx, 2],
            (l1 - l2) / denom,
            (l2 - l3) / denom,
            l3 / denom,
            normal_z,
            nb[:, :, 2].max(axis=1) - nb[:, :, 2].min(axis=1),
        ],
        axis=1,
    )
    return idx, desc.astype(np.float32)


def shape_neighbours(pts: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The ``_SHAPE_K`` nearest neighbours of some points of a frame, nearest first, exactly as a balanced
    ``cKDTree`` query returns them.

    The balanced tree (SciPy's default) takes ~40 % longer to build on a 230k-point os1-128 frame than a
    sliding-midpoint tree (``balanced_tree=False, compact_nodes=False``). Both compute every distance with the same
    arithmetic, so they return the same neighbours in the same order unless two of the first ``_SHAPE_K + 1``
    distances of a point are equal (duplicate points, symmetric grids): then which one comes first, or which one
    is the last neighbour, depends on the tree. Those points are queried again on the balanced tree, so the result
    (and the descriptors computed from it, whose sums depend on the order) is the balanced tree's, always.

    Args:
        pts: (N, 3) float64 points, N > ``_SHAPE_K``.
        idx: (S,) int64 indices of the query points.

    Returns:
        (S, ``_SHAPE_K``) int64 neighbour indices (each point is its own first neighbour unless duplicated).
    """
    from scipy.spatial import cKDTree

    k = min(_SHAPE_K + 1, pts.shape[0])
    tree = cKDTree(pts, leafsize=_SLIDING_LEAFSIZE, balanced_tree=False, compact_nodes=False)
    dist, nn = tree.query(pts[idx], k=k)
    tied = np.flatnonzero((dist[:, 1:] == dist[:, :-1]).any(axis=1))
    nn = np.ascontiguousarray(nn[:, :_SHAPE_K], dtype=np.int64)
    if tied.size:
        nn[tied] = cKDTree(pts).query(pts[idx[tied]], k=_SHAPE_K)[1]
    return nn


def class_votes(
    query: np.ndarray, reference: np.ndarray, reference_class: np.ndarray, scale: np.ndarray, k: int = VOTE_K
) -> np.ndarray:
    """The real classes the ``k`` nearest real descriptors of each query descriptor carry.

    Args:
        query: (Q, D) float32 descriptors.
        reference: (R, D) float32 real descriptors, R >= 1.
        reference_class: (R,) int32 their class indices.
        scale: (D,) float per-column scale (the reference's standard deviations) so that no column dominates.
        k: voters per query point (at most R).

    Returns:
        (Q, k) int32 class indices of the voters.
    """
    return VoteIndex(reference, reference_class, scale).votes(query, k)


def vote_profile(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """Share of the votes that go to each class.

    Args:
        votes: (Q, k) int32 voter class indices (what :meth:`VoteIndex.votes` returns), Q * k >= 1.
        n_classes: length of the profile (the bank's number of classes).

    Returns:
        (n_classes,) float64 shares summing to 1.
    """
    v = np.asarray(votes).ravel()
    return np.bincount(v, minlength=n_classes)[:n_classes].astype(np.float64) / max(v.size, 1)


def foreign_excess(profile: np.ndarray, reference: np.ndarray, own: int) -> float:
    """How much more a class's points vote for some *other* class than real frames' points of that class do.

    A concentrated relabel (every car point labelled vegetation) makes the receiving class's points vote for the
    source class far more often than real vegetation does, while its own-label share (the plausibility) only
    drops by the relabelled points' share. The log ratio of smoothed shares sees the rise of a class real frames
    rarely vote for.

    Args:
        profile: (C,) float vote shares of the class's points in the frame (:func:`vote_profile`).
        reference: (C,) float the real frames' mean vote shares of that class.
        own: index of the class itself (left out).

    Returns:
        ``max(0, max_{k != own} log((profile_k + e) / (reference_k + e)))``, ``e`` = :data:`PROFILE_SMOOTHING`.
    """
    e = PROFILE_SMOOTHING
    ratio = np.log((np.asarray(profile, np.float64) + e) / (np.asarray(reference, np.float64) + e))
    ratio = np.delete(ratio, own) if 0 <= own < ratio.size else ratio
    return float(max(0.0, ratio.max())) if ratio.size else 0.0


class VoteIndex:
    """A KD-tree over scaled real descriptors, built once and queried per frame (see :func:`class_votes`)."""

    def __init__(self, reference: np.ndarray, reference_class: np.ndarray, scale: np.ndarray) -> None:
        from scipy.spatial import cKDTree

        self.scale = np.where(np.asarray(scale, np.float64) > 0, scale, 1.0)
        self.classes = np.asarray(reference_class, np.int32)
        self.n = int(reference.shape[0])
        self.tree = cKDTree(np.asarray(reference, np.float64) / self.scale) if self.n else None

    def votes(self, query: np.ndarray, k: int = VOTE_K) -> np.ndarray:
        """(Q, k) int32 class indices of the ``k`` nearest real descriptors of each query (Q x 0 when empty)."""
        if self.tree is None or not query.shape[0]:
            return np.zeros((query.shape[0], 0), np.int32)
        k = max(1, min(int(k), self.n))
        _, nn = self.tree.query(np.asarray(query, np.float64) / self.scale, k=k)
        return self.classes[np.asarray(nn).reshape(query.shape[0], k)]
