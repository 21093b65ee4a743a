"""File and message I/O: flow files (.flo, .pfm, KITTI PNG), flow colour coding, image files,
and sensor_msgs/Image <-> numpy. No rclpy imports.

Importing this package does not import the ROS message packages; ``image_msg``'s names are
loaded on first use, so the file readers work where sensor_msgs is not installed.
"""

from .color import color_wheel_legend, flow_to_color, make_colorwheel, occlusion_to_image
from .flo import FLO_MAGIC, UNKNOWN_FLOW_THRESHOLD, FlowFileError, read_flo, read_pfm, write_flo
from .images import IMAGE_EXTENSIONS, ImageFileError, list_frames, read_image, write_image
from .kitti import KITTI_MAX_FLOW, KITTI_MIN_FLOW, read_kitti_flow, write_kitti_flow

_IMAGE_MSG_NAMES = (
    "ENCODINGS",
    "ImageMsgError",
    "array_to_image_msg",
    "compressed_msg_to_rgb8",
    "image_msg_to_array",
    "image_msg_to_rgb8",
    "to_rgb8",
)

__all__ = [
    "FLO_MAGIC",
    "UNKNOWN_FLOW_THRESHOLD",
    "FlowFileError",
    "read_flo",
    "write_flo",
    "read_pfm",
    "KITTI_MIN_FLOW",
    "KITTI_MAX_FLOW",
    "read_kitti_flow",
    "write_kitti_flow",
    "make_colorwheel",
    "flow_to_color",
    "color_wheel_legend",
    "occlusion_to_image",
    "IMAGE_EXTENSIONS",
    "ImageFileError",
    "read_image",
    "write_image",
    "list_frames",
    *_IMAGE_MSG_NAMES,
]


def __getattr__(name):
    # Lazy: sensor_msgs is only needed by the message conversions.
    if name in _IMAGE_MSG_NAMES:
        from . import image_msg
        return getattr(image_msg, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
