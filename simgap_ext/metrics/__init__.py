"""DoGSS-PCL metric core: exact nearest neighbours / Chamfer (KD-tree on CPU, NVIDIA Warp on CUDA), DCD, EMD,
JS divergence, semantic alignment, scores, calibration and the frozen embedding backbone.

Everything here is plain Python (NumPy, SciPy, Warp); nothing imports omni/carb. See docs/metrics.md.
"""

from __future__ import annotations

from ._nn import nearest_neighbor_distances, nearest_neighbor_spacing, nearest_neighbors
from .calibrate import calibrate, calibration_distances
from .chamfer import REDUCTIONS, PairNN, chamfer_distance, directional_distances, pair_nearest_neighbors
from .dcd import DEFAULT_DCD_ALPHA, density_aware_chamfer
from .dogss import combined_score, dogss_geometric_score, normalized_score
from .emd import exact_emd, sliced_wasserstein, wasserstein_1d
from .features import FrozenBackbone, TorchScriptBackbone, instance_features
from .js import js_divergence
from .semantic import SemanticAlignment, semantic_alignment

__all__ = [
    "DEFAULT_DCD_ALPHA",
    "REDUCTIONS",
    "FrozenBackbone",
    "PairNN",
    "SemanticAlignment",
    "TorchScriptBackbone",
    "calibrate",
    "calibration_distances",
    "chamfer_distance",
    "combined_score",
    "density_aware_chamfer",
    "directional_distances",
    "dogss_geometric_score",
    "exact_emd",
    "instance_features",
    "js_divergence",
    "nearest_neighbor_distances",
    "nearest_neighbor_spacing",
    "nearest_neighbors",
    "normalized_score",
    "pair_nearest_neighbors",
    "semantic_alignment",
    "sliced_wasserstein",
    "wasserstein_1d",
]
