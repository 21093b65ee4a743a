"""lfn_ros.io.kitti: KITTI 16-bit flow PNG round trips and the real KITTI 2012 files."""

import cv2
import numpy as np
import pytest

from lfn_ros.io import KITTI_MAX_FLOW, KITTI_MIN_FLOW, FlowFileError, read_kitti_flow, write_kitti_flow


def test_round_trip_exact_at_1_64_px(tmp_path):
    rng = np.random.default_rng(0)
    shape = (37, 53)
    flow = (rng.integers(-512 * 64, 512 * 64, size=shape + (2,)) / 64.0).astype(np.float32)
    valid = rng.random(shape) > 0.3
    path = tmp_path / "deep" / "f.png"
    write_kitti_flow(path, flow, valid)
    back, back_valid = read_kitti_flow(path)
    assert back.shape == flow.shape and back.dtype == np.float32
    assert back_valid.dtype == bool
    np.testing.assert_array_equal(back_valid, valid)
    np.testing.assert_array_equal(back[valid], flow[valid])
    assert (back[~valid] == 0).all()


def test_file_layout_is_bgr_valid_v_u(tmp_path):
    flow = np.array([[[1.5, -2.0]]], dtype=np.float32)
    path = tmp_path / "one.png"
    write_kitti_flow(path, flow)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (1, 1, 3)
    assert raw[0, 0].tolist() == [1, 2 ** 15 - 128, 2 ** 15 + 96]


def test_rounding_clipping_and_default_valid(tmp_path):
    flow = np.array([[[0.007, 0.009], [1000.0, -1000.0], [np.nan, 1.0], [1 / 128 + 1e-4, -3.0]]],
                    dtype=np.float32)
    path = tmp_path / "c.png"
    write_kitti_flow(path, flow)
    back, valid = read_kitti_flow(path)
    assert valid.tolist() == [[True, True, False, True]]
    np.testing.assert_array_equal(back[0, 0], [0.0, 1 / 64])
    np.testing.assert_array_equal(back[0, 1], [KITTI_MAX_FLOW, KITTI_MIN_FLOW])
    np.testing.assert_array_equal(back[0, 3], [1 / 64, -3.0])


def test_write_errors(tmp_path):
    with pytest.raises(ValueError, match=".png"):
        write_kitti_flow(tmp_path / "f.flo", np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"\(3, 2, 3\)"):
        write_kitti_flow(tmp_path / "f.png", np.zeros((3, 2, 3)))
    with pytest.raises(ValueError, match="valid"):
        write_kitti_flow(tmp_path / "f.png", np.zeros((3, 2, 2)), valid=np.ones((2, 3), bool))


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_kitti_flow(tmp_path / "missing.png")
    eight_bit = tmp_path / "eight.png"
    cv2.imwrite(str(eight_bit), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FlowFileError, match="eight.png.*16-bit.*uint8"):
        read_kitti_flow(eight_bit)
    grey16 = tmp_path / "grey16.png"
    cv2.imwrite(str(grey16), np.zeros((4, 4), np.uint16))
    with pytest.raises(FlowFileError, match="1 channel"):
        read_kitti_flow(grey16)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png at all")
    with pytest.raises(FlowFileError, match="junk.png"):
        read_kitti_flow(junk)


def test_read_kitti2012(shared_data):
    folder = shared_data / "KITTI2012" / "000045"
    noc, noc_valid = read_kitti_flow(folder / "flow_noc_10.png")
    occ, occ_valid = read_kitti_flow(folder / "flow_occ_10.png")
    assert noc.shape == occ.shape == (376, 1241, 2)
    # Sparse ground truth (lidar): occ has every noc pixel plus the occluded ones.
    assert 0 < noc_valid.sum() < occ_valid.sum() < noc_valid.size
    assert not (noc_valid & ~occ_valid).any()
    for flow, valid in ((noc, noc_valid), (occ, occ_valid)):
        assert np.abs(flow[valid][:, 0]).max() < 300
        assert np.abs(flow[valid][:, 1]).max() < 300
        assert np.abs(flow[valid]).max() > 5  # a driving car moves the scene
    # Same scene: on shared pixels the two files agree to a fraction of a pixel.
    both = noc_valid & occ_valid
    assert np.median(np.abs(noc[both] - occ[both])) == 0
    assert np.abs(noc[both] - occ[both]).max() < 0.5


def test_read_mmflow_sparse(shared_data):
    flow, valid = read_kitti_flow(shared_data / "mmflow_testdata" / "sparse_flow.png")
    assert flow.shape == (50, 50, 2)
    assert 0 < valid.sum() < valid.size // 10
    assert np.abs(flow[valid]).max() < 100
    assert (flow[~valid] == 0).all()
