"""`lfn-ros export --onnx FILE`: LiteFlowNet as an ONNX graph for TensorRT (Jetson) and ONNX Runtime.

The graph takes two RGB images of one fixed size, float32 in [0, 1], shape (1, 3, H, W), and
returns ``flow`` (1, 2, H, W) in pixels (channel 0 = x, 1 = y), and with ``--occlusion`` also
``occlusion`` (1, 1, H, W) bool from the forward-backward check computed in the same batch.
TensorRT builds engines for fixed shapes anyway; export once per camera resolution.

Everything is standard ONNX (opset 17): the correlation is pad/slice/mul/reduce, f-warp and
the brightness warp are GridSample (opset 16+), f-lcon's neighbourhoods are slices.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .model.liteflownet import LiteFlowNet
from .ops.resize import multiple_size
from .ops.occlusion import DEFAULT_ALPHA, DEFAULT_BETA, forward_backward_occlusion

MIN_OPSET = 17


class ExportableFlow(nn.Module):
    """Pair-wise wrapper with the ONNX I/O contract above.

    Args:
        model: a LiteFlowNet (its finest_level is kept).
        occlusion: also output the forward-backward occlusion mask.
        alpha, beta: occlusion thresholds baked into the graph.
    """

    def __init__(self, model: LiteFlowNet, occlusion: bool = False, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA) -> None:
        super().__init__()
        self.model = model
        self.occlusion = occlusion
        self.alpha, self.beta = alpha, beta

    def forward(self, image1: torch.Tensor, image2: torch.Tensor):
        first, second = self.model.encode_pair(image1, image2)
        if not self.occlusion:
            return self.model.estimate(first, second)
        # The same bidirectional decode as the engine's (one batch of two).
        forward, backward = (self.model.to_pixels(f, first.input_size) for f in self.model.decode_bidirectional(first, second))
        return forward, forward_backward_occlusion(forward, backward, self.alpha, self.beta)


def export_onnx(model: LiteFlowNet, path, height: int, width: int, occlusion: bool = False, opset: int = MIN_OPSET) -> Path:
    """Write ``model`` as ONNX for (height, width) inputs; returns the path."""
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET} (GridSample needs 16), got {opset}")
    if height < 32 or width < 32:
        raise ValueError(f"export size must be at least 32x32, got {height}x{width}")
    grid = multiple_size(height, width, model.grid_multiple)
    if model.variant.input_resize == "cv2" and grid != (height, width):
        # A traced graph would bake OpenCV's resize of the example images in as constants.
        raise ValueError(f"{model.variant.name}'s weights resize the images with OpenCV before the network, which an "
                         f"ONNX graph cannot hold: export at a size the network takes as it is ({grid[1]}x{grid[0]}, "
                         f"multiples of {model.grid_multiple}) and resize the images with cv2.resize before it")
    wrapper = ExportableFlow(model.eval().cpu(), occlusion=occlusion).eval()
    example = (torch.rand(1, 3, height, width), torch.rand(1, 3, height, width))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    outputs = ["flow", "occlusion"] if occlusion else ["flow"]
    import warnings

    with warnings.catch_warnings():
        # The trace bakes the fixed size in; the tracer's warnings about that are expected.
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, example, str(path), input_names=["image1", "image2"], output_names=outputs,
                          opset_version=opset, dynamo=False, do_constant_folding=True)
    return path


def check_onnx(model: LiteFlowNet, path, height: int, width: int, occlusion: bool = False, shift=(3, -2)) -> dict:
    """Run the ONNX file with ONNX Runtime (CPU) against PyTorch on a pair with real motion: the
    embedded camera frame at (height, width) and the same scene moved by ``shift`` pixels (with
    trained weights the flow is then about ``shift`` everywhere, so f-warp and the correlation are
    exercised at real displacements, not at an untrained network's near-zero flow).

    Returns {"max_abs_diff", "mean_abs_diff", "mean_flow" (px), "relative_diff" (max diff / mean
    |flow|), "mean_flow_xy" ([u, v] of PyTorch's flow), "ort_ms", "torch_ms", and with occlusion
    "occlusion_agreement" (fraction)}.
    """
    import onnxruntime as ort

    from .io.sources import shifted_pair

    first, second = shifted_pair(*shift, size=(height, width))
    image1, image2 = (torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float() / 255.0 for image in (first, second))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    t0 = time.perf_counter()
    got = session.run(None, {"image1": image1.numpy(), "image2": image2.numpy()})
    ort_ms = (time.perf_counter() - t0) * 1000
    wrapper = ExportableFlow(model.eval().cpu(), occlusion=occlusion).eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        ref = wrapper(image1, image2)
    torch_ms = (time.perf_counter() - t0) * 1000
    ref = ref if isinstance(ref, tuple) else (ref,)
    diff = np.abs(got[0] - ref[0].numpy())
    magnitude = float(np.linalg.norm(ref[0].numpy(), axis=1).mean())
    report = {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "mean_flow": magnitude,
        "relative_diff": float(diff.max()) / max(magnitude, 1e-6),
        # A port whose warping mask turns rounding into zeroed samples (ptlflow's) differs around
        # those samples between any two runtimes: how far, at the median pixel.
        "p50_relative_diff": float(np.median(np.linalg.norm(got[0] - ref[0].numpy(), axis=1))) / max(magnitude, 1e-6),
        "mean_flow_xy": [float(v) for v in ref[0].numpy().mean(axis=(0, 2, 3))],
        "ort_ms": ort_ms,
        "torch_ms": torch_ms,
    }
    if occlusion:
        report["occlusion_agreement"] = float((got[1].astype(bool) == ref[1].numpy()).mean())
    return report


#: The export fails when ONNX Runtime's flow differs from PyTorch's by more than this fraction of
#: the mean flow magnitude of the check pair (a 3 px motion: 0.036 px).
MAX_RELATIVE_DIFF = 1e-2


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="export LiteFlowNet to ONNX (for TensorRT on Jetson)")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.add_argument("--size", default="640x480", help="input WIDTHxHEIGHT the graph is built for (default 640x480)")
    p.add_argument("--weights", default="default", help="checkpoint; 'default' = shipped weights; '' = untrained")
    p.add_argument("--finest-level", type=int, default=None, choices=(2, 3, 4, 5, 6))
    p.add_argument("--occlusion", action="store_true", help="also output the forward-backward occlusion mask")
    p.add_argument("--opset", type=int, default=MIN_OPSET)
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime comparison against PyTorch")
    p.set_defaults(func=run_cli)


def run_cli(args) -> int:
    from .model.weights import load_model

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"error: --size must be WIDTHxHEIGHT like 640x480, got '{args.size}'", file=sys.stderr)
        return 2
    model, card = load_model(None if args.weights == "" else args.weights, finest_level=args.finest_level)
    try:
        path = export_onnx(model, args.onnx, height, width, occlusion=args.occlusion, opset=args.opset)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size_mb = path.stat().st_size / 1e6
    print(f"wrote {path} ({size_mb:.1f} MB, opset {args.opset}, {width}x{height}, finest level {model.finest_level}, "
          f"weights {card.get('name')})")
    if not args.no_check:
        report = check_onnx(model, path, height, width, occlusion=args.occlusion)
        print(f"ONNX Runtime vs PyTorch on a 3 px motion: max |diff| {report['max_abs_diff']:.2e} px "
              f"({100 * report['relative_diff']:.3f} % of the mean |flow| {report['mean_flow']:.2f} px); "
              f"CPU {report['ort_ms']:.0f} ms vs {report['torch_ms']:.0f} ms")
        if report["relative_diff"] > MAX_RELATIVE_DIFF:
            print(f"error: ONNX output differs from PyTorch by more than {100 * MAX_RELATIVE_DIFF:g} % of the signal",
                  file=sys.stderr)
            if model.variant.warp_mask == "footprint":  # lfn_ros.model.variant.footprint_warp
                print(f"  {model.variant.name}'s warping mask zeroes samples by rounding, and ONNX Runtime's grid "
                      f"sampling rounds differently (median pixel {100 * report['p50_relative_diff']:.2f} % of the mean "
                      "|flow|; docs/published_weights.md). The graph is written; --no-check skips this comparison",
                      file=sys.stderr)
            return 1
    return 0
