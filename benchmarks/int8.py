#!/usr/bin/env python3
"""INT8 (NNCF post-training quantisation of the OpenVINO graphs, issue 16 item 3) against the
OpenVINO f32 and bf16 paths and torch bf16, side by side in one run: engine time, fraction of
the matmul peak of its precision, the cost of quantising, and the flow's accuracy on synthetic
validation pairs (never on ../shared/data, which only `lfn-ros evaluate` reads, to decide).

    python benchmarks/int8.py                 # 320x240 and 640x480, level 3; 48 validation pairs
    python benchmarks/int8.py --pairs 8       # quicker accuracy rows

Rows: the engine's other CPU paths on this machine (benchmarks/speed.py's: torch fp32, torch and
OpenVINO bf16 where the CPU computes bf16 natively, OpenVINO f32), and int8 with each NNCF preset ("performance": symmetric activations; "mixed": asymmetric,
the one lfn_ros ships, chosen by this benchmark's accuracy rows). Times: see benchmarks/speed.py
(node step = one streaming step with the forward-backward check; pair = both frames, forward
only); quantise s = the first frame's extra time at that size (calibration render + NNCF +
compile). The network only: the refinement after it is the same on every path. Accuracy: mean
EPE over the validation set (lfn_ros.train.validation, "heavy" data,
512x384) and over its pixels that move less than 10 px (s0-10). Pause any training first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import lfn_ros.engine.int8 as int8  # noqa: E402
from lfn_ros.engine import FlowEngine  # noqa: E402
from speed import PEAK_OF as SPEED_PEAK_OF  # noqa: E402
from speed import (cpu_paths, engine_rows, gflop_per_pair, machine_description, matmul_peaks,  # noqa: E402
                   parse_sizes, write_results)

#: The preset lfn_ros ships (the module's default, before this benchmark sets others).
SHIPPED_PRESET = int8.PRESET
#: The int8 rows: (label, backend, precision, NNCF preset).
INT8_PATHS = [("OpenVINO int8 performance", "openvino", "int8", "performance"),
              ("OpenVINO int8 mixed", "openvino", "int8", "mixed")]
#: Which measured matmul peak a path is a fraction of.
PEAK_OF = {**{label: kinds[0] for label, kinds in SPEED_PEAK_OF.items()},
           **{label: "OpenVINO int8" for label, *_ in INT8_PATHS}}


def benchmark_paths() -> list[tuple]:
    """(label, backend, precision, NNCF preset or None): this machine's other CPU paths (an
    emulated bf16 is left out: it is no path anyone would run), then the int8 rows."""
    others = [(label, backend, precision, None) for label, backend, precision in cpu_paths() if precision != "int8"]
    return others + INT8_PATHS


def first_frame_seconds(backend: str, precision: str, size) -> float:
    """Wall time of the first pair at ``size`` minus a warm pair's: compiling (and quantising)."""
    from speed import test_pair

    engine = FlowEngine(device="cpu", backend=backend, precision=precision, finest_level=3, refinement="none", cascade="none")
    first, second = test_pair(*size)
    start = time.perf_counter()
    engine.infer(first, second)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    engine.infer(first, second)
    return cold - (time.perf_counter() - start)


def accuracy(backend: str, precision: str, pairs: int) -> dict:
    """Mean EPE (px) over the synthetic validation pairs and over their pixels moving < 10 px."""
    from lfn_ros.train.validation import validation_pairs

    engine = FlowEngine(device="cpu", backend=backend, precision=precision, finest_level=3, refinement="none", cascade="none")
    to_uint8 = lambda t: (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # noqa: E731
    epe, slow = [], []
    for batch in validation_pairs(pairs, data="heavy"):
        for i in range(batch["image1"].shape[0]):
            flow = engine.infer(to_uint8(batch["image1"][i]), to_uint8(batch["image2"][i]), occlusion=False).flow
            truth = batch["flow"][i].permute(1, 2, 0).numpy()
            error = np.linalg.norm(flow - truth, axis=-1)
            small = np.linalg.norm(truth, axis=-1) < 10
            epe.append(float(error.mean()))
            slow.append(float(error[small].mean()) if small.any() else float("nan"))
    return {"epe": float(np.mean(epe)), "epe_s0-10": float(np.nanmean(slow)), "pairs": len(epe)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="320x240,640x480", help="WIDTHxHEIGHT list")
    parser.add_argument("--iters", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=48, help="validation pairs for the accuracy rows (0: none)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "int8_cpu.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2 if torch.get_num_threads() >= 2 else 1)
    device = torch.device("cpu")
    peaks = matmul_peaks()
    print("matmul peak GFLOP/s (N=2048): " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()), flush=True)
    print(f"{'path':<28}{'size':>9}{'pair ms':>9}{'node ms':>9}{'GFLOP/s':>9}{'of peak':>9}{'quantise s':>11}", flush=True)
    rows = []
    for height, width in parse_sizes(args.sizes):
        gflop = gflop_per_pair(3, (height, width))
        for label, backend, precision, preset in benchmark_paths():
            int8.PRESET = preset or SHIPPED_PRESET
            timed = engine_rows(backend, precision, 3, (height, width), device, args.iters, args.warmup)
            rate = gflop / (timed["pair"]["ms"] / 1000)
            peak = peaks.get(PEAK_OF[label])
            row = {"path": label, "preset": preset, "size": f"{width}x{height}", "level": 3, "pair_ms": timed["pair"]["ms"],
                   "node_ms": timed["node"]["ms"], "gflop": gflop, "gflop_per_s": rate,
                   "peak_fraction": rate / peak if peak else None,
                   "first_frame_extra_s": first_frame_seconds(backend, precision, (height, width))}
            rows.append(row)
            fraction = f"{100 * row['peak_fraction']:>8.0f}%" if peak else f"{'-':>9}"
            print(f"{label:<28}{row['size']:>9}{row['pair_ms']:>9.1f}{row['node_ms']:>9.1f}{rate:>9.0f}{fraction}"
                  f"{row['first_frame_extra_s']:>11.1f}", flush=True)
    accuracy_rows = []
    if args.pairs:
        print(f"\n{'path':<28}{'EPE':>8}{'s0-10':>8}   synthetic validation, {args.pairs} pairs at 512x384", flush=True)
        for label, backend, precision, preset in benchmark_paths():
            int8.PRESET = preset or SHIPPED_PRESET
            result = {"path": label, **accuracy(backend, precision, args.pairs)}
            accuracy_rows.append(result)
            print(f"{label:<28}{result['epe']:>8.3f}{result['epe_s0-10']:>8.3f}", flush=True)
    payload = {"machine": machine_description(device), "matmul_peak_gflop_per_s": peaks, "rows": rows,
               "accuracy": accuracy_rows, "shipped_preset": SHIPPED_PRESET, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_results(args.out, payload, "int8.py", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or None))
