"""Spherical range-image projection with a sensor profile's beam table (torch, TorchScript-compatible).

A point goes to the row of the beam whose elevation is nearest to its own (the profile's
``vertical_angles_deg``, beam 0 at the top) and to the column of its azimuth (``width`` columns per revolution,
column 0 looking backwards, increasing clockwise seen from above, as in RangeNet++). Several points can share a
pixel: the image keeps the nearest one's features, and every point reads its prediction back from its pixel
(:func:`pixel_index` is the per-point lookup, so back-projection covers every point by construction).

Input channels of :func:`range_image`: occupancy mask, range / 50 m, x / 50 m, y / 50 m, z / 5 m, remission
(scaled to [0, 1] when a scan stores 0-255 intensities).
"""

from __future__ import annotations

import math

import torch

__all__ = ["IN_CHANNELS", "pixel_index", "range_image", "beam_elevations"]

#: Channels of the range image built by :func:`range_image`.
IN_CHANNELS = 6


def beam_elevations(vertical_angles_deg: list[float] | tuple[float, ...]) -> torch.Tensor:
    """(H,) float32 beam elevations in radians, strictly decreasing (beam 0 at the top).

    Raises:
        ValueError: fewer than one beam or a table that is not strictly decreasing.
    """
    t = torch.tensor([math.radians(float(a)) for a in vertical_angles_deg], dtype=torch.float32)
    if t.numel() < 1:
        raise ValueError("the beam table is empty")
    if t.numel() > 1 and not bool((t[1:] < t[:-1]).all()):
        raise ValueError("beam elevations must be strictly decreasing (beam 0 at the top)")
    return t


def pixel_index(xyz: torch.Tensor, elevations: torch.Tensor, width: int) -> torch.Tensor:
    """Flat pixel ``row * width + col`` of every point.

    Args:
        xyz: (N, 3) float points in the sensor frame, metres.
        elevations: (H,) float32 beam elevations, radians, strictly decreasing.
        width: columns per revolution (>= 1).

    Returns:
        (N,) int64 indices in ``[0, H * width)``.
    """
    if xyz.dim() != 2 or xyz.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {list(xyz.shape)}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    h = elevations.shape[0]
    p = xyz.to(torch.float32)
    r = torch.linalg.vector_norm(p, dim=1).clamp_min(1e-6)
    elev = torch.asin((p[:, 2] / r).clamp(-1.0, 1.0))
    el = elevations.to(device=p.device, dtype=torch.float32)
    if h > 1:
        # Boundaries halfway between neighbouring beams; ascending order for searchsorted.
        mids = torch.flip((el[1:] + el[:-1]) * 0.5, dims=[0])
        row = (h - 1) - torch.searchsorted(mids, elev.contiguous())
    else:
        row = torch.zeros_like(elev, dtype=torch.int64)
    az = torch.atan2(p[:, 1], p[:, 0])
    col = torch.floor((math.pi - az) / (2.0 * math.pi) * width).to(torch.int64).clamp(0, width - 1)
    return row.to(torch.int64) * width + col


def range_image(points: torch.Tensor, elevations: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Project a scan into a range image.

    Args:
        points: (N, 4) float32 ``x, y, z, remission`` (or (N, 3): remission 0).
        elevations: (H,) beam elevations (:func:`beam_elevations`).
        width: columns per revolution.

    Returns:
        ((IN_CHANNELS, H, width) float32 image, (N,) int64 flat pixel of every point). Where several points
        share a pixel the image holds the nearest one.
    """
    if points.dim() != 2 or points.shape[1] not in (3, 4):
        raise ValueError(f"points must be (N, 4) x, y, z, remission (or (N, 3)), got {list(points.shape)}")
    p = points.to(torch.float32)
    xyz = p[:, :3]
    if p.shape[1] == 4:
        rem = p[:, 3]
    else:
        rem = torch.zeros(p.shape[0], dtype=torch.float32, device=p.device)
    if rem.numel() > 0 and float(rem.max()) > 1.0:
        rem = rem / 255.0
    h = elevations.shape[0]
    n_pix = h * width
    pix = pixel_index(xyz, elevations, width)
    rng = torch.linalg.vector_norm(xyz, dim=1)
    nearest = torch.full((n_pix,), float("inf"), dtype=torch.float32, device=p.device)
    nearest = nearest.scatter_reduce(0, pix, rng, reduce="amin", include_self=True)
    win = rng <= nearest[pix]
    feats = torch.stack(
        [torch.ones_like(rng), rng / 50.0, xyz[:, 0] / 50.0, xyz[:, 1] / 50.0, xyz[:, 2] / 5.0, rem.clamp(0.0, 1.0)]
    )
    img = torch.zeros((IN_CHANNELS, n_pix), dtype=torch.float32, device=p.device)
    img[:, pix[win]] = feats[:, win]
    return img.reshape(IN_CHANNELS, h, width), pix
