"""Frame-to-frame camera motion from dense flow (issue 19): what a visual-odometry front end does
with lfn_ros's output. No ROS here; lfn_ros.nodes.flow_odometry is the node around it.

From the flow of the previous frame to the current one, non-occluded pixels on a grid give
correspondences; an essential matrix fitted robustly (OpenCV's USAC, Nister's five-point solver)
and decomposed with the cheirality check gives the rotation and the direction of translation
(monocular flow carries no scale). Conventions (OpenCV): camera x right, y down, z forward; the
returned (R, t) map camera-1 coordinates to camera-2 ones, X2 = R X1 + t, with |t| = 1.

A frame yields no estimate rather than a wrong one when: too few valid correspondences; RANSAC
finds too small an inlier share; too few points pass the cheirality check; or the translation
is unobservable (after removing the estimated rotation the points move less than
``min_parallax_px``: pure rotation or a standing camera).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class MotionEstimate:
    """R (3, 3), t (3,) unit; inliers (of points), ratio, parallax (median px after derotation)."""

    R: np.ndarray
    t: np.ndarray
    inliers: int
    points: int
    inlier_ratio: float
    parallax_px: float


@dataclass
class OdometryConfig:
    stride: int = 8  # grid spacing of the sampled correspondences, pixels (like flow/points)
    ransac_threshold_px: float = 1.0
    min_points: int = 40
    min_inlier_ratio: float = 0.4
    min_parallax_px: float = 0.5
    border: int = 4  # pixels at the image border are left out (resizing and padding effects)


def correspondences(flow: np.ndarray, occlusion: np.ndarray | None, stride: int, border: int):
    """(p1, p2) float64 (N, 2): grid points of frame 1 that are not occluded and land inside frame 2."""
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[border:height - border:stride, border:width - border:stride]
    f = flow[ys, xs]
    p1 = np.stack([xs, ys], -1).reshape(-1, 2).astype(np.float64)
    p2 = p1 + f.reshape(-1, 2).astype(np.float64)
    keep = np.isfinite(p2).all(1) & (p2[:, 0] >= 0) & (p2[:, 0] <= width - 1) & (p2[:, 1] >= 0) & (p2[:, 1] <= height - 1)
    if occlusion is not None:
        keep &= ~occlusion[ys, xs].reshape(-1).astype(bool)
    return p1[keep], p2[keep]


def estimate_motion(flow: np.ndarray, occlusion: np.ndarray | None, K: np.ndarray,
                    config: OdometryConfig | None = None) -> MotionEstimate | None:
    """Rotation and translation direction between the two frames of ``flow`` ((H, W, 2) px) with
    intrinsics ``K`` (3, 3); ``occlusion`` (H, W) bool or None. None when degenerate (see the module)."""
    config = config or OdometryConfig()
    p1, p2 = correspondences(flow, occlusion, config.stride, config.border)
    if len(p1) < config.min_points:
        return None
    # USAC_ACCURATE (graph-cut RANSAC with local optimisation): plain RANSAC at 1 px picked a wrong
    # solution on an exact-flow frame of the rendered room (0.27 degrees, 7 degrees of direction).
    method = getattr(cv2, "USAC_ACCURATE", cv2.RANSAC)
    E, mask = cv2.findEssentialMat(p1, p2, K, method=method, prob=0.999, threshold=config.ransac_threshold_px)
    if E is None or E.shape != (3, 3) or mask is None:  # several solutions stacked, or none
        E = None if E is None or E.shape[0] < 3 else E[:3]
    if E is None:
        return None
    inliers = mask.reshape(-1).astype(bool)
    if inliers.mean() < config.min_inlier_ratio:
        return None
    count, R, t, pose_mask = cv2.recoverPose(E, p1[inliers], p2[inliers], K)
    if count < config.min_points:
        return None
    parallax = derotated_parallax(p1[inliers], p2[inliers], R, K)
    if parallax < config.min_parallax_px:
        return None
    t = t.reshape(3)
    return MotionEstimate(R=R, t=t / np.linalg.norm(t), inliers=int(count), points=len(p1),
                          inlier_ratio=float(inliers.mean()), parallax_px=float(parallax))


def derotated_parallax(p1: np.ndarray, p2: np.ndarray, R: np.ndarray, K: np.ndarray) -> float:
    """Median distance (px) between p2 and where p1 would be under the rotation R alone
    (the infinite homography K R K^-1): the motion that only translation can explain."""
    H = K @ R @ np.linalg.inv(K)
    homogeneous = np.c_[p1, np.ones(len(p1))] @ H.T
    rotated = homogeneous[:, :2] / homogeneous[:, 2:3]
    return float(np.median(np.linalg.norm(p2 - rotated, axis=1)))


def rotation_error_deg(R: np.ndarray, R_true: np.ndarray) -> float:
    """Angle of R R_true^T in degrees."""
    cos = (np.trace(R @ R_true.T) - 1) / 2
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def direction_error_deg(t: np.ndarray, t_true: np.ndarray) -> float:
    """Angle between two translation directions in degrees."""
    a, b = t / np.linalg.norm(t), t_true / np.linalg.norm(t_true)
    return math.degrees(math.acos(max(-1.0, min(1.0, float(a @ b)))))


def rotation_vector(R: np.ndarray) -> np.ndarray:
    """Axis times angle (radians), (3,)."""
    vector, _ = cv2.Rodrigues(R)
    return vector.reshape(3)


@dataclass
class OdometryStep:
    """One frame's result of :class:`FlowOdometry`: the motion (or None with ``reason``), the
    angular velocity (rad/s, camera frame) and the accumulated scale-free pose of the camera in
    the first frame's coordinates (R_world_cam, position with unit-length steps)."""

    stamp: float
    estimate: MotionEstimate | None
    reason: str = ""
    angular_velocity: np.ndarray | None = None
    translation_direction: np.ndarray | None = None
    orientation: np.ndarray | None = None
    position: np.ndarray | None = None


