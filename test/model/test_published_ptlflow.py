"""ptlflow's LiteFlowNet checkpoints (issue 17): recognised by their keys, mapped by name, run in
ptlflow's own computation (lfn_ros.model.variant.PTLFLOW) and computing what ptlflow's forward
computes (golden values recorded from it), while lfn_ros's own network stays the published one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lfn_ros.io import read_image
from lfn_ros.model.liteflownet import LiteFlowNet
from lfn_ros.model.published import PTLFLOW_LAYOUT, LayoutError, detect, import_published, ptlflow_name
from lfn_ros.model.variant import PTLFLOW, PUBLISHED, Variant, VariantError, footprint_warp
from lfn_ros.model.weights import WeightsError, load_model, read_checkpoint, save_checkpoint

from random_layouts import GAIN_PTLFLOW, SEQUENCE, forward_flow, golden_flows, random_state

GOLDEN = Path(__file__).with_name("golden_ptlflow.json")


@pytest.fixture(scope="module")
def manifest():
    return PTLFLOW_LAYOUT.manifest()


def lightning_checkpoint(manifest, seed: int) -> dict:
    """What ptlflow's released .ckpt files hold: the module's state dict under 'state_dict'."""
    return {"state_dict": random_state(manifest, seed=seed, gain=GAIN_PTLFLOW), "hyper_parameters": {"div_flow": 20.0}}


def test_the_manifest_maps_onto_the_published_network_but_for_its_shared_and_missing_layers(manifest):
    assert len(manifest) == 190 and sum(int(np.prod(shape)) for _, shape in manifest) == 5_379_613
    shapes = dict((key, shape) for key, shape in manifest)
    ours = LiteFlowNet().state_dict()
    theirs = {name: ptlflow_name(name) for name in ours}
    # Only f-lcon's 1x1 scale convs (4 tensors per level) have no counterpart ...
    assert sorted(n for n, k in theirs.items() if k is None) == sorted(n for n in ours if ".scale_" in n)
    # ... level 2's 1x1 feature conv is one module feeding both M and S ...
    assert theirs["matching.level2.feat.0.weight"] == theirs["subpixel.level2.feat.0.weight"] == "feat2_conv.0.weight"
    # ... and everything else maps one to one, onto every one of its keys, with the same shapes.
    mapped = {k for k in theirs.values() if k is not None}
    assert mapped == set(shapes)
    assert all(list(ours[n].shape) == shapes[k] for n, k in theirs.items() if k is not None)
    # 5,381,969 published = 5,379,613 + the second level-2 feature conv (2,112) + the scale convs (244).
    assert 5_379_613 + 32 * 64 + 64 + 244 == 5_381_969


def test_a_lightning_checkpoint_is_recognised_and_mapped_exactly(manifest):
    payload = lightning_checkpoint(manifest, seed=3)
    state = payload["state_dict"]
    assert detect(state) is PTLFLOW_LAYOUT and PTLFLOW_LAYOUT.variant is PTLFLOW
    mapped, layout = import_published(state)
    assert layout is PTLFLOW_LAYOUT
    # ptlflow flips its BGR input to RGB before the first convolution: no flip here.
    assert torch.equal(mapped["netc.level1.0.weight"], state["feature_net.convs.0.0.weight"])
    assert torch.equal(mapped["matching.level2.feat.0.bias"], state["feat2_conv.0.bias"])
    assert torch.equal(mapped["subpixel.level2.feat.0.bias"], state["feat2_conv.0.bias"])
    assert torch.equal(mapped["regularization.level4.dist.1.weight"], state["regularization_nets.2.dist.1.weight"])
    # f-lcon's sum over the window as a 1x1 conv: weight ones, bias zero.
    assert torch.equal(mapped["regularization.level3.scale_x.weight"], torch.ones(1, 25, 1, 1))
    assert torch.equal(mapped["regularization.level3.scale_y.bias"], torch.zeros(1))
    # Lightning's 'model.' prefix (a wrapped module) is accepted too.
    prefixed, _ = import_published({"model." + k: v for k, v in state.items()})
    assert all(torch.equal(prefixed[k], mapped[k]) for k in mapped)


def test_the_variant_is_what_ptlflow_computes_and_nothing_changes_the_published_network():
    assert LiteFlowNet().variant == PUBLISHED and PUBLISHED.is_published and not PTLFLOW.is_published
    assert "image_pyramid=direct" in PTLFLOW.describe() and "warp_mask=footprint" in PTLFLOW.describe()
    # One mean for both images: the published first mean in reversed channel order.
    assert set(PTLFLOW.image_means.values()) == {(0.411618, 0.434631, 0.454253)}
    assert Variant.from_dict(PTLFLOW.to_dict()) == PTLFLOW and Variant.from_dict(None) == PUBLISHED
    with pytest.raises(VariantError, match="warp_mask"):
        Variant(warp_mask="sometimes")
    with pytest.raises(VariantError, match="unknown variant switches"):
        Variant.from_dict({"name": "x", "colour": "blue"})


def test_the_footprint_mask_zeroes_what_leaves_the_frame_and_the_rounding_victims_inside():
    """IRR's mask is 'warped ones >= 1'. Zero flow keeps everything; a shift by half a pixel to the
    right zeroes the last column (its footprint leaves the frame) and keeps the rest; a random
    flow also zeroes some samples inside the frame whose weights sum to 1 - 6e-8 (the port's
    rounding, reproduced because the arithmetic is the port's)."""
    x = torch.rand(1, 3, 12, 16) + 0.5
    still = footprint_warp(x, torch.zeros(1, 2, 12, 16), 1.0)
    assert (still > 0).all() and torch.allclose(still, x, atol=1e-6)  # linspace's grid: rounding only
    shifted = footprint_warp(x, torch.tensor([0.5, 0.0]).view(1, 2, 1, 1).expand(1, 2, 12, 16), 1.0)
    assert (shifted[..., -1] == 0).all() and (shifted[..., :-1] > 0).all()
    torch.manual_seed(0)
    flow = torch.randn(1, 2, 96, 128) * 3
    warped = footprint_warp(torch.ones(1, 1, 96, 128), flow, 1.0)[0, 0]
    px = torch.arange(128).view(1, 128) + flow[0, 0]
    py = torch.arange(96).view(96, 1) + flow[0, 1]
    inside = (px >= 0) & (px <= 127) & (py >= 0) & (py <= 95)
    victims = int(((warped == 0) & inside).sum())
    assert 0 < victims < 0.05 * inside.sum()


def test_golden_flow_recorded_from_ptlflows_own_forward(manifest):
    """ptlflow's LiteFlowNet.forward (its preprocess_images: one mean, BGR -> RGB, bilinear resize
    to multiples of 32; its postprocess: x2, resize back and scale) with these random weights on a
    200x150 pair gave these flows; lfn_ros, loading the same weights, must give the same."""
    golden = json.loads(GOLDEN.read_text())
    state = random_state(manifest, seed=golden["seed"], gain=golden["gain"])
    model = LiteFlowNet(variant=PTLFLOW)
    model.load_state_dict(import_published(state, model)[0])
    got, expected = golden_flows(model, golden)
    assert np.abs(expected).max() > 0.5, "a non-trivial flow to compare"
    # Measured against ptlflow on this pair: 7.5e-6 px at most, on the AVX512 CPU that recorded
    # the golden values. IRR's footprint mask turns float rounding into zeroed samples, and another
    # CPU's kernels round otherwise: on an AVX2-only EPYC 11 % of these points moved by more than
    # 1e-4 px, at most 5.5e-3 (median 2e-7), as far as ptlflow moves from itself under one
    # rounding of its input (3e-3 to 3e-2 px; docs/published_weights.md).
    error = np.abs(got - expected).max(axis=-1)
    assert np.median(error) < 1e-5 and (error < 1e-4).mean() > 0.8 and error.max() < 0.02, \
        (np.median(error), (error < 1e-4).mean(), error.max())
    # The same weights in the published computation are measurably elsewhere (median 0.04 px): the
    # switches matter.
    published = LiteFlowNet()
    published.load_state_dict(model.state_dict())
    assert np.median(np.abs(golden_flows(published, golden)[0] - expected).max(axis=-1)) > 0.01


def test_the_file_loads_everywhere_and_converts_once_keeping_its_computation(tmp_path, manifest):
    from lfn_ros.cli import main
    from lfn_ros.engine import FlowEngine

    source = tmp_path / "liteflownet-things-a4d066e2.ckpt"
    torch.save(lightning_checkpoint(manifest, seed=5), source)
    model, card = load_model(source)
    assert model.variant == PTLFLOW and model.finest_level == 2
    assert card["imported"]["layout"] == "ptlflow" and "did not train" in card["trained_by"]
    assert "Not specified" in card["licence"] and card["variant"].startswith("ptlflow:")
    out = tmp_path / "lfn_things.pt"
    assert main(["import-weights", str(source), "--out", str(out), "--fp32"]) == 0
    payload = torch.load(out, weights_only=True)
    assert payload["variant"] == PTLFLOW.to_dict() and payload["input"]["means"]["first"] == list(PTLFLOW.image_means["first"])
    converted, _ = load_model(out)
    assert converted.variant == PTLFLOW
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), converted.state_dict().values()))
    # The streaming engine: ptlflow uses one mean for both images, so a frame encoded once is exact.
    a, b = read_image(SEQUENCE / "frame_0002.jpg"), read_image(SEQUENCE / "frame_0003.jpg")
    engine = FlowEngine(weights=str(source), device="cpu", precision="fp32", backend="torch")
    assert engine.refinement == "none"  # the paper's weights run as published (refinement auto)
    direct = forward_flow(model, a, b)
    assert np.abs(direct).max() > 0.1
    # Forward only (batch of one): the engine computes exactly what the model does.
    assert np.abs(engine.infer(a, b, occlusion=False).flow - direct).max() < 1e-5
    # With the occlusion check the engine decodes forward and backward as one batch of two: batched
    # convolutions round differently, and ptlflow's mask turns rounding into zeroed samples (5e-7 px
    # in the published computation). Measured: median 6e-8 px and max 0.013 px on an AVX512 EPYC;
    # median 2e-3 px, 47 % of the pixels within 1e-3 px and max 0.068 px on an AVX2-only one.
    err = np.linalg.norm(engine.infer(a, b).flow - direct, axis=-1)
    assert np.median(err) < 0.01 and err.max() < 0.2, (np.median(err), err.max())


