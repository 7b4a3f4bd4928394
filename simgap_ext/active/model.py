"""The default segmentation network: a small range-image CNN with dropout (SqueezeSeg / RangeNet++ / SalsaNext
style) that maps a scan's points to per-point class logits.

The interface every model used by :mod:`simgap_ext.active` follows (plug in your own ``nn.Module``)::

    logits = model(points)   # points: (N, 4) float32 x, y, z, remission (sensor frame, metres)
                             # logits: (N, C) float32, one row per input point, C = number of classes

For MC-Dropout the model needs at least one dropout module (``nn.Dropout``/``Dropout2d``/...); batch norm is
fine (it stays in eval mode while sampling, see :mod:`.mc_dropout`).

:class:`RangeSegNet` projects the scan with the sensor's beam table (:mod:`.projection`), runs an
encoder-decoder over the range image (width is downsampled 4x, rows are kept: LiDARs have few beams) with
spatial dropout in the bottleneck and decoder (SalsaNext's Bayesian setting), and reads every point's logits
back from its pixel. Two CPU cores train it on a few hundred scans in minutes at the default size.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the PyTorch convention

from .projection import IN_CHANNELS, beam_elevations, range_image

__all__ = ["RangeSegNet", "build_model"]


class _Block(nn.Module):
    """Two 3x3 conv + BN + LeakyReLU with a residual 1x1 shortcut."""

    def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.bn1(self.conv1(x)), 0.1)
        h = self.bn2(self.conv2(h))
        return F.leaky_relu(h + self.skip(x), 0.1)


class RangeSegNet(nn.Module):
    """Range-image segmentation network (points in, per-point logits out).

    Args:
        num_classes: C, number of output classes.
        vertical_angles_deg: the sensor's beam table (``SensorProfile.vertical_angles_deg``), beam 0 at the top.
        width: range-image columns per revolution (fewer than the sensor's firings is fine: points sharing a
            pixel share its prediction); a multiple of 4.
        base: channels of the first stage (stages use base, 2*base, 4*base).
        dropout: spatial dropout probability of the bottleneck and decoder (MC-Dropout samples it).
    """

    def __init__(
        self,
        num_classes: int,
        vertical_angles_deg: list[float] | tuple[float, ...],
        *,
        width: int = 512,
        base: int = 8,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if width < 4 or width % 4:
            raise ValueError(f"width must be a positive multiple of 4, got {width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.num_classes = int(num_classes)
        self.width = int(width)
        self.base = int(base)
        self.register_buffer("elevations", beam_elevations(vertical_angles_deg))
        c1, c2, c3 = base, 2 * base, 4 * base
        self.enc1 = _Block(IN_CHANNELS, c1)
        self.enc2 = _Block(c1, c2, dilation=2)
        self.enc3 = _Block(c2, c3, dilation=2)
        self.drop_bottleneck = nn.Dropout2d(dropout)
        self.dec2 = _Block(c3 + c2, c2)
        self.dec1 = _Block(c2 + c1, c1)
        self.drop_decoder = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(c1, num_classes, 1)

    @property
    def feature_dim(self) -> int:
        """Channels of :meth:`features` (the last decoder stage)."""
        return self.base

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """Per-pixel features of range images: (B, IN_CHANNELS, H, W) -> (B, base, H, W)."""
        e1 = self.enc1(image)
        e2 = self.enc2(F.avg_pool2d(e1, (1, 2)))
        e3 = self.drop_bottleneck(self.enc3(F.avg_pool2d(e2, (1, 2))))
        d2 = self.dec2(torch.cat([F.interpolate(e3, size=e2.shape[-2:], mode="nearest"), e2], dim=1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="nearest"), e1], dim=1))
        return self.drop_decoder(d1)

    def forward_image(self, image: torch.Tensor) -> torch.Tensor:
        """Logits of range images: (B, IN_CHANNELS, H, W) -> (B, C, H, W)."""
        return self.head(self.features(image))

    def mc_logits(self, points: torch.Tensor, passes: int) -> torch.Tensor:
        """``passes`` stochastic passes at once: (N, 4) -> (passes, N, C). The projection and the layers before
        the first dropout run once (they are deterministic), the rest as a batch of ``passes``."""
        img, pix = range_image(points, self.elevations, self.width)
        e1 = self.enc1(img.unsqueeze(0))
        e2 = self.enc2(F.avg_pool2d(e1, (1, 2)))
        e3 = self.enc3(F.avg_pool2d(e2, (1, 2))).expand(passes, -1, -1, -1)
        e3 = self.drop_bottleneck(e3)
        e2b, e1b = e2.expand(passes, -1, -1, -1), e1.expand(passes, -1, -1, -1)
        d2 = self.dec2(torch.cat([F.interpolate(e3, size=e2.shape[-2:], mode="nearest"), e2b], dim=1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="nearest"), e1b], dim=1))
        logits = self.head(self.drop_decoder(d1))
        return logits.reshape(passes, self.num_classes, -1)[:, :, pix].transpose(1, 2)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Per-point logits of one scan: (N, 4) float32 -> (N, C) float32."""
        img, pix = range_image(points, self.elevations, self.width)
        logits = self.forward_image(img.unsqueeze(0))[0]
        return logits.reshape(self.num_classes, -1)[:, pix].t()


def build_model(
    num_classes: int,
    sensor: str = "hdl-64",
    *,
    width: int = 512,
    base: int = 8,
    dropout: float = 0.2,
) -> RangeSegNet:
    """A :class:`RangeSegNet` for a sensor profile (name or ``.toml`` path, see :mod:`simgap_ext.sensors`)."""
    from ..sensors import load_sensor_profile

    profile = load_sensor_profile(sensor)
    return RangeSegNet(num_classes, profile.vertical_angles_deg, width=width, base=base, dropout=dropout)
