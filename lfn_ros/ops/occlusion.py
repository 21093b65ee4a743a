"""Occlusion from forward-backward consistency (Sundaram, Brox, Keutzer, ECCV 2010).

A pixel x of the first frame is occluded (has no match in the second) where the forward flow
and the backward flow sampled at its destination do not cancel:

    |f_fw(x) + f_bw(x + f_fw(x))|^2 > alpha * (|f_fw(x)|^2 + |f_bw(x + f_fw(x))|^2) + beta

Pixels whose destination leaves the frame are occluded too. The defaults alpha = 0.01 and
beta = 0.5 are the paper's.
"""

from __future__ import annotations

import torch

from .warp import warp

DEFAULT_ALPHA = 0.01
DEFAULT_BETA = 0.5


def forward_backward_occlusion(
    flow_fw: torch.Tensor,
    flow_bw: torch.Tensor,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
) -> torch.Tensor:
    """Occlusion mask of the first frame.

    Args:
        flow_fw: (B, 2, H, W) flow first -> second, pixels.
        flow_bw: (B, 2, H, W) flow second -> first, pixels.
        alpha: relative tolerance (dimensionless).
        beta: absolute tolerance, pixels^2.

    Returns:
        (B, 1, H, W) bool, True where the pixel of the first frame is occluded.
    """
    if flow_fw.shape != flow_bw.shape or flow_fw.dim() != 4 or flow_fw.shape[1] != 2:
        raise ValueError(
            f"forward_backward_occlusion expects two (B, 2, H, W) flows, got {tuple(flow_fw.shape)}, {tuple(flow_bw.shape)}"
        )
    if alpha < 0 or beta < 0:
        raise ValueError(f"alpha and beta must be >= 0, got {alpha}, {beta}")
    flow_bw_warped, inside = warp(flow_bw, flow_fw, return_mask=True)
    mismatch = (flow_fw + flow_bw_warped).square().sum(1, keepdim=True)
    magnitude = flow_fw.square().sum(1, keepdim=True) + flow_bw_warped.square().sum(1, keepdim=True)
    return (mismatch > alpha * magnitude + beta) | ~inside
