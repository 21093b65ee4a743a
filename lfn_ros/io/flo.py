"""Dense flow files: Middlebury ``.flo`` (read and write) and ``.pfm`` (read).

Layout of a ``.flo`` file (Baker et al., Middlebury flow benchmark), all little-endian:

    bytes 0-3    float32 magic 202021.25 (the ASCII bytes ``PIEH``)
    bytes 4-7    int32 width  W
    bytes 8-11   int32 height H
    bytes 12-    float32 (u, v) per pixel, row-major, H * W * 2 values

``u`` is the horizontal displacement (pixels, positive to the right), ``v`` the vertical one
(pixels, positive down). Middlebury marks unknown pixels with values above 1e9 (see
``UNKNOWN_FLOW_THRESHOLD``); the reader returns them unchanged.

A ``.pfm`` file (portable float map) has a text header ``PF`` (3 channels) or ``Pf`` (1 channel),
then ``W H``, then a scale whose sign gives the byte order (negative: little-endian, positive:
big-endian), then float32 rows stored bottom-to-top.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

FLO_MAGIC = 202021.25
"""Magic number at the start of every ``.flo`` file (float32, little-endian)."""

UNKNOWN_FLOW_THRESHOLD = 1e9
"""Middlebury convention: a flow component with absolute value above this is unknown."""

MAX_DIMENSION = 1 << 16
"""Largest width or height accepted by the readers (pixels); larger means a corrupt header."""

_HEADER_BYTES = 12
_FLO_HEADER = np.dtype([("magic", "<f4"), ("width", "<i4"), ("height", "<i4")])

__all__ = [
    "FLO_MAGIC",
    "UNKNOWN_FLOW_THRESHOLD",
    "FlowFileError",
    "read_flo",
    "write_flo",
    "read_pfm",
]


class FlowFileError(ValueError):
    """A flow file is malformed: wrong magic, truncated, absurd size or undecodable."""


def read_flo(path: PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file.

    Args:
        path: file to read.

    Returns:
        flow: (H, W, 2) float32, native byte order, pixels; channel 0 = u (x, right),
        channel 1 = v (y, down). Unknown pixels keep their stored values (> 1e9).

    Raises:
        FileNotFoundError: the file does not exist.
        FlowFileError: wrong magic, non-positive or absurd size, or a file size that does not
            match the header (truncated or trailing bytes). The message names the file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < _HEADER_BYTES:
        raise FlowFileError(
            f"{path}: {len(raw)} bytes is too short for a .flo file (header is 12 bytes)")
    header = np.frombuffer(raw, dtype=_FLO_HEADER, count=1)[0]
    magic = float(header["magic"])
    width, height = int(header["width"]), int(header["height"])
    if magic != FLO_MAGIC:
        raise FlowFileError(
            f"{path}: not a .flo file, magic is {magic!r} (bytes {raw[:4]!r}), "
            f"expected {FLO_MAGIC} (b'PIEH')")
    if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
        raise FlowFileError(
            f"{path}: absurd size in header: width {width}, height {height} "
            f"(each must be in 1..{MAX_DIMENSION})")
    expected = _HEADER_BYTES + width * height * 2 * 4
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise FlowFileError(
            f"{path}: {what}: {len(raw)} bytes, expected {expected} for "
            f"width {width} x height {height} x 2 float32 + 12-byte header")
    flow = np.frombuffer(raw, dtype="<f4", count=width * height * 2, offset=_HEADER_BYTES)
    # astype copies into a writable, native-order array (bytes buffers are read-only).
    return flow.reshape(height, width, 2).astype(np.float32)


def write_flo(path: PathLike, flow: np.ndarray) -> None:
    """Write a Middlebury ``.flo`` file.

    Args:
        path: file to write; parent directories are created.
        flow: (H, W, 2) array of a real dtype, pixels; channel 0 = u (x), channel 1 = v (y).
            Stored as little-endian float32; NaN and unknown values (> 1e9) are written as they
            are.

    Raises:
        ValueError: wrong shape or dtype (the shape is in the message).
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[0] < 1 or flow.shape[1] < 1:
        raise ValueError(f"write_flo({path}): flow must have shape (H, W, 2), got {flow.shape}")
    if not (np.issubdtype(flow.dtype, np.floating) or np.issubdtype(flow.dtype, np.integer)):
        raise ValueError(f"write_flo({path}): flow must be real-valued, got dtype {flow.dtype}")
    height, width = flow.shape[:2]
    if width > MAX_DIMENSION or height > MAX_DIMENSION:
        raise ValueError(f"write_flo({path}): flow shape {flow.shape} exceeds {MAX_DIMENSION}")
    header = np.array([(FLO_MAGIC, width, height)], dtype=_FLO_HEADER)
    data = np.ascontiguousarray(flow, dtype="<f4")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(data.tobytes())


def _pfm_tokens(raw: bytes, path: Path, count: int) -> "tuple[list[str], int]":
    """Split the first ``count`` whitespace-separated header tokens of a PFM file.

    Returns the tokens and the offset of the pixel data: one whitespace byte after the last
    token, as the format prescribes.
    """
    tokens = []
    pos = 0
    limit = min(len(raw), 256)  # a PFM header is a few dozen bytes
    while len(tokens) < count:
        while pos < limit and raw[pos:pos + 1].isspace():
            pos += 1
        start = pos
        while pos < limit and not raw[pos:pos + 1].isspace():
            pos += 1
        if pos >= limit or start == pos:
            raise FlowFileError(f"{path}: incomplete PFM header {raw[:limit]!r}")
        tokens.append(raw[start:pos].decode("ascii", errors="replace"))
    return tokens, pos + 1


def read_pfm(path: PathLike) -> np.ndarray:
    """Read a PFM (portable float map) file.

    Args:
        path: file to read.

    Returns:
        (H, W) float32 for a ``Pf`` (grey) file or (H, W, 3) float32 for a ``PF`` (colour) file,
        native byte order, rows top-to-bottom (the file stores them bottom-to-top). The absolute
        value of the header's scale is not applied (it carries no unit in practice).

    Raises:
        FileNotFoundError: the file does not exist.
        FlowFileError: bad magic, bad size, zero scale or a data size that does not match.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] not in (b"PF", b"Pf"):
        raise FlowFileError(f"{path}: not a PFM file, starts with {raw[:2]!r} (expected b'PF' or b'Pf')")
    (magic, w_text, h_text, scale_text), offset = _pfm_tokens(raw, path, 4)
    if magic not in ("PF", "Pf"):
        raise FlowFileError(f"{path}: not a PFM file, magic {magic!r}")
    channels = 3 if magic == "PF" else 1
    try:
        width, height, scale = int(w_text), int(h_text), float(scale_text)
    except ValueError as exc:
        raise FlowFileError(
            f"{path}: unparsable PFM header: width {w_text!r}, height {h_text!r}, "
            f"scale {scale_text!r}") from exc
    if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
        raise FlowFileError(f"{path}: absurd PFM size: width {width}, height {height}")
    if scale == 0.0 or not np.isfinite(scale):
        raise FlowFileError(f"{path}: PFM scale must be non-zero and finite, got {scale_text!r}")
    dtype = "<f4" if scale < 0 else ">f4"
    count = width * height * channels
    available = len(raw) - offset
    if available < count * 4:
        raise FlowFileError(
            f"{path}: truncated PFM: {available} data bytes, expected {count * 4} for "
            f"{width} x {height} x {channels} float32")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    shape = (height, width) if channels == 1 else (height, width, 3)
    return np.array(np.flipud(data.reshape(shape)), dtype=np.float32, order="C")
