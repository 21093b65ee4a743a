"""image_player: the console node (real rclpy, separate processes), its library functions, and
the demo sequence that ships with the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from lfn_ros.io import read_image, write_image
from lfn_ros.nodes import image_player
from lfn_ros.io.sources import SourceError, iter_frames, iter_source
from lfn_ros.resources import SEQUENCE_DIR as DEFAULT_SEQUENCE

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- no ROS spinning


def test_shipped_sequence_is_small_and_documented():
    frames = sorted(DEFAULT_SEQUENCE.glob("frame_*.jpg"))
    assert len(frames) == 8
    for path in frames:
        assert path.stat().st_size < 100_000, path
        assert read_image(path).shape == (240, 320, 3)
    readme = (DEFAULT_SEQUENCE / "README.md").read_text()
    assert "CC0" in readme and "tools/make_sequence.py" in readme


def test_make_sequence_regenerates_the_shipped_frames(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "tools" / "make_sequence.py"), "--out", str(tmp_path),
                             "--frames", "3", "--flow"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for index in range(3):
        ours = read_image(tmp_path / f"frame_{index:04d}.jpg").astype(np.int16)
        shipped = read_image(DEFAULT_SEQUENCE / f"frame_{index:04d}.jpg").astype(np.int16)
        assert np.abs(ours - shipped).mean() < 1.0  # same renderer (JPEG coders may differ slightly)
    from lfn_ros.io import read_flo

    flow = read_flo(tmp_path / "flow_0000.flo")
    assert flow.shape == (240, 320, 2)
    # The disc moves by (+7, -3) pixels a frame.
    assert np.allclose(flow[150, 90], (7.0, -3.0))


def test_iter_source_folder_in_natural_order(tmp_path):
    for index in (10, 2, 1):
        write_image(tmp_path / f"f{index}.png", np.full((40, 50, 3), index, np.uint8))
    frames = list(iter_source(tmp_path))
    assert [int(f[0, 0, 0]) for f in frames] == [1, 2, 10]
    assert frames[0].shape == (40, 50, 3) and frames[0].dtype == np.uint8


def test_iter_source_video(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    for index in range(5):
        writer.write(np.full((48, 64, 3), 40 * index, np.uint8))
    writer.release()
    frames = list(iter_source(path))
    assert len(frames) == 5
    assert frames[0].shape == (48, 64, 3)
    assert abs(int(frames[4].mean()) - 160) < 5


def test_iter_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        iter_source(tmp_path / "missing")
    with pytest.raises(SourceError):
        list(iter_source(tmp_path))  # empty folder
    bad = tmp_path / "not_a_video.mp4"
    bad.write_bytes(b"nothing")
    with pytest.raises(SourceError):
        list(iter_source(bad))


def test_default_source_and_frame_counts():
    assert len(list(iter_source(""))) == 8
    assert len(list(iter_frames("", loop=False, count=0))) == 8
    assert len(list(iter_frames("", loop=False, count=3))) == 3
    assert len(list(iter_frames("", loop=True, count=20))) == 20


@pytest.mark.parametrize("encoding, channels", [("rgb8", 3), ("bgr8", 3), ("mono8", 1)])
def test_rgb_to_msg(encoding, channels):
    pytest.importorskip("sensor_msgs")
    from lfn_ros.nodes.image_msg import image_msg_to_array

    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red
    msg = image_player.rgb_to_msg(rgb, encoding)
    assert (msg.encoding, msg.height, msg.width, msg.step) == (encoding, 4, 5, 5 * channels)
    pixels = image_msg_to_array(msg)
    if encoding == "rgb8":
        assert pixels[0, 0].tolist() == [200, 0, 0]
    elif encoding == "bgr8":
        assert pixels[0, 0].tolist() == [0, 0, 200]
    else:
        assert pixels[0, 0] == round(0.299 * 200)
    with pytest.raises(ValueError):
        image_player.rgb_to_msg(rgb, "yuv422")


# ----------------------------------------------------------------------------- ROS processes


@pytest.fixture(scope="module")
def ros():
    pytest.importorskip("rclpy", reason="rclpy is not installed")


def test_player_publishes_and_exits(ros, start_node, probe):
    player = start_node("image_player", {"rate": 30.0, "count": 12, "loop": True, "frame_id": "cam_p",
                                         "encoding": "bgr8", "wait_for_subscribers": 1})
    images = probe(["listen"])["listen"]["images"]
    assert player.process.wait(30) == 0, player.output()
    assert len(images) == 12  # 8 frames, then 4 more after looping
    assert {(i["encoding"], i["height"], i["width"], i["frame_id"]) for i in images} == {("bgr8", 240, 320, "cam_p")}
    stamps = [i["stamp"] for i in images]
    assert stamps == sorted(stamps) and len(set(stamps)) == 12
    # Stamps are "now": about 1/30 s apart.
    assert 0.2 < stamps[-1] - stamps[0] < 5.0


def test_play_frames_library(ros, probe):
    result = probe(["play_frames"])["play_frames"]
    assert "error" not in result, result.get("traceback")
    assert result["published"] == 4
    received = result["received"]
    assert [r["stamp"] for r in received] == [100, 101, 102, 103]
    assert {(r["frame_id"], r["encoding"]) for r in received} == {("cam_lib", "mono8")}
    assert [r["first_byte"] for r in received] == [0, 40, 80, 120]


def test_player_bad_source_exits_1(ros, start_node):
    player = start_node("image_player", {"source": "/nonexistent/frames"}, name="bad_source")
    assert player.process.wait(30) == 1
    assert "/nonexistent/frames" in player.output()


def test_player_plays_a_bag_with_its_recorded_headers_and_timing(ros, start_node, probe, tmp_path):
    """A bag (CompressedImage, MCAP) plays with its own stamps and frame_id, converted to rgb8."""
    pytest.importorskip("rosbags")
    from lfn_ros.bags import write_image_bag
    from lfn_ros.io import iter_frames

    frames = list(iter_frames("", count=5))
    stamps = [50 * 10**9 + i * 5 * 10**8 for i in range(5)]  # recorded at 2 Hz
    bag = write_image_bag(tmp_path / "camera.mcap", "/cam/image", frames, stamps, compressed=True, frame_id="cam_bag")
    player = start_node("image_player", {"source": str(bag), "rate": 4.0, "wait_for_subscribers": 1})
    images = probe(["listen"])["listen"]["images"]
    assert player.process.wait(30) == 0, player.output()
    assert [i["stamp"] for i in images] == [s * 1e-9 for s in stamps]
    assert {(i["frame_id"], i["encoding"], i["width"]) for i in images} == {("cam_bag", "rgb8", 320)}
