"""CMA-ES search of the model terms a neighbour test cannot see, on the gate's scene statistics.

A missing return between two returning neighbours is visible in a real range image; a surface that returns
nothing at all (far ground, dark cars far away) is not. Three terms therefore cannot be read off real scans:
the far-range loss (``far_range50``, ``far_width``) and a global shift of the drop logit (``drop_offset``). They
are searched with CMA-ES (the ``cma`` package) so that clean synthetic frames, post-processed with the model,
match the real scans' scene statistics: range W1 (metres) + elevation W1 (degrees) + 10 x per-beam return-ratio
L1 (:mod:`.stats`). Every evaluation reuses the same synthetic frames and post-process seeds, so the objective
is deterministic and the search is reproducible from its seed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from .apply import apply_sensor_effects
from .model import SensorEffectModel
from .stats import compare, scene_stats, summarize

__all__ = ["search_scene_terms", "objective"]

log = logging.getLogger(__name__)

_BEAM_WEIGHT = 10.0


def objective(distances: Mapping[str, float]) -> float:
    """The scalar the search minimises: ``range_w1 + elevation_w1 + 10 * beam_ratio_l1``."""
    return distances["range_w1"] + distances["elevation_w1"] + _BEAM_WEIGHT * distances["beam_ratio_l1"]


def _decode(x: np.ndarray, max_range: float) -> dict[str, float]:
    # far_range50 in (10 m, 1.5 max_range) through a logistic; width and offset unbounded / log-scaled
    lo, hi = 10.0, 1.5 * max_range
    return {
        "drop_offset": float(np.clip(x[0], -4.0, 4.0)),
        "far_range50": float(lo + (hi - lo) / (1.0 + math.exp(-float(x[1])))),
        "far_width": float(math.exp(np.clip(x[2], math.log(0.5), math.log(60.0)))),
    }


def search_scene_terms(
    model: SensorEffectModel,
    clean_frames: Sequence[Mapping[str, Any]],
    real_frames: Sequence[Mapping[str, Any]],
    *,
    max_range: float,
    evaluations: int = 48,
    seed: int = 0,
    progress: Any = None,
) -> tuple[SensorEffectModel, dict[str, Any]]:
    """Search ``drop_offset``, ``far_range50`` and ``far_width`` with CMA-ES.

    Args:
        model: the fitted model (its other tables stay fixed).
        clean_frames: synthetic frames without sensor effects (sensor frame).
        real_frames: real frames of the same sensor (sensor frame).
        max_range: the sensor's max range, metres (bounds ``far_range50``).
        evaluations: objective evaluations (CMA-ES population 8).
        seed: CMA-ES seed and post-process seed base.
        progress: optional callable ``progress(n_done, best)`` after each generation.

    Returns:
        (model with the searched terms, report dict: start/best objective and distances, evaluations, terms).

    Raises:
        SimGapInputError: no frames on either side.
    """
    import cma

    if not clean_frames or not real_frames:
        raise SimGapInputError("the search needs clean synthetic frames and real frames")
    el, cols = model.elevations_deg, model.columns
    real = summarize([scene_stats(f, el, cols) for f in real_frames])

    def evaluate(m: SensorEffectModel) -> tuple[float, dict[str, float]]:
        syn = [apply_sensor_effects(f, m, seed + i) for i, f in enumerate(clean_frames)]
        d = compare(real, summarize([scene_stats(f, el, cols) for f in syn]))
        return objective(d), d

    start_val, start_d = evaluate(model.replace(drop_offset=0.0, far_range50=0.0))
    x0 = np.array([0.0, 0.0, math.log(8.0)])
    es = cma.CMAEvolutionStrategy(
        x0, 1.0, {"seed": int(seed) + 1, "popsize": 8, "maxfevals": int(evaluations), "verbose": -9}
    )
    best = (start_val, start_d, {"drop_offset": 0.0, "far_range50": 0.0, "far_width": model.far_width})
    n = 0
    while not es.stop() and n < evaluations:
        xs = es.ask()
        vals = []
        for x in xs:
            terms = _decode(np.asarray(x), max_range)
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
