"""lfn_ros.io.flo: .flo round trips, real .flo files, malformed files, PFM."""

import struct

import numpy as np
import pytest

from lfn_ros.io import FlowFileError, read_flo, read_pfm, write_flo


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (31, 5), (64, 33)])
def test_flo_round_trip(tmp_path, shape):
    rng = np.random.default_rng(sum(shape))
    flow = (rng.standard_normal(shape + (2,)) * 50).astype(np.float32)
    flow[0, 0] = [1e10, -1e10]  # unknown markers survive
    path = tmp_path / "sub" / "f.flo"
    write_flo(path, flow)
    assert path.stat().st_size == 12 + flow.size * 4
    back = read_flo(path)
    assert back.dtype == np.float32 and back.shape == flow.shape
    np.testing.assert_array_equal(back, flow)
    assert back.flags.writeable and back.flags.c_contiguous


def test_flo_layout_is_row_major_u_then_v(tmp_path):
    path = tmp_path / "hand.flo"
    w, h = 3, 2
    values = np.arange(w * h * 2, dtype="<f4")
    path.write_bytes(b"PIEH" + struct.pack("<ii", w, h) + values.tobytes())
    flow = read_flo(path)
    assert flow.shape == (2, 3, 2)
    assert flow[0, 1].tolist() == [2.0, 3.0]   # pixel (x=1, y=0): u, v
    assert flow[1, 0].tolist() == [6.0, 7.0]   # pixel (x=0, y=1)


def test_write_flo_accepts_float64_and_rejects_bad_shapes(tmp_path):
    write_flo(tmp_path / "a.flo", np.ones((2, 3, 2)))
    assert read_flo(tmp_path / "a.flo").dtype == np.float32
    for bad in (np.zeros((4, 4)), np.zeros((4, 4, 3)), np.zeros((0, 4, 2))):
        with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
            write_flo(tmp_path / "b.flo", bad)


def _good_bytes(w=4, h=3):
    return b"PIEH" + struct.pack("<ii", w, h) + np.zeros(w * h * 2, "<f4").tobytes()


@pytest.mark.parametrize("data, pattern", [
    (b"", "too short"),
    (b"PIEH\x04\x00", "too short"),
    (b"PIEG" + _good_bytes()[4:], "magic"),
    (_good_bytes()[:-1], "truncated"),
    (_good_bytes()[:40], "truncated"),
    (_good_bytes() + b"\x00", "trailing"),
    (b"PIEH" + struct.pack("<ii", 0, 3), "absurd"),
    (b"PIEH" + struct.pack("<ii", -5, 3), "absurd"),
    (b"PIEH" + struct.pack("<ii", 100000, 100000), "absurd"),
    (b"PIEH" + struct.pack("<ii", 60000, 60000) + b"\x00" * 64, "truncated"),
])
def test_malformed_flo_raises_naming_file(tmp_path, data, pattern):
    path = tmp_path / "bad_file.flo"
    path.write_bytes(data)
    with pytest.raises(FlowFileError, match=pattern) as info:
        read_flo(path)
    assert "bad_file.flo" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_flo(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_flo(tmp_path / "nope.flo")


SINTEL = ["alley_1/frame_0001", "alley_1/frame_0002", "alley_1/frame_0003", "alley_1/frame_0004",
          "alley_1/frame_0005", "alley_2/frame_0002", "cave_2/frame_0002"]


@pytest.mark.parametrize("name", SINTEL)
def test_read_sintel(shared_data, name):
    flow = read_flo(shared_data / "Sintel" / "flow" / f"{name}.flo")
    assert flow.shape == (436, 1024, 2) and flow.dtype == np.float32
    assert np.isfinite(flow).all()
    assert 0.1 < np.abs(flow).max() < 500


def test_read_flying_chairs(shared_data):
    files = sorted((shared_data / "FlyingChairs").glob("*/gt.flo"))
    assert len(files) == 9
    for path in files:
        flow = read_flo(path)
        assert flow.shape == (384, 512, 2), path
        assert np.isfinite(flow).all() and np.abs(flow).max() < 500


def test_read_middlebury_with_unknown(shared_data):
    flow = read_flo(shared_data / "Middlebury" / "RubberWhale" / "flow10.flo")
    assert flow.shape == (388, 584, 2)
    unknown = (np.abs(flow) > 1e9).any(axis=2)
    assert 0 < unknown.sum() < unknown.size // 10
    assert np.abs(flow[~unknown]).max() < 20  # RubberWhale moves a few pixels


def test_read_mmflow_flo(shared_data):
    folder = shared_data / "mmflow_testdata"
    for name in ("0000000-flow_01.flo", "0000000-flow_10.flo", "00001_flow.flo"):
        flow = read_flo(folder / name)
        assert flow.shape == (50, 50, 2) and np.isfinite(flow).all()


def test_read_mmflow_pfm_matches_occlusion_png(shared_data):
    import cv2
    folder = shared_data / "mmflow_testdata"
    for tag in ("01", "10"):
        weights = read_pfm(folder / f"0000000-occ_weights_{tag}.pfm")
        assert weights.shape == (50, 50) and weights.dtype == np.float32
        assert set(np.unique(weights).tolist()) <= {0.0, 1.0}
        occ = cv2.imread(str(folder / f"0000000-occ_{tag}.png"), cv2.IMREAD_GRAYSCALE)
        # The PFM stores rows bottom-to-top; read correctly it equals the PNG mask.
        np.testing.assert_array_equal(weights > 0.5, occ > 0)


def _pfm_bytes(image, big_endian, header_sep=b"\n"):
    image = np.asarray(image, dtype=np.float32)
    magic = b"PF" if image.ndim == 3 else b"Pf"
    h, w = image.shape[:2]
    scale = b"1.0" if big_endian else b"-1.0"
    rows = np.flipud(image).astype(">f4" if big_endian else "<f4")
    return magic + header_sep + f"{w} {h}".encode() + header_sep + scale + b"\n" + rows.tobytes()


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
def test_pfm_endianness_and_row_order(tmp_path, big_endian, channels):
    rng = np.random.default_rng(channels)
    shape = (5, 7) if channels == 1 else (5, 7, 3)
    image = rng.standard_normal(shape).astype(np.float32)
    path = tmp_path / "x.pfm"
    path.write_bytes(_pfm_bytes(image, big_endian))
    back = read_pfm(path)
    assert back.shape == shape and back.dtype == np.float32
    np.testing.assert_array_equal(back, image)


def test_pfm_header_on_one_line(tmp_path):
    image = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = tmp_path / "y.pfm"
    path.write_bytes(_pfm_bytes(image, False, header_sep=b" "))
    np.testing.assert_array_equal(read_pfm(path), image)


@pytest.mark.parametrize("data, pattern", [
    (b"P6\n2 2\n255\n", "not a PFM"),
    (b"Pf\n2 2\n", "incomplete"),
    (b"Pf\nx 2\n-1\n" + b"\0" * 16, "unparsable"),
    (b"Pf\n0 2\n-1\n", "absurd"),
    (b"Pf\n2 2\n0\n" + b"\0" * 16, "scale"),
    (b"Pf\n2 2\n-1\n" + b"\0" * 15, "truncated"),
])
def test_malformed_pfm(tmp_path, data, pattern):
    path = tmp_path / "bad.pfm"
    path.write_bytes(data)
    with pytest.raises(FlowFileError, match=pattern) as info:
        read_pfm(path)
    assert "bad.pfm" in str(info.value)
