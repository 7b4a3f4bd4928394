"""``simgap tune`` end to end: real scans -> fitted model -> CMA-ES scene terms -> a tuned sensor profile.

:func:`tune_profile` returns a :class:`~simgap_ext.sensors.SensorProfile` whose beam table and columns are the
measured ones and whose ``tuned`` preset carries the fitted :class:`~.model.SensorEffectModel`; write it with
:func:`~simgap_ext.sensors.profile_to_toml` and use it as ``--preset tuned.toml``.

Real scans are read from ``DIR`` as nuScenes scans (``*/points.bin`` or ``*.pcd.bin`` + lidarseg labels;
organised in firing order, :mod:`.real`) or, failing that, with :func:`simgap_ext.data.iter_scans` (any supported
point-cloud format,
organised on the ``--sensor`` profile's beam table).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from ..sensors import EffectSettings, ReadOnlyMapping, SensorProfile, load_sensor_profile
from .fit import RealScan, fit_effect_model
from .model import OTHER_CLASS, SensorEffectModel, head_class

__all__ = ["load_real_scans", "mount_height", "tuned_profile", "tune_profile"]

log = logging.getLogger(__name__)


def load_real_scans(
    path: str | os.PathLike[str], profile: SensorProfile, *, limit: int | None = None
) -> tuple[list[RealScan], list[dict[str, Any]]]:
    """Organised real scans and their frames from ``path`` (see the module docstring)."""
    from .real import list_nuscenes_scans, load_nuscenes_scan, nuscenes_frame, scan_from_frame

    p = Path(path)
    try:
        files = list_nuscenes_scans(p)
    except SimGapInputError:
        files = []
    if files:
        files = files[:limit] if limit else files
        scans = [load_nuscenes_scan(f, channels=profile.channels) for f in files]
        frames = [nuscenes_frame(f, sensor=profile.name, frame_id=i) for i, f in enumerate(files)]
        return scans, frames
    from ..data import iter_scans

    scans, frames = [], []
    for name, fr in iter_scans(p, sensor=profile.name):
        frames.append(fr)
        scans.append(scan_from_frame(fr, profile.vertical_angles_deg, profile.horizontal_resolution, name=name))
        if limit and len(frames) >= limit:
            break
    return scans, frames


def mount_height(frames: Sequence[dict[str, Any]]) -> float | None:
    """Sensor height above the ground: minus the median z of road returns 4-15 m away (any class whose head class
    is ``ground`` where the labels have no ``road``: raised sidewalks and terrain bias it low); None: < 200 points."""
    import numpy as np

    from ..data.taxonomy import default_taxonomy

    tax = default_taxonomy()
    road: list[np.ndarray] = []
    ground: list[np.ndarray] = []
    for fr in frames:
        names = {int(k): str(v["class"]) for k, v in fr["info"]["idToLabels"].items()}
        pts = np.asarray(fr["data"])
        d = np.hypot(pts[:, 0], pts[:, 1])
        near = (d >= 4.0) & (d <= 15.0)
        sem = np.asarray(fr["info"]["pointSemantic"])
        is_road = [k for k, n in names.items() if n in tax and tax.resolve(n, {"road"}) == "road"]
        is_ground = [k for k, n in names.items() if head_class(n) == "ground"]
        road.append(pts[near & np.isin(sem, is_road), 2])
        ground.append(pts[near & np.isin(sem, is_ground), 2])
    for zs in (road, ground):
        z = np.concatenate(zs) if zs else np.zeros(0)
        if z.size >= 200:
            return round(-float(np.median(z)), 3) if -float(np.median(z)) > 0 else None
    return None


def tuned_profile(
    base: SensorProfile,
    model: SensorEffectModel,
    *,
    rotation_rate_hz: float | None = None,
    mount: float | None = None,
) -> SensorProfile:
    """``base`` with the model's beam table, columns, measured mount height and a ``tuned`` preset (the model)."""
    presets = dict(base.presets)
    presets["tuned"] = EffectSettings(model=model)
    return replace(
        base,
        channels=model.channels,
        vertical_angles_deg=tuple(model.elevations_deg),
        horizontal_resolution=int(model.columns),
        rotation_rate_hz=float(rotation_rate_hz if rotation_rate_hz is not None else base.rotation_rate_hz),
        mount_height=float(mount if mount is not None else base.mount_height),
        description=f"{base.description} -- tuned on {model.n_scans} real scans (simgap tune)".strip(" -"),
        presets=ReadOnlyMapping(presets),
        source="",
    )


def _search_world(profile: SensorProfile, frames: Sequence[Mapping[str, Any]], real_classes_only: bool) -> Any:
    """The search's scene randomizer: the embedded default street, with only the object classes the real frames
    hold when ``real_classes_only`` (None: the source's own default)."""
    if not real_classes_only:
        return None
    from ..backends.warp.scene import RandomizerConfig, SceneRandomizer
    from .far import ranges_and_classes

    held = {str(c) for f in frames for c in np.unique(ranges_and_classes(f)[1]) if c}
    cfg = RandomizerConfig()
    counts = {c: n for c, n in cfg.base_counts.items() if c in held}
    return SceneRandomizer(
        RandomizerConfig(base_counts=counts), sensor_height=profile.mount_height, max_range=profile.max_range
    )


