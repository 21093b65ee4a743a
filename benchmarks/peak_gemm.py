#!/usr/bin/env python3
"""This machine's peak matrix-multiply throughput through the libraries the engine uses (issue 16
item 2), so every inference path can be stated as a fraction of what the cores can do.

    python benchmarks/peak_gemm.py                 # writes benchmarks/results/peak_gemm_cpu.json

Rows: torch (oneDNN) fp32 and bf16 matmul, torch int8 (``torch._int_mm``, where this build has
it), OpenVINO f32, bf16 and int8 (a one-MatMul model compiled with the engine's hints), each on
square matrices of ``--size`` (default 2048: large enough to be compute-bound on a laptop-class
L2), with every thread torch or OpenVINO uses by default. GFLOP/s = 2 N^3 / median time; the best
of the sizes tried is the peak. Pause any training first: a peak taken beside a training run is
worthless. docs/benchmarks.md divides each path's GFLOP/s (benchmarks/speed.py) by the peak of
its precision.
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


def time_ms(fn, iters: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


#: CPU flags with which torch's int8 matmul runs on integer dot-product hardware (else a slow
#: reference loop: 1.5 GFLOP/s at N=2048 on an AVX2-only EPYC, a minute per call).
INT8_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8"}


def torch_rows(n: int, iters: int, warmup: int) -> dict:
    """Median ms of torch's N x N matmuls. A precision this CPU only emulates (bf16 without
    AVX512-BF16/AMX, int8 without VNNI/AMX) is no peak of anything the engine runs, and takes
    minutes at N=2048: it is reported unavailable instead of timed."""
    from lfn_ros import precision as precisions

    rows = {}
    a32, b32 = torch.randn(n, n), torch.randn(n, n)
    rows["torch fp32"] = time_ms(lambda: a32 @ b32, iters, warmup)
    if precisions.resolve("auto", "cpu") == "bf16":
        a16, b16 = a32.bfloat16(), b32.bfloat16()
        rows["torch bf16"] = time_ms(lambda: a16 @ b16, iters, warmup)
    else:
        rows["torch bf16"] = "unavailable: this CPU computes bf16 in emulation only"
    if not precisions.cpu_flags() & INT8_FLAGS:
        rows["torch int8"] = "unavailable: no VNNI or AMX-INT8 on this CPU (torch's int8 matmul is a reference loop)"
        return rows
    a8 = torch.randint(-64, 64, (n, n), dtype=torch.int8)
    b8 = torch.randint(-64, 64, (n, n), dtype=torch.int8)
    try:
        torch._int_mm(a8, b8)
        rows["torch int8"] = time_ms(lambda: torch._int_mm(a8, b8), iters, warmup)
    except (RuntimeError, AttributeError, NotImplementedError) as exc:  # not in every CPU build
        rows["torch int8"] = f"unavailable: {str(exc).splitlines()[0][:120]}"
    return rows


def openvino_rows(n: int, iters: int, warmup: int) -> dict:
    try:
        import openvino as ov
        from openvino import opset13 as ops
    except ImportError as exc:
        return {"OpenVINO": f"unavailable: {exc}"}

    core = ov.Core()
    rows = {}
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((n, n)).astype(np.float32)
    for label, hint in (("OpenVINO f32", "f32"), ("OpenVINO bf16", "bf16")):
        x = ops.parameter([n, n], np.float32, name="x")
        model = ov.Model([ops.matmul(x, ops.constant(weights), False, False)], [x])
        try:
            compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
        except RuntimeError as exc:
            rows[label] = f"unavailable: {str(exc).splitlines()[0][:120]}"
            continue
        request = compiled.create_infer_request()
        data = rng.standard_normal((n, n)).astype(np.float32)
        rows[label] = time_ms(lambda: request.infer({0: data}), iters, warmup)
    # int8: a quantised MatMul (FakeQuantize on both inputs), the pattern OpenVINO runs on VNNI/AMX.
    x = ops.parameter([n, n], np.float32, name="x")
    low, high = ops.constant(np.float32(-4.0)), ops.constant(np.float32(4.0))
    fq = lambda node: ops.fake_quantize(node, low, high, low, high, 256)  # noqa: E731
    model = ov.Model([ops.matmul(fq(x), fq(ops.constant(weights)), False, False)], [x])
    request = core.compile_model(model, "CPU").create_infer_request()
    data = rng.standard_normal((n, n)).astype(np.float32)
    rows["OpenVINO int8"] = time_ms(lambda: request.infer({0: data}), iters, warmup)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1024,2048,3072", help="matrix sizes N (square) to try")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "peak_gemm_cpu.json")
    args = parser.parse_args(argv)
    from lfn_ros import precision as precisions
    from lfn_ros.train.trainer import hardware_description

    results: dict = {}
    print(f"{'path':<16}{'N':>6}{'ms':>9}{'GFLOP/s':>10}", flush=True)
    for n in (int(v) for v in args.sizes.split(",")):
        for label, value in {**torch_rows(n, args.iters, args.warmup), **openvino_rows(n, args.iters, args.warmup)}.items():
            if isinstance(value, str):
                results.setdefault(label, {"unavailable": value})
                continue
            gflops = 2 * n ** 3 / (value / 1000) / 1e9
            entry = results.setdefault(label, {"by_size": {}})
            entry.setdefault("by_size", {})[n] = {"ms": value, "gflop_per_s": gflops}
            print(f"{label:<16}{n:>6}{value:>9.2f}{gflops:>10.0f}", flush=True)
    for entry in results.values():
        if "by_size" in entry:
            entry["peak_gflop_per_s"] = max(v["gflop_per_s"] for v in entry["by_size"].values())
    flags = sorted(precisions.cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "fma"})
    payload = {"machine": hardware_description(torch.device("cpu")), "cpu_flags": flags, "torch": torch.__version__,
               "threads": torch.get_num_threads(), "python": platform.python_version(), "paths": results,
               "date": time.strftime("%Y-%m-%d %H:%M:%S"),
               "command": "python benchmarks/peak_gemm.py" + (f" {' '.join(argv)}" if argv else "")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1))
    print("peak GFLOP/s: " + ", ".join(f"{k} {v['peak_gflop_per_s']:.0f}" for k, v in results.items() if "peak_gflop_per_s" in v))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
