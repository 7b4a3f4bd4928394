"""Bird's-eye views of a few rejected attempts of a run beside their nearest real frame (a report section).

People judge a LiDAR gap by looking at it: :func:`bev_views` re-renders up to ``frames`` rejected attempts of a
``simgap generate`` run (manifest rows with decision ``rejected`` / ``rerandomized`` / ``held_back`` and a seed)
exactly as the run rendered them (warp backend; sensor, preset and rotation rate from the run's ``run.json``, scene
from the row's seed, attempt, frame id and focus classes) and draws each top-down (x/y within ``±radius`` m),
points coloured by class, the row's failing classes highlighted and the others faded, next to the nearest frame
among the real scans (up to ``max_real`` of them, evenly spread over the directory).

*Nearest* is the smallest Wasserstein-1 distance between the two frames' point range distributions
(``|p|``, metres, every point; :func:`scipy.stats.wasserstein_distance`): the scene-level statistic the gate's
``range`` component also looks at, cheap (O(N log N) per pair) and independent of how each dataset names classes.
"""

from __future__ import annotations

import logging
import os
import textwrap
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SimGapInputError

__all__ = ["BevView", "bev_views"]

_log = logging.getLogger(__name__)

_REJECTED = ("rejected", "rerandomized", "held_back")

#: Fixed colours of the taxonomy's head classes (the same on both sides and in every report).
_CLASS_COLORS = {
    "ground": "#8d6e63",
    "building": "#546e7a",
    "vegetation": "#43a047",
    "vehicle": "#1e88e5",
    "pedestrian": "#e53935",
    "cyclist": "#fb8c00",
    "pole": "#8e24aa",
    "static_object": "#00897b",
    "unlabeled": "#bdbdbd",
}
_FALLBACK = ("#6d4c41", "#d81b60", "#3949ab", "#7cb342", "#fdd835", "#00acc1", "#5e35b1", "#f4511e", "#c0ca33")


@dataclass
class BevView:
    """One rejected attempt and its picture.

    Attributes:
        row: the manifest row.
        frame: the re-rendered synthetic frame (the frame the gate saw).
        real_name: scan name of the nearest real frame, or None without real scans.
        real_frame: that frame, or None.
        distance: range W1 between the two frames, metres (None without real scans).
        image: ``data:image/png;base64,...`` of the figure.
    """

    row: Mapping[str, Any]
    frame: dict
    real_name: str | None
    real_frame: dict | None
    distance: float | None
    image: str = field(repr=False, default="")


def _color(name: str) -> str:
    # crc32, not hash(): the colour of a class must not change between runs (PYTHONHASHSEED)
    return _CLASS_COLORS.get(name) or _FALLBACK[zlib.crc32(name.encode("utf-8")) % len(_FALLBACK)]


