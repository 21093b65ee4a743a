"""LiteFlowNet's multi-scale training loss (docs/architecture.md section 3; Hui et al., CVPR 2018, section 4).

At every NetE level k the predicted flow (units: full-resolution pixels / 20) is compared with
the ground truth divided by 20 and reduced to that level's resolution, by the L2 endpoint error
``||pred - gt||_2`` per pixel, weighted per level as published::

    level   6     5     4     3     2
    weight  0.32  0.08  0.02  0.01  0.005

Choices, and why:

- **Downsampling of the ground truth: area averaging** (average pooling over each
  2^(k-1) x 2^(k-1) cell). Level k's pixel (i, j) covers exactly that cell of the input (the
  model's pyramid uses strided convolutions and ``align_corners=False`` resizing), and the mean
  flow over the cell is both the value of a smooth field at the cell centre and the constant that
  minimises the squared error over the cell. Bilinear resizing by 1/2^n (``align_corners=False``)
  would read only the 2x2 pixels around each cell centre and alias fine motion. With a valid mask
  the average is taken over valid pixels only; a cell with none is invalid at that level. The
  flow values are not rescaled: the network keeps flow in full-resolution units at every level.
- **Reduction: sum over pixels, mean over the batch**, as the published (Caffe) loss and the
  per-level weights assume. With a sum, level k's total weight is ``w_k * N_k`` and
  ``N_k = N_2 / 4^(k-2)``, so the published weights give every level a comparable share (levels
  6, 5, 4 each 1/4 of level 2's, level 3 half of level 2's). A per-pixel mean would instead make
  level 6 count 64 times as much as level 2 and leave the fine levels nearly untrained. The loss
  value therefore grows with the crop size; compare runs by the reported EPE in pixels.
- Levels that are not run (``finest_level`` > 2 during stage-wise training) are simply absent.
- ``robust=True`` replaces the endpoint error by ``(|du| + |dv| + eps) ** q`` (eps = 0.01,
  q = 0.4), the robust loss PWC-Net uses for fine-tuning (Sun et al., CVPR 2018); off by default.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..model.liteflownet import FLOW_SCALE, LEVELS

#: Published per-level weights, level -> weight.
LEVEL_WEIGHTS = {6: 0.32, 5: 0.08, 4: 0.02, 3: 0.01, 2: 0.005}


def downsample_flow(flow: torch.Tensor, factor: int, valid: torch.Tensor | None = None):
    """Area-average a flow field by an integer factor, over valid pixels only.

    Args:
        flow: (B, 2, H, W) float, any units (values are not rescaled).
        factor: cell size; H and W must be multiples of it.
        valid: optional (B, 1, H, W) bool mask.

    Returns:
        (flow (B, 2, H/f, W/f), valid (B, 1, H/f, W/f) bool: cells with at least one valid pixel).
    """
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (B, 2, H, W), got {tuple(flow.shape)}")
    height, width = flow.shape[-2:]
    if height % factor or width % factor:
        raise ValueError(f"flow size {height}x{width} is not a multiple of {factor}")
    if factor == 1:
        return flow, (torch.ones_like(flow[:, :1], dtype=torch.bool) if valid is None else valid)
    if valid is None:
        pooled = F.avg_pool2d(flow, factor)
        return pooled, torch.ones_like(pooled[:, :1], dtype=torch.bool)
    weight = valid.to(flow.dtype)
    total = F.avg_pool2d(flow * weight, factor)
    count = F.avg_pool2d(weight, factor)
    return total / count.clamp_min(1e-12), count > 0


def multiscale_loss(
    levels: Sequence[torch.Tensor],
    flow: torch.Tensor,
    valid: torch.Tensor | None = None,
    level_ids: Sequence[int] | None = None,
    weights: dict | None = None,
    robust: bool = False,
) -> tuple[torch.Tensor, dict]:
    """The multi-scale loss.

    Args:
        levels: the model's per-level flows, coarse to fine (``LiteFlowNet(..., return_levels=True)``),
            level k of shape (B, 2, H/2^(k-1), W/2^(k-1)), units pixels / 20.
        flow: (B, 2, H, W) ground truth in pixels; H, W multiples of 32 (the model's input size,
            so that no resize factor applies).
        valid: optional (B, 1, H, W) bool, where the ground truth is defined.
        level_ids: the level number of each entry of ``levels`` (default: 6, 5, ... in order).
        weights: level -> weight (default :data:`LEVEL_WEIGHTS`).
        robust: use the robust penalty instead of the endpoint error (see the module docstring).

    Returns:
        (loss: scalar tensor, float32, summed over pixels and levels, averaged over the batch;
         parts: {level: that level's weighted loss (tensor, detached)} for logging).
    """
    if not levels:
        raise ValueError("multiscale_loss needs at least one level")
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"ground-truth flow must be (B, 2, H, W), got {tuple(flow.shape)}")
    level_ids = list(level_ids) if level_ids is not None else list(LEVELS[: len(levels)])
    if len(level_ids) != len(levels):
        raise ValueError(f"{len(levels)} level outputs but {len(level_ids)} level ids")
    weights = LEVEL_WEIGHTS if weights is None else weights
    batch, _, height, width = flow.shape
    target = flow.float() / FLOW_SCALE
    total = torch.zeros((), device=flow.device, dtype=torch.float32)
    parts = {}
    for level, pred in zip(level_ids, levels):
        factor = 2 ** (level - 1)
        if pred.shape[0] != batch or pred.shape[1] != 2 or tuple(pred.shape[-2:]) != (height // factor, width // factor):
            raise ValueError(
                f"level {level} prediction {tuple(pred.shape)} does not match ground truth {tuple(flow.shape)} / {factor}"
            )
        gt, gt_valid = downsample_flow(target, factor, valid)
        diff = pred.float() - gt
        if robust:
            per_pixel = (diff.abs().sum(1, keepdim=True) + 0.01).pow(0.4)
        else:
            squared = diff.square().sum(1, keepdim=True)
            # exactly 0 for a perfect prediction, and a finite (zero) gradient there
            per_pixel = torch.where(squared > 0, squared.clamp_min(1e-20).sqrt(), torch.zeros_like(squared))
        per_pixel = torch.where(gt_valid, per_pixel, torch.zeros_like(per_pixel))
        term = weights[level] * per_pixel.sum() / batch
        parts[level] = term.detach()
        total = total + term
    return total, parts


def stage_loss(stages, flow: torch.Tensor, valid: torch.Tensor | None = None, weights: dict | None = None) -> torch.Tensor:
    """Deep supervision of M and S (our addition to the published loss, issue 8): the same
    per-level weighted L2 endpoint error as :func:`multiscale_loss`, on the flow M predicts from
    the cost volume and on S's refinement, not only on the level's output after R.

    Why: trained on the published loss only, S learned to match by itself within its receptive
    field and M stayed at its initialisation (measured: level 6's M output 0.1 px for a 30 px
    shift whose cost volume peaked at the right displacement), so motions beyond ~20 px were
    lost. Supervising M directly makes the correlation, the only part that sees far, carry them.

    stages: [(level, M flow, S flow)] from ``LiteFlowNet.decode(..., stages=list)``."""
    if not stages:
        raise ValueError("stage_loss needs the (level, M, S) outputs of decode(..., stages=[])")
    levels = [k for k, _, _ in stages]
    total, _ = multiscale_loss([m for _, m, _ in stages], flow, valid, level_ids=levels, weights=weights)
    refined, _ = multiscale_loss([s for _, _, s in stages], flow, valid, level_ids=levels, weights=weights)
    return total + refined


def mean_epe(pred: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean endpoint error in pixels of (B, 2, H, W) predictions against ground truth (same
    size and units) over valid pixels; a detached scalar tensor."""
    with torch.no_grad():
        epe = (pred.float() - flow.float()).square().sum(1, keepdim=True).sqrt()
        if valid is None:
            return epe.mean()
        return epe[valid].mean() if bool(valid.any()) else epe.new_zeros(())
