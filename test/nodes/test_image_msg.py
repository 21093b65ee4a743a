"""lfn_ros.nodes.image_msg: sensor_msgs/Image <-> numpy without cv_bridge."""

import array
import sys
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from lfn_ros.io import flow_to_color
from lfn_ros.nodes.image_msg import (ENCODINGS, ImageMsgError, array_to_image_msg, compressed_msg_to_rgb8,
                                     image_msg_to_array, image_msg_to_rgb8, to_rgb8)

REQUIRED = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "8UC1", "8UC3", "8UC4", "16UC1",
            "32FC1", "32FC2", "32FC3"]


def _random(encoding, h=5, w=7, seed=0):
    dtype, channels = ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def _hand_msg(arr, encoding, pad=0, big=False, data_type="array"):
    """An Image built field by field: rows of `pad` extra garbage bytes, chosen byte order."""
    h, w = arr.shape[:2]
    stored = arr.astype(arr.dtype.newbyteorder(">" if big else "<"))
    rows = np.ascontiguousarray(stored).reshape(h, -1).view(np.uint8)
    padded = np.full((h, rows.shape[1] + pad), 0xAB, np.uint8)
    padded[:, :rows.shape[1]] = rows
    raw = padded.tobytes()
    fields = dict(height=h, width=w, encoding=encoding, is_bigendian=int(big),
                  step=rows.shape[1] + pad)
    if data_type == "array":
        msg = Image(**fields)
        msg.data = array.array("B", raw)
        return msg
    # bytes / bytearray / list / memoryview as other producers may hand them over.
    data = {"bytes": raw, "bytearray": bytearray(raw), "list": list(raw),
            "memoryview": memoryview(raw)}[data_type]
    return SimpleNamespace(data=data, **fields)


def test_required_encodings_present():
    for encoding in REQUIRED:
        assert encoding in ENCODINGS
    assert ENCODINGS["32FC2"] == (np.dtype(np.float32), 2)
    assert ENCODINGS["mono16"] == (np.dtype(np.uint16), 1)
    assert ENCODINGS["bgra8"] == (np.dtype(np.uint8), 4)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding):
    arr = _random(encoding)
    msg = array_to_image_msg(arr, encoding)
    dtype, channels = ENCODINGS[encoding]
    assert isinstance(msg, Image)
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * channels * dtype.itemsize
    assert bool(msg.is_bigendian) == (sys.byteorder == "big")
    assert len(msg.data) == msg.step * msg.height
    back = image_msg_to_array(msg)
    assert back.dtype == dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("pad", [0, 7, 8])
def test_hand_built_padded_rows(encoding, pad):
    arr = _random(encoding, h=4, w=5, seed=pad)
    back = image_msg_to_array(_hand_msg(arr, encoding, pad=pad))
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert back.flags.aligned
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("encoding", sorted(e for e, (d, _) in ENCODINGS.items() if d.itemsize > 1))
@pytest.mark.parametrize("pad", [0, 7])
def test_big_endian_data(encoding, pad):
    arr = _random(encoding, h=3, w=6, seed=1)
    msg = _hand_msg(arr, encoding, pad=pad, big=True)
    back = image_msg_to_array(msg)
    assert back.dtype == ENCODINGS[encoding][0] and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)
    little = image_msg_to_array(_hand_msg(arr, encoding, pad=pad, big=False))
    np.testing.assert_array_equal(little, arr)


@pytest.mark.parametrize("data_type", ["array", "bytes", "bytearray", "list", "memoryview"])
def test_data_container_types(data_type):
    arr = _random("16UC1", h=3, w=4)
    msg = _hand_msg(arr, "16UC1", pad=2, data_type=data_type)
    np.testing.assert_array_equal(image_msg_to_array(msg), arr)


def test_no_copy_when_layout_allows():
    arr = _random("32FC2", h=4, w=6)
    msg = _hand_msg(arr, "32FC2", pad=8)            # padding keeps rows 4-byte aligned
    back = image_msg_to_array(msg)
    assert np.shares_memory(back, np.frombuffer(memoryview(msg.data), np.uint8))
    assert back.strides[0] == msg.step
    swapped = image_msg_to_array(_hand_msg(arr, "32FC2", pad=8, big=True))
    assert swapped.flags.c_contiguous and swapped.flags.writeable


def test_data_longer_than_needed_is_accepted():
    arr = _random("mono8", h=2, w=3)
    msg = _hand_msg(arr, "mono8")
    msg.data = array.array("B", bytes(msg.data) + b"\x00" * 5)
    np.testing.assert_array_equal(image_msg_to_array(msg), arr)