def test_openvino_runs_ptlflows_computation_as_torch_does(tmp_path, manifest):
    pytest.importorskip("openvino")
    from lfn_ros.engine import FlowEngine

    path = tmp_path / "liteflownet-kitti.ckpt"
    torch.save(lightning_checkpoint(manifest, seed=11), path)
    a, b = read_image(SEQUENCE / "frame_0002.jpg"), read_image(SEQUENCE / "frame_0003.jpg")
    flows = [FlowEngine(weights=str(path), device="cpu", precision="fp32", backend=backend).infer(a, b).flow
             for backend in ("torch", "openvino")]
    assert np.abs(flows[0]).max() > 0.1
    # The footprint mask's rounding victims may differ between runtimes (a different grid_sample):
    # almost every pixel agrees to 1e-3 px.
    close = np.abs(flows[1] - flows[0]).max(axis=-1) < 1e-3
    assert close.mean() > 0.99


def test_damaged_or_other_files_in_its_names_get_one_line_naming_the_layout(tmp_path, manifest):
    state = random_state(manifest, seed=1, gain=GAIN_PTLFLOW)
    state["matching_nets.0.flow_net.0.weight"] = torch.zeros(128, 81, 3, 3)  # another network's shape
    with pytest.raises(LayoutError, match="ptlflow's LiteFlowNet layout.*expected.*wrong shape"):
        import_published(state)
    state.pop("matching_nets.0.flow_net.0.weight")
    torch.save({"state_dict": state}, tmp_path / "broken.ckpt")
    with pytest.raises(WeightsError, match="1 missing") as info:
        read_checkpoint(tmp_path / "broken.ckpt")
    assert "\n" not in str(info.value)
    # A checkpoint asking for a computation this lfn_ros does not know is refused, not guessed.
    model = LiteFlowNet()
    path = save_checkpoint(tmp_path / "future.pt", model, card={"steps": 1})
    payload = torch.load(path, weights_only=True)
    payload["variant"] = {"name": "future", "warp_mask": "learned"}
    torch.save(payload, path)
    with pytest.raises(WeightsError, match="computation this lfn_ros does not have"):
        read_checkpoint(path)
