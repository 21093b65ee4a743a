"""lfn_ros checkpoints: save, load (safely); the published layouts load too (lfn_ros.model.published).

A checkpoint is a plain dict loaded with ``torch.load(..., weights_only=True)``, so a weights
file cannot run code (docs/architecture.md section 4)::

    {
      "format": "lfn_ros-checkpoint", "format_version": 1,
      "architecture": "LiteFlowNet", "parameter_count": 5381969,
      "input": {"color": "RGB", "range": [0, 1], "means": {"first": [...], ...}},
      "card": {...},            # free-form: training recipe, data, metrics
      "state_dict": {...},      # model parameters (fp32, or fp16 in the shipped copy)
      "variant": {...},         # optional: a port's computation (lfn_ros.model.variant); absent = published
      "training": {...},        # optional: optimizer, step, ... for resuming
    }
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import torch

from ..resources import DEFAULT_WEIGHTS, default_weights
from .liteflownet import LEVELS, LiteFlowNet, count_parameters
from .variant import Variant, VariantError

FORMAT = "lfn_ros-checkpoint"
#: 2: LiteFlowNet as published (issue 17): M's activation got its own module, so M's convs are
#: ``main.0..3`` (version 1: ``main.1..4``, after a parameter-free ``main.0``); see migrate_state_dict.
FORMAT_VERSION = 2
ARCHITECTURE = "LiteFlowNet"
#: Finest levels the model accepts (LiteFlowNet's NetE levels).
FINEST_LEVELS = LEVELS

log = logging.getLogger(__name__)


class WeightsError(RuntimeError):
    """A weights file is missing, unreadable, or not an lfn_ros LiteFlowNet checkpoint."""


class UntrainedWarning(UserWarning):
    """The network runs with random weights: its flow is noise."""


def file_sha256(path) -> str:
    """Hex sha256 of a file: ties a result (evaluation, card) to the exact checkpoint it measured."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(path, model: LiteFlowNet, card: dict | None = None, training: dict | None = None, half: bool = False,
                    occlusion_head: dict | None = None) -> Path:
    """Write a checkpoint atomically (temporary file + rename, so a crash leaves no torn file).

    Args:
        path: destination file.
        model: the network (its state is copied to the CPU).
        card: metadata (recipe, data, metrics); stored as given, must be plain Python values.
        training: optional resume state (optimizer state dict, step, ...).
        half: store floating-point parameters as fp16 (the shipped copy: half the size).
        occlusion_head: optional {"state_dict", "threshold", ...} of an OcclusionHead (kept
            apart from LiteFlowNet's state dict, which stays the published network).
    """
    path = Path(path)
    state = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if half and tensor.is_floating_point():
            tensor = tensor.half()
        state[name] = tensor
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": ARCHITECTURE,
        "parameter_count": count_parameters(model),
        "input": {"color": "RGB", "range": [0.0, 1.0],
                  "means": {role: list(m) for role, m in model.variant.image_means.items()}},
        "card": dict(card or {}),
        "state_dict": state,
    }
    if not model.variant.is_published:
        payload["variant"] = model.variant.to_dict()
    if training is not None:
        payload["training"] = training
    if occlusion_head is not None:
        head = dict(occlusion_head)
        head["state_dict"] = {k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
                              for k, v in head["state_dict"].items()}
        payload["occlusion_head"] = head
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path) -> dict:
    """Load and validate a checkpoint dict, its state dict under today's names
    (:func:`migrate_state_dict`); raises WeightsError naming the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist")
    if not path.is_file():
        raise WeightsError(f"weights path {path} is not a file")
    if path.stat().st_size == 0:
        raise WeightsError(f"weights file {path} is empty")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle with code in it, random bytes, ...
        raise WeightsError(
            f"weights file {path} could not be read as a safe torch checkpoint "
            f"(truncated, corrupt, or containing code): {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return _published_checkpoint(path, payload)
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise WeightsError(f"weights file {path} has format version {payload['format_version']}, newer than this lfn_ros ({FORMAT_VERSION})")
    if payload.get("architecture") != ARCHITECTURE:
        raise WeightsError(f"weights file {path} holds architecture {payload.get('architecture')!r}, expected {ARCHITECTURE!r}")
    if not isinstance(payload.get("state_dict"), dict):
        raise WeightsError(f"weights file {path} has no state_dict")
    payload["state_dict"] = migrate_state_dict(payload["state_dict"], int(payload.get("format_version", 1)))
    try:
        Variant.from_dict(payload.get("variant"))
    except (VariantError, TypeError) as exc:
        raise WeightsError(f"weights file {path} asks for a computation this lfn_ros does not have: {exc}") from exc
    return payload


def checkpoint_variant(payload: dict) -> Variant:
    """The computation a checkpoint's weights run in (the published one unless it says otherwise)."""
    return Variant.from_dict(payload.get("variant"))


def _published_checkpoint(path: Path, payload) -> dict:
    """A checkpoint dict for a file in one of the published layouts (lfn_ros.model.published), its
    card saying where the weights came from; WeightsError naming the layouts expected otherwise."""
    from .published import LayoutError, import_published, unwrap

    try:
        state, layout = import_published(unwrap(payload))
    except LayoutError as exc:
        raise WeightsError(f"weights file {path} is neither an lfn_ros checkpoint nor a published LiteFlowNet "
                           f"file this import reads: {exc}") from exc
    card = {
        "name": path.stem,
        "trained": True,
        "trained_by": "the LiteFlowNet authors (Hui, Tang, Loy, CVPR 2018); lfn_ros did not train these weights",
        "imported": {"layout": layout.name, "repository": layout.repository, "file": path.name,
                     "sha256": file_sha256(path)},
        "licence": layout.licence,
        "recommended_finest_level": 2,  # the published network runs to level 2
    }
    if not layout.variant.is_published:
        card["variant"] = layout.variant.describe()
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "architecture": ARCHITECTURE, "card": card,
               "state_dict": state}
    if not layout.variant.is_published:
        payload["variant"] = layout.variant.to_dict()
    return payload


