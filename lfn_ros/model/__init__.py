"""LiteFlowNet and its checkpoints."""

from .encoding import FrameEncoding
from .liteflownet import LiteFlowNet, NetC, count_parameters

__all__ = ["FrameEncoding", "LiteFlowNet", "NetC", "count_parameters"]
