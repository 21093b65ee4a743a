"""lfn_ros.demo (`lfn-ros run`, `make run`): environment helpers, and a short run end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lfn_ros.nodes.processes import find_config, loopback_env, node_command, ros_string

REPO = Path(__file__).resolve().parents[2]


def test_loopback_env():
    env = loopback_env(base={"PATH": "/bin"})
    assert env["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"
    assert Path(env["FASTDDS_DEFAULT_PROFILES_FILE"]) == REPO / "config" / "fastdds_loopback.xml"
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SYSTEM_DEFAULT"
    assert 1 <= int(env["ROS_DOMAIN_ID"]) <= 100 and env["PATH"] == "/bin"
    assert loopback_env(base={"ROS_DOMAIN_ID": "7"})["ROS_DOMAIN_ID"] == "7"
    assert loopback_env(base={"ROS_DOMAIN_ID": "7"}, domain_id=9)["ROS_DOMAIN_ID"] == "9"
    assert find_config("no_such_file.xml") is None


def test_ros_string_and_node_command():
    assert ros_string("") == "''" and ros_string("it's") == "'it''s'" and ros_string("123") == "'123'"
    command = node_command("flow_node", {"weights": "", "warmup": False, "finest_level": 3, "scale": 0.5},
                           {"image": "/cam/image_raw"})
    assert command[:4] == [sys.executable, "-m", "lfn_ros.nodes.flow_node", "--ros-args"]
    assert command[4:] == ["-p", "weights:=''", "-p", "warmup:=false", "-p", "finest_level:=3", "-p", "scale:=0.5",
                           "-r", "image:=/cam/image_raw"]


def test_demo_runs_end_to_end(tmp_path):
    pytest.importorskip("rclpy")
    pytest.importorskip("lfn_ros.msg")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "lfn_ros.demo", "--out", str(out), "--count", "3", "--rate", "1.0",
         "--device", "cpu", "--weights", "", "--cpu-threads", "1", "--timeout", "150", "--quiet"],
        capture_output=True, text=True, timeout=200, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "timing.json").read_text())
    assert summary["frames_published"] == 3 and summary["node_exit_status"] == 0
    # 3 frames: 2 pairs, each published or dropped (best effort, the node's default QoS, may
    # also lose one in transport on a loaded machine).
    assert summary["flows"] + summary["frames_dropped"] <= 2
    assert summary["flows"] >= 1 and summary["device"] == "cpu"
    assert set(summary["stages_ms"]) >= {"upload", "features", "decoder", "compute"}
    assert summary["latency_ms"]["p50"] > 0
    assert (out / "demo.png").is_file()
    assert len(list(out.glob("flow_*.png"))) == summary["flows"] == len(list(out.glob("occlusion_*.png")))
    assert "end-to-end latency" in result.stdout


def test_demo_plays_a_bag(tmp_path):
    """lfn-ros run --frames BAG: the player plays the bag's camera topic into the real node."""
    pytest.importorskip("rclpy")
    pytest.importorskip("lfn_ros.msg")
    pytest.importorskip("rosbags")
    from lfn_ros.bags import write_image_bag
    from lfn_ros.io import iter_frames

    bag = write_image_bag(tmp_path / "camera.mcap", "/cam/image", list(iter_frames("", count=3)),
                          [10**9 + i * 10**9 for i in range(3)])
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "lfn_ros.demo", "--out", str(out), "--frames", str(bag), "--topic", "/cam/image",
         "--device", "cpu", "--weights", "", "--cpu-threads", "1", "--timeout", "150", "--quiet"],
        capture_output=True, text=True, timeout=200, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "timing.json").read_text())
    assert summary["frames_published"] == 3 and summary["flows"] >= 1
