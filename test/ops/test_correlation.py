import pytest
import torch

from lfn_ros.ops.correlation import correlation, correlation_reference


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
