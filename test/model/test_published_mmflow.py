"""mmflow's LiteFlowNet checkpoints (issue 17): recognised by their keys, mapped by name, run in
mmflow's computation with its test pipeline's resizes (lfn_ros.model.variant.MMFLOW), computing
what mmflow's inference_model computes (golden values recorded from it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lfn_ros.io import read_image
from lfn_ros.model.liteflownet import LiteFlowNet
from lfn_ros.model.published import MMFLOW_LAYOUT, LayoutError, detect, import_published, mmflow_name
from lfn_ros.model.variant import MMFLOW, resize_input
from lfn_ros.model.weights import load_model

from random_layouts import SEQUENCE, forward_flow, golden_flows, random_state

GOLDEN = Path(__file__).with_name("golden_mmflow.json")


@pytest.fixture(scope="module")
def manifest():
    return MMFLOW_LAYOUT.manifest()


def mmcv_checkpoint(manifest, seed: int) -> dict:
    """What mmflow's model-zoo .pth files hold: meta, the state dict, (optionally) the optimizer."""
    return {"meta": {"mmflow_version": "0.5.2", "config": "model = dict(type='LiteFlowNet', ...)"},
            "state_dict": random_state(manifest, seed=seed, gain=1.0)}


def test_every_key_maps_and_the_fixed_upsamplings_land_in_our_deconvolutions(manifest):
    assert len(manifest) == 190 and sum(int(np.prod(shape)) for _, shape in manifest) == 5_379_613
    shapes = dict((key, shape) for key, shape in manifest)
    ours = LiteFlowNet().state_dict()
    theirs = {name: mmflow_name(name) for name in ours}
    assert sorted(n for n, k in theirs.items() if k is None) == sorted(n for n in ours if ".scale_" in n)
    assert {k for k in theirs.values() if k is not None} == set(shapes)
    assert all(list(ours[n].shape) == shapes[k] for n, k in theirs.items() if k is not None)
    # Our level k upsamples level k+1's flow; mmflow's level k+1 owns that filter.
    assert theirs["matching.level5.upflow.weight"] == "decoder.decoders.level6.upflow_layer.weight"
    assert theirs["subpixel.level2.feat.0.weight"] == theirs["matching.level2.feat.0.weight"]


def test_an_mmcv_checkpoint_is_recognised_and_mapped(manifest):
    state = mmcv_checkpoint(manifest, seed=3)["state_dict"]
    assert detect(state) is MMFLOW_LAYOUT
    mapped, _ = import_published(state)
    # mmcv reads BGR and mmflow's LiteFlowNet configs keep it: the first conv's inputs are reversed.
    assert torch.equal(mapped["netc.level1.0.weight"], state["encoder.layers.0.layers.0.conv.weight"].flip(1))
    assert torch.equal(mapped["matching.level2.upcorr.weight"], state["decoder.decoders.level2.NetM.corr_up.weight"])
    assert torch.equal(mapped["regularization.level6.dist.weight"], state["decoder.decoders.level6.NetR.dist_layer.weight"])
    assert torch.equal(mapped["regularization.level5.scale_x.weight"], torch.ones(1, 9, 1, 1))
    state.pop("decoder.decoders.level4.NetS.pred_flow.bias")
    with pytest.raises(LayoutError, match="mmflow's LiteFlowNet layout.*1 missing"):
        import_published(state)


def test_its_pipeline_resizes_the_uint8_image_with_opencv():
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 3, 150, 200), dtype=np.uint8))
    resized = resize_input(image, (192, 256), "cv2")
    assert resized.dtype == torch.uint8 and resized.shape == (1, 3, 192, 256)
    smooth = torch.nn.functional.interpolate(image.float(), size=(192, 256), mode="bilinear", align_corners=False)
    assert (resized.float() - smooth).abs().max() <= 1.0  # the same bilinear map, rounded to integers


def test_golden_flow_recorded_from_mmflows_own_inference(manifest):
    """mmflow's inference_model (uint8 resized by mmcv to 256x192, normalised, its network, its
    resize back) with these random weights on a 200x150 pair gave these flows."""
    golden = json.loads(GOLDEN.read_text())
    state = random_state(manifest, seed=golden["seed"], gain=golden["gain"])
    model = LiteFlowNet(variant=MMFLOW)
    model.load_state_dict(import_published(state, model)[0])
    got, expected = golden_flows(model, golden)
    assert np.abs(expected).max() > 0.5, "a non-trivial flow to compare"
    # Measured against mmflow on this pair: 2.6e-6 px at most.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    published = LiteFlowNet()
    published.load_state_dict(model.state_dict())
    assert np.abs(golden_flows(published, golden)[0] - expected).max() > 0.01  # the switches matter


def test_the_file_loads_in_the_engine_and_converts_keeping_its_computation(tmp_path, manifest):
    from lfn_ros.cli import main
    from lfn_ros.engine import FlowEngine

    source = tmp_path / "liteflownet_8x1_500k_flyingthings3d_subset_384x768.pth"
    torch.save(mmcv_checkpoint(manifest, seed=5), source)
    model, card = load_model(source)
    assert model.variant == MMFLOW and model.grid_multiple == 64
    assert card["imported"]["layout"] == "mmflow" and card["variant"].startswith("mmflow:")
    out = tmp_path / "lfn_mmflow.pt"
    assert main(["import-weights", str(source), "--out", str(out)]) == 0
    converted, _ = load_model(out)
    assert converted.variant == MMFLOW
    a, b = read_image(SEQUENCE / "frame_0002.jpg"), read_image(SEQUENCE / "frame_0003.jpg")
    flow = FlowEngine(weights=str(source), device="cpu", precision="fp32", backend="torch").infer(a, b).flow
    direct = forward_flow(model, a, b)
    assert np.abs(direct).max() > 0.1
    # One mean for both images, so a frame encoded once is exact; only batching rounds differently.
    np.testing.assert_allclose(flow, direct, atol=1e-4)


def test_openvino_runs_mmflows_computation_as_torch_does(tmp_path, manifest):
    pytest.importorskip("openvino")
    from lfn_ros.engine import FlowEngine

    path = tmp_path / "liteflownet_ft_4x1_500k_kitti_320x896.pth"
    torch.save(mmcv_checkpoint(manifest, seed=11), path)
    a, b = read_image(SEQUENCE / "frame_0002.jpg"), read_image(SEQUENCE / "frame_0003.jpg")
    flows = [FlowEngine(weights=str(path), device="cpu", precision="fp32", backend=backend).infer(a, b).flow
             for backend in ("torch", "openvino")]
    assert np.abs(flows[0]).max() > 0.1
    np.testing.assert_allclose(flows[1], flows[0], atol=1e-3)


def test_onnx_export_refuses_a_size_its_opencv_resize_would_bake_in_and_is_exact_at_its_grid(tmp_path, manifest, capsys):
    pytest.importorskip("onnxruntime")
    from lfn_ros.cli import main

    path = tmp_path / "liteflownet_mmflow.pth"
    torch.save(mmcv_checkpoint(manifest, seed=13), path)
    # 96x64 would be resized to 128x64 by OpenCV before the network: a graph cannot hold that.
    assert main(["export", "--onnx", str(tmp_path / "a.onnx"), "--size", "96x64", "--weights", str(path)]) == 2
    assert "cv2.resize" in capsys.readouterr().err
    # At a multiple of 64 nothing is resized, and ONNX Runtime gives PyTorch's flow.
    assert main(["export", "--onnx", str(tmp_path / "b.onnx"), "--size", "128x64", "--weights", str(path)]) == 0
