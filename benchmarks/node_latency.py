#!/usr/bin/env python3
"""End-to-end latency of the flow node on the CPU, camera to subscriber (issue 10).

    python benchmarks/node_latency.py                       # every configuration, 30 s each
    python benchmarks/node_latency.py --seconds 20 --configs 320x240@15 --backends openvino
    python benchmarks/node_latency.py --frames camera.mcap --topic /camera/image_raw --configs @1.0   # a bag

Three processes, as on a robot: ``image_player`` (the camera: the shipped sequence, resized to
the configuration's size, looping at its rate, stamping each image when it publishes it),
``flow_node`` (device cpu, default parameters except those named), and this subscriber, which
receives ``flow`` (the full 32FC2 image, so transport is included) and ``flow/timing``.

With ``--frames`` the camera plays that folder, video or ROS 2 bag instead (looping, at its own
size; a bag with its recorded headers and timing, the configuration's rate being its speed
factor, so ``--configs @1.0`` plays it as recorded).

Per configuration: the engine's own step before and after the node's runs (``FlowEngine.process``
on the camera's frames in this process, the node's parameters, nothing else running: what
``speed.py`` calls the node step; the mean of the two p50s is the reference), then p50 / p99 end-to-end latency (receipt of ``flow`` minus the image stamp),
frames received by the node, processed (flows published) and dropped (latest-only), and the
node's overhead over the bare model time (latency minus FlowTiming.compute_ms), split into the
part inside the node (waiting for the inference thread to finish the previous frame, conversion,
building the messages: FlowTiming.latency_ms minus compute_ms) and transport (receipt minus the
node's publish time), and the ratio of the node's p50 latency to the engine's own step
(issue 16: the node should cost at most 1.2x its engine). The camera driver, the node and the subscriber share the machine's
cores, as they do on a small robot computer; the thread settings are measured the same way.

Writes benchmarks/results/node_latency_cpu.json and prints a table. Pause any training first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lfn_ros.nodes.processes import loopback_env, node_command, stop_process  # noqa: E402


def camera_folder(width: int, height: int) -> str:
    """The shipped sequence at (width, height) in a temporary folder ('' when it is native)."""
    import cv2

    from lfn_ros.io import iter_source, write_image

    frames = list(iter_source(""))
    if frames[0].shape[:2] == (height, width):
        return ""
    folder = tempfile.mkdtemp(prefix=f"lfn_ros_camera_{width}x{height}_")
    for i, rgb in enumerate(frames):
        write_image(Path(folder) / f"frame_{i:04d}.png", cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR))
    return folder


def camera_frames(width: int, height: int, frames: str = "", topic: str = "", count: int = 24) -> list:
    """The first ``count`` frames the camera would publish, as (H, W, 3) uint8 RGB (``width`` 0:
    the shipped sequence at its own size)."""
    from lfn_ros.bags import is_bag, iter_bag_frames
    from lfn_ros.io import iter_source

    if frames and is_bag(frames):
        source = (f.rgb for f in iter_bag_frames(frames, topic))
    else:
        source = iter(iter_source(frames or (camera_folder(width, height) if width else "")))  # 0: native size
    out = []
    for rgb in source:
        out.append(rgb)
        if len(out) == count:
            break
    while len(out) < count:  # a short source loops, as the player does
        out += out[: count - len(out)]
    return out


def source_size(frames: str, topic: str = "") -> tuple[int, int]:
    """(width, height) of the first frame of a folder, video or bag."""
    first = camera_frames(0, 0, frames, topic, count=1)[0]
    return first.shape[1], first.shape[0]


def engine_step_ms(frames: list, backend: str, threads: int, device: str = "cpu", warmup: int = 4, cascade: str = "") -> dict:
    """``FlowEngine.process`` per frame with the node's defaults (its threads rule included; the
    ``cascade`` given, '' = the default), in this process with nothing else running: p50 and p90
    in ms after ``warmup`` frames."""
    import torch

    from lfn_ros.engine import FlowEngine
    from lfn_ros.nodes.parameters import BY_NAME, default_cpu_threads

    threads = threads or default_cpu_threads()  # the node's rule for cpu_threads 0
    torch.set_num_threads(threads)
    default = {name: BY_NAME[name].default for name in ("precision", "occlusion_method", "publish_occlusion", "refinement",
                                                          "cascade")}
    engine = FlowEngine(device=device, backend=backend, threads=threads, precision=default["precision"],
                        occlusion=default["publish_occlusion"], occlusion_method=default["occlusion_method"],
                        refinement=default["refinement"], cascade=cascade or default["cascade"])
    times = []
    for i, rgb in enumerate(frames):
        t0 = time.perf_counter()
        engine.process(rgb, seconds=i / 15.0)
        if i > warmup:  # frame 0 starts the sequence (no flow); the next few warm the caches up
            times.append((time.perf_counter() - t0) * 1000)
    return {"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90)), "model": engine.model_name}


def run_config(node, env, size, rate, params, seconds, frames: str = "", topic: str = "", device: str = "cpu") -> dict:
    """One configuration: start node and camera, measure for ``seconds``, stop both. ``frames``:
    the camera's source (folder, video or bag) instead of the resized shipped sequence."""
    import rclpy
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from lfn_ros.msg import FlowTiming

    width, height = size
    arrivals, timings = [], {}
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                     history=HistoryPolicy.KEEP_LAST)

    def on_flow(msg):
        now = node.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        arrivals.append((time.monotonic(), stamp, (now - stamp) / 1e6))

    def on_timing(msg):
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        timings[stamp] = (float(msg.compute_ms), int(msg.frames_processed), int(msg.frames_dropped), msg.model,
                          float(msg.latency_ms))

    subs = [node.create_subscription(Image, "flow", on_flow, qos), node.create_subscription(FlowTiming, "flow/timing", on_timing, qos)]
    flow = subprocess.Popen(node_command("flow_node", {"device": device, "warmup": True, "warmup_height": height,
                                                       "warmup_width": width, **params}),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    player = None

    def spin(duration, until=None):
        end = time.monotonic() + duration
        while time.monotonic() < end and not (until and until()):
            rclpy.spin_once(node, timeout_sec=0.02)

    try:
        player = subprocess.Popen(node_command("image_player", {
            "source": frames or camera_folder(width, height), "rate": float(rate), "bag_topic": topic, "loop": True,
            "restamp": True, "frame_id": "camera",
            "wait_for_subscribers": 1, "wait_timeout": 120.0}), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spin(180, lambda: len(arrivals) >= 3 or flow.poll() is not None)  # warm-up and compilation done
        start = time.monotonic()
        first = len(arrivals)
        first_timing = max(timings) if timings else None
        spin(seconds)
        window = [a for a in arrivals[first:] if a[0] >= start]
    finally:
        if player is not None:
            stop_process(player)
        node_status = stop_process(flow)
        for sub in subs:
            node.destroy_subscription(sub)
    if len(window) < 2 or first_timing is None:
        return {"error": f"no flow measured (node exit {node_status})"}
    latency = np.array([a[2] for a in window])
    last_timing = timings[max(timings)]
    start_timing = timings[first_timing]
    processed = last_timing[1] - start_timing[1]
    dropped = last_timing[2] - start_timing[2]
    # The camera's frame count: rate x time for the shipped sequence; for other sources the node's
    # own count of what it received (processed + dropped), its rate being the source's.
    sent = processed + dropped if frames else rate * seconds
    compute = np.array([timings[a[1]][0] for a in window if a[1] in timings])
    # Frames a two-scale node ran in one pass (adaptive_cascade; FlowTiming.model names the mode).
    one_pass = [("one pass" in timings[a[1]][3]) for a in window if a[1] in timings]
    overhead = np.array([a[2] - timings[a[1]][0] for a in window if a[1] in timings])
    # The overhead in two: inside the node (waiting for the inference thread, conversion,
    # building the messages: its publish time minus stamp, minus compute) and transport (receipt
    # here minus the node's publish time).
    in_node = np.array([timings[a[1]][4] - timings[a[1]][0] for a in window if a[1] in timings])
    transport = np.array([a[2] - timings[a[1]][4] for a in window if a[1] in timings])
    return {
        "model": last_timing[3], "camera_frames": round(sent), "processed": processed, "dropped": dropped,
        "processed_fraction": processed / sent if sent else float("nan"),
        "latency_ms": {"p50": float(np.percentile(latency, 50)), "p99": float(np.percentile(latency, 99))},
        "compute_ms_p50": float(np.median(compute)) if compute.size else None,
        "one_pass_fraction": float(np.mean(one_pass)) if one_pass else None,
        "overhead_ms_p50": float(np.median(overhead)) if overhead.size else None,
        "in_node_ms_p50": float(np.median(in_node)) if in_node.size else None,
        "transport_ms_p50": float(np.median(transport)) if transport.size else None,
        "node_exit_status": node_status,
    }


def print_row(config: str, label: str, threads: int, engine: dict, result: dict) -> None:
    """One line of the table (and the row's node / engine ratio)."""
    if "error" in result:
        print(f"{config:>12} {label:>9} {threads:>7} {engine['p50']:10.1f}  {result['error']}", flush=True)
        return
    result["node_over_engine"] = result["latency_ms"]["p50"] / engine["p50"]
    print(f"{config:>12} {label:>9} {threads:>7} {engine['p50']:10.1f} {100 * result['processed_fraction']:9.0f}% "
          f"{result['dropped']:>8} {result['latency_ms']['p50']:7.0f} {result['latency_ms']['p99']:7.0f} "
          f"{result['compute_ms_p50']:9.1f} {result['overhead_ms_p50']:9.1f} {result['node_over_engine']:8.2f}x", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time per configuration")
    parser.add_argument("--configs", default="320x240@15,320x240@30,640x480@15", help="WxH@Hz list")
    parser.add_argument("--backends", default="torch,openvino", help="engine backends to measure")
    parser.add_argument("--cascades", default="", help="cascade values to measure, e.g. two-scale,none ('' = the node's default)")
    parser.add_argument("--stale-frame-ages", default="", help="stale_frame_age values to measure side by side, e.g. "
                        "1,0.5 ('' = the node's default); the engine's step is measured once for them")
    parser.add_argument("--adaptive-cascades", default="", help="adaptive_cascade values to measure side by side, e.g. "
                        "true,false ('' = the node's default); crossed with --stale-frame-ages")
    parser.add_argument("--threads", default="1,2", help="cpu_threads values to measure (0 = the node's default)")
    parser.add_argument("--device", default="cpu", help="the node's device (cpu, cuda)")
    parser.add_argument("--frames", default="", help="camera source: a folder, video or ROS 2 bag (default: the shipped "
                        "sequence resized to each configuration)")
    parser.add_argument("--topic", default="", help="with a bag: its image topic ('' = its only one)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "node_latency_cpu.json")
    args = parser.parse_args(argv)

    env = loopback_env()
    os.environ.update({k: env[k] for k in ("RMW_IMPLEMENTATION", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID")})
    if "FASTDDS_DEFAULT_PROFILES_FILE" in env:
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = env["FASTDDS_DEFAULT_PROFILES_FILE"]
    import rclpy

    from lfn_ros.nodes import runtime

    runtime.init()
    node = rclpy.create_node("lfn_ros_node_latency")
    rows = []
    header = (f"{'camera':>12} {'backend':>9} {'threads':>7} {'engine ms':>10} {'processed':>10} {'dropped':>8} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'model ms':>9} {'overhead':>9} {'node/eng':>9}")
    print(header, flush=True)
    try:
        for config in args.configs.split(","):
            size_text, rate = config.split("@")
            width, height = source_size(args.frames, args.topic) if args.frames else (int(v) for v in size_text.split("x"))
            frames = camera_frames(width, height, args.frames, args.topic)  # the engine's own step reads these
            for backend in args.backends.split(","):
                for threads in (int(t) for t in args.threads.split(",")):
                    for cascade in args.cascades.split(","):
                        # The engine's step before and after the node runs, their mean the reference:
                        # this 2-core VM drifts by 10-20 % between minutes (docs/benchmarks.md).
                        before = engine_step_ms(frames, backend, threads, args.device, cascade=cascade)
                        pending = []
                        schedules = [(stale, adaptive) for stale in args.stale_frame_ages.split(",")
                                     for adaptive in args.adaptive_cascades.split(",")]
                        for stale, adaptive in schedules:  # one engine step, several schedules
                            params = {"backend": backend, "cpu_threads": threads, **({"cascade": cascade} if cascade else {}),
                                      **({"stale_frame_age": float(stale)} if stale else {}),
                                      **({"adaptive_cascade": adaptive == "true"} if adaptive else {})}
                            result = run_config(node, env, (width, height), float(rate), params, args.seconds, args.frames,
                                                args.topic, args.device)
                            result.update(camera=config, backend=backend, cpu_threads=threads)
                            if cascade:
                                result["cascade"] = cascade
                            if stale:
                                result["stale_frame_age"] = float(stale)
                            if adaptive:
                                result["adaptive_cascade"] = adaptive == "true"
                            rows.append(result)
                            pending.append((result, f"{backend}{'/' + cascade if cascade else ''}{'/s' + stale if stale else ''}"
                                                    f"{'/a' + adaptive[0] if adaptive else ''}"))
                        after = engine_step_ms(frames, backend, threads, args.device, cascade=cascade)
                        engine = {"p50": (before["p50"] + after["p50"]) / 2, "p50_before": before["p50"],
                                  "p50_after": after["p50"], "p90": max(before["p90"], after["p90"]), "model": after["model"]}
                        for result, label in pending:
                            result["engine_step_ms"] = engine
                            print_row(config, label, threads, engine, result)
    finally:
        node.destroy_node()
        runtime.shutdown()
    from lfn_ros.train.trainer import hardware_description

    import torch

    payload = {"machine": hardware_description(torch.device("cpu")), "cpus": os.cpu_count(),
               "python": platform.python_version(), "seconds": args.seconds, "rows": rows,
               "date": time.strftime("%Y-%m-%d %H:%M:%S"),
               "command": "python benchmarks/node_latency.py" + (f" {' '.join(argv)}" if argv else "")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
