"""Apply a fitted :class:`~simgap_ext.tune.model.SensorEffectModel` to any synthetic frame (never adds points).

:func:`apply_sensor_effects` is a deterministic post-process: the same frame, model and seed give the same
output. It works on a frame in the DESIGN.md layout from any source (the embedded raycaster, Replicator's
``pointcloud`` annotator, an existing dataset), in the sensor frame:

1. organise the points on the model's beam table and columns (:func:`~.range_image.organize`): points outside
   the beam fan and all but the nearest point of a cell are left out (a denser synthetic scan is thinned to the
   real sensor's sampling);
2. mixed pixels on depth edges (computed on the clean ranges);
3. range noise along each point's own ray, ``noise_sigma[class, range bin]`` (times ``noise_tail_scale`` on the
   ``noise_tail_share`` of the returns in the heavy tail; per class and range bin with ``noise_tail_shares`` /
   ``noise_tail_scales``);
4. ray drop: the fitted logistic model times the far-range loss, and the self-occluded cells; with
   ``drop_run_columns`` > 0 the extra drop of a positive ``drop_offset`` (but its per-class share
   ``drop_offset_isolated``) is drawn per run of columns on a ring (:func:`run_uniforms`: every return of a run
   shares one random number, so runs of a surface vanish whole and the isolated drop, a class's ring continuity,
   stays as fitted), with the same marginal drop per return;
5. intensity drawn from the class/range inverse CDF (``intensity_quantiles``);
6. motion skew (:mod:`.motion`, models with ``motion_sweep_m`` > 0): each point moves by the sensor's position
   ``s(tau)`` at its column's firing time, in the frame of the sweep's reference time. For a frame the embedded
   renderer cast from those moving origins (it passes ``sweep_displacement``) this is exact: the points are
   expressed in the reference frame, as a motion-compensated real scan is. For a frame that cannot be re-rendered
   (Replicator, an existing dataset) it is an approximation: the beams' cones move as a real moving sensor's do
   (what the gate's ``origin`` component reads), but the scene moves with them by up to ``|w|`` (0.2-0.3 m on
   nuScenes) instead of being seen from a moving point.

Random numbers are drawn for every cell in a fixed order whatever the model, so two models differing in one
table change only that effect for the same seed (the motion draw, one number, comes after all of them). The run
draws of ``drop_run_columns`` come after the per-cell draws and only when the model has runs and a positive shift,
so models without them give the same output as before the key existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from ..frame import validate_frame
from .model import SensorEffectModel
from .range_image import cos_incidence, edge_delta, organize

__all__ = ["apply_sensor_effects", "EffectDraw", "effect_draw", "run_uniforms"]

SeedLike = int | np.random.SeedSequence | np.random.Generator


class EffectDraw:
    """What the model does to a (B, C) range image (the arrays :func:`apply_sensor_effects` acts on).

    Attributes:
        range: (B, C) float32 measured range (meaningful where ``keep``).
        keep: (B, C) bool cells that return a point.
        intensity: (B, C) float32 intensity in [0, 1].
        mixed: (B, C) bool cells turned into mixed pixels.
    """

    __slots__ = ("range", "keep", "intensity", "mixed")

    def __init__(self, range_: np.ndarray, keep: np.ndarray, intensity: np.ndarray, mixed: np.ndarray) -> None:
        self.range = range_
        self.keep = keep
        self.intensity = intensity
        self.mixed = mixed


def _rng(seed: SeedLike) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or int(seed) < 0:
        raise SimGapInputError(f"seed must be a non-negative integer, a SeedSequence or a Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def effect_draw(
    rng_img: np.ndarray, class_img: np.ndarray, model: SensorEffectModel, rng: np.random.Generator
) -> EffectDraw:
    """Apply the model to a clean (B, C) range image.

    Args:
        rng_img: (B, C) float clean ranges, metres; 0 where empty. B must equal ``model.channels``.
        class_img: (B, C) int model class index per cell (:meth:`SensorEffectModel.class_index`).
        model: the effect model.
        rng: the noise generator (the only source of randomness).

    Returns:
        :class:`EffectDraw`.
    """
    r0 = np.asarray(rng_img, dtype=np.float32)
    cls = np.asarray(class_img, dtype=np.int64)
    if r0.ndim != 2 or r0.shape[0] != model.channels or cls.shape != r0.shape:
        raise SimGapInputError(
            f"range image must be ({model.channels}, C) with a class image of the same shape, got {r0.shape} and "
            f"{cls.shape}"
        )
    cls = np.clip(cls, 0, len(model.classes) - 1)
    shape = r0.shape
    hit = r0 > 0
    u_mixed = rng.random(shape, dtype=np.float32)
    frac_mixed = rng.random(shape, dtype=np.float32)
    noise = rng.standard_normal(shape, dtype=np.float32)
    u_drop = rng.random(shape, dtype=np.float32)
    u_int = rng.random(shape, dtype=np.float32)
    # Drawn last so that models without a noise tail give the same output as before the tail existed.
    u_tail = rng.random(shape, dtype=np.float32)

    r = r0.copy()
    mixed = np.zeros(shape, dtype=bool)
    if model.mixed_pixel_prob > 0:
        delta = edge_delta(r0, model.mixed_min_gap, model.mixed_max_gap)
        mixed = hit & (delta != 0) & (u_mixed < model.mixed_pixel_prob)
        r[mixed] += frac_mixed[mixed] * delta[mixed]
    rbin = model.range_bin(r0)
    sigma = np.asarray(model.noise_sigma, dtype=np.float32)[cls, rbin]
    # per class and range bin (the real tail is light on near ground, heavy on far facades); a model without the
    # tables has its scalar pair in every cell
    t_share, t_scale = model.noise_tail()
    if (t_share > 0).any():
        tail = u_tail < t_share.astype(np.float32)[cls, rbin]
        sigma = np.where(tail, t_scale.astype(np.float32)[cls, rbin] * sigma, sigma)
    r = np.where(hit, r + sigma * noise, 0.0).astype(np.float32)
    r = np.where(hit, np.maximum(r, 1e-3), 0.0).astype(np.float32)

    cos = cos_incidence(r0, np.radians(np.asarray(model.elevations_deg)))
    cbin = model.cos_bin(np.nan_to_num(cos, nan=1.0))
    base = (
        model.drop_bias
        + np.asarray(model.drop_beam)[:, None]
        + np.asarray(model.drop_range)[rbin]
        + np.asarray(model.drop_cos)[cbin]
        + np.asarray(model.drop_class)[cls]
    )
    shift = model.offset_per_class()[cls]
    runs = model.drop_run_columns > 0 and model.drop_offset > 0 and bool(np.any(shift > 0))
    # with runs: the returns keep the measured isolated drop (plus the share drop_offset_isolated of the shift); the
    # rest of the shift's loss, p_extra = 1 - keep_shift / keep, is drawn once per run, so that keep * (1 - p_extra)
    # is each return's marginal, as with the per-return shift
    iso = base + model.isolated_share()[cls] * shift if runs else base + shift
    p_keep = 1.0 / (1.0 + np.exp(np.clip(iso, -60.0, 60.0)))
    if model.far_range50 > 0:
        p_keep = p_keep / (1.0 + np.exp(np.clip((r0 - model.far_range50) / model.far_width, -60.0, 60.0)))
    keep = hit & (u_drop < p_keep)
    if runs:
        keep_iso = 1.0 / (1.0 + np.exp(np.clip(iso, -60.0, 60.0)))
        keep_shift = 1.0 / (1.0 + np.exp(np.clip(base + shift, -60.0, 60.0)))
        p_extra = 1.0 - keep_shift / keep_iso
        keep &= run_uniforms(shape, model.drop_run_columns, rng) >= p_extra
    if model.occlusion:
        keep &= ~model.occlusion_mask(shape[1])

    q = np.asarray(model.intensity_quantiles, dtype=np.float64)  # (K, R, Q)
    n_q = q.shape[2]
    pos = u_int.astype(np.float64) * (n_q - 1)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, n_q - 2)
    t = pos - lo
    tab = q[cls, rbin]  # (B, C, Q)
    q_lo = np.take_along_axis(tab, lo[..., None], axis=-1)[..., 0]
    q_hi = np.take_along_axis(tab, (lo + 1)[..., None], axis=-1)[..., 0]
    inten = np.clip((1.0 - t) * q_lo + t * q_hi, 0.0, 1.0).astype(np.float32)
    return EffectDraw(r, keep, inten, mixed)


def run_uniforms(shape: tuple[int, int], mean_columns: float, rng: np.random.Generator) -> np.ndarray:
    """(B, C) float64 uniforms shared by runs of consecutive columns on each ring (row).

    Each row is cut into runs of ``2 + Geometric`` columns (mean ``mean_columns``, at least 2, so that no run
    isolates one return between two others) starting at a random phase; every cell of a run holds the run's one
    uniform number. A cell is then dropped when its run's number is below its drop probability: a stretch of one
    surface vanishes whole, each cell with its own marginal probability. Columns do not wrap (a run that straddles
    the seam is two runs).

    Args:
        shape: (B, C) range-image shape.
        mean_columns: mean run length in columns (>= 2).
        rng: the noise generator; draws ``(B, n)`` lengths, one phase per row and ``(B, n)`` uniforms, in that order.

    Returns:
        (B, C) float64 values in [0, 1).
    """
    n_b, n_c = int(shape[0]), int(shape[1])
    if mean_columns < 2:
        raise SimGapInputError(f"run length must be >= 2 columns, got {mean_columns}")
    n_runs = n_c // 2 + 2  # enough runs of >= 2 columns to cover a row from any phase
    # 2 + (geometric >= 1) - 1: mean 2 + (mean - 2); a mean of exactly 2 gives runs of 2
    length = 1 + rng.geometric(1.0 / (mean_columns - 1.0), size=(n_b, n_runs))  # 2 + (geometric - 1)
    phase = rng.integers(0, length[:, 0])  # row starts inside its first run: runs do not all begin at column 0
    u = rng.random((n_b, n_runs))
    starts = np.cumsum(length, axis=1) - phase[:, None]  # first column of run k + 1 (> 0, increasing)
    boundary = np.zeros((n_b, n_c), dtype=np.int64)
    rows, ks = np.nonzero(starts < n_c)
    boundary[rows, starts[rows, ks]] = 1
    return np.take_along_axis(u, np.cumsum(boundary, axis=1), axis=1)


def apply_sensor_effects(
    frame: Mapping[str, Any],
    model: SensorEffectModel,
    seed: SeedLike = 0,
    *,
    name: str | None = None,
    sweep_displacement: Any = None,
) -> dict[str, Any]:
    """Apply a fitted sensor-effect model to a frame.

    Args:
        frame: a frame in the DESIGN.md layout with ``coordinate_frame`` ``"sensor"`` (or unset).
        model: the fitted effect model (``simgap tune``).
        seed: non-negative int, ``SeedSequence`` or ``Generator`` (the post-process's own noise seed).
        name: how to call the frame in error messages.
        sweep_displacement: (3,) sensor displacement over the sweep the frame was rendered with (the embedded
            renderer's per-column ray origins); default: drawn from the model (:meth:`SensorEffectModel.
            sweep_displacement`) when it has motion skew.

    Returns:
        A new validated frame: a subset of the input points (each moved along its own ray by the range noise
        and mixed-pixel blending), with the labels of the kept points, model intensities and every metadata key
        of the input; ``sensor_effects`` records ``{"model": "fitted", "seed": ...}`` where the seed is an int, and
        ``"sweep_displacement"`` (metres) when motion skew moved the points.

    Raises:
        SimGapInputError: an invalid frame, a world-frame frame, or a bad seed.
    """
    gen = _rng(seed)
    fr = validate_frame(frame, name=name)
    if fr.get("coordinate_frame", "sensor") != "sensor":
        raise SimGapInputError(
            f"{name or 'frame'}: the sensor-effect model needs points in the sensor frame, got coordinate_frame "
            f"{fr.get('coordinate_frame')!r}"
        )
    pts = fr["data"]
    info = fr["info"]
    img = organize(pts, np.asarray(model.elevations_deg), model.columns)
    valid = img.valid
    idx = np.where(valid, img.index, 0)
    labels = info["idToLabels"]
    sem = info["pointSemantic"]
    ids = np.unique(sem) if sem.size else np.zeros(0, dtype=np.uint32)
    lut = dict(zip(ids.tolist(), model.class_index([labels[int(i)]["class"] for i in ids]).tolist(), strict=True))
    class_of_point = np.array([lut[int(s)] for s in sem], dtype=np.int64) if sem.size else np.zeros(0, np.int64)
    class_img = np.where(valid, class_of_point[idx] if sem.size else 0, 0)
    draw = effect_draw(img.range, class_img, model, gen)
    keep = valid & draw.keep
    src = img.index[keep]
    order = np.argsort(src, kind="stable")  # keep the input's point order
    src = src[order]
    r_old = img.range[keep][order].astype(np.float64)
    r_new = draw.range[keep][order].astype(np.float64)
    scale = (r_new / np.maximum(r_old, 1e-9))[:, None]
    out = {k: v for k, v in fr.items() if k not in ("data", "info", "intensity")}
    moved = pts[src].astype(np.float64) * scale
    w = None
    if sweep_displacement is not None:
        w = np.asarray(sweep_displacement, dtype=np.float64).reshape(-1)
        if w.shape != (3,) or not np.isfinite(w).all():
            raise SimGapInputError(f"sweep_displacement must be 3 finite numbers, got {sweep_displacement!r}")
    elif model.has_motion:
        w = model.sweep_displacement(gen)
    if w is not None and np.any(w != 0):
        col = np.nonzero(keep)[1][order]
        moved += model.motion_offsets(2.0 * np.pi * col / model.columns, w)
    out["data"] = moved.astype(np.float32)
    new_info = dict(info)
    new_info["pointSemantic"] = sem[src]
    new_info["pointInstance"] = info["pointInstance"][src]
    n_in = pts.shape[0]
    for key in ("pointNormals", "pointRgb"):
        if key in info and info[key] is not None:
            arr = np.asarray(info[key])
            if arr.size == 4 * n_in:
                new_info[key] = arr.reshape(n_in, 4)[src].reshape(-1)
            elif arr.ndim >= 1 and arr.shape[0] == n_in:
                new_info[key] = arr[src]
            else:
                new_info.pop(key)
    out["info"] = new_info
    out["intensity"] = draw.intensity[keep][order]
    out["sensor_effects"] = {"model": "fitted", "seed": int(seed) if isinstance(seed, int | np.integer) else None}
    if w is not None:
        out["sensor_effects"]["sweep_displacement"] = [float(v) for v in w]
    return validate_frame(out, name=name)
