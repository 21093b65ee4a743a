"""flow_odometry: a visual-odometry consumer of lfn_ros's flow (issue 19), thin around
lfn_ros.odometry.FlowOdometry.

Subscribes ``flow`` (32FC2), ``occlusion`` (mono8) and ``flow/timing`` (for the previous frame's
stamp), matched exactly by header stamp, and ``camera_info`` (the intrinsics K). Publishes:

- ``odometry/twist`` (geometry_msgs/TwistStamped, camera frame): angular velocity in rad/s and, as
  the linear part, the unit direction of translation (monocular flow has no scale);
- ``odometry`` (nav_msgs/Odometry, frame ``odom_frame``, child the camera's frame_id): the pose
  accumulated from unit-length steps (scale-free), orientation as a quaternion;
- ``/diagnostics``: frames, estimates, inlier ratio, frames without a solution and why.

Nothing is published for a frame without a solution: no camera_info yet, a flow of another size
than the camera's, or a degenerate frame (too few consistent correspondences, or no parallax).
Each is logged (throttled) and counted. Parameters: ODOMETRY_PARAMETERS in
lfn_ros/nodes/parameters.py.

Run: ``flow_odometry --ros-args -r camera_info:=/camera/camera_info`` beside a flow_node, or
``ros2 launch lfn_ros odometry.launch.py``.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

NODE_NAME = "flow_odometry"


def quaternion(R: np.ndarray) -> tuple:
    """(x, y, z, w) of a rotation matrix."""
    w = np.sqrt(max(0.0, 1.0 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    x = np.sqrt(max(0.0, 1.0 + R[0, 0] - R[1, 1] - R[2, 2])) / 2
    y = np.sqrt(max(0.0, 1.0 - R[0, 0] + R[1, 1] - R[2, 2])) / 2
    z = np.sqrt(max(0.0, 1.0 - R[0, 0] - R[1, 1] + R[2, 2])) / 2
    return (float(np.copysign(x, R[2, 1] - R[1, 2])), float(np.copysign(y, R[0, 2] - R[2, 0])),
            float(np.copysign(z, R[1, 0] - R[0, 1])), float(w))


def make_node():
    """The rclpy node (rclpy initialised by the caller)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from geometry_msgs.msg import TwistStamped
    from nav_msgs.msg import Odometry
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    from lfn_ros.io.image_encoding import ImageMsgError, image_msg_to_array
    from lfn_ros.msg import FlowTiming
    from lfn_ros.nodes import runtime
    from lfn_ros.nodes.parameters import ODOMETRY_PARAMETERS, check_start_values
    from lfn_ros.odometry import FlowOdometry, OdometryConfig

    class FlowOdometryNode(Node):
        def __init__(self) -> None:
            super().__init__(NODE_NAME)
            p = runtime.declare_parameters(self, ODOMETRY_PARAMETERS)
            problem = check_start_values(p, ODOMETRY_PARAMETERS)
            if problem:
                raise ValueError(problem)
            self.p = p
            self.odometry = FlowOdometry(OdometryConfig(stride=p["stride"], ransac_threshold_px=p["ransac_threshold_px"],
                                                        min_points=p["min_points"], min_inlier_ratio=p["min_inlier_ratio"],
                                                        min_parallax_px=p["min_parallax_px"]))
            self.pending: dict = {}  # stamp (ns) -> {"flow": msg, "occlusion": msg, "timing": msg}
            qos = qos_profile_sensor_data  # best effort subscribers take reliable and best-effort publishers
            self.create_subscription(Image, "flow", lambda m: self._on("flow", m), qos)
            self.create_subscription(Image, "occlusion", lambda m: self._on("occlusion", m), qos)
            self.create_subscription(FlowTiming, "flow/timing", lambda m: self._on("timing", m), qos)
            self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos)
            self.pub_twist = self.create_publisher(TwistStamped, "odometry/twist", 10)
            self.pub_odometry = self.create_publisher(Odometry, "odometry", 10)
            self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
            self.create_timer(1.0, self._diagnostics)
            self.get_logger().info("flow_odometry ready")

        def _on_camera_info(self, msg) -> None:
            K = np.array(msg.k, dtype=np.float64).reshape(3, 3)
            if K[0, 0] <= 0 or K[1, 1] <= 0:
                self.get_logger().warning("camera_info without intrinsics (k all zero): ignored", throttle_duration_sec=5.0)
                return
            self.odometry.set_camera(K, msg.width, msg.height)

        def _on(self, kind: str, msg) -> None:
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            entry = self.pending.setdefault(stamp, {})
            entry[kind] = msg
            while len(self.pending) > self.p["sync_queue"]:  # the oldest never completed
                self.pending.pop(min(self.pending))
            if len(entry) == 3:
                del self.pending[stamp]
                self._process(stamp, entry)

        def _process(self, stamp: int, entry: dict) -> None:
            try:
                flow = image_msg_to_array(entry["flow"])
                occlusion = image_msg_to_array(entry["occlusion"]) > 0
                if flow.ndim != 3 or flow.shape[2] != 2 or occlusion.shape != flow.shape[:2]:
                    raise ImageMsgError(f"flow {flow.shape} and occlusion {occlusion.shape} do not fit")
            except ImageMsgError as exc:
                self.get_logger().warning(f"skipping a bad flow message: {exc}", throttle_duration_sec=5.0)
                return
            previous = entry["timing"].previous_stamp
            step = self.odometry.step(stamp * 1e-9, previous.sec + previous.nanosec * 1e-9, flow, occlusion)
            if step.estimate is None:
                self.get_logger().warning(f"no odometry for this frame: {step.reason}", throttle_duration_sec=5.0)
                return
            header = entry["flow"].header
            twist = TwistStamped()
            twist.header = header
            twist.twist.angular.x, twist.twist.angular.y, twist.twist.angular.z = (float(v) for v in step.angular_velocity)
            twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z = (float(v) for v in step.translation_direction)
            self.pub_twist.publish(twist)
            odometry = Odometry()
            odometry.header.stamp = header.stamp
            odometry.header.frame_id = self.p["odom_frame"]
            odometry.child_frame_id = header.frame_id
            position = odometry.pose.pose.position
            position.x, position.y, position.z = (float(v) for v in step.position)
            q = odometry.pose.pose.orientation
            q.x, q.y, q.z, q.w = quaternion(step.orientation)
            odometry.twist.twist = twist.twist
            self.pub_odometry.publish(odometry)

        def _diagnostics(self) -> None:
            counts = self.odometry.counts
            status = DiagnosticStatus(name=f"{NODE_NAME}: odometry", hardware_id=NODE_NAME)
            without = counts["frames"] - counts["estimated"]
            status.level = DiagnosticStatus.OK if counts["frames"] == 0 or without <= counts["frames"] // 2 else DiagnosticStatus.WARN
            status.message = "no flow yet" if counts["frames"] == 0 else f"{counts['estimated']}/{counts['frames']} frames estimated"
            status.values = [KeyValue(key=k, value=str(v)) for k, v in counts.items()]
            status.values.append(KeyValue(key="last_inlier_ratio", value=f"{self.odometry.last_inlier_ratio:.3f}"))
            status.values.append(KeyValue(key="camera_info", value="yes" if self.odometry.K is not None else "not yet"))
            array = DiagnosticArray()
            array.header.stamp = self.get_clock().now().to_msg()
            array.status = [status]
            self.pub_diagnostics.publish(array)

    return FlowOdometryNode()


def main(args=None) -> int:
    """Console script ``flow_odometry``: 0 after Ctrl-C / SIGTERM, 2 on bad parameters."""
    from rclpy.logging import get_logger

    from lfn_ros.nodes import runtime

    stop = threading.Event()
    if not runtime.init_or_report(NODE_NAME, args):
        return 2
    runtime.install_stop_handlers(stop)
    try:
        node = make_node()
    except Exception as exc:  # parameter errors (type, range) and ours
        get_logger(NODE_NAME).error(f"bad parameters: {exc}")
        runtime.shutdown()
        return 2
    status = runtime.spin_until(node, stop)
    node.destroy_node()
    runtime.shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
