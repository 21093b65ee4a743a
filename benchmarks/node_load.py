#!/usr/bin/env python3
"""Load test of the flow node: a camera faster than the node, for minutes.

    python benchmarks/node_load.py                     # 5 minutes, 60 Hz, 320x240, device cuda/cpu
    nice -n 10 python benchmarks/node_load.py --seconds 60 --device cpu

Three processes, as on a robot: ``image_player`` (the shipped 320x240 sequence, looping, at
``--rate`` Hz), ``flow_node``, and this monitor, which subscribes only to ``flow/timing`` (small
messages) and samples the node's resident memory (VmRSS in /proc/<pid>/status) once a second.

What it shows: with a camera faster than inference, latest-only processing keeps the end-to-end
latency bounded (about one to two inference times, however long it runs: no queue builds up),
the surplus frames are dropped and counted, the processed rate is the inference rate, and memory
stays flat (no leak). Latency is measured twice: by the node (publish time minus image stamp,
FlowTiming.latency_ms) and here (arrival of flow/timing minus image stamp, which adds transport).

Writes ``benchmarks/results/node_load_<device>.json`` and ``.png`` (memory and latency over
time) and prints a table. All traffic stays on loopback (lfn_ros.nodes.processes.loopback_env).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lfn_ros.nodes.processes import loopback_env, node_command, stop_process  # noqa: E402


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MiB (VmRSS), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None


def percentile(values, q):
    return float(np.percentile(values, q)) if len(values) else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0, help="duration of the measurement")
    parser.add_argument("--rate", type=float, default=60.0, help="camera rate, Hz")
    parser.add_argument("--frames", default="", help="folder or video for the camera (default: shipped sequence)")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cuda falls back to the CPU)")
    parser.add_argument("--weights", default="default", help="'default', '' (untrained) or a checkpoint")
    parser.add_argument("--cpu-threads", type=int, default=0, help="torch CPU threads in the node (0 = all cores but one)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="output folder")
    args = parser.parse_args(argv)

    env = loopback_env()
    import os

    os.environ.update({k: env[k] for k in ("RMW_IMPLEMENTATION", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID")})
    if "FASTDDS_DEFAULT_PROFILES_FILE" in env:
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = env["FASTDDS_DEFAULT_PROFILES_FILE"]

    from lfn_ros.io.sources import iter_source

    height, width = next(iter(iter_source(args.frames))).shape[:2]

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    from lfn_ros.msg import FlowTiming

    from lfn_ros.nodes import runtime

    runtime.init()
    node = rclpy.create_node("lfn_ros_node_load")
    timings, diagnostics = [], {}
    t_start = time.monotonic()

    def on_timing(msg):
        now_ns = node.get_clock().now().nanoseconds
        stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        timings.append(dict(t=time.monotonic() - t_start, latency_node_ms=float(msg.latency_ms),
                            latency_recv_ms=(now_ns - stamp_ns) / 1e6, compute_ms=float(msg.compute_ms),
                            processed=int(msg.frames_processed), dropped=int(msg.frames_dropped),
                            device=msg.device, model=msg.model))

    def on_diagnostics(msg):
        for status in msg.status:
            if status.name.startswith("flow_node"):
                diagnostics.clear()
                diagnostics.update({kv.key: kv.value for kv in status.values})
                diagnostics["_level"] = int.from_bytes(status.level, "little") if isinstance(status.level, bytes) else int(status.level)
                diagnostics["_message"] = status.message

    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                     history=HistoryPolicy.KEEP_LAST)
    node.create_subscription(FlowTiming, "flow/timing", on_timing, qos)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)

    def spin(seconds, until=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if until is not None and until():
                return True
            rclpy.spin_once(node, timeout_sec=0.05)
        return False

    print(f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}; starting flow_node ({args.device}) and a {args.rate:g} Hz "
          f"{width}x{height} camera for {args.seconds:g} s", flush=True)
    flow = subprocess.Popen(node_command("flow_node", {
        "device": args.device, "weights": args.weights, "cpu_threads": args.cpu_threads, "warmup": True,
        "warmup_height": height, "warmup_width": width, "latency_budget_ms": 1000.0}), env=env)
    player = player_status = None
    final = {}
    memory = []
    try:
        if not spin(180, lambda: diagnostics.get("state") == "running" or flow.poll() is not None) or flow.poll() is not None:
            print("flow_node did not start", file=sys.stderr)
            return 1
        player = subprocess.Popen(node_command("image_player", {
            "source": args.frames, "rate": float(args.rate), "loop": True, "frame_id": "camera",
            "wait_for_subscribers": 1}), env=env)
        spin(30, lambda: bool(timings))
        t_start = time.monotonic()
        timings.clear()
        next_sample = 0.0
        last_report = 0.0
        while True:
            elapsed = time.monotonic() - t_start
            if elapsed >= args.seconds or flow.poll() is not None:
                break
            if elapsed >= next_sample:
                memory.append((elapsed, rss_mb(flow.pid)))
                next_sample += 1.0
            if elapsed - last_report >= 30.0:
                last_report = elapsed
                if timings:
                    print(f"  {elapsed:5.0f} s: processed {timings[-1]['processed']}, dropped {timings[-1]['dropped']}, "
                          f"RSS {memory[-1][1]:.0f} MiB, latency {timings[-1]['latency_node_ms']:.0f} ms", flush=True)
            spin(min(0.2, max(0.01, next_sample - elapsed)))
        # Stop the camera, let the node drain, then read one fresh diagnostics snapshot: it holds
        # received, processed and dropped at the same instant. (FlowTiming's counters run ahead of
        # the 1 Hz diagnostics, so mixing the two made processed + dropped > received; issue 12.)
        player_status = stop_process(player)
        player = None
        spin(1.5)
        diagnostics.clear()
        spin(5, lambda: "frames_received" in diagnostics)
        final = {key: int(diagnostics[key]) for key in ("frames_received", "frames_processed", "frames_dropped",
                                                        "sequence_resets", "bad_messages")
                 if str(diagnostics.get(key, "")).isdigit()}
    finally:
        if player is not None:
            player_status = stop_process(player)
        node_status = stop_process(flow)
        node.destroy_node()
        runtime.shutdown()

    if not timings:
        print("no flow/timing received", file=sys.stderr)
        return 1
    duration = timings[-1]["t"] - timings[0]["t"]
    processed = timings[-1]["processed"] - timings[0]["processed"]
    node_lat = [t["latency_node_ms"] for t in timings]
    recv_lat = [t["latency_recv_ms"] for t in timings]
    mem = [(t, m) for t, m in memory if m is not None]
    mem_t = np.array([t for t, _ in mem])
    mem_v = np.array([m for _, m in mem])
    half = mem_t >= mem_t[-1] / 2
    slope = float(np.polyfit(mem_t[half], mem_v[half], 1)[0] * 60.0) if half.sum() > 2 else float("nan")
    received = final.get("frames_received")
    # Every received frame is processed, dropped (latest-only), or the first of a sequence (no
    # pair yet: 1 + the resets), or a bad message: nothing else may be missing or counted twice.
    accounted = (final.get("frames_processed", 0) + final.get("frames_dropped", 0) + 1
                 + final.get("sequence_resets", 0) + final.get("bad_messages", 0))
    result = {
        "device": timings[-1]["device"], "model": timings[-1]["model"],
        "camera": {"rate_hz": args.rate, "width": width, "height": height},
        "seconds": args.seconds, "measured_seconds": duration,
        "frames_received_by_node": received,
        "frames_processed": final.get("frames_processed"), "frames_dropped": final.get("frames_dropped"),
        "frames_accounted": accounted, "accounting_holds": received == accounted,
        "processed_rate_hz": processed / duration if duration > 0 else float("nan"),
        "drop_fraction": (final.get("frames_dropped", 0) / received) if received else None,
        "compute_ms": {"p50": percentile([t["compute_ms"] for t in timings], 50),
                       "p99": percentile([t["compute_ms"] for t in timings], 99)},
        "latency_node_ms": {"p50": percentile(node_lat, 50), "p99": percentile(node_lat, 99), "max": max(node_lat)},
        "latency_received_ms": {"p50": percentile(recv_lat, 50), "p99": percentile(recv_lat, 99), "max": max(recv_lat)},
        "rss_mib": {"first": float(mem_v[0]), "last": float(mem_v[-1]), "max": float(mem_v.max()),
                    "slope_second_half_mib_per_min": slope},
        "node_exit_status": node_status, "player_exit_status": player_status,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "series": {"timing": timings, "memory": [{"t": t, "rss_mib": m} for t, m in mem]},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "cpu" if result["device"] == "cpu" else "cuda"
    json_path = args.out / f"node_load_{tag}.json"
    json_path.write_text(json.dumps(result, indent=1))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_mem, ax_lat) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    ax_mem.plot(mem_t, mem_v, color="tab:blue")
    ax_mem.set_ylabel("flow_node RSS (MiB)")
    ax_mem.set_ylim(0, mem_v.max() * 1.2)
    ax_mem.set_title(f"flow_node under a {args.rate:g} Hz {width}x{height} camera ({result['device']})")
    ts = [t["t"] for t in timings]
    ax_lat.plot(ts, node_lat, ".", ms=3, label="node: publish - stamp")
    ax_lat.plot(ts, recv_lat, ".", ms=3, alpha=0.5, label="received - stamp")
    ax_lat.axhline(result["latency_node_ms"]["p50"], color="k", lw=0.8, ls="--", label="p50 (node)")
    ax_lat.set_ylabel("latency (ms)")
    ax_lat.set_xlabel("time (s)")
    ax_lat.set_ylim(0, max(recv_lat) * 1.1)
    ax_lat.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    png_path = args.out / f"node_load_{tag}.png"
    fig.savefig(png_path, dpi=100)

    rows = [
        ("device / model", f"{result['device']} / {result['model']}"),
        ("camera", f"{args.rate:g} Hz, {width}x{height} rgb8"),
        ("measured", f"{duration:.0f} s"),
        ("frames received by node", str(received)),
        ("frames processed", f"{result['frames_processed']} ({result['processed_rate_hz']:.2f} Hz)"),
        ("frames dropped (latest-only)", f"{result['frames_dropped']}"
         + (f" ({100 * result['drop_fraction']:.1f} %)" if result["drop_fraction"] is not None else "")),
        ("received = processed + dropped + first frames + bad", f"{received} = {accounted}: "
         + ("holds" if result["accounting_holds"] else "DOES NOT HOLD")),
        ("compute p50 / p99", f"{result['compute_ms']['p50']:.0f} / {result['compute_ms']['p99']:.0f} ms"),
        ("latency (node) p50 / p99 / max", "{p50:.0f} / {p99:.0f} / {max:.0f} ms".format(**result["latency_node_ms"])),
        ("latency (received) p50 / p99 / max", "{p50:.0f} / {p99:.0f} / {max:.0f} ms".format(**result["latency_received_ms"])),
        ("RSS first / last / max", "{first:.0f} / {last:.0f} / {max:.0f} MiB".format(**result["rss_mib"])),
        ("RSS slope (second half)", f"{slope:+.2f} MiB/min"),
        ("exit status node / player", f"{node_status} / {player_status}"),
    ]
    print()
    print("| quantity | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"\nwrote {json_path} and {png_path}")
    return 0 if node_status == 0 and result["accounting_holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
