#!/usr/bin/env python3
"""Time LiteFlowNet per pair and per node step against its peers, side by side in one run; print
a table, write JSON and a plot (issue 10; docs/benchmarks.md has the table and the machine).

    python benchmarks/speed.py                        # CPU: 320x240, 640x480, 1024x436; levels 3 and 2
    python benchmarks/speed.py --device cuda          # GPU: fp32/fp16/bf16, channels_last, RAFT-small

Rows, each where the machine supports it:
- ``pair``: both frames through NetC, NetE forward once: what a pair of images costs.
- ``node``: one streaming step of the engine: NetC on the new frame only (the previous frame's
  features are kept), NetE forward and backward in one batch of two, the occlusion check; the
  image and flow resizes included. This is what the node pays per frame.
- paths: torch fp32, torch bf16 (autocast + channels_last), ONNX Runtime (the graphs of
  lfn_ros.model.graphs), OpenVINO f32, bf16 and int8 (the engine's openvino backend; int8 where
  NNCF is installed); on CUDA torch
  fp32/fp16/bf16.
- peers: OpenCV DIS ultrafast and medium and Farneback on the CPU (grey conversion included);
  RAFT-small (torchvision, 12 iterations) on CUDA.

GFLOP per pair: the multiply-adds of convolutions and matrix products counted by
torch.utils.flop_counter (x2), at the network grid; GFLOP/s = that over the pair time. Times are
medians over ``--iters`` calls after ``--warmup``; on CUDA with CUDA events. On the CPU the same
run first measures the machine's matmul peak per library and precision (benchmarks/peak_gemm.py
at N=2048) and states every path as a fraction of the peak of its own precision (issue 16). Pause
any training before running this: a timing taken while training runs is worthless.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lfn_ros import precision as precisions  # noqa: E402
from lfn_ros.engine import FlowEngine  # noqa: E402
from lfn_ros.evaluate.methods import DIS_PRESETS, FARNEBACK_PARAMS  # noqa: E402
from lfn_ros.model.weights import load_model  # noqa: E402
from lfn_ros.ops.resize import multiple_size  # noqa: E402


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'640x480,1024x436' -> [(480, 640), (436, 1024)] as (H, W)."""
    return [(int(h), int(w)) for w, h in (item.lower().split("x") for item in text.split(","))]


