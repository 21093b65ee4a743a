"""image_player: publish a folder of frames or a video file as a camera on ``image``.

Parameters (all read at start-up):

| name | default | meaning |
|---|---|---|
| source | "" | a folder of images (natural order), a video file (anything OpenCV reads), or "" for the demo sequence in lfn_ros/data/sequence |
| rate | 10.0 | frames per second |
| frame_id | camera | header.frame_id of every image |
| encoding | rgb8 | rgb8, bgr8 or mono8 |
| loop | false | start again at the end (forever, unless count is reached) |
| count | 0 | stop after this many frames; 0 = all frames (or forever with loop) |
| qos_reliability | reliable | publisher reliability: reliable or best_effort |
| qos_depth | 5 | publisher depth (keep last) |
| wait_for_subscribers | 0 | before the first frame, wait until the topic has this many subscribers |
| wait_timeout | 30.0 | give up waiting after this many seconds (and exit with status 1) |

Every image gets ``header.stamp`` = now (node clock) at publishing. The node exits (status 0)
after the last frame, unless ``loop`` is set. Ctrl-C / SIGTERM exit at once with status 0.

As a library, :func:`play_frames` publishes a list of arrays (used by tests), and
:func:`iter_source` / :func:`rgb_to_msg` read sources and convert frames without ROS spinning.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

NODE_NAME = "image_player"
ENCODINGS = ("rgb8", "bgr8", "mono8")
#: The demo sequence shipped with the package.
DEFAULT_SEQUENCE = Path(__file__).resolve().parent.parent / "data" / "sequence"


class SourceError(ValueError):
    """The source cannot be read (missing, empty, not images or video)."""


# ----------------------------------------------------------------------------- frames, no ROS


def _iter_folder(folder: Path) -> Iterator[np.ndarray]:
    from lfn_ros.io.images import list_frames, read_image

    frames = list_frames(folder)
    if not frames:
        raise SourceError(f"no image files in {folder}")
    for path in frames:
        yield read_image(path)


def _iter_video(path: Path) -> Iterator[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError(f"cannot open {path} as a video")
    try:
        produced = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            produced += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if produced == 0:
            raise SourceError(f"{path}: no frames could be decoded")
    finally:
        capture.release()


def iter_source(source: str | os.PathLike = "") -> Iterator[np.ndarray]:
    """One pass over a source's frames as (H, W, 3) uint8 RGB arrays.

    Args:
        source: a folder of images, a video file, or "" for the demo sequence.

    Raises:
        SourceError, FileNotFoundError: (when iteration starts) nothing usable at ``source``.
    """
    path = Path(source) if str(source) else DEFAULT_SEQUENCE
    if path.is_dir():
        return _iter_folder(path)
    if path.is_file():
        return _iter_video(path)
    raise FileNotFoundError(f"image_player source not found: {path}")


def rgb_to_msg(rgb: np.ndarray, encoding: str = "rgb8", header=None):
    """A sensor_msgs/Image of an (H, W, 3) uint8 RGB frame in ``encoding`` (rgb8, bgr8, mono8)."""
    from lfn_ros.io.image_msg import array_to_image_msg

    if encoding == "rgb8":
        pixels = rgb
    elif encoding == "bgr8":
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif encoding == "mono8":
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    else:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got '{encoding}'")
    return array_to_image_msg(pixels, encoding, header)


def _frames(source, loop: bool, count: int) -> Iterator[np.ndarray]:
    produced = 0
    while True:
        any_frame = False
        for rgb in iter_source(source):
            any_frame = True
            yield rgb
            produced += 1
            if count and produced >= count:
                return
        if not loop or not any_frame:
            return


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
                timeout: float = 30.0, stop: threading.Event | None = None) -> int:
    """Publish frames from a list (or any iterable) of RGB arrays on an existing node.

    Args:
        node: an rclpy Node (not spun by anybody else while this runs: it is spun here).
        frames: (H, W, 3) uint8 RGB arrays.
        topic, rate, frame_id, encoding: as the node's parameters.
        stamps: builtin_interfaces/Time (or rclpy Time) per frame; default: now at publishing.
        reliability, depth: publisher QoS.
        subscribers: wait until the topic has this many subscribers first (up to ``timeout`` s).
        stop: set it to stop early.

    Returns:
        The number of frames published.
    """
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    publisher = node.create_publisher(Image, topic, _publisher_qos(reliability, depth))
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        if subscribers and not wait_for_subscribers(node, publisher, subscribers, timeout, executor, stop):
            return 0
        period = 1.0 / rate
        next_time = time.monotonic()
        published = 0
        for index, rgb in enumerate(frames):
            if stop is not None and stop.is_set():
                break
            while True:  # keep the node responsive while waiting for the frame's time
                remaining = next_time - time.monotonic()
                if remaining <= 0:
                    break
                executor.spin_once(timeout_sec=min(remaining, 0.05))
            header = Header(frame_id=frame_id)
            if stamps is not None:
                stamp = stamps[index]
                header.stamp = stamp.to_msg() if hasattr(stamp, "to_msg") else stamp
            else:
                header.stamp = node.get_clock().now().to_msg()
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


def _declare(node):
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    def describe(text, low=None, high=None, floating=False):
        descriptor = ParameterDescriptor(description=text, read_only=True)
        if low is not None:
            if floating:
                descriptor.floating_point_range = [FloatingPointRange(from_value=low, to_value=high, step=0.0)]
            else:
                descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
        return descriptor

    specs = [
        ("source", "", describe("Folder of images, video file, or '' for the shipped demo sequence.")),
        ("rate", 10.0, describe("Frames per second.", 0.01, 10000.0, floating=True)),
        ("frame_id", "camera", describe("header.frame_id of the images.")),
        ("encoding", "rgb8", describe("Published encoding: rgb8, bgr8 or mono8.")),
        ("loop", False, describe("Start again at the end of the source.")),
        ("count", 0, describe("Stop after this many frames; 0 = the whole source (forever with loop).", 0, 2**31 - 1)),
        ("qos_reliability", "reliable", describe("Publisher reliability: reliable or best_effort.")),
        ("qos_depth", 5, describe("Publisher depth (keep last).", 1, 1000)),
        ("wait_for_subscribers", 0, describe("Wait for this many subscribers before the first frame.", 0, 1000)),
        ("wait_timeout", 30.0, describe("Seconds to wait for subscribers before giving up (exit 1).", 0.0, 86400.0, floating=True)),
    ]
    return {name: node.declare_parameter(name, default, descriptor).value for name, default, descriptor in specs}


def main(args=None) -> int:
    """Console script ``image_player``; exit status 0 when done or stopped, 1 on a bad source
    or when subscribers never came, 2 on bad parameters."""
    import rclpy
    from rclpy.logging import get_logger

    stop = threading.Event()

    def on_signal(signum, _frame):
        if stop.is_set():
            os._exit(128 + signum)
        stop.set()

    try:
        try:
            from rclpy.signals import SignalHandlerOptions

            rclpy.init(args=sys.argv if args is None else args, signal_handler_options=SignalHandlerOptions.NO)
        except ImportError:
            rclpy.init(args=sys.argv if args is None else args)
    except Exception as exc:
        print(f"[{NODE_NAME}] cannot initialise ROS (check the --ros-args): {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    status = 0
    node = None
    try:
        node = rclpy.create_node(NODE_NAME)
        p = _declare(node)
        if p["encoding"] not in ENCODINGS:
            raise ValueError(f"parameter encoding must be one of {', '.join(ENCODINGS)}, got '{p['encoding']}'")
        if p["qos_reliability"] not in ("reliable", "best_effort"):
            raise ValueError(f"parameter qos_reliability must be reliable or best_effort, got '{p['qos_reliability']}'")
    except Exception as exc:
        get_logger(NODE_NAME).error(f"bad parameters: {exc}")
        status = 2
    else:
        log = node.get_logger()
        source = p["source"] or str(DEFAULT_SEQUENCE)
        log.info(f"playing {source} on '{node.resolve_topic_name('image') if hasattr(node, 'resolve_topic_name') else 'image'}' "
                 f"at {p['rate']:g} Hz as {p['encoding']} (frame_id '{p['frame_id']}', loop {p['loop']}, count {p['count']})")
        try:
            frames = _frames(p["source"], p["loop"], p["count"])
            published = play_frames(
                node, frames, "image", rate=p["rate"], frame_id=p["frame_id"], encoding=p["encoding"],
                reliability=p["qos_reliability"], depth=p["qos_depth"],
                subscribers=p["wait_for_subscribers"], timeout=p["wait_timeout"], stop=stop)
        except (SourceError, FileNotFoundError, OSError, ValueError) as exc:
            log.error(f"cannot play {source}: {exc}")
            status = 1
        else:
            if published == 0 and p["wait_for_subscribers"] and not stop.is_set():
                log.error(f"no {p['wait_for_subscribers']} subscriber(s) on 'image' within {p['wait_timeout']:g} s")
                status = 1
            else:
                log.info(f"published {published} frames")
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