def tune_profile(
    real: str | os.PathLike[str] | tuple[Sequence[RealScan], Sequence[dict[str, Any]]],
    sensor: str | os.PathLike[str] | SensorProfile,
    *,
    rotation_rate_hz: float | None = None,
    search: bool = True,
    synthetic_frames: int | None = None,
    evaluations: int | None = None,
    seed: int = 0,
    device: str | None = None,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    far_bound: bool = False,
    shift_runs: bool | None = None,
    shift_classes: Sequence[str] | None = None,
    gate_term: bool | None = None,
) -> tuple[SensorProfile, dict[str, Any]]:
    """Fit, search and build the tuned profile.

    Args:
        real: a directory of real scans, or ``(scans, frames)`` already loaded.
        sensor: the base sensor profile (name, path or profile): ranges, mount height, ``d_max``.
        rotation_rate_hz: the real sensor's spin rate written into the tuned profile (default: the base's).
        search: run the CMA-ES search of the far-range terms (needs the embedded Warp backend).
        synthetic_frames: clean embedded frames the search post-processes (default 8; 12 with ``gate_term``: on
            nuScenes at search seed 0, 8 gave 75 % of held-out frames accepted, 12 gave 80 % before the gate's
            plurality segment rule, 75 % with it; docs/backend.md "eighth pass").
        evaluations: CMA-ES objective evaluations (default 48; 96 with runs, whose search has one more dimension per
            shifted class).
        seed: search seed (scenes ``seed .. seed + synthetic_frames - 1``).
        device: Warp device of the clean renders.
        limit: read at most this many real scans.
        progress: optional callable receiving one-line status messages.
        far_bound: bound the searched far-range loss by the real scans' far returns per class
            (:mod:`simgap_ext.tune.far`).
        shift_runs: the searched drop shift drops whole runs of columns (``drop_run_columns`` measured on the real
            scans' multi-cell gaps of the shifted classes, a per-class share per return searched under the
            ring-continuity bound); False: it multiplies every return's isolated drop. Default: runs with
            ``far_bound`` (35 -> 70 % of held-out nuScenes frames accepted; with ``gate_term`` 65-80 % depending on
            the search seed and the gate's version, 75-80 % at seeds 0/100/200 with the noise tail per class and
            range bin, "ninth pass"), per return without it (80 % per return, 65 % with runs;
            docs/backend.md "Issue 10, seventh pass", "eighth pass").
        shift_classes: the classes the searched drop shift applies to (default: the gate's background classes
            and ``other``).
        gate_term: the search also scores every search frame's full gate decision (:mod:`simgap_ext.tune.margin`;
            the class tests the scene G does not see), and renders only the object classes the real scans hold
            (the gate rejects a class without real reference outright). Default: with ``far_bound``.

    Returns:
        (tuned profile, JSON-safe report).
    """
    say = progress or (lambda msg: None)
    if gate_term is None:
        gate_term = far_bound
    if synthetic_frames is None:
        synthetic_frames = 12 if gate_term else 8
    if synthetic_frames < 1:
        raise SimGapInputError(f"synthetic_frames must be >= 1, got {synthetic_frames}")
    base = sensor if isinstance(sensor, SensorProfile) else load_sensor_profile(sensor)
    if isinstance(real, str | os.PathLike):
        scans, frames = load_real_scans(real, base, limit=limit)
    else:
        scans, frames = list(real[0]), list(real[1])
    if not scans:
        raise SimGapInputError("no real scans to tune on")
    say(f"fitting on {len(scans)} real scan(s)")
    from ..gate.config import GateConfig

    shifted = tuple(shift_classes) if shift_classes is not None else (OTHER_CLASS, *GateConfig().background_classes)
    model = fit_effect_model(scans, run_classes=shifted)
    if shift_runs is None:
        shift_runs = far_bound
    if evaluations is None:
        evaluations = 96 if shift_runs else 48
    if evaluations < 1:
        raise SimGapInputError(f"evaluations must be >= 1, got {evaluations}")
    if not shift_runs:
        model = model.replace(drop_run_columns=0.0)
    mount = mount_height(frames)
    report: dict[str, Any] = {
        "scans": len(scans),
        "columns": model.columns,
        "classes": list(model.classes),
        "mount_height": mount,
        "drop_run_columns": model.drop_run_columns,
    }
    profile = tuned_profile(base, model, rotation_rate_hz=rotation_rate_hz, mount=mount)
    if search:
        from ..backends.warp.source import WarpLidarSource

        say(f"rendering {synthetic_frames} clean frame(s) for the CMA-ES search")
        src = WarpLidarSource(profile, "ideal", device=device, randomizer=_search_world(profile, frames, gate_term))
        clean = [src.render(seed=seed + i, frame_id=i) for i in range(synthetic_frames)]
        from .search import search_scene_terms

        model, rep = search_scene_terms(
            model,
            clean,
            frames,
            max_range=profile.max_range,
            evaluations=evaluations,
            seed=seed,
            device=device,
            far_bound=far_bound,
            shift_classes=shifted,
            gate_term=gate_term,
            progress=lambda n, best: say(f"CMA-ES {n}/{evaluations} evaluations, best objective {best:.3f}"),
        )
        report["search"] = rep
        profile = tuned_profile(base, model, rotation_rate_hz=rotation_rate_hz, mount=mount)
    return profile, report
