"""lfn_ros.io.color: Middlebury colour wheel, flow colouring, legend, occlusion image."""

import numpy as np
import pytest

from lfn_ros.io import color_wheel_legend, flow_to_color, make_colorwheel, occlusion_to_image


def test_colorwheel_has_55_colours_in_six_ramps():
    wheel = make_colorwheel()
    assert wheel.shape == (55, 3)
    assert wheel.min() >= 0 and wheel.max() <= 255
    # Ramp starts: red, yellow, green, cyan, blue, magenta.
    for row, rgb in [(0, (255, 0, 0)), (15, (255, 255, 0)), (21, (0, 255, 0)),
                     (25, (0, 255, 255)), (36, (0, 0, 255)), (49, (255, 0, 255))]:
        assert wheel[row].tolist() == list(rgb), row
    assert wheel[1].tolist() == [255, 17, 0]      # floor(255 * 1 / 15)
    assert wheel[27].tolist() == [0, 209, 255]    # 255 - floor(255 * 2 / 11)
    assert wheel[54].tolist() == [255, 0, 43]     # 255 - floor(255 * 5 / 6)


def _one(u, v, max_flow=None):
    return flow_to_color(np.array([[[u, v]]], dtype=np.float32), max_flow=max_flow)[0, 0].tolist()


def test_zero_flow_is_white_and_types():
    image = flow_to_color(np.zeros((5, 7, 2), np.float32))
    assert image.shape == (5, 7, 3) and image.dtype == np.uint8
    assert (image == 255).all()


def test_directions_at_full_magnitude():
    assert _one(3.0, 0.0) == [255, 0, 0]              # +x: wheel colour of angle 0
    assert _one(3.0, -0.0) == [255, 0, 0]             # sign of zero does not matter
    assert _one(-3.0, 0.0) == [0, 209, 255]           # wheel row 27
    assert _one(0.0, 3.0) == [255, 229, 0]            # halfway rows 13 (221) and 14 (238)
    assert _one(0.0, -3.0) == [88, 0, 255]            # halfway rows 40 (78) and 41 (98)


def test_saturation_by_magnitude():
    flow = np.array([[[10.0, 0.0], [5.0, 0.0], [0.0, 0.0]]], dtype=np.float32)
    image = flow_to_color(flow)                          # normalised by max magnitude 10
    assert image[0].tolist() == [[255, 0, 0], [255, 127, 127], [255, 255, 255]]
    image = flow_to_color(flow, max_flow=5.0)            # beyond max: darkened to 75 %
    assert image[0].tolist() == [[191, 0, 0], [255, 0, 0], [255, 255, 255]]


def test_non_finite_and_unknown_are_black_and_ignored_for_max():
    flow = np.array([[[np.nan, 0.0], [0.0, np.inf], [2e9, 0.0], [4.0, 0.0], [2.0, 0.0]]],
                    dtype=np.float32)
    image = flow_to_color(flow)
    assert image[0, :3].tolist() == [[0, 0, 0]] * 3
    assert image[0, 3].tolist() == [255, 0, 0]
    assert image[0, 4].tolist() == [255, 127, 127]


def test_bgr_and_errors():
    flow = np.random.default_rng(1).standard_normal((4, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(flow_to_color(flow, convert_to_bgr=True),
                                  flow_to_color(flow)[:, :, ::-1])
    with pytest.raises(ValueError, match=r"\(4, 6\)"):
        flow_to_color(np.zeros((4, 6)))
    with pytest.raises(ValueError, match="max_flow"):
        flow_to_color(flow, max_flow=0)


def test_real_flow_colours(shared_data):
    from lfn_ros.io import read_flo
    flow = read_flo(shared_data / "Middlebury" / "RubberWhale" / "flow10.flo")
    image = flow_to_color(flow)
    unknown = (np.abs(flow) > 1e9).any(axis=2)
    assert (image[unknown] == 0).all()
    assert image[~unknown].max(axis=1).min() > 0


def test_legend():
    legend = color_wheel_legend(65)
    assert legend.shape == (65, 65, 3) and legend.dtype == np.uint8
    assert legend[32, 32].tolist() == [255, 255, 255]  # centre: zero flow
    assert legend[32, 64].tolist() == [255, 0, 0]      # right rim: +x
    assert legend[64, 32].tolist() == _one(0.0, 1.0)   # bottom rim: +y (image y down)
    assert legend[0, 0].tolist() == [255, 255, 255]    # background
    assert color_wheel_legend(9, background=(0, 0, 0))[0, 0].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(color_wheel_legend(16, convert_to_bgr=True),
                                  color_wheel_legend(16)[:, :, ::-1])
    with pytest.raises(ValueError, match="size"):
        color_wheel_legend(2)


def test_occlusion_to_image():
    mask = np.array([[True, False], [False, True]])
    image = occlusion_to_image(mask)
    assert image.dtype == np.uint8 and image.shape == (2, 2)
    assert image.tolist() == [[255, 0], [0, 255]]
    assert occlusion_to_image(np.array([[0, 3]], np.uint8)).tolist() == [[0, 255]]
    with pytest.raises(ValueError, match=r"\(2, 2, 1\)"):
        occlusion_to_image(np.zeros((2, 2, 1), bool))
