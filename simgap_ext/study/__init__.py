"""Composition study: does (gated) synthetic data help on real scans, and at which real:synthetic ratio?

:mod:`.sources` (pools, shared class vocabulary), :mod:`.composition` (fixed-size stratified mixes),
:mod:`.runner` (resumable trainings; needs torch only when it trains), :mod:`.report` (metrics over seeds, CSV,
HTML). See docs/study.md.
"""

from __future__ import annotations

from .composition import FixedMix, Ratio, fixed_size_mix, max_total, parse_ratios
from .report import Cell, aggregate, unit_metrics, write_report
from .runner import ARMS, StudyConfig, StudyPlan, StudyPools, Unit, plan_study, plan_units, run_study
from .sources import StudyScanCache, StudyVocabulary, list_pool, pool_rows, split_stretches

__all__ = [
    "ARMS",
    "Cell",
    "FixedMix",
    "Ratio",
    "StudyConfig",
    "StudyPlan",
    "StudyPools",
    "StudyScanCache",
    "StudyVocabulary",
    "Unit",
    "aggregate",
    "fixed_size_mix",
    "list_pool",
    "max_total",
    "parse_ratios",
    "plan_study",
    "plan_units",
    "pool_rows",
    "run_study",
    "split_stretches",
    "unit_metrics",
    "write_report",
]
