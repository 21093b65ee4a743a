"""TorchInductor against eager PyTorch on the CPU (issue 16 item 3), side by side in one run.

For each precision, the eager torch backend and the compiled one (``backend: torch-compiled``)
run the same engine calls on the same frames: the node step (NetC on the new frame, NetE forward
and backward in one batch of two, the occlusion check, the resizes) and the pair (both frames,
forward only). The compile time is the first node step of a fresh engine, what a node pays once
per resolution. Accuracy: ``lfn-ros evaluate ../shared/data --backend torch-compiled`` (its
figures go in docs/benchmarks.md with these).

    python benchmarks/compiled.py [--sizes 320x240] [--level 3] [--precisions fp32,bf16]
    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmarks/compiled.py   # a cold compile

Inductor caches what it compiled on disk, so a second run (or a restarted node) compiles faster;
the result file says whether the cache was empty at the start.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lfn_ros import precision as precisions  # noqa: E402
from lfn_ros.engine import FlowEngine  # noqa: E402
from speed import machine_description, parse_sizes, summary, test_pair, time_call  # noqa: E402


def one_path(backend: str, precision: str, level: int, size: tuple, iters: int, warmup: int) -> dict:
    engine = FlowEngine(device="cpu", backend=backend, precision=precision, finest_level=level, occlusion_method="check",
                        refinement="none", cascade="none")  # the network's paths; the refinement is the same on all
    first, second = test_pair(*size)
    engine.reset()
    start = time.perf_counter()
    engine.process(first, seconds=0.0)
    engine.process(second, seconds=1.0)  # the first decode: compiles NetE
    first_steps_s = time.perf_counter() - start
    counter = [1]

    def node_step():
        counter[0] += 1
        engine.process(first if counter[0] % 2 else second, seconds=float(counter[0]))

    node = summary(time_call(node_step, torch.device("cpu"), iters, warmup))
    pair = summary(time_call(lambda: engine.infer(first, second, occlusion=False), torch.device("cpu"), iters, warmup))
    return {"backend": backend, "precision": precision, "level": level, "size": f"{size[1]}x{size[0]}",
            "first_two_frames_s": first_steps_s, "node_ms": node["ms"], "pair_ms": pair["ms"], "model": engine.model_name}


def run_isolated(backend: str, precision: str, level: int, size: tuple, iters: int, warmup: int) -> dict:
    """:func:`one_path` in a fresh Python process: Inductor's compile workers and caches in memory,
    and OpenMP's pools, die with it, so no path runs beside another's leftovers."""
    command = [sys.executable, __file__, "--one", f"{backend},{precision}", "--level", str(level),
               "--sizes", f"{size[1]}x{size[0]}", "--iters", str(iters), "--warmup", str(warmup)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"{backend} {precision} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="320x240")
    parser.add_argument("--level", type=int, default=3)
    parser.add_argument("--precisions", default=None, help="default: fp32 and the CPU's native reduced precision")
    parser.add_argument("--iters", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # BACKEND,PRECISION: one path, JSON out
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "compiled_cpu.json"))
    args = parser.parse_args(argv)
    if args.one:
        backend, precision = args.one.split(",")
        (height, width), = parse_sizes(args.sizes)
        print(json.dumps(one_path(backend, precision, args.level, (height, width), args.iters, args.warmup)))
        return 0
    native = precisions.resolve("auto", "cpu")
    names = args.precisions.split(",") if args.precisions else list(dict.fromkeys(["fp32", native]))
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    cache = Path(cache_dir())
    cold = not cache.exists() or not any(cache.iterdir())
    print(f"inductor cache {cache}: {'empty (a cold compile)' if cold else 'in use (a warm compile)'}", flush=True)
    rows = []
    print(f"{'path':<26}{'size':>9}{'level':>6}{'first 2 frames s':>18}{'node ms':>9}{'pair ms':>9}", flush=True)
    for height, width in parse_sizes(args.sizes):
        for precision in names:
            for backend in ("torch", "torch-compiled"):
                row = run_isolated(backend, precision, args.level, (height, width), args.iters, args.warmup)
                rows.append(row)
                print(f"{backend + ' ' + precision:<26}{row['size']:>9}{args.level:>6}{row['first_two_frames_s']:>18.1f}"
                      f"{row['node_ms']:>9.1f}{row['pair_ms']:>9.1f}", flush=True)
            eager, compiled = rows[-2], rows[-1]
            print(f"{'  speed-up':<26}{'':>9}{'':>6}{'':>18}{eager['node_ms'] / compiled['node_ms']:>8.2f}x"
                  f"{eager['pair_ms'] / compiled['pair_ms']:>8.2f}x", flush=True)
    payload = {"machine": machine_description(torch.device("cpu")), "torch": torch.__version__, "rows": rows,
               "inductor_cache_empty_at_start": cold,
               "iters": args.iters, "warmup": args.warmup, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
               "command": "python benchmarks/compiled.py" + (f" {' '.join(argv)}" if argv else "")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
