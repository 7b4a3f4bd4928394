"""Hidden classes: a class the real frames always hold is missing, and another class's points vote for it.

A class relabelled as another (every car point labelled vegetation) leaves a small class inside a large one. The
receiving class's own statistics barely move (its share, heights and roughness vary more between real scans than a
few hundred car points change them), and local-geometry votes tell a parked car from a hedge only weakly
(:mod:`~simgap_ext.gate.plausibility`). What the relabelling does change beyond real variation is the frame's
*composition*: the source class is gone, while its points are still there and still look (a little) like it.
Absence alone is weak evidence (a street can be empty of cars), so :func:`hidden_classes` combines two:

1. a class ``c`` that the reference holds in (nearly) every real frame is absent from this one. With ``k`` of the
   bank's ``n`` frames holding it, the probability that another real frame lacks it is the posterior predictive
   of a Bernoulli rate under Jeffreys' prior, ``(n - k + 1/2) / (n + 1)`` (:func:`absence_probability`), the
   prior the segment test's count model uses too (:mod:`~simgap_ext.gate.segments`);
2. some class ``h`` of the frame votes for ``c`` (its points' nearest real descriptors carry label ``c``) more
   often than real ``h`` points do: the bank keeps every real frame's vote profile of ``h`` (left out of its own
   vote), and the rank estimate ``(#{real >= value} + 1) / (m + 1)`` is the probability of a real frame voting at
   least as often. The smallest over the ``K`` classes of the frame, times ``K`` (Bonferroni), is the
   probability that *some* class does.

The frame is flagged when the product of the two probabilities is at most ``1 - calibration_quantile``, the level
every other gate component is calibrated at. Only classes that real frames hold in numbers are judged: at the
smallest share a real frame holding it gives it, the class would have at least ``min_points`` points in this
frame (the gate passes the fewest points it judges a class on), so that a class of a handful of points lost to
ray drop is not taken for a hidden one. Conversely, a frame that holds such a class in fewer than ``min_points``
points is judged like a frame without it: the gate judges no statistic of so few points, and a relabel that leaves
a few stray points of the class (a car relabelled, a truck's 13 points staying) must not pass for one that kept it.
Its first probability is then not the absence's but the rank estimate of a real frame holding the class at a share
this small, ``(n - k + #{real shares <= this one} + 1) / (n + 1)`` (:func:`few_points_probability`): a class a real
frame may hold in a few dozen points is not taken for a missing one because this frame holds a few less. A class
removed outright leaves the other classes' votes as they were, so only its absence speaks: with the default quantile
0.95 that takes a class held by all of at least 9 real frames. A bank of 2 frames can never make absence evidence,
and says nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["HiddenClass", "absence_probability", "few_points_probability", "hidden_classes"]


@dataclass(frozen=True)
class HiddenClass:
    """Evidence that class ``missing`` is hidden in class ``host`` of a frame.

    Attributes:
        missing: the bank class absent from the frame.
        host: the frame class (its bank reference name) whose votes for ``missing`` are least like real ones.
        frames_with: real frames of the bank that hold ``missing``.
        frames: real frames of the bank.
        p_absent: Jeffreys estimate of the probability that a real frame lacks ``missing`` (with ``points``: the
            rank estimate of a real frame holding it at a share this small, :func:`few_points_probability`).
        vote_share: share of ``host``'s votes that go to ``missing``.
        real_max: the largest share of real ``host`` points' votes for ``missing`` in the bank.
        p_votes: Bonferroni-corrected rank estimate of the probability that some class of a real frame votes for
            ``missing`` as often.
        points: the frame's points of ``missing`` (0: absent; else fewer than the gate judges a class on).
    """

    missing: str
    host: str
    frames_with: int
    frames: int
    p_absent: float
    vote_share: float
    real_max: float
    p_votes: float
    points: int = 0

    @property
    def p_joint(self) -> float:
        """``p_absent * p_votes``: the estimated probability of both in a real frame."""
        return self.p_absent * self.p_votes

    def reason(self) -> str:
        """One line a person can read, with the numbers."""
        here = "absent here" if not self.points else f"only {self.points} point(s) here"
        return (
            f"class {self.missing}: in {self.frames_with} of {self.frames} real frames but {here}, while "
            f"{self.vote_share:.1%} of class {self.host}'s votes go to it (real {self.host}: at most "
            f"{self.real_max:.1%}): relabelled as {self.host}?; P(real) {self.p_absent:.3f} x {self.p_votes:.3f} "
            f"= {self.p_joint:.4f}"
        )


def absence_probability(frames_with: int, frames: int) -> float:
    """Probability that one more real frame lacks a class ``frames_with`` of ``frames`` real frames hold.

    The posterior predictive of a Bernoulli rate under Jeffreys' prior Beta(1/2, 1/2), the prior of the segment
    test's count model too. (Laplace's rule of succession, a uniform prior, gives ``(frames - frames_with + 1) /
    (frames + 2)``, under which a bank needed 18 frames, not 9, before a class's absence alone was evidence at the
    0.05 level.)

    Args:
        frames_with: real frames holding the class, ``0 <= frames_with <= frames``.
        frames: real frames in all, >= 0.

    Returns:
        ``(frames - frames_with + 1/2) / (frames + 1)`` in (0, 1].
    """
    if frames < 0 or not 0 <= frames_with <= frames:
        raise ValueError(f"need 0 <= frames_with <= frames, got {frames_with} of {frames}")
    return (frames - frames_with + 0.5) / (frames + 1)


def few_points_probability(share: float, real_shares: np.ndarray, frames: int) -> float:
    """Rank estimate of the probability that a real frame holds a class at a share of its points at most ``share``.

    Args:
        share: the class's share of this frame's points.
        real_shares: (k,) its share in each real frame that holds it (``k <= frames``; the ``frames - k`` real frames
            without it hold less).
        frames: real frames in all.

    Returns:
        ``(frames - k + #{real_shares <= share} + 1) / (frames + 1)``, at most 1.

    Raises:
        ValueError: more real shares than frames.
    """
    real = np.asarray(real_shares, np.float64).reshape(-1)
    if real.size > frames:
        raise ValueError(f"{real.size} real shares for {frames} frames")
    below = frames - real.size + int(np.count_nonzero(real <= share))
    return min(1.0, (below + 1) / (frames + 1))


def hidden_classes(
    present: Iterable[str],
    profiles: Mapping[str, np.ndarray],
    class_names: list[str],
    frames_with: Mapping[str, int],
    frames: int,
    real_profiles: Mapping[str, np.ndarray | None],
    *,
    level: float,
    ignore: Iterable[str] = (),
    expected_points: Mapping[str, float] | None = None,
    min_points: int = 0,
    points: Mapping[str, int] | None = None,
    frame_points: int = 0,
    real_shares: Mapping[str, np.ndarray] | None = None,
) -> list[HiddenClass]:
    """Bank classes missing from a frame that one of its classes seems to hold.

    Args:
        present: bank class names the frame holds (its classes mapped onto their reference classes).
        profiles: frame class (its bank reference name) -> (C,) vote shares of its described points
            (:func:`~simgap_ext.gate.plausibility.vote_profile`).
        class_names: the bank's class names, C of them (profile indices point into it).
        frames_with: bank class name -> real frames that hold it.
        frames: real frames in the bank.
        real_profiles: bank class name -> (m, C) its vote profile in each calibrated real frame, None or m = 0
            when the bank has none (such classes are not judged as hosts).
        level: the largest joint probability still flagged, e.g. ``1 - calibration_quantile``.
        ignore: classes never judged missing (e.g. ``unlabeled``).
        expected_points: bank class name -> the fewest points it would have in this frame at the smallest share a
            real frame holding it gives it; a class expected below ``min_points`` is not judged (a class of a
            handful of points is lost to ray drop, not hidden). None: every class is judged.
        min_points: see ``expected_points``.
        points: bank class name -> the frame's points of it; a class of ``present`` with fewer than ``min_points``
            is judged as missing, with :func:`few_points_probability` in place of the absence probability (None:
            every class of ``present`` counts as held).
        frame_points: the frame's points (for the share of such a class).
        real_shares: bank class name -> (k,) its share in each real frame that holds it; needed with ``points``.

    Returns:
        One :class:`HiddenClass` per flagged class, in bank class order.

    Raises:
        ValueError: ``level`` outside (0, 1).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    counts = dict(points or {})
    have = {c for c in present if counts.get(c, min_points) >= min_points}
    skip = set(ignore)
    hosts = {
        h: (np.asarray(p, np.float64), np.asarray(real_profiles[h], np.float64).reshape(-1, len(class_names)))
        for h, p in profiles.items()
        if real_profiles.get(h) is not None and np.size(real_profiles[h])
    }
    out: list[HiddenClass] = []
    if not hosts:
        return out
    for ci, c in enumerate(class_names):
        if c in have or c in skip:
            continue
        if expected_points is not None and expected_points.get(c, 0.0) < min_points:
            continue
        k = int(frames_with.get(c, 0))
        few = int(counts.get(c, 0))
        if few:
            shares = (real_shares or {}).get(c, np.zeros(0))
            p_absent = few_points_probability(few / max(frame_points, 1), shares, frames)
        else:
            p_absent = absence_probability(k, frames)
        # rank estimate per host; the smallest, Bonferroni-corrected over the hosts judged (a class held in too few
        # points to count is never its own host)
        ranks = {
            h: ((np.count_nonzero(real[:, ci] >= prof[ci]) + 1) / (real.shape[0] + 1), prof[ci], real[:, ci].max())
            for h, (prof, real) in hosts.items()
            if h != c
        }
        if not ranks:
            continue
        host = min(ranks, key=lambda h: ranks[h][0])
        p_votes = min(1.0, len(ranks) * ranks[host][0])
        # (a tolerance: 0.5 * 0.1 must not fail against 1 - 0.95 = 0.05000000000000004)
        if p_absent * p_votes <= level + 1e-12:
            share, real_max = ranks[host][1], ranks[host][2]
            out.append(HiddenClass(c, host, k, frames, p_absent, float(share), float(real_max), float(p_votes), few))
    return out
