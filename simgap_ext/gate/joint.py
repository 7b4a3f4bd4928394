"""A per-class joint deviation test: several components moved moderately at once.

Each per-class component (:data:`~simgap_ext.gate.bank.DEVIATION_COMPONENTS`: roughness, ring continuity, share,
height, plausibility, foreign votes) fails a class alone only far beyond real variation (its distance above 3x its
prediction bound, :data:`~simgap_ext.gate.gate.STRICT_FLOOR`). A class relabelled into another moves the receiving
class by 2–8 real spreads on several components together (``benchmarks/relabel_margins.py``: MCD vegetation
density 3.3, height 3.0, foreign 2.4, plausibility 2.3, share 1.8 RMS units) while real frames stay within ~0.5–2.4
per component: visible only when the components are read together.

The statistic. Per class, the bank keeps every real frame's leave-one-out deviation vector
(:meth:`~simgap_ext.gate.bank.ReferenceBank.class_deviation_vectors`). A frame's deviation ``d_k`` of component
``k`` is standardized by the RMS ``s_k`` of the real frames' deviations of that component (the scale of the
component's own prediction bound, :mod:`~simgap_ext.gate.tailbound`), ``z_k = d_k / (s_k sqrt(1 - 1/n_k^2))`` (a
frame scored against all ``n_k`` frames deviates a little less than a frame left out of them), and

    T = mean_k min(z_k, c_k)^2          over the components measured in the frame (at least 2)

is the mean square standardized deviation, each capped at ``c_k = t^-1_{n_k - 1}((1 + level) / 2)``, the
component's own prediction bound in these units: a component beyond it is the per-component test's business and
counts as if at its bound, so that the joint test fails a class on several components together, never on one alone
(without the cap, one real KITTI-360 and one real nuScenes scan of the validation folds failed it). Under the model
of the per-component bounds (each statistic normal across real frames) every ``z_k^2`` has mean ~1, and correlated
components make ``T`` a weighted sum of chi-squares whose spread grows with the correlation: ``T ~ c chi^2_h / h``
(Satterthwaite), ``h`` between 1 (all components moving together) and the number of components (independent). The
components are absolute deviations, so their signed correlation (what a Mahalanobis distance would need) is not
observable; their effect on ``T`` is, in the real frames' own values of ``T``.

The bound. Each real frame ``j`` of the class gets its own ``T_j``, standardized by the scales of the *other* frames
(nested leave one out: a real frame is not judged by a spread that contains itself). ``c`` is their mean and ``h``
the moment estimate ``2 mean(T)^2 / var(T)``, clipped to ``[1, p]``; the prediction bound of a new frame's ``T``
at ``level`` is then ``mean(T_j) * F^-1_{h, n h}(level)`` (a scaled chi-square over the mean of ``n`` of them is
Fisher's F), which widens as the frames get fewer or their ``T`` more dispersed — heavy tails and correlation both
show as dispersion. Fisher's combination of per-component p-values, tried before and not shipped, assumed
independent components and rejected 10–30 % of real scans; this bound is fitted to the real frames' joint values.

A class held by fewer than :data:`MIN_JOINT_FRAMES` real frames measuring the same components gets no joint test
(its bound would rest on 2–4 values, hence be useless); so does a frame's class with fewer than 2 components
measured (one component is judged by its own bound). The gate (:class:`JointTests`) holds ``T`` to
``calibration_margin`` times the bound, the margin every ``d_max`` carries (docs/gate.md: on the validation folds a
margin of 1 rejected a real nuScenes keyframe whose vehicle sat at 0.8–2.8 spreads on all six components).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .tailbound import _t_quantile

__all__ = [
    "MIN_JOINT_COMPONENTS",
    "MIN_JOINT_FRAMES",
    "JointBound",
    "JointResult",
    "JointTests",
    "component_scales",
    "fit_joint_bound",
    "joint_bound",
    "joint_statistic",
    "nested_loo_statistics",
]

#: Real frames (measuring the same components as the frame judged) a class needs for a joint test: the nested
#: leave-one-out standardizes each by the other frames' spread, and 4 values leave a scale from 3 — an F bound on
#: 4 values at the 99.x % Bonferroni level is several times their mean, which tests nothing a component does not.
MIN_JOINT_FRAMES = 5
#: Components a frame's class must have measured for a joint test (one alone is judged by its own bound).
MIN_JOINT_COMPONENTS = 2


def _rms(values: np.ndarray) -> float:
    return math.sqrt(float(np.mean(values * values))) if values.size else 0.0


def component_scales(deviations: np.ndarray, present: np.ndarray, floors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per component, the RMS of the real frames' leave-one-out deviations and how many frames measured it.

    Args:
        deviations: (F, p) float64 leave-one-out deviations, one row per real frame.
        present: (F, p) bool, which entries were measured.
        floors: (p,) float64 smallest scale per component (a bank of near-identical frames has deviations ~0; the
            floor keeps a tiny difference from counting as many spreads).

    Returns:
        ``(s, n)``: (p,) float64 scales ``max(RMS, floor)`` (``floor`` where no frame measured the component) and
        (p,) int64 frame counts.
    """
    d = np.asarray(deviations, np.float64)
    h = np.asarray(present, bool)
    s = np.array([_rms(d[h[:, k], k]) for k in range(d.shape[1])])
    return np.maximum(s, np.asarray(floors, np.float64)), h.sum(axis=0).astype(np.int64)


