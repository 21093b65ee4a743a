"""`lfn-ros average-weights`: the uniform average of several checkpoints of one network.

Why: late in training, runs from the same checkpoint with different seeds end at weights whose
22-pair real-data evaluations differ by about ±5 % (docs/training.md, rounds 6 and 7): noise,
not trend. Averaging such runs' weights (a "uniform soup", Wortsman et al., ICML 2022; the same
idea as the EMA along one run, lfn_ros.train.averaging, across runs) smooths that noise without
choosing a run on the evaluation data. It works only for runs that share a start: their weights
lie in one basin. Whether the average is better is decided on synthetic validation first
(benchmarks/validate_checkpoints.py), like every recipe change.

    lfn-ros average-weights runs/r8A/export.pt runs/r8B/export.pt --out runs/soup.pt

The average is computed in float32 and written like a training export (fp16 with a card). An
occlusion head is not averaged: it belongs to one network, so the result has none (train one
with ``lfn-ros train-occlusion``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ..model.liteflownet import LiteFlowNet
from ..model.weights import WeightsError, apply_state_dict, checkpoint_variant, file_sha256, read_checkpoint, save_checkpoint


def average_state(payloads: list) -> dict:
    """The element-wise mean of the floating-point tensors of ``payloads``' state dicts (float32);
    integer buffers are taken from the first. WeightsError when the checkpoints are not of one
    network (different names or shapes)."""
    first = payloads[0]["state_dict"]
    for index, payload in enumerate(payloads[1:], start=2):
        state = payload["state_dict"]
        if set(state) != set(first):
            raise WeightsError(f"checkpoint {index} has other tensors than the first: not the same network")
        for name, tensor in state.items():
            if tensor.shape != first[name].shape:
                raise WeightsError(f"checkpoint {index} has {name} of shape {tuple(tensor.shape)}, "
                                   f"the first {tuple(first[name].shape)}")
    averaged = {}
    for name, tensor in first.items():
        if tensor.is_floating_point():
            averaged[name] = torch.stack([p["state_dict"][name].float() for p in payloads]).mean(0)
        else:
            averaged[name] = tensor.clone()
    return averaged


def average_checkpoints(paths: list, out: Path) -> Path:
    """Read ``paths`` (at least two), write their average to ``out`` with a card naming them."""
    if len(paths) < 2:
        raise WeightsError("averaging needs at least two checkpoints")
    payloads = [read_checkpoint(path) for path in paths]
    variants = [checkpoint_variant(p).to_dict() for p in payloads]
    if any(variant != variants[0] for variant in variants[1:]):
        raise WeightsError("the checkpoints compute different variants of LiteFlowNet: not one network")
    model = LiteFlowNet(variant=checkpoint_variant(payloads[0]))
    apply_state_dict(model, average_state(payloads), source="the average")
    card = dict(payloads[0].get("card", {}))
    card.update({
        "weights": f"uniform average of {len(paths)} checkpoints (lfn-ros average-weights)",
        "averaged_from": [{"file": str(path), "sha256": file_sha256(path),
                           "weights": p.get("card", {}).get("weights", "")} for path, p in zip(paths, payloads)],
    })
    return save_checkpoint(out, model, card=card, half=True)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("average-weights", help="the uniform average of checkpoints of one network (a weight soup)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", type=Path, help="two or more lfn_ros checkpoints from runs that share a start")
    p.add_argument("--out", type=Path, required=True, help="where to write the average (fp16 with a card)")
    p.set_defaults(func=run_average)


def run_average(args) -> int:
    try:
        path = average_checkpoints(list(args.checkpoints), args.out)
    except WeightsError as exc:
        print(f"lfn-ros average-weights: {exc}", file=sys.stderr)
        return 2
    print(f"wrote the average of {len(args.checkpoints)} checkpoints to {path}")
    return 0
