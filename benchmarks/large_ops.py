#!/usr/bin/env python3
"""NetE's many small operators: what f-lcon's window and the correlation cost, and the fix.

    python benchmarks/large_ops.py                 # OpenVINO and torch fp32, 320x256 and 640x480
    python benchmarks/large_ops.py --reps 5 --grids 64x96 --backends torch   # a quick check

Issue 16 asked for "the correlation and f-lcon as a few large operators instead of 49 slices".
Each variant compiles NetE (the decoder, one direction, the shipped weights at level 3) with one
formulation patched in and times the decoder call alone on a fixed pair of random frames:

- ``slices``: what ships: f-lcon's k x k window as k^2 shifted slices and a concat per flow
  component (lfn_ros.model.liteflownet.neighbourhood);
- ``one-hot conv``: the candidate: the window as one convolution with a fixed one-hot kernel
  (:func:`one_hot_neighbourhood`; exact in fp32, so the flow must not change);
- ``no correlation``: the shipped model with the cost volume replaced by a same-shape tensor that
  costs nothing. Not a flow, only a measure: the time the 49-displacement correlation takes, so
  the most any rewrite of it could save.

What it decided (docs/benchmarks.md, "Large operators"): the one-hot window is no faster than the
slices (0.99-1.03x, within the noise between runs) and stays out of the model; the correlation
is 6-11 % of NetE, so no rewrite of it could gain more than that.

The flow of ``one-hot conv`` is compared with ``slices`` (max |difference| in NetE units, 0 when
bit-identical). Timings are medians over calls that alternate between the variants (a slower
minute of the machine hits all of them), with the machine otherwise idle (pause training first:
``kill -STOP``). Writes benchmarks/results/large_ops_cpu.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch.nn.functional as F  # noqa: E402

import lfn_ros.model.liteflownet as liteflownet  # noqa: E402
from lfn_ros.engine.backends import make_backend  # noqa: E402
from lfn_ros.model.weights import load_model  # noqa: E402

VARIANTS = ("slices", "one-hot conv", "no correlation")


def one_hot_neighbourhood(x: torch.Tensor, k: int) -> torch.Tensor:
    """liteflownet.neighbourhood's contract ((B, 1, H, W) -> (B, k*k, H, W), zero outside,
    row-major over the window) as one convolution whose kernel holds a single 1 per output
    channel: every output is one input times 1 plus zeros, so it is exact in fp32."""
    kernel = torch.eye(k * k, dtype=torch.float32, device=x.device).view(k * k, 1, k, k)
    return F.conv2d(x.float(), kernel, padding=k // 2)


def _free_cost_volume(first, second, max_displacement=3, stride=1):
    """A tensor of the cost volume's shape from one strided read: no correlation work."""
    anchor = first[:, :1, ::stride, ::stride]
    return anchor.expand(-1, (2 * max_displacement + 1) ** 2, -1, -1) + 0.0


@contextmanager
def formulation(variant: str):
    """The model's f-lcon window and correlation as ``variant`` while the block runs."""
    neighbourhood, correlation = liteflownet.neighbourhood, liteflownet.correlation
    if variant == "one-hot conv":
        liteflownet.neighbourhood = one_hot_neighbourhood
    elif variant == "no correlation":
        liteflownet.correlation = _free_cost_volume
    try:
        yield
    finally:
        liteflownet.neighbourhood, liteflownet.correlation = neighbourhood, correlation


def prepared(backend_name: str, variant: str, grid: tuple):
    """A backend compiled with ``variant`` patched in, and two encoded random frames."""
    model, _ = load_model("default", finest_level=3)
    rng = np.random.default_rng(0)
    frames = [torch.from_numpy(rng.uniform(0, 255, (1, 3) + grid).astype(np.float32)) for _ in range(2)]
    with formulation(variant), torch.no_grad():
        backend = make_backend(backend_name, model, torch.device("cpu"), "fp32", 0, None)
        first, second = (backend.encode(model.preprocess(f), grid) for f in frames)
        backend.decode(first, second, "none")  # compile / warm up
    return backend, first, second


def time_decoders(backend_name: str, grid: tuple, reps: int) -> dict:
    """Median ms of one decoder call (forward flow only) and the flow, per variant. The variants
    take turns call by call, so a slower minute of the machine hits them all alike."""
    runs = {variant: prepared(backend_name, variant, grid) for variant in VARIANTS}
    times = {variant: [] for variant in VARIANTS}
    flows = {}
    with torch.no_grad():
        for _ in range(reps):
            for variant, (backend, first, second) in runs.items():
                with formulation(variant):  # torch runs the Python model at every call
                    start = time.perf_counter()
                    flows[variant] = backend.decode(first, second, "none")[0]
                    times[variant].append((time.perf_counter() - start) * 1e3)
    return {variant: (statistics.median(times[variant]), flows[variant]) for variant in VARIANTS}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grids", default="256x320,480x640", help="network grids HxW (multiples of 32)")
    parser.add_argument("--backends", default="openvino,torch")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "large_ops_cpu.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2 if torch.get_num_threads() >= 2 else 1)
    from speed import machine_description, write_results

    grids = [tuple(int(v) for v in g.split("x")) for g in args.grids.split(",")]
    rows = []
    print(f"{'backend':<10}{'grid':>9}  {'variant':<16}{'NetE ms':>9}{'vs slices':>11}{'max |dflow|':>13}")
    for backend_name in args.backends.split(","):
        for grid in grids:
            results = time_decoders(backend_name, grid, args.reps)
            base, base_flow = results["slices"]
            for variant, (ms, flow) in results.items():
                difference = float((flow - base_flow).abs().max()) if variant == "one-hot conv" else None
                rows.append({"backend": backend_name, "grid": f"{grid[0]}x{grid[1]}", "variant": variant,
                             "decoder_ms": round(ms, 2), "speedup_vs_slices": round(base / ms, 3),
                             "max_flow_difference": difference})
                shown = "-" if difference is None else f"{difference:.1e}"
                print(f"{backend_name:<10}{grid[0]:>4}x{grid[1]:<4}  {variant:<16}{ms:>9.1f}{base / ms:>10.2f}x{shown:>13}",
                      flush=True)
    payload = {"machine": machine_description(torch.device("cpu")), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
               "reps": args.reps, "rows": rows}
    write_results(args.out, payload, "large_ops.py", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or None))
