import pytest
import torch

from lfn_ros.ops.warp import warp


def test_zero_flow_is_identity():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 13, 17)
    out, mask = warp(x, torch.zeros(2, 2, 13, 17), return_mask=True)
    torch.testing.assert_close(out, x, rtol=0, atol=1e-5)
    assert mask.all()


@pytest.mark.parametrize("dx,dy", [(1, 0), (0, 2), (-3, 1), (4, -2)])
def test_integer_shift_is_exact(dx, dy):
    torch.manual_seed(1)
    x = torch.randn(1, 2, 16, 20)
    flow = torch.zeros(1, 2, 16, 20)
    flow[:, 0], flow[:, 1] = dx, dy
    out, mask = warp(x, flow, return_mask=True)
    ys = slice(max(0, -dy), 16 - max(0, dy))
    xs = slice(max(0, -dx), 20 - max(0, dx))
    expected = x[:, :, max(0, dy): 16 + min(0, dy), max(0, dx): 20 + min(0, dx)]
    torch.testing.assert_close(out[:, :, ys, xs], expected, rtol=0, atol=1e-5)
    assert mask[:, :, ys, xs].all()
    assert int((~mask).sum()) == 16 * 20 - (16 - abs(dy)) * (20 - abs(dx))
    # Outside the frame reads zero.
    assert out[~mask.expand_as(out)].abs().max() < 1e-5


def test_half_pixel_is_bilinear():
    x = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 4, 8).contiguous()
    flow = torch.zeros(1, 2, 4, 8)
    flow[:, 0] = 0.5
    out = warp(x, flow)
    torch.testing.assert_close(out[0, 0, :, :7], x[0, 0, :, :7] + 0.5)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="flow"):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="differ"):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 9))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_keeps_subpixel_positions(dtype):
    # A ramp shifted by 0.25 px: positions near x = 200 must not be quantised to bf16's 1 px.
    ramp = torch.arange(256.0).view(1, 1, 1, 256).expand(1, 1, 4, 256)
    flow = torch.zeros(1, 2, 4, 256, dtype=dtype)
    flow[:, 0] = 0.25
    out = warp(ramp.to(dtype), flow)
    assert out.dtype == dtype
    error = (out.float() - (ramp + 0.25))[..., 8:-8].abs() / (ramp + 0.25)[..., 8:-8]
    assert error.max() < 1e-2  # only the output's own rounding remains
