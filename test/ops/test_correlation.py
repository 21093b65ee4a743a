import pytest
import torch

from lfn_ros.ops.correlation import correlation, correlation_loop, correlation_reference


@pytest.mark.parametrize("stride,shape", [(1, (2, 5, 9, 11)), (2, (1, 4, 12, 10)), (2, (2, 3, 7, 9))])
def test_matches_brute_force_loop(stride, shape):
    torch.manual_seed(stride)
    first, second = torch.randn(shape), torch.randn(shape)
    fast = correlation(first, second, max_displacement=3, stride=stride)
    slow = correlation_reference(first, second, max_displacement=3, stride=stride)
    assert fast.shape == slow.shape == (shape[0], 49, -(-shape[2] // stride), -(-shape[3] // stride))
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)


def test_shifted_copy_peaks_at_the_shift():
    torch.manual_seed(0)
    first = torch.randn(1, 16, 20, 20)
    second = torch.roll(first, shifts=(2, -1), dims=(2, 3))  # content moved down 2, left 1
    cost = correlation(first, second, max_displacement=3)
    best = cost[0, :, 5:15, 5:15].mean(dim=(1, 2)).argmax().item()
    dy, dx = divmod(best, 7)
    assert (dy - 3, dx - 3) == (2, -1)


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(1, 3, 8, 8\)"):
        correlation(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


@pytest.mark.parametrize("stride,shape", [(1, (2, 5, 9, 11)), (2, (2, 4, 12, 10)), (2, (1, 3, 7, 9))])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_backward_matches_autograd_through_the_loop(stride, shape, channels_last):
    torch.manual_seed(stride + 10 * channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    first = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    second = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    weight = torch.randn(shape[0], 49, -(-shape[2] // stride), -(-shape[3] // stride), dtype=torch.float64)
    fused = correlation(first, second, max_displacement=3, stride=stride)
    assert fused.grad_fn is not None and "Correlation" in type(fused.grad_fn).__name__
    grads = torch.autograd.grad((fused * weight).sum(), (first, second))
    plain = correlation_loop(first, second, max_displacement=3, stride=stride)
    expected = torch.autograd.grad((plain * weight).sum(), (first, second))
    torch.testing.assert_close(fused, plain, rtol=0, atol=0)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # and torch's numerical check of the Function itself
    small = [t.detach()[:1, :2, :6, :5].clone().requires_grad_() for t in (first, second)]
    assert torch.autograd.gradcheck(lambda a, b: correlation(a, b, 3, stride), small)


def test_fused_backward_in_bf16_stays_close_to_fp32():
    torch.manual_seed(3)
    first32 = torch.randn(2, 32, 12, 16, requires_grad=True)
    second32 = torch.randn(2, 32, 12, 16, requires_grad=True)
    weight = torch.randn(2, 49, 12, 16)
    ref = torch.autograd.grad((correlation(first32, second32) * weight).sum(), (first32, second32))
    first16 = first32.detach().bfloat16().requires_grad_()
    second16 = second32.detach().bfloat16().requires_grad_()
    got = torch.autograd.grad((correlation(first16, second16).float() * weight).sum(), (first16, second16))
    for g, r in zip(got, ref):
        assert g.dtype == torch.bfloat16
        # relative to the gradient's scale: bf16 keeps 8 bits, so about 1 % of the largest value
        assert float((g.float() - r).abs().max()) <= 0.02 * float(r.abs().max())


def test_inference_uses_the_plain_loop():
    first, second = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        out = correlation(first.requires_grad_(), second)
    assert out.grad_fn is None
