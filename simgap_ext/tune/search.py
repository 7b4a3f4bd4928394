"""CMA-ES search of the model terms a neighbour test cannot see, on the gate's scene statistics.

A missing return between two returning neighbours is visible in a real range image; a surface that returns
nothing at all (far ground, dark cars far away) is not. Three terms therefore cannot be read off real scans:
the far-range loss (``far_range50``, ``far_width``) and a shift of the background classes' drop logit
(``drop_offset``, ``drop_offset_classes``: ground, building, vegetation, pole and ``other``; object classes keep the
isolated drop the neighbour test measured on them). They
are searched with CMA-ES (the ``cma`` package) so that clean synthetic frames, post-processed with the model,
look like the real scans to the gate itself: the objective is ``1 - mean scene G`` of those frames, scored by a
:class:`~simgap_ext.gate.FrameGate` over a :class:`~simgap_ext.gate.ReferenceBank` of the real fit scans
(range W1, per-beam return ratio and roughness against the bank, each normalised by its real-vs-real
calibrated ``d_max``), plus ``0.02 x`` the elevation W1 in degrees (which the gate does not see) so that the
search cannot trade elevations for ranges. With ``far_bound`` it adds the far-loss shortfall of :mod:`.far`: the
far-range loss may remove a class's far returns only down to the share the real fit scans show (the gate's mean
scene G rewards a loss that removes the rendered world's excess of far facades, a world difference, not a sensor
one). Off by default: with it the search moves the same removal into the drop shift, and on nuScenes the gate
then accepts fewer held-out frames (docs/backend.md, "Issue 10, sixth pass": 35 % with the shift per return, 70 %
per run of columns with the continuity bound below, "seventh pass"; with the gate term too 65-80 % depending on the
search seed and the gate's version, "eighth pass", 75-80 % with the noise tail per class and range bin, "ninth pass";
80-85 % unbounded).
When the model drops the shift per run of columns (``drop_run_columns`` > 0, :mod:`.apply`), the search also sets
``drop_offset_isolated``, the share of the shift each shifted class still takes per return (one dimension per class
whose ring continuity the fit scans measure on at least ``MIN_CONTINUITY_POINTS`` points; the others keep 1), and
adds the continuity shortfall: how far those classes' ring continuity (the gate's own statistic, which the scene G
does not see) falls below the fit scans'. A per-return shift lowers it (on nuScenes vegetation fell to 0.80 against
0.92 real at +2.2 logits); runs keep it.
With ``gate_term`` every search frame is also decided by the full gate over the fit scans' bank and the mean
clipped shortfall of its score margins (:mod:`.margin`) enters the objective: the class tests the scene G cannot
see (vegetation's joint deviation, which rejected 4 of 20 held-out nuScenes frames after the bounded search;
docs/backend.md "Issue 10, eighth pass").
Every evaluation reuses the same synthetic frames and post-process seeds, so the objective is deterministic and
the search is reproducible from its seed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from .apply import apply_sensor_effects
from .far import far_loss_shortfall, far_shares, prepare_clean
from .margin import gate_margin, gate_shortfall
from .model import OTHER_CLASS, SensorEffectModel, head_class
from .stats import compare, scene_stats, summarize

__all__ = ["search_scene_terms", "objective", "continuity", "continuity_shortfall", "MIN_CONTINUITY_POINTS"]

log = logging.getLogger(__name__)

_ELEVATION_WEIGHT = 0.02


def objective(
    scene_g: Sequence[float],
    distances: Mapping[str, float],
    far_shortfall: float = 0.0,
    continuity_shortfall: float = 0.0,
    gate_shortfall: float = 0.0,
) -> float:
    """The scalar the search minimises: ``1 - mean(scene G) + 0.02 * elevation_w1`` (degrees) ``+ far_shortfall
    + continuity_shortfall + gate_shortfall``.

    The shortfall (:func:`~simgap_ext.tune.far.far_loss_shortfall`) is a sum of shares of returns, on the scale of
    ``1 - G``: any far loss the real scans contradict costs more than the few hundredths of G it can win. The
    continuity shortfall (:func:`continuity_shortfall`) is a sum of shares of points too; the gate shortfall
    (:func:`~simgap_ext.tune.margin.gate_shortfall`) a mean of score margins.
    """
    if far_shortfall < 0 or continuity_shortfall < 0 or gate_shortfall < 0:
        raise ValueError(
            "far_shortfall, continuity_shortfall and gate_shortfall must be >= 0, got "
            f"{far_shortfall}, {continuity_shortfall}, {gate_shortfall}"
        )
    return (
        1.0
        - float(np.mean(scene_g))
        + _ELEVATION_WEIGHT * distances["elevation_w1"]
        + float(far_shortfall)
        + float(continuity_shortfall)
        + float(gate_shortfall)
    )


def _decode(x: np.ndarray, max_range: float, share_of: Sequence[int] = (), n_classes: int = 0) -> dict[str, Any]:
    # far_range50 in (10 m, 1.5 max_range) through a logistic; width and offset unbounded / log-scaled; with runs,
    # x[3 + j] is the per-return share of the shift of model class share_of[j], in (0, 1) through a logistic (the
    # other classes: 1, per return as before runs existed)
    lo, hi = 10.0, 1.5 * max_range
    terms: dict[str, Any] = {
        "drop_offset": float(np.clip(x[0], -4.0, 4.0)),
        "far_range50": float(lo + (hi - lo) / (1.0 + math.exp(-float(x[1])))),
        "far_width": float(math.exp(np.clip(x[2], math.log(0.5), math.log(60.0)))),
    }
    if share_of:
        share = np.ones(n_classes)
        share[list(share_of)] = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x[3:], dtype=np.float64), -30.0, 30.0)))
        terms["drop_offset_isolated"] = tuple(float(v) for v in share)
    return terms


#: Real returns a shifted class needs (pooled over the fit scans) before its ring continuity enters the objective.
MIN_CONTINUITY_POINTS = 2000


def continuity(stats: Sequence[Any], classes: Sequence[str]) -> dict[str, tuple[float, int]]:
    """Pooled ring continuity of each class: ``{class: (share of its points with a ring neighbour, points)}``.

    Args:
        stats: the gate's :class:`~simgap_ext.gate.frame_stats.FrameStats` of some frames.
        classes: class names (scene level); absent classes are left out.
    """
    out: dict[str, tuple[float, int]] = {}
    for c in classes:
        with_neighbour, total = 0.0, 0
        for st in stats:
            d = st.class_density(c)
            if d is not None:
                n = int(st.class_points.get(c, 0))
                with_neighbour += d * n
                total += n
        if total:
            out[c] = (with_neighbour / total, total)
    return out


def continuity_shortfall(
    syn: Mapping[str, tuple[float, int]], real: Mapping[str, tuple[float, int]], min_points: int = MIN_CONTINUITY_POINTS
) -> float:
    """How far the classes' ring continuity falls below the real scans': the sum over the classes of ``real`` with at
    least ``min_points`` of ``max(0, continuity(real) - continuity(syn))`` (a class above real costs nothing: the
    rendered world's own surfaces may be more continuous, which no sensor term should hide)."""
    return float(
        sum(max(0.0, v - syn[c][0]) for c, (v, n) in real.items() if n >= min_points and c in syn and syn[c][1] > 0)
    )


def search_scene_terms(
    model: SensorEffectModel,
    clean_frames: Sequence[Mapping[str, Any]],
    real_frames: Sequence[Mapping[str, Any]],
    *,
    max_range: float,
    evaluations: int = 48,
    seed: int = 0,
    progress: Any = None,
    device: str | None = None,
    far_bound: bool = False,
    shift_classes: Sequence[str] | None = None,
    gate_term: bool = False,
) -> tuple[SensorEffectModel, dict[str, Any]]:
    """Search ``drop_offset``, ``far_range50`` and ``far_width`` (and, for a model with ``drop_run_columns`` > 0,
    the per-class ``drop_offset_isolated``) with CMA-ES.

    Args:
        model: the fitted model (its other tables stay fixed).
        clean_frames: synthetic frames without sensor effects (sensor frame).
        real_frames: real frames of the same sensor (sensor frame).
        max_range: the sensor's max range, metres (bounds ``far_range50``).
        evaluations: objective evaluations (CMA-ES population 8).
        seed: CMA-ES seed and post-process seed base.
        progress: optional callable ``progress(n_done, best)`` after each generation.
        device: Warp device of the gate's nearest-neighbour searches.
        far_bound: add the far-loss shortfall (:func:`~simgap_ext.tune.far.far_loss_shortfall`) to the objective.
        shift_classes: the classes ``drop_offset`` applies to (default: the gate's background classes and
            ``other``); names without a table in the model are ignored.
        gate_term: add the gate shortfall (:mod:`.margin`): every search frame is decided by the full gate over
            the fit scans' bank and the margins of its scores to the thresholds enter the objective, so that the
            search sees the class tests (vegetation's joint deviation) the scene G does not.

    Returns:
        (model with the searched terms, report dict: start/best objective and distances, evaluations, terms).

    Raises:
        SimGapInputError: no frames on either side.
    """
    import cma

    if not clean_frames or not real_frames:
        raise SimGapInputError("the search needs clean synthetic frames and real frames")
    from ..data.taxonomy import roll_up_frame
    from ..gate import FrameGate, GateConfig, ReferenceBank
    from ..gate.geometric import scene_components, weighted_g

    el, cols = model.elevations_deg, model.columns
    real = summarize([scene_stats(f, el, cols) for f in real_frames])
    cfg = GateConfig()
    # The shift applies to the background classes only: the isolated drop of object classes is what the neighbour
    # test measures where they are seen, and a shift fitted to the scene's return ratios (far ground, sky gaps,
    # glass) multiplied it (docs/backend.md "Fidelity": vehicle ring continuity 0.85 against 0.95-0.97 real).
    shifted = set(shift_classes) if shift_classes is not None else {OTHER_CLASS, *cfg.background_classes}
    model = model.replace(drop_offset_classes=tuple(c for c in model.classes if c in shifted))
    # The bank rolls the real classes up onto the scene vocabulary the renders use (car -> vehicle).
    bank = ReferenceBank.build(list(real_frames), config=cfg, device=device, seed=seed)
    gate = FrameGate(bank, cfg, device=device, quarantine=False)
    real_far = far_shares(list(real_frames))
    clean_far = prepare_clean(list(clean_frames), real_far.ranges)
    # With runs the shift's split between runs and single returns is searched, judged by the shifted classes' ring
    # continuity against the fit scans' (the gate's own statistic; the scene G cannot see it).
    runs = model.drop_run_columns > 0
    scene_classes = sorted({head_class(c) for c in model.drop_offset_classes} - {OTHER_CLASS})
    # real classes rolled up onto the scene vocabulary (road -> ground) as the bank does
    real_cont = continuity([gate.stats(roll_up_frame(f)) for f in real_frames], scene_classes) if runs else {}
    # one searched per-return share per shifted class whose continuity the real scans measure
    share_of = [
        i
        for i, c in enumerate(model.classes)
        if runs
        and c in model.drop_offset_classes
        and real_cont.get(head_class(c), (0.0, 0))[1] >= MIN_CONTINUITY_POINTS
    ]

    def evaluate(m: SensorEffectModel) -> tuple[float, dict[str, float]]:
        syn = [apply_sensor_effects(f, m, seed + i) for i, f in enumerate(clean_frames)]
        d = compare(real, summarize([scene_stats(f, el, cols) for f in syn]))
        st = [gate.stats(f) for f in syn]
        gs = [weighted_g(scene_components(s, bank), cfg.scene_weights) for s in st]
        if any(g is None for g in gs):
            raise SimGapInputError("the gate could not score the scene statistics (bank without calibration)")
        d["scene_g"] = float(np.mean(gs))
        d["far_shortfall"] = far_loss_shortfall(clean_far, real_far, m.far_range50, m.far_width)
        d["continuity_shortfall"] = continuity_shortfall(continuity(st, scene_classes), real_cont) if runs else 0.0
        if gate_term:
            decisions = [gate.evaluate(f, update_quarantine=False, stats=s) for f, s in zip(syn, st, strict=True)]
            margins = [gate_margin(dec, cfg) for dec in decisions]
            d["gate_shortfall"] = gate_shortfall(margins)
            d["gate_accepted"] = float(np.mean([dec.accepted for dec in decisions]))
        return (
            objective(
                gs, d, d["far_shortfall"] if far_bound else 0.0, d["continuity_shortfall"], d.get("gate_shortfall", 0.0)
            ),
            d,
        )

    start_val, start_d = evaluate(model.replace(drop_offset=0.0, far_range50=0.0))
    # shares start near 1 (the shift per return, as before runs existed): the continuity bound lowers them
    x0 = np.array([0.0, 0.0, math.log(8.0)] + [3.0] * len(share_of))
    es = cma.CMAEvolutionStrategy(
        x0, 1.0, {"seed": int(seed) + 1, "popsize": 8, "maxfevals": int(evaluations), "verbose": -9}
    )
    best = (start_val, start_d, {"drop_offset": 0.0, "far_range50": 0.0, "far_width": model.far_width})
    if share_of:
        best[2]["drop_offset_isolated"] = _decode(x0, max_range, share_of, len(model.classes))["drop_offset_isolated"]
    n = 0
    while not es.stop() and n < evaluations:
        xs = es.ask()
        vals = []
        for x in xs:
            terms = _decode(np.asarray(x), max_range, share_of, len(model.classes))
            v, d = evaluate(model.replace(**terms))
            vals.append(v)
            n += 1
            if v < best[0]:
                best = (v, d, terms)
        es.tell(xs, vals)
        if progress is not None:
            progress(n, best[0])
    log.info("CMA-ES: objective %.3f -> %.3f in %d evaluations", start_val, best[0], n)
    report = {
        "objective_start": start_val,
        "objective_best": best[0],
        "distances_start": start_d,
        "distances_best": best[1],
        "evaluations": n,
        "terms": best[2],
    }
    return model.replace(**best[2]), report
