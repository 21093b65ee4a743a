"""INT8 post-training quantisation of the OpenVINO graphs with NNCF (issue 16 item 3).

What is quantised: the convolutions of NetC and NetE, weights and input activations in int8
(VNNI / AMX-INT8 kernels on x86). What stays f32, because the flow is made there and an int8
rounding of it is a rounding of the output in pixels (issue 16: "the correlation, the flow path
and the warps kept in f32"):

- the correlation and every element-wise op (the warps' sampling, the flow's upsampling
  deconvolutions and residual sums, f-lcon's normalisation and filtering);
- the convolutions that read the cost volume (their input is the 49-displacement correlation,
  whose values are ~30x smaller than the features'; docs/training.md);
- the convolutions that output a flow or a logit (2 channels or fewer), and f-lcon's distance and
  scale convolutions (``dist``, ``scale_x``, ``scale_y``: they weight the flow's neighbours).

Calibration: synthetic pairs (lfn_ros.data.synthetic, round 3's data, a seed of its own) at the
network grid, through the fp32 PyTorch encoder for the decoder's inputs; never evaluation data.
Each grid is quantised once, when the OpenVINO backend first compiles it (about 20 s on two
cores at 320x256). Accuracy and speed: docs/benchmarks.md ("INT8").
"""

from __future__ import annotations

import logging

import torch

from ..model.graphs import EncoderGraph, encoding_names
from ..model.liteflownet import LiteFlowNet

#: Pairs rendered to calibrate one grid (the encoder sees both frames of each).
CALIBRATION_PAIRS = 16
#: Seed of the calibration pairs: not the training stream's (0 + rank) nor validation's.
CALIBRATION_SEED = 7_919
#: Input channels of the convolutions that read a cost volume: (2 * 3 + 1)^2 displacements.
COST_CHANNELS = 49
#: f-lcon's convolutions that weight the flow's neighbourhood (module names in LiteFlowNet's Regularization).
FLCON_MODULES = ("/dist", "/scale_x", "/scale_y")
#: NNCF's preset: "performance" (symmetric int8 activations) or "mixed" (asymmetric, for
#: activations that are not centred on zero); chosen on synthetic validation (docs/benchmarks.md).
PRESET = "mixed"
#: OpenVINO op types left in f32 whatever NNCF's default patterns would do with them.
F32_TYPES = ["Multiply", "Add", "Subtract", "Divide", "ReduceSum", "ReduceMean", "ReduceMax", "GridSample",
             "GroupConvolutionBackpropData", "Interpolate", "Exp", "Sqrt", "Concat", "PRelu", "MatMul"]


class Int8Unavailable(RuntimeError):
    """NNCF is missing or cannot quantise here (the message says what to do)."""


def nncf_module():
    """NNCF, imported quietly; :class:`Int8Unavailable` if it is not installed."""
    try:
        import nncf
    except ImportError as exc:
        raise Int8Unavailable(f"precision int8 needs NNCF ({exc}); pip install nncf") from exc
    nncf.set_log_level(logging.ERROR)
    return nncf


def f32_convolutions(ov_model) -> list[str]:
    """Names of the convolutions of ``ov_model`` that stay f32 (see the module docstring)."""
    names = []
    for op in ov_model.get_ops():
        if op.get_type_name() != "Convolution":
            continue
        weight = op.input(1).get_partial_shape()
        out_channels, in_channels = weight[0].get_length(), weight[1].get_length()
        name = op.get_friendly_name()
        if out_channels <= 2 or in_channels == COST_CHANNELS or any(m in name for m in FLCON_MODULES):
            names.append(name)
    return names


def calibration_frames(model: LiteFlowNet, grid: tuple, pairs: int = CALIBRATION_PAIRS,
                       seed: int = CALIBRATION_SEED) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``pairs`` synthetic pairs at ``grid`` (H', W'), each frame normalised as the engine feeds
    the encoder: a list of ((1, 3, H', W'), (1, 3, H', W')) float tensors."""
    from ..data.synthetic import SyntheticFlow
    from ..data.synthetic_config import SyntheticConfig

    generator = SyntheticFlow(*grid, seed=seed, config=SyntheticConfig.round3())
    frames = []
    with torch.no_grad():
        while len(frames) < pairs:
            sample = generator.sample(min(4, pairs - len(frames)))
            for b in range(sample["image1"].shape[0]):
                frames.append(tuple(model.preprocess(sample[key][b:b + 1], size=grid, role="stream")
                                    for key in ("image1", "image2")))
    return frames


def calibration_feeds(model: LiteFlowNet, frames) -> tuple[list[dict], list[dict]]:
    """The encoder's and the decoder's feeds for ``frames`` (from :func:`calibration_frames`):
    the decoder's inputs are the fp32 PyTorch encoder's outputs."""
    encoder = EncoderGraph(model).eval()
    names = encoding_names(model.active_levels)
    encoder_feeds, decoder_feeds = [], []
    with torch.no_grad():
        for first, second in frames:
            encoder_feeds += [{"normalised": first.numpy()}, {"normalised": second.numpy()}]
            feed = {f"previous_{n}": t.numpy() for n, t in zip(names, encoder(first))}
            feed.update({f"current_{n}": t.numpy() for n, t in zip(names, encoder(second))})
            decoder_feeds.append(feed)
    return encoder_feeds, decoder_feeds


def quantize(ov_model, feeds: list[dict], f32_names: list[str] | None = None, preset: str | None = None):
    """``ov_model`` with int8 convolutions (NNCF post-training quantisation, statistics from
    ``feeds``), the ops of the module docstring and ``f32_names`` left in f32."""
    nncf = nncf_module()
    names = f32_convolutions(ov_model) + list(f32_names or [])
    preset = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}[preset or PRESET]
    return nncf.quantize(ov_model, nncf.Dataset(feeds), subset_size=len(feeds), target_device=nncf.TargetDevice.CPU,
                         preset=preset,
                         ignored_scope=nncf.IgnoredScope(names=names, types=F32_TYPES, validate=False))
