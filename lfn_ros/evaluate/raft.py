"""RAFT-small, the peer: the authors' weights mapped onto torchvision's ``raft_small``.

Runs wherever torchvision imports, on a GPU or on the CPU (fp32, 12 iterations, as the authors
evaluate; about 3 s a Sintel pair on two CPU cores). torchvision is not an lfn_ros dependency:
install the build that matches your torch to compare against it. The weights come from an
argument or ``$LFN_ROS_RAFT_WEIGHTS`` (:mod:`lfn_ros.resources`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..resources import raft_weights
from .method import Method, MethodUnavailable

RAFT_ITERATIONS = 12

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


def raft_method(device: str, weights_path=None) -> Method:
    """RAFT-small peer on ``device`` ("cpu" or "cuda[:N]"). Needs torchvision and its weights
    (``weights_path`` or ``$LFN_ROS_RAFT_WEIGHTS``); MethodUnavailable otherwise, saying which is
    missing."""
    try:
        import torch
        import torch.nn.functional as F
        from torchvision.models.optical_flow import raft_small
    except (ImportError, RuntimeError) as exc:  # RuntimeError: a torchvision built for another torch
        raise MethodUnavailable(f"torchvision is not importable ({exc}); install the build matching your torch "
                                "to compare against RAFT-small") from exc
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise MethodUnavailable(f"device is {device!r} but CUDA is not available")
    path = raft_weights(weights_path)
    if path is None:
        raise MethodUnavailable("no RAFT-small weights given: set $LFN_ROS_RAFT_WEIGHTS (the Makefile points it at "
                                "../shared/weights/raft-small.pth)")
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
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    return Method("RAFT-small", "RAFT-small (torchvision)", run, sync,
                  {"weights": str(path), "iterations": RAFT_ITERATIONS, "device": str(dev)})