def _msg(**overrides):
    fields = dict(height=2, width=3, encoding="rgb8", is_bigendian=0, step=9, data=bytes(18))
    fields.update(overrides)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize("fields, pattern", [
    (dict(encoding="rgb9"), "unsupported image encoding 'rgb9'"),
    (dict(encoding=""), "unsupported image encoding ''"),
    (dict(encoding="yuv422"), "yuv422"),
    (dict(width=0, step=0, data=b""), "zero size: width 0, height 2"),
    (dict(height=0, data=b""), "zero size: width 3, height 0"),
    (dict(step=8), "step 8 is smaller than a row of pixels .*= 9"),
    (dict(encoding="32FC2", step=20, data=bytes(48)), "step 20 .*3 x 2 channel.* x 4 byte.*= 24"),
    (dict(data=bytes(17)), "17 bytes, expected at least step 9 x height 2 = 18"),
    (dict(step=12, data=bytes(23)), "23 bytes, expected at least step 12 x height 2 = 24"),
    (dict(data=[0] * 17 + [300]), "not a byte sequence"),
])
def test_malformed_messages(fields, pattern):
    with pytest.raises(ImageMsgError, match=pattern) as info:
        image_msg_to_array(_msg(**fields))
    assert isinstance(info.value, ValueError)
    with pytest.raises(ImageMsgError):
        image_msg_to_rgb8(_msg(**fields))


# Hand-computed to_rgb8 expectations: encoding -> (pixels of a 1 x N image, expected RGB).
U8_3 = [[10, 20, 30]]
U8_4 = [[10, 20, 30, 40]]
U16_3 = [[0x0A01, 0x14FF, 0x1E00]]
U16_4 = [[0x0A01, 0x14FF, 0x1E00, 0xFFFF]]
F_1 = [0.5, 2.0, -1.0, np.nan, 0.1]
F_1_RGB = [[128] * 3, [255] * 3, [0] * 3, [0] * 3, [26] * 3]
F_3 = [[0.0, 0.5, 1.0]]
F_4 = [[1.0, 0.2, 0.0, 0.3]]
FLOW = [[3.0, 0.0], [0.0, 0.0], [np.nan, 1.0]]
FLOW_RGB = [[255, 0, 0], [255, 255, 255], [0, 0, 0]]
EXPECTED = {
    "rgb8": (U8_3, [[10, 20, 30]]),
    "bgr8": (U8_3, [[30, 20, 10]]),
    "8UC3": (U8_3, [[30, 20, 10]]),
    "rgba8": (U8_4, [[10, 20, 30]]),
    "bgra8": (U8_4, [[30, 20, 10]]),
    "8UC4": (U8_4, [[30, 20, 10]]),
    "mono8": ([77, 200], [[77] * 3, [200] * 3]),
    "8UC1": ([77, 200], [[77] * 3, [200] * 3]),
    "mono16": ([0xFF01, 0x0100, 0x00FF], [[255] * 3, [1] * 3, [0] * 3]),
    "16UC1": ([0xFF01, 0x0100, 0x00FF], [[255] * 3, [1] * 3, [0] * 3]),
    "rgb16": (U16_3, [[10, 20, 30]]),
    "bgr16": (U16_3, [[30, 20, 10]]),
    "16UC3": (U16_3, [[30, 20, 10]]),
    "rgba16": (U16_4, [[10, 20, 30]]),
    "bgra16": (U16_4, [[30, 20, 10]]),
    "16UC4": (U16_4, [[30, 20, 10]]),
    "32FC1": (F_1, F_1_RGB),
    "64FC1": (F_1, F_1_RGB),
    "32FC3": (F_3, [[255, 128, 0]]),
    "64FC3": (F_3, [[255, 128, 0]]),
    "32FC4": (F_4, [[0, 51, 255]]),
    "64FC4": (F_4, [[0, 51, 255]]),
    "32FC2": (FLOW, FLOW_RGB),
    "64FC2": (FLOW, FLOW_RGB),
}
NO_RGB = sorted(set(ENCODINGS) - set(EXPECTED))


def test_every_encoding_has_an_rgb_expectation_or_is_rejected():
    assert set(NO_RGB) == {"8UC2", "16UC2"} | {f"{d}C{n}" for d in ("8S", "16S", "32S")
                                                for n in (1, 2, 3, 4)}


@pytest.mark.parametrize("encoding", sorted(EXPECTED))
def test_to_rgb8_hand_computed(encoding):
    pixels, expected = EXPECTED[encoding]
    dtype, _ = ENCODINGS[encoding]
    arr = np.array([pixels], dtype=dtype)
    rgb = to_rgb8(arr, encoding)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, len(expected), 3)
    assert rgb.tolist() == [expected]
    # The same through a padded, big-endian message.
    msg = _hand_msg(arr, encoding, pad=5, big=True)
    assert image_msg_to_rgb8(msg).tolist() == [expected]


def test_to_rgb8_flow_is_colour_wheel():
    flow = _random("32FC2", h=6, w=9)
    np.testing.assert_array_equal(to_rgb8(flow, "32FC2"), flow_to_color(flow))


@pytest.mark.parametrize("encoding", NO_RGB)
def test_to_rgb8_rejects_encodings_without_rgb(encoding):
    with pytest.raises(ImageMsgError, match=f"{encoding}.*no RGB interpretation"):
        to_rgb8(_random(encoding, h=2, w=2), encoding)


