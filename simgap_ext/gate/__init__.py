"""The SimGap frame gate: per-frame DoGSS-PCL decisions, reference bank, semantic quarantine, tail classes.

Public API (see ``docs/gate.md``):

- :class:`GateConfig` / :func:`load_gate_config` - thresholds and weights from ``config/gate.toml``;
- :class:`ReferenceBank` - real instance exemplars, embeddings and scene statistics, calibrated ``d_max``;
- :class:`FrameGate` - ``evaluate(frame) -> GateDecision`` with per-class :class:`ClassDecision`;
- :class:`SemanticQuarantine` - per-class JS over a rolling window;
- :func:`identify_tail_classes` / :func:`compute_synthetic_generation_budget` - the tail and its budget.
"""

from __future__ import annotations

from .bank import ReferenceBank
from .config import GateConfig, default_gate_config_path, load_gate_config
from .decision import ClassDecision, GateDecision
from .gate import FrameGate
from .quarantine import QuarantineState, SemanticQuarantine
from .tail import BudgetRow, compute_synthetic_generation_budget, identify_tail_classes

__all__ = [
    "FrameGate",
    "ReferenceBank",
    "GateConfig",
    "load_gate_config",
    "default_gate_config_path",
    "ClassDecision",
    "GateDecision",
    "QuarantineState",
    "SemanticQuarantine",
    "BudgetRow",
    "identify_tail_classes",
    "compute_synthetic_generation_budget",
]
