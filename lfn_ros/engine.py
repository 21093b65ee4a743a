"""FlowEngine: a LiteFlowNet inference session on the GPU (or CPU). No ROS imports.

Streaming use (the node, DESIGN.md section 2)::

    engine = FlowEngine(weights="default", device="cuda")
    staged = engine.stage(rgb_uint8_hwc, stamp)   # H2D on the upload stream (pinned buffer)
    pending = engine.run(staged)                  # preprocess + NetC + NetE on the compute stream
    result = pending.wait()                       # D2H on the download stream; None for a first frame

The engine keeps the previous frame's :class:`FrameEncoding` (NetC features + image pyramid)
on the device, so every frame's features are computed once. Forward and backward flow for the
occlusion check run in one batch of two. Between ``run`` and ``wait`` the caller may ``stage``
the next frame: its upload runs on its own stream and overlaps this frame's compute.

Pair use (CLI, evaluation): ``engine.infer(image1, image2, occlusion=True)``.

Images are (H, W, 3) uint8 RGB numpy arrays. Flow results are (H, W, 2) float32 pixels,
channel 0 = x (right), channel 1 = y (down), from the previous frame to the current one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .model.liteflownet import FrameEncoding, LiteFlowNet
from .model.weights import load_model
from .ops.occlusion import DEFAULT_ALPHA, DEFAULT_BETA, forward_backward_occlusion
from .ops.resize import resize_flow

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
STAGES = ("upload", "preprocess", "features", "decoder", "postprocess", "download")


class EngineError(RuntimeError):
    """Inference could not run (bad input, device trouble); the engine stays usable."""


class FlowOutOfMemory(EngineError):
    """The device ran out of memory; caches were freed and the previous frame dropped."""


def resolve_device(requested: str) -> tuple[torch.device, str | None]:
    """Map 'cuda', 'cuda:N' or 'cpu' to a usable device.

    Returns (device, warning): the warning is set when CUDA was asked for but is unavailable
    and the engine falls back to the CPU.
    """
    requested = (requested or "cpu").strip().lower()
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            return torch.device("cpu"), f"device '{requested}' requested but CUDA is not available: running on the CPU (slow)"
        device = torch.device(requested)
        index = device.index if device.index is not None else 0
        if index >= torch.cuda.device_count():
            return torch.device("cuda:0"), f"device '{requested}' does not exist ({torch.cuda.device_count()} GPUs): using cuda:0"
        return torch.device("cuda", index), None
    if requested != "cpu":
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got '{requested}'")
    return torch.device("cpu"), None


def processing_size(height: int, width: int, scale: float = 1.0, max_width: int = 0) -> tuple[int, int]:
    """Resolution the network runs at for an (H, W) input: ``scale`` times the input, further
    reduced so the width is at most ``max_width`` (0 = no limit); never below 32x32."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    factor = scale
    if max_width and width * factor > max_width:
        factor = max_width / width
    return max(32, int(round(height * factor))), max(32, int(round(width * factor)))


@dataclass
class FlowResult:
    """One flow estimate.

    flow: (H, W, 2) float32 pixels, previous -> current frame.
    occlusion: (H, W) bool, True where a pixel of the previous frame has no match, or None.
    timings: milliseconds per stage (see STAGES) plus "compute" (all stages).
    stamp, previous_stamp: the stamps given to :meth:`FlowEngine.stage`.
    """

    flow: np.ndarray
    occlusion: np.ndarray | None
    timings: dict
    stamp: object = None
    previous_stamp: object = None


@dataclass
class Staged:
    """A frame on its way to the device (returned by :meth:`FlowEngine.stage`)."""

    image: torch.Tensor  # (1, 3, H, W) uint8 on the device
    stamp: object
    seconds: float | None
    size: tuple
    events: dict = field(default_factory=dict)
    host_ms: dict = field(default_factory=dict)


