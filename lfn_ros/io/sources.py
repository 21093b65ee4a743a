"""Frame sources without ROS: a folder of images, a video file, or the embedded demo sequence.

Used by image_player (which publishes them as a camera), the demo and the benchmarks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..resources import SEQUENCE_DIR
from .images import list_frames, read_image


class SourceError(ValueError):
    """The source cannot be read (missing, empty, not images or video)."""


def _iter_folder(folder: Path) -> Iterator[np.ndarray]:
    frames = list_frames(folder)
    if not frames:
        raise SourceError(f"no image files in {folder}")
    for path in frames:
        yield read_image(path)


def _iter_video(path: Path) -> Iterator[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError(f"cannot open {path} as a video")
    try:
        produced = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            produced += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if produced == 0:
            raise SourceError(f"{path}: no frames could be decoded")
    finally:
        capture.release()


def iter_source(source: str | os.PathLike = "") -> Iterator[np.ndarray]:
    """One pass over a source's frames as (H, W, 3) uint8 RGB arrays.

    Args:
        source: a folder of images, a video file, or "" for the demo sequence.

    Raises:
        FileNotFoundError: nothing at ``source`` (at once); SourceError: nothing usable there
        (when iteration starts).
    """
    path = Path(source) if str(source) else SEQUENCE_DIR
    if path.is_dir():
        return _iter_folder(path)
    if path.is_file():
        return _iter_video(path)
    raise FileNotFoundError(f"frame source not found: {path}")


def iter_frames(source: str | os.PathLike = "", loop: bool = False, count: int = 0) -> Iterator[np.ndarray]:
    """Frames of ``source``, again from the start when ``loop``, at most ``count`` (0: no limit)."""
    produced = 0
    while True:
        any_frame = False
        for rgb in iter_source(source):
            any_frame = True
            yield rgb
            produced += 1
            if count and produced >= count:
                return
        if not loop or not any_frame:
            return


def shifted_pair(dx: int, dy: int, size: tuple | None = None, margin: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A known motion for checks: the first frame of the embedded sequence (resized to ``size``
    (H, W) if given) and the same scene moved by (dx, dy) whole pixels, edges reflected.
    The true flow from the first image to the second is (dx, dy) everywhere."""
    image = next(iter_source(""))
    if size is not None:
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    if max(abs(dx), abs(dy)) >= margin:
        raise ValueError(f"shift ({dx}, {dy}) must be smaller than the margin {margin}")
    big = np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="reflect")
    height, width = image.shape[:2]
    first = big[margin:margin + height, margin:margin + width]
    second = big[margin - dy:margin - dy + height, margin - dx:margin - dx + width]  # content at x is at x + d
    return np.ascontiguousarray(first), np.ascontiguousarray(second)
