#!/usr/bin/env python3
"""Training throughput, configuration by configuration, side by side in one run (issue 8).

    python benchmarks/train_speed.py                         # 256x192 and 320x256, batch 4, level 3
    python benchmarks/train_speed.py --sizes 256x192 --steps 8 --compile

Each row is one way of running ``Trainer.train_step`` on the stream of synthetic batches, every
row adding one change to the row above (so the table reads as the contribution of each):

1. ``fp32`` : round 1's recipe: fp32, contiguous, autograd through the 49-shift correlation
   loop, a freshly generated batch every step;
2. ``+ bf16 autocast`` (where the CPU computes bf16 natively; fp32 elsewhere);
3. ``+ channels_last``;
4. ``+ fused correlation backward`` (:class:`lfn_ros.ops.correlation._Correlation`);
5. ``+ pair reuse R`` (each generated pair used R times, flipped: :class:`PairStream`);
6. ``+ torch.compile`` of the model (optional, ``--compile``: minutes of compilation first).

Per row: seconds per step (median over ``--steps`` after ``--warmup``, data included), pairs/s,
the share of a step spent producing the batch, and the speed-up over row 1 at the same size.
Pause any training before running this: a timing taken while training runs is worthless.
Writes benchmarks/results/train_speed_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lfn_ros.model.liteflownet as liteflownet  # noqa: E402
from lfn_ros import precision as precisions  # noqa: E402
from lfn_ros.ops.correlation import correlation, correlation_loop  # noqa: E402
from lfn_ros.train.config import TrainConfig, format_size, parse_size  # noqa: E402
from lfn_ros.train.trainer import Trainer, hardware_description  # noqa: E402


@contextmanager
def correlation_impl(fused: bool):
    """Run the model with the fused-backward correlation (today's) or autograd through the loop (round 1)."""
    liteflownet.correlation = correlation if fused else correlation_loop
    try:
        yield
    finally:
        liteflownet.correlation = correlation


def measure(config: TrainConfig, fused: bool, memory_format, steps: int, warmup: int, compile_model: bool = False) -> dict:
    """Median seconds per step (data included) and the data share, for one configuration."""
    torch.manual_seed(0)
    trainer = Trainer(config, device="cpu")
    trainer.memory_format = memory_format
    trainer.model.to(memory_format=memory_format)
    if compile_model:
        trainer.net = torch.compile(trainer.model)
    step_s, data_s = [], []
    with correlation_impl(fused):
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            batch = trainer.stream.next()
            t1 = time.perf_counter()
            trainer.train_step(batch)
            t2 = time.perf_counter()
            if i >= warmup:
                step_s.append(t2 - t0)
                data_s.append(t1 - t0)
    median = statistics.median(step_s)
    return {"s_per_step": median, "pairs_per_s": config.batch / median,
            "data_share": sum(data_s) / sum(step_s), "steps": steps, "precision": trainer.precision}


def rows_for(size, args) -> list:
    """(name, config, fused, memory_format, compile) of every row at one crop size."""
    base = TrainConfig(sizes=(size,), batch=args.batch, finest_level=args.level, resume="none", device="cpu",
                       precision="fp32", reuse=1, warmup=0)
    bf16 = precisions.resolve("auto", "cpu")  # bf16 where native, else fp32
    rows = [
        ("fp32 (round 1)", base, False, torch.contiguous_format, False),
        (f"+ {bf16} autocast", base.replace(precision=bf16), False, torch.contiguous_format, False),
        ("+ channels_last", base.replace(precision=bf16), False, torch.channels_last, False),
        ("+ fused correlation backward", base.replace(precision=bf16), True, torch.channels_last, False),
        (f"+ pair reuse {args.reuse}", base.replace(precision=bf16, reuse=args.reuse), True, torch.channels_last, False),
    ]
    if args.compile:
        rows.append(("+ torch.compile", base.replace(precision=bf16, reuse=args.reuse), True, torch.channels_last, True))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256x192,320x256", help="crop sizes WxH, comma-separated")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--level", type=int, default=3, help="finest level trained")
    parser.add_argument("--reuse", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="add a torch.compile row (compiles for minutes)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_speed_cpu.json"))
    args = parser.parse_args(argv)

    results = {"machine": hardware_description(torch.device("cpu")), "cpu_flags_bf16": precisions.cpu_has_native_bf16(),
               "torch": torch.__version__, "python": platform.python_version(), "batch": args.batch,
               "finest_level": args.level, "rows": []}
    header = f"{'size':>8}  {'configuration':32} {'s/step':>7} {'pairs/s':>8} {'data %':>7} {'speed-up':>8}"
    print(results["machine"])
    print(header)
    print("-" * len(header))
    for size_text in args.sizes.split(","):
        size = parse_size(size_text)
        baseline = None
        for name, config, fused, fmt, compile_model in rows_for(size, args):
            row = measure(config, fused, fmt, args.steps, args.warmup, compile_model)
            baseline = baseline or row["pairs_per_s"]
            row.update(size=format_size(size), configuration=name, speedup=row["pairs_per_s"] / baseline)
            results["rows"].append(row)
            print(f"{row['size']:>8}  {name:32} {row['s_per_step']:7.3f} {row['pairs_per_s']:8.2f} "
                  f"{100 * row['data_share']:6.1f}% {row['speedup']:7.2f}x", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
