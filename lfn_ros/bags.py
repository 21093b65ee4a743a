"""Flow over recorded ROS 2 bags, without a ROS install (issue 18): read a camera topic from a bag
(sqlite3 or MCAP), run the engine as the node does, write the node's topics into a new bag.

    lfn-ros infer BAG --topic /camera/image_raw --out OUT_BAG [--storage mcap|sqlite3]
                  [--color] [--copy-input]

Reading and writing use ``rosbags`` (pure Python; message definitions from the bag itself, else
ROS 2 Humble's, which Jazzy and Kilted share for sensor_msgs/Image and CompressedImage). The output
holds what flow_node publishes, with the input message's header (docs/ros_api.md):

    /flow           sensor_msgs/Image 32FC2   previous -> current frame, pixels
    /occlusion      sensor_msgs/Image mono8   255 where a pixel of the previous frame has no match
    /flow/color     sensor_msgs/Image rgb8    with --color
    /flow/timing    lfn_ros/msg/FlowTiming    its definition travels in the bag
    <topic>         the input, with --copy-input

Each output message is recorded at the input message's log time. The engine behaves as in the
node: the first frame, a resolution change and a stamp that goes backwards start a new sequence
(nothing is published for that frame); a message that cannot be converted is counted, logged
(the first few, then a summary) and skipped. Ctrl-C stops after the current frame and closes the
bag, so what was done stays readable.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .engine.types import STAGES
from .io.color import flow_to_color
from .io.image_encoding import ImageMsgError, compressed_msg_to_rgb8, image_msg_to_rgb8, image_payload
from .resources import flow_timing_definition

log = logging.getLogger(__name__)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
FLOW_TIMING = "lfn_ros/msg/FlowTiming"
STORAGES = ("mcap", "sqlite3")
#: Bad messages logged one by one before only the count is kept.
LOGGED_BAD_MESSAGES = 5


class BagError(RuntimeError):
    """A bag cannot be read or written as asked (missing, not a bag, no such topic)."""


def typestore():
    """rosbags' ROS 2 Humble types plus lfn_ros/msg/FlowTiming from msg/FlowTiming.msg."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    store.register(get_types_from_msg(flow_timing_definition().read_text(), FLOW_TIMING))
    return store


def is_bag(path) -> bool:
    """A ROS 2 bag: a folder with metadata.yaml, or an .mcap / .db3 file."""
    path = Path(path)
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or (path.is_file() and path.suffix in (".mcap", ".db3"))


