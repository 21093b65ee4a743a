"""``lfn-ros run`` (``make run``): the flow node end to end on the shipped demo sequence.

Starts two processes, as a robot would run them: ``image_player`` (the camera: the frames of
lfn_ros/data/sequence, or ``--frames``) and ``flow_node``; this process records what the node
publishes: ``out/flow_NNNN.png`` (flow colour) and ``out/occlusion_NNNN.png`` for every frame N
that got a flow (from frame N-1), ``out/demo.png`` (camera | flow colour | occlusion, a few rows),
``out/timing.json``, and prints a timing table. It exits when the sequence has played and the node
has caught up, or after ``--timeout`` seconds.

All ROS traffic stays on this machine (lfn_ros.nodes.processes.loopback_env).

Also ``python -m lfn_ros.demo [options]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .engine.types import STAGES as ENGINE_STAGES
from .nodes.processes import loopback_env, node_command, stop_process

STAGES = ENGINE_STAGES + ("compute",)


# ----------------------------------------------------------------------------- recording


def _stamp_key(stamp) -> tuple:
    return (int(stamp.sec), int(stamp.nanosec))


class Recorder:
    """Subscribes to the node's outputs in this process and writes them under ``out``."""

    MAX_FRAMES_KEPT = 400

    def __init__(self, node, out: Path) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from lfn_ros.msg import FlowTiming

        self.out = out
        self.index_of = {}      # stamp -> frame index (order of arrival on `image`)
        self.frames = {}        # index -> RGB (for the montage)
        self.colors = {}        # index -> flow colour
        self.occlusions = {}    # index -> mono8
        self.flow_stats = {}    # index -> (mean |flow|, max |flow|)
        self.previous = {}      # index -> index of the frame its flow starts from
        self.timings = []       # one dict per FlowTiming
        self.node_state = None
        self.last_output = None
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
        node.create_subscription(Image, "image", self._on_image, qos)
        node.create_subscription(Image, "flow", self._on_flow, qos)
        node.create_subscription(Image, "flow/color", self._on_color, qos)
        node.create_subscription(Image, "occlusion", self._on_occlusion, qos)
        node.create_subscription(FlowTiming, "flow/timing", self._on_timing, qos)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _index(self, msg) -> int:
        key = _stamp_key(msg.header.stamp)
        if key not in self.index_of:
            self.index_of[key] = len(self.index_of)
        return self.index_of[key]

    def _on_image(self, msg) -> None:
        from lfn_ros.nodes.image_msg import image_msg_to_rgb8

        index = self._index(msg)
        if len(self.frames) < self.MAX_FRAMES_KEPT:
            self.frames[index] = np.array(image_msg_to_rgb8(msg))

    def _on_flow(self, msg) -> None:
        from lfn_ros.nodes.image_msg import image_msg_to_array

        flow = image_msg_to_array(msg)
        magnitude = np.hypot(flow[..., 0], flow[..., 1])
        self.flow_stats[self._index(msg)] = (float(magnitude.mean()), float(magnitude.max()))
        self.last_output = time.monotonic()

    def _on_color(self, msg) -> None:
        from lfn_ros.io import write_image
        from lfn_ros.nodes.image_msg import image_msg_to_rgb8

        index = self._index(msg)
        rgb = np.array(image_msg_to_rgb8(msg))
        write_image(self.out / f"flow_{index:04d}.png", rgb)
        if len(self.colors) < self.MAX_FRAMES_KEPT:
            self.colors[index] = rgb

    def _on_occlusion(self, msg) -> None:
        from lfn_ros.io import write_image
        from lfn_ros.nodes.image_msg import image_msg_to_array

        index = self._index(msg)
        mask = np.array(image_msg_to_array(msg))
        write_image(self.out / f"occlusion_{index:04d}.png", mask)
        if len(self.occlusions) < self.MAX_FRAMES_KEPT:
            self.occlusions[index] = mask

    def _on_timing(self, msg) -> None:
        entry = {f"{stage}_ms": float(getattr(msg, f"{stage}_ms")) for stage in STAGES}
        entry.update(frame=self._index(msg), previous_frame=self.index_of.get(_stamp_key(msg.previous_stamp)),
                     latency_ms=float(msg.latency_ms), frames_processed=int(msg.frames_processed),
                     frames_dropped=int(msg.frames_dropped), device=msg.device, model=msg.model)
        self.timings.append(entry)
        if entry["previous_frame"] is not None:
            self.previous[entry["frame"]] = entry["previous_frame"]
        self.last_output = time.monotonic()

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith("flow_node"):
                values = {kv.key: kv.value for kv in status.values}
                self.node_state = values.get("state")


