"""Flow over ROS 2 bags (issue 18), with real bags written by rosbags in both storage formats:
Image and CompressedImage topics, a resolution change and a stamp that goes backwards in the
middle, a truncated message; the output bag's flows equal FlowEngine.process on the same frames."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("rosbags")

from lfn_ros.bags import (BagError, open_reader, process_bag, read_flow_bag, write_image_bag)  # noqa: E402
from lfn_ros.engine import FlowEngine  # noqa: E402
from lfn_ros.io import iter_frames  # noqa: E402

TOPIC = "/camera/image_raw"


@pytest.fixture(scope="module")
def engine():
    return FlowEngine(device="cpu", precision="fp32", backend="torch", occlusion_method="check")


@pytest.fixture(scope="module")
def frames():
    """Seven frames: four of the demo camera, then three at another resolution, the last of
    which has a stamp that goes back in time (STAMPS)."""
    demo = list(iter_frames("", count=7))
    return demo[:4] + [cv2.resize(f, (256, 192), interpolation=cv2.INTER_AREA) for f in demo[4:]]


STAMPS = [10**9 + i * 10**8 for i in range(6)] + [10**9 + 5 * 10**7]  # the last is earlier than the sixth
LOG_TIMES = [10**9 + i * 10**8 for i in range(7)]  # recorded in order (a looping camera's stamps jump back)


def expected(engine, frames, stamps):
    engine.reset()
    results = [engine.process(f, seconds=s * 1e-9) for f, s in zip(frames, stamps)]
    return [(s, r) for s, r in zip(stamps, results) if r is not None]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_image_bag_in_flow_bag_out_equal_to_the_engine_with_the_input_stamps(tmp_path, engine, frames, storage):
    bag = write_image_bag(tmp_path / "in", TOPIC, frames, STAMPS, storage=storage, log_times_ns=LOG_TIMES)
    out = tmp_path / "out"
    counts = process_bag(bag, TOPIC, out, engine, storage=storage, color=True, copy_input=True, progress=False)
    # 7 read: the first frame, the resolution change (frame 5) and the stamp going back (frame 7)
    # start sequences.
    assert (counts.read, counts.published, counts.first, counts.bad) == (7, 4, 3, 0)
    flows = read_flow_bag(out, "/flow")
    want = expected(engine, frames, STAMPS)
    assert len(flows) == len(want) == 4
    log_of = dict(zip(STAMPS, LOG_TIMES))
    for (log_time, stamp, flow), (input_stamp, result) in zip(flows, want):
        assert log_time == log_of[input_stamp] and stamp == pytest.approx(input_stamp * 1e-9, abs=1e-9)
        assert flow.dtype == np.float32 and flow.shape == result.flow.shape
        np.testing.assert_array_equal(flow, result.flow)
    occlusion = read_flow_bag(out, "/occlusion")
    np.testing.assert_array_equal(occlusion[0][2], want[0][1].occlusion.astype(np.uint8) * 255)
    assert read_flow_bag(out, "/flow/color")[0][2].shape == frames[0].shape
    reader = open_reader(out)
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics == {"/flow": "sensor_msgs/msg/Image", "/occlusion": "sensor_msgs/msg/Image",
                          "/flow/color": "sensor_msgs/msg/Image", "/flow/timing": "lfn_ros/msg/FlowTiming",
                          TOPIC: "sensor_msgs/msg/Image"}
        timing = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                  if c.topic == "/flow/timing"]
    finally:
        reader.close()
    assert [t.frames_processed for t in timing] == [1, 2, 3, 4]
    assert timing[0].previous_stamp.nanosec == STAMPS[0] % 10**9 and timing[0].compute_ms > 0
    assert "LiteFlowNet" in timing[0].model


def test_compressed_topic_and_a_truncated_message_is_counted_and_skipped(tmp_path, engine, frames):
    bag = write_image_bag(tmp_path / "in.mcap", TOPIC, frames[:4], STAMPS[:4], compressed=True)
    # Damage the second message's JPEG: rewrite the bag with its data cut short.
    from rosbags.rosbag2 import StoragePlugin, Writer

    from lfn_ros.bags import COMPRESSED, typestore
    store = typestore()
    reader = open_reader(bag)
    messages = [(t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()]
    reader.close()
    messages[1][1].data = messages[1][1].data[:100]
    damaged = tmp_path / "damaged"
    with Writer(damaged, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection(TOPIC, COMPRESSED, typestore=store)
        for timestamp, msg in messages:
            writer.write(connection, timestamp, store.serialize_cdr(msg, COMPRESSED))
    counts = process_bag(damaged, TOPIC, tmp_path / "out", engine, progress=False)
    # Frames 1, 3, 4 remain: 1 starts the sequence, 3 and 4 give flow (a bad message does not reset).
    assert (counts.read, counts.bad, counts.first, counts.published) == (4, 1, 1, 2)
    assert "cannot be decoded" in counts.errors[0]
    assert len(read_flow_bag(tmp_path / "out")) == 2


def test_a_missing_topic_names_the_image_topics_and_a_missing_bag_is_one_line(tmp_path, engine, frames):
    bag = write_image_bag(tmp_path / "in", TOPIC, frames[:2], STAMPS[:2])
    with pytest.raises(BagError, match=r"topic /camera/left is not in the bag; image topics in the bag: /camera/image_raw \(Image\)"):
        process_bag(bag, "/camera/left", tmp_path / "out", engine, progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(BagError, match="does not exist"):
        process_bag(tmp_path / "nothing", TOPIC, tmp_path / "out2", engine, progress=False)
    with pytest.raises(BagError, match="exists already"):
        process_bag(bag, TOPIC, bag, engine, progress=False)


def test_an_interrupted_run_leaves_a_readable_bag(tmp_path, frames, monkeypatch):
    engine = FlowEngine(device="cpu", precision="fp32", backend="torch")
    bag = write_image_bag(tmp_path / "in", TOPIC, frames[:4], STAMPS[:4])
    original, calls = engine.process, []

    def interrupt_on_the_fourth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "process", interrupt_on_the_fourth)
    counts = process_bag(bag, TOPIC, tmp_path / "out", engine, progress=False)
    assert counts.interrupted and counts.published == 2
    assert len(read_flow_bag(tmp_path / "out")) == 2  # closed properly: readable


def test_lfn_ros_infer_takes_a_bag(tmp_path, frames, capsys):
    from lfn_ros.cli import main

    bag = write_image_bag(tmp_path / "cam.mcap", TOPIC, frames[:3], STAMPS[:3])
    assert main(["infer", str(bag), "--topic", TOPIC, "--out", str(tmp_path / "flow_bag"), "--backend", "torch",
                 "--precision", "fp32", "--storage", "sqlite3"]) == 0
    assert "3 messages" in capsys.readouterr().out
    assert len(read_flow_bag(tmp_path / "flow_bag")) == 2
    assert main(["infer", str(bag), "--out", str(tmp_path / "x")]) == 2  # no --topic
    shutil.rmtree(tmp_path / "flow_bag")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bags_recorded_by_ros2_bag_read_in_both_formats(tmp_path, engine, storage):
    """rosbag2's own talker bags (test/data/ros2_bags/README.md): their metadata.yaml and storage
    disagree on the QoS strings, which rosbags' folder reader answers with no messages."""
    bag = shutil.copytree(Path(__file__).parent / "data" / "ros2_bags" / f"talker_{storage}", tmp_path / "talker")
    reader = open_reader(bag)
    topic = [c for c in reader.connections if c.topic == "/topic"]
    got = [(t, reader.deserialize(raw, c.msgtype).data) for c, t, raw in reader.messages(connections=topic)]
    reader.close()
    assert [text for _, text in got] == [f"Hello, world! {i}" for i in range(10)]
    assert got[0][0] == 1585866235112609068 and [a for a, _ in got] == sorted(a for a, _ in got)
    with pytest.raises(BagError, match=r"topic /topic is a std_msgs/msg/String, not an image; image topics in the bag: none; "
                                       r"other topics: /parameter_events, /rosout, /topic"):
        process_bag(bag, "/topic", tmp_path / "out", engine, progress=False)
