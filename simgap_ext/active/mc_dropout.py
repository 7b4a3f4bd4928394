"""MC-Dropout as a reversible patch: dropout sampling at inference, everything else in eval mode.

:func:`mc_dropout` is a context manager: inside it every dropout module is in training mode (it samples a mask
on each forward pass) and every other module (batch norm included, so running statistics are neither used
per-batch nor updated) is in eval mode; on exit each module's own ``training`` flag and the state dict are
restored exactly. :func:`mc_predict` runs ``T`` stochastic passes under the patch.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

__all__ = ["DROPOUT_TYPES", "mc_dropout", "mc_predict", "has_dropout"]

#: Module types sampled by MC-Dropout.
DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


def has_dropout(model: nn.Module) -> bool:
    """Whether ``model`` has a dropout module with p > 0 (MC-Dropout needs one)."""
    return any(isinstance(m, DROPOUT_TYPES) and float(getattr(m, "p", 0.0)) > 0.0 for m in model.modules())


@contextlib.contextmanager
def mc_dropout(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in MC-Dropout mode for the ``with`` block, then restore it exactly.

    Args:
        model: any ``nn.Module`` with dropout layers.

    Yields:
        The same model, patched.

    Raises:
        ValueError: the model has no dropout module with p > 0 (the passes would all be identical).
    """
    if not has_dropout(model):
        raise ValueError("MC-Dropout needs a model with at least one dropout module (p > 0)")
    flags = {name: m.training for name, m in model.named_modules()}
    state = copy.deepcopy(model.state_dict())
    try:
        model.eval()
        for m in model.modules():
            if isinstance(m, DROPOUT_TYPES):
                m.train()
        yield model
    finally:
        model.load_state_dict(state)
        for name, m in model.named_modules():
            m.training = flags.get(name, m.training)


def mc_predict(model: nn.Module, points: torch.Tensor, *, passes: int = 20, chunk: int = 10) -> np.ndarray:
    """Per-point class probabilities from ``passes`` MC-Dropout forward passes.

    Args:
        model: a point model (``(N, 4) -> (N, C)`` logits, see :mod:`.model`).
        points: (N, 4) float32 points on the model's device.
        passes: T >= 1 stochastic passes.
        chunk: passes batched together by models with an ``mc_logits(points, k)`` method (memory bound).

    Returns:
        (N, C, T) float32 softmax probabilities.
    """
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    out = []
    with mc_dropout(model), torch.no_grad():
        if hasattr(model, "mc_logits"):
            # Models that can share their deterministic layers between passes do (RangeSegNet).
            done = 0
            while done < passes:
                k = min(chunk, passes - done)
                out.append(torch.softmax(model.mc_logits(points, k), dim=2).cpu())
                done += k
            return torch.cat(out, dim=0).permute(1, 2, 0).numpy().astype(np.float32)
        for _ in range(passes):
            out.append(torch.softmax(model(points), dim=1).cpu())
    return torch.stack(out, dim=2).numpy().astype(np.float32)
