"""FlowEngine: a LiteFlowNet inference session on the GPU (or CPU). No ROS imports.

Streaming use (the node; docs/architecture.md, "Data flow in the node")::

    engine = FlowEngine(weights="default", device="cuda")
    staged = engine.stage(rgb_uint8_hwc, stamp)   # H2D on the upload stream (pinned buffer)
    pending = engine.run(staged)                  # preprocess + NetC + NetE on the compute stream
    result = pending.wait()                       # D2H on the download stream; None for a first frame

The engine keeps the previous frame (:class:`FrameState`: its NetC features and image pyramid)
on the device, so every frame's features are computed once. Forward and backward flow for the
occlusion check run in one batch of two. Between ``run`` and ``wait`` the caller may ``stage``
the next frame: its upload runs on its own stream and overlaps this frame's compute.

Pair use (CLI, evaluation): ``engine.infer(image1, image2)``, stateless: the stream's previous
frame is neither used nor changed.

Last, on the host, the flow is refined at the input resolution by a few iterations of a
variational energy (``refinement="variational"``, what "auto" gives lfn_ros's weights;
lfn_ros.ops.refine): their finest level is a quarter of the input resolution, and this recovers
sub-pixel precision and motion boundaries for a few ms per frame.

Images are (H, W, 3) uint8 RGB numpy arrays. Flow results are (H, W, 2) float32 pixels,
channel 0 = x (right), channel 1 = y (down), from the previous frame to the current one. With
``scale`` / ``max_width`` the image is resized once, straight to the network's grid (multiples
of 32), and the flow once, straight back to the input size.

Running out of device memory in any call (stage, run, wait) frees the caches, drops the previous
frame and raises :class:`FlowOutOfMemory`; the next frame starts a new sequence.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import numpy as np
import torch

from .. import precision as precisions
from ..model.liteflownet import LiteFlowNet
from ..model.occlusion_head import occlusion_from_logits
from ..model.weights import load_model, load_occlusion_head, resolve_finest_level
from ..ops import cascade as two_scale
from ..ops.occlusion import forward_backward_occlusion
from ..ops.refine import grey, make_refiner, resolve_refinement
from ..ops.resize import multiple_size
from .backends import check_thresholds, make_backend, resolve_backend, resolve_occlusion_method
from .clock import StageClock
from .pending import PendingFlow
from .types import CascadeEncoding, EngineError, FlowOutOfMemory, FlowResult, FrameState, Staged, processing_size

log = logging.getLogger(__name__)


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


class FlowEngine:
    """LiteFlowNet inference session.

    Args:
        weights: checkpoint path, "default" (shipped weights) or None (random; warns).
        device: "cuda", "cuda:N" or "cpu"; CUDA falls back to the CPU with a warning.
        precision: "auto", "fp32", "bf16" or "fp16" (lfn_ros.precision: autocast + channels_last;
            auto = bf16 where the device computes it natively, else fp32 / fp16 on older GPUs).
        finest_level: 2 (published) or 3 (quarter resolution, faster); None = the checkpoint's
            recommendation (the finest level it was trained to), else 2.
        occlusion: compute an occlusion mask at all.
        occlusion_method: "check" (forward-backward consistency, Sundaram et al. 2010: the
            backward flow in the same batch), "head" (the checkpoint's occlusion head on the
            forward pass only; lfn_ros.model.occlusion_head) or "auto" (the head where the
            checkpoint has one, else the check).
        alpha, beta: thresholds of the occlusion check; None (or negative): the ones chosen for
            the weights on synthetic validation (their card), else the paper's 0.01 / 0.5.
        scale, max_width: processing resolution relative to the input (see processing_size).
        model: an already built LiteFlowNet to use instead of loading ``weights`` (its card says
            "in-memory"; trained unless ``trained=False``).
        occlusion_head: (OcclusionHead, logit threshold) to use with ``model`` (a loaded
            checkpoint brings its own).
        backend: "torch", "torch-compiled" (TorchInductor: the first frame of a resolution
            compiles), "openvino" (CPU only) or "auto" (OpenVINO for fp32 on the CPU where it
            is installed, else torch: the fastest path within 1 % of torch fp32; see
            :func:`resolve_backend`).
        threads: CPU inference threads of the OpenVINO backend (0: all cores); torch's are
            process-wide (torch.set_num_threads).
        refinement: "variational" (the flow refined at the input resolution on the host,
            lfn_ros.ops.refine), "none" (the network's flow, upsampled) or "auto" (variational
            for lfn_ros's weights, none for the paper's published ones, which then run exactly
            as published; :func:`lfn_ros.ops.refine.resolve_refinement`).
        cascade: "two-scale" (the network at half and at full processing resolution, the second
            pass on frame 2 warped by the first's flow, fused per pixel with the direct flow:
            large motions for about 1.7x the network's step on a CPU, docs/benchmarks.md; lfn_ros.ops.cascade), "none" (one
            pass) or "auto" (:func:`resolve_cascade`). Fixed for the engine's life: a stream's
            frames keep the encodings of one mode.
    """

    def __init__(
        self,
        weights="default",
        device: str = "cuda",
        precision: str = "fp32",
        finest_level: int | None = None,
        occlusion: bool = True,
        alpha: float | None = None,
        beta: float | None = None,
        scale: float = 1.0,
        max_width: int = 0,
        model: LiteFlowNet | None = None,
        trained: bool = True,
        backend: str = "auto",
        threads: int = 0,
        occlusion_method: str = "auto",
        occlusion_head=None,
        refinement: str = "auto",
        cascade: str = "auto",
    ) -> None:
        self.device, self.device_warning = resolve_device(device)
        if self.device_warning:
            log.warning(self.device_warning)
        self.precision = precisions.checked(precision, self.device, log=log.warning)
        if model is None:
            model, self.card = load_model(weights, finest_level=finest_level, device=self.device)
            occlusion_head = load_occlusion_head(weights, self.device) if weights else (None, None)
        else:
            self.card = {"name": "in-memory", "trained": trained}
            model.finest_level = resolve_finest_level(finest_level, {"recommended_finest_level": model.finest_level})
        self.model = model
        head, self.head_threshold = occlusion_head or (None, None)
        self.occlusion_method = resolve_occlusion_method(occlusion_method, head is not None, model.finest_level)
        head = head if self.occlusion_method == "head" else None
        self.backend = make_backend(resolve_backend(backend, self.device, self.precision), model, self.device, self.precision, threads, head)
        self.occlusion = occlusion
        self.alpha, self.beta = check_thresholds(self.card, alpha, beta)
        if scale <= 0 or max_width < 0:
            raise ValueError(f"scale must be > 0 and max_width >= 0, got {scale}, {max_width}")
        self.scale, self.max_width = scale, max_width
        self.refinement = resolve_refinement(refinement, self.card)
        self.refiner = make_refiner(self.refinement)
        self.cascade = two_scale.resolve_cascade(cascade, self.card)
        #: The cascade's fusion with the direct flow (one more full-resolution NetE per pair);
        #: False keeps the stacked flow alone (benchmarks/cascade.py compares the two).
        self.cascade_fusion = True
        self._lock = threading.RLock()  # reset() is also called from inside run()
        self._previous: FrameState | None = None
        cuda = self.device.type == "cuda"
        self._upload_stream = torch.cuda.Stream(self.device) if cuda else None
        self._compute_stream = torch.cuda.Stream(self.device) if cuda else None
        self._download_stream = torch.cuda.Stream(self.device) if cuda else None
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
        return self.describe()

    def describe(self, cascade: str | None = None) -> str:
        """The model as the node reports it; ``cascade``: how a pair ran (FlowResult.cascade), which
        for a two-scale engine may be one pass (the node's adaptive cascade)."""
        refined = ", variational refinement" if self.refiner is not None else ""
        cascaded = ", two-scale cascade" if self.cascade != "none" else ""
        if cascaded and cascade == "none":
            cascaded = ", one pass (adaptive cascade)"
        return (f"LiteFlowNet level {self.model.finest_level}, {self.backend.name} {self.precision}{cascaded}{refined}, "
                f"occlusion {self.occlusion_method}, weights {self.card.get('name', '?')}")

    def prepare(self, height: int, width: int) -> None:
        """Get ready for (H, W) frames before the first one arrives (the OpenVINO backend compiles
        its graphs for the grid; torch has nothing to do)."""
        if hasattr(self.backend, "prepare"):
            grid = self._grid((height, width))
            self.backend.prepare(grid, self._decoder_mode(self.occlusion))
            if self.cascade != "none":  # the residual pair at the full grid, the coarse pair at half of it
                self.backend.prepare(grid, "none")
                self.backend.prepare(two_scale.coarse_size(grid, self.model.grid_multiple), "none")

    def _grid(self, size: tuple) -> tuple:
        """The network grid (H', W') for (H, W) input frames: the processing size, multiples of 32."""
        return multiple_size(*processing_size(*size, self.scale, self.max_width), self.model.grid_multiple)

    # ------------------------------------------------------------------ state and settings
    def reset(self) -> None:
        """Forget the previous frame: the next frame starts a new sequence."""
        with self._lock:
            self._previous = None

    @property
    def has_previous(self) -> bool:
        return self._previous is not None

    def configure(self, *, occlusion: bool | None = None, alpha: float | None = None, beta: float | None = None,
                  refinement: str | None = None) -> None:
        """Change the occlusion and refinement settings between frames (thread-safe; the node's
        runtime parameters). A negative alpha or beta means the weights' own
        (:func:`check_thresholds`). A refinement switched on starts with the next pair whose
        frames both arrived while it was on."""
        chosen = check_thresholds(self.card, alpha, beta)
        refinement = resolve_refinement(refinement, self.card) if refinement is not None else None
        with self._lock:
            if refinement is not None and refinement != self.refinement:
                self.refinement, self.refiner = refinement, make_refiner(refinement)
            if occlusion is not None:
                self.occlusion = bool(occlusion)
            if alpha is not None:
                self.alpha = chosen[0]
            if beta is not None:
                self.beta = chosen[1]

    def release_memory(self) -> None:
        """Give cached device memory back (after running out of it): CUDA's caching allocator
        and the pinned upload buffers."""
        self._pinned.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @contextlib.contextmanager
    def _oom_guard(self, where: str, size: tuple):
        """Out of device memory in ``where``: free the caches, drop the sequence, raise FlowOutOfMemory."""
        try:
            yield
        except torch.cuda.OutOfMemoryError as exc:
            self.reset()
            self.release_memory()
            raise FlowOutOfMemory(f"out of device memory in {where} at {size[1]}x{size[0]}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}") from exc

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
        staged = Staged(image=None, stamp=stamp, seconds=seconds, size=(height, width),
                        grey=grey(image) if self.refiner is not None else None)
        with self._oom_guard("upload", staged.size):
            self._upload(image, staged)
        return staged

    def _upload(self, image: np.ndarray, staged: Staged) -> None:
        """Fill ``staged.image`` (and its upload timing) from the host image."""
        if self.device.type != "cuda":
            t0 = time.perf_counter()
            staged.image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)
            staged.host_ms["upload"] = (time.perf_counter() - t0) * 1000.0
            return
        # Pinned host buffer per size, one per parity so the next frame's copy-in never
        # overwrites a buffer whose H2D copy may still be in flight.
        height, width = staged.size
        self._stage_count += 1
        key = (height, width, self._stage_count % 2)
        if len(self._pinned) > 8:  # bounded: drop buffers of sizes no longer seen
            self._pinned.clear()
        host = self._pinned.get(key)
        if host is None:
            host = self._pinned[key] = torch.empty((height, width, 3), dtype=torch.uint8, pin_memory=True)
        self._upload_stream.wait_stream(torch.cuda.current_stream(self.device))
        host.numpy()[...] = image
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(self._upload_stream):
            start.record()
            staged.image = host.to(self.device, non_blocking=True).permute(2, 0, 1).unsqueeze(0)
            end.record()
        staged.events = {"upload_start": start, "upload_end": end}

    def _starts_new_sequence(self, staged: Staged) -> bool:
        """Reset on a resolution change or a stamp not after the previous one (a looping bag)."""
        previous = self._previous
        if previous is None:
            return False
        if staged.size != previous.size:
            log.info("resolution changed %s -> %s: starting a new sequence", previous.size, staged.size)
            return True
        if staged.seconds is not None and previous.seconds is not None and staged.seconds <= previous.seconds:
            log.info("stamp went from %.6f to %.6f: starting a new sequence", previous.seconds, staged.seconds)
            return True
        return False

    def run(self, staged: Staged, one_pass: bool = False) -> PendingFlow:
        """Queue preprocessing, NetC and (when a previous frame exists) NetE for ``staged``.

        one_pass: with the two-scale cascade, run this frame in one pass (the node's adaptive
        cascade, lfn_ros.governor.CascadeGovernor). Its half-grid encoding is skipped, so the next
        pair runs in one pass too. The result's ``cascade`` says which mode each pair ran in."""
        with self._lock, self._oom_guard("compute", staged.size):
            if self._starts_new_sequence(staged):
                self._previous = None
            previous = self._previous
            encoding, clock, outputs = self._compute(staged, previous.encoding if previous else None, self.occlusion,
                                                     one_pass)
            self._previous = FrameState(encoding, staged.stamp, staged.seconds, staged.size, staged.grey)
            if outputs is None:
                return PendingFlow(self, staged, clock)
            outputs, done = self._download(outputs, clock)
            return PendingFlow(self, staged, clock, outputs, done, previous.stamp, self._refinement_of(previous.grey, staged))

    def _refinement_of(self, previous_grey, staged: Staged):
        """(refiner, grey of frame 1, grey of frame 2) for a pair, or None when the refinement is
        off or a frame has no grey image (it arrived while the refinement was off)."""
        if self.refiner is None or previous_grey is None or staged.grey is None:
            return None
        return self.refiner, previous_grey, staged.grey

    def _decoder_mode(self, occlusion: bool) -> str:
        return self.occlusion_method if occlusion else "none"

    def _compute(self, staged: Staged, previous, occlusion: bool, one_pass: bool = False):
        """Encode ``staged`` and, given the previous frame's encoding, decode and postprocess.
        Touches no engine state. Returns (encoding, clock, (flow (H, W, 2), occlusion (H, W) or None,
        the cascade the pair ran: "two-scale" or "none") on the device, or None for a first frame).
        one_pass: see :meth:`run`; a previous frame without a half-grid encoding also gives one pass."""
        clock = StageClock(self.device)
        grid = self._grid(staged.size)
        compute = self._compute_stream
        cascaded = self.cascade != "none"  # the encodings are CascadeEncoding
        two_scaled = cascaded and not one_pass  # this frame gets its half-grid encoding
        with torch.cuda.stream(compute) if compute is not None else contextlib.nullcontext(), torch.no_grad():
            if compute is not None:
                compute.wait_event(staged.events["upload_end"])
                staged.image.record_stream(compute)
            clock.mark("start", compute)
            normalised = self.model.preprocess(staged.image, grid)  # the one resize in
            if two_scaled:
                coarse = self.model.preprocess(staged.image, two_scale.coarse_size(grid, self.model.grid_multiple))
            clock.mark("preprocessed", compute)
            current = self.backend.encode(normalised, staged.size)
            if cascaded:
                current = (CascadeEncoding(current, self.backend.encode(coarse, staged.size), two_scale.luminance(staged.image))
                           if two_scaled else CascadeEncoding(current, None, None))
            clock.mark("features", compute)
            if previous is None:
                return current, clock, None
            if two_scaled and previous.coarse is not None:
                mode = "two-scale"
                flow, checked, backward, logits = self._decode_two_scale(previous, current, staged.image, grid, occlusion)
            else:
                mode = "none"
                pair = (previous.full, current.full) if cascaded else (previous, current)
                forward, backward, logits = self.backend.decode(*pair, self._decoder_mode(occlusion))
                flow = checked = self.model.to_pixels(forward, staged.size, grid)  # the one resize out
                backward = self.model.to_pixels(backward, staged.size, grid) if backward is not None else None
            clock.mark("decoded", compute)
            occ = None
            if backward is not None:  # the check compares the forward flow of the backward's pass
                occ = forward_backward_occlusion(checked, backward, self.alpha, self.beta)[0, 0]
            elif logits is not None:
                occ = occlusion_from_logits(logits, flow, self.head_threshold)[0, 0]
            flow = flow[0].permute(1, 2, 0).contiguous()
            clock.mark("postprocessed", compute)
        return current, clock, (flow, occ, mode)

    def _decode_two_scale(self, previous: CascadeEncoding, current: CascadeEncoding, image: torch.Tensor, grid: tuple,
                          occlusion: bool):
        """The two-scale cascade's decoding (lfn_ros.ops.cascade): the coarse pair, frame 2 warped
        by its flow and encoded, the residual pair, the direct pair, the fusion. The occlusion
        comes from the direct pair, as in one pass (the check's backward flow or the head's
        logits at the full grid): the stacked pair's frame 2 is warped, so its occlusions are not
        the scene's, and the coarse pair's are a quarter as sharp (Sintel F1 0.45 -> 0.31 measured
        with the head). Without the fusion (:attr:`cascade_fusion` False) they come from the coarse pair.
        image: frame 2, (1, 3, H, W) uint8 on the device. Returns (flow, the forward flow that the
        backward one is checked against, backward flow or None, logits or None), flows
        (1, 2, H, W) input pixels."""
        size = tuple(image.shape[-2:])
        mode = self._decoder_mode(occlusion)
        coarse_grid = two_scale.coarse_size(grid, self.model.grid_multiple)
        forward, backward, logits = self.backend.decode(previous.coarse, current.coarse, "none" if self.cascade_fusion else mode)
        coarse_flow = self.model.to_pixels(forward, size, coarse_grid)
        warped = two_scale.sample(image, coarse_flow) * (1.0 / 255.0)
        residual, _, _ = self.backend.decode(previous.full, self.backend.encode(self.model.preprocess(warped, grid), size), "none")
        stacked = two_scale.compose(self.model.to_pixels(residual, size, grid), coarse_flow)
        if self.cascade_fusion:
            forward, backward, logits = self.backend.decode(previous.full, current.full, mode)
            checked = self.model.to_pixels(forward, size, grid)
            flow = two_scale.fuse(checked, stacked, previous.grey, current.grey)
        else:
            checked, flow, grid = coarse_flow, stacked, coarse_grid
        if backward is not None:
            backward = self.model.to_pixels(backward, size, grid)
        return flow, checked, backward, logits

    def _download(self, outputs, clock: StageClock):
        """Device results -> host tensors (pinned, on the download stream, on a GPU); the
        cascade's mode passes through."""
        flow, occ, mode = outputs
        download = self._download_stream
        if download is None:
            clock.mark("downloaded")
            return (flow, occ, mode), None
        download.wait_stream(self._compute_stream)
        with torch.cuda.stream(download):
            hosts = []
            for tensor in (flow, occ):
                if tensor is None:
                    hosts.append(None)
                    continue
                tensor.record_stream(download)
                host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
                host.copy_(tensor, non_blocking=True)
                hosts.append(host)
            clock.mark("downloaded", download)
            done = torch.cuda.Event()
            done.record(download)
        return (*hosts, mode), done

    def process(self, image: np.ndarray, stamp=None, seconds: float | None = None) -> FlowResult | None:
        """stage + run + wait for one frame: flow from the previous frame, or None for the first."""
        return self.run(self.stage(image, stamp, seconds)).wait()

    # ------------------------------------------------------------------ pairs
    def infer(self, image1: np.ndarray, image2: np.ndarray, occlusion: bool | None = None) -> FlowResult:
        """Flow from image1 to image2 (both (H, W, 3) uint8 RGB). Stateless: the stream's
        previous frame is neither used nor changed."""
        if image1.shape != image2.shape:
            raise EngineError(f"images differ in size: {image1.shape} vs {image2.shape}")
        occlusion = self.occlusion if occlusion is None else occlusion
        first, second = self.stage(image1, stamp=0), self.stage(image2, stamp=1)
        with self._lock, self._oom_guard("compute", first.size):
            encoding, _, _ = self._compute(first, None, occlusion)
            _, clock, outputs = self._compute(second, encoding, occlusion)
            outputs, done = self._download(outputs, clock)
        return PendingFlow(self, second, clock, outputs, done, 0, self._refinement_of(first.grey, second)).wait()

    def warmup(self, height: int = 480, width: int = 640, iterations: int = 2) -> float:
        """Run a few dummy pairs at a size so the first real frame is not slow (cuDNN autotuning,
        allocator growth, lazy CUDA init). Returns the last iteration's time in ms."""
        self.prepare(height, width)
        rng = np.random.default_rng(0)
        image = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
        elapsed = 0.0
        for _ in range(max(1, iterations)):
            t0 = time.perf_counter()
            self.infer(image, image)
            elapsed = (time.perf_counter() - t0) * 1000.0
        return elapsed