def open_reader(path):
    """An opened rosbags AnyReader of ``path`` (call ``.close()``, or use it as a context).

    A bag folder whose metadata.yaml describes its topics differently from its storage files (other
    QoS strings: rosbag2's own test bags, written by ``ros2 bag record``, are such bags) reads as
    empty through rosbags' folder reader, which matches the two by QoS too. Such a bag is read from
    its storage files, whose topic records rosbag2's own reader uses (see :func:`_storage_files`)."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    reader = _open_any([path])
    if path.is_dir() and _loses_messages(reader):
        files = _storage_files(path)
        reader.close()
        log.warning("%s: metadata.yaml and its storage describe the topics differently (their QoS); reading %s directly",
                    path, ", ".join(f.name for f in files))
        reader = _open_any(files)
    return reader


def _open_any(paths):
    from rosbags.highlevel import AnyReader

    try:
        reader = AnyReader(paths, default_typestore=typestore())
        reader.open()
    except Exception as exc:  # rosbags raises its own errors for a missing metadata.yaml, a torn file, ...
        raise BagError(f"{paths[0]} cannot be read as a ROS 2 bag: {type(exc).__name__}: "
                       f"{str(exc).splitlines()[0][:200]}") from exc
    return reader


def _loses_messages(reader) -> bool:
    """Whether a topic that metadata.yaml says has messages yields none (one message read per topic)."""
    return any(next(iter(reader.messages(connections=[c])), None) is None for c in reader.connections if c.msgcount)


def _storage_files(folder: Path) -> list[Path]:
    """The storage files that ``folder``'s metadata.yaml lists, in order; BagError for a bag whose
    messages are compressed one by one (only the folder reader can decompress them)."""
    import yaml

    info = yaml.safe_load((folder / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    if info.get("compression_mode") == "message":
        raise BagError(f"{folder}: metadata.yaml and its storage disagree on the topics, and its messages are "
                       "compressed one by one: rewrite it with `ros2 bag convert` or rosbags-convert")
    suffix = {"mcap": ".mcap", "sqlite3": ".db3"}.get(info.get("storage_identifier", ""), "")
    files = [folder / Path(name).name for name in info.get("relative_file_paths", [])]
    return [f.with_name(f.name + suffix) if suffix and f.suffix != suffix else f for f in files]


def image_connections(reader, topic: str) -> list:
    """The connections of ``topic`` (Image or CompressedImage); BagError naming the image topics
    present (and the others) when it has none."""
    found = [c for c in reader.connections if c.topic == topic]
    if found and all(c.msgtype in (IMAGE, COMPRESSED) for c in found):
        return found
    images = sorted({f"{c.topic} ({c.msgtype.split('/')[-1]})" for c in reader.connections if c.msgtype in (IMAGE, COMPRESSED)})
    others = sorted({c.topic for c in reader.connections if c.msgtype not in (IMAGE, COMPRESSED)})
    what = f"is a {found[0].msgtype}, not an image" if found else "is not in the bag"
    raise BagError(f"topic {topic} {what}; image topics in the bag: {', '.join(images) or 'none'}"
                   + (f"; other topics: {', '.join(others)}" if others else ""))


def message_rgb(msg, msgtype: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an Image or CompressedImage message, as the node converts it
    (writable: a view of the bag's read-only buffer is copied)."""
    rgb = compressed_msg_to_rgb8(msg) if msgtype == COMPRESSED else image_msg_to_rgb8(msg)
    return np.require(rgb, requirements=["W"])


def numpy_payload(array: np.ndarray, encoding: str) -> dict:
    """:func:`image_payload` with ``data`` as the uint8 numpy array rosbags serialises."""
    payload = image_payload(array, encoding)
    payload["data"] = np.frombuffer(payload["data"], np.uint8)
    return payload


def stamp_seconds(header) -> float:
    return int(header.stamp.sec) + int(header.stamp.nanosec) * 1e-9


@dataclass
class BagCounts:
    """What happened to the input messages: ``read = published + first + bad``."""

    read: int = 0
    published: int = 0
    first: int = 0  # frames that started a sequence (start, resolution change, stamp backwards)
    bad: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    errors: list = field(default_factory=list)


