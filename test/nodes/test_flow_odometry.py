"""flow_odometry across processes (issue 19): exact flows of a rendered turn in, the true yaw rate
out; nothing for a frame before camera_info or for a degenerate frame."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ros():
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    pytest.importorskip("lfn_ros.msg")
    pytest.importorskip("nav_msgs")


def test_flow_odometry_publishes_the_true_rotation_and_nothing_for_bad_frames(ros, start_node, probe):
    node = start_node("flow_odometry", {}, name="odometry")
    result = probe(["odometry"])["odometry"]
    assert "error" not in result, result.get("traceback") or node.output()[-2000:]
    stamps = [t["stamp"] for t in result["twists"]]
    assert stamps == [11.0, 12.0, 13.0], node.output()[-2000:]  # not 10 (no camera_info), not 20 (degenerate)
    for twist in result["twists"]:
        # dt = 1 s between the stamps here: the angular velocity is the per-frame rotation, 3 degrees of yaw.
        assert np.linalg.norm(twist["angular"]) == pytest.approx(result["true_yaw_rate"], rel=0.02)
        assert np.linalg.norm(twist["linear"]) == pytest.approx(1.0, abs=1e-6)
    assert [o["stamp"] for o in result["odometry"]] == stamps
    assert result["odometry"][0]["frame_id"] == "odom" and result["odometry"][0]["child"] == "cam_odo"
    assert np.linalg.norm(result["odometry"][-1]["position"]) == pytest.approx(3.0, abs=0.05)
    assert node.alive()
    assert "no odometry for this frame" in node.output()
