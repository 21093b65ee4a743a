#!/usr/bin/env python3
"""Time LiteFlowNet per pair against its peers, side by side in one run; print a table, write
JSON and a plot.

    python benchmarks/speed.py                        # CPU: fp32, finest level 2 and 3, DIS
    python benchmarks/speed.py --device cuda          # GPU: + fp16/bf16, channels_last, RAFT-small

Rows (each where the device supports it):
- ``lfn pair`` : LiteFlowNet forward on two images (NetC on both, NetE once): what a pair costs.
- ``lfn node`` : one streaming step of the node's engine: NetC on the new frame only (the previous
  frame's features are cached), NetE forward + backward in one batch, occlusion check.
- ``DIS-*`` : OpenCV DIS on the CPU (grey conversion included), always measured for reference.
- ``RAFT-small`` : torchvision raft_small, 12 iterations, with the weights in ../shared/weights,
  only where torchvision and CUDA are available.

Sizes are WIDTHxHEIGHT as cameras are quoted (default 320x240 and 640x480 on the CPU; 1024x436,
640x480 and 1280x720 on CUDA). Times are medians over ``--iters`` runs after ``--warmup`` runs; on
CUDA they are measured with CUDA events around each call (synchronised), and peak memory is
``torch.cuda.max_memory_allocated``. The machine is noisy: compare rows of one run, not runs.
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

from lfn_ros.engine import FlowEngine  # noqa: E402
from lfn_ros.model.liteflownet import LiteFlowNet  # noqa: E402
from lfn_ros.model.weights import default_weights, read_checkpoint, apply_state_dict  # noqa: E402


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'640x480,1024x436' -> [(480, 640), (436, 1024)] as (H, W)."""
    sizes = []
    for item in text.split(","):
        width, height = (int(v) for v in item.lower().split("x"))
        sizes.append((height, width))
    return sizes


def test_pair(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured frame and a copy shifted by (3, 2) px, uint8 RGB (H, W, 3)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height + 8, width + 8, 3), dtype=np.uint8)
    return np.ascontiguousarray(base[4:4 + height, 4:4 + width]), np.ascontiguousarray(base[2:2 + height, 1:1 + width])


def time_call(fn, device: torch.device, iters: int, warmup: int) -> list[float]:
    """Milliseconds per call."""
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


def load_net(finest_level: int, device: torch.device) -> LiteFlowNet:
    model = LiteFlowNet(finest_level=finest_level)
    path = default_weights()
    if path is not None:  # timing does not depend on the values, but keep them realistic
        apply_state_dict(model, read_checkpoint(path)["state_dict"])
    return model.to(device).eval()


def lfn_paths(device: torch.device, levels: list[int]) -> list[dict]:
    """(name, finest level, precision, channels_last) of every LiteFlowNet path to time."""
    paths = [{"name": f"lfn pair fp32 L{k}", "level": k, "precision": "fp32", "channels_last": False} for k in levels]
    if device.type == "cuda":
        for k in levels:
            for precision in ("fp16", "bf16"):
                paths.append({"name": f"lfn pair {precision} L{k}", "level": k, "precision": precision, "channels_last": False})
            paths.append({"name": f"lfn pair fp16 L{k} channels_last", "level": k, "precision": "fp16", "channels_last": True})
    return paths


def run_lfn_pair(path: dict, size, device, iters, warmup) -> dict:
    model = load_net(path["level"], device)
    a_np, b_np = test_pair(*size)
    to_tensor = lambda x: torch.from_numpy(x).permute(2, 0, 1).unsqueeze(0).to(device)  # noqa: E731
    a, b = to_tensor(a_np), to_tensor(b_np)
    if path["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(path["precision"])

    def call():
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            return model(a, b)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = time_call(call, device, iters, warmup)
    memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"ms": statistics.median(times), "ms_min": min(times), "memory_mb": memory}


def run_lfn_node(level: int, precision: str, size, device, iters, warmup) -> dict:
    engine = FlowEngine(model=load_net(level, device), device=str(device), precision=precision, finest_level=level)
    frames = test_pair(*size)
    counter = [0]

    def call():
        counter[0] += 1
        engine.process(frames[counter[0] % 2], seconds=float(counter[0]))

    engine.process(frames[0], seconds=0.0)
    times = time_call(call, device, iters, warmup)
    return {"ms": statistics.median(times), "ms_min": min(times), "memory_mb": None}


def run_dis(preset: str, size, iters, warmup) -> dict:
    import cv2

    presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    dis = cv2.DISOpticalFlow_create(presets[preset])
    a, b = test_pair(*size)

    def call():
        return dis.calc(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY), None)

    times = time_call(call, torch.device("cpu"), iters, warmup)
    return {"ms": statistics.median(times), "ms_min": min(times), "memory_mb": None}


