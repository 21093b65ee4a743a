"""image_player: publish a folder of frames, a video file or a ROS 2 bag as a camera on ``image``.

Parameters (all read at start-up; the table with ranges is PLAYER_PARAMETERS in
lfn_ros/nodes/parameters.py and docs/ros_api.md): source, rate, bag_topic, frame_id, encoding,
loop, count, qos_reliability, qos_depth, wait_for_subscribers, wait_timeout.

Every image of a folder or video gets ``header.stamp`` = now (node clock) at publishing, at
``rate`` frames per second. A bag plays with its recorded timing (divided by ``rate``, a speed
factor as in ``ros2 bag play --rate``) and its recorded headers. The node exits (status 0)
after the last frame, unless ``loop`` is set. Ctrl-C / SIGTERM exit at once with status 0.

As a library, :func:`play_frames` publishes a list of arrays on an existing node (tests, the
load benchmark). Frame sources are lfn_ros.io.sources.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from lfn_ros.io.sources import SourceError, iter_frames
from lfn_ros.nodes.parameters import PLAYER_ENCODINGS as ENCODINGS
from lfn_ros.nodes.parameters import PLAYER_PARAMETERS, check_start_values
from lfn_ros.resources import SEQUENCE_DIR

NODE_NAME = "image_player"


def camera_info_msg(path: str):
    """A sensor_msgs/CameraInfo from a camera_info YAML (image_width, image_height, k, and d /
    distortion_model / r / p when present; p defaults to [K | 0], r to the identity)."""
    import yaml
    from sensor_msgs.msg import CameraInfo

    values = yaml.safe_load(Path(path).read_text()) or {}
    msg = CameraInfo()
    msg.width, msg.height = int(values["image_width"]), int(values["image_height"])
    k = [float(v) for v in (values["k"]["data"] if isinstance(values["k"], dict) else values["k"])]
    if len(k) != 9:
        raise ValueError(f"{path}: k must have 9 values, got {len(k)}")
    msg.k = k
    msg.d = [float(v) for v in values.get("d", [])]
    msg.distortion_model = values.get("distortion_model", "plumb_bob")
    msg.r = [float(v) for v in values.get("r", [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])]
    msg.p = [float(v) for v in values.get("p", k[:3] + [0.0] + k[3:6] + [0.0] + k[6:9] + [0.0])]
    return msg


def rgb_to_msg(rgb: np.ndarray, encoding: str = "rgb8", header=None):
    """A sensor_msgs/Image of an (H, W, 3) uint8 RGB frame in ``encoding`` (rgb8, bgr8, mono8)."""
    from lfn_ros.nodes.image_msg import array_to_image_msg

    if encoding == "rgb8":
        pixels = rgb
    elif encoding == "bgr8":
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif encoding == "mono8":
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    else:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got '{encoding}'")
    return array_to_image_msg(pixels, encoding, header)


# ----------------------------------------------------------------------------- ROS


def _publisher_qos(reliability: str, depth: int):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE,
                      reliability=(ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort"
                                   else ReliabilityPolicy.RELIABLE))


def wait_for_subscribers(node, publisher, count: int, timeout: float, executor=None,
                         stop: threading.Event | None = None) -> bool:
    """Spin until ``publisher`` has ``count`` subscribers; False on timeout or stop."""
    deadline = time.monotonic() + timeout
    while publisher.get_subscription_count() < count:
        if time.monotonic() > deadline or (stop is not None and stop.is_set()):
            return False
        if executor is not None:
            executor.spin_once(timeout_sec=0.05)
        else:
            time.sleep(0.05)
    return True


def play_frames(node, frames: Iterable[np.ndarray], topic: str = "image", rate: float = 10.0,
                frame_id: str = "camera", encoding: str = "rgb8", stamps: Sequence | None = None,
                reliability: str = "reliable", depth: int = 5, subscribers: int = 0,
                timeout: float = 30.0, stop: threading.Event | None = None, restamp: bool = False,
                camera_info=None) -> int:
    """Publish frames from a list (or any iterable) of RGB arrays on an existing node.

    Args:
        node: an rclpy Node (not spun by anybody else while this runs: it is spun here).
        frames: (H, W, 3) uint8 RGB arrays, or lfn_ros.bags.BagFrame (recorded time and header).
        topic, rate, frame_id, encoding: as the node's parameters.
        stamps: builtin_interfaces/Time (or rclpy Time) per frame; default: now at publishing.
        reliability, depth: publisher QoS.
        subscribers: wait until the topic has this many subscribers first (up to ``timeout`` s).
        stop: set it to stop early.
        restamp: a bag's frames get "now" as their stamp instead of the recorded one.
        camera_info: a sensor_msgs/CameraInfo published on ``camera_info`` with every image.

    Returns:
        The number of frames published.
    """
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from lfn_ros.bags import BagFrame

    from sensor_msgs.msg import CameraInfo

    publisher = node.create_publisher(Image, topic, _publisher_qos(reliability, depth))
    info_publisher = node.create_publisher(CameraInfo, "camera_info", _publisher_qos(reliability, depth)) if camera_info else None
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        if subscribers and not wait_for_subscribers(node, publisher, subscribers, timeout, executor, stop):
            return 0
        period = 1.0 / rate
        next_time = start = time.monotonic()
        last_at = 0.0
        published = 0
        for index, rgb in enumerate(frames):
            if stop is not None and stop.is_set():
                break
            recorded = rgb if isinstance(rgb, BagFrame) else None
            if recorded is not None:  # a bag's frame: its own time (scaled by rate) and header
                if recorded.at < last_at:  # the bag starts again (loop): so does its clock
                    start = time.monotonic()
                rgb, next_time, last_at = recorded.rgb, start + recorded.at / rate, recorded.at
            while True:  # keep the node responsive while waiting for the frame's time
                remaining = next_time - time.monotonic()
                if remaining <= 0:
                    break
                executor.spin_once(timeout_sec=min(remaining, 0.05))
            header = Header(frame_id=frame_id)
            if recorded is not None:
                header.frame_id = recorded.header.frame_id
                if restamp:
                    header.stamp = node.get_clock().now().to_msg()
                else:
                    header.stamp.sec, header.stamp.nanosec = int(recorded.header.stamp.sec), int(recorded.header.stamp.nanosec)
            elif stamps is not None:
                stamp = stamps[index]
                header.stamp = stamp.to_msg() if hasattr(stamp, "to_msg") else stamp
            else:
                header.stamp = node.get_clock().now().to_msg()
            if info_publisher is not None:  # before the image: a consumer has the intrinsics first
                camera_info.header = header
                info_publisher.publish(camera_info)
            publisher.publish(rgb_to_msg(rgb, encoding, header))
            published += 1
            next_time += period
            if next_time < time.monotonic() - period:  # fell behind (slow source): do not burst
                next_time = time.monotonic()
        # Give reliable transport a moment to deliver the last frame before the caller tears down.
        end = time.monotonic() + min(0.3, period)
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        return published
    finally:
        executor.remove_node(node)
        node.destroy_publisher(publisher)
        if info_publisher is not None:
            node.destroy_publisher(info_publisher)


def main(args=None) -> int:
    """Console script ``image_player``; exit status 0 when done or stopped, 1 on a bad source
    or when subscribers never came, 2 on bad parameters."""
    import rclpy
    from rclpy.logging import get_logger

    from lfn_ros.nodes import runtime

    stop = threading.Event()
    if not runtime.init_or_report(NODE_NAME, args):
        return 2
    runtime.install_stop_handlers(stop)
    status = 0
    node = None
    try:
        node = rclpy.create_node(NODE_NAME)
        p = runtime.declare_parameters(node, PLAYER_PARAMETERS)
        problem = check_start_values(p, PLAYER_PARAMETERS)
        if problem:
            raise ValueError(problem)
    except Exception as exc:  # rclpy's parameter exceptions (wrong type, out of range) and ours
        get_logger(NODE_NAME).error(f"bad parameters: {exc}")
        status = 2
    else:
        status = _play(node, p, stop)
    finally:
        if node is not None:
            node.destroy_node()
        runtime.shutdown()
    return status


def player_frames(p: dict):
    """The frames the parameters ``p`` ask for: a bag's (BagFrame, looped and counted as the
    others), else lfn_ros.io.sources' arrays."""
    from itertools import islice

    from lfn_ros.bags import is_bag, iter_bag_frames

    if not (p["source"] and is_bag(p["source"])):
        return iter_frames(p["source"], p["loop"], p["count"])

    def bag_frames():
        while True:
            yield from iter_bag_frames(p["source"], p["bag_topic"])
            if not p["loop"]:
                return
    return islice(bag_frames(), p["count"] or None)


