#!/usr/bin/env python3
"""The variational refinement (lfn_ros.ops.refine): which settings, and what it costs.

    python benchmarks/refinement.py                  # 24 pairs per validation set; timings at 3 sizes
    python benchmarks/refinement.py --pairs 48 --no-timing

Accuracy, on synthetic validation only (lfn_ros.train.validation; ``../shared/data`` decides
only whether the refinement ships, through ``lfn-ros evaluate``): the shipped network's flow
through the engine without refinement, then refined with each candidate setting, EPE overall
and in Sintel's speed bins, on three sets: "heavy" (round 2's data), "round3" (fast objects,
motion blur) and "slow" ("heavy" with every motion scaled by 0.15: the small-motion case where
DIS wins on real data). Cost: the median time of one refinement at camera sizes, with the
machine otherwise idle (pause training first: ``kill -STOP``). Writes
benchmarks/results/refinement_cpu.json and prints both tables.
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

from lfn_ros.engine import FlowEngine  # noqa: E402
from lfn_ros.evaluate.metrics import MOTION_BINS  # noqa: E402
from lfn_ros.ops.refine import VariationalParams, VariationalRefiner, grey  # noqa: E402

#: Candidate settings: (label, VariationalParams). The first is OpenCV's default (= DIS-medium's).
CANDIDATES = (
    ("default (DIS-medium's)", VariationalParams()),
    ("10 fixed-point iterations", VariationalParams(fixed_point_iterations=10)),
    ("alpha 10 (less smoothing)", VariationalParams(alpha=10.0)),
    ("alpha 40 (more smoothing)", VariationalParams(alpha=40.0)),
    ("delta 50 (brightness x10)", VariationalParams(delta=50.0)),
    ("gamma 100 (gradient x10)", VariationalParams(gamma=100.0)),
)
#: Validation sets: (label, preset, motion scale).
SETS = (("heavy", "heavy", 1.0), ("round3", "round3", 1.0), ("slow", "heavy", 0.15))
#: Camera sizes (H, W) for the timing.
TIMING_SIZES = ((240, 320), (480, 640), (720, 1280))


def validation_batches(preset: str, scale: float, pairs: int) -> list:
    """The validation set's first ``pairs`` pairs (lfn_ros.train.validation's seed and size),
    every motion scaled by ``scale`` (1.0: the set itself)."""
    from lfn_ros.data.synthetic import SyntheticFlow
    from lfn_ros.data.synthetic_config import PRESETS
    from lfn_ros.train.validation import SEED, SIZE, validation_pairs

    if scale == 1.0:
        return validation_pairs(pairs, data=preset)
    source = SyntheticFlow(*SIZE, seed=SEED, config=PRESETS[preset](motion_scale=scale))
    return [source.sample(min(8, pairs - start), SIZE) for start in range(0, pairs, 8)]


def accumulate(sums: dict, flow: np.ndarray, truth: np.ndarray) -> None:
    error = np.linalg.norm(flow - truth, axis=-1)
    speed = np.linalg.norm(truth, axis=-1)
    sums.setdefault("all", [0.0, 0])
    sums["all"][0] += float(error.sum())
    sums["all"][1] += error.size
    for name, low, high in MOTION_BINS:
        inside = (speed >= low) & (speed < high)
        sums.setdefault(name, [0.0, 0])
        sums[name][0] += float(error[inside].sum())
        sums[name][1] += int(inside.sum())


def accuracy(pairs: int) -> list[dict]:
    engine = FlowEngine(device="cpu", refinement="none", occlusion=False, cascade="none")
    to_uint8 = lambda t: (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # noqa: E731
    refiners = [(label, VariationalRefiner(params)) for label, params in CANDIDATES]
    rows = []
    for set_label, preset, scale in SETS:
        sums = {"none": {}, **{label: {} for label, _ in refiners}}
        for batch in validation_batches(preset, scale, pairs):
            for i in range(batch["image1"].shape[0]):
                first, second = to_uint8(batch["image1"][i]), to_uint8(batch["image2"][i])
                truth = batch["flow"][i].permute(1, 2, 0).numpy()
                flow = engine.infer(first, second, occlusion=False).flow
                accumulate(sums["none"], flow, truth)
                for label, refiner in refiners:
                    accumulate(sums[label], refiner(flow, grey(first), grey(second)), truth)
        for label, entry in sums.items():
            row = {"set": set_label, "setting": label, "pairs": pairs}
            row.update({f"epe_{k}" if k != "all" else "epe": (s / n if n else float("nan")) for k, (s, n) in entry.items()})
            rows.append(row)
            print(f"{set_label:<8}{label:<28}{row['epe']:>8.3f}" + "".join(f"{row[f'epe_{b}']:>9.3f}" for b, _, _ in MOTION_BINS),
                  flush=True)
    return rows


def timing(iters: int = 7) -> list[dict]:
    from lfn_ros.io.sources import iter_source

    import cv2

    frame = next(iter_source(""))
    refiner = VariationalRefiner()
    rows = []
    for height, width in TIMING_SIZES:
        first = cv2.resize(frame, (width, height))
        second = np.roll(first, (2, 3), axis=(0, 1))
        flow = np.zeros((height, width, 2), np.float32)
        g1, g2 = grey(first), grey(second)
        refiner(flow, g1, g2)
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            refiner(flow, g1, g2)
            times.append((time.perf_counter() - start) * 1000)
        row = {"size": f"{width}x{height}", "ms": float(np.median(times)), "opencv_threads": cv2.getNumThreads()}
        rows.append(row)
        print(f"{row['size']:>10}{row['ms']:>9.1f} ms   ({row['opencv_threads']} OpenCV threads)", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=24, help="pairs per validation set (multiples of 8)")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "refinement_cpu.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2 if torch.get_num_threads() >= 2 else 1)
    from speed import machine_description, write_results

    print(f"{'set':<8}{'setting':<28}{'EPE':>8}" + "".join(f"{b:>9}" for b, _, _ in MOTION_BINS)
          + f"   synthetic validation, {args.pairs} pairs per set, 512x384", flush=True)
    payload = {"machine": machine_description(torch.device("cpu")), "accuracy": accuracy(args.pairs),
               "candidates": {label: vars(params) for label, params in CANDIDATES},
               "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    if not args.no_timing:
        print("\nrefinement time per frame (median of 7)")
        payload["timing"] = timing()
    write_results(args.out, payload, "refinement.py", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or None))
