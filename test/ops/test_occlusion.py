import pytest
import torch

from lfn_ros.ops.occlusion import forward_backward_occlusion


def test_consistent_translation_is_not_occluded_except_leaving_pixels():
    fw = torch.zeros(1, 2, 20, 30)
    fw[:, 0] = 2.0
    bw = -fw
    occ = forward_backward_occlusion(fw, bw)
    assert occ.shape == (1, 1, 20, 30) and occ.dtype == torch.bool
    assert not occ[..., :28].any()  # interior consistent
    assert occ[..., 29:].all()  # destination x + 2 > 29 leaves the frame


def test_inconsistent_region_is_occluded():
    fw = torch.zeros(1, 2, 16, 16)
    bw = torch.zeros(1, 2, 16, 16)
    bw[:, 0, 4:8, 4:8] = 3.0  # backward flow disagrees in a block
    occ = forward_backward_occlusion(fw, bw)
    assert occ[0, 0, 4:8, 4:8].all()
    assert occ.sum() == 16


def test_thresholds_configurable_and_validated():
    fw = torch.zeros(1, 2, 8, 8)
    bw = torch.full((1, 2, 8, 8), 0.6)  # mismatch^2 = 0.72
    assert forward_backward_occlusion(fw, bw, beta=0.5).all()
    assert not forward_backward_occlusion(fw, bw, beta=1.0).any()
    with pytest.raises(ValueError):
        forward_backward_occlusion(fw, bw, alpha=-1)