class _Clock:
    """Stage timer: CUDA events on a GPU (no host sync until read), perf_counter on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: dict = {}

    def mark(self, name: str, stream=None) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(stream)
            self.marks[name] = event
        else:
            self.marks[name] = time.perf_counter()

    def elapsed_ms(self, start: str, end: str) -> float:
        a, b = self.marks[start], self.marks[end]
        if self.cuda:
            return float(a.elapsed_time(b))
        return (b - a) * 1000.0


class PendingFlow:
    """Work queued by :meth:`FlowEngine.run`; :meth:`wait` returns the :class:`FlowResult`."""

    def __init__(self, engine, staged, clock, flow_host, occ_host, done_event, result_args):
        self._engine = engine
        self._staged = staged
        self._clock = clock
        self._flow = flow_host
        self._occ = occ_host
        self._done = done_event
        self._args = result_args

    def wait(self) -> FlowResult | None:
        """Block until the download finished; None when this was a stream's first frame."""
        if self._flow is None:
            return None
        if self._done is not None:
            self._done.synchronize()
        clock = self._clock
        if "upload_start" in self._staged.events:
            upload = float(self._staged.events["upload_start"].elapsed_time(self._staged.events["upload_end"]))
        else:
            upload = self._staged.host_ms.get("upload", 0.0)
        timings = {
            "upload": upload,
            "preprocess": clock.elapsed_ms("start", "preprocessed"),
            "features": clock.elapsed_ms("preprocessed", "features"),
            "decoder": clock.elapsed_ms("features", "decoded"),
            "postprocess": clock.elapsed_ms("decoded", "postprocessed"),
            "download": clock.elapsed_ms("postprocessed", "downloaded"),
        }
        timings["compute"] = sum(timings[s] for s in STAGES)
        # Views, not copies: every frame gets freshly allocated output tensors (pinned ones come
        # from torch's caching host allocator), and a numpy view keeps its tensor alive, so no
        # later frame can write into a result that was handed out.
        return FlowResult(
            flow=self._flow.numpy(),
            occlusion=self._occ.numpy() if self._occ is not None else None,
            timings=timings,
            **self._args,
        )


