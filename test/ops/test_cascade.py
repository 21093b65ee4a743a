"""The two-scale cascade (lfn_ros.ops.cascade) and the engine's use of it."""

import numpy as np
import pytest
import torch

from lfn_ros.ops import cascade as two_scale


def textured(height=96, width=128, seed=0) -> torch.Tensor:
    """(1, 1, H, W) smooth random texture in grey levels 0-255 (bilinear sampling is exact enough on it)."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 255, (1, 1, height // 8, width // 8)).astype(np.float32))
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)


def constant_flow(dx, dy, height=96, width=128) -> torch.Tensor:
    flow = torch.zeros(1, 2, height, width)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def test_coarse_size_is_half_the_grid_in_whole_multiples():
    assert two_scale.coarse_size((384, 512), 32) == (192, 256)
    assert two_scale.coarse_size((448, 1024), 32) == (224, 512)
    assert two_scale.coarse_size((480, 640), 32) == (256, 320)  # 240 -> next multiple of 32
    assert two_scale.coarse_size((32, 64), 32) == (32, 32)  # never below one multiple


def test_compose_adds_the_coarse_flow_where_the_residual_lands():
    coarse = constant_flow(7.0, -3.0)
    residual = constant_flow(1.5, 0.5)
    # A constant coarse flow: the total is the sum.
    assert torch.allclose(two_scale.compose(residual, coarse), constant_flow(8.5, -2.5), atol=1e-5)
    # A coarse flow that grows with x by 0.1 px per px: sampled 2 px to the right of the pixel.
    xs = torch.arange(128, dtype=torch.float32).view(1, 1, 128).expand(1, 96, 128)
    ramp = torch.stack([0.1 * xs, torch.zeros_like(xs)], dim=1)
    total = two_scale.compose(constant_flow(2.0, 0.0), ramp)
    inside = total[0, 0, :, :120]
    assert torch.allclose(inside, 2.0 + 0.1 * (xs[0, :, :120] + 2.0), atol=1e-4)
    # No residual: exactly the coarse flow.
    assert torch.allclose(two_scale.compose(torch.zeros_like(ramp), ramp), ramp, atol=1e-5)


def test_the_true_flow_explains_the_images_better_than_a_wrong_one():
    first = textured()
    second = two_scale.sample(first, constant_flow(-4.0, -2.0))  # frame 1 moved by (4, 2)
    right = two_scale.photometric_error(first, second, constant_flow(4.0, 2.0))
    wrong = two_scale.photometric_error(first, second, constant_flow(0.0, 0.0))
    interior = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    assert right.shape == (1, 1, 96, 128)
    assert float(right[interior].max()) < 2.0 < float(wrong[interior].min())


def test_fusion_takes_each_flow_where_it_explains_the_images():
    first = textured(seed=1)
    truth = constant_flow(5.0, 0.0)
    second = two_scale.sample(first, -truth)
    direct, stacked = truth.clone(), truth.clone()
    direct[..., :, 64:] = 0.0   # direct wrong on the right half
    stacked[..., :, :64] = 0.0  # stacked wrong on the left half
    fused = two_scale.fuse(direct, stacked, first, second)
    away = two_scale.FUSION_WINDOW  # pixels whose window straddles the seam may go either way
    assert torch.equal(fused[..., 16:-16, 16:64 - away], truth[..., 16:-16, 16:64 - away])
    assert torch.equal(fused[..., 16:-16, 64 + away:-16], truth[..., 16:-16, 64 + away:-16])


def test_candidates_as_one_batch_score_as_they_do_one_at_a_time():
    """fuse scores both flows in one call (frame 1's gradients once): the same errors per pixel."""
    first, second = textured(seed=2).repeat(2, 1, 1, 1), textured(seed=3).repeat(2, 1, 1, 1)
    rng = torch.Generator().manual_seed(0)
    flows = [torch.randn(2, 2, 96, 128, generator=rng) * 3.0 for _ in range(2)]
    together = two_scale.photometric_error(first, second, torch.cat(flows))
    apart = torch.cat([two_scale.photometric_error(first, second, flow) for flow in flows])
    assert together.shape == (4, 1, 96, 128)
    assert torch.allclose(together, apart, rtol=0, atol=1e-5)


def test_luminance_is_rec601():
    image = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert torch.allclose(two_scale.luminance(image), torch.full((1, 1, 2, 2), 0.299 * 255))


def test_auto_cascades_lfn_ros_weights_and_runs_the_papers_as_published():
    assert two_scale.resolve_cascade("auto", {"name": "lfn_ros"}) == "two-scale"
    assert two_scale.resolve_cascade("auto", {"imported": "sniklaus"}) == "none"
    assert two_scale.resolve_cascade("auto", {"name": "random", "trained": False}) == "none"
    assert two_scale.resolve_cascade("none", {}) == "none"
    with pytest.raises(ValueError, match="two-scale, none"):
        two_scale.resolve_cascade("pyramid", {})


# ---------------------------------------------------------------------------- the engine


@pytest.fixture(scope="module")
def frames():
    """The embedded camera's first frame as a background moving 2 px right, at 256x320, with a
    64x64 patch of it moving 24 px (for the shipped network at this size, a motion it gets)."""
    import cv2

    from lfn_ros.io.sources import iter_source

    frame = next(iter_source(""))
    background = cv2.resize(frame, (360, 256))
    patch = cv2.resize(frame[40:140, 150:250], (64, 64))
    first, second = background[:, 20:340].copy(), background[:, 18:338].copy()
    first[96:160, 80:144] = patch
    second[96:160, 104:168] = patch
    return first, second


def test_the_engine_streams_what_it_infers_and_keeps_the_occlusion(frames):
    from lfn_ros.engine import FlowEngine

    first, second = frames
    engine = FlowEngine(device="cpu", backend="torch", precision="fp32", cascade="two-scale", occlusion_method="check")
    assert engine.cascade == "two-scale" and "two-scale cascade" in engine.model_name
    pair = engine.infer(first, second)
    assert engine.process(first) is None
    streamed = engine.process(second)
    assert np.allclose(pair.flow, streamed.flow, atol=1e-4)
    assert pair.flow.shape == (256, 320, 2) and pair.occlusion.shape == (256, 320)
    assert streamed.timings["decoder"] > 0
    # Composition and fusion keep what one pass gets right: the background's 2 px, the patch's 24.
    assert abs(float(np.median(pair.flow[:, 250:, 0])) - 2.0) < 0.2
    assert abs(float(np.median(pair.flow[104:152, 88:136, 0])) - 24.0) < 1.0


def test_one_pass_is_the_engine_without_the_cascade(frames):
    """cascade none runs exactly the single-pass network (what the tests of the network assume)."""
    from lfn_ros.engine import FlowEngine
    from lfn_ros.model.liteflownet import LiteFlowNet

    first, second = frames
    model = LiteFlowNet(finest_level=3).eval()
    torch.manual_seed(0)
    single = FlowEngine(device="cpu", backend="torch", precision="fp32", model=model, cascade="none", refinement="none",
                        occlusion=False)
    two = FlowEngine(device="cpu", backend="torch", precision="fp32", model=model, cascade="two-scale", refinement="none",
                     occlusion=False)
    image1 = torch.from_numpy(first).permute(2, 0, 1).unsqueeze(0)
    image2 = torch.from_numpy(second).permute(2, 0, 1).unsqueeze(0)
    with torch.no_grad():
        reference = model.estimate(model.encode(image1), model.encode(image2))[0].permute(1, 2, 0).numpy()
    assert np.allclose(single.infer(first, second).flow, reference, atol=1e-4)
    assert not np.array_equal(two.infer(first, second).flow, reference)


def test_a_two_scale_engine_runs_one_pass_on_request_and_returns_to_the_cascade(frames):
    """The node's adaptive cascade (lfn_ros.governor): a frame run with one_pass gives exactly
    the one-pass engine's flow, the next pair has no half-grid encoding to start from and runs in
    one pass too, then the cascade comes back. Each result names its mode."""
    from lfn_ros.engine import FlowEngine
    from lfn_ros.model.liteflownet import LiteFlowNet

    first, second = frames
    model = LiteFlowNet(finest_level=3).eval()
    options = dict(device="cpu", backend="torch", precision="fp32", model=model, refinement="none", occlusion_method="check")
    single = FlowEngine(cascade="none", **options)
    two = FlowEngine(cascade="two-scale", **options)
    reference = single.infer(first, second)
    cascaded = two.infer(first, second)
    sequence = [first, second, first, second, first]
    modes, flows = [], []
    for i, (image, one_pass) in enumerate(zip(sequence, [False, True, False, False, False])):
        result = two.run(two.stage(image, seconds=float(i)), one_pass=one_pass).wait()
        modes.append(result.cascade if result is not None else None)
        flows.append(result)
    assert modes == [None, "none", "none", "two-scale", "two-scale"]
    assert np.allclose(flows[1].flow, reference.flow, atol=1e-4)
    assert np.array_equal(flows[1].occlusion, reference.occlusion)
    assert np.allclose(flows[3].flow, cascaded.flow, atol=1e-4)
    assert reference.cascade == "none" and cascaded.cascade == "two-scale"
    assert two.describe("none") == two.model_name.replace("two-scale cascade", "one pass (adaptive cascade)")
    assert "two-scale cascade" in two.describe("two-scale") and single.describe("none") == single.model_name


def test_the_cascade_encodes_each_frame_at_two_scales_once_and_the_warped_frame_once(frames, monkeypatch):
    """Per frame: NetC at the full and the coarse grid (kept for the next pair); per pair, once
    more on the warped frame 2. Never a frame twice at one scale."""
    from lfn_ros.engine import FlowEngine

    engine = FlowEngine(device="cpu", backend="torch", precision="fp32", cascade="two-scale", occlusion=False)
    shapes = []
    original = engine.model.netc.forward
    monkeypatch.setattr(engine.model.netc, "forward", lambda x: shapes.append(tuple(x.shape)) or original(x))
    first, second = frames
    engine.process(first, seconds=0.0)
    assert shapes == [(1, 3, 256, 320), (1, 3, 128, 160)]
    engine.process(second, seconds=1.0)
    assert shapes[2:] == [(1, 3, 256, 320), (1, 3, 128, 160), (1, 3, 256, 320)]


def test_openvino_runs_the_cascade_as_torch_does(frames):
    """Same cascade on both backends. The fusion picks per pixel, so where the two flows explain
    the images equally well a 1e-6 difference can flip a pixel: the bound is on the mean."""
    from lfn_ros.engine import FlowEngine
    from lfn_ros.engine.openvino_backend import openvino_available

    if not openvino_available():
        pytest.skip("OpenVINO is not installed")
    first, second = frames
    flows = []
    for backend in ("torch", "openvino"):
        engine = FlowEngine(device="cpu", backend=backend, precision="fp32", cascade="two-scale", occlusion_method="head")
        engine.prepare(*first.shape[:2])
        engine.process(first, seconds=0.0)
        flows.append(engine.process(second, seconds=1.0).flow)
    difference = np.linalg.norm(flows[0] - flows[1], axis=-1)
    assert difference.mean() < 0.01 and np.median(difference) < 1e-3, (difference.mean(), np.median(difference))


def test_the_separable_box_mean_is_the_square_mean_over_the_frame():
    x = torch.rand(1, 1, 40, 50)
    square = torch.nn.functional.avg_pool2d(x, 17, stride=1, padding=8, count_include_pad=False)
    assert torch.allclose(two_scale.box_mean(x, 17), square, atol=1e-6)


def test_sobel_is_opencvs():
    import cv2

    image = textured(seed=4)
    gx, gy = two_scale.sobel(image)
    grey = image[0, 0].numpy()
    assert np.allclose(gx[0, 0].numpy(), cv2.Sobel(grey, cv2.CV_32F, 1, 0, borderType=cv2.BORDER_REPLICATE), atol=1e-3)
    assert np.allclose(gy[0, 0].numpy(), cv2.Sobel(grey, cv2.CV_32F, 0, 1, borderType=cv2.BORDER_REPLICATE), atol=1e-3)


def test_the_cli_and_the_node_take_the_cascade():
    import argparse

    from lfn_ros.cli import _add_engine_arguments, build_engine
    from lfn_ros.nodes.parameters import BY_NAME, check_update

    parser = argparse.ArgumentParser()
    _add_engine_arguments(parser)
    assert build_engine(parser.parse_args(["--cascade", "none", "--backend", "torch"])).cascade == "none"
    assert build_engine(parser.parse_args(["--backend", "torch"])).cascade == "two-scale"  # the shipped weights: auto
    with pytest.raises(SystemExit):
        parser.parse_args(["--cascade", "pyramid"])
    assert BY_NAME["cascade"].default == "auto" and not BY_NAME["cascade"].runtime
    assert check_update("cascade", "none")  # read-only: refused at runtime, with a reason
