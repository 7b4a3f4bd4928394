"""Robust regression: the reweighting step of iteratively reweighted least squares with Tukey's biweight.

Shared by the two cone fits that must ignore returns off the cone (a higher beam where the lowest one returned
nothing, the ego vehicle's body): the gate's apparent sensor origin (:mod:`simgap_ext.gate.origin`) and the
motion-skew fit of the tuned sensor model (:mod:`simgap_ext.tune.motion`). NumPy only, so that neither side pulls
the other's package in.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TUKEY_C", "tukey_weights"]

#: Tukey biweight tuning constant (95 % efficiency under Gaussian residuals).
TUKEY_C = 4.685


def tukey_weights(residuals: np.ndarray) -> tuple[np.ndarray, float]:
    """One reweighting step of IRLS with Tukey's biweight.

    Args:
        residuals: (N,) float64 residuals of the current fit, metres.

    Returns:
        ((N,) float64 weights in [0, 1], the robust scale in metres).
    """
    # Robust scale (MAD about 0: the residuals of a good fit are centred); 1 mm keeps it positive.
    scale = 1.4826 * float(np.median(np.abs(residuals))) + 1e-3
    u = residuals / (TUKEY_C * scale)
    return np.where(np.abs(u) < 1.0, (1.0 - u**2) ** 2, 0.0), scale
