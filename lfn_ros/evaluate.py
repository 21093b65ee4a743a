"""Accuracy metrics and the evaluation runner (DESIGN.md section 7).

Metrics (pixels; computed at the ground truth's resolution, over its valid pixels):
    EPE      mean endpoint error |pred - gt|_2.
    1/3/5px  fraction of valid pixels with EPE < 1, 3, 5 pixels (tables print them as %).
    Fl-all   percentage of valid pixels with EPE > 3 px AND EPE > 5 % of |gt| (KITTI's outlier
             definition; named "all" because KITTI applies it to all pixels of its GT file).
    occlusion precision / recall / F1 of a predicted mask against a ground-truth mask.

Runner: every method runs on the same pairs of every dataset found by
:func:`lfn_ros.data.datasets.discover`; one table per dataset and an "all" summary are printed,
optionally a plot of EPE against time per pair and a JSON file with the raw numbers.

Methods:
    lfn_ros        LiteFlowNet through :class:`lfn_ros.engine.FlowEngine` on the full images (the
                   engine resizes to its grid internally); its forward-backward occlusion mask is
                   scored against the dataset's occlusion ground truth where there is one.
    RAFT-small     torchvision's ``raft_small`` with the authors' weights from
                   ``../shared/weights/raft-small.pth``, 12 iterations, GPU only (needs torchvision
                   and CUDA; skipped with a printed reason otherwise).
    DIS-ultrafast, DIS-fast, DIS-medium
                   OpenCV DIS presets on grey images (the grey conversion is timed too).
    Farneback      OpenCV Farneback on grey images with FARNEBACK_PARAMS.
    zero           zero flow: the sanity baseline; every method must beat it.

Time per pair is wall clock around one method call (image in, flow out on the host), after one
untimed warm-up call per method and image size; on a GPU the device is synchronised before and
after. lfn_ros's time includes its occlusion mask (forward and backward flow in one batch of
two, as the node runs it); the peers compute forward flow only. Pairs shared by two datasets
(KITTI noc/occ) are computed once and scored against each ground truth.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import cv2
import numpy as np

from .data.datasets import discover

REPO_ROOT = Path(__file__).resolve().parents[1]

METHODS = ("lfn_ros", "RAFT-small", "DIS-ultrafast", "DIS-fast", "DIS-medium", "Farneback", "zero")
"""Every method the runner knows, in table order."""

PEERS = METHODS[1:]

DIS_PRESETS = {
    "DIS-ultrafast": "DISOPTICAL_FLOW_PRESET_ULTRAFAST",
    "DIS-fast": "DISOPTICAL_FLOW_PRESET_FAST",
    "DIS-medium": "DISOPTICAL_FLOW_PRESET_MEDIUM",
}

FARNEBACK_PARAMS = dict(pyr_scale=0.5, levels=5, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
"""Farneback settings: the commonly used ones (OpenCV's samples, poly_n 5 with sigma 1.2)."""

RAFT_ITERATIONS = 12

__all__ = [
    "METHODS",
    "PEERS",
    "FARNEBACK_PARAMS",
    "OcclusionScores",
    "MethodUnavailable",
    "endpoint_error",
    "occlusion_scores",
    "error_counts",
    "occlusion_counts",
    "summarize_errors",
    "summarize_occlusion",
    "make_method",
    "raft_state_dict",
    "evaluate",
    "default_data_root",
    "add_parser",
    "run_cli",
]


# =========================================================================== metrics

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


def error_counts(pred, gt, valid=None) -> dict:
    """Summable error statistics of one pair (add them over pairs, then :func:`summarize_errors`).

    Args:
        pred, gt: (H, W, 2) flow, pixels, same resolution.
        valid: (H, W) bool, pixels to score (None: all).

    Returns:
        dict n (valid pixels), epe_sum, lt1, lt3, lt5 (pixel counts with EPE < 1/3/5), fl
        (pixel count with EPE > 3 and EPE > 0.05 |gt|).
    """
    pred, gt = _as_flow("pred", pred), _as_flow("gt", gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} differ in shape; score at the GT's resolution")
    valid = _as_mask("valid", valid, gt.shape[:2])
    diff = pred[valid].astype(np.float64) - gt[valid].astype(np.float64)
    epe = np.sqrt((diff ** 2).sum(axis=1))
    magnitude = np.sqrt((gt[valid].astype(np.float64) ** 2).sum(axis=1))
    return {
        "n": int(epe.size),
        "epe_sum": float(epe.sum()),
        "lt1": int((epe < 1.0).sum()),
        "lt3": int((epe < 3.0).sum()),
        "lt5": int((epe < 5.0).sum()),
        "fl": int(((epe > 3.0) & (epe > 0.05 * magnitude)).sum()),
    }


def summarize_errors(counts: dict) -> dict:
    """Metrics from (summed) :func:`error_counts`: epe (px), 1px / 3px / 5px (fractions in
    [0, 1]), fl_all (percent in [0, 100]), n. NaN when there is no valid pixel."""
    n = counts["n"]
    if n == 0:
        nan = float("nan")
        return {"epe": nan, "1px": nan, "3px": nan, "5px": nan, "fl_all": nan, "n": 0}
    return {
        "epe": counts["epe_sum"] / n,
        "1px": counts["lt1"] / n,
        "3px": counts["lt3"] / n,
        "5px": counts["lt5"] / n,
        "fl_all": 100.0 * counts["fl"] / n,
        "n": n,
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


# =========================================================================== methods

class MethodUnavailable(RuntimeError):
    """A method cannot run in this environment (the message says why)."""


@dataclass
class Method:
    """A flow method: ``fn(image1, image2) -> (flow (H, W, 2) float32, occlusion or None)``.

    label: the name printed in tables. sync: called before and after timing (GPU methods).
    """

    name: str
    label: str
    fn: Callable
    sync: Optional[Callable[[], None]] = None
    info: Optional[dict] = None

    def timed(self, image1: np.ndarray, image2: np.ndarray):
        """Run once; returns (flow, occlusion or None, milliseconds of wall clock)."""
        if self.sync:
            self.sync()
        t0 = time.perf_counter()
        flow, occlusion = self.fn(image1, image2)
        if self.sync:
            self.sync()
        return flow, occlusion, (time.perf_counter() - t0) * 1000.0


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _dis_method(name: str) -> Method:
    dis = cv2.DISOpticalFlow_create(getattr(cv2, DIS_PRESETS[name]))

    def run(image1, image2):
        return dis.calc(_grey(image1), _grey(image2), None), None

    return Method(name, name, run)


def _farneback_method() -> Method:
    def run(image1, image2):
        return cv2.calcOpticalFlowFarneback(_grey(image1), _grey(image2), None, **FARNEBACK_PARAMS), None

    return Method("Farneback", "Farneback", run, info=dict(FARNEBACK_PARAMS))


def _zero_method() -> Method:
    def run(image1, image2):
        return np.zeros(image1.shape[:2] + (2,), dtype=np.float32), None

    return Method("zero", "zero flow", run)


def _lfn_method(weights, device: str, finest_level: Optional[int]) -> Method:
    import torch

    from .engine import FlowEngine

    engine = FlowEngine(weights=weights, device=device, finest_level=finest_level, occlusion=True)

    def run(image1, image2):
        result = engine.infer(image1, image2, occlusion=True)
        return result.flow, result.occlusion

    sync = None
    if engine.device.type == "cuda":
        def sync():
            torch.cuda.synchronize(engine.device)

    card = dict(engine.card)
    trained = card.get("trained", False)
    name = card.get("name", "?")
    label = f"lfn_ros ({name})" if trained else "lfn_ros (untrained)"
    info = {"card": card, "model": engine.model_name, "device": engine.device_name}
    return Method("lfn_ros", label, run, sync, info)


# ------------------------------------------------------------------- RAFT-small (GPU only)
# UNTESTED on the CPU development machine (no torchvision, no CUDA there); the key mapping below
# is unit-tested, the forward pass only runs where torchvision and CUDA exist.

_RAFT_RENAMES = (
    # (authors' prefix, torchvision prefix), first match wins; applied after dropping "module."
    ("update_block.encoder.convc1.", "update_block.motion_encoder.convcorr1.0."),
    ("update_block.encoder.convc2.", "update_block.motion_encoder.convcorr2.0."),
    ("update_block.encoder.convf1.", "update_block.motion_encoder.convflow1.0."),
    ("update_block.encoder.convf2.", "update_block.motion_encoder.convflow2.0."),
    ("update_block.encoder.conv.", "update_block.motion_encoder.conv.0."),
    ("update_block.gru.", "update_block.recurrent_block.convgru1."),
    ("update_block.flow_head.", "update_block.flow_head."),
)


def _raft_encoder_name(rest: str, prefix: str) -> Optional[str]:
    """fnet/cnet parameter names: conv1 -> convnormrelu.0, layerN.i.convK -> convnormreluK.0,
    layerN.i.downsample.0 -> same, conv2 -> conv."""
    parts = rest.split(".")
    if parts[0] == "conv1" and len(parts) == 2:
        return f"{prefix}.convnormrelu.0.{parts[1]}"
    if parts[0] == "conv2" and len(parts) == 2:
        return f"{prefix}.conv.{parts[1]}"
    if parts[0].startswith("layer") and len(parts) >= 4:
        layer, block, conv = parts[0], parts[1], parts[2]
        if conv.startswith("conv") and conv[4:].isdigit() and len(parts) == 4:
            return f"{prefix}.{layer}.{block}.convnormrelu{conv[4:]}.0.{parts[3]}"
        if conv == "downsample" and parts[3] == "0" and len(parts) == 5:
            return f"{prefix}.{layer}.{block}.downsample.0.{parts[4]}"
    return None


def raft_state_dict(authors_state: dict) -> dict:
    """Map a RAFT state dict in the authors' layout (princeton-vl/RAFT, keys "module.fnet...")
    onto torchvision's ``raft_small`` names.

    fnet -> feature_encoder and cnet -> context_encoder (convK of a bottleneck block becomes
    convnormreluK.0, conv1 -> convnormrelu.0, conv2 -> conv); update_block.encoder ->
    update_block.motion_encoder (convc1 -> convcorr1.0, convf1/2 -> convflow1/2.0, conv ->
    conv.0); update_block.gru -> update_block.recurrent_block.convgru1; flow_head unchanged.
    Norm layers of RAFT-small have no parameters (instance norm without affine, or none).

    Raises:
        ValueError: a key that has no torchvision counterpart (e.g. RAFT-large's batch norms).
    """
    mapped = {}
    for key, tensor in authors_state.items():
        name = key[len("module."):] if key.startswith("module.") else key
        new = None
        if name.startswith("fnet."):
            new = _raft_encoder_name(name[len("fnet."):], "feature_encoder")
        elif name.startswith("cnet."):
            new = _raft_encoder_name(name[len("cnet."):], "context_encoder")
        else:
            for old_prefix, new_prefix in _RAFT_RENAMES:
                if name.startswith(old_prefix):
                    new = new_prefix + name[len(old_prefix):]
                    break
        if new is None:
            raise ValueError(f"RAFT key {key!r} has no torchvision raft_small counterpart")
        if new in mapped:
            raise ValueError(f"RAFT keys map onto {new!r} twice")
        mapped[new] = tensor
    return mapped


def default_raft_weights() -> Path:
    """$LFN_ROS_RAFT_WEIGHTS, else ../shared/weights/raft-small.pth next to the repository."""
    env = os.environ.get("LFN_ROS_RAFT_WEIGHTS")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "weights" / "raft-small.pth"


def _raft_method(device: str, weights_path=None) -> Method:
    """RAFT-small peer. Needs torchvision and CUDA (MethodUnavailable otherwise)."""
    try:
        import torch
        import torch.nn.functional as F
        from torchvision.models.optical_flow import raft_small
    except ImportError as exc:
        raise MethodUnavailable(f"torchvision is not importable ({exc}); RAFT-small runs on the GPU machine") from exc
    if not torch.cuda.is_available():
        raise MethodUnavailable("CUDA is not available; RAFT-small is a GPU-only peer")
    if not str(device).startswith("cuda"):
        raise MethodUnavailable(f"device is {device!r}; RAFT-small is a GPU-only peer (use --device cuda)")
    path = Path(weights_path) if weights_path else default_raft_weights()
    if not path.is_file():
        raise MethodUnavailable(f"RAFT-small weights not found at {path}")
    dev = torch.device(device)
    model = raft_small(weights=None)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(raft_state_dict(state), strict=True)
    model = model.to(dev).eval()

    @torch.no_grad()
    def run(image1, image2):
        height, width = image1.shape[:2]
        pad_h, pad_w = (-height) % 8, (-width) % 8
        pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        batch = torch.from_numpy(np.stack([image1, image2])).to(dev, non_blocking=True)
        batch = batch.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0  # RGB in [-1, 1]
        batch = F.pad(batch, pads, mode="replicate")
        flow = model(batch[0:1], batch[1:2], num_flow_updates=RAFT_ITERATIONS)[-1]
        flow = flow[0, :, pads[2]:pads[2] + height, pads[0]:pads[0] + width]
        return flow.permute(1, 2, 0).float().cpu().numpy(), None

    def sync():
        torch.cuda.synchronize(dev)

    return Method("RAFT-small", "RAFT-small (torchvision)", run, sync,
                  {"weights": str(path), "iterations": RAFT_ITERATIONS, "device": str(dev)})


def make_method(name: str, weights="default", device: str = "cpu", finest_level: Optional[int] = None) -> Method:
    """Build one method by name (see METHODS). Raises MethodUnavailable when it cannot run here
    and ValueError for an unknown name."""
    if name == "lfn_ros":
        return _lfn_method(weights, device, finest_level)
    if name == "RAFT-small":
        return _raft_method(device)
    if name in DIS_PRESETS:
        return _dis_method(name)
    if name == "Farneback":
        return _farneback_method()
    if name == "zero":
        return _zero_method()
    raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")


# =========================================================================== runner

def default_data_root() -> Optional[Path]:
    """$LFN_ROS_DATA, else ../shared/data next to the repository; None if it does not exist."""
    env = os.environ.get("LFN_ROS_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


def _match_resolution(flow: np.ndarray, size) -> np.ndarray:
    """Resize a flow to the GT's (H, W) and rescale its vectors (no-op when equal)."""
    height, width = size
    if flow.shape[:2] == (height, width):
        return flow
    h, w = flow.shape[:2]
    resized = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    resized[..., 0] *= width / w
    resized[..., 1] *= height / h
    return resized


def _empty_errors() -> dict:
    return {"n": 0, "epe_sum": 0.0, "lt1": 0, "lt3": 0, "lt5": 0, "fl": 0}


def _add(total: dict, part: dict) -> None:
    for key, value in part.items():
        total[key] += value


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _sanitize(obj):
    """JSON-safe copy: NaN/inf -> null, numpy scalars -> Python, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): _sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_sanitize(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return _finite_or_none(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _fmt(value, spec: str, width: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-".rjust(width)
    return format(value, spec).rjust(width)


_COLUMNS = (("EPE", "epe", 1.0, ".3f", 8), ("1px%", "1px", 100.0, ".1f", 7), ("3px%", "3px", 100.0, ".1f", 7),
            ("5px%", "5px", 100.0, ".1f", 7), ("Fl-all%", "fl_all", 1.0, ".2f", 8), ("occ F1", "occ_f1", 1.0, ".3f", 7),
            ("ms/pair", "ms_per_pair", 1.0, ".1f", 9))


def format_table(title: str, rows: Dict[str, dict], labels: Dict[str, str]) -> str:
    """A plain-text table: one row per method (label), the columns of _COLUMNS."""
    name_width = max([len("method")] + [len(labels.get(m, m)) for m in rows]) + 2
    lines = [title, "method".ljust(name_width) + "".join(h.rjust(w) for h, _, _, _, w in _COLUMNS)]
    lines.append("-" * len(lines[1]))
    for method, row in rows.items():
        cells = []
        for _, key, scale, spec, width in _COLUMNS:
            value = row.get(key)
            if isinstance(value, (int, float)) and value is not None and math.isfinite(value):
                value = value * scale
            cells.append(_fmt(value, spec, width))
        lines.append(labels.get(method, method).ljust(name_width) + "".join(cells))
    return "\n".join(lines)


def _size_text(sizes: set) -> str:
    if len(sizes) == 1:
        (h, w), = sizes
        return f"{w}x{h}"
    return "various sizes"


def _plot(results: dict, path, labels: Dict[str, str]) -> None:
    # The object-oriented API (no pyplot): no GUI backend is touched, nothing global changes.
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    markers = "osD^vP*Xh<>"
    colours = matplotlib.colormaps["tab10"]
    methods = results["methods"]
    datasets = list(results["datasets"])
    fig = Figure(figsize=(8.5, 5.5))
    ax = fig.subplots()
    for d, dataset in enumerate(datasets):
        rows = results["datasets"][dataset]["methods"]
        for method in methods:
            m = METHODS.index(method)  # a method keeps its colour whichever methods run
            row = rows.get(method)
            if not row or row.get("epe") is None or not math.isfinite(row["epe"]):
                continue
            ms = max(row["ms_per_pair"], 1e-3)
            ax.scatter(ms, row["epe"], marker=markers[d % len(markers)], color=colours(m % 10), s=55,
                       edgecolors="black", linewidths=0.5, zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("time per pair (ms, wall clock, log scale)")
    ax.set_ylabel("EPE (px)")
    ax.set_title(f"Accuracy vs time per pair ({results.get('device', '?')})")
    ax.grid(True, which="both", alpha=0.3)
    method_handles = [Line2D([], [], marker="o", linestyle="", color=colours(METHODS.index(name) % 10),
                             label=labels.get(name, name)) for name in methods]
    dataset_handles = [Line2D([], [], marker=markers[d % len(markers)], linestyle="", color="grey", label=name)
                       for d, name in enumerate(datasets)]
    first = ax.legend(handles=method_handles, title="method", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.add_artist(first)
    ax.legend(handles=dataset_handles, title="dataset", loc="lower left", bbox_to_anchor=(1.01, 0.0), fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def evaluate(
    root,
    weights="default",
    device: str = "cpu",
    methods: Sequence[str] = METHODS,
    datasets: Optional[Sequence[str]] = None,
    max_pairs: Optional[int] = None,
    plot=None,
    json_out=None,
    progress: bool = True,
    finest_level: Optional[int] = None,
    warmup: bool = True,
    out=None,
) -> dict:
    """Evaluate lfn_ros and its peers on every dataset under ``root``.

    Args:
        root: data folder (the layout of ``../shared/data``).
        weights: lfn_ros checkpoint: a path, "default" (shipped) or None (untrained, warns).
        device: "cpu" or "cuda[:N]" for lfn_ros (and RAFT-small, which needs CUDA).
        methods: names from METHODS, printed in this order. Unavailable ones (RAFT-small
            without torchvision + CUDA) are skipped with a printed reason.
        datasets: names from :func:`discover` to run (None: all found).
        max_pairs: at most this many pairs per dataset (the first ones), None for all.
        plot: PNG file for EPE against time per pair (log x), or None.
        json_out: JSON file for the raw results, or None.
        progress: show a tqdm progress bar over pairs (stderr).
        finest_level: lfn_ros decoder's finest level (2 as published, 3 faster); None: the
            checkpoint's recommendation, else 2.
        warmup: one untimed call per method and image size before timing.
        out: text stream for the tables (default sys.stdout).

    Returns:
        dict: root, device, methods (run), labels, skipped {method: reason}, lfn_ros (card,
        model), farneback_params, datasets {name: {pairs, size, methods {method: metrics}}},
        all {datasets, left_out, methods {method: metrics}}. Per-method metrics: epe, 1px, 3px,
        5px (fractions), fl_all (%), n (pixels), ms_per_pair, pairs, occ_precision, occ_recall,
        occ_f1 (None without occlusion GT or prediction), per_pair [...].

    Raises:
        FileNotFoundError: no root. ValueError: unknown method or dataset, or nothing to run.
    """
    out = out or sys.stdout
    found = discover(root)
    if datasets is None:
        selected = dict(found)
    else:
        unknown = [d for d in datasets if d not in found]
        if unknown:
            raise ValueError(f"dataset(s) {', '.join(unknown)} not found under {root}; available: {', '.join(found) or 'none'}")
        selected = {d: found[d] for d in datasets}
    if max_pairs is not None:
        if max_pairs < 1:
            raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
        selected = {d: loaders[:max_pairs] for d, loaders in selected.items()}
    if not selected:
        raise ValueError(f"no evaluation dataset found under {root}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    if not methods:
        raise ValueError("no method to evaluate")

    runners: Dict[str, Method] = {}
    skipped: Dict[str, str] = {}
    for name in dict.fromkeys(methods):
        try:
            runners[name] = make_method(name, weights=weights, device=device, finest_level=finest_level)
        except MethodUnavailable as exc:
            skipped[name] = str(exc)
            print(f"{name} skipped: {exc}", file=out)
    labels = {name: method.label for name, method in runners.items()}
    results: dict = {
        "root": str(root),
        "device": device,
        "methods": list(runners),
        "labels": labels,
        "skipped": skipped,
        "farneback_params": dict(FARNEBACK_PARAMS),
        "datasets": {},
    }
    if "lfn_ros" in runners:
        info = runners["lfn_ros"].info
        results["lfn_ros"] = info
        results["device"] = info["device"]
        print(f"lfn_ros: {info['model']} on {info['device']}", file=out)
    if not runners:
        raise ValueError("none of the requested methods can run here: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))

    # Pairs that several datasets share (KITTI noc/occ) are computed once.
    uses: Dict[tuple, int] = {}
    for loaders in selected.values():
        for loader in loaders:
            uses[loader.key] = uses.get(loader.key, 0) + 1
    remaining = dict(uses)
    cache: Dict[tuple, dict] = {}
    warmed: set = set()

    from tqdm import tqdm

    total = sum(len(v) for v in selected.values())
    bar = tqdm(total=total, desc="evaluate", unit="pair", disable=not progress, file=sys.stderr, leave=False)
    try:
        for dataset, loaders in selected.items():
            errors = {m: _empty_errors() for m in runners}
            occ = {m: {"tp": 0, "fp": 0, "fn": 0} for m in runners}
            has_occ = {m: False for m in runners}
            times = {m: [] for m in runners}
            per_pair = {m: [] for m in runners}
            sizes = set()
            for loader in loaders:
                bar.set_postfix_str(f"{dataset} {loader.name}")
                sample = loader()
                sizes.add(sample.size)
                shared = uses[loader.key] > 1
                for name, method in runners.items():
                    cached = cache.get((name, loader.key)) if shared else None
                    if cached is not None:
                        flow, occlusion, ms = cached["flow"], cached["occlusion"], cached["ms"]
                    else:
                        shape_key = (name, sample.image1.shape)
                        if warmup and shape_key not in warmed:
                            method.fn(sample.image1, sample.image2)
                        warmed.add(shape_key)
                        flow, occlusion, ms = method.timed(sample.image1, sample.image2)
                        if shared:
                            cache[(name, loader.key)] = {"flow": flow, "occlusion": occlusion, "ms": ms}
                    flow = _match_resolution(np.asarray(flow, dtype=np.float32), sample.size)
                    counts = error_counts(flow, sample.flow, sample.valid)
                    _add(errors[name], counts)
                    times[name].append(ms)
                    entry = {"name": loader.name, **summarize_errors(counts), "ms": ms}
                    if occlusion is not None and sample.occlusion is not None:
                        region = sample.occlusion_valid if sample.occlusion_valid is not None else sample.valid
                        occlusion = np.asarray(occlusion, dtype=bool)
                        if occlusion.shape != sample.occlusion.shape:
                            occlusion = cv2.resize(occlusion.astype(np.uint8), sample.occlusion.shape[::-1],
                                                   interpolation=cv2.INTER_NEAREST).astype(bool)
                        oc = occlusion_counts(occlusion, sample.occlusion, region)
                        _add(occ[name], oc)
                        has_occ[name] = True
                        entry["occ_f1"] = summarize_occlusion(oc).f1
                    per_pair[name].append(entry)
                # Forget cached predictions once every dataset that shares the pair has used them.
                if shared:
                    remaining[loader.key] -= 1
                    if remaining[loader.key] <= 0:
                        for name in runners:
                            cache.pop((name, loader.key), None)
                bar.update(1)
            rows = {}
            for name in runners:
                row = summarize_errors(errors[name])
                row["pairs"] = len(times[name])
                row["ms_per_pair"] = float(np.mean(times[name])) if times[name] else float("nan")
                if has_occ[name]:
                    scores = summarize_occlusion(occ[name])
                    row.update(occ_precision=scores.precision, occ_recall=scores.recall, occ_f1=scores.f1)
                else:
                    row.update(occ_precision=None, occ_recall=None, occ_f1=None)
                row["per_pair"] = per_pair[name]
                rows[name] = row
            results["datasets"][dataset] = {"pairs": len(loaders), "size": _size_text(sizes), "methods": rows}
            title = f"\n== {dataset}: {len(loaders)} pair(s), {_size_text(sizes)} =="
            bar.clear()
            print(format_table(title, rows, labels), file=out, flush=True)
            bar.refresh()
    finally:
        bar.close()

    results["all"] = _summary(results, selected)
    left_out = results["all"]["left_out"]
    note = "mean over datasets, each counted once"
    if left_out:
        note += "; left out (same pairs as an earlier dataset): " + ", ".join(left_out)
    print(format_table(f"\n== all: {note} ==", results["all"]["methods"], labels), file=out, flush=True)

    if plot:
        _plot(results, plot, labels)
        print(f"plot written to {plot}", file=out)
    if json_out:
        path = Path(json_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_sanitize(results), indent=1))
        print(f"results written to {json_out}", file=out)
    return results


def _summary(results: dict, selected: dict) -> dict:
    """Unweighted mean over datasets of each metric; a dataset whose pairs all belong to an
    earlier dataset (KITTI-occ after KITTI-noc) is left out so that no pair counts twice."""
    seen: set = set()
    counted, left_out = [], []
    for dataset, loaders in selected.items():
        keys = {loader.key for loader in loaders}
        if keys and keys <= seen:
            left_out.append(dataset)
        else:
            counted.append(dataset)
        seen |= keys
    rows = {}
    for name in results["methods"]:
        row = {}
        for key in ("epe", "1px", "3px", "5px", "fl_all", "ms_per_pair", "occ_precision", "occ_recall", "occ_f1"):
            values = [results["datasets"][d]["methods"][name].get(key) for d in counted]
            values = [v for v in values if v is not None and math.isfinite(v)]
            row[key] = float(np.mean(values)) if values else None
        row["pairs"] = sum(results["datasets"][d]["methods"][name]["pairs"] for d in counted)
        rows[name] = row
    return {"datasets": counted, "left_out": left_out, "methods": rows}


# =========================================================================== CLI

def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``evaluate`` subcommand on an argparse subparsers object."""
    default_root = default_data_root()
    parser = subparsers.add_parser(
        "evaluate",
        help="accuracy and speed of lfn_ros and its peers on flow benchmarks with ground truth",
        description="Evaluate lfn_ros (LiteFlowNet) and its peers (OpenCV DIS ultrafast/fast/medium, "
                    "Farneback, zero flow, RAFT-small on a GPU with torchvision) on every dataset "
                    "found under ROOT: one table per dataset plus an 'all' summary.",
    )
    parser.add_argument("root", metavar="ROOT", nargs="?", default=None,
                        help="data folder with Sintel/, FlyingChairs/, Middlebury/, KITTI2012/ "
                             f"(default: $LFN_ROS_DATA, else ../shared/data next to the repository"
                             f"{'; here ' + str(default_root) if default_root else ', not found here'})")
    parser.add_argument("--weights", default="default",
                        help="lfn_ros checkpoint file, 'default' (shipped weights), or 'none' / '' (untrained)")
    parser.add_argument("--device", default=None,
                        help="'cpu', 'cuda' or 'cuda:N' (default: cuda when available, else cpu)")
    parser.add_argument("--finest-level", type=int, choices=(2, 3, 4, 5, 6), default=None,
                        help="finest decoder level of lfn_ros: 2 as published, 3 faster "
                             "(default: the checkpoint's recommendation, else 2)")
    parser.add_argument("--datasets", default=None,
                        help="comma-separated dataset names, e.g. Sintel-clean,Middlebury (default: all found)")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated methods (default: all of {','.join(METHODS)})")
    parser.add_argument("--max-pairs", type=int, default=None, help="at most N pairs per dataset")
    parser.add_argument("--plot", metavar="FILE", default=None, help="write a PNG of EPE against time per pair")
    parser.add_argument("--json", metavar="FILE", default=None, help="write the raw results as JSON")
    parser.add_argument("--no-peers", action="store_true", help="evaluate lfn_ros only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_cli)
    return parser


def _split(text: Optional[str]) -> Optional[List[str]]:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def run_cli(args: argparse.Namespace) -> int:
    """Run ``lfn-ros evaluate`` from parsed arguments; returns the exit code (0 ok, 2 usage)."""
    root = Path(args.root) if args.root else default_data_root()
    if root is None:
        print("lfn-ros evaluate: error: no ROOT given and no data at $LFN_ROS_DATA or ../shared/data", file=sys.stderr)
        return 2
    if not root.is_dir():
        print(f"lfn-ros evaluate: error: data folder {root} does not exist", file=sys.stderr)
        return 2
    weights = args.weights
    if weights is not None and weights.strip().lower() in ("none", "untrained", "random", ""):
        weights = None
    device = args.device
    if device is None:
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    from .model.weights import WeightsError

    methods = _split(args.methods) or list(METHODS)
    if args.no_peers:
        methods = ["lfn_ros"]
    try:
        evaluate(root, weights=weights, device=device, methods=methods, datasets=_split(args.datasets),
                 max_pairs=args.max_pairs, plot=args.plot, json_out=args.json,
                 progress=not args.no_progress, finest_level=args.finest_level)
    except (ValueError, FileNotFoundError, WeightsError) as exc:
        print(f"lfn-ros evaluate: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m lfn_ros.evaluate ...`` (same arguments as ``lfn-ros evaluate``)."""
    parser = argparse.ArgumentParser(prog="python -m lfn_ros.evaluate")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["evaluate", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
