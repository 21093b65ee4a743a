"""Numeric precisions: their names, and which one a device computes fast (one home, issue 9).

Names used everywhere (CLI, node parameter, trainer, benchmarks): ``fp32``, ``bf16``, ``fp16``
and ``auto``; inference also takes ``int8`` (the OpenVINO backend on the CPU, convolutions
quantised with NNCF and the flow path in f32: lfn_ros.engine.int8). ``auto`` resolves per device:

- CUDA: bf16 where the GPU supports it, else fp16;
- CPU: bf16 where the processor computes it natively (x86: AMX-BF16 or AVX512-BF16; Arm:
  the BF16 extension), else fp32. Elsewhere bf16 is emulated and slower than fp32.

Reduced precision always means autocast (convolutions and matmuls in bf16/fp16, reductions and
the loss in fp32) with channels_last on the CPU; f-warp's sampling positions are computed in
fp32 whatever the precision (:mod:`lfn_ros.ops.warp`).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

#: Precision name -> torch dtype.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: Every name a trainer may be given, ``auto`` included.
TRAIN_CHOICES = ("auto", "fp32", "bf16", "fp16")
#: Every name inference may be given: the training names and int8 (OpenVINO + NNCF, CPU only).
CHOICES = TRAIN_CHOICES + ("int8",)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset:
    """The processor's feature flags from /proc/cpuinfo (empty where it is not readable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key = line.split(":", 1)[0].strip().lower()
        if key in ("flags", "features"):  # x86 says flags, Arm says Features
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AMX-BF16, AVX512-BF16 or Arm BF16) and
    PyTorch's oneDNN backend can use it."""
    flags = cpu_flags()
    native = bool(flags & {"amx_bf16", "avx512_bf16"}) or (platform.machine() in ("aarch64", "arm64") and "bf16" in flags)
    return native and torch.backends.mkldnn.is_available()


def resolve(precision: str, device) -> str:
    """``auto`` -> the fastest accurate precision of ``device``; other names are checked and
    returned, except fp16 on the CPU, which PyTorch does not compute fast (fp32 instead)."""
    if precision not in CHOICES:
        raise ValueError(f"precision must be one of {CHOICES}, got {precision!r}")
    device = torch.device(device)
    if precision == "int8" and device.type != "cpu":
        raise ValueError(f"precision int8 runs on the CPU (the OpenVINO backend), not on {device}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        return "fp32"
    return precision


def autocast(device, precision: str):
    """``torch.autocast`` context for a resolved precision name (disabled for fp32)."""
    device = torch.device(device)
    dtype = DTYPES[precision]
    return torch.autocast(device_type=device.type, dtype=dtype if dtype != torch.float32 else torch.bfloat16,
                          enabled=dtype != torch.float32)


def memory_format(device, precision: str) -> torch.memory_format:
    """channels_last for reduced precision (oneDNN's and cuDNN's fast layout), else contiguous."""
    return torch.channels_last if precision != "fp32" else torch.contiguous_format


def warp_error_px(device, dtype: torch.dtype, width: int = 256) -> float:
    """Largest error (pixels) of ``ops.warp`` shifting a sawtooth by 0.25 px when image and flow
    are in ``dtype`` (as under autocast), against the same warp computed in fp32 and rounded to
    ``dtype`` (so the rounding of the image values themselves does not count). Sampling
    positions must be computed in fp32: in bf16 a position near pixel 200 is quantised to 1 px,
    so f-warp would be off by up to half a pixel; this probe then reports about 1.75 px."""
    from .ops.warp import warp

    # Period 8 px: steep enough that a misplaced sample changes the value by far more than one
    # rounding step of bf16 (a 0.5 px error moves it by 0.0625).
    x = torch.arange(width, device=device, dtype=torch.float32)
    saw = ((x % 8) / 8).view(1, 1, 1, width).expand(1, 1, 4, width).to(dtype)
    flow = torch.zeros(1, 2, 4, width, device=device, dtype=dtype)
    flow[:, 0] = 0.25
    try:
        out = warp(saw, flow)
    except RuntimeError:
        return float("inf")
    reference = warp(saw.float(), flow.float()).to(dtype)
    return float((out.float() - reference.float())[..., 8:-8].abs().max()) * 8


def checked(precision: str, device, log=print) -> str:
    """:func:`resolve` ``precision``, then fall back to fp32 if f-warp is not accurate in it
    (:func:`warp_error_px` over 0.02 px), saying so through ``log``."""
    name = resolve(precision, device)
    if name in ("fp32", "int8"):  # int8 keeps the warps in f32 (lfn_ros.engine.int8)
        return name
    error = warp_error_px(torch.device(device), DTYPES[name])
    if error <= 0.02:
        return name
    log(f"f-warp with {name} inputs misplaces samples by {error:.3f} px: using fp32")
    return "fp32"
