"""The OpenVINO backend of the engine: NetC and NetE compiled by OpenVINO for the CPU (issue 10).

OpenVINO is the CPU inference runtime of the field on Intel CPUs (bf16 on AMX, INT8 on
AMX/VNNI) and runs on ARM64. The node keeps what makes it a node: an encoder graph runs once per
frame and its outputs (NetC features and image pyramid) are kept for the next pair; a decoder
graph takes two frames' tensors and returns the forward flow, or forward and backward in one
batch of two for the occlusion check. Both come from lfn_ros.model.graphs (the model's own
methods, exported to ONNX and read by OpenVINO, a route that measured faster than OpenVINO's
direct PyTorch conversion); they are compiled once per network grid and recompiled when the
resolution changes (the most recent :data:`MAX_GRIDS` grids stay compiled).

Precision: ``bf16`` sets OpenVINO's inference precision hint to bf16 (where the CPU computes it
natively), ``fp32`` to f32; ``int8`` quantises the convolutions with NNCF, calibrated on
synthetic pairs per grid, and keeps the flow path in f32 (lfn_ros.engine.int8). Same calls as
:class:`lfn_ros.engine.torch_backend.TorchBackend`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import OrderedDict

import numpy as np
import torch

from ..model.graphs import decoder_onnx, encoder_onnx, encoding_names, from_tensors, to_tensors
from ..model.encoding import FrameEncoding
from ..model.liteflownet import LiteFlowNet

#: Compiled grids kept (a node sees few resolutions; each costs a few MB and seconds to compile).
MAX_GRIDS = 4


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (the message says why)."""


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class OpenVINOBackend:
    """LiteFlowNet compiled by OpenVINO for the CPU, in ``precision`` ("fp32" or "bf16").

    Args:
        model: the LiteFlowNet whose weights and finest level are compiled.
        precision: a resolved precision name.
        threads: OpenVINO inference threads (0: OpenVINO's choice, all cores).
    """

    name = "openvino"

    def __init__(self, model: LiteFlowNet, precision: str, threads: int = 0, head=None) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise BackendUnavailable(f"OpenVINO is not installed ({exc}); pip install openvino") from exc
        if precision not in ("fp32", "bf16", "int8"):
            raise BackendUnavailable(f"the OpenVINO backend runs fp32, bf16 or int8 on the CPU, not {precision}")
        if precision == "int8":
            from .int8 import Int8Unavailable, nncf_module

            try:
                nncf_module()
            except Int8Unavailable as exc:
                raise BackendUnavailable(str(exc)) from exc
        self._ov = ov
        self.core = ov.Core()
        self.model = model.cpu().eval()
        self.head = head.cpu().eval() if head is not None else None
        self.precision = precision
        self.levels = model.active_levels
        # int8: the quantised convolutions run int8, every other op f32 (the flow path).
        self.config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
                       "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        self._encoders: OrderedDict = OrderedDict()  # grid -> infer request
        self._decoders: OrderedDict = OrderedDict()  # (grid, mode) -> infer request
        self._calibration: dict = {}  # grid -> (encoder feeds, decoder feeds), int8 only

    # ------------------------------------------------------------------ compilation
    def _compile(self, path, grid: tuple, part: int):
        ov_model = self.core.read_model(str(path))
        if self.precision == "int8":
            ov_model = self._quantize(ov_model, grid, part)
        return self.core.compile_model(ov_model, "CPU", self.config).create_infer_request()

    def _quantize(self, ov_model, grid: tuple, part: int):
        """``ov_model`` (part 0: the encoder, 1: a decoder) quantised for ``grid`` with NNCF."""
        from .int8 import calibration_feeds, calibration_frames, quantize

        if grid not in self._calibration:
            self._calibration = {grid: calibration_feeds(self.model, calibration_frames(self.model, grid))}
        feeds = self._calibration[grid][part]
        if part == 1:  # the decoder comes last (prepare, first frame): free the features (~25 MB a pair at 1248x384)
            self._calibration.pop(grid)
        return quantize(ov_model, feeds)

    def _request(self, cache: OrderedDict, key, build):
        request = cache.get(key)
        if request is None:
            folder = tempfile.mkdtemp(prefix="lfn_ros_openvino_")
            grid = key if cache is self._encoders else key[0]
            try:
                request = self._compile(build(folder), grid, 0 if cache is self._encoders else 1)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            cache[key] = request
            while len(cache) > MAX_GRIDS * (3 if cache is self._decoders else 1):
                cache.popitem(last=False)
        cache.move_to_end(key)
        return request

    def prepare(self, grid: tuple, mode: str = "check") -> None:
        """Compile the graphs for a grid now (the node's warm-up), not at the first frame."""
        self._encoder(grid)
        self._decoder(grid, mode)

    def _encoder(self, grid: tuple):
        return self._request(self._encoders, tuple(grid), lambda folder: encoder_onnx(self.model, tuple(grid), folder))

    def _decoder(self, grid: tuple, mode: str):
        return self._request(self._decoders, (tuple(grid), mode),
                             lambda folder: decoder_onnx(self.model, tuple(grid), mode, folder, self.head))

    # ------------------------------------------------------------------ the backend calls
    def encode(self, normalised: torch.Tensor, input_size: tuple) -> FrameEncoding:
        grid = tuple(normalised.shape[-2:])
        request = self._encoder(grid)
        request.infer({"normalised": np.ascontiguousarray(normalised.detach().float().cpu().numpy())})
        # Copies: the request's output buffers are reused by the next frame, this encoding is not.
        tensors = [torch.from_numpy(request.get_output_tensor(i).data.copy()) for i in range(2 * len(self.levels))]
        return from_tensors(tensors, self.levels, input_size)

    def decode(self, previous: FrameEncoding, current: FrameEncoding, mode: str):
        grid = current.grid_size
        request = self._decoder(grid, mode)
        names = encoding_names(self.levels)
        feeds = {f"previous_{n}": t.numpy() for n, t in zip(names, to_tensors(previous, self.levels))}
        feeds.update({f"current_{n}": t.numpy() for n, t in zip(names, to_tensors(current, self.levels))})
        request.infer(feeds)
        outputs = [torch.from_numpy(request.get_output_tensor(i).data.copy()) for i in range(1 + (mode != "none"))]
        forward = outputs[0]
        return forward, outputs[1] if mode == "check" else None, outputs[1] if mode == "head" else None
