"""File I/O without ROS: flow files (.flo, .pfm, KITTI PNG), flow colour coding, image files,
and frame sources (folders, videos, the embedded sequence). Nothing here imports rclpy or the ROS
message packages; message conversion lives in the ROS layer (lfn_ros.nodes.image_msg).
"""

from .color import color_wheel_legend, flow_to_color, make_colorwheel, occlusion_to_image
from .flo import FLO_MAGIC, UNKNOWN_FLOW_THRESHOLD, FlowFileError, read_flo, read_pfm, write_flo
from .images import IMAGE_EXTENSIONS, ImageFileError, list_frames, read_image, write_image
from .kitti import KITTI_MAX_FLOW, KITTI_MIN_FLOW, read_kitti_flow, write_kitti_flow
from .sources import SourceError, iter_frames, iter_source, shifted_pair

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
    "SourceError",
    "iter_source",
    "iter_frames",
    "shifted_pair",
]
