import json
from pathlib import Path

import pytest
import torch

from lfn_ros.model.liteflownet import FEATURE_CHANNELS, LEVELS, LiteFlowNet, count_parameters

GOLDEN = Path(__file__).with_name("golden_liteflownet.json")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LiteFlowNet().eval()


def test_parameter_count_matches_the_paper(model):
    count = count_parameters(model)
    assert count == 5_381_969  # this spec, counted layer by layer
    assert abs(count - 5.37e6) / 5.37e6 < 0.01  # paper: 5.37 M


def test_netc_pyramid_shapes(model):
    features = model.netc(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape) for f in features] == [
        (1, FEATURE_CHANNELS[k], 64 // 2 ** (k - 1), 96 // 2 ** (k - 1)) for k in range(1, 7)
    ]


@pytest.mark.parametrize("height,width", [(375, 1242), (436, 1024)])
def test_full_resolution_output_for_odd_sizes(model, height, width):
    image = torch.rand(1, 3, height, width)
    with torch.no_grad():
        flow = model(image, image)
    assert flow.shape == (1, 2, height, width)
    assert flow.dtype == torch.float32 and torch.isfinite(flow).all()


def test_every_level_flow_shape(model):
    with torch.no_grad():
        flow, levels = model(torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96), return_levels=True)
    assert flow.shape == (2, 2, 64, 96)
    assert [tuple(f.shape) for f in levels] == [(2, 2, 64 // 2 ** (k - 1), 96 // 2 ** (k - 1)) for k in LEVELS]


def test_finest_level_3_stops_at_quarter_resolution():
    torch.manual_seed(0)
    model = LiteFlowNet(finest_level=3).eval()
    with torch.no_grad():
        flow, levels = model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), return_levels=True)
    assert len(levels) == 4 and levels[-1].shape == (1, 2, 16, 16)
    assert flow.shape == (1, 2, 64, 64)
    assert count_parameters(model) == 5_381_969  # same checkpoint serves every finest level


def test_uint8_and_float_inputs_agree(model):
    image = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    other = torch.roll(image, 2, dims=3)
    with torch.no_grad():
        a = model(image, other)
        b = model(image.float() / 255, other.float() / 255)
    torch.testing.assert_close(a, b)


def test_seeded_golden_output():
    golden = json.loads(GOLDEN.read_text())
    torch.manual_seed(golden["seed_model"])
    model = LiteFlowNet().eval()
    g = torch.Generator().manual_seed(golden["seed_input"])
    a = torch.rand(1, 3, *golden["size"], generator=g)
    b = torch.roll(a, shifts=(1, 2), dims=(2, 3))
    with torch.no_grad():
        flow = model(a, b)
    assert flow.abs().mean().item() == pytest.approx(golden["mean_abs"], rel=1e-4)
    assert flow.sum(dim=(2, 3))[0].tolist() == pytest.approx(golden["sum"], rel=1e-4)
    assert flow[0, :, 30, 40].tolist() == pytest.approx(golden["pixel_30_40"], rel=1e-3, abs=1e-7)
    assert flow[0, :, 5, 90].tolist() == pytest.approx(golden["pixel_5_90"], rel=1e-3, abs=1e-7)


def test_encode_estimate_equals_forward(model):
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        direct = model(a, b)
        split = model.estimate(*model.encode_pair(a, b))
    torch.testing.assert_close(direct, split, rtol=1e-5, atol=1e-6)


def test_each_image_of_a_pair_has_its_own_mean_and_a_stream_frame_the_midpoint(model):
    image = torch.rand(1, 3, 64, 64)
    first, second, stream = (model.preprocess(image, role=r) for r in ("first", "second", "stream"))
    # The published means differ by about 0.001 per channel; the stream mean lies between them.
    assert 5e-4 < (second - first).abs().max() < 2e-3
    torch.testing.assert_close(stream, (first + second) / 2, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="role"):
        model.preprocess(image, role="left")


def test_input_validation(model):
    with pytest.raises(ValueError, match="at least 32x32"):
        model(torch.rand(1, 3, 16, 64), torch.rand(1, 3, 16, 64))
    with pytest.raises(ValueError, match="differ"):
        model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 96))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError, match="finest_level"):
        LiteFlowNet(finest_level=1)
