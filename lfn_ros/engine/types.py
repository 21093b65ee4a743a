"""What the engine hands out and takes in: results, staged frames, errors, stage names."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

#: Stages timed for every frame, in order (FlowTiming's fields are named after them). "refine" is
#: the variational refinement on the host (lfn_ros.ops.refine; 0 when it is off).
STAGES = ("upload", "preprocess", "features", "decoder", "postprocess", "download", "refine")


class EngineError(RuntimeError):
    """Inference could not run (bad input, device trouble); the engine stays usable."""


class FlowOutOfMemory(EngineError):
    """The device ran out of memory; caches were freed and the sequence restarts."""


@dataclass
class FlowResult:
    """One flow estimate: the one result type for flow + occlusion in lfn_ros.

    flow: (H, W, 2) float32 pixels, previous -> current frame; channel 0 = x (right), 1 = y (down).
    occlusion: (H, W) bool, True where a pixel of the previous frame has no match, or None.
    timings: milliseconds per stage (see STAGES) plus "compute" (all stages).
    stamp, previous_stamp: the stamps given to :meth:`FlowEngine.stage` for the two frames.
    cascade: how the pair ran: "two-scale" or "none" (one pass: the engine's cascade is off, or
        the node's adaptive cascade ran this pair in one pass).
    """

    flow: np.ndarray
    occlusion: np.ndarray | None
    timings: dict
    stamp: object = None
    previous_stamp: object = None
    cascade: str = "none"


@dataclass
class Staged:
    """A frame on its way to the device (returned by :meth:`FlowEngine.stage`).

    image: (1, 3, H, W) uint8 on the engine's device; size: (H, W); seconds: the stamp in
    seconds (None: no time-order check); events / host_ms: upload timing (CUDA / host);
    grey: (H, W) uint8 on the host, for the refinement (None when it is off)."""

    image: torch.Tensor
    stamp: object
    seconds: float | None
    size: tuple
    grey: np.ndarray | None = None
    events: dict = field(default_factory=dict)
    host_ms: dict = field(default_factory=dict)


@dataclass
class FrameState:
    """The previous frame of a stream: its encoding (NetC features + image pyramid, kept on the
    device), its grey image on the host (for the refinement, or None) and what identifies it.
    The engine holds one or None; a reset drops it whole."""

    encoding: object
    stamp: object
    seconds: float | None
    size: tuple
    grey: np.ndarray | None = None


@dataclass
class CascadeEncoding:
    """A frame's encodings for the two-scale cascade (lfn_ros.ops.cascade): at the full
    processing grid, at the coarse (half) grid, and its luma (1, 1, H, W) float32 on the device
    at the input resolution (the fusion compares the two frames' luma; a copy, so a caller that
    reuses its image buffer changes nothing)."""

    full: object
    coarse: object
    grey: torch.Tensor


def processing_size(height: int, width: int, scale: float = 1.0, max_width: int = 0) -> tuple[int, int]:
    """Resolution the network runs at for an (H, W) input: ``scale`` times the input, further
    reduced so the width is at most ``max_width`` (0 = no limit); never below 32x32. The network
    grid is then the next multiples of 32 of this size."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    factor = scale
    if max_width and width * factor > max_width:
        factor = max_width / width
    return max(32, int(round(height * factor))), max(32, int(round(width * factor)))
