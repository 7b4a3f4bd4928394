"""How far a gate decision is from flipping: the search term that lets the CMA-ES search see the gate's class tests.

The search's scene objective (``1 - mean scene G``) cannot see what the gate decides per class: on nuScenes the
bounded search (``--far-bound``) left 4 of 20 held-out frames rejected on vegetation's joint deviation test alone
(docs/backend.md, "Issue 10, seventh pass"). The gate decides by thresholds on scores that all live in [0, 1]: the
scene G against ``scene_threshold``, each judged class's G against ``g_threshold``, every weighted component (with
``strict_components``) and every test component (``joint``, ``segments``, ``hidden``, scored so that < 0.5 is a
failure) against :data:`~simgap_ext.gate.gate.STRICT_FLOOR`. :func:`gate_margin` is the smallest of those
differences: >= 0 exactly when none of the scored tests fails, and it moves continuously with the scores, which
the share of accepted frames (steps of ``1 / frames``) does not. :func:`gate_shortfall` turns the margins of the
search frames into a term on the scale of ``1 - G``: the mean clipped hinge ``min(cap, max(0, target - margin))``, a
ramp version of the share of rejected frames. A frame already accepted with room to spare costs nothing, so the
search cannot buy scene G with a failing class; the positive ``target`` asks for some room, since the search
frames are few and the held-out frames are judged by another bank. The cap stops a frame the sensor terms cannot
rescue (a rendered facade whose segments look like ground, a world property) from steering the search: beyond
``target - cap`` it costs the same whatever the terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["gate_margin", "gate_shortfall", "GATE_MARGIN", "GATE_CAP", "TEST_COMPONENTS"]

#: Room the search asks of every test (score units): a frame whose smallest margin is below this costs the gap.
GATE_MARGIN = 0.05
#: Most a frame costs (score units): a failure by more than ``GATE_CAP - GATE_MARGIN`` (0.05, i.e. a joint test
#: at 1.1x its bound) costs the same as a hopeless one.
GATE_CAP = 0.10
#: Per-class components that are tests (weight 0 in G), failing below ``STRICT_FLOOR`` whatever the weights.
TEST_COMPONENTS: tuple[str, ...] = ("joint", "segments", "hidden")
#: Margin of a decision rejected by a test the scores do not carry (an insane frame, a class without reference).
_UNSCORED_FAILURE = -1.0


def gate_margin(decision: Any, config: Any) -> float:
    """The smallest margin between a gate decision's scores and the thresholds they are held to.

    Args:
        decision: a :class:`~simgap_ext.gate.decision.GateDecision` (``scene_g``, ``per_class`` with each class's
            ``g`` and ``components``, ``accepted``).
        config: the :class:`~simgap_ext.gate.config.GateConfig` the decision was made with.

    Returns:
        ``min`` over ``scene_g - scene_threshold``, each class's ``g - g_threshold`` (classes with a G), each
        weighted component's ``score - STRICT_FLOOR`` (with ``strict_components``) and each test component's
        ``score - STRICT_FLOOR``; a decision rejected although every one of those is >= 0 (a failure without a
        score) gives -1.

    Raises:
        ValueError: a non-finite score.
    """
    from ..gate.gate import STRICT_FLOOR

    margins = [float(decision.scene_g) - float(config.scene_threshold)]
    if config.strict_components:
        margins += [
            float(s) - STRICT_FLOOR
            for n, s in decision.scene_components.items()
            if float(config.scene_weights.get(n, 0.0)) > 0
        ]
    for dec in decision.per_class.values():
        if dec.g is not None:
            margins.append(float(dec.g) - float(config.g_threshold))
        for name, score in dec.components.items():
            if name in TEST_COMPONENTS or (
                config.strict_components and float(config.object_weights.get(name, 0.0)) > 0 and dec.g is not None
            ):
                margins.append(float(score) - STRICT_FLOOR)
    m = np.asarray(margins, dtype=np.float64)
    if not np.isfinite(m).all():
        raise ValueError(f"gate decision has a non-finite score: {margins}")
    worst = float(m.min())
    if not decision.accepted and worst >= 0.0:
        return _UNSCORED_FAILURE
    return worst


def gate_shortfall(margins: Sequence[float], target: float = GATE_MARGIN, cap: float = GATE_CAP) -> float:
    """Mean over frames of ``min(cap, max(0, target - margin))``: the search term of the gate's decisions.

    Args:
        margins: (F,) :func:`gate_margin` of each search frame, ``F >= 1``.
        target: the margin asked of every frame (>= 0).
        cap: the most one frame costs (> 0; ``inf``: a plain hinge).

    Raises:
        ValueError: no margins, a non-finite margin, a negative target or a cap <= 0.
    """
    m = np.asarray(margins, dtype=np.float64).reshape(-1)
    if m.size == 0 or not np.isfinite(m).all():
        raise ValueError(f"need at least one finite margin, got {m.tolist()}")
    if not (target >= 0 and np.isfinite(target)):
        raise ValueError(f"target must be finite and >= 0, got {target}")
    if not cap > 0:
        raise ValueError(f"cap must be > 0, got {cap}")
    return float(np.mean(np.minimum(cap, np.maximum(0.0, target - m))))
