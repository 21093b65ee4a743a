"""Resizing to the network's grid (multiples of 32) and back, for images and flow fields.

LiteFlowNet's pyramid halves the resolution five times, so its input must be a multiple of
32 in both dimensions. As published, inputs are resized (not padded) to the next multiple of
32 and the output flow is resized back and its components scaled by the resize factors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def multiple_size(height: int, width: int, multiple: int = 32) -> tuple[int, int]:
    """Smallest (H', W') >= (height, width) that are multiples of ``multiple``."""
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {height}x{width}")
    return (int(math.ceil(height / multiple)) * multiple, int(math.ceil(width / multiple)) * multiple)


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize (B, C, H, W) images to ``size`` = (H', W'); a no-op when equal."""
    if images.dim() != 4:
        raise ValueError(f"resize_images expects (B, C, H, W), got {tuple(images.shape)}")
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a flow field and rescale its vectors to the new pixel units.

    Args:
        flow: (B, 2, h, w) float, pixels at resolution (h, w); channel 0 = x, 1 = y.
        size: target (H, W).

    Returns:
        (B, 2, H, W) flow in pixels at resolution (H, W): u scaled by W / w, v by H / h.
    """
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"resize_flow expects (B, 2, H, W), got {tuple(flow.shape)}")
    height, width = flow.shape[-2:]
    if (height, width) == tuple(size):
        return flow
    out = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    scale = torch.tensor([size[1] / width, size[0] / height], dtype=flow.dtype, device=flow.device)
    return out * scale.view(1, 2, 1, 1)
