"""sensor_msgs/Image and sensor_msgs/CompressedImage <-> numpy, without cv_bridge.

The conversions read a message by its fields and live in lfn_ros.io.image_encoding (no ROS
there, so offline bag processing converts exactly as the node does); this module adds the one
step that needs the ROS message classes: building an Image.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image

from ..io.image_encoding import (ENCODINGS, ImageMsgError, compressed_msg_to_rgb8, image_msg_to_array,
                                 image_msg_to_rgb8, image_payload, to_rgb8)

__all__ = [
    "ENCODINGS",
    "ImageMsgError",
    "image_msg_to_array",
    "image_msg_to_rgb8",
    "to_rgb8",
    "array_to_image_msg",
    "compressed_msg_to_rgb8",
]


def array_to_image_msg(array_: np.ndarray, encoding: str, header=None) -> Image:
    """Build a sensor_msgs/Image from an array (fields: :func:`lfn_ros.io.image_encoding.image_payload`).

    Args:
        array_: (H, W) or (H, W, C) whose dtype matches ENCODINGS[encoding] (either byte order)
            and C the encoding's channel count; e.g. flow (H, W, 2) float32 for ``32FC2``.
        encoding: ROS encoding, a key of ENCODINGS.
        header: std_msgs/Header to copy into the message (default: an empty header).

    Raises:
        ImageMsgError: unknown encoding, or dtype/channels/shape not matching it.
    """
    msg = Image()
    if header is not None:
        msg.header = header
    for name, value in image_payload(array_, encoding).items():
        setattr(msg, name, value)  # data: an array.array('B') is stored as is, even with field checks on
    return msg