class FlowEngine:
    """LiteFlowNet inference session.

    Args:
        weights: checkpoint path, "default" (shipped weights) or None (random; warns).
        device: "cuda", "cuda:N" or "cpu"; CUDA falls back to the CPU with a warning.
        precision: "fp32", "fp16" or "bf16" (autocast; fp16 needs CUDA, else fp32 is used).
        finest_level: 2 (published) or 3 (quarter resolution, faster); None = the checkpoint's
            recommendation (the finest level it was trained to), else 2.
        occlusion: compute the forward-backward occlusion mask (backward flow in the same batch).
        alpha, beta: thresholds of the occlusion check (Sundaram et al. 2010).
        scale, max_width: processing resolution relative to the input (see processing_size).
        model: an already built LiteFlowNet to use instead of loading ``weights``.
    """

    def __init__(
        self,
        weights="default",
        device: str = "cuda",
        precision: str = "fp32",
        finest_level: int | None = None,
        occlusion: bool = True,
        alpha: float = DEFAULT_ALPHA,
        beta: float = DEFAULT_BETA,
        scale: float = 1.0,
        max_width: int = 0,
        model: LiteFlowNet | None = None,
    ) -> None:
        self.device, self.device_warning = resolve_device(device)
        if self.device_warning:
            log.warning(self.device_warning)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got '{precision}'")
        if precision == "fp16" and self.device.type != "cuda":
            log.warning("fp16 needs CUDA; using fp32 on the CPU")
            precision = "fp32"
        self.precision = precision
        if model is None:
            model, self.card = load_model(weights, finest_level=finest_level, device=self.device)
        else:
            model = model.to(self.device).eval()
            if finest_level is not None:
                model.finest_level = finest_level
            self.card = {"name": "in-memory", "trained": True}
        self.model = model
        self.occlusion = occlusion
        self.alpha, self.beta = alpha, beta
        self.scale, self.max_width = scale, max_width
        self._lock = threading.RLock()  # reset() is also called from inside run()
        self._previous: FrameEncoding | None = None
        self._previous_stamp = None
        self._previous_seconds: float | None = None
        self._previous_size: tuple | None = None
        if self.device.type == "cuda":
            self._upload_stream = torch.cuda.Stream(self.device)
            self._compute_stream = torch.cuda.Stream(self.device)
            self._download_stream = torch.cuda.Stream(self.device)
        else:
            self._upload_stream = self._compute_stream = self._download_stream = None
        self._pinned: dict = {}
        self._stage_count = 0

    # ------------------------------------------------------------------ description
    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            return f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        return "cpu"

    @property
    def model_name(self) -> str:
        return f"LiteFlowNet level {self.model.finest_level}, {self.precision}, weights {self.card.get('name', '?')}"

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget the previous frame: the next frame starts a new pair."""
        with self._lock:
            self._previous = None
            self._previous_stamp = None
            self._previous_seconds = None
            self._previous_size = None

    @property
    def has_previous(self) -> bool:
        return self._previous is not None

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])

    def _stream(self, stream):
        return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()

    # ------------------------------------------------------------------ streaming
    def stage(self, image: np.ndarray, stamp=None, seconds: float | None = None) -> Staged:
        """Start moving one frame to the device.

        Args:
            image: (H, W, 3) uint8 RGB, C-contiguous or not.
            stamp: opaque stamp returned with the result (e.g. a ROS Time message).
            seconds: the stamp in seconds, used to detect time going backwards (None: no check).
        """
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise EngineError(f"expected an (H, W, 3) uint8 RGB image, got {desc}")
        height, width = image.shape[:2]
        if height < 32 or width < 32:
            raise EngineError(f"image {height}x{width} is too small: LiteFlowNet needs at least 32x32")
        staged = Staged(image=None, stamp=stamp, seconds=seconds, size=(height, width))
        if self.device.type == "cuda":
            # Pinned host buffer per size, one per parity so the next frame's copy-in never
            # overwrites a buffer whose H2D copy may still be in flight.
            self._stage_count += 1
            key = (height, width, self._stage_count % 2)
            if len(self._pinned) > 8:  # bounded: drop buffers of sizes no longer seen
                self._pinned.clear()
            host = self._pinned.get(key)
            if host is None:
                host = torch.empty((height, width, 3), dtype=torch.uint8, pin_memory=True)
                self._pinned[key] = host
            self._upload_stream.wait_stream(torch.cuda.current_stream(self.device))
            host.numpy()[...] = image
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            with torch.cuda.stream(self._upload_stream):
                start.record()
                device_image = host.to(self.device, non_blocking=True).permute(2, 0, 1).unsqueeze(0)
                end.record()
            staged.events = {"upload_start": start, "upload_end": end}
            staged.image = device_image
        else:
            t0 = time.perf_counter()
            staged.image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)
            staged.host_ms["upload"] = (time.perf_counter() - t0) * 1000.0
        return staged

    def _check_continuity(self, staged: Staged) -> None:
        """Reset on a resolution change or a stamp going backwards (a looping bag)."""
        if self._previous is None:
            return
        if staged.size != self._previous_size:
            log.info("resolution changed %s -> %s: starting a new sequence", self._previous_size, staged.size)
            self.reset()
        elif staged.seconds is not None and self._previous_seconds is not None and staged.seconds <= self._previous_seconds:
            log.info("stamp went from %.6f to %.6f: starting a new sequence", self._previous_seconds, staged.seconds)
            self.reset()

    def run(self, staged: Staged) -> PendingFlow:
        """Queue preprocessing, NetC and (when a previous frame exists) NetE for ``staged``."""
        try:
            with self._lock:
                self._check_continuity(staged)
                return self._run_locked(staged)
        except torch.cuda.OutOfMemoryError as exc:
            self._recover_from_oom()
            raise FlowOutOfMemory(f"out of device memory at {staged.size[0]}x{staged.size[1]}: {str(exc).splitlines()[0]}") from exc

    def _recover_from_oom(self) -> None:
        self._previous = None
        self._previous_size = None
        self._previous_seconds = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @torch.no_grad()
    def _run_locked(self, staged: Staged) -> PendingFlow:
        clock = _Clock(self.device)
        height, width = staged.size
        net_size = processing_size(height, width, self.scale, self.max_width)
        compute = self._compute_stream
        with self._stream(compute):
            if compute is not None:
                compute.wait_event(staged.events["upload_end"])
                staged.image.record_stream(compute)
            clock.mark("start", compute)
            image = staged.image
            if net_size != (height, width):
                image = torch.nn.functional.interpolate(image.float(), size=net_size, mode="bilinear", align_corners=False) / 255.0
            with self._autocast():
                normalised = self.model.preprocess(image)
                clock.mark("preprocessed", compute)
                current = self.model.encode_preprocessed(normalised, net_size)
                clock.mark("features", compute)
                previous = self._previous
                first_frame = previous is None
                if not first_frame:
                    if self.occlusion:
                        flows = self.model.decode(FrameEncoding.cat([previous, current]), FrameEncoding.cat([current, previous]))
                    else:
                        flows = self.model.decode(previous, current)
                clock.mark("decoded", compute)
            if not first_frame:
                both = self.model.to_pixels(flows[-1].float(), net_size)
                if net_size != (height, width):
                    both = resize_flow(both, (height, width))
                forward = both[0:1]
                occ = None
                if self.occlusion:
                    occ = forward_backward_occlusion(forward, both[1:2], self.alpha, self.beta)[0, 0]
                flow_hwc = forward[0].permute(1, 2, 0).contiguous()
            clock.mark("postprocessed", compute)
        previous_stamp = self._previous_stamp
        self._previous = current
        self._previous_stamp = staged.stamp
        self._previous_seconds = staged.seconds
        self._previous_size = staged.size
        if first_frame:
            return PendingFlow(self, staged, clock, None, None, None, {})
        download = self._download_stream
        if download is not None:
            download.wait_stream(compute)
            with torch.cuda.stream(download):
                flow_hwc.record_stream(download)
                flow_host = torch.empty(flow_hwc.shape, dtype=torch.float32, pin_memory=True)
                flow_host.copy_(flow_hwc, non_blocking=True)
                occ_host = None
                if occ is not None:
                    occ.record_stream(download)
                    occ_host = torch.empty(occ.shape, dtype=torch.bool, pin_memory=True)
                    occ_host.copy_(occ, non_blocking=True)
                clock.mark("downloaded", download)
                done = torch.cuda.Event()
                done.record(download)
        else:
            flow_host = flow_hwc
            occ_host = occ
            clock.mark("downloaded")
            done = None
        return PendingFlow(self, staged, clock, flow_host, occ_host, done, {"stamp": staged.stamp, "previous_stamp": previous_stamp})

    def process(self, image: np.ndarray, stamp=None, seconds: float | None = None) -> FlowResult | None:
        """stage + run + wait for one frame: flow from the previous frame, or None for the first."""
        return self.run(self.stage(image, stamp, seconds)).wait()

    # ------------------------------------------------------------------ pairs
    def infer(self, image1: np.ndarray, image2: np.ndarray, occlusion: bool | None = None) -> FlowResult:
        """Flow from image1 to image2 (both (H, W, 3) uint8 RGB), independent of any stream."""
        if image1.shape != image2.shape:
            raise EngineError(f"images differ in size: {image1.shape} vs {image2.shape}")
        saved = (self._previous, self._previous_stamp, self._previous_seconds, self._previous_size, self.occlusion)
        try:
            self.reset()
            if occlusion is not None:
                self.occlusion = occlusion
            self.process(image1, stamp=0)
            result = self.process(image2, stamp=1)
        finally:
            self._previous, self._previous_stamp, self._previous_seconds, self._previous_size, self.occlusion = saved
        return result

    def warmup(self, height: int = 480, width: int = 640, iterations: int = 2) -> float:
        """Run a few dummy pairs at a size so the first real frame is not slow (cuDNN autotuning,
        allocator growth, lazy CUDA init). Returns the last iteration's time in ms."""
        rng = np.random.default_rng(0)
        image = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
        elapsed = 0.0
        for _ in range(max(1, iterations)):
            t0 = time.perf_counter()
            self.infer(image, image)
            elapsed = (time.perf_counter() - t0) * 1000.0
        return elapsed