def _play(node, p: dict, stop: threading.Event) -> int:
    log = node.get_logger()
    source = p["source"] or str(SEQUENCE_DIR)
    log.info(f"playing {source} on '{node.resolve_topic_name('image') if hasattr(node, 'resolve_topic_name') else 'image'}' "
             f"at {p['rate']:g} Hz as {p['encoding']} (frame_id '{p['frame_id']}', loop {p['loop']}, count {p['count']})")
    try:
        published = play_frames(
            node, player_frames(p), "image", rate=p["rate"], frame_id=p["frame_id"],
            encoding=p["encoding"], reliability=p["qos_reliability"], depth=p["qos_depth"],
            subscribers=p["wait_for_subscribers"], timeout=p["wait_timeout"], stop=stop, restamp=p["restamp"],
            camera_info=camera_info_msg(p["camera_info"]) if p["camera_info"] else None)
    except (SourceError, FileNotFoundError, OSError, ValueError, KeyError, RuntimeError) as exc:  # BagError: RuntimeError
        log.error(f"cannot play {source}: {exc}")
        return 1
    if published == 0 and p["wait_for_subscribers"] and not stop.is_set():
        log.error(f"no {p['wait_for_subscribers']} subscriber(s) on 'image' within {p['wait_timeout']:g} s")
        return 1
    log.info(f"published {published} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