class FlowBagWriter:
    """The output bag: its connections and one method per published message."""

    def __init__(self, path, storage: str, store, color: bool, input_connection=None) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise BagError(f"storage must be one of {STORAGES}, got {storage!r}")
        path = Path(path)
        if path.exists():
            raise BagError(f"output bag {path} exists already: choose another --out or remove it")
        self.store = store
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(path, version=8, storage_plugin=plugin)
        self.writer.open()
        image = self.store.types[IMAGE].__msgtype__
        self.flow = self.writer.add_connection("/flow", image, typestore=store)
        self.occlusion = self.writer.add_connection("/occlusion", image, typestore=store)
        self.color = self.writer.add_connection("/flow/color", image, typestore=store) if color else None
        self.timing = self.writer.add_connection("/flow/timing", FLOW_TIMING, typestore=store)
        self.input = None
        if input_connection is not None:
            self.input = self.writer.add_connection(input_connection.topic, input_connection.msgtype, typestore=store)

    def _image(self, array: np.ndarray, encoding: str, header):
        return self.store.types[IMAGE](header=header, **numpy_payload(array, encoding))

    def _write(self, connection, msg, msgtype: str, timestamp: int) -> None:
        self.writer.write(connection, timestamp, self.store.serialize_cdr(msg, msgtype))

    def write_input(self, rawdata: bytes, timestamp: int) -> None:
        self.writer.write(self.input, timestamp, rawdata)

    def write_flow(self, result, header, timestamp: int, counts: BagCounts, device: str, model: str, wall_ms: float) -> None:
        """flow, occlusion (all zeros without a mask), colour and timing of one result."""
        self._write(self.flow, self._image(result.flow, "32FC2", header), IMAGE, timestamp)
        occlusion = result.occlusion if result.occlusion is not None else np.zeros(result.flow.shape[:2], bool)
        self._write(self.occlusion, self._image(occlusion.astype(np.uint8) * 255, "mono8", header), IMAGE, timestamp)
        if self.color is not None:
            self._write(self.color, self._image(flow_to_color(result.flow), "rgb8", header), IMAGE, timestamp)
        timings = result.timings
        previous = result.previous_stamp
        timing = self.store.types[FLOW_TIMING](
            header=header, previous_stamp=previous.stamp if previous is not None else header.stamp,
            **{f"{stage}_ms": float(timings.get(stage, 0.0)) for stage in STAGES + ("compute",)},
            latency_ms=float(wall_ms), frames_processed=counts.published, frames_dropped=0, device=device, model=model)
        self._write(self.timing, timing, FLOW_TIMING, timestamp)

    def close(self) -> None:
        self.writer.close()


def process_bag(bag, topic: str, out, engine, storage: str = "mcap", color: bool = False, copy_input: bool = False,
                progress: bool = True) -> BagCounts:
    """Flow for every frame of ``topic`` in ``bag``, written to the new bag ``out`` (see the module
    docstring). ``engine``: a FlowEngine (its backend, precision, level and occlusion method are
    the node's). FlowTiming's ``latency_ms`` is the wall time of the frame's processing here (there
    is no transport offline). Returns the counts."""
    from tqdm import tqdm

    reader = open_reader(bag)
    counts = BagCounts()
    start = time.perf_counter()
    writer = None
    try:
        connections = image_connections(reader, topic)
        writer = FlowBagWriter(out, storage, typestore(), color, connections[0] if copy_input else None)
        engine.reset()
        total = sum(c.msgcount for c in connections)
        bar = tqdm(total=total, desc=f"flow {topic}", unit="frame", disable=not progress)
        try:
            for connection, timestamp, rawdata in reader.messages(connections=connections):
                counts.read += 1
                t0 = time.perf_counter()
                if writer.input is not None:
                    writer.write_input(rawdata, timestamp)
                _process_one(reader, writer, engine, connection, timestamp, rawdata, counts, t0)
                bar.update(1)
                bar.set_postfix(published=counts.published, bad=counts.bad, refresh=False)
        except KeyboardInterrupt:
            counts.interrupted = True
            log.warning("interrupted: closing %s with the %d flow fields done", out, counts.published)
        finally:
            bar.close()
    finally:
        if writer is not None:
            writer.close()
        reader.close()
    counts.seconds = time.perf_counter() - start
    if counts.bad > LOGGED_BAD_MESSAGES:
        log.warning("%d bad messages in all were skipped", counts.bad)
    return counts


def _process_one(reader, writer: FlowBagWriter, engine, connection, timestamp: int, rawdata: bytes, counts: BagCounts,
                 t0: float) -> None:
    """One input message: convert, run, write; a bad message is counted and skipped."""
    from .engine.types import EngineError

    try:
        msg = reader.deserialize(rawdata, connection.msgtype)
        rgb = message_rgb(msg, connection.msgtype)
        result = engine.process(rgb, stamp=msg.header, seconds=stamp_seconds(msg.header))
    except (ImageMsgError, EngineError, ValueError, AssertionError, IndexError, KeyError) as exc:
        # A truncated or malformed message: rosbags' CDR decoder raises plain Python errors.
        counts.bad += 1
        counts.errors.append(f"message {counts.read} at {timestamp} ns: {type(exc).__name__}: {exc}")
        if counts.bad <= LOGGED_BAD_MESSAGES:
            log.warning("skipping %s", counts.errors[-1])
        return
    if result is None:
        counts.first += 1
        return
    counts.published += 1
    writer.write_flow(result, msg.header, timestamp, counts, engine.device_name, engine.model_name,
                      (time.perf_counter() - t0) * 1000.0)


