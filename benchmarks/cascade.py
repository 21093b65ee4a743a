#!/usr/bin/env python3
"""The two-scale cascade (lfn_ros.ops.cascade): is it worth its cost, and with or without fusion?

    python benchmarks/cascade.py                  # 16 pairs per validation set; timings at 2 sizes
    python benchmarks/cascade.py --pairs 24 --no-timing

Accuracy, on synthetic validation only (``../shared/data`` decides only whether the cascade
ships, through ``lfn-ros evaluate --cascade``): the shipped weights through the engine (OpenVINO
or torch fp32, the refinement on, as the node runs) with one pass ("none"), the stacked flow
alone ("stacked") and the stacked flow fused with the direct one ("two-scale"), against DIS-medium
on the same pairs. EPE overall and in Sintel's speed bins, and the per-pair geometric-mean ratio
to DIS-medium (the card's measure), on "heavy" (round 2's data), "round3" (fast objects, motion
blur) and "slow" (heavy's motions x0.15: the small-motion case). Cost: the median time of
``engine.infer`` (the network and the cascade, no refinement) at camera sizes, with the machine
otherwise idle (pause training first: ``kill -STOP``). Writes benchmarks/results/cascade_cpu.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lfn_ros.engine import FlowEngine  # noqa: E402
from lfn_ros.evaluate.metrics import MOTION_BINS  # noqa: E402

#: (label, cascade, fusion) through the engine.
VARIANTS = (("none", "none", True), ("stacked", "two-scale", False), ("two-scale", "two-scale", True))
SETS = (("heavy", "heavy", 1.0), ("round3", "round3", 1.0), ("slow", "heavy", 0.15))
TIMING_SIZES = ((240, 320), (480, 640))


def engine_for(cascade: str, fusion: bool, refinement: str = "variational") -> FlowEngine:
    engine = FlowEngine(device="cpu", occlusion=False, cascade=cascade, refinement=refinement)
    engine.cascade_fusion = fusion
    return engine


def accuracy(pairs: int) -> tuple[list, dict]:
    from refinement import accumulate, validation_batches

    engines = [(label, engine_for(cascade, fusion)) for label, cascade, fusion in VARIANTS]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    to_uint8 = lambda t: (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # noqa: E731
    rows, log_ratios = [], {label: [] for label, _, _ in VARIANTS}
    for set_label, preset, scale in SETS:
        sums = {label: {} for label, _, _ in VARIANTS}
        set_logs = {label: [] for label, _, _ in VARIANTS}
        for batch in validation_batches(preset, scale, pairs):
            for i in range(batch["image1"].shape[0]):
                first, second = to_uint8(batch["image1"][i]), to_uint8(batch["image2"][i])
                truth = batch["flow"][i].permute(1, 2, 0).numpy()
                dis_flow = dis.calc(cv2.cvtColor(first, cv2.COLOR_RGB2GRAY), cv2.cvtColor(second, cv2.COLOR_RGB2GRAY), None)
                dis_epe = float(np.linalg.norm(dis_flow - truth, axis=-1).mean())
                for label, engine in engines:
                    flow = engine.infer(first, second).flow
                    accumulate(sums[label], flow, truth)
                    ratio = np.log(float(np.linalg.norm(flow - truth, axis=-1).mean()) / max(dis_epe, 1e-6))
                    set_logs[label].append(ratio)
                    log_ratios[label].append(ratio)
        for label, entry in sums.items():
            row = {"set": set_label, "variant": label, "pairs": pairs,
                   "ratio_to_dis_medium": float(np.exp(np.mean(set_logs[label])))}
            row.update({f"epe_{k}" if k != "all" else "epe": (s / n if n else float("nan")) for k, (s, n) in entry.items()})
            rows.append(row)
            print(f"{set_label:<8}{label:<11}{row['epe']:>8.3f}" + "".join(f"{row[f'epe_{b}']:>9.3f}" for b, _, _ in MOTION_BINS)
                  + f"{row['ratio_to_dis_medium']:>9.3f}", flush=True)
    overall = {label: float(np.exp(np.mean(values))) for label, values in log_ratios.items()}
    print("per-pair ratio to DIS-medium over all sets: " + ", ".join(f"{k} {v:.3f}" for k, v in overall.items()))
    return rows, overall


def timing(iters: int = 5) -> list[dict]:
    from lfn_ros.io.sources import iter_source

    frame = next(iter_source(""))
    rows = []
    for height, width in TIMING_SIZES:
        first = cv2.resize(frame, (width, height))
        second = np.roll(first, (2, 3), axis=(0, 1))
        row = {"size": f"{width}x{height}"}
        for label, cascade, fusion in VARIANTS:
            engine = engine_for(cascade, fusion, refinement="none")
            engine.prepare(height, width)
            engine.infer(first, second)
            times = []
            for _ in range(iters):
                start = time.perf_counter()
                engine.infer(first, second)
                times.append((time.perf_counter() - start) * 1000)
            row[f"{label}_ms"] = float(np.median(times))
            row["backend"] = engine.backend.name
        rows.append(row)
        print(f"{row['size']:>10} ({row['backend']})" + "".join(f"{label}: {row[f'{label}_ms']:7.1f} ms  " for label, _, _ in VARIANTS),
              flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=16, help="pairs per validation set (multiples of 8)")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cascade_cpu.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2 if torch.get_num_threads() >= 2 else 1)
    from speed import machine_description, write_results

    payload = {"machine": machine_description(torch.device("cpu")), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
               "variants": [{"label": label, "cascade": cascade, "fusion": fusion} for label, cascade, fusion in VARIANTS]}
    if not args.no_accuracy:
        print(f"{'set':<8}{'variant':<11}{'EPE':>8}" + "".join(f"{b:>9}" for b, _, _ in MOTION_BINS) + f"{'/DIS-m':>9}"
              + f"   synthetic validation, {args.pairs} pairs per set, 512x384, refined", flush=True)
        payload["accuracy"], payload["ratio_to_dis_medium"] = accuracy(args.pairs)
    if not args.no_timing:
        print("\nengine.infer per pair, network + cascade, no refinement (median of 5)")
        payload["timing"] = timing()
    write_results(args.out, payload, "cascade.py", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or None))
