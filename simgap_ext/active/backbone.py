"""Export a trained :class:`~.model.RangeSegNet` encoder as a TorchScript backbone for the semantic gate.

The exported module follows the ``--backbone`` plug-in contract of
:class:`simgap_ext.metrics.features.TorchScriptBackbone`: a (1, K, 3) float32 instance crop (sensor frame,
metres, as :func:`~simgap_ext.metrics.features.instance_features` cuts it) -> a (1, 2 * base) embedding. The
crop is projected alone into the sensor's range image (remission 0), run through the network's feature layers
in eval mode (no dropout), and the per-point features are mean- and max-pooled.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import SimGapInputError
from .model import RangeSegNet
from .projection import range_image

__all__ = ["CropEncoder", "export_backbone"]


class CropEncoder(nn.Module):
    """(1, K, 3) crop -> (1, 2 * base) embedding with a trained :class:`RangeSegNet`'s feature layers."""

    def __init__(self, net: RangeSegNet) -> None:
        super().__init__()
        self.net = net
        self.width = int(net.width)

    def forward(self, crop: torch.Tensor) -> torch.Tensor:
        pts = crop[0]
        img, pix = range_image(pts, self.net.elevations, self.width)
        feats = self.net.features(img.unsqueeze(0))[0]
        per_point = feats.reshape(feats.shape[0], -1)[:, pix]
        return torch.cat([per_point.mean(dim=1), per_point.max(dim=1).values]).unsqueeze(0)


def export_backbone(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write ``model``'s encoder as a TorchScript backbone (usable with ``--backbone PATH``).

    Args:
        model: a trained :class:`RangeSegNet` (other models: export your own module with the same contract).
        path: the ``.pt`` file to write.

    Returns:
        The path written.

    Raises:
        SimGapInputError: the model is not a RangeSegNet.
    """
    if not isinstance(model, RangeSegNet):
        raise SimGapInputError(
            f"--export-backbone supports RangeSegNet models, got {type(model).__name__}: export your own "
            "(1, K, 3) -> (1, D) TorchScript module"
        )
    enc = CropEncoder(model).cpu().eval()
    example = torch.zeros((1, 16, 3), dtype=torch.float32)
    example[0, :, 0] = torch.linspace(5.0, 6.0, 16)
    with torch.no_grad(), warnings.catch_warnings():
        # The trace fixes the beam table and width (constants of the trained model) and a 3-column input, as
        # the backbone contract intends; the tracer warns about exactly those branches.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.trace(enc, example, check_trace=False)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    scripted.save(str(tmp))
    os.replace(tmp, out)
    return out
