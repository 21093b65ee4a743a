"""An occlusion head: where a pixel of the first frame has no match in the second, from the
forward pass alone (issue 11). Separate from LiteFlowNet, which stays exactly as published
(5,381,969 parameters); this head has :data:`PARAMETER_COUNT` of its own and is optional.

Why: the forward-backward consistency check (lfn_ros.ops.occlusion, Sundaram et al. 2010) needs a
second decoder pass (the backward flow) and, with flow as rough as ours, flags most of the image
(F1 0.07-0.14 on the evaluation data with the round-1 weights). A small network that looks at
what an occluded pixel looks like, trained on the exact masks of the synthetic generator, can do
better, and it costs a fraction of a decoder pass.

What it sees, at NetE level 3 (1/4 resolution, whatever the finest level; a finer flow is
averaged down to it): the first frame's NetC features, the second frame's features f-warped by
the flow, the flow in pixels of that level (occlusions sit where it converges or jumps), and the
brightness error |I1 - warp(I2, flow)|. It predicts a logit per level-3 pixel; the engine
upsamples it and ORs in the pixels whose destination leaves the frame (known exactly from the
flow). Trained with binary cross-entropy on area-averaged masks (lfn_ros.train.occlusion).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.warp import warp
from .encoding import FrameEncoding
from .liteflownet import FEATURE_CHANNELS, conv, warp_scale

#: The level the head works at (level k has stride 2^(k-1)).
HEAD_LEVEL = 3


class OcclusionHead(nn.Module):
    """Occlusion logits from one frame pair's encodings and the forward flow.

    Args:
        width: channels of the hidden convolutions.
    """

    def __init__(self, width: int = 48) -> None:
        super().__init__()
        channels = FEATURE_CHANNELS[HEAD_LEVEL]
        self.level = HEAD_LEVEL
        self.main = nn.Sequential(
            conv(2 * channels + 3, width, 3),
            conv(width, width, 3),
            conv(width, width // 2, 3),
            conv(width // 2, 1, 3, activate=False),
        )

    def forward(self, first: FrameEncoding, second: FrameEncoding, flow: torch.Tensor) -> torch.Tensor:
        """first, second: encodings holding level 3; flow: (B, 2, h, w) finest NetE flow (NetE
        units) at level 3 or finer. Returns (B, 1, H/4', W/4') logits at level 3 (occluded > 0)."""
        k = self.level
        feat1, feat2 = first.features[k], second.features[k]
        size = feat1.shape[-2:]
        flow = flow.float()
        if tuple(flow.shape[-2:]) != tuple(size):  # a finer flow (level 2, exactly twice the grid): average it down
            # A fixed kernel, not adaptive pooling: the same numbers, and ONNX can export it (the
            # OpenVINO backend's level-2 decoder with the head failed on adaptive_avg_pool2d).
            flow = F.avg_pool2d(flow, int(flow.shape[-1]) // int(size[-1]))
        pixels = flow * warp_scale(k)  # NetE units -> pixels of level k
        warped = warp(feat2, pixels)
        brightness = ((first.images[k] - warp(second.images[k], pixels)).square().sum(1, keepdim=True) + 1e-8).sqrt()
        inputs = torch.cat([feat1, warped, pixels.to(feat1.dtype), brightness.to(feat1.dtype)], dim=1)
        return self.main(inputs).float()


#: Parameters of the default head (counted separately from LiteFlowNet's 5,381,969).
PARAMETER_COUNT = sum(p.numel() for p in OcclusionHead().parameters())


def occlusion_from_logits(logits: torch.Tensor, flow_pixels: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """(B, 1, H, W) bool occlusion at the flow's resolution: the head's logits (any resolution,
    bilinearly resized) above ``threshold``, or a destination outside the frame.

    flow_pixels: (B, 2, H, W) forward flow in pixels of that resolution."""
    height, width = flow_pixels.shape[-2:]
    logits = F.interpolate(logits.float(), size=(height, width), mode="bilinear", align_corners=False)
    xs = torch.arange(width, device=flow_pixels.device, dtype=torch.float32).view(1, 1, 1, width)
    ys = torch.arange(height, device=flow_pixels.device, dtype=torch.float32).view(1, 1, height, 1)
    dest_x, dest_y = xs + flow_pixels[:, 0:1].float(), ys + flow_pixels[:, 1:2].float()
    outside = (dest_x < 0) | (dest_x > width - 1) | (dest_y < 0) | (dest_y > height - 1)
    return (logits > threshold) | outside
