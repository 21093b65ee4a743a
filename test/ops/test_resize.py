import pytest
import torch

from lfn_ros.ops.resize import multiple_size, resize_flow, resize_images


def test_multiple_size():
    assert multiple_size(436, 1024) == (448, 1024)
    assert multiple_size(375, 1242) == (384, 1248)
    assert multiple_size(32, 32) == (32, 32)
    with pytest.raises(ValueError):
        multiple_size(0, 10)


def test_constant_flow_round_trip_keeps_motion_in_pixels():
    flow = torch.zeros(1, 2, 436, 1024)
    flow[:, 0], flow[:, 1] = 3.0, -2.0
    up = resize_flow(flow, (448, 1024))
    torch.testing.assert_close(up[:, 0], torch.full((1, 448, 1024), 3.0))
    torch.testing.assert_close(up[:, 1], torch.full((1, 448, 1024), -2.0 * 448 / 436))
    back = resize_flow(up, (436, 1024))
    torch.testing.assert_close(back, flow, rtol=1e-5, atol=1e-5)


def test_half_size_halves_vectors():
    flow = torch.ones(1, 2, 64, 64)
    torch.testing.assert_close(resize_flow(flow, (32, 32)), torch.full((1, 2, 32, 32), 0.5))


def test_resize_images_noop_and_shape():
    x = torch.rand(1, 3, 64, 96)
    assert resize_images(x, (64, 96)) is x
    assert resize_images(x, (32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError):
        resize_flow(torch.zeros(1, 3, 4, 4), (2, 2))