def joint_statistic(
    deviations: np.ndarray,
    scales: np.ndarray,
    n_frames: np.ndarray | None = None,
    cap: np.ndarray | float | None = None,
) -> float:
    """Mean square standardized deviation ``T = mean_k min(z_k, cap_k)^2``, ``z_k = d_k / (s_k sqrt(1 - 1/n_k^2))``.

    Args:
        deviations: (p,) float64 a frame's deviations of ``p >= 1`` components (all measured).
        scales: (p,) float64 positive per-component scales ``s_k``.
        n_frames: (p,) frames each scale came from, for a frame scored against all of them (``None``: the frame
            was one of them, left out: no correction).
        cap: (p,) or scalar largest ``z_k`` counted (``None``: no cap).

    Returns:
        ``T``.

    Raises:
        ValueError: empty or mismatched inputs, non-positive scales, negative or non-finite deviations.
    """
    d = np.asarray(deviations, np.float64).reshape(-1)
    s = np.asarray(scales, np.float64).reshape(-1)
    if d.size == 0 or d.shape != s.shape:
        raise ValueError(f"need matching non-empty deviations and scales, got {d.shape} and {s.shape}")
    if not (np.isfinite(d).all() and (d >= 0).all()):
        raise ValueError("deviations must be finite and >= 0")
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError("scales must be finite and > 0")
    if n_frames is not None:
        n = np.asarray(n_frames, np.float64).reshape(-1)
        if n.shape != d.shape or (n < 2).any():
            raise ValueError("n_frames must give >= 2 frames per component")
        s = s * np.sqrt(1.0 - 1.0 / n**2)
    z = d / s
    if cap is not None:
        z = np.minimum(z, cap)
    return float(np.mean(z * z))


def nested_loo_statistics(
    deviations: np.ndarray, floors: np.ndarray, cap: np.ndarray | float | None = None
) -> np.ndarray:
    """Each real frame's ``T``, standardized by the other frames' scales (nested leave one out).

    Args:
        deviations: (F, p) float64 leave-one-out deviations of ``F >= 2`` real frames, every entry measured.
        floors: (p,) float64 smallest scale per component.
        cap: largest standardized deviation counted, as in :func:`joint_statistic`.

    Returns:
        (F,) float64 ``T_j`` of :func:`joint_statistic` with ``s_k`` the RMS (floored) of the other ``F - 1`` rows.
    """
    d = np.asarray(deviations, np.float64)
    if d.ndim != 2 or d.shape[0] < 2:
        raise ValueError(f"need (F >= 2, p) deviations, got shape {d.shape}")
    f = d.shape[0]
    sq = (d * d).sum(axis=0)
    out = np.empty(f)
    for j in range(f):
        s = np.maximum(np.sqrt((sq - d[j] ** 2) / (f - 1)), floors)
        out[j] = joint_statistic(d[j], s, cap=cap)
    return out


