"""Occlusion on synthetic data with exact masks: train the occlusion head, choose thresholds, score
both occlusion methods (issue 11). Decisions here use synthetic validation data only.

    lfn-ros train-occlusion --weights lfn_ros/weights/liteflownet_synthetic.pt --steps 1500 --export same

The published network is frozen (it runs without gradients, in bf16 where native); only the head
(lfn_ros.model.occlusion_head, 88 k parameters) learns, with binary cross-entropy against the
generator's occlusion masks averaged down to level 3 (a soft target per level-3 pixel),
positives weighted by :data:`POSITIVE_WEIGHT` because occluded pixels are a minority.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from .. import precision as precisions
from ..data.synthetic import SyntheticConfig, SyntheticFlow
from ..model.occlusion_head import HEAD_LEVEL, OcclusionHead, occlusion_from_logits
from ..model.weights import load_model, read_checkpoint, save_checkpoint
from ..ops.occlusion import forward_backward_occlusion
from .stream import PairStream
from .validation import validation_pairs

#: Weight of occluded pixels in the loss (they are about 10-20 % of the synthetic pixels).
POSITIVE_WEIGHT = 3.0


def f1_counts(predicted: torch.Tensor, truth: torch.Tensor) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of two bool masks."""
    return (int((predicted & truth).sum()), int((predicted & ~truth).sum()), int((~predicted & truth).sum()))


def f1_score(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


@torch.no_grad()
def forward_pass(model, image1: torch.Tensor, image2: torch.Tensor, precision: str):
    """(first, second, finest forward NetE flow, flow in input pixels) for a batch, no gradients."""
    with precisions.autocast(image1.device, precision):
        # Stream encodings (one mean per frame), as the engine gives the head at run time.
        first, second = model.encode(torch.cat([image1, image2])).split(image1.shape[0])
        finest = model.decode(first, second)[-1].float()
    return first, second, finest, model.to_pixels(finest, first.input_size)


@torch.no_grad()
def backward_flow(model, first, second, precision: str) -> torch.Tensor:
    with precisions.autocast(first.features[HEAD_LEVEL].device, precision):
        return model.to_pixels(model.decode(second, first)[-1].float(), first.input_size)


@torch.no_grad()
def score_on_validation(model, head=None, pairs: int = 48, precision: str = "fp32", thresholds=(0.0,),
                        checks=((0.01, 0.5),)) -> dict:
    """Occlusion precision / recall / F1 on the synthetic validation pairs (exact masks):
    {"head": {threshold: scores}, "check": {(alpha, beta): scores}}."""
    head_counts = {t: [0, 0, 0] for t in thresholds}
    check_counts = {c: [0, 0, 0] for c in checks}
    for batch in validation_pairs(pairs):
        truth = batch["occlusion"]
        first, second, finest, flow = forward_pass(model, batch["image1"], batch["image2"], precision)
        if head is not None:
            with precisions.autocast(flow.device, precision):
                logits = head(first, second, finest)
            for t in thresholds:
                for i, v in enumerate(f1_counts(occlusion_from_logits(logits, flow, t), truth)):
                    head_counts[t][i] += v
        if checks:
            back = backward_flow(model, first, second, precision)
            for alpha, beta in checks:
                for i, v in enumerate(f1_counts(forward_backward_occlusion(flow, back, alpha, beta), truth)):
                    check_counts[(alpha, beta)][i] += v
    return {"head": {t: f1_score(*c) for t, c in head_counts.items()} if head is not None else {},
            "check": {c: f1_score(*v) for c, v in check_counts.items()}}


def train_head(weights, steps: int, size=(192, 256), batch: int = 8, lr: float = 1e-3, seed: int = 7,
               reuse: int = 2, log=print) -> tuple[OcclusionHead, dict]:
    """Train a fresh head on top of the frozen network in ``weights``; returns (head, history)."""
    model, card = load_model(weights)
    precision = precisions.resolve("auto", "cpu")
    model.to(memory_format=precisions.memory_format("cpu", precision))
    for p in model.parameters():
        p.requires_grad_(False)
    torch.manual_seed(seed)
    head = OcclusionHead()
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    stream = PairStream(SyntheticFlow(*size, seed=seed, config=SyntheticConfig()), batch, [size], reuse=reuse, seed=seed)
    history = []
    t0 = time.time()
    for step in range(steps):
        for group in optimizer.param_groups:  # cosine decay over the run
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))
        data = stream.next()
        first, second, finest, _ = forward_pass(model, data["image1"], data["image2"], precision)
        with precisions.autocast("cpu", precision):
            logits = head(first, second, finest)
        target = F.adaptive_avg_pool2d(data["occlusion"].float(), logits.shape[-2:])
        loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(POSITIVE_WEIGHT))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
        if (step + 1) % 100 == 0 or step + 1 == steps:
            log(f"[occlusion] step {step + 1}/{steps}: loss {np.mean(history[-100:]):.4f} ({time.time() - t0:.0f} s)")
    return head.eval(), {"steps": steps, "pairs": steps * batch, "seconds": round(time.time() - t0, 1),
                         "final_loss": float(np.mean(history[-100:])), "size": f"{size[1]}x{size[0]}", "batch": batch,
                         "lr": lr, "positive_weight": POSITIVE_WEIGHT}


