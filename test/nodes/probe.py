#!/usr/bin/env python3
"""Checker process for the node integration tests (not a test module itself).

    python test/nodes/probe.py --out result.json SCENARIO [SCENARIO ...]

Runs the named scenarios in order against a flow_node (or image_player) running in another
process, on the ROS domain and transport given by the environment, and writes one JSON object:
``{scenario: {...observations...}}``. The pytest modules start the processes, run this, and
assert on the JSON. Observations are plain data (no asserts here), so a failed test shows what
was seen. A scenario that raises records ``{"error": "..."}`` and the next one still runs.

Scenarios against a flow_node: ready, basic, malformed, encodings, resolution, backwards,
params, diagnostics, compressed. Against an image_player: listen (and, with a node, record_bag). Against flow_odometry: odometry.
Self-contained: play_frames.
"""

from __future__ import annotations

import argparse
import array
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from lfn_ros.nodes import runtime  # noqa: E402
from lfn_ros.nodes.image_msg import array_to_image_msg  # noqa: E402
from lfn_ros.msg import FlowTiming  # noqa: E402

H, W = 96, 128
NODE = "flow_node"


def stamp_of(seconds: int):
    from builtin_interfaces.msg import Time

    return Time(sec=int(seconds), nanosec=0)


def key(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class Probe:
    def __init__(self) -> None:
        self.node = rclpy.create_node("probe")
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
        self.image_pub = self.node.create_publisher(Image, "image", reliable)
        self.compressed_pub = self.node.create_publisher(CompressedImage, "image/compressed", reliable)
        self.got = {name: [] for name in ("flow", "occlusion", "color", "points", "timing", "diagnostics", "image")}
        sub = self.node.create_subscription
        sub(Image, "flow", lambda m: self.got["flow"].append(m), reliable)
        sub(Image, "occlusion", lambda m: self.got["occlusion"].append(m), reliable)
        sub(Image, "flow/color", lambda m: self.got["color"].append(m), reliable)
        sub(PointCloud2, "flow/points", lambda m: self.got["points"].append(m), reliable)
        sub(FlowTiming, "flow/timing", lambda m: self.got["timing"].append(m), reliable)
        sub(DiagnosticArray, "/diagnostics", lambda m: self.got["diagnostics"].append(m), 10)
        self.rng = np.random.default_rng(0)
        self.texture = self.rng.integers(0, 256, size=(512, 512, 3), dtype=np.uint8)
        self.shift = 0

    # ------------------------------------------------------------------ plumbing
    def spin(self, seconds: float, until=None) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if until is not None and until():
                return True
            rclpy.spin_once(self.node, timeout_sec=0.02)
        return bool(until and until())

    def frame(self, h=H, w=W) -> np.ndarray:
        """A textured frame that moves 2 pixels right each call."""
        self.shift += 2
        return np.ascontiguousarray(self.texture[10:10 + h, 40 - self.shift % 40:40 - self.shift % 40 + w])

    def image(self, rgb, encoding: str, seconds: int, frame_id: str = "cam_test", pad: int = 0) -> Image:
        """An Image of an RGB frame in `encoding`, rows padded by `pad` bytes."""
        import cv2

        if encoding in ("rgb8",):
            pixels = rgb
        elif encoding in ("bgr8", "8UC3"):
            pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        elif encoding in ("mono8", "8UC1"):
            pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        elif encoding == "mono16":
            pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
        elif encoding == "bgra8":
            pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
        elif encoding == "rgba8":
            pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
        else:
            raise ValueError(encoding)
        msg = array_to_image_msg(pixels, encoding, Header(stamp=stamp_of(seconds), frame_id=frame_id))
        if pad:
            rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
            padded = np.full((msg.height, msg.step + pad), 0xEE, np.uint8)
            padded[:, :msg.step] = rows
            data = array.array("B")
            data.frombytes(padded.tobytes())
            msg.data = data
            msg.step += pad
        return msg

    def wait_subscribed(self, publisher, timeout: float = 30.0) -> bool:
        return self.spin(timeout, lambda: publisher.get_subscription_count() > 0)

    def flows_at(self, seconds: int) -> list:
        return [m for m in self.got["flow"] if key(m.header.stamp) == seconds]

    def send_and_wait(self, msg, expect_flow: bool, timeout: float = 30.0, settle: float = 1.0,
                      publisher=None) -> bool:
        """Publish; when a flow is expected wait for it (then a little for the other outputs),
        otherwise wait `settle` seconds. Returns whether a flow with the stamp arrived."""
        seconds = key(msg.header.stamp)
        (publisher or self.image_pub).publish(msg)
        if expect_flow:
            ok = self.spin(timeout, lambda: bool(self.flows_at(seconds)))
            self.spin(0.4)
            return ok
        self.spin(settle)
        return bool(self.flows_at(seconds))

    def outputs_at(self, seconds: int) -> dict:
        """Everything published for one stamp, as plain data."""
        def header(m):
            return {"stamp": key(m.header.stamp), "frame_id": m.header.frame_id}

        result = {}
        for m in self.got["flow"]:
            if key(m.header.stamp) == seconds:
                flow = np.frombuffer(m.data, np.float32).reshape(m.height, m.width, 2)
                result["flow"] = dict(header(m), encoding=m.encoding, height=m.height, width=m.width,
                                      step=m.step, bytes=len(m.data), finite=bool(np.isfinite(flow).all()))
        for m in self.got["occlusion"]:
            if key(m.header.stamp) == seconds:
                values = set(np.unique(np.frombuffer(m.data, np.uint8)).tolist())
                result["occlusion"] = dict(header(m), encoding=m.encoding, height=m.height, width=m.width,
                                           values=sorted(values))
        for m in self.got["color"]:
            if key(m.header.stamp) == seconds:
                result["color"] = dict(header(m), encoding=m.encoding, height=m.height, width=m.width)
        for m in self.got["points"]:
            if key(m.header.stamp) == seconds:
                result["points"] = dict(header(m), fields=[f.name for f in m.fields], height=m.height,
                                        width=m.width, point_step=m.point_step, bytes=len(m.data))
        for m in self.got["timing"]:
            if key(m.header.stamp) == seconds:
                result["timing"] = dict(header(m), previous_stamp=key(m.previous_stamp),
                                        compute_ms=m.compute_ms, decoder_ms=m.decoder_ms, refine_ms=m.refine_ms,
                                        latency_ms=m.latency_ms, frames_processed=m.frames_processed,
                                        frames_dropped=m.frames_dropped, device=m.device, model=m.model)
        return result

    def last_status(self):
        for array_msg in reversed(self.got["diagnostics"]):
            for status in array_msg.status:
                if status.name.startswith(NODE):
                    return status
        return None

    # ------------------------------------------------------------------ scenarios
    def ready(self) -> dict:
        got = self.spin(60, lambda: (s := self.last_status()) is not None and
                        {kv.key: kv.value for kv in s.values}.get("state") == "running")
        subscribed = self.wait_subscribed(self.image_pub, 30)
        return {"running": got, "subscribed": subscribed}

    def sequence(self, stamps, encoding="rgb8", h=H, w=W, frame_id="cam_test", expect=None, pad=0) -> dict:
        """Send frames in lock step. expect[i]: whether frame i should produce a flow."""
        sent = []
        for i, seconds in enumerate(stamps):
            expected = expect[i] if expect is not None else i > 0
            arrived = self.send_and_wait(self.image(self.frame(h, w), encoding, seconds, frame_id, pad), expected)
            sent.append({"stamp": seconds, "expected": expected, "arrived": arrived,
                         "outputs": self.outputs_at(seconds)})
        return {"frames": sent}

    def basic(self) -> dict:
        return self.sequence([1000, 1001, 1002, 1003], frame_id="cam_basic")

    def malformed(self) -> dict:
        good0 = self.sequence([2000], expect=[True])  # continues basic's sequence
        bad = {}
        short = self.image(self.frame(), "rgb8", 2001)
        short.data = short.data[: len(short.data) // 2]
        narrow = self.image(self.frame(), "rgb8", 2002)
        narrow.step = W * 3 - 1
        unknown = self.image(self.frame(), "rgb8", 2003)
        unknown.encoding = "yuv_unknown"
        empty = Image(header=Header(stamp=stamp_of(2004), frame_id="cam_test"), height=0, width=0,
                      encoding="rgb8", step=0)
        tiny = self.image(self.frame(16, 16), "rgb8", 2005)
        for name, msg in (("short_data", short), ("step_too_small", narrow), ("unknown_encoding", unknown),
                          ("zero_size", empty), ("too_small_for_network", tiny)):
            bad[name] = self.send_and_wait(msg, expect_flow=False, settle=0.5)
        good1 = self.sequence([2010, 2011], expect=[True, True])
        return {"before": good0, "bad_produced_flow": bad, "after": good1}

    def encodings(self) -> dict:
        results = {}
        seconds = 3000
        for encoding in ("bgr8", "mono8", "mono16", "bgra8", "rgba8", "8UC1", "8UC3", "rgb8"):
            results[encoding] = self.sequence([seconds, seconds + 1], encoding=encoding, pad=6)
            seconds += 10
        return results

    def resolution(self) -> dict:
        return self.sequence([4000, 4001, 4002], h=64, w=96)

    def backwards(self) -> dict:
        # Back to H x W (a resolution change: no flow for 5000), then time goes backwards.
        result = self.sequence([5000, 5001, 4500, 4501], expect=[False, True, False, True])
        # The same stamp again (not after the previous one) also starts a new sequence.
        self.send_and_wait(self.image(self.frame(), "rgb8", 4501), expect_flow=False)
        result["repeated_stamp_flows"] = len(self.flows_at(4501))
        return result

    def params(self) -> dict:
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        client = self.node.create_client(SetParameters, f"/{NODE}/set_parameters")
        if not client.wait_for_service(timeout_sec=20):
            return {"error": "no set_parameters service"}

        def set_param(name, kind, value):
            pv = ParameterValue(type=kind)
            field = {ParameterType.PARAMETER_INTEGER: "integer_value", ParameterType.PARAMETER_BOOL: "bool_value",
                     ParameterType.PARAMETER_STRING: "string_value", ParameterType.PARAMETER_DOUBLE: "double_value"}[kind]
            setattr(pv, field, value)
            future = client.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=pv)]))
            self.spin(10, future.done)
            result = future.result().results[0]
            return {"successful": result.successful, "reason": result.reason}

        out = {
            "points_stride_4": set_param("points_stride", ParameterType.PARAMETER_INTEGER, 4),
            "points_stride_0": set_param("points_stride", ParameterType.PARAMETER_INTEGER, 0),
            "device_readonly": set_param("device", ParameterType.PARAMETER_STRING, "cpu"),
            "budget_negative": set_param("latency_budget_ms", ParameterType.PARAMETER_DOUBLE, -1.0),
            "budget_string": set_param("latency_budget_ms", ParameterType.PARAMETER_STRING, "fast"),
            "color_off": set_param("publish_color", ParameterType.PARAMETER_BOOL, False),
            "refinement_bad": set_param("refinement", ParameterType.PARAMETER_STRING, "bilateral"),
            "refinement_none": set_param("refinement", ParameterType.PARAMETER_STRING, "none"),
        }
        out["after"] = self.sequence([6000, 6001], expect=[True, True])
        out["color_on"] = set_param("publish_color", ParameterType.PARAMETER_BOOL, True)
        out["refinement_on"] = set_param("refinement", ParameterType.PARAMETER_STRING, "variational")
        self.node.destroy_client(client)
        return out

    def diagnostics(self) -> dict:
        count = len(self.got["diagnostics"])
        self.spin(5, lambda: len(self.got["diagnostics"]) > count)
        status = self.last_status()
        if status is None:
            return {"received": False}
        return {"received": True, "level": int.from_bytes(status.level, "little") if isinstance(status.level, bytes)
                else int(status.level), "name": status.name, "message": status.message,
                "hardware_id": status.hardware_id, "values": {kv.key: kv.value for kv in status.values},
                "arrays": len(self.got["diagnostics"])}

    def flood(self, seconds: float = 8.0, rate: float = 100.0) -> dict:
        """A camera far faster than the engine (``rate`` Hz, not lock step) for ``seconds``: the
        mode of every published frame (flow/timing's model), then the diagnostics."""
        first = len(self.got["timing"])
        start, sent = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            self.image_pub.publish(self.image(self.frame(), "rgb8", 9000 + sent))
            sent += 1
            self.spin(1.0 / rate)
        self.spin(3.0)
        return {"sent": sent, "models": [m.model for m in self.got["timing"][first:]], "diagnostics": self.diagnostics()}

    def stale(self) -> dict:
        """Diagnostics go to ERROR when no flow was produced for stale_timeout seconds."""
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        client = self.node.create_client(SetParameters, f"/{NODE}/set_parameters")
        client.wait_for_service(timeout_sec=20)
        value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=0.5)
        future = client.call_async(SetParameters.Request(parameters=[Parameter(name="stale_timeout", value=value)]))
        self.spin(10, future.done)
        self.spin(2.5)
        return self.diagnostics()

    def compressed(self) -> dict:
        import cv2

        self.spin(60, lambda: (s := self.last_status()) is not None and
                  {kv.key: kv.value for kv in s.values}.get("state") == "running")
        subscribed = self.wait_subscribed(self.compressed_pub, 30)
        frames = []
        for i, seconds in enumerate((7000, 7001, 7002)):
            rgb = self.frame()
            ok, encoded = cv2.imencode(".png" if i % 2 else ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            msg = CompressedImage(header=Header(stamp=stamp_of(seconds), frame_id="cam_z"),
                                  format="png" if i % 2 else "jpeg")
            data = array.array("B")
            data.frombytes(encoded.tobytes())
            msg.data = data
            arrived = self.send_and_wait(msg, expect_flow=i > 0, publisher=self.compressed_pub)
            frames.append({"stamp": seconds, "arrived": arrived, "outputs": self.outputs_at(seconds)})
        return {"subscribed": subscribed, "frames": frames}

    def listen(self) -> dict:
        """Record images on `image` until 2 s pass without one (image_player tests)."""
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
        self.node.create_subscription(Image, "image", lambda m: self.got["image"].append(m), reliable)
        self.spin(30, lambda: bool(self.got["image"]))
        while True:
            count = len(self.got["image"])
            self.spin(2.0)
            if len(self.got["image"]) == count:
                break
        return {"images": [{"stamp": key(m.header.stamp), "frame_id": m.header.frame_id, "encoding": m.encoding,
                            "height": m.height, "width": m.width, "step": m.step, "bytes": len(m.data)}
                           for m in self.got["image"]]}

    def record_bag(self) -> dict:
        """Record `image` (the player's camera) into the MCAP bag $LFN_ROS_PROBE_BAG with rosbags,
        serialised by rclpy itself, and keep the live node's `flow` per stamp as .npy beside it,
        until 3 s pass without an image or a flow (issue 18: the bag then goes through lfn-ros infer)."""
        import os

        from rclpy.serialization import serialize_message
        from rosbags.rosbag2 import StoragePlugin, Writer

        from lfn_ros.bags import IMAGE, typestore
        from lfn_ros.nodes.image_msg import image_msg_to_array

        path = Path(os.environ["LFN_ROS_PROBE_BAG"])
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
        images = []
        self.node.create_subscription(Image, "image", lambda m: images.append((time.time_ns(), m)), reliable)
        self.spin(60, lambda: bool(images))
        while True:
            count = len(images) + len(self.got["flow"])
            self.spin(3.0)
            if len(images) + len(self.got["flow"]) == count:
                break
        with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
            connection = writer.add_connection("/camera/image_raw", IMAGE, typestore=typestore())
            for received, msg in images:
                writer.write(connection, received, serialize_message(msg))
        flows = path.with_name(path.name + "_flows")
        flows.mkdir()
        for msg in self.got["flow"]:
            np.save(flows / f"{msg.header.stamp.sec}_{msg.header.stamp.nanosec:09d}.npy", np.array(image_msg_to_array(msg)))
        return {"images": len(images), "flows": len(self.got["flow"])}

    def odometry(self) -> dict:
        """Against a flow_odometry node: exact flows of a rendered street turn (3 degrees per frame)
        as flow / occlusion / flow/timing; one frame before camera_info and one degenerate (zero
        flow) frame. Returns the twists and odometry received, by stamp."""
        from geometry_msgs.msg import TwistStamped
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import CameraInfo

        from lfn_ros.data.scenes3d import render_sequence

        sequence = render_sequence("street", "turn", 4, seed=2)
        camera = sequence["camera"]
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
        pubs = {"flow": self.node.create_publisher(Image, "flow", reliable),
                "occlusion": self.node.create_publisher(Image, "occlusion", reliable),
                "timing": self.node.create_publisher(FlowTiming, "flow/timing", reliable),
                "info": self.node.create_publisher(CameraInfo, "camera_info", reliable)}
        twists, odometry = [], []
        self.node.create_subscription(TwistStamped, "odometry/twist", twists.append, reliable)
        self.node.create_subscription(Odometry, "odometry", odometry.append, reliable)
        self.spin(30, lambda: all(p.get_subscription_count() > 0 for p in pubs.values()))

        def send(seconds, flow, occlusion):
            header = Header(stamp=stamp_of(seconds), frame_id="cam_odo")
            pubs["occlusion"].publish(array_to_image_msg(occlusion.astype(np.uint8) * 255, "mono8", header))
            pubs["flow"].publish(array_to_image_msg(flow.astype(np.float32), "32FC2", header))
            pubs["timing"].publish(FlowTiming(header=header, previous_stamp=stamp_of(seconds - 1)))
            self.spin(1.5)

        first = sequence["pairs"][0]
        send(10, first["flow"], first["occlusion"])  # no camera_info yet: nothing
        info = CameraInfo(width=camera.width, height=camera.height)
        info.k = [float(v) for v in camera.K.ravel()]
        pubs["info"].publish(info)
        self.spin(0.5)
        for i, pair in enumerate(sequence["pairs"]):
            send(11 + i, pair["flow"], pair["occlusion"])
        send(20, np.zeros_like(first["flow"]), np.zeros(first["flow"].shape[:2], bool))  # degenerate
        self.spin(1.0)
        return {"twists": [{"stamp": key(t.header.stamp), "angular": [t.twist.angular.x, t.twist.angular.y, t.twist.angular.z],
                            "linear": [t.twist.linear.x, t.twist.linear.y, t.twist.linear.z]} for t in twists],
                "odometry": [{"stamp": key(o.header.stamp), "frame_id": o.header.frame_id, "child": o.child_frame_id,
                              "position": [o.pose.pose.position.x, o.pose.pose.position.y, o.pose.pose.position.z]}
                             for o in odometry],
                "true_yaw_rate": float(np.radians(3.0))}

    def play_frames(self) -> dict:
        """lfn_ros.nodes.image_player.play_frames, received by this same process."""
        from lfn_ros.nodes.image_player import play_frames

        got = []
        sub = self.node.create_subscription(Image, "image", got.append, 10)
        frames = [np.full((48, 64, 3), i * 40, np.uint8) for i in range(4)]
        stamps = [stamp_of(100 + i) for i in range(4)]
        published = play_frames(self.node, frames, rate=50.0, frame_id="cam_lib", encoding="mono8",
                                stamps=stamps, subscribers=1, timeout=20.0)
        self.spin(1.0, lambda: len(got) >= 4)
        self.node.destroy_subscription(sub)
        return {"published": published,
                "received": [{"stamp": key(m.header.stamp), "frame_id": m.header.frame_id, "encoding": m.encoding,
                              "first_byte": m.data[0]} for m in got]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("scenarios", nargs="+")
    args = parser.parse_args()
    runtime.init()
    probe = Probe()
    results = {}
    for name in args.scenarios:
        t0 = time.monotonic()
        try:
            results[name] = getattr(probe, name)()
        except Exception as exc:  # record, keep going
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        results[name]["seconds"] = round(time.monotonic() - t0, 2)
        Path(args.out).write_text(json.dumps(results, indent=1))
    probe.node.destroy_node()
    runtime.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
