"""Accuracy metrics of flow and occlusion estimates (pixels; at the ground truth's resolution).

    EPE      mean endpoint error |pred - gt|_2 over valid pixels.
    1/3/5px  fraction of valid pixels with EPE < 1, 3, 5 pixels (tables print them as %).
    Fl-all   percentage of valid pixels with EPE > 3 px AND EPE > 5 % of |gt| (KITTI's outlier
             definition; "all" because KITTI applies it to all pixels of its GT file).
    s0-10, s10-40, s40+
             EPE over the valid pixels whose TRUE motion |gt| is below 10 px, 10-40 px, or 40 px
             and more (MPI-Sintel's speed bins, Butler et al. 2012): small motion and sub-pixel
             precision apart from large motion (issue 15).
    occlusion precision / recall / F1 of a predicted mask against a ground-truth mask.

The ``*_counts`` functions return summable pixel counts, so metrics over several pairs are
computed from the sums (every pixel weighs the same), then ``summarize_*`` turns them into rates.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def _as_flow(name: str, flow) -> np.ndarray:
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"{name} must have shape (H, W, 2), got {flow.shape}")
    return flow


def _as_mask(name: str, mask, shape) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {mask.shape}")
    return mask.astype(bool, copy=False)


#: Sintel's speed bins: (name, low, high) of the true motion |gt| in pixels, low <= |gt| < high.
MOTION_BINS = (("s0-10", 0.0, 10.0), ("s10-40", 10.0, 40.0), ("s40+", 40.0, float("inf")))


def error_counts(pred, gt, valid=None) -> dict:
    """Summable error statistics of one pair (add them over pairs, then :func:`summarize_errors`).

    Args:
        pred, gt: (H, W, 2) flow, pixels, same resolution.
        valid: (H, W) bool, pixels to score (None: all).

    Returns:
        dict n (valid pixels), epe_sum, lt1, lt3, lt5 (pixel counts with EPE < 1/3/5), fl
        (pixel count with EPE > 3 and EPE > 0.05 |gt|), and per motion bin B of MOTION_BINS
        ``n_B`` (valid pixels in it) and ``epe_sum_B``.
    """
    pred, gt = _as_flow("pred", pred), _as_flow("gt", gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} differ in shape; score at the GT's resolution")
    valid = _as_mask("valid", valid, gt.shape[:2])
    diff = pred[valid].astype(np.float64) - gt[valid].astype(np.float64)
    epe = np.sqrt((diff ** 2).sum(axis=1))
    magnitude = np.sqrt((gt[valid].astype(np.float64) ** 2).sum(axis=1))
    counts = {
        "n": int(epe.size),
        "epe_sum": float(epe.sum()),
        "lt1": int((epe < 1.0).sum()),
        "lt3": int((epe < 3.0).sum()),
        "lt5": int((epe < 5.0).sum()),
        "fl": int(((epe > 3.0) & (epe > 0.05 * magnitude)).sum()),
    }
    for name, low, high in MOTION_BINS:
        inside = (magnitude >= low) & (magnitude < high)
        counts[f"n_{name}"] = int(inside.sum())
        counts[f"epe_sum_{name}"] = float(epe[inside].sum())
    return counts


def add_counts(total: dict, counts: dict) -> dict:
    """``total`` += ``counts`` key by key (missing keys start at 0); returns ``total``."""
    for key, value in counts.items():
        total[key] = total.get(key, 0) + value
    return total


def bin_epes(counts: dict) -> dict:
    """{"epe_<bin>": EPE over that motion bin, NaN where it has no pixel} from (summed) counts."""
    return {f"epe_{name}": (counts.get(f"epe_sum_{name}", 0.0) / counts[f"n_{name}"]
                            if counts.get(f"n_{name}") else float("nan"))
            for name, _, _ in MOTION_BINS}


def summarize_errors(counts: dict) -> dict:
    """Metrics from (summed) :func:`error_counts`: epe (px), 1px / 3px / 5px (fractions in
    [0, 1]), fl_all (percent in [0, 100]), n, and epe_s0-10 / epe_s10-40 / epe_s40+ (px) with
    n_s0-10 / ... (pixels per bin). NaN when there is no valid pixel (in the bin)."""
    n = counts["n"]
    bins = {**bin_epes(counts), **{f"n_{name}": int(counts.get(f"n_{name}", 0)) for name, _, _ in MOTION_BINS}}
    if n == 0:
        nan = float("nan")
        return {"epe": nan, "1px": nan, "3px": nan, "5px": nan, "fl_all": nan, "n": 0, **bins}
    return {
        "epe": counts["epe_sum"] / n,
        "1px": counts["lt1"] / n,
        "3px": counts["lt3"] / n,
        "5px": counts["lt5"] / n,
        "fl_all": 100.0 * counts["fl"] / n,
        "n": n,
        **bins,
    }


def endpoint_error(pred, gt, valid=None) -> dict:
    """Endpoint-error metrics of one flow field.

    Args:
        pred: (H, W, 2) predicted flow, pixels; channel 0 = x, 1 = y.
        gt: (H, W, 2) ground truth at the same resolution.
        valid: (H, W) bool, pixels with ground truth (None: all).

    Returns:
        dict with
            epe: mean endpoint error over valid pixels, pixels.
            1px, 3px, 5px: fraction (0..1) of valid pixels with EPE < 1, 3, 5 px.
            fl_all: PERCENT (0..100) of valid pixels with EPE > 3 px and EPE > 5 % of |gt|.
            n: number of valid pixels.
            epe_s0-10, epe_s10-40, epe_s40+: EPE over the valid pixels of each MOTION_BINS bin
            of the true motion, pixels; n_s0-10, ...: their pixel counts.
        Values are NaN when no pixel is valid.
    """
    return summarize_errors(error_counts(pred, gt, valid))


class OcclusionScores(NamedTuple):
    """Precision, recall and F1 of a predicted occlusion mask (each in [0, 1])."""

    precision: float
    recall: float
    f1: float


def occlusion_counts(pred_mask, gt_mask, valid=None) -> dict:
    """True positives, false positives and false negatives (pixel counts) of an occlusion mask
    against the ground truth, over ``valid`` pixels (None: all)."""
    pred_mask, gt_mask = np.asarray(pred_mask), np.asarray(gt_mask)
    if pred_mask.shape != gt_mask.shape or pred_mask.ndim != 2:
        raise ValueError(f"occlusion masks must both be (H, W), got {pred_mask.shape} and {gt_mask.shape}")
    valid = _as_mask("valid", valid, gt_mask.shape)
    pred, gt = pred_mask.astype(bool)[valid], gt_mask.astype(bool)[valid]
    return {"tp": int((pred & gt).sum()), "fp": int((pred & ~gt).sum()), "fn": int((~pred & gt).sum())}


def summarize_occlusion(counts: dict) -> OcclusionScores:
    """Scores from (summed) :func:`occlusion_counts`. An empty prediction of an empty ground
    truth is perfect (1, 1, 1); otherwise a ratio with a zero denominator counts as 0."""
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    if tp + fp + fn == 0:
        return OcclusionScores(1.0, 1.0, 1.0)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return OcclusionScores(precision, recall, f1)


def occlusion_scores(pred_mask, gt_mask, valid=None) -> OcclusionScores:
    """Precision, recall and F1 of ``pred_mask`` ((H, W) bool, True = occluded) against
    ``gt_mask`` over the ``valid`` pixels (None: all). Returns (precision, recall, f1)."""
    return summarize_occlusion(occlusion_counts(pred_mask, gt_mask, valid))
