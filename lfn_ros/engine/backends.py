"""Which backend and which occlusion method an engine runs: names, resolution of "auto", construction."""

from __future__ import annotations

import torch

from ..model.liteflownet import LiteFlowNet
from ..ops.occlusion import DEFAULT_ALPHA, DEFAULT_BETA
from .torch_backend import CompiledTorchBackend, TorchBackend


BACKENDS = ("auto", "torch", "torch-compiled", "openvino")


def resolve_backend(requested: str, device: torch.device, precision: str = "fp32") -> str:
    """The backend for ``requested`` on ``device`` at a resolved ``precision``.

    "auto" picks the fastest path whose flow stays within 1 % EPE of torch fp32 (issue 10):
    OpenVINO for fp32 on the CPU where it is installed (faster than torch fp32, and exact), torch
    otherwise. OpenVINO's bf16 is not chosen automatically: its inference-precision hint puts the
    whole decoder in bf16, the accumulated flow included, which adds up to 0.1 px of EPE on fast
    motion (+12 to +18 % on the Sintel test pairs; docs/benchmarks.md); marking the flow path to stay in
    f32 (the DisablePrecisionConversion runtime attribute) changed nothing measurable in
    OpenVINO 2026.4. Torch bf16 keeps the flow in fp32 and stays within 0.3 %. "torch-compiled"
    (TorchInductor) is opt-in: the same flow to rounding, but its first frame compiles for
    minutes on a small CPU (docs/benchmarks.md). Precision int8 exists only in OpenVINO (NNCF's
    quantisation of the convolutions), so "auto" picks OpenVINO for it and the torch backends
    refuse it. Other names are checked (OpenVINO runs on the CPU only).
    """
    from .openvino_backend import openvino_available

    if requested not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {requested!r}")
    if precision == "int8" and requested not in ("auto", "openvino"):
        raise ValueError(f"precision int8 runs on the OpenVINO backend, not on {requested!r}")
    if requested == "auto":
        if precision == "int8":
            return "openvino"  # OpenVINOBackend says what to install where it is missing
        return "openvino" if device.type == "cpu" and precision == "fp32" and openvino_available() else "torch"
    if requested == "openvino" and device.type != "cpu":
        raise ValueError(f"the OpenVINO backend runs on the CPU, not on {device}")
    return requested


def make_backend(name: str, model: LiteFlowNet, device: torch.device, precision: str, threads: int = 0, head=None):
    """The backend object for a resolved backend name."""
    if name == "openvino":
        from .openvino_backend import OpenVINOBackend

        return OpenVINOBackend(model, precision, threads, head)
    if name == "torch-compiled":
        return CompiledTorchBackend(model, device, precision, head)
    return TorchBackend(model, device, precision, head)


OCCLUSION_METHODS = ("auto", "check", "head")


def resolve_occlusion_method(requested: str, has_head: bool, finest_level: int = 2) -> str:
    """"auto" -> "head" where the checkpoint has an occlusion head and the decoder runs down to the
    head's level (3) or finer, else "check". The head reads level-3 features and a flow of level 3
    or finer: a decoder stopping at level 4-6 has neither (the graph backend keeps only the levels it runs)."""
    from ..model.occlusion_head import HEAD_LEVEL

    if requested not in OCCLUSION_METHODS:
        raise ValueError(f"occlusion method must be one of {OCCLUSION_METHODS}, got {requested!r}")
    if requested == "head" and not has_head:
        raise ValueError("occlusion method 'head' asked for, but the weights have no occlusion head")
    if requested == "head" and finest_level > HEAD_LEVEL:
        raise ValueError(f"occlusion method 'head' needs the decoder to run to level {HEAD_LEVEL} or finer, "
                         f"not {finest_level}: use 'check' or a finer finest_level")
    if requested == "auto":
        return "head" if has_head and finest_level <= HEAD_LEVEL else "check"
    return requested


def check_thresholds(card: dict, alpha: float | None = None, beta: float | None = None) -> tuple[float, float]:
    """(alpha, beta) of the forward-backward check: a value >= 0 as given; None or negative ->
    the thresholds chosen for these weights on synthetic validation (``lfn-ros train-occlusion``
    records them in the card, issue 11), else the paper's 0.01 / 0.5."""
    chosen = (card or {}).get("occlusion", {}).get("check", {})
    defaults = (float(chosen.get("alpha", DEFAULT_ALPHA)), float(chosen.get("beta", DEFAULT_BETA)))
    return (float(alpha) if alpha is not None and alpha >= 0 else defaults[0],
            float(beta) if beta is not None and beta >= 0 else defaults[1])
