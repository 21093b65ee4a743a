"""Image files: read as RGB, write from RGB, list the frames of a folder in natural order.

OpenCV does the decoding and encoding (PNG, PPM/PGM, JPEG, BMP, TIFF, WebP); files are read
and written through Python so paths with any characters work.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Union

import cv2
import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".bmp", ".tif", ".tiff",
                    ".webp")
"""File name endings (lower case) that :func:`list_frames` picks up."""

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFileError",
    "read_image",
    "write_image",
    "list_frames",
]


class ImageFileError(ValueError):
    """An image file cannot be decoded or an array cannot be written as an image."""


def decode_image_file(path: PathLike, flags: int = cv2.IMREAD_UNCHANGED, what: str = "image"):
    """Decode an image file with OpenCV (paths with any characters, via np.fromfile).

    Returns:
        (image or None when empty/undecodable, file size in bytes). The caller raises its own
        error type for None, naming the file.

    Raises:
        FileNotFoundError: no such file ("<what> file not found: <path>").
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    buf = np.fromfile(str(path), dtype=np.uint8)
    if buf.size == 0:
        return None, 0
    try:
        return cv2.imdecode(buf, flags), buf.size
    except cv2.error:
        return None, buf.size


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as 8-bit RGB.

    Args:
        path: PNG, PPM/PGM, JPEG, ... file.

    Returns:
        (H, W, 3) uint8, R, G, B. Grey images are replicated to three channels, alpha is
        dropped, 16-bit images are reduced to their high byte.

    Raises:
        FileNotFoundError: no such file.
        ImageFileError: the file is empty or cannot be decoded (message names the file).
    """
    bgr, size = decode_image_file(path, cv2.IMREAD_COLOR)
    if size == 0:
        raise ImageFileError(f"{path}: empty file, not an image")
    if bgr is None:
        raise ImageFileError(f"{path}: cannot be decoded as an image ({size} bytes)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_image(path: PathLike, rgb: np.ndarray) -> None:
    """Write an RGB (or grey) image; the format follows the file name's extension.

    Args:
        path: destination; parent directories are created. The extension picks the format
            (none: PNG).
        rgb: (H, W, 3) R, G, B, or (H, W, 4) R, G, B, A, or (H, W) grey; uint8 (uint16 for
            formats that support it, such as PNG and TIFF).

    Raises:
        ValueError: wrong shape or dtype.
        ImageFileError: OpenCV cannot encode this extension or array.
    """
    path = Path(path)
    rgb = np.asarray(rgb)
    if rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_image({path}): expected uint8 or uint16, got dtype {rgb.dtype}")
    if rgb.ndim == 3 and rgb.shape[2] == 3:
        out = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    elif rgb.ndim == 3 and rgb.shape[2] == 4:
        out = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGBA2BGRA)
    elif rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 1):
        out = np.ascontiguousarray(rgb.reshape(rgb.shape[:2]))
    else:
        raise ValueError(
            f"write_image({path}): expected (H, W, 3), (H, W, 4) or (H, W), got shape {rgb.shape}")
    try:
        ok, data = cv2.imencode(path.suffix or ".png", out)
    except cv2.error as exc:
        raise ImageFileError(
            f"{path}: cannot encode shape {rgb.shape} {rgb.dtype} as {path.suffix!r}: {exc}") from exc
    if not ok:
        raise ImageFileError(f"{path}: cannot encode shape {rgb.shape} {rgb.dtype} as {path.suffix!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())


def _natural_key(name: str):
    """Sort key: digit runs compare as numbers, the rest case-insensitively (frame2 < frame10)."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", name) if part]


def list_frames(folder: PathLike) -> List[Path]:
    """The image files directly inside a folder, in natural order.

    Args:
        folder: directory to list (not recursive).

    Returns:
        list of Path, files whose extension is in IMAGE_EXTENSIONS (any case), hidden files
        (names starting with '.') left out, sorted so that frame_2 comes before frame_10.

    Raises:
        FileNotFoundError: the folder does not exist.
        NotADirectoryError: it is a file.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"frame folder not found: {folder}")
    if not folder.is_dir():
        raise NotADirectoryError(f"not a folder: {folder}")
    frames = [p for p in folder.iterdir()
              if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()]
    return sorted(frames, key=lambda p: _natural_key(p.name))