class FlowOdometry:
    """The flow_odometry node's logic without ROS: intrinsics, per-frame estimation, the
    accumulated pose and the counters its diagnostics report.

    ``step(stamp, previous_stamp, flow, occlusion)`` -> OdometryStep; frames without a solution
    (no intrinsics yet, a size other than the camera's, degenerate motion) leave the pose as it
    was and say why."""

    def __init__(self, config: OdometryConfig | None = None) -> None:
        self.config = config or OdometryConfig()
        self.K: np.ndarray | None = None
        self.size: tuple | None = None  # (H, W) of the camera_info
        self.orientation = np.eye(3)
        self.position = np.zeros(3)
        self.counts = {"frames": 0, "estimated": 0, "no_camera_info": 0, "size_mismatch": 0, "degenerate": 0}
        self.last_inlier_ratio = float("nan")

    def set_camera(self, K, width: int, height: int) -> None:
        self.K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        self.size = (int(height), int(width))

    def step(self, stamp: float, previous_stamp: float, flow: np.ndarray, occlusion: np.ndarray | None) -> OdometryStep:
        self.counts["frames"] += 1
        if self.K is None:
            self.counts["no_camera_info"] += 1
            return OdometryStep(stamp, None, "no camera_info received yet")
        if tuple(flow.shape[:2]) != self.size:
            self.counts["size_mismatch"] += 1
            return OdometryStep(stamp, None, f"flow is {flow.shape[1]}x{flow.shape[0]} but camera_info says "
                                             f"{self.size[1]}x{self.size[0]}")
        estimate = estimate_motion(flow, occlusion, self.K, self.config)
        if estimate is None:
            self.counts["degenerate"] += 1
            return OdometryStep(stamp, None, "degenerate frame: too few consistent correspondences or too little parallax")
        self.counts["estimated"] += 1
        self.last_inlier_ratio = estimate.inlier_ratio
        dt = stamp - previous_stamp
        angular = rotation_vector(estimate.R.T) / dt if dt > 0 else np.zeros(3)  # camera 1 -> 2, in camera 1
        direction = -estimate.R.T @ estimate.t  # where camera 2 is, seen from camera 1 (unit)
        self.position = self.position + self.orientation @ direction
        self.orientation = self.orientation @ estimate.R.T
        return OdometryStep(stamp, estimate, "", angular, direction, self.orientation.copy(), self.position.copy())
