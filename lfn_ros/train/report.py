"""What a training run leaves behind for people: the weights card and the curves.

The card travels inside every checkpoint (``card`` entry) and is what ``lfn_ros/weights/README.md``
reports. It accumulates steps, pairs and wall time over all runs and records each run's recipe,
hardware and precision; ``trained`` is true only when some run took at least one step.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from .config import TrainConfig, format_size
from .loss import LEVEL_WEIGHTS

#: Columns of metrics.csv.
METRIC_FIELDS = ["step", "run_step", "time_s", "wall_total_s", "lr", "loss", "epe", "grad_norm", "pairs_per_s",
                 "finest_level", "skipped", "loss_l6", "loss_l5", "loss_l4", "loss_l3", "loss_l2"]


def build_card(previous: dict, run: dict, config: TrainConfig, data_config: dict, step: int,
               evaluation: dict | None, validation: dict | None, resumed_from: str | None) -> dict:
    """The card after ``run`` (a dict describing this run) on top of ``previous`` (the card the
    run started from). A run of 0 steps (an export) adds nothing and keeps the recipe."""
    trained_now = run["steps"] > 0
    runs = list(previous.get("runs", [])) + ([run] if trained_now else [])
    levels = [r.get("finest_level") for r in runs if r.get("finest_level") and r.get("steps", 0) > 0]
    keep = not trained_now and bool(previous)
    return {
        "name": "liteflownet_synthetic",
        "model": "LiteFlowNet (Hui, Tang, Loy, CVPR 2018) as published, 5,381,969 parameters",
        "data": "lfn_ros.data.synthetic: layered synthetic scenes with exact flow and occlusion; textures from "
                "photographs bundled with scikit-image and procedural noise. No real or evaluation data.",
        "loss": "multi-scale L2 endpoint error, level weights " + json.dumps({str(k): v for k, v in LEVEL_WEIGHTS.items()})
                + (", robust penalty" if config.robust else ""),
        "optimizer": "Adam (0.9, 0.999), gradient-norm clipping",
        "recipe": previous.get("recipe") if keep else config.to_card(),
        "synthetic_config": previous.get("synthetic_config") if keep else data_config,
        "steps": step,
        "pairs_seen": int(previous.get("pairs_seen", 0)) + run["pairs"],
        "wall_time_s": round(float(previous.get("wall_time_s", 0.0)) + run["wall_time_s"], 1),
        "hardware": previous.get("hardware", run["hardware"]) if keep else run["hardware"],
        # The finest level any run trained; load_model runs the network to this level by default.
        "finest_level_trained": min(levels) if levels else config.finest_level,
        "recommended_finest_level": previous.get("recommended_finest_level", min(levels) if levels else config.finest_level)
        if keep else (min(levels) if levels else config.finest_level),
        "trained": bool(runs) and sum(r.get("steps", 0) for r in runs) > 0,
        "runs": runs,
        "evaluation": evaluation if evaluation is not None else previous.get("evaluation"),
        "validation": validation if validation is not None else previous.get("validation"),
        "resumed_from": resumed_from,
        "torch": str(torch.__version__),
    }


def run_record(started: str, steps: int, batch: int, wall_s: float, hardware: str, config: TrainConfig,
               precision: str, last: dict) -> dict:
    """One entry of the card's ``runs`` list."""
    return {"started": started, "steps": steps, "pairs": steps * batch, "wall_time_s": round(wall_s, 1),
            "hardware": hardware, "finest_level": config.finest_level, "size": ",".join(format_size(s) for s in config.sizes),
            "batch": batch, "lr": config.lr, "schedule": config.schedule, "reuse": config.reuse, "motion": config.motion,
            "precision": precision, "final_loss": last.get("loss"), "final_epe": last.get("epe")}


def plot_curves(out: Path) -> Path | None:
    """curves.png from metrics.csv (and eval.csv, validation.csv): loss and EPE against total steps.
    Dotted lines mark where a resumed run starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    rows = list(csv.DictReader(open(out / "metrics.csv"))) if (out / "metrics.csv").exists() else []
    if not rows:
        return None
    step = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(step, [float(r["loss"]) for r in rows], lw=1)
    axes[0].set(title="training loss (multi-scale, per pair)", xlabel="step", yscale="log")
    axes[1].plot(step, [float(r["epe"]) for r in rows], lw=1, alpha=0.6, label="synthetic training batches")
    for name, label in (("validation.csv", "synthetic validation"), ("eval.csv", "eval")):
        if not (out / name).exists():
            continue
        table = [r for r in csv.DictReader(open(out / name)) if r.get("epe") not in ("", "None", None)]
        for dataset in sorted({r.get("dataset", "all") for r in table}):
            points = [(int(r["step"]), float(r["epe"])) for r in table if r.get("dataset", "all") == dataset]
            axes[1].plot(*zip(*points), marker="o", lw=1, label=f"{label}: {dataset}")
    axes[1].set(title="endpoint error (pixels)", xlabel="step", yscale="log")
    axes[1].legend(fontsize=7)
    starts = [int(rows[i]["step"]) - int(rows[i]["run_step"]) for i in range(1, len(rows))
              if int(rows[i]["run_step"]) < int(rows[i - 1]["run_step"])]
    for ax in axes:
        for start in starts:
            ax.axvline(start, color="grey", ls=":", lw=1)
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
