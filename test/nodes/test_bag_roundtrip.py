"""Issue 18, done-when: a bag recorded from the player's camera topic goes through lfn-ros infer
into a bag whose flow matches the live node's for the same frames. Three processes (image_player,
flow_node, a recorder that writes what it receives into an MCAP bag, serialised by rclpy), then
the bag offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")


@pytest.fixture(scope="module")
def ros():
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    pytest.importorskip("lfn_ros.msg")


def test_a_recorded_camera_bag_gives_the_live_nodes_flow(ros, ros_env, start_node, probe, tmp_path):
    from lfn_ros.bags import process_bag, read_flow_bag
    from lfn_ros.engine import FlowEngine

    # One pass: the two-scale cascade's per-pixel fusion is a hard switch, so a thread count that
    # rounds differently can flip a pixel between the live and the offline flow; this test is
    # about the bag's plumbing (test/ops/test_cascade.py bounds the cascade across backends).
    engine_params = {"device": "cpu", "backend": "torch", "precision": "fp32", "cascade": "none"}
    node = start_node("flow_node", {**engine_params, "qos_reliability": "reliable", "warmup": False}, name="live_node")
    player = start_node("image_player", {"rate": 2.0, "count": 6, "wait_for_subscribers": 2}, name="camera")
    bag = tmp_path / "camera"
    ros_env["LFN_ROS_PROBE_BAG"] = str(bag)  # this module's environment: the probe's bag
    recorded = probe(["record_bag"])["record_bag"]
    assert "error" not in recorded, recorded.get("traceback")
    assert player.process.wait(30) == 0 and node.alive(), node.output()[-2000:]
    assert recorded["images"] == 6 and recorded["flows"] >= 2, recorded

    out = tmp_path / "flow_bag"
    counts = process_bag(bag, "/camera/image_raw", out, FlowEngine(**engine_params), progress=False)
    assert (counts.read, counts.published, counts.bad) == (6, 5, 0)
    offline = {round(stamp, 6): flow for _, stamp, flow in read_flow_bag(out)}
    live = {}
    for path in sorted(Path(str(bag) + "_flows").glob("*.npy")):
        sec, nanosec = (int(v) for v in path.stem.split("_"))
        live[round(sec + nanosec * 1e-9, 6)] = np.load(path)
    common = sorted(set(live) & set(offline))
    assert len(common) == len(live) >= 2  # every live flow (the node may drop frames) has its offline twin
    for stamp in common:
        np.testing.assert_allclose(offline[stamp], live[stamp], atol=1e-4)