def _montage(recorder: Recorder, rows: int = 4) -> np.ndarray | None:
    import cv2

    from lfn_ros.io import color_wheel_legend

    indices = sorted(i for i in recorder.colors if i in recorder.frames)
    if not indices:
        return None
    if len(indices) > rows:
        picks = np.linspace(0, len(indices) - 1, rows).round().astype(int)
        indices = [indices[i] for i in sorted(set(picks))]
    lines = []
    for index in indices:
        frame = recorder.frames[index]
        color = recorder.colors[index].copy()
        occlusion = recorder.occlusions.get(index)
        occlusion = (cv2.cvtColor(occlusion, cv2.COLOR_GRAY2RGB) if occlusion is not None
                     else np.zeros_like(frame))
        legend = color_wheel_legend(48)
        color[4:52, -52:-4] = legend
        tiles = []
        for tile, label in ((frame, f"camera frame {index}"),
                            (color, f"flow {recorder.previous.get(index, '?')} -> {index}"),
                            (occlusion, "occlusion (white)")):
            tile = np.ascontiguousarray(tile)
            cv2.putText(tile, label, (6, tile.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(tile, label, (6, tile.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
        lines.append(np.hstack(tiles))
    return np.vstack(lines)


def summarize(recorder: Recorder, published: int) -> dict:
    """Timing summary (also written to timing.json)."""
    timings = recorder.timings
    summary = {
        "frames_published": published,
        "frames_received_by_recorder": len(recorder.index_of),
        "flows": len(timings),
        "frames_dropped": timings[-1]["frames_dropped"] if timings else 0,
        "device": timings[-1]["device"] if timings else "",
        "model": timings[-1]["model"] if timings else "",
        "stages_ms": {},
        "latency_ms": {},
        "flow_magnitude_px": {str(k): {"mean": v[0], "max": v[1]} for k, v in sorted(recorder.flow_stats.items())},
        "per_frame": timings,
    }
    for stage in STAGES:
        values = np.array([t[f"{stage}_ms"] for t in timings])
        if values.size:
            summary["stages_ms"][stage] = {"p50": float(np.median(values)), "mean": float(values.mean()),
                                           "max": float(values.max())}
    latencies = np.array([t["latency_ms"] for t in timings])
    if latencies.size:
        summary["latency_ms"] = {"p50": float(np.percentile(latencies, 50)),
                                 "p99": float(np.percentile(latencies, 99)), "max": float(latencies.max())}
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"device: {summary['device']}   model: {summary['model']}",
             f"frames published: {summary['frames_published']}   flows received: {summary['flows']}   "
             f"frames dropped by the node (latest-only): {summary['frames_dropped']}", "",
             f"{'stage':<12} {'p50 ms':>9} {'mean ms':>9} {'max ms':>9}"]
    for stage, row in summary["stages_ms"].items():
        lines.append(f"{stage:<12} {row['p50']:9.1f} {row['mean']:9.1f} {row['max']:9.1f}")
    if summary["latency_ms"]:
        lat = summary["latency_ms"]
        lines += ["", f"end-to-end latency (publish - image stamp): p50 {lat['p50']:.1f} ms, "
                      f"p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the command


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``run`` on an argparse subparsers object (lfn_ros/cli.py)."""
    parser = subparsers.add_parser(
        "run", help="demo: image_player + flow_node on the shipped sequence, record flow and timing",
        description=__doc__.split("\n\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_arguments(parser)
    parser.set_defaults(func=run_cli)
    return parser


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder")
    parser.add_argument("--frames", default="", help="folder of frames, video file or ROS 2 bag (default: the shipped sequence)")
    parser.add_argument("--topic", default="", help="with a bag: its image topic ('' = its only one)")
    parser.add_argument("--bag-rate", type=float, default=1.0, help="with a bag: speed factor of its recorded timing")
    parser.add_argument("--rate", type=float, default=5.0,
                        help="camera rate, Hz (a 2-core CPU computes a 320x240 frame in 50-110 ms on the default path, "
                             "docs/benchmarks.md; faster rates drop frames, latest-only)")
    parser.add_argument("--count", type=int, default=0, help="frames to play (0 = all)")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cuda falls back to the CPU)")
    parser.add_argument("--weights", default="default", help="'default' (shipped), '' (untrained) or a checkpoint path")
    parser.add_argument("--cpu-threads", type=int, default=0, help="torch CPU threads of the node (0 = the node's default: every core up to 4, else all but one)")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up after this many seconds")
    parser.add_argument("--quiet", action="store_true", help="hide the nodes' log output")


def _ros_environment() -> dict:
    """The loopback environment for the children, applied to this process too (the recorder)."""
    env = loopback_env()
    os.environ.update({k: env[k] for k in ("RMW_IMPLEMENTATION", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID")})
    if "FASTDDS_DEFAULT_PROFILES_FILE" in env:
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = env["FASTDDS_DEFAULT_PROFILES_FILE"]
    print(f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']} RMW_IMPLEMENTATION={env['RMW_IMPLEMENTATION']} "
          f"FASTDDS_DEFAULT_PROFILES_FILE={env.get('FASTDDS_DEFAULT_PROFILES_FILE', '(not found)')}", flush=True)
    return env


class DemoSession:
    """The recorder node in this process, the two child processes, and the timeout."""

    def __init__(self, args, out: Path, env: dict) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        from lfn_ros.nodes import runtime

        self.args, self.out, self.env = args, out, env
        self.context = Context()
        # No rclpy signal handlers: Ctrl-C raises KeyboardInterrupt here and the children stop.
        runtime.init(context=self.context)
        self.node = rclpy.create_node("lfn_ros_demo_recorder", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.recorder = Recorder(self.node, out)
        self.output = subprocess.DEVNULL if args.quiet else None
        self.processes: dict = {}
        self.started = time.monotonic()

    def spin_until(self, condition, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.05)
            if time.monotonic() - self.started > self.args.timeout:
                raise TimeoutError(f"demo did not finish within {self.args.timeout:g} s")
        return condition()

    def start_node(self, height: int, width: int) -> bool:
        """flow_node, warmed up at the camera's size before the first frame; False if it died."""
        a = self.args
        node = self.processes["flow_node"] = subprocess.Popen(node_command("flow_node", {
            "device": a.device, "weights": a.weights, "warmup": True, "warmup_height": height, "warmup_width": width,
            "cpu_threads": a.cpu_threads, "latency_budget_ms": 2000.0}), env=self.env, stdout=self.output, stderr=self.output)
        if not self.spin_until(lambda: self.recorder.node_state == "running" or node.poll() is not None, a.timeout):
            raise TimeoutError("flow_node did not become ready")
        if node.poll() is not None:
            print(f"lfn-ros run: flow_node exited with status {node.returncode}", file=sys.stderr)
            return False
        print(f"flow_node ready after {time.monotonic() - self.started:.1f} s; playing at {a.rate:g} Hz", flush=True)
        return True

    def play(self) -> int:
        """Play the camera, then let the node finish: every played frame after the first has its
        flow, or nothing new came for 10 s (the rest was dropped). Returns the frames played."""
        a = self.args
        from lfn_ros.bags import is_bag

        # A bag plays at its recorded timing times a speed factor, stamped when published (the
        # latency table measures from the stamp).
        bag = bool(a.frames) and is_bag(a.frames)
        player = self.processes["image_player"] = subprocess.Popen(node_command("image_player", {
            "source": a.frames, "rate": float(a.bag_rate if bag else a.rate), "bag_topic": a.topic, "restamp": True,
            "count": a.count, "frame_id": "camera", "wait_for_subscribers": 2, "wait_timeout": 30.0}),
            env=self.env, stdout=self.output, stderr=self.output)
        self.spin_until(lambda: player.poll() is not None, a.timeout)
        published = len(self.recorder.index_of)
        recorder, node = self.recorder, self.processes["flow_node"]

        def caught_up():
            done = recorder.timings and max(t["frame"] for t in recorder.timings) >= published - 1
            idle = recorder.last_output is not None and time.monotonic() - recorder.last_output > 10.0
            return done or idle or node.poll() is not None

        self.spin_until(caught_up, a.timeout)
        self.spin_until(lambda: False, 0.3)  # the last colour/occlusion messages
        return published

    def report(self, published: int) -> int:
        """timing.json, demo.png, the table; the exit status."""
        node_status = stop_process(self.processes["flow_node"])
        player = self.processes["image_player"]
        summary = summarize(self.recorder, published)
        summary.update(player_exit_status=player.returncode, node_exit_status=node_status,
                       seconds=time.monotonic() - self.started, rate_hz=self.args.rate)
        (self.out / "timing.json").write_text(json.dumps(summary, indent=2))
        montage = _montage(self.recorder)
        if montage is not None:
            from lfn_ros.io import write_image

            write_image(self.out / "demo.png", montage)
        print()
        print(format_summary(summary))
        print(f"\nwrote {len(self.recorder.colors)} flow_NNNN.png, {len(self.recorder.occlusions)} occlusion_NNNN.png, "
              f"demo.png and timing.json to {self.out}/ in {summary['seconds']:.1f} s")
        status = 0 if summary["flows"] > 0 and node_status == 0 and player.returncode == 0 else 1
        if status:
            print(f"lfn-ros run: FAILED (flows {summary['flows']}, flow_node exit {node_status}, "
                  f"image_player exit {player.returncode})", file=sys.stderr)
        return status

    def close(self) -> None:
        from lfn_ros.nodes import runtime

        for process in self.processes.values():
            stop_process(process)
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        runtime.shutdown(context=self.context)


def run_cli(args) -> int:
    """Run the demo; returns the exit status (0 = flow was produced and both nodes exited cleanly)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in list(out.glob("flow_*.png")) + list(out.glob("occlusion_*.png")):
        stale.unlink()
    env = _ros_environment()
    from lfn_ros.bags import is_bag, iter_bag_frames
    from lfn_ros.io.sources import iter_source

    try:
        if args.frames and is_bag(args.frames):
            first = next(iter_bag_frames(args.frames, args.topic)).rgb
        else:
            first = next(iter(iter_source(args.frames)))
    except (OSError, ValueError, RuntimeError, StopIteration) as exc:  # BagError is a RuntimeError
        print(f"lfn-ros run: cannot read frames from {args.frames or 'the shipped sequence'}: {exc}", file=sys.stderr)
        return 1
    session = DemoSession(args, out, env)
    try:
        if not session.start_node(*first.shape[:2]):
            return 1
        return session.report(session.play())
    except TimeoutError as exc:
        print(f"lfn-ros run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        session.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lfn_ros.demo", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_arguments(parser)
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