def run_raft(size, device, iters, warmup, precision="fp32") -> dict | str:
    """torchvision raft_small, 12 iterations; returns a reason string when it cannot run."""
    if device.type != "cuda":
        return "RAFT-small is timed on CUDA only"
    try:
        from torchvision.models.optical_flow import raft_small
    except ImportError as exc:
        return f"torchvision not importable ({exc})"
    from lfn_ros.evaluate import raft_state_dict

    weights = sorted((ROOT.parent / "shared" / "weights").glob("*.pth"))
    model = raft_small(weights=None)
    if weights:
        model.load_state_dict(raft_state_dict(torch.load(weights[0], map_location="cpu", weights_only=True)))
    model = model.to(device).eval()
    height, width = size
    pad_h, pad_w = (-height) % 8, (-width) % 8
    a = torch.rand(1, 3, height + pad_h, width + pad_w, device=device) * 2 - 1
    b = torch.rand_like(a)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)

    def call():
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            return model(a, b, num_flow_updates=12)

    torch.cuda.reset_peak_memory_stats(device)
    times = time_call(call, device, iters, warmup)
    return {"ms": statistics.median(times), "ms_min": min(times), "memory_mb": torch.cuda.max_memory_allocated(device) / 2**20}


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["size"] for r in results}, key=lambda s: int(s.split("x")[0]) * int(s.split("x")[1]))
    names = list(dict.fromkeys(r["name"] for r in results))
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) * len(sizes) + 1.5))
    y = 0
    ticks, labels = [], []
    for size in sizes:
        for name in names:
            row = next((r for r in results if r["name"] == name and r["size"] == size), None)
            if row is None:
                continue
            ax.barh(y, row["ms"], color="tab:blue" if name.startswith("lfn") else "tab:gray")
            ax.text(row["ms"], y, f" {row['ms']:.1f}", va="center", fontsize=8)
            ticks.append(y)
            labels.append(f"{name} @ {size}")
            y += 1
        y += 0.5
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ms per pair (median, log scale)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default=None, help="WIDTHxHEIGHT list (default depends on the device)")
    parser.add_argument("--levels", default="2,3", help="finest levels to time")
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)

    device = torch.device(args.device if args.device != "cuda" else "cuda:0")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA requested but not available", file=sys.stderr)
        return 2
    cuda = device.type == "cuda"
    sizes = parse_sizes(args.sizes or ("1024x436,640x480,1280x720" if cuda else "320x240,640x480"))
    levels = [int(v) for v in args.levels.split(",")]
    iters = args.iters or (50 if cuda else 5)
    warmup = args.warmup or (10 if cuda else 1)
    if cuda:
        torch.backends.cudnn.benchmark = True

    results = []
    skipped = []
    for height, width in sizes:
        size = f"{width}x{height}"
        for path in lfn_paths(device, levels):
            results.append({"name": path["name"], "size": size, **run_lfn_pair(path, (height, width), device, iters, warmup)})
            print(f"  {path['name']:<34} {size:>9}  {results[-1]['ms']:9.1f} ms", flush=True)
        for k in levels:
            precision = "fp16" if cuda else "fp32"
            name = f"lfn node {precision} L{k} (cached, fwd+bwd)"
            results.append({"name": name, "size": size, **run_lfn_node(k, precision, (height, width), device, iters, warmup)})
            print(f"  {name:<34} {size:>9}  {results[-1]['ms']:9.1f} ms", flush=True)
        for preset in ("ultrafast", "medium"):
            results.append({"name": f"DIS-{preset} (CPU)", "size": size, **run_dis(preset, (height, width), max(iters, 10), 2)})
        raft = run_raft((height, width), device, iters, warmup)
        if isinstance(raft, dict):
            results.append({"name": "RAFT-small 12 it fp32", "size": size, **raft})
        elif raft not in skipped:
            skipped.append(raft)

    machine = machine_description(device)
    print(f"\nLiteFlowNet speed on {machine} (median of {iters}, ms per pair)")
    print(f"{'method':<36}{'size':>10}{'ms':>10}{'min ms':>10}{'GPU MB':>9}")
    for r in results:
        memory = f"{r['memory_mb']:.0f}" if r.get("memory_mb") else "-"
        print(f"{r['name']:<36}{r['size']:>10}{r['ms']:>10.1f}{r['ms_min']:>10.1f}{memory:>9}")
    for reason in skipped:
        print(f"skipped RAFT-small: {reason}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "cuda" if cuda else "cpu"
    payload = {"machine": machine, "device": str(device), "iters": iters, "warmup": warmup,
               "weights": str(default_weights()) if default_weights() else None, "results": results, "skipped": skipped,
               "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    (out / f"speed_{tag}.json").write_text(json.dumps(payload, indent=1))
    plot(results, out / f"speed_{tag}.png", f"LiteFlowNet vs peers, {machine}")
    print(f"wrote {out / f'speed_{tag}.json'} and {out / f'speed_{tag}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
