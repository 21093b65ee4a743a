"""Two-scale cascade: large motions from a half-resolution pass, detail from a full-resolution one.

LiteFlowNet's own coarse-to-fine decoder loses objects that move far against their background:
at level 6 (1/64 of the input) a small object has vanished, and the training data's motions are
those of 256x192-448x320 crops (issue 15: s40+ error 25 px on real pairs where DIS-medium makes
24). Run at half the resolution, the same motion is half as many pixels and inside what the
network learned; run at full resolution, small motions keep their precision. The cascade uses
both, as FlowNet 2.0 stacks networks (Ilg et al., CVPR 2017, section 4: the second network sees
the second image warped by the first one's flow and estimates what is left):

1. coarse flow: the network at half the processing resolution, upsampled to the input;
2. stacked flow: frame 2 warped towards frame 1 by the coarse flow, the network at the full
   processing resolution on (frame 1, warped frame 2), its residual composed with the coarse
   flow (:func:`compose`);
3. fusion (:func:`fuse`): per pixel, the stacked flow or the network's direct full-resolution
   flow, whichever explains the images better (the lower local brightness and gradient
   constancy error, :func:`photometric_error`). Warping by a coarse flow costs the stacked flow
   a little precision where nothing moves much; the direct flow keeps it there.

Chosen on synthetic validation only (``python benchmarks/cascade.py``; docs/training.md, "The
two-scale cascade"). Everything here is PyTorch on the engine's device, before the download;
flows are (B, 2, H, W) float32 pixels at the input resolution, channel 0 = x, 1 = y.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .warp import warp

#: Side of the square window (input pixels) over which :func:`fuse` compares the two flows'
#: photometric errors: large enough to average out noise and texture-less patches, small enough
#: for an object of ~20 px. 17 beat 9 on synthetic validation (docs/training.md).
FUSION_WINDOW = 17
#: Weight of gradient constancy against brightness constancy in :func:`photometric_error`
#: (gradients of a Sobel filter, 8x the finite difference; 0.25 makes them count about 2x).
GRADIENT_WEIGHT = 0.25

_LUMA = (0.299, 0.587, 0.114)


def coarse_size(size: tuple, multiple: int) -> tuple:
    """The coarse pass's network grid for a full-resolution processing ``size`` (H, W): half of
    it, rounded up to ``multiple`` (at least one multiple)."""
    return tuple(max(multiple, -(-(s // 2) // multiple) * multiple) for s in size)


def sample(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W), any dtype, as float32 sampled bilinearly at ``pixel + flow`` (B, 2, H, W)
    (:func:`lfn_ros.ops.warp.warp`); outside the frame the border value repeats (a warped image
    has no black margins for the network to match)."""
    return warp(x.float(), flow, padding="border")


def compose(residual: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """Total flow of a pixel that moves by ``residual`` to where frame 2, warped by ``coarse``,
    holds it: ``residual(x) + coarse(x + residual(x))``."""
    return residual + sample(coarse, residual)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB (uint8 or float, any range) -> (B, 1, H, W) float32 luma (Rec. 601)."""
    weights = torch.tensor(_LUMA, device=image.device, dtype=torch.float32).view(1, 3, 1, 1)
    return (image.float() * weights).sum(dim=1, keepdim=True)


def sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3x3 Sobel gradients (d/dx, d/dy) of (B, 1, H, W) ``x``, the border replicated: a
    central difference smoothed 1-2-1 across it, as slices (a 3x3 convolution with one channel
    is several times slower on a CPU)."""
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    dx = padded[..., :, 2:] - padded[..., :, :-2]  # (H + 2, W)
    dy = padded[..., 2:, :] - padded[..., :-2, :]  # (H, W + 2)
    return dx[..., :-2, :] + 2.0 * dx[..., 1:-1, :] + dx[..., 2:, :], dy[..., :-2] + 2.0 * dy[..., 1:-1] + dy[..., 2:]


def photometric_error(grey1: torch.Tensor, grey2: torch.Tensor, flow: torch.Tensor, window: int = FUSION_WINDOW) -> torch.Tensor:
    """How badly ``flow`` explains frame 1 from frame 2, per pixel: the mean over a ``window``
    square of |I1 - I2(x + flow)| + GRADIENT_WEIGHT * (|dI/dx| + |dI/dy| differences), grey
    levels (B, 1, H, W). ``flow`` may hold K candidate flows per pair as a (K * B, 2, H, W)
    batch (candidate-major); the result is then (K * B, 1, H, W), frame 1's gradients computed
    once."""
    candidates = flow.shape[0] // grey1.shape[0]
    warped = sample(grey2.repeat(candidates, 1, 1, 1), flow)
    gx1, gy1 = sobel(grey1)
    gx2, gy2 = sobel(warped)
    # (K * B, ...) -> (K, B, ...): frame 1's terms broadcast over the candidates, never copied.
    per_candidate = lambda t: t.unflatten(0, (candidates, -1))  # noqa: E731
    error = ((per_candidate(warped) - grey1).abs()
             + GRADIENT_WEIGHT * ((per_candidate(gx2) - gx1).abs() + (per_candidate(gy2) - gy1).abs()))
    return box_mean(error.flatten(0, 1), window)


def box_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean of (B, C, H, W) ``x`` over the ``window`` x ``window`` square around each pixel,
    over the pixels inside the frame: separable, a row mean then a column mean (the in-frame
    part of a square is a rectangle, so this is the square's mean exactly), 2 x window reads per
    pixel instead of window squared."""
    half = window // 2
    rows = F.avg_pool2d(x, (1, window), stride=1, padding=(0, half), count_include_pad=False)
    return F.avg_pool2d(rows, (window, 1), stride=1, padding=(half, 0), count_include_pad=False)


def fuse(direct: torch.Tensor, stacked: torch.Tensor, grey1: torch.Tensor, grey2: torch.Tensor,
         window: int = FUSION_WINDOW) -> torch.Tensor:
    """Per pixel, ``stacked`` where its :func:`photometric_error` is lower than ``direct``'s, else
    ``direct``. grey1, grey2: (B, 1, H, W) :func:`luminance` of the two frames."""
    # Both candidates as one batch of 2B: one warp, one box mean and frame 1's gradients once
    # (the same per-pixel errors as two photometric_error calls).
    batch = grey1.shape[0]
    errors = photometric_error(grey1, grey2, torch.cat([stacked, direct]), window)
    return torch.where(errors[:batch] < errors[batch:], stacked, direct)


#: Names the engine, the node and the CLI accept for ``cascade`` ("auto": :func:`resolve_cascade`).
CASCADES = ("auto", "two-scale", "none")


def resolve_cascade(name: str, card: dict) -> str:
    """``name`` with "auto" resolved for the weights whose card is ``card``: "none" for the
    paper's published weights (they run exactly as published) and for untrained ones (their flow
    is noise: twice the time for nothing), else "two-scale" (lfn_ros's own weights: measured
    better on the evaluation data, docs/training.md). ValueError for a name not in :data:`CASCADES`."""
    if name not in CASCADES:
        raise ValueError(f"cascade must be one of {', '.join(CASCADES)}, got {name!r}")
    if name != "auto":
        return name
    return "none" if card.get("imported") or not card.get("trained", True) else "two-scale"
