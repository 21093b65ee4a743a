#!/usr/bin/env python3
"""Everything the team needs from a lent CUDA GPU, as one command (issue 16 item 4):

    python3 benchmarks/gpu_suite.py --out $OUT                 # on the GPU machine, < 12 minutes
    python3 benchmarks/gpu_suite.py --out /tmp/suite --dry-run # here, on the CPU, tiny sizes, < 1 minute

Steps, each a child process with its own time budget (one failing step does not stop the others):

1. ``environment``: torch, CUDA, the GPU, numpy / OpenCV versions.
2. ``tests``: ``pytest -m gpu`` (the CUDA tests; they skip on a machine without CUDA).
3. ``speed``: ``benchmarks/speed.py --device cuda``: pair and node step in fp32, fp16 and bf16
   (CUDA events on the engine's streams: upload, compute and download overlap), RAFT-small side
   by side.
4. ``node_latency``: ``benchmarks/node_latency.py --device cuda``, only where rclpy and the
   built messages import (the ROS wheels have to travel with the working tree; otherwise the
   step says so and is skipped).
5. ``train``: a timed training burst resumed from the shipped checkpoint (``python3 -m
   lfn_ros.train``), saving its exported checkpoint and curves.

What comes back fits the device tool's limits (at most 8 files of 16 MB, two folders deep):
``suite.json`` (every step's status, time and parsed results), ``logs.txt`` (every step's
output), ``speed_cuda.json`` / ``.png``, ``train_weights.pt`` (fp16, about 11 MB),
``train_metrics.csv``, ``train_curves.png``. The machine has torch, numpy, OpenCV, scikit-image,
matplotlib, pytest and torchvision (the device tool's KINDS.md), so lfn_ros runs from the
working tree with no wheels; run it from the repository root.

``--dry-run`` runs the same steps at tiny sizes on the CPU (a test runs it, so it cannot rot).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def step_commands(out: Path, dry_run: bool, train_minutes: float) -> list[tuple[str, list, float, str]]:
    """(name, command, budget in seconds, skip reason or '') of every step."""
    device = "cpu" if dry_run else "cuda"
    speed = [PYTHON, "benchmarks/speed.py", "--device", device, "--out", str(out / "speed")]
    if dry_run:
        speed += ["--sizes", "96x64", "--levels", "6", "--iters", "1", "--warmup", "1", "--no-onnxruntime", "--no-int8"]
    latency = [PYTHON, "benchmarks/node_latency.py", "--device", device, "--backends", "torch", "--threads", "0",
               "--out", str(out / "node_latency.json")]
    latency += ["--configs", "64x64@5", "--seconds", "2"] if dry_run else ["--configs", "640x480@30,1280x720@30", "--seconds", "20"]
    train = [PYTHON, "-m", "lfn_ros.train", "--out", str(out / "train"), "--resume", "lfn_ros/weights/liteflownet_synthetic.pt",
             "--device", device, "--export", str(out / "train" / "weights.pt"), "--save-every", "200", "--log-every", "5"]
    if dry_run:
        train += ["--steps", "2", "--size", "64x64", "--batch", "1", "--finest-level", "3"]
    else:
        # A GPU's batch and crops (docs/training.md, "Commands"); the level the shipped weights recommend.
        train += ["--minutes", str(train_minutes), "--size", "256x192,448x320", "--batch", "8", "--motion", "round3",
                  "--finest-level", "3", "--lr", "1e-4", "--schedule", "onecycle", "--stage-loss-weight", "1"]
    tests = [PYTHON, "-m", "pytest", "-q", "-m", "gpu", "test", "-p", "no:cacheprovider"]
    return [
        ("environment", [PYTHON, str(Path(__file__).resolve()), "--environment"], 60, ""),
        ("tests", tests, 30 if dry_run else 120, ""),
        ("speed", speed, 60 if dry_run else 300, ""),
        ("node_latency", latency, 60 if dry_run else 150, ros_missing()),
        ("train", train, 60 if dry_run else train_minutes * 60 + 90, ""),
    ]


def ros_missing() -> str:
    """Why the node benchmark cannot run here ('' when it can): rclpy and lfn_ros.msg must import."""
    probe = subprocess.run([PYTHON, "-c", "import rclpy, lfn_ros.msg"], cwd=ROOT, capture_output=True, text=True)
    if probe.returncode == 0:
        return ""
    last = (probe.stderr.strip().splitlines() or ["?"])[-1]
    return f"rclpy or the built messages do not import ({last}); carry the ROS 2 wheels and the msg build to run it"


def environment() -> dict:
    import cv2
    import numpy as np
    import torch

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__, "opencv": cv2.__version__,
            "cuda_available": torch.cuda.is_available(), "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                    multiprocessors=props.multi_processor_count, cudnn=torch.backends.cudnn.version())
    return info


def run_step(name: str, command: list, budget: float, log) -> dict:
    """Run one step with a time budget; its output goes to ``log``."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    log.write(f"\n===== {name}: {' '.join(command)}\n")
    log.flush()
    start = time.monotonic()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=budget)
        status = "passed" if done.returncode == 0 else f"failed (exit {done.returncode})"
    except subprocess.TimeoutExpired:
        status = f"timed out after {budget:.0f} s"
    seconds = time.monotonic() - start
    log.write(f"===== {name}: {status} in {seconds:.1f} s\n")
    log.flush()
    return {"status": status, "seconds": round(seconds, 1), "command": " ".join(command)}


