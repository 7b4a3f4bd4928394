"""MC-Dropout active learning for LiDAR segmentation on SimGap manifests (docs/active_learning.md).

The heuristics (:mod:`.heuristics`) are plain NumPy and imported eagerly; everything that needs torch (model,
MC-Dropout patch, training, loop, backbone export) is imported on first use, so that the rest of SimGap works
without torch installed.

Modules: :mod:`.heuristics` (uncertainty scores), :mod:`.projection` (range image), :mod:`.model` (RangeSegNet),
:mod:`.mc_dropout` (the reversible patch), :mod:`.dataset` (samples, classes, scan cache), :mod:`.training`
(train/evaluate), :mod:`.scoring` (pool scores), :mod:`.selection` (scans and regions), :mod:`.oracle` (queue
and oracles), :mod:`.loop` (the loop), :mod:`.backbone` (TorchScript encoder for the gate).
"""

from __future__ import annotations

import importlib
from typing import Any

from .heuristics import HEURISTICS, bald, entropy, get_heuristic, margin, random_scores, reduce_scores, variation_ratio
from .selection import Region, region_scores, select_regions, select_top, voxel_regions

__all__ = [
    "HEURISTICS",
    "bald",
    "entropy",
    "get_heuristic",
    "margin",
    "random_scores",
    "reduce_scores",
    "variation_ratio",
    "Region",
    "region_scores",
    "select_regions",
    "select_top",
    "voxel_regions",
    # lazily imported (torch):
    "RangeSegNet",
    "build_model",
    "mc_dropout",
    "mc_predict",
    "TrainConfig",
    "SegmentationMetrics",
    "train_model",
    "evaluate",
    "train_and_evaluate",
    "ActiveLearningConfig",
    "run_active_learning",
    "Sample",
    "ClassVocabulary",
    "ScanCache",
    "load_samples",
    "export_backbone",
]

_LAZY = {
    "RangeSegNet": "model",
    "build_model": "model",
    "mc_dropout": "mc_dropout",
    "mc_predict": "mc_dropout",
    "TrainConfig": "training",
    "SegmentationMetrics": "training",
    "train_model": "training",
    "evaluate": "training",
    "train_and_evaluate": "training",
    "ActiveLearningConfig": "loop",
    "run_active_learning": "loop",
    "Sample": "dataset",
    "ClassVocabulary": "dataset",
    "ScanCache": "dataset",
    "load_samples": "dataset",
    "export_backbone": "backbone",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