def test_pair(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The embedded camera frame at (H, W) and the scene moved by (3, -2) px (real motion)."""
    from lfn_ros.io.sources import shifted_pair

    return shifted_pair(3, -2, size=(height, width))


def time_call(fn, device: torch.device, iters: int, warmup: int) -> list[float]:
    """Milliseconds per call (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
    return times


def summary(times: list[float]) -> dict:
    return {"ms": statistics.median(times), "ms_min": min(times)}


def gflop_per_pair(level: int, size) -> float:
    """Convolution and matmul GFLOP of one pair (both NetC passes, NetE forward once)."""
    from torch.utils.flop_counter import FlopCounterMode

    model, _ = load_model("default", finest_level=level)
    a, b = (torch.from_numpy(x).permute(2, 0, 1).unsqueeze(0) for x in test_pair(*size))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(a, b)
    return counter.get_total_flops() / 1e9


# ----------------------------------------------------------------------------- LiteFlowNet paths


def node_step_ms(engine, size, device, iters: int, warmup: int) -> dict:
    """One streaming step of the engine (frames alternate, stamps increase)."""
    engine.prepare(*size)
    first, second = test_pair(*size)
    counter = [0]

    def node_step():
        counter[0] += 1
        engine.process(first if counter[0] % 2 else second, seconds=float(counter[0]))

    engine.reset()
    engine.process(first, seconds=0.0)
    return summary(time_call(node_step, device, iters, warmup))


def engine_rows(backend: str, precision: str, level: int, size, device, iters: int, warmup: int) -> dict:
    """Pair and node-step times of the engine with one backend and precision; the node step with
    the forward-backward check, and with the occlusion head where the shipped weights have one.
    The network only: the refinement after it is the same host work on every path
    (benchmarks/refinement.py times it)."""
    engine = FlowEngine(device=str(device), backend=backend, precision=precision, finest_level=level, occlusion_method="check",
                        refinement="none", cascade="none")
    node = node_step_ms(engine, size, device, iters, warmup)
    first, second = test_pair(*size)
    # The pair: both frames through NetC and NetE forward only (no occlusion), as a pair costs.
    pair = summary(time_call(lambda: engine.infer(first, second, occlusion=False), device, iters, warmup))
    result = {"pair": pair, "node": node, "model": engine.model_name}
    try:
        head = FlowEngine(device=str(device), backend=backend, precision=precision, finest_level=level, occlusion_method="head",
                          refinement="none", cascade="none")
    except ValueError:  # the weights have no occlusion head
        return result
    result["node_head"] = node_step_ms(head, size, device, iters, warmup)
    return result


def onnxruntime_rows(level: int, size, iters: int, warmup: int) -> dict | str:
    """ONNX Runtime (CPU) on the encoder/decoder graphs: pair (2 encodes + forward decode) and node
    step (1 encode + bidirectional decode; the engine's resizes and occlusion check not included)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return f"onnxruntime not importable ({exc})"
    import tempfile

    from lfn_ros.model.graphs import decoder_onnx, encoder_onnx

    model, _ = load_model("default", finest_level=level)
    grid = multiple_size(*size, 32)
    folder = tempfile.mkdtemp(prefix="lfn_ros_speed_")
    sessions = {name: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                for name, path in (("encoder", encoder_onnx(model, grid, folder)),
                                   ("forward", decoder_onnx(model, grid, "none", folder)),
                                   ("bidirectional", decoder_onnx(model, grid, "check", folder)))}
    a, b = (model.preprocess(torch.from_numpy(x).permute(2, 0, 1).unsqueeze(0), grid).numpy() for x in test_pair(*size))
    encode = lambda x: sessions["encoder"].run(None, {"normalised": x})  # noqa: E731
    ea, eb = encode(a), encode(b)
    names = [i.name for i in sessions["forward"].get_inputs()]
    feeds = dict(zip(names, ea + eb))

    def pair():
        encode(a)
        encode(b)
        sessions["forward"].run(None, feeds)

    def node():
        encode(b)
        sessions["bidirectional"].run(None, feeds)

    return {"pair": summary(time_call(pair, torch.device("cpu"), iters, warmup)),
            "node": summary(time_call(node, torch.device("cpu"), iters, warmup)), "model": f"onnxruntime {ort.__version__}"}


# ----------------------------------------------------------------------------- peers


def peer_rows(size, iters: int, warmup: int) -> dict:
    import cv2

    a, b = test_pair(*size)
    grey = lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)  # noqa: E731
    rows = {}
    for name in ("DIS-ultrafast", "DIS-medium"):
        dis = cv2.DISOpticalFlow_create(getattr(cv2, DIS_PRESETS[name]))
        rows[name] = summary(time_call(lambda: dis.calc(grey(a), grey(b), None), torch.device("cpu"), iters, warmup))
    rows["Farneback"] = summary(time_call(lambda: cv2.calcOpticalFlowFarneback(grey(a), grey(b), None, **FARNEBACK_PARAMS),
                                          torch.device("cpu"), iters, warmup))
    return rows


def raft_row(size, device, iters, warmup) -> dict | str:
    """torchvision raft_small, 12 iterations (CUDA only); a reason string when it cannot run."""
    from lfn_ros.evaluate.methods import MethodUnavailable
    from lfn_ros.evaluate.raft import raft_method

    try:
        method = raft_method(str(device))
    except MethodUnavailable as exc:
        return str(exc)
    a, b = test_pair(*size)
    return summary(time_call(lambda: method.fn(a, b), device, iters, warmup))


# ----------------------------------------------------------------------------- report


def machine_description(device: torch.device) -> dict:
    from lfn_ros.train.trainer import hardware_description

    flags = sorted(precisions.cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "fma"})
    return {"description": hardware_description(device), "cpu_flags": flags, "torch": torch.__version__,
            "python": platform.python_version(), "threads": torch.get_num_threads()}


def write_results(path, payload: dict, script: str, argv) -> None:
    """Write a benchmark's ``payload`` as JSON at ``path`` with the command that made it, and say so."""
    payload["command"] = f"python benchmarks/{script}" + (f" {' '.join(argv)}" if argv else "")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=1))
    print(f"wrote {path}")


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['name']} @ {r['size']}" for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(rows) + 1.5))
    colours = ["tab:blue" if r["name"].startswith("lfn") else "tab:gray" for r in rows]
    ax.barh(range(len(rows)), [r["ms"] for r in rows], color=colours)
    for i, r in enumerate(rows):
        ax.text(r["ms"], i, f" {r['ms']:.1f}", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ms (median, log scale)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: The peak each CPU path is measured against: its own library and precision (ONNX Runtime: the
#: better fp32 matmul of the two libraries, as it has its own kernels).
PEAK_OF = {"torch fp32": ("torch fp32",), "torch bf16": ("torch bf16",), "OpenVINO f32": ("OpenVINO f32",),
           "OpenVINO bf16": ("OpenVINO bf16",), "OpenVINO int8": ("OpenVINO int8",), "ONNX Runtime fp32": ("torch fp32", "OpenVINO f32")}


def matmul_peaks(n: int = 2048, iters: int = 5, warmup: int = 2) -> dict:
    """GFLOP/s of an N x N matmul per library and precision, this run (benchmarks/peak_gemm.py)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from peak_gemm import openvino_rows, torch_rows

    rows = {**torch_rows(n, iters, warmup), **openvino_rows(n, iters, warmup)}
    return {label: 2 * n ** 3 / (ms / 1000) / 1e9 for label, ms in rows.items() if not isinstance(ms, str)}


def peak_fraction(label: str, gflop_per_s: float, peaks: dict) -> float | None:
    """``gflop_per_s`` over the peak of ``label``'s precision (None when it was not measured)."""
    peak = max((peaks[k] for k in PEAK_OF.get(label, ()) if k in peaks), default=None)
    return gflop_per_s / peak if peak else None


def cpu_paths(int8: bool = True) -> list[tuple[str, str, str]]:
    """(label, backend, precision) of every CPU path of the engine (``int8``: with OpenVINO int8
    where NNCF is installed; it quantises each size first, 25-60 s on two cores)."""
    native = precisions.resolve("auto", "cpu")  # bf16 where native, else fp32
    paths = [("torch fp32", "torch", "fp32"), (f"torch {native}", "torch", native)]
    from lfn_ros.engine.openvino_backend import openvino_available

    if openvino_available():
        paths += [("OpenVINO f32", "openvino", "fp32"), (f"OpenVINO {native}", "openvino", native)]
        from lfn_ros.engine.int8 import Int8Unavailable, nncf_module

        try:
            nncf_module()
            if int8:
                paths.append(("OpenVINO int8", "openvino", "int8"))
        except Int8Unavailable:
            pass
    # Without native bf16 the second torch and OpenVINO paths repeat the fp32 ones: keep the first.
    return [p for i, p in enumerate(paths) if p[1:] not in [q[1:] for q in paths[:i]]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default=None, help="WIDTHxHEIGHT list (default depends on the device)")
    parser.add_argument("--levels", default="3,2", help="finest levels to time")
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--no-onnxruntime", action="store_true")
    parser.add_argument("--no-int8", action="store_true", help="leave out OpenVINO int8 (it quantises each size first)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)

    device = torch.device(args.device if args.device != "cuda" else "cuda:0")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA requested but not available", file=sys.stderr)
        return 2
    cuda = device.type == "cuda"
    sizes = parse_sizes(args.sizes or ("1024x436,640x480,1280x720" if cuda else "320x240,640x480,1024x436"))
    levels = [int(v) for v in args.levels.split(",")]
    iters = args.iters or (50 if cuda else 5)
    warmup = args.warmup or (10 if cuda else 2)
    if cuda:
        torch.backends.cudnn.benchmark = True
    paths = [("torch fp32", "torch", "fp32"), ("torch fp16", "torch", "fp16"), ("torch bf16", "torch", "bf16")] if cuda else cpu_paths(int8=not args.no_int8)

    rows, skipped = [], []
    peaks = {} if cuda else matmul_peaks()
    if peaks:
        print("matmul peak GFLOP/s (N=2048): " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()), flush=True)
    print(f"{'path':<22}{'size':>10}{'level':>6}{'pair ms':>10}{'node ms':>10}{'node head':>10}{'GFLOP':>8}{'GFLOP/s':>9}",
          flush=True)
    for height, width in sizes:
        size = f"{width}x{height}"
        for level in levels:
            gflop = gflop_per_pair(level, (height, width))
            results = {label: engine_rows(backend, precision, level, (height, width), device, iters, warmup)
                       for label, backend, precision in paths}
            if not cuda and not args.no_onnxruntime:
                ort_result = onnxruntime_rows(level, (height, width), iters, warmup)
                if isinstance(ort_result, dict):
                    results["ONNX Runtime fp32"] = ort_result
                else:
                    skipped.append(ort_result)
            for label, result in results.items():
                row = {"name": f"lfn {label}", "size": size, "level": level, "ms": result["pair"]["ms"],
                       "pair_ms": result["pair"]["ms"], "node_ms": result["node"]["ms"],
                       "node_head_ms": result.get("node_head", {}).get("ms"), "gflop": gflop,
                       "gflop_per_s": gflop / (result["pair"]["ms"] / 1000), "model": result["model"]}
                row["peak_fraction"] = peak_fraction(label, row["gflop_per_s"], peaks)
                rows.append(row)
                head = f"{row['node_head_ms']:>10.1f}" if row["node_head_ms"] else f"{'-':>10}"
                print(f"{label:<22}{size:>10}{level:>6}{row['pair_ms']:>10.1f}{row['node_ms']:>10.1f}{head}{gflop:>8.1f}"
                      f"{row['gflop_per_s']:>9.1f}", flush=True)
        for name, result in peer_rows((height, width), max(iters, 10), 2).items():
            rows.append({"name": name, "size": size, "level": None, "ms": result["ms"], "pair_ms": result["ms"]})
            print(f"{name:<22}{size:>10}{'':>6}{result['ms']:>10.1f}", flush=True)
        raft = raft_row((height, width), device, iters, warmup) if cuda else "RAFT-small is timed on CUDA only"
        if isinstance(raft, dict):
            rows.append({"name": "RAFT-small 12 it", "size": size, "level": None, "ms": raft["ms"], "pair_ms": raft["ms"]})
        elif raft not in skipped:
            skipped.append(raft)

    machine = machine_description(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "cuda" if cuda else "cpu"
    payload = {"machine": machine, "device": str(device), "iters": iters, "warmup": warmup, "rows": rows,
               "matmul_peak_gflop_per_s": peaks,
               "skipped": skipped, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
               "command": "python benchmarks/speed.py" + (f" {' '.join(argv)}" if argv else "")}
    (out / f"speed_{tag}.json").write_text(json.dumps(payload, indent=1))
    plot(rows, out / f"speed_{tag}.png", f"LiteFlowNet pair time vs peers, {machine['description']}")
    for reason in skipped:
        print(f"skipped: {reason}")
    print(f"wrote {out / f'speed_{tag}.json'} and {out / f'speed_{tag}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
