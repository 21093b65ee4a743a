"""LiteFlowNet and its checkpoints."""

from .liteflownet import FrameEncoding, LiteFlowNet, NetC, count_parameters

__all__ = ["FrameEncoding", "LiteFlowNet", "NetC", "count_parameters"]
