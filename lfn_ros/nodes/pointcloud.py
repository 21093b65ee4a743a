"""Flow as a sensor_msgs/PointCloud2 (the node's ``flow/points`` topic). No rclpy imports.

One point per grid cell of ``stride`` pixels, an organised cloud (``height`` rows of ``width``
points, row-major, in image order). Fields, all float32, 24 bytes a point, no padding:

| field | meaning |
|---|---|
| x, y | pixel coordinates in the previous frame (x right, y down; centre of the pixel = integer) |
| z | always 0, so that rviz's PointCloud2 display (which needs x, y, z) can draw the grid |
| u, v | flow of that pixel to the current frame, pixels (x right, y down) |
| occluded | 1.0 where the pixel has no match in the current frame, else 0.0 (0.0 when unknown) |

The point a pixel moves to is (x + u, y + v). Byte order is this machine's (``is_bigendian``).
``sensor_msgs_py.point_cloud2.create_cloud`` builds the message when it is importable (ROS
installs); otherwise numpy does, giving the same layout.
"""

from __future__ import annotations

import array
import sys

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

__all__ = ["FIELD_NAMES", "flow_points", "flow_point_fields", "flow_to_pointcloud"]

FIELD_NAMES = ("x", "y", "z", "u", "v", "occluded")
POINT_STEP = 4 * len(FIELD_NAMES)


def flow_point_fields() -> list:
    """The PointField list of a flow cloud: FIELD_NAMES as FLOAT32, 4 bytes apart."""
    return [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
            for i, name in enumerate(FIELD_NAMES)]


def flow_points(flow: np.ndarray, occlusion: np.ndarray | None = None, stride: int = 8) -> np.ndarray:
    """The points of a flow cloud as an array.

    Args:
        flow: (H, W, 2) float, pixels, channel 0 = u (x, right), channel 1 = v (y, down).
        occlusion: (H, W) bool or numeric (non-zero = occluded), or None (all 0).
        stride: grid spacing in pixels (>= 1); the grid starts at pixel (0, 0).

    Returns:
        (ceil(H / stride), ceil(W / stride), 6) float32: x, y, z, u, v, occluded per point.

    Raises:
        ValueError: wrong shapes or stride < 1 (the shapes are in the message).
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow_points: flow must have shape (H, W, 2), got {flow.shape}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"flow_points: stride must be an integer >= 1, got {stride!r}")
    stride = int(stride)
    height, width = flow.shape[:2]
    if occlusion is not None:
        occlusion = np.asarray(occlusion)
        if occlusion.shape != (height, width):
            raise ValueError(f"flow_points: occlusion must have shape {(height, width)}, got {occlusion.shape}")
    ys = np.arange(0, height, stride, dtype=np.float32)
    xs = np.arange(0, width, stride, dtype=np.float32)
    sampled = flow[::stride, ::stride]
    points = np.zeros((ys.size, xs.size, len(FIELD_NAMES)), dtype=np.float32)
    points[:, :, 0] = xs[None, :]
    points[:, :, 1] = ys[:, None]
    points[:, :, 3:5] = sampled
    if occlusion is not None:
        points[:, :, 5] = occlusion[::stride, ::stride] != 0
    return points


def _numpy_cloud(header, points: np.ndarray) -> PointCloud2:
    rows, cols = points.shape[:2]
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height = rows
    msg.width = cols
    msg.fields = flow_point_fields()
    msg.is_bigendian = sys.byteorder == "big"
    msg.point_step = POINT_STEP
    msg.row_step = POINT_STEP * cols
    msg.is_dense = bool(np.isfinite(points).all())
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(points).tobytes())
    msg.data = data  # an array.array('B') is stored as is (no per-element checks)
    return msg


def _ros_cloud(header, points: np.ndarray) -> PointCloud2:
    from sensor_msgs_py import point_cloud2  # ROS installs only

    rows, cols = points.shape[:2]
    msg = point_cloud2.create_cloud(header, flow_point_fields(), points.reshape(-1, len(FIELD_NAMES)))
    # create_cloud makes an unorganised cloud (height 1); the data is row-major, so declaring
    # the grid shape makes it organised without touching the bytes.
    msg.height = rows
    msg.width = cols
    msg.row_step = msg.point_step * cols
    msg.is_dense = bool(np.isfinite(points).all())
    return msg


def flow_to_pointcloud(header, flow: np.ndarray, occlusion: np.ndarray | None = None,
                       stride: int = 8, use_sensor_msgs_py: bool | None = None) -> PointCloud2:
    """A sensor_msgs/PointCloud2 of flow sampled on a grid (layout in the module docstring).

    Args:
        header: std_msgs/Header to copy into the cloud (the current frame's), or None.
        flow, occlusion, stride: see :func:`flow_points`.
        use_sensor_msgs_py: True/False to force the builder; None: sensor_msgs_py when it is
            importable, numpy otherwise.

    Returns:
        PointCloud2 with height = ceil(H / stride), width = ceil(W / stride), point_step 24.
    """
    points = flow_points(flow, occlusion, stride)
    if use_sensor_msgs_py is None:
        try:
            import sensor_msgs_py.point_cloud2  # noqa: F401
            use_sensor_msgs_py = True
        except ImportError:
            use_sensor_msgs_py = False
    if use_sensor_msgs_py:
        return _ros_cloud(header, points)
    return _numpy_cloud(header, points)