def migrate_state_dict(state: dict, format_version: int) -> dict:
    """A checkpoint's state dict under today's parameter names. Version 1 named descriptor
    matching's convs ``matching.levelK.main.{1..4}`` (``main.0`` was its LeakyReLU); version 2
    ``main.{0..3}``. Nothing else changed, so the values are the same tensors."""
    if format_version >= 2:
        return state
    migrated = {}
    for name, tensor in state.items():
        parts = name.split(".")
        if parts[0] == "matching" and len(parts) > 3 and parts[2] == "main":
            parts[3] = str(int(parts[3]) - 1)
        migrated[".".join(parts)] = tensor
    return migrated


def mismatch_text(missing: list, unexpected: list, misshapen: list) -> str:
    """'2 missing (e.g. a, b), 1 of the wrong shape (e.g. c: (3,) vs (4,))': what a state dict lacks."""
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if misshapen:
        parts.append(f"{len(misshapen)} of the wrong shape (e.g. {'; '.join(misshapen[:3])})")
    return ", ".join(parts)


def apply_state_dict(model: LiteFlowNet, state: dict, source: str = "state dict") -> None:
    """Copy parameters into ``model``, converting dtype; any missing, extra or misshapen
    parameter raises WeightsError listing the first few."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        raise WeightsError(f"{source} does not fit LiteFlowNet: " + mismatch_text(missing, unexpected, mismatched))
    with torch.no_grad():
        for name, tensor in own.items():
            tensor.copy_(state[name].to(tensor.dtype))


def was_trained(card: dict) -> bool:
    """The checkpoint's own record of training: its ``trained`` entry where it has one, else
    whether its card counts at least one optimizer step. A file saved after 0 steps is not trained."""
    if "trained" in card:
        return bool(card["trained"])
    return int(card.get("steps", 0) or 0) > 0


def resolve_finest_level(requested: int | None, card: dict) -> int:
    """The finest NetE level to run: ``requested`` (None or 0 = no preference), else the card's
    ``recommended_finest_level`` (the finest level it was trained to), else 2 as published.
    The one place this is decided (engine, node, CLI and export all call it through load_model)."""
    level = requested or card.get("recommended_finest_level") or 2
    level = int(level)
    if level not in FINEST_LEVELS:
        raise WeightsError(f"finest level {level} is not one of LiteFlowNet's levels {sorted(FINEST_LEVELS)}")
    return level


def load_model(weights="default", finest_level: int | None = None, device="cpu") -> tuple[LiteFlowNet, dict]:
    """Build LiteFlowNet and load weights.

    Args:
        weights: a checkpoint path; "default" for the shipped checkpoint (a WeightsError when
            this installation has none); None or "" for random weights, only when asked for
            explicitly (warns loudly: the output is noise).
        finest_level: see :func:`resolve_finest_level` (None: the checkpoint's recommendation).
        device: torch device for the model.

    Returns:
        (model in eval mode on ``device``, card dict). The card's ``trained`` is the
        checkpoint's own record (:func:`was_trained`); ``path`` and ``sha256`` name the file;
        an untrained model's card is ``{"name": "untrained", "trained": False}``.
    """
    if weights == "default":
        weights = default_weights()
        if weights is None:
            raise WeightsError(
                f"the shipped weights file {DEFAULT_WEIGHTS} is missing from this installation: reinstall lfn_ros, "
                "pass a checkpoint (--weights PATH / weights:=PATH), or ask for untrained weights explicitly "
                "(--weights '' / weights:='')")
    if weights is None or weights == "":
        message = (
            "LiteFlowNet is running with RANDOM, UNTRAINED weights: its flow is noise. "
            "Pass a checkpoint (--weights / weights parameter) or train one with `lfn-ros train`."
        )
        warnings.warn(message, UntrainedWarning, stacklevel=2)
        log.warning(message)
        card = {"name": "untrained", "trained": False}
        model = LiteFlowNet(finest_level=resolve_finest_level(finest_level, card))
    else:
        payload = read_checkpoint(weights)
        card = dict(payload.get("card", {}))
        model = LiteFlowNet(finest_level=resolve_finest_level(finest_level, card), variant=checkpoint_variant(payload))
        apply_state_dict(model, payload["state_dict"], source=f"weights file {weights}")
        card.setdefault("name", Path(weights).stem)
        card["trained"] = was_trained(card)
        card["path"] = str(weights)
        card["sha256"] = file_sha256(weights)
        if not card["trained"]:
            log.warning("weights file %s records no training (0 steps): its flow is noise", weights)
    return model.to(device).eval(), card


def load_occlusion_head(weights="default", device="cpu"):
    """The OcclusionHead stored with a checkpoint and its decision threshold (a logit), or
    (None, None) when the checkpoint has none. ``weights`` as for :func:`load_model`."""
    from .occlusion_head import OcclusionHead

    path = default_weights() if weights == "default" else weights
    if not path:
        return None, None
    entry = read_checkpoint(path).get("occlusion_head")
    if not entry:
        return None, None
    head = OcclusionHead(width=int(entry.get("width", 48)))
    state = entry["state_dict"]
    own = head.state_dict()
    if set(state) != set(own) or any(state[k].shape != own[k].shape for k in own):
        raise WeightsError(f"weights file {path}: its occlusion head does not fit OcclusionHead")
    head.load_state_dict({k: v.float() for k, v in state.items()})
    return head.to(device).eval(), float(entry.get("threshold", 0.0))