def choose(model, head, log=print) -> dict:
    """Thresholds chosen on synthetic validation: the head's logit threshold and the check's
    (alpha, beta), each maximising F1. Returns both with their scores."""
    thresholds = tuple(np.round(np.linspace(-2.0, 3.0, 11), 2).tolist())
    checks = tuple((a, b) for a in (0.01, 0.05, 0.2) for b in (0.5, 2.0, 8.0))
    scores = score_on_validation(model, head, thresholds=thresholds, checks=checks)
    best_t = max(scores["head"], key=lambda t: scores["head"][t]["f1"])
    best_c = max(scores["check"], key=lambda c: scores["check"][c]["f1"])
    log(f"[occlusion] synthetic validation F1: head {scores['head'][best_t]['f1']:.3f} at logit {best_t}; "
        f"forward-backward check {scores['check'][best_c]['f1']:.3f} at alpha {best_c[0]}, beta {best_c[1]} "
        f"(paper's 0.01 / 0.5: {scores['check'][(0.01, 0.5)]['f1']:.3f})")
    return {"threshold": best_t, "head_scores": scores["head"][best_t], "check": {"alpha": best_c[0], "beta": best_c[1]},
            "check_scores": scores["check"][best_c], "check_paper_scores": scores["check"][(0.01, 0.5)]}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train-occlusion", help="train the optional occlusion head on synthetic masks",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="default", help="the LiteFlowNet checkpoint the head sits on (frozen)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--export", required=True, help="checkpoint to write: the weights of --weights plus the head")
    p.set_defaults(func=run_cli)
    return p


def run_cli(args) -> int:
    from ..model.weights import default_weights

    source = default_weights() if args.weights == "default" else args.weights
    head, history = train_head(source, args.steps, batch=args.batch, lr=args.lr)
    model, _ = load_model(source)
    chosen = choose(model, head)
    payload = read_checkpoint(source)
    card = dict(payload.get("card") or {})
    card["occlusion"] = {"head": {**history, **{k: v for k, v in chosen.items() if k.startswith("head") or k == "threshold"},
                                  "parameters": sum(p.numel() for p in head.parameters())},
                         "check": {**chosen["check"], "scores": chosen["check_scores"],
                                   "paper_thresholds_scores": chosen["check_paper_scores"]}}
    model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    save_checkpoint(args.export, model, card=card, half=True,
                    occlusion_head={"state_dict": head.state_dict(), "threshold": chosen["threshold"], "width": 48,
                                    "level": HEAD_LEVEL, "parameter_count": sum(p.numel() for p in head.parameters())})
    print(f"[occlusion] wrote {args.export}", file=sys.stderr)
    return 0