def test_to_rgb8_checks_array():
    with pytest.raises(ImageMsgError, match=r"rgb8 needs an array of shape \(H, W, 3\), got shape \(2, 2\)"):
        to_rgb8(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(ImageMsgError, match="mono16 needs dtype uint16, got uint8"):
        to_rgb8(np.zeros((2, 2), np.uint8), "mono16")
    assert to_rgb8(np.zeros((2, 2, 1), np.uint8), "mono8").shape == (2, 2, 3)


@pytest.mark.parametrize("arr, encoding, pattern", [
    (np.zeros((4, 4), np.float64), "32FC1", "32FC1 needs dtype float32, got float64"),
    (np.zeros((4, 4, 3), np.float32), "32FC2", r"32FC2 needs an array of shape \(H, W, 2\), got shape \(4, 4, 3\)"),
    (np.zeros((4, 4), np.uint8), "rgb8", r"got shape \(4, 4\)"),
    (np.zeros((4, 4, 3), np.int8), "rgb8", "needs dtype uint8, got int8"),
    (np.zeros((0, 4, 3), np.uint8), "rgb8", r"zero size: shape \(0, 4, 3\)"),
    (np.zeros((2, 2, 3), np.uint8), "jpeg", "unsupported image encoding 'jpeg'"),
    (np.zeros(5, np.uint8), "mono8", r"got shape \(5,\)"),
])
def test_array_to_image_msg_validation(arr, encoding, pattern):
    with pytest.raises(ImageMsgError, match=pattern):
        array_to_image_msg(arr, encoding)


def test_array_to_image_msg_header_and_layouts():
    header = Header(frame_id="camera")
    header.stamp.sec = 12
    header.stamp.nanosec = 345
    flow = _random("32FC2", h=3, w=4)
    msg = array_to_image_msg(flow, "32FC2", header=header)
    assert msg.header.frame_id == "camera" and msg.header.stamp.sec == 12
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"
    # Non-contiguous and other-byte-order inputs are laid out contiguously in native order.
    big = flow.astype(flow.dtype.newbyteorder("S"))
    np.testing.assert_array_equal(image_msg_to_array(array_to_image_msg(big, "32FC2")), flow)
    strided = _random("rgb8", h=6, w=8)[::2, ::2]
    np.testing.assert_array_equal(image_msg_to_array(array_to_image_msg(strided, "rgb8")), strided)
    mono = _random("mono8", h=3, w=3)[:, :, None]
    assert image_msg_to_array(array_to_image_msg(mono, "mono8")).shape == (3, 3)


def _best_ms(fn, repeats=7):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def test_flow_message_build_is_fast(monkeypatch):
    flow = np.random.default_rng(0).standard_normal((480, 640, 2)).astype(np.float32)
    ms = _best_ms(lambda: array_to_image_msg(flow, "32FC2"))
    assert ms < 20, f"640x480 32FC2 message took {ms:.2f} ms"
    # Also with rosidl field checks on (ROS_PYTHON_CHECK_FIELDS=1), where assigning bytes or a
    # list would loop over 2.4 M values in Python.
    import sensor_msgs.msg._image as image_module
    monkeypatch.setattr(image_module, "ros_python_check_fields", "1")
    assert Image()._check_fields
    msg = array_to_image_msg(flow, "32FC2")
    ms_checked = _best_ms(lambda: array_to_image_msg(flow, "32FC2"), repeats=3)
    assert ms_checked < 20, f"with field checks: {ms_checked:.2f} ms"
    np.testing.assert_array_equal(image_msg_to_array(msg), flow)


def test_real_image_through_messages(shared_data):
    from lfn_ros.io import read_image
    rgb = read_image(shared_data / "Sintel/clean/alley_1/frame_0001.png")
    np.testing.assert_array_equal(image_msg_to_rgb8(array_to_image_msg(rgb, "rgb8")), rgb)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    np.testing.assert_array_equal(image_msg_to_rgb8(array_to_image_msg(bgr, "bgr8")), rgb)


def _compressed(image_bgr, ext, fmt):
    ok, buf = cv2.imencode(ext, image_bgr)
    assert ok
    msg = CompressedImage(format=fmt)
    msg.data = array.array("B", buf.tobytes())
    return msg


def test_compressed_png_and_jpeg():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    out = compressed_msg_to_rgb8(_compressed(rgb[:, :, ::-1], ".png", "png"))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)
    smooth = np.zeros((24, 32, 3), np.uint8)
    smooth[..., 0] = 240   # red in RGB
    smooth[..., 2] = 30
    out = compressed_msg_to_rgb8(_compressed(smooth[:, :, ::-1], ".jpg", "rgb8; jpeg compressed bgr8"))
    assert out.shape == (24, 32, 3)
    assert np.abs(out.astype(int) - smooth).max() <= 6
    grey = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    out = compressed_msg_to_rgb8(_compressed(grey, ".png", "mono8; png compressed"))
    np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))


def test_compressed_errors():
    msg = CompressedImage(format="jpeg")
    with pytest.raises(ImageMsgError, match="'jpeg'.*no data"):
        compressed_msg_to_rgb8(msg)
    msg.data = array.array("B", b"\xff\xd8\xff garbage that is not a jpeg")
    with pytest.raises(ImageMsgError, match=r"'jpeg', \d+ bytes.*cannot be decoded"):
        compressed_msg_to_rgb8(msg)
