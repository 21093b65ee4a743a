"""Tensor operations used by LiteFlowNet and the engine (no ROS, no model weights)."""

from .correlation import correlation, correlation_reference
from .occlusion import forward_backward_occlusion
from .resize import multiple_size, resize_flow, resize_images
from .warp import warp

__all__ = [
    "correlation",
    "correlation_reference",
    "forward_backward_occlusion",
    "multiple_size",
    "resize_flow",
    "resize_images",
    "warp",
]
