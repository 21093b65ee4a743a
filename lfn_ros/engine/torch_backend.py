"""The PyTorch backend of the engine: LiteFlowNet's NetC and NetE in PyTorch, CPU or CUDA.

Reduced precision is autocast with channels_last (lfn_ros.precision): convolutions in bf16/fp16,
f-warp's sampling positions and the flow itself in fp32 (see lfn_ros.model.liteflownet.fp32).
Every backend offers the same three calls, so the engine's streaming, resizing, occlusion check,
timings and recovery are written once:

    encode(normalised (1, 3, H', W') float, input_size (H, W)) -> encoding of one frame
    decode(previous, current, mode) -> (forward, backward or None, occlusion logits or None):
        flows (1, 2, H'/2^(k-1), W'/2^(k-1)) float32 NetE units (pixels of the grid / 20);
        mode "none" (forward only), "check" (forward and backward in one batch of two, for the
        forward-backward check) or "head" (forward and the occlusion head's level-3 logits)
"""

from __future__ import annotations

import contextlib

import torch

from .. import precision as precisions
from ..model.encoding import FrameEncoding
from ..model.liteflownet import LiteFlowNet


class TorchBackend:
    """LiteFlowNet in PyTorch on ``device`` in ``precision`` (a resolved name)."""

    name = "torch"

    def __init__(self, model: LiteFlowNet, device: torch.device, precision: str, head=None) -> None:
        self.model = model
        self.head = head.to(device).eval() if head is not None else None
        self.device = device
        self.precision = precision
        self.memory_format = precisions.memory_format(device, precision)
        model.to(device, memory_format=self.memory_format).eval()
        # The calls the engine makes; CompiledTorchBackend swaps in compiled versions.
        self._encode = model.encode_preprocessed
        self._decode = model.decode
        self._decode_bidirectional = model.decode_bidirectional

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return precisions.autocast(self.device, self.precision)

    @torch.no_grad()
    def encode(self, normalised: torch.Tensor, input_size: tuple) -> FrameEncoding:
        with self._autocast():
            return self._encode(normalised.contiguous(memory_format=self.memory_format), input_size)

    @torch.no_grad()
    def decode(self, previous: FrameEncoding, current: FrameEncoding, mode: str):
        with self._autocast():
            if mode == "check":
                forward, backward = self._decode_bidirectional(previous, current)
                return forward.float(), backward.float(), None
            forward = self._decode(previous, current)[-1].float()
            logits = self.head(previous, current, forward) if mode == "head" else None
            return forward, None, logits


class CompiledTorchBackend(TorchBackend):
    """:class:`TorchBackend` with NetC and NetE compiled by TorchInductor (``torch.compile``,
    issue 16 item 3): the same network, its small operators fused into generated C++ loops, so
    a step dispatches a few kernels instead of hundreds of eager operators.

    The first frame of each resolution compiles (minutes on a small CPU; Inductor caches the
    result on disk, so a restart compiles faster); ``dynamic=False`` because a camera keeps
    its resolution, and a new one recompiles once. Accuracy and speed against eager:
    docs/benchmarks.md."""

    name = "torch-compiled"

    def __init__(self, model: LiteFlowNet, device: torch.device, precision: str, head=None) -> None:
        super().__init__(model, device, precision, head)
        self._encode = torch.compile(model.encode_preprocessed, dynamic=False)
        self._decode = torch.compile(model.decode, dynamic=False)
        self._decode_bidirectional = torch.compile(model.decode_bidirectional, dynamic=False)
