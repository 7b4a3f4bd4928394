"""The sim-to-real gap of a run's frames without and with the fitted sensor-effect model (a report section).

For a few accepted frames of a ``simgap generate`` run, :func:`effect_gap` measures the scene statistics of
:mod:`simgap_ext.tune.stats` (range W1, elevation W1, per-beam return ratio, roughness, plus the range W1 of each
class both sides have) against a few scans of the run's real reference, twice:

- a run rendered with a tuned preset (``--preset tuned.toml``, embedded backend): the run's scenes (accepted
  attempts first, then rejected ones: the gap is there too) re-rendered from their manifest rows (seed, attempt,
  focus classes) with the tuned preset (*with*: the frames the gate saw) and clean, preset ``ideal`` of the same
  profile (*without*): the model's post-process is the only difference;
- any other run, given a tuned profile (``effects``): *without* = the exported (accepted) frames; *with* = those
  frames through :func:`~simgap_ext.tune.apply_sensor_effects` (seed: the row's seed).

Every statistic is taken on the model's beam table (the real sensor's measured elevations and columns). It is
meant to be cheap (default 3 frames each side): a picture of the direction and size of the change, not a
benchmark (``benchmarks/bench_fidelity.py`` is that).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SimGapInputError

__all__ = ["EffectGap", "GAP_STATS", "effect_gap"]

_log = logging.getLogger(__name__)

#: The statistics of :func:`simgap_ext.tune.stats.compare` the section shows, with their units.
GAP_STATS = {"range_w1": "m", "elevation_w1": "deg", "beam_ratio_l1": "", "roughness": "m"}
_MIN_CLASS_POINTS = 50  # fewer points of a class on a side: no per-class W1 (it would be noise)


@dataclass
class EffectGap:
    """What the report section shows.

    Attributes:
        mode: ``"tuned run"`` (clean vs tuned re-render of the run's scenes) or ``"applied"`` (export vs export +
            model).
        profile: the tuned profile the model came from.
        frames: synthetic frames measured per side; ``real_frames``: real scans measured.
        without / with_: statistic name -> distance to the real scans (:data:`GAP_STATS` keys).
        per_class: class -> (range W1 without, range W1 with), metres (classes with enough points everywhere).
        beam_ratio: ``{"real"|"without"|"with": (B,) return ratio per beam}`` (beam 0 at the top).
        elevations_deg: (B,) the model's beam table.
    """

    mode: str
    profile: str
    frames: int
    real_frames: int
    without: dict[str, float]
    with_: dict[str, float]
    per_class: dict[str, tuple[float, float]] = field(default_factory=dict)
    beam_ratio: dict[str, np.ndarray] = field(default_factory=dict)
    elevations_deg: tuple[float, ...] = ()


def _model_of(path: str | os.PathLike[str]) -> tuple[Any, Any, str] | None:
    """(model, profile, preset) of a tuned profile file, or None when ``path`` is not a profile with a model."""
    from ..tune.load import load_effect_model

    try:
        return load_effect_model(path)
    except SimGapInputError:
        return None


def _scored_rows(rows: Sequence[Mapping[str, Any]], n: int) -> list[Mapping[str, Any]]:
    """Up to ``n`` rendered synthetic attempts, accepted ones first (rows without a seed cannot be re-rendered)."""
    synth = [r for r in rows if r.get("domain") == "synthetic" and r.get("seed") is not None]
    return sorted(synth, key=lambda r: r.get("decision") != "accepted")[:n]


def _exported(base: Path, rows: Sequence[Mapping[str, Any]], n: int) -> list[tuple[Mapping[str, Any], dict]]:
    """Up to ``n`` accepted rows and their exported frames (read with the export's own ``label_map.yaml``)."""
    from ..data import iter_scans, scan_name

    picked = {}
    for row in rows:
        if row.get("domain") == "synthetic" and row.get("decision") == "accepted" and row.get("path"):
            picked[scan_name(str(row["path"]))] = row
            if len(picked) >= n:
                break
    if not picked:
        return []
    sensor = str(next(iter(picked.values())).get("sensor") or "unknown")
    return [(picked[name], fr) for name, fr in iter_scans(base, sensor=sensor, only=set(picked))]


def _real_named(real: Path, n: int, sensor: str) -> list[tuple[str, dict]]:
    """Up to ``n`` (scan name, frame) of ``real``, evenly spread over the directory's scans."""
    from ..data import iter_scans, list_scans, scan_name

    files = list_scans(real)
    # evenly spread over the reference: consecutive scans of one stretch would show one street
    pick = {scan_name(files[int(i)]) for i in np.linspace(0, len(files) - 1, min(n, len(files))).round()}
    return list(iter_scans(real, sensor=sensor, only=pick))


def _real(real: Path, n: int, sensor: str) -> list[dict]:
    return [fr for _, fr in _real_named(real, n, sensor)]


def _class_ranges(frames: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    from ..tune.model import head_class

    out: dict[str, list[np.ndarray]] = {}
    for fr in frames:
        names = {int(k): head_class(v["class"]) for k, v in fr["info"]["idToLabels"].items()}
        sem = np.asarray(fr["info"]["pointSemantic"])
        r = np.linalg.norm(np.asarray(fr["data"], dtype=np.float64), axis=1)
        for sid in np.unique(sem).tolist():
            name = names.get(int(sid), "unlabeled")
            if name != "unlabeled":
                out.setdefault(name, []).append(r[sem == sid])
    return {k: np.concatenate(v) for k, v in out.items()}


def effect_gap(
    run_dir: str | os.PathLike[str],
    rows: Sequence[Mapping[str, Any]],
    run_config: Mapping[str, Any] | None,
    *,
    effects: str | os.PathLike[str] | None = None,
    real: str | os.PathLike[str] | None = None,
    frames: int = 3,
    device: str | None = "cpu",
) -> EffectGap | str:
    """Measure the gap without and with the effect model (see the module docstring).

    Args:
        run_dir: the run's directory (exported scans are read relative to it).
        rows: the run's manifest rows.
        run_config: the run's ``run.json`` (``preset``, ``backend``, ``real``), or None.
        effects: a tuned profile for a run that did not use one (ignored for a tuned run).
        real: real scans to compare with (default: the run's ``real`` reference directory).
        frames: synthetic and real frames measured per side (>= 1).
        device: Warp device of the clean re-render.

    Returns:
        The :class:`EffectGap`, or a one-line reason why the section cannot be computed (no model, no real
        scans, no accepted frame).
    """
    from ..tune.stats import compare, scene_stats, summarize

    if frames < 1:
        raise SimGapInputError(f"effect-gap frames must be >= 1, got {frames}")
    cfg = dict(run_config or {})
    preset = cfg.get("preset")
    run_model = _model_of(preset) if isinstance(preset, str) and preset.endswith(".toml") else None
    tuned_run = run_model is not None
    found = run_model or (_model_of(effects) if effects is not None else None)
    if found is None:
        if effects is not None:
            return f"{effects}: not a tuned sensor profile (no fitted sensor-effect model; see `simgap tune`)"
        return "the run did not use a tuned preset; pass a tuned profile (`simgap report --effects tuned.toml`)"
    model, profile, preset_name = found
    real_dir = Path(real) if real is not None else (Path(cfg["real"]) if cfg.get("real") else None)
    if real_dir is None or not real_dir.exists():
        why = f"{real_dir} does not exist" if real_dir is not None else "the run used a bank, not a real directory"
        return f"no real scans to compare with ({why}); pass them with `simgap report --real DIR`"
    if tuned_run and cfg.get("backend", "warp") != "warp":
        return "a tuned run of the replicator backend cannot be re-rendered without the model here"
    if tuned_run:
        from ..backends.warp.source import WarpLidarSource

        picked = _scored_rows(rows, frames)
        if not picked:
            return "no frame rendered yet"
        rate = cfg.get("rotation_rate_hz")
        sides = []
        for name in (preset_name, "ideal"):
            src = WarpLidarSource(profile, name, device=device, rotation_rate_hz=rate)
            sides.append(
                [
                    src.render(
                        seed=int(r["seed"]),
                        focus_classes=list(r.get("focus_classes") or ()),
                        frame_id=int(r.get("frame_id") or 0),
                        attempt=int(r.get("attempt") or 0),
                    )
                    for r in picked
                ]
            )
        with_, without = sides
        mode, n_syn, sensor = "tuned run", len(picked), str(picked[0].get("sensor") or profile.name)
    else:
        from ..tune.apply import apply_sensor_effects

        exported = _exported(Path(run_dir), rows, frames)
        if not exported:
            return "no accepted frame exported yet"
        without = [f for _, f in exported]
        with_ = [apply_sensor_effects(f, model, int(r.get("seed") or 0) & 0x7FFFFFFF) for r, f in exported]
        mode, n_syn, sensor = "applied", len(exported), str(exported[0][1]["sensor"])
    real_frames = _real(real_dir, frames, sensor)
    el, cols = model.elevations_deg, model.columns
    sums = {k: summarize([scene_stats(f, el, cols) for f in fs]) for k, fs in
            (("real", real_frames), ("without", without), ("with", with_))}  # fmt: skip
    d_without, d_with = compare(sums["real"], sums["without"]), compare(sums["real"], sums["with"])
    per_class: dict[str, tuple[float, float]] = {}
    rc, wo, wi = _class_ranges(real_frames), _class_ranges(without), _class_ranges(with_)
    from scipy.stats import wasserstein_distance

    for name in sorted(set(rc) & set(wo) & set(wi)):
        if min(rc[name].size, wo[name].size, wi[name].size) >= _MIN_CLASS_POINTS:
            per_class[name] = (
                float(wasserstein_distance(rc[name], wo[name])),
                float(wasserstein_distance(rc[name], wi[name])),
            )
    return EffectGap(
        mode=mode,
        profile=str(getattr(profile, "source", "") or profile.name),
        frames=n_syn,
        real_frames=len(real_frames),
        without={k: d_without[k] for k in GAP_STATS},
        with_={k: d_with[k] for k in GAP_STATS},
        per_class=per_class,
        beam_ratio={k: np.asarray(v["beam_ratio"]) for k, v in sums.items()},
        elevations_deg=tuple(float(e) for e in el),
    )
