"""LiteFlowNet's two halves as standalone graphs, for runtimes that take a graph (ONNX, OpenVINO).

The node's engine runs NetC once per frame and NetE on a stored pair (docs/architecture.md,
section 2). A graph runtime needs the same split: :class:`EncoderGraph` (one normalised frame ->
the features and image pyramid of the levels NetE uses) and :class:`DecoderGraph` (two frames'
tensors -> the finest flow, forward and backward in one batch of two when bidirectional). Both
call the model's own methods, so the graphs compute what PyTorch computes.

Tensors cross the graph boundary in a fixed order, :func:`encoding_names`: ``feat{k}`` for every
active level k (coarse to fine), then ``image{k}``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn as nn

from .encoding import FrameEncoding
from .liteflownet import LiteFlowNet


def encoding_names(levels) -> list:
    """Names of one frame's tensors in graph order: feat6, feat5, ..., image6, image5, ..."""
    return [f"feat{k}" for k in levels] + [f"image{k}" for k in levels]


def to_tensors(encoding: FrameEncoding, levels) -> list:
    """A FrameEncoding as the graph-ordered list of tensors."""
    return [encoding.features[k] for k in levels] + [encoding.images[k] for k in levels]


def from_tensors(tensors, levels, input_size) -> FrameEncoding:
    """The inverse of :func:`to_tensors`."""
    n = len(levels)
    return FrameEncoding(features={k: tensors[i] for i, k in enumerate(levels)},
                         images={k: tensors[n + i] for i, k in enumerate(levels)}, input_size=tuple(input_size))


class EncoderGraph(nn.Module):
    """normalised (1, 3, H', W') float (LiteFlowNet.preprocess's output, H', W' multiples of 32)
    -> the tensors of :func:`encoding_names` for the model's active levels."""

    def __init__(self, model: LiteFlowNet) -> None:
        super().__init__()
        self.model = model
        self.levels = model.active_levels

    def forward(self, normalised: torch.Tensor):
        encoding = self.model.encode_preprocessed(normalised, tuple(normalised.shape[-2:]))
        return tuple(to_tensors(encoding, self.levels))


#: Decoder modes and their outputs (see lfn_ros.engine.torch_backend for what they mean).
DECODER_OUTPUTS = {"none": ["forward"], "check": ["forward", "backward"], "head": ["forward", "occlusion_logits"]}


class DecoderGraph(nn.Module):
    """Two frames' tensors (previous, then current, each in :func:`encoding_names` order) -> the
    finest NetE flow (1, 2, h, w) in NetE units, and per ``mode`` the backward flow ("check")
    or the occlusion head's logits ("head", needs ``head``)."""

    def __init__(self, model: LiteFlowNet, mode: str, head=None) -> None:
        super().__init__()
        if mode not in DECODER_OUTPUTS or (mode == "head" and head is None):
            raise ValueError(f"decoder mode must be one of {sorted(DECODER_OUTPUTS)} (head needs an OcclusionHead), got {mode!r}")
        self.model = model
        self.head = head
        self.levels = model.active_levels
        self.mode = mode

    def forward(self, *tensors):
        n = 2 * len(self.levels)
        first = from_tensors(tensors[:n], self.levels, (0, 0))
        second = from_tensors(tensors[n:], self.levels, (0, 0))
        if self.mode == "check":
            return self.model.decode_bidirectional(first, second)
        forward = self.model.decode(first, second)[-1]
        if self.mode == "head":
            return forward, self.head(first, second, forward)
        return forward


def export_onnx_file(module: nn.Module, example: tuple, path, input_names, output_names, opset: int = 17) -> Path:
    """torch.onnx.export of a graph module (traced, fixed shapes, standard ops only)."""
    path = Path(path)
    with warnings.catch_warnings(), torch.no_grad():
        # The trace bakes the fixed size in; the tracer's warnings about that are expected.
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), example, str(path), input_names=list(input_names),
                          output_names=list(output_names), opset_version=opset, dynamo=False, do_constant_folding=True)
    return path


def encoder_onnx(model: LiteFlowNet, grid: tuple, folder) -> Path:
    """ONNX file of the encoder for a network grid (H', W') (multiples of 32), in ``folder``."""
    example = torch.zeros(1, 3, *grid)
    names = encoding_names(model.active_levels)
    return export_onnx_file(EncoderGraph(model), (example,), Path(folder) / f"encoder_{grid[1]}x{grid[0]}.onnx",
                            ["normalised"], names)


def decoder_onnx(model: LiteFlowNet, grid: tuple, mode: str, folder, head=None) -> Path:
    """ONNX file of the decoder (``mode``: see :data:`DECODER_OUTPUTS`) for a network grid
    (H', W'), in ``folder``."""
    with torch.no_grad():
        tensors = EncoderGraph(model).eval()(torch.zeros(1, 3, *grid))
    names = encoding_names(model.active_levels)
    inputs = [f"previous_{n}" for n in names] + [f"current_{n}" for n in names]
    return export_onnx_file(DecoderGraph(model, mode, head), tuple(tensors) + tuple(tensors),
                            Path(folder) / f"decoder_{mode}_{grid[1]}x{grid[0]}.onnx", inputs, DECODER_OUTPUTS[mode])