def joint_bound(values: Sequence[float] | np.ndarray, level: float, max_df: float) -> tuple[float, float]:
    """Upper prediction bound of a new frame's ``T`` from the real frames' ``T_j`` (scaled chi-square model).

    Args:
        values: (n,) ``T_j`` of ``n >= 2`` real frames, finite and >= 0.
        level: coverage in (0, 1) (the class's Bonferroni quantile).
        max_df: the number of components ``p`` (the effective degrees of freedom ``h`` lie in ``[1, p]``).

    Returns:
        ``(bound, h)``: ``mean(T) * F^-1_{h, n h}(level)`` and the moment estimate ``h = 2 mean^2 / var`` clipped
        to ``[1, max_df]`` (``max_df`` when every ``T_j`` is equal).
    """
    from scipy.special import fdtri

    t = np.asarray(values, np.float64).reshape(-1)
    if t.size < 2:
        raise ValueError(f"a joint bound needs at least 2 values, got {t.size}")
    if not (np.isfinite(t).all() and (t >= 0).all()):
        raise ValueError("values must be finite and >= 0")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if max_df < 1:
        raise ValueError(f"max_df must be >= 1, got {max_df}")
    mean, var = float(t.mean()), float(t.var(ddof=1))
    h = float(np.clip(2.0 * mean * mean / var, 1.0, max_df)) if var > 0 else float(max_df)
    return mean * float(fdtri(h, h * t.size, level)), h


def _bound_in_spreads(level: float, n: np.ndarray) -> np.ndarray:
    """(p,) each component's own prediction bound in RMS units: ``t^-1_{n_k - 1}((1 + level) / 2)``, the factor
    :func:`~simgap_ext.gate.tailbound.loo_deviation_bound` puts on the RMS."""
    return np.array([_t_quantile(0.5 * (1.0 + level), int(m) - 1) for m in n])


@dataclass(frozen=True)
class JointBound:
    """A class's joint test for one set of measured components.

    Attributes:
        components: the components (names) it covers, in :data:`~simgap_ext.gate.bank.DEVIATION_COMPONENTS` order.
        scales: (p,) per-component scales (RMS of all the class's real deviations of that component, floored).
        n_frames: (p,) frames each scale came from.
        cap: (p,) largest standardized deviation counted per component: its own prediction bound in RMS units,
            ``t^-1_{n_k - 1}((1 + level) / 2)``.
        bound: prediction bound of ``T`` at the class level.
        df: effective degrees of freedom ``h`` of the fit.
        n_real: real frames the bound was fitted to.
    """

    components: tuple[str, ...]
    scales: np.ndarray
    n_frames: np.ndarray
    cap: np.ndarray
    bound: float
    df: float
    n_real: int

    def standardized(self, distances: Mapping[str, float]) -> np.ndarray:
        """(p,) ``z_k`` of a frame's distances (one per component of :attr:`components`), before the cap."""
        d = np.array([float(distances[c]) for c in self.components])
        return d / (self.scales * np.sqrt(1.0 - 1.0 / self.n_frames.astype(np.float64) ** 2))

    def statistic(self, distances: Mapping[str, float]) -> float:
        """``T`` of a frame's distances (one per component of :attr:`components`)."""
        d = np.array([float(distances[c]) for c in self.components])
        return joint_statistic(d, self.scales, self.n_frames, self.cap)


