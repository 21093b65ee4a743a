"""Backward warping (LiteFlowNet's f-warp, and image warping for the brightness error).

``warp(x, flow)[..., y, px] = x[..., y + flow_y, px + flow_x]`` sampled bilinearly: the
output lives on the grid of the *first* frame and fetches from the second. Pixel centres are
at integer coordinates 0..W-1, so ``align_corners=True`` maps them exactly onto grid_sample's
[-1, 1] range; with that choice zero flow is the identity and integer shifts are copies, exact
up to float32 rounding of the coordinate normalisation (~1e-7 relative, measured in the tests).
Samples outside the frame read zeros and are flagged in the returned mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_grid_cache: dict = {}


def base_grid(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(1, 2, H, W) pixel coordinates: channel 0 = x (column), channel 1 = y (row)."""
    key = (height, width, device, dtype)
    grid = _grid_cache.get(key)
    if grid is None:
        ys = torch.arange(height, device=device, dtype=dtype).view(1, 1, height, 1).expand(1, 1, height, width)
        xs = torch.arange(width, device=device, dtype=dtype).view(1, 1, 1, width).expand(1, 1, height, width)
        grid = torch.cat([xs, ys], dim=1)
        if len(_grid_cache) > 64:  # bounded: a node sees few resolutions
            _grid_cache.clear()
        _grid_cache[key] = grid
    return grid


def warp(x: torch.Tensor, flow: torch.Tensor, return_mask: bool = False, padding: str = "zeros"):
    """Backward-warp ``x`` by ``flow``.

    Args:
        x: (B, C, H, W) image or features of the second frame.
        flow: (B, 2, H, W) float, pixels of this resolution, channel 0 = x (right),
            channel 1 = y (down); where each pixel of the first frame moved to.
        return_mask: also return the in-frame mask.
        padding: what samples outside the frame read: "zeros" (f-warp, as published) or
            "border" (the nearest edge pixel: a warped image without black margins).

    Returns:
        (B, C, H, W) warped tensor; with ``return_mask`` also a (B, 1, H, W) bool mask that is
        True where the sample position lies inside the frame.
    """
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"warp expects x (B, C, H, W) and flow (B, 2, H, W), got {tuple(x.shape)}, {tuple(flow.shape)}")
    if x.shape[0] != flow.shape[0] or x.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"warp: x {tuple(x.shape)} and flow {tuple(flow.shape)} differ in batch or size")
    height, width = x.shape[-2:]
    # Sampling positions in fp32 whatever the input precision: in fp16/bf16 (autocast) a
    # coordinate near pixel 200 is quantised to 0.125/1 px, which would misplace f-warp.
    pos = base_grid(height, width, flow.device, torch.float32) + flow.float()
    # Normalise to [-1, 1] with align_corners=True: pixel 0 -> -1, pixel W-1 -> +1.
    scale_x = 2.0 / max(width - 1, 1)
    scale_y = 2.0 / max(height - 1, 1)
    grid = torch.stack([pos[:, 0] * scale_x - 1.0, pos[:, 1] * scale_y - 1.0], dim=-1)
    sample_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    out = F.grid_sample(x.to(sample_dtype), grid.to(sample_dtype), mode="bilinear", padding_mode=padding, align_corners=True)
    out = out.to(x.dtype)
    if not return_mask:
        return out
    mask = (pos[:, 0:1] >= 0) & (pos[:, 0:1] <= width - 1) & (pos[:, 1:2] >= 0) & (pos[:, 1:2] <= height - 1)
    return out, mask
