"""KITTI optical-flow PNGs (KITTI 2012 and 2015 flow ground truth and submissions).

A KITTI flow file is a 3-channel 16-bit PNG. Stored in R, G, B order the channels are
(u, v, valid); OpenCV returns them as B, G, R = (valid, v, u). Components are encoded as

    value = u * 64 + 2**15        u = (value - 2**15) / 64

so the representable range is [-512, 511.984375] pixels in steps of 1/64 pixel, and
``valid`` is 1 where ground truth exists, 0 elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple, Union

import cv2
import numpy as np

from .flo import FlowFileError
from .images import decode_image_file

PathLike = Union[str, "os.PathLike[str]"]

KITTI_SCALE = 64.0
"""Encoded units per pixel of flow."""

KITTI_OFFSET = 2 ** 15
"""Encoded value of zero flow."""

KITTI_MIN_FLOW = (0 - KITTI_OFFSET) / KITTI_SCALE            # -512.0
KITTI_MAX_FLOW = (65535 - KITTI_OFFSET) / KITTI_SCALE        # 511.984375

__all__ = [
    "KITTI_MIN_FLOW",
    "KITTI_MAX_FLOW",
    "read_kitti_flow",
    "write_kitti_flow",
]


def read_kitti_flow(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Read a KITTI 16-bit flow PNG.

    Args:
        path: the PNG file.

    Returns:
        flow: (H, W, 2) float32, pixels; channel 0 = u (x, right), channel 1 = v (y, down).
            Pixels without ground truth are set to 0.
        valid: (H, W) bool, True where the file's valid channel is non-zero.

    Raises:
        FileNotFoundError: the file does not exist.
        FlowFileError: undecodable, not 16-bit or not 3-channel (the message names the file and
            what was found).
    """
    image, size = decode_image_file(path, cv2.IMREAD_UNCHANGED, what="KITTI flow")
    if image is None:
        raise FlowFileError(f"{path}: cannot be decoded as an image ({size} bytes)")
    if image.dtype != np.uint16 or image.ndim != 3 or image.shape[2] != 3:
        channels = 1 if image.ndim == 2 else image.shape[2]
        raise FlowFileError(
            f"{path}: not a KITTI flow PNG: expected 16-bit 3-channel, got dtype {image.dtype} "
            f"with {channels} channel(s), shape {image.shape}")
    valid = image[:, :, 0] > 0
    flow = image[:, :, [2, 1]].astype(np.float32)  # (u, v) from B, G, R = (valid, v, u)
    flow -= KITTI_OFFSET
    flow /= KITTI_SCALE
    flow[~valid] = 0.0
    return flow, valid


def write_kitti_flow(path: PathLike, flow: np.ndarray,
                     valid: Optional[np.ndarray] = None) -> None:
    """Write a KITTI 16-bit flow PNG.

    Args:
        path: destination, must end in ``.png``; parent directories are created.
        flow: (H, W, 2) real array, pixels; channel 0 = u (x), channel 1 = v (y). Values are
            rounded to the nearest 1/64 pixel and clipped to [-512, 511.984375].
        valid: (H, W) bool (or anything whose non-zero means valid). Default: pixels whose u and
            v are both finite. Invalid pixels are written as zero flow with valid = 0.

    Raises:
        ValueError: wrong shapes, a non-PNG path, or an encoder failure.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"write_kitti_flow: {path} must have the .png extension")
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[0] < 1 or flow.shape[1] < 1:
        raise ValueError(f"write_kitti_flow({path}): flow must have shape (H, W, 2), got {flow.shape}")
    finite = np.isfinite(flow).all(axis=2)
    if valid is None:
        valid = finite
    else:
        valid = np.asarray(valid)
        if valid.shape != flow.shape[:2]:
            raise ValueError(
                f"write_kitti_flow({path}): valid must have shape {flow.shape[:2]}, got {valid.shape}")
        valid = (valid != 0) & finite
    encoded = np.where(finite[..., None], flow.astype(np.float64), 0.0) * KITTI_SCALE + KITTI_OFFSET
    encoded = np.clip(np.rint(encoded), 0, 65535).astype(np.uint16)
    encoded[~valid] = KITTI_OFFSET
    image = np.empty(flow.shape[:2] + (3,), dtype=np.uint16)
    image[:, :, 0] = valid
    image[:, :, 1] = encoded[:, :, 1]
    image[:, :, 2] = encoded[:, :, 0]
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"write_kitti_flow({path}): PNG encoding failed for shape {image.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())