def _head_labels(frame: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(N,) head-class name index per point and the (K,) names (unknown ids: ``unlabeled``)."""
    from ..tune.model import head_class

    ids = {int(k): head_class(v["class"]) for k, v in frame["info"]["idToLabels"].items()}
    sem = np.asarray(frame["info"]["pointSemantic"]).astype(np.int64, copy=False).ravel()
    uniq, inv = np.unique(sem, return_inverse=True)
    keys = sorted({ids.get(int(u), "unlabeled") for u in uniq.tolist()})
    lut = np.array([keys.index(ids.get(int(u), "unlabeled")) for u in uniq.tolist()], dtype=np.int64)
    return lut[inv.ravel()], np.array(keys, dtype=object)


def _ranges(frame: Mapping[str, Any]) -> np.ndarray:
    pts = np.asarray(frame["data"], dtype=np.float64).reshape(-1, 3)
    r = np.linalg.norm(pts, axis=1)
    return r[np.isfinite(r)]


def _nearest(frame: Mapping[str, Any], real: Sequence[tuple[str, dict]]) -> tuple[int, float]:
    """Index in ``real`` of the frame with the smallest range W1 to ``frame`` and that distance (first on ties)."""
    from scipy.stats import wasserstein_distance

    r = _ranges(frame)
    best, best_d = -1, float("inf")
    for i, (_, fr) in enumerate(real):
        rr = _ranges(fr)
        d = float(wasserstein_distance(r, rr)) if r.size and rr.size else float("inf")
        if d < best_d:
            best, best_d = i, d
    return best, best_d


def _draw(ax: Any, frame: Mapping[str, Any], failing: set[str], radius: float, title: str) -> set[str]:
    """Top-down scatter of ``frame`` on ``ax``; returns the class names drawn."""
    from ..tune.model import head_class

    pts = np.asarray(frame["data"], dtype=np.float64).reshape(-1, 3)
    idx, names = _head_labels(frame)
    inside = (np.abs(pts[:, 0]) <= radius) & (np.abs(pts[:, 1]) <= radius)
    hot = {head_class(c) for c in failing} | set(failing)
    drawn = set()
    # faded classes first so that the highlighted ones are drawn on top
    for k in sorted(range(len(names)), key=lambda k: names[k] in hot):
        m = inside & (idx == k)
        if not m.any():
            continue
        name = str(names[k])
        is_hot = name in hot or not hot
        ax.scatter(
            pts[m, 0], pts[m, 1], s=1.2 if is_hot else 0.3, c=_color(name), alpha=0.9 if is_hot else 0.12,
            linewidths=0, rasterized=True,
        )  # fmt: skip
        drawn.add(name)
    ax.plot([0], [0], marker="^", color="black", markersize=6)  # the sensor
    ax.set_xlim(-radius, radius)
    ax.set_ylim(-radius, radius)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title, fontsize=9)
    return drawn


def _short_reasons(reasons: Sequence[str], keep: int = 3) -> str:
    # "class ground: G=0.536 < 0.75; worst: density ..." -> "class ground: G=0.536 < 0.75"
    heads = [str(r).split(";", 1)[0] for r in reasons]
    text = ", ".join(heads[:keep]) + (f" (+{len(heads) - keep} more)" if len(heads) > keep else "")
    return text or "no reason recorded"


def _figure(view: BevView, radius: float) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from ..plots import png_data_uri, use_agg

    use_agg()
    row = view.row
    failing = {str(c) for c in row.get("failing_classes") or ()}
    n = 1 if view.real_frame is None else 2
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 5.6), squeeze=False)
    drawn = _draw(axes[0, 0], view.frame, failing, radius, f"synthetic ({row.get('sensor')})")
    if view.real_frame is not None:
        drawn |= _draw(
            axes[0, 1],
            view.real_frame,
            failing,
            radius,
            f"nearest real: {view.real_name} (range W1 {view.distance:.2f} m)",
        )
    head = f"frame {row.get('frame_id')} / attempt {row.get('attempt')}: {row.get('decision')}"
    fig.suptitle(head + "\n" + textwrap.fill(_short_reasons(row.get("reasons") or ()), 110), fontsize=9)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=_color(c), label=c + (" (failing)" if c in failing else ""))
        for c in sorted(drawn)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6) or 1, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return png_data_uri(fig, dpi=80)


def _picked(rows: Sequence[Mapping[str, Any]], n: int) -> list[Mapping[str, Any]]:
    """Up to ``n`` rejected synthetic attempts with a seed, evenly spread over the run (not only its start)."""
    cand = [
        r
        for r in rows
        if r.get("domain") == "synthetic" and r.get("decision") in _REJECTED and r.get("seed") is not None
    ]
    if len(cand) <= n:
        return cand
    return [cand[int(i)] for i in np.linspace(0, len(cand) - 1, n).round()]


def bev_views(
    rows: Sequence[Mapping[str, Any]],
    run_config: Mapping[str, Any] | None,
    *,
    real: str | os.PathLike[str] | None = None,
    frames: int = 3,
    radius: float = 50.0,
    max_real: int = 64,
    device: str | None = "cpu",
) -> list[BevView] | str:
    """Bird's-eye views of up to ``frames`` rejected attempts beside their nearest real frame (module docstring).

    Args:
        rows: the run's manifest rows.
        run_config: the run's ``run.json`` (``backend``, ``sensor_profile``, ``preset``, ``rotation_rate_hz``,
            ``real``), or None.
        real: real scans to pick the nearest frame from (default: the run's ``real`` reference directory, when it
            still exists); without either, each view shows the synthetic frame alone.
        frames: rejected attempts drawn (>= 1).
        radius: half side of the square drawn around the sensor, metres (> 0).
        max_real: real scans compared at most (evenly spread over ``real``).
        device: Warp device of the re-render.

    Returns:
        The views, or a one-line reason why there are none (replicator run, nothing rejected).

    Raises:
        SimGapInputError: bad ``frames`` / ``radius`` / ``max_real``, an unreadable real scan, a re-render whose class
            point counts differ from the manifest row's (the run's scene generator changed since).
    """
    from ..backends import get_scene_source
    from .effect_gap import _real_named

    if frames < 1:
        raise SimGapInputError(f"bird's-eye frames must be >= 1, got {frames}")
    if not (np.isfinite(radius) and radius > 0):
        raise SimGapInputError(f"bird's-eye radius must be a positive number of metres, got {radius}")
    if max_real < 1:
        raise SimGapInputError(f"max_real must be >= 1, got {max_real}")
    cfg = dict(run_config or {})
    backend = cfg.get("backend", "warp")
    if backend != "warp":
        return f"the run used the {backend} backend; only warp runs can be re-rendered here"
    picked = _picked(rows, frames)
    if not picked:
        return "no rejected attempt with a seed in the manifest"
    sensor = cfg.get("sensor_profile") or cfg.get("sensor") or picked[0].get("sensor")
    if not sensor:
        return "run.json names no sensor; the attempts cannot be re-rendered"
    extra = {"rotation_rate_hz": cfg["rotation_rate_hz"]} if cfg.get("rotation_rate_hz") else {}
    source = get_scene_source("warp", sensor=sensor, preset=cfg.get("preset") or "realistic", device=device, **extra)
    if real is not None and not Path(real).exists():
        raise SimGapInputError(f"{real}: real scans for the bird's-eye views do not exist")
    real_dir = Path(real) if real is not None else (Path(cfg["real"]) if cfg.get("real") else None)
    if real_dir is not None and not real_dir.exists():  # a moved run: its reference is elsewhere now
        _log.warning("%s (the run's reference) does not exist; drawing the synthetic frames alone", real_dir)
        real_dir = None
    reals = _real_named(real_dir, max_real, str(picked[0].get("sensor") or sensor)) if real_dir is not None else []
    views = []
    for row in picked:
        frame = source.render(
            seed=int(row["seed"]),
            focus_classes=list(row.get("focus_classes") or ()),
            frame_id=int(row.get("frame_id") or 0),
            attempt=int(row.get("attempt") or 0),
        )
        _check_same(frame, row)
        view = BevView(row=row, frame=frame, real_name=None, real_frame=None, distance=None)
        if reals:
            i, d = _nearest(frame, reals)
            if i >= 0:
                view.real_name, view.real_frame, view.distance = reals[i][0], reals[i][1], d
        view.image = _figure(view, radius)
        views.append(view)
    return views


def _check_same(frame: Mapping[str, Any], row: Mapping[str, Any]) -> None:
    """Raise unless ``frame`` has the row's class point counts (a different frame would mislead the reader)."""
    want = {str(k): int(v) for k, v in (row.get("class_points") or {}).items() if int(v) > 0}
    if not want:
        return
    ids = {int(k): str(v["class"]) for k, v in frame["info"]["idToLabels"].items()}
    sem, counts = np.unique(np.asarray(frame["info"]["pointSemantic"]).ravel(), return_counts=True)
    got: dict[str, int] = {}
    for s, c in zip(sem.tolist(), counts.tolist(), strict=True):
        name = ids.get(int(s), "unlabeled")
        got[name] = got.get(name, 0) + int(c)
    got = {k: v for k, v in got.items() if k in want or k not in ("unlabeled", "unlabelled")}
    if got != want:
        raise SimGapInputError(
            f"frame {row.get('frame_id')} attempt {row.get('attempt')}: the re-render differs from the run's "
            "(class point counts); was the run made with another SimGap version?"
        )