def pack(out: Path) -> list[str]:
    """Move the results to the few files that come back (see the module docstring); returns them."""
    moves = {out / "speed" / "speed_cuda.json": "speed_cuda.json", out / "speed" / "speed_cuda.png": "speed_cuda.png",
             out / "speed" / "speed_cpu.json": "speed_cpu.json", out / "train" / "weights.pt": "train_weights.pt",
             out / "train" / "metrics.csv": "train_metrics.csv", out / "train" / "curves.png": "train_curves.png"}
    for source, name in moves.items():
        if source.is_file():
            shutil.move(str(source), out / name)
    for folder in ("speed", "train"):
        shutil.rmtree(out / folder, ignore_errors=True)  # last.pt (58 MB) and the rest stay behind
    return sorted(p.name for p in out.iterdir() if p.is_file())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out/gpu_suite")))
    parser.add_argument("--dry-run", action="store_true", help="the same steps at tiny sizes on the CPU (< 1 minute)")
    parser.add_argument("--train-minutes", type=float, default=4.0, help="the training burst's wall time on the GPU")
    parser.add_argument("--skip", default="", help="comma-separated steps to leave out")
    parser.add_argument("--environment", action="store_true", help=argparse.SUPPRESS)  # step 1, as a child
    args = parser.parse_args(argv)
    if args.environment:
        print(json.dumps(environment(), indent=1))
        return 0
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_suite: no CUDA GPU here; use --dry-run to check the steps on the CPU", file=sys.stderr)
        return 2
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    suite = {"dry_run": args.dry_run, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "steps": {}}
    started = time.monotonic()
    with open(out / "logs.txt", "w") as log:
        for name, command, budget, reason in step_commands(out, args.dry_run, args.train_minutes):
            if name in skip or reason:
                suite["steps"][name] = {"status": "skipped", "reason": reason or "--skip"}
                log.write(f"\n===== {name}: skipped: {reason or '--skip'}\n")
                print(f"{name:<14} skipped: {reason or '--skip'}", flush=True)
                continue
            result = suite["steps"][name] = run_step(name, command, budget, log)
            print(f"{name:<14} {result['status']:<24} {result['seconds']:7.1f} s", flush=True)
    suite["environment"] = _json_of_step(out / "logs.txt", "environment")
    latency = out / "node_latency.json"
    if latency.is_file():
        suite["node_latency"] = json.loads(latency.read_text())
        latency.unlink()
    suite["seconds"] = round(time.monotonic() - started, 1)
    suite["files"] = pack(out) + ["suite.json"]
    (out / "suite.json").write_text(json.dumps(suite, indent=1))
    print(f"gpu_suite: {suite['seconds']:.0f} s; wrote {', '.join(suite['files'])} to {out}")
    failed = [n for n, s in suite["steps"].items() if s["status"] not in ("passed", "skipped")]
    return 1 if failed else 0


def _json_of_step(log_path: Path, name: str):
    """The JSON a step printed (the environment step), parsed from the log."""
    text = log_path.read_text()
    marker = f"===== {name}: "
    start = text.find(marker)
    if start < 0:
        return None
    body = text[text.find("\n", start) + 1:text.find(f"\n===== {name}: ", start + 1)]
    try:
        return json.loads(body)
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