def read_flow_bag(path, topic: str = "/flow"):
    """[(log time ns, header stamp seconds, array)] of an Image topic of a bag (for tests and
    checks): 32FC2 flow as (H, W, 2) float32, mono8 as (H, W) uint8, rgb8 as (H, W, 3)."""
    from .io.image_encoding import image_msg_to_array

    reader = open_reader(path)
    try:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            raise BagError(f"topic {topic} is not in {path}")
        return [(timestamp, stamp_seconds(msg.header), np.array(image_msg_to_array(msg)))
                for connection, timestamp, rawdata in reader.messages(connections=connections)
                for msg in [reader.deserialize(rawdata, connection.msgtype)]]
    finally:
        reader.close()


def write_image_bag(path, topic: str, frames, stamps_ns, storage: str = "mcap", compressed: bool = False,
                    frame_id: str = "camera", log_times_ns=None) -> Path:
    """A camera bag of ``frames`` ((H, W, 3) uint8 RGB each) on ``topic``: sensor_msgs/Image rgb8,
    or CompressedImage JPEG with ``compressed``; header stamps from ``stamps_ns`` (integers,
    nanoseconds), log times from ``log_times_ns`` (default: the stamps; a bag plays in log-time
    order, so a stamp that goes backwards needs its own log time). For tests, and to turn
    recorded frames into a bag."""
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = typestore()
    types = store.types
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    msgtype = COMPRESSED if compressed else IMAGE
    with Writer(Path(path), version=8, storage_plugin=plugin) as writer:
        connection = writer.add_connection(topic, msgtype, typestore=store)
        for rgb, stamp, log_time in zip(frames, stamps_ns, log_times_ns if log_times_ns is not None else stamps_ns):
            stamp = int(stamp)
            header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9),
                                                  frame_id=frame_id)
            if compressed:
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
                msg = types[COMPRESSED](header=header, format="jpeg", data=np.frombuffer(jpeg.tobytes(), np.uint8))
            else:
                msg = types[IMAGE](header=header, **numpy_payload(rgb, "rgb8"))
            writer.write(connection, int(log_time), store.serialize_cdr(msg, msgtype))
    return Path(path)


@dataclass
class BagFrame:
    """One camera frame of a bag, for the player: RGB pixels, the recorded header and the log
    time in seconds from the first message."""

    rgb: np.ndarray
    header: object
    at: float


def only_image_topic(reader) -> str:
    """The bag's one image topic; BagError listing them when there are none or several."""
    topics = sorted({c.topic for c in reader.connections if c.msgtype in (IMAGE, COMPRESSED)})
    if len(topics) != 1:
        raise BagError(f"name the topic to play: the bag has {len(topics)} image topics ({', '.join(topics) or 'none'})")
    return topics[0]


def iter_bag_frames(path, topic: str = ""):
    """The frames of ``topic`` (default: the only image topic) as :class:`BagFrame`, in log-time
    order; messages that cannot be converted are logged and skipped."""
    reader = open_reader(path)
    try:
        connections = image_connections(reader, topic or only_image_topic(reader))
        first = None
        for connection, timestamp, rawdata in reader.messages(connections=connections):
            first = timestamp if first is None else first
            try:
                msg = reader.deserialize(rawdata, connection.msgtype)
                rgb = message_rgb(msg, connection.msgtype)
            except (ImageMsgError, ValueError, AssertionError, IndexError, KeyError) as exc:
                log.warning("skipping a bad message at %d ns: %s", timestamp, exc)
                continue
            yield BagFrame(rgb, msg.header, (timestamp - first) * 1e-9)
    finally:
        reader.close()