def fit_joint_bound(
    deviations: np.ndarray,
    present: np.ndarray,
    names: Sequence[str],
    components: Sequence[str],
    floors: Mapping[str, float],
    level: float,
) -> JointBound | None:
    """The joint test of a class over ``components``.

    Per component the scale is the RMS of every real deviation the class has of it (the scale of the component's
    own bound), raised to the RMS at which that bound would equal the component's floor
    (:data:`~simgap_ext.gate.bank.CALIBRATION_FLOORS`: below it a difference is within sampling noise, and a bank
    of near-identical frames must not make it many spreads); the cap is the component's bound in those units, so
    that a component beyond its own bound (the per-component test's business) counts as if at it: the joint test
    fails a class on several components together, never on one alone.

    Args:
        deviations: (F, P) the class's real leave-one-out deviation vectors (columns named by ``names``).
        present: (F, P) bool, which were measured.
        names: the P column names.
        components: the components the frame judged has measured.
        floors: component -> floor of its bound (distance units; 0 when absent).
        level: coverage of the bound (the class's Bonferroni quantile).

    Returns:
        The :class:`JointBound`, or None when fewer than :data:`MIN_JOINT_COMPONENTS` components are asked for or
        fewer than :data:`MIN_JOINT_FRAMES` real frames measured all of them.
    """
    if len(components) < MIN_JOINT_COMPONENTS:
        return None
    cols = [list(names).index(c) for c in components]
    d = np.asarray(deviations, np.float64)[:, cols]
    h = np.asarray(present, bool)[:, cols]
    full = h.all(axis=1)
    n = h.sum(axis=0).astype(np.int64)
    if full.sum() < MIN_JOINT_FRAMES:
        return None
    cap = _bound_in_spreads(level, n)
    fl = np.array([float(floors.get(c, 0.0)) for c in components]) / (np.sqrt(1.0 - 1.0 / n**2) * cap)
    scales, _ = component_scales(d, h, fl)
    t = nested_loo_statistics(d[full], fl, cap)
    bound, df = joint_bound(t, level, len(cols))
    return JointBound(tuple(components), scales, n, cap, bound, df, int(full.sum()))


@dataclass(frozen=True)
class JointResult:
    """A frame's class under the joint test: ``T``, the limit it is held to and the standardized deviations
    (``z``: component -> distance in units of its real spread, before the cap)."""

    statistic: float
    limit: float
    z: dict[str, float]
    fit: JointBound

    @property
    def failed(self) -> bool:
        """``T`` beyond the limit."""
        return self.statistic > self.limit

    def reason(self, class_name: str) -> str:
        """The failure reason with its numbers (largest standardized deviations first)."""
        top = sorted(self.z.items(), key=lambda kv: -kv[1])[:3]
        moved = ", ".join(f"{c} {v:.1f}" for c, v in top)
        return (
            f"class {class_name}: joint deviation T={self.statistic:.2f} > {self.limit:.2f} "
            f"({self.statistic / self.limit:.2f}x; mean square of {len(self.z)} components in real spreads, "
            f"bound from {self.fit.n_real} real frames): {moved}"
        )


class JointTests:
    """The joint tests of one bank, fitted per (class, measured components) on first use.

    Args:
        bank: a :class:`~simgap_ext.gate.ReferenceBank` (format 5: with per-frame deviation vectors).
        margin: factor on the bound (``calibration_margin``, as every component's ``d_max`` carries it).
    """

    def __init__(self, bank: object, margin: float) -> None:
        from .bank import CALIBRATION_FLOORS, DEVIATION_COMPONENTS

        self._bank = bank
        self._names = DEVIATION_COMPONENTS
        self._floors = {c: CALIBRATION_FLOORS.get(c, 0.0) for c in DEVIATION_COMPONENTS}
        self._level = float(bank.meta.get("calibration_class_quantile", 0.0))  # type: ignore[attr-defined]
        self._margin = float(margin)
        self._cache: dict[tuple[str, tuple[str, ...]], JointBound | None] = {}

    @property
    def available(self) -> bool:
        """Whether the bank holds deviation vectors and a class quantile to test at."""
        return bool(self._bank.joint_class.size) and 0.0 < self._level < 1.0  # type: ignore[attr-defined]

    def evaluate(self, reference: str, distances: Mapping[str, float]) -> JointResult | None:
        """The joint test of a frame's class judged as ``reference`` (None when it has no joint test).

        Args:
            reference: the bank class the frame's class is compared with.
            distances: component -> the frame's distance (components outside the deviation components are
                ignored).
        """
        if not self.available:
            return None
        comps = tuple(c for c in self._names if c in distances)
        key = (reference, comps)
        if key not in self._cache:
            dev, has = self._bank.class_deviation_vectors(reference)  # type: ignore[attr-defined]
            fit = None
            if dev.shape[0]:
                fit = fit_joint_bound(dev, has, self._names, comps, self._floors, self._level)
            self._cache[key] = fit
        fit = self._cache[key]
        if fit is None:
            return None
        z = fit.standardized(distances)  # reported as measured; T counts each at most at its cap
        return JointResult(
            fit.statistic(distances),
            self._margin * fit.bound,
            {c: float(v) for c, v in zip(fit.components, z, strict=True)},
            fit,
        )
