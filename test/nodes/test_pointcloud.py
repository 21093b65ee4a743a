"""lfn_ros.nodes.pointcloud: flow as a sensor_msgs/PointCloud2 grid."""

import sys

import numpy as np
import pytest

pytest.importorskip("sensor_msgs")
from sensor_msgs.msg import PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from lfn_ros.nodes.pointcloud import FIELD_NAMES, flow_points, flow_to_pointcloud  # noqa: E402


def _flow(h=10, w=13):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xs * 0.5, -ys], axis=2)  # u = x / 2, v = -y


def test_points_grid_values():
    flow = _flow()
    occlusion = np.zeros((10, 13), bool)
    occlusion[4, 8] = True
    points = flow_points(flow, occlusion, stride=4)
    assert points.shape == (3, 4, 6) and points.dtype == np.float32
    # Row 1, column 2 is pixel (x=8, y=4).
    assert points[1, 2].tolist() == [8.0, 4.0, 0.0, 4.0, -4.0, 1.0]
    assert points[:, :, 5].sum() == 1
    assert points[0, :, 0].tolist() == [0, 4, 8, 12] and points[:, 0, 1].tolist() == [0, 4, 8]
    assert (flow_points(flow, None, 4)[:, :, 5] == 0).all()


def test_stride_one_keeps_every_pixel():
    points = flow_points(_flow(3, 2), None, stride=1)
    assert points.shape == (3, 2, 6)
    assert points[2, 1, :2].tolist() == [1.0, 2.0]


def test_cloud_message_layout():
    header = Header(frame_id="cam")
    header.stamp.sec = 42
    flow = _flow()
    occlusion = np.zeros((10, 13), np.uint8)
    occlusion[0, 0] = 255
    msg = flow_to_pointcloud(header, flow, occlusion, stride=4, use_sensor_msgs_py=False)
    assert (msg.header.frame_id, msg.header.stamp.sec) == ("cam", 42)
    assert (msg.height, msg.width) == (3, 4)
    assert [f.name for f in msg.fields] == list(FIELD_NAMES)
    assert [f.offset for f in msg.fields] == [0, 4, 8, 12, 16, 20]
    assert {f.datatype for f in msg.fields} == {PointField.FLOAT32} and {f.count for f in msg.fields} == {1}
    assert msg.point_step == 24 and msg.row_step == 24 * 4 and len(msg.data) == 24 * 12
    assert msg.is_bigendian == (sys.byteorder == "big") and msg.is_dense
    decoded = np.frombuffer(bytes(msg.data), np.float32).reshape(3, 4, 6)
    np.testing.assert_array_equal(decoded, flow_points(flow, occlusion, 4))
    assert decoded[0, 0, 5] == 1.0


def test_default_builder_matches_numpy():
    # sensor_msgs_py is used when importable (ROS installs); both must give the same cloud.
    flow = _flow()
    default = flow_to_pointcloud(None, flow, None, stride=3)
    numpy_built = flow_to_pointcloud(None, flow, None, stride=3, use_sensor_msgs_py=False)
    assert (default.height, default.width, default.point_step, default.row_step) == \
        (numpy_built.height, numpy_built.width, numpy_built.point_step, numpy_built.row_step)
    assert bytes(default.data) == bytes(numpy_built.data)


def test_nan_flow_is_not_dense():
    flow = _flow()
    flow[0, 0, 0] = np.nan
    assert not flow_to_pointcloud(None, flow, stride=1, use_sensor_msgs_py=False).is_dense


@pytest.mark.parametrize("flow, occlusion, stride", [
    (np.zeros((4, 4)), None, 1),
    (np.zeros((4, 4, 3)), None, 1),
    (np.zeros((4, 4, 2)), np.zeros((4, 5)), 1),
    (np.zeros((4, 4, 2)), None, 0),
    (np.zeros((4, 4, 2)), None, 1.5),
])
def test_bad_input_raises(flow, occlusion, stride):
    with pytest.raises(ValueError):
        flow_points(flow, occlusion, stride)
