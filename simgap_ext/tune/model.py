"""The fitted sensor-effect model: what ``simgap tune`` writes and ``apply_sensor_effects`` applies.

A :class:`SensorEffectModel` holds tables measured on real range images (see :mod:`simgap_ext.tune.fit`):

- beam geometry: ``elevations_deg`` (B,), beam 0 at the top, and ``columns`` per turn;
- ray drop: a logistic model ``logit p_drop = drop_bias + drop_beam[b] + drop_range[range bin]
  + drop_cos[incidence bin] + drop_class[class]`` (isolated missing returns on a surface that is there), times
  a far-range loss ``sigmoid((r - far_range50) / far_width)`` for whole surfaces that fade out (searched with
  CMA-ES on scene statistics, since a neighbour test cannot see them); ``drop_offset`` shifts the logit of the
  classes in ``drop_offset_classes`` (all classes when empty, as in profiles written before it existed). With
  ``drop_run_columns`` > 0 the extra drop a positive shift adds is not drawn per return but per *run* of
  consecutive columns on a ring (lengths ``2 + geometric``, mean ``drop_run_columns``, one random number per run):
  the same expected share of returns is lost as whole stretches of a surface, which the neighbour test cannot see,
  and the isolated drop it measured is kept; a per-class share ``drop_offset_isolated`` of the shift (in logits)
  still acts per return (searched so that each shifted class's ring continuity matches the real scans'); 0
  (profiles written before it existed): the shift multiplies every return's isolated drop;
- range noise: ``noise_sigma[class, range bin]`` metres (1 sigma, along the ray) of the Gaussian core; a share
  ``noise_tail_share`` of the returns carries ``noise_tail_scale`` times that sigma instead (real range errors
  are heavy-tailed: about 10 % of real nuScenes second differences lie beyond 3 robust sigmas, 0.3 % for a
  Gaussian). With ``noise_tail_shares`` / ``noise_tail_scales`` (K, R) the tail is per class and range bin (the
  real tail is: 2.7 % beyond 3 sigmas on ground within 4 m, 14 % at 7-10 m, 26 % on buildings at 30-45 m;
  docs/backend.md "Issue 10, ninth pass"); empty (profiles written before): the scalar pair everywhere;
- intensity: ``intensity_quantiles[class, range bin, q]`` in [0, 1] at evenly spaced probabilities
  ``q / (Q - 1)`` (an inverse CDF sampled per point);
- mixed pixels: ``mixed_pixel_prob`` of a ray on a depth edge between ``mixed_min_gap`` and ``mixed_max_gap``;
- self-occlusion: ``occlusion`` rows ``(beam, azimuth start, azimuth end)`` (degrees, ``[0, 360)``, counter-
  clockwise from +x) where the sensor's own vehicle hides the scene (no return in almost every real scan);
- motion skew (:mod:`.motion`): the sensor moves ``motion_sweep_m`` metres (per frame drawn with spread
  ``motion_sweep_sd_m``) along ``motion_heading_deg`` during one sweep, which starts at azimuth ``sweep_start_deg``
  and spins clockwise or not; points are expressed in the sensor frame at sweep fraction ``motion_reference``
  (1: the sweep's end, as in motion-compensated nuScenes scans). 0 m: a sensor at rest (the default).

Class index 0 is ``"other"``: any class the model has no table for. Ranges beyond the last edge use the last bin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..errors import SimGapInputError

__all__ = ["head_class", "SensorEffectModel", "DEFAULT_RANGE_EDGES", "DEFAULT_COS_EDGES", "OTHER_CLASS"]

#: Range-bin edges, metres (bin k covers [edges[k], edges[k+1]); beyond the last edge: the last bin).
DEFAULT_RANGE_EDGES: tuple[float, ...] = (0.0, 4.0, 7.0, 10.0, 15.0, 20.0, 30.0, 45.0, 70.0)
#: |cos incidence| bin edges.
DEFAULT_COS_EDGES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0001)
#: Name of class 0, which takes every class the model has no table for.
OTHER_CLASS = "other"


@dataclass(frozen=True)
class SensorEffectModel:
    """A sensor-effect model fitted to real scans (see the module docstring for every table).

    Attributes:
        elevations_deg: (B,) beam elevations, degrees, strictly decreasing (beam 0 at the top).
        columns: firings per beam per turn.
        classes: (K,) class names; ``classes[0] == "other"``.
        range_edges: (R + 1,) increasing range-bin edges, metres, starting at 0.
        cos_edges: (I + 1,) increasing |cos incidence| bin edges from 0 to just above 1.
        drop_bias: logit intercept of the isolated-drop model.
        drop_beam: (B,) logit offset per beam.
        drop_range: (R,) logit offset per range bin.
        drop_cos: (I,) logit offset per incidence bin.
        drop_class: (K,) logit offset per class.
        drop_offset: extra logit offset (searched; 0 = as fitted).
        drop_offset_classes: the classes ``drop_offset`` applies to (empty: every class). ``simgap tune`` names the
            background classes: the isolated drop of object classes is measured by the neighbour test at the
            ranges they are seen at, and the offset multiplied it (vehicle ring continuity at 15-20 m 0.85
            against 0.95-0.97 real; docs/backend.md "Fidelity").
        drop_run_columns: mean length (columns, >= 2) of the runs a positive ``drop_offset`` drops whole
            (``simgap tune``: the mean length of the real scans' multi-column gaps on one surface); 0: the shift
            acts per return (isolated drop, as before the key existed).
        drop_offset_isolated: (K,) share in [0, 1] per class of ``drop_offset`` (logits) applied per return when
            the shift acts on runs (the rest drops runs); empty: 0 for every class; ignored without runs.
        far_range50: range (metres) where the far-range loss removes half the returns; 0 disables it.
        far_width: width of the far-range loss, metres.
        noise_sigma: (K, R) range noise, metres, 1 sigma of the Gaussian core.
        noise_tail_share: share of returns whose range error is drawn with ``noise_tail_scale`` times the sigma
            (0: Gaussian noise).
        noise_tail_scale: sigma multiplier of the heavy-tail returns (>= 1).
        noise_tail_shares: (K, R) ``noise_tail_share`` per class and range bin, or empty: the scalar everywhere.
        noise_tail_scales: (K, R) ``noise_tail_scale`` per class and range bin (empty exactly when
            ``noise_tail_shares`` is).
        intensity_quantiles: (K, R, Q) intensity quantiles in [0, 1] (non-decreasing along Q).
        mixed_pixel_prob: probability that a ray on a depth edge returns a point between the surfaces.
        mixed_min_gap: smallest range jump (metres) counted as a depth edge.
        mixed_max_gap: largest range jump (metres) that still blends into one return.
        occlusion: rows ``(beam, az_start_deg, az_end_deg)`` of cells hidden by the sensor's own vehicle.
        intensity_scale: the real data's intensity full scale (informational: 255 for nuScenes).
        n_scans: number of real scans the model was fitted on (informational).
        motion_sweep_m: sensor displacement over one sweep, metres (>= 0; 0 disables motion skew).
        motion_sweep_sd_m: per-frame spread (1 sigma) of that displacement, metres.
        motion_heading_deg: direction of the displacement in the sensor frame, degrees counter-clockwise from +x.
        sweep_start_deg: azimuth fired first in a sweep, degrees in [0, 360).
        sweep_clockwise: spin direction seen from above.
        motion_reference: sweep fraction in [0, 1] whose sensor frame the points are expressed in.
    """

    elevations_deg: tuple[float, ...]
    columns: int
    classes: tuple[str, ...]
    range_edges: tuple[float, ...]
    cos_edges: tuple[float, ...]
    drop_bias: float
    drop_beam: tuple[float, ...]
    drop_range: tuple[float, ...]
    drop_cos: tuple[float, ...]
    drop_class: tuple[float, ...]
    noise_sigma: tuple[tuple[float, ...], ...]
    intensity_quantiles: tuple[tuple[tuple[float, ...], ...], ...]
    drop_offset: float = 0.0
    drop_offset_classes: tuple[str, ...] = ()
    drop_run_columns: float = 0.0
    drop_offset_isolated: tuple[float, ...] = ()
    far_range50: float = 0.0
    far_width: float = 5.0
    mixed_pixel_prob: float = 0.0
    mixed_min_gap: float = 0.5
    mixed_max_gap: float = 4.0
    occlusion: tuple[tuple[float, float, float], ...] = ()
    intensity_scale: float = 1.0
    n_scans: int = 0
    noise_tail_share: float = 0.0
    noise_tail_scale: float = 1.0
    noise_tail_shares: tuple[tuple[float, ...], ...] = ()
    noise_tail_scales: tuple[tuple[float, ...], ...] = ()
    motion_sweep_m: float = 0.0
    motion_sweep_sd_m: float = 0.0
    motion_heading_deg: float = 0.0
    sweep_start_deg: float = 180.0
    sweep_clockwise: bool = True
    motion_reference: float = 1.0

    def __post_init__(self) -> None:
        el = np.asarray(self.elevations_deg, dtype=np.float64)
        if el.ndim != 1 or el.size < 1 or not np.isfinite(el).all() or np.any(np.abs(el) >= 90):
            raise SimGapInputError("effect model: 'elevations_deg' must be finite angles in (-90, 90) degrees")
        if el.size > 1 and np.any(np.diff(el) >= 0):
            raise SimGapInputError("effect model: 'elevations_deg' must be strictly decreasing (beam 0 at the top)")
        if isinstance(self.columns, bool) or not isinstance(self.columns, int | np.integer) or self.columns < 1:
            raise SimGapInputError(f"effect model: 'columns' must be a positive integer, got {self.columns!r}")
        if not self.classes or self.classes[0] != OTHER_CLASS:
            raise SimGapInputError(f"effect model: 'classes' must start with {OTHER_CLASS!r}")
        stray = sorted(set(self.drop_offset_classes) - set(self.classes))
        if stray:
            raise SimGapInputError(f"effect model: 'drop_offset_classes' names classes without a table: {stray}")
        for name in ("range_edges", "cos_edges"):
            e = np.asarray(getattr(self, name), dtype=np.float64)
            if e.ndim != 1 or e.size < 2 or not np.isfinite(e).all() or np.any(np.diff(e) <= 0):
                raise SimGapInputError(f"effect model: {name!r} must be >= 2 increasing finite edges")
        b, k, r, i = el.size, len(self.classes), len(self.range_edges) - 1, len(self.cos_edges) - 1
        shapes = {
            "drop_beam": (b,),
            "drop_range": (r,),
            "drop_cos": (i,),
            "drop_class": (k,),
            "noise_sigma": (k, r),
        }
        for name, shape in shapes.items():
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != shape or not np.isfinite(arr).all():
                raise SimGapInputError(f"effect model: {name!r} must be finite with shape {shape}, got {arr.shape}")
        if np.any(np.asarray(self.noise_sigma) < 0):
            raise SimGapInputError("effect model: 'noise_sigma' must be >= 0")
        q = np.asarray(self.intensity_quantiles, dtype=np.float64)
        if q.ndim != 3 or q.shape[:2] != (k, r) or q.shape[2] < 2 or not np.isfinite(q).all():
            raise SimGapInputError(f"effect model: 'intensity_quantiles' must have shape ({k}, {r}, Q >= 2)")
        if np.any(np.diff(q, axis=2) < -1e-9) or q.min() < 0 or q.max() > 1:
            raise SimGapInputError("effect model: 'intensity_quantiles' must be non-decreasing values in [0, 1]")
        for name in (
            "drop_bias",
            "drop_offset",
            "drop_run_columns",
            "far_range50",
            "far_width",
            "mixed_pixel_prob",
            "mixed_min_gap",
            "noise_tail_share",
            "noise_tail_scale",
            "motion_sweep_m",
            "motion_sweep_sd_m",
            "motion_heading_deg",
            "sweep_start_deg",
            "motion_reference",
        ):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int | float | np.floating) or not math.isfinite(val):
                raise SimGapInputError(f"effect model: {name!r} must be a finite number, got {val!r}")
        if not 0.0 <= self.noise_tail_share < 1.0 or self.noise_tail_scale < 1.0:
            raise SimGapInputError("effect model: need 0 <= 'noise_tail_share' < 1 and 'noise_tail_scale' >= 1")
        if bool(self.noise_tail_shares) != bool(self.noise_tail_scales):
            raise SimGapInputError("effect model: 'noise_tail_shares' and 'noise_tail_scales' go together")
        if self.noise_tail_shares:
            t_share = np.asarray(self.noise_tail_shares, dtype=np.float64)
            t_scale = np.asarray(self.noise_tail_scales, dtype=np.float64)
            if t_share.shape != (k, r) or t_scale.shape != (k, r):
                raise SimGapInputError(
                    f"effect model: 'noise_tail_shares' and 'noise_tail_scales' must have shape {(k, r)}, got "
                    f"{t_share.shape} and {t_scale.shape}"
                )
            if not (np.isfinite(t_share).all() and np.isfinite(t_scale).all()):
                raise SimGapInputError("effect model: 'noise_tail_shares' and 'noise_tail_scales' must be finite")
            if np.any((t_share < 0) | (t_share >= 1)) or np.any(t_scale < 1):
                raise SimGapInputError(
                    "effect model: need 0 <= 'noise_tail_shares' < 1 and 'noise_tail_scales' >= 1 in every cell"
                )
        if self.motion_sweep_m < 0 or self.motion_sweep_sd_m < 0 or not 0.0 <= self.motion_reference <= 1.0:
            raise SimGapInputError(
                "effect model: need 'motion_sweep_m' >= 0, 'motion_sweep_sd_m' >= 0 and 0 <= 'motion_reference' <= 1"
            )
        if not 0.0 <= self.sweep_start_deg < 360.0:
            raise SimGapInputError(f"effect model: 'sweep_start_deg' must be in [0, 360), got {self.sweep_start_deg}")
        if not isinstance(self.sweep_clockwise, bool | np.bool_):
            raise SimGapInputError(
                f"effect model: 'sweep_clockwise' must be true or false, got {self.sweep_clockwise!r}"
            )
        if self.drop_run_columns != 0 and not 2.0 <= self.drop_run_columns <= self.columns:
            raise SimGapInputError(
                f"effect model: 'drop_run_columns' must be 0 (per-return shift) or in [2, columns], got "
                f"{self.drop_run_columns}"
            )
        iso = np.asarray(self.drop_offset_isolated, dtype=np.float64)
        if iso.size and (iso.shape != (k,) or not np.all((iso >= 0) & (iso <= 1))):
            raise SimGapInputError(
                f"effect model: 'drop_offset_isolated' must be empty or {k} shares in [0, 1], got "
                f"{self.drop_offset_isolated}"
            )
        if self.far_range50 < 0 or self.far_width <= 0:
            raise SimGapInputError("effect model: need 'far_range50' >= 0 and 'far_width' > 0")
        if not 0.0 <= self.mixed_pixel_prob <= 1.0:
            raise SimGapInputError(f"effect model: 'mixed_pixel_prob' must be in [0, 1], got {self.mixed_pixel_prob}")
        if not 0.0 <= self.mixed_min_gap < self.mixed_max_gap:
            raise SimGapInputError("effect model: need 0 <= 'mixed_min_gap' < 'mixed_max_gap'")
        occ = np.asarray(self.occlusion, dtype=np.float64).reshape(-1, 3) if len(self.occlusion) else np.zeros((0, 3))
        if occ.shape[0] and (
            not np.isfinite(occ).all()
            or np.any(occ[:, 0] < 0)
            or np.any(occ[:, 0] >= b)
            or np.any(occ[:, 0] != np.round(occ[:, 0]))
            or np.any(occ[:, 1] < 0)
            or np.any(occ[:, 2] > 360)
            or np.any(occ[:, 1] >= occ[:, 2])
        ):
            raise SimGapInputError(
                "effect model: 'occlusion' rows must be (beam index, start, end) with 0 <= start < end <= 360"
            )

    def occlusion_mask(self, columns: int | None = None) -> np.ndarray:
        """(B, C) bool cells hidden by the sensor's own vehicle (C: ``columns`` or the model's)."""
        n_c = int(columns or self.columns)
        mask = np.zeros((self.channels, n_c), dtype=bool)
        az = 360.0 * np.arange(n_c) / n_c
        for b, a0, a1 in self.occlusion:
            mask[int(b)] |= (az >= a0) & (az < a1)
        return mask

    @property
    def has_motion(self) -> bool:
        """Whether the model moves the sensor during a sweep (motion skew)."""
        return self.motion_sweep_m > 0.0 or self.motion_sweep_sd_m > 0.0

    def sweep_displacement(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """(3,) float64 sensor displacement over one sweep: ``motion_sweep_m`` along the heading, plus
        ``motion_sweep_sd_m`` times one standard normal drawn from ``rng`` (none drawn without spread or ``rng``),
        clipped at 0."""
        d = self.motion_sweep_m
        if rng is not None and self.motion_sweep_sd_m > 0:
            d += self.motion_sweep_sd_m * float(rng.standard_normal())
        h = math.radians(self.motion_heading_deg)
        return max(0.0, d) * np.array([math.cos(h), math.sin(h), 0.0])

    def motion_offsets(self, azimuth_rad: np.ndarray, displacement: np.ndarray) -> np.ndarray:
        """(..., 3) sensor position (in the frame the points are expressed in) when each azimuth was fired, for
        a sweep displacement ``displacement`` (:meth:`sweep_displacement`); see :mod:`.motion`."""
        from .motion import sweep_offsets

        return sweep_offsets(
            azimuth_rad,
            displacement,
            start_deg=self.sweep_start_deg,
            clockwise=bool(self.sweep_clockwise),
            reference=self.motion_reference,
        )

    @property
    def channels(self) -> int:
        """Number of beams B."""
        return len(self.elevations_deg)

    def class_index(self, names: Sequence[str]) -> np.ndarray:
        """(len(names),) int64 model class index per name: its own table, else the table of its nearest taxonomy
        ancestor (``car`` -> ``vehicle``, so stage labels finer than the fitted classes still match), else 0
        (``"other"``)."""
        lut = {c: i for i, c in enumerate(self.classes)}
        idx = [lut[n] if n in lut else self._ancestor_index(n, lut) for n in map(str, names)]
        return np.array(idx, dtype=np.int64)

    @staticmethod
    def _ancestor_index(name: str, lut: Mapping[str, int]) -> int:
        from ..data.taxonomy import default_taxonomy  # only for names the model has no table for

        tax = default_taxonomy()
        if name not in tax:
            return 0
        found = tax.resolve(name, lut)
        return lut[found] if found is not None else 0

    def range_bin(self, r: np.ndarray) -> np.ndarray:
        """Range-bin index of each range (same shape as ``r``; clipped to the first/last bin)."""
        e = np.asarray(self.range_edges)
        return np.clip(np.searchsorted(e, r, side="right") - 1, 0, e.size - 2)

    def cos_bin(self, cos: np.ndarray) -> np.ndarray:
        """Incidence-bin index of each |cos incidence| (same shape as ``cos``)."""
        e = np.asarray(self.cos_edges)
        return np.clip(np.searchsorted(e, cos, side="right") - 1, 0, e.size - 2)

    def drop_probability(
        self, beam: np.ndarray, range_m: np.ndarray, cos: np.ndarray, class_idx: np.ndarray
    ) -> np.ndarray:
        """Drop probability of a return (logistic part, with ``drop_offset``; no far-range loss, no occlusion).

        With ``drop_run_columns`` > 0 a positive shift's share of it is drawn per run of columns, not per return
        (:func:`~simgap_ext.tune.apply.effect_draw`); this is then each return's marginal drop probability.

        Args:
            beam: int beam indices; range_m: ranges, metres; cos: |cos incidence|; class_idx: model class indices
                (all broadcastable to one shape).

        Returns:
            float64 probabilities of that shape.
        """
        cls = np.asarray(class_idx, dtype=np.int64)
        z = (
            self.drop_bias
            + self.offset_per_class()[cls]
            + np.asarray(self.drop_beam)[np.asarray(beam, dtype=np.int64)]
            + np.asarray(self.drop_range)[self.range_bin(np.asarray(range_m))]
            + np.asarray(self.drop_cos)[self.cos_bin(np.asarray(cos))]
            + np.asarray(self.drop_class)[cls]
        )
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))

    def offset_per_class(self) -> np.ndarray:
        """(K,) float64 ``drop_offset`` for the classes in ``drop_offset_classes`` (every class when empty), 0
        for the others."""
        if not self.drop_offset_classes:
            return np.full(len(self.classes), float(self.drop_offset))
        return np.array([float(self.drop_offset) if c in self.drop_offset_classes else 0.0 for c in self.classes])

    def isolated_share(self) -> np.ndarray:
        """(K,) float64 share of the shift applied per return when it acts on runs (``drop_offset_isolated``)."""
        if not self.drop_offset_isolated:
            return np.zeros(len(self.classes))
        return np.asarray(self.drop_offset_isolated, dtype=np.float64)

    def noise_tail(self) -> tuple[np.ndarray, np.ndarray]:
        """((K, R) float64 tail share, (K, R) float64 tail scale): the per-cell tables, or the scalar pair in every
        cell when the model has none."""
        if self.noise_tail_shares:
            return (
                np.asarray(self.noise_tail_shares, dtype=np.float64),
                np.asarray(self.noise_tail_scales, dtype=np.float64),
            )
        shape = (len(self.classes), len(self.range_edges) - 1)
        return np.full(shape, float(self.noise_tail_share)), np.full(shape, float(self.noise_tail_scale))

    def replace(self, **changes: Any) -> SensorEffectModel:
        """A copy with some fields changed (validated again)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(changes)
        return SensorEffectModel(**d)

    # ------------------------------------------------------------------------------------------- TOML form

    def to_dict(self) -> dict[str, Any]:
        """A TOML-ready dict (numbers, strings and nested lists only)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            val = getattr(self, f.name)
            if isinstance(val, tuple):
                out[f.name] = _tolist(val)
            elif isinstance(val, bool | np.bool_ | str):
                out[f.name] = bool(val) if not isinstance(val, str) else val
            elif isinstance(val, int | np.integer) and f.name in ("columns", "n_scans"):
                out[f.name] = int(val)
            else:
                out[f.name] = float(val)
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "effect model") -> SensorEffectModel:
        """Build from :meth:`to_dict`'s form (e.g. a ``[presets.tuned.model]`` TOML table).

        Raises:
            SimGapInputError: unknown or missing keys, or invalid values (the message says ``where``).
        """
        if not isinstance(doc, Mapping):
            raise SimGapInputError(f"{where}: must be a table")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(doc) - set(known))
        if unknown:
            raise SimGapInputError(f"{where}: unknown key(s) {unknown}")
        kw: dict[str, Any] = {}
        for name, val in doc.items():
            if name in ("columns", "n_scans"):
                kw[name] = val
            elif isinstance(val, list):
                kw[name] = _totuple(val, str if name in ("classes", "drop_offset_classes") else float)
            elif isinstance(val, int) and not isinstance(val, bool):
                kw[name] = float(val)
            else:
                kw[name] = val
        try:
            return cls(**kw)
        except TypeError as exc:
            raise SimGapInputError(f"{where}: {exc}") from exc
        except SimGapInputError as exc:
            raise SimGapInputError(f"{where}: {exc}") from exc


def _tolist(val: Any) -> Any:
    if isinstance(val, tuple | list):
        return [_tolist(v) for v in val]
    if isinstance(val, str):
        return val
    return float(val)


def _totuple(val: Any, kind: type) -> Any:
    if isinstance(val, list):
        return tuple(_totuple(v, kind) for v in val)
    if kind is str:
        return str(val)
    if isinstance(val, bool) or not isinstance(val, int | float):
        raise SimGapInputError(f"expected a number, got {val!r}")
    return float(val)


def head_class(name: str) -> str:
    """The taxonomy head class of a class name (``road`` -> ``ground``, ``car`` -> ``vehicle``), the level the model
    is fitted at; a name outside the taxonomy is returned unchanged."""
    from ..data.taxonomy import default_taxonomy

    tax = default_taxonomy()
    return tax.head_of(str(name)) if str(name) in tax else str(name)
