"""The paper's published weights in sniklaus/pytorch-liteflownet's layout (issue 17): recognised by
their keys, mapped by name, refused with a clear error when they are another network or damaged,
and computing what his implementation computes (golden values recorded from it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lfn_ros.io import read_image
from lfn_ros.model.liteflownet import LiteFlowNet
from lfn_ros.model.published import SNIKLAUS, LayoutError, detect, import_published, sniklaus_name
from lfn_ros.model.weights import WeightsError, load_model, read_checkpoint

from random_layouts import golden_flows, random_state  # test/model/random_layouts.py (pytest puts this folder on sys.path)

GOLDEN = Path(__file__).with_name("golden_sniklaus.json")
SEQUENCE = Path(__file__).resolve().parents[2] / "lfn_ros" / "data" / "sequence"


@pytest.fixture(scope="module")
def manifest():
    return SNIKLAUS.manifest()


def test_the_manifest_is_the_published_network_and_every_name_maps(manifest):
    assert len(manifest) == 212 and sum(int(np.prod(shape)) for _, shape in manifest) == 5_381_969
    ours = LiteFlowNet().state_dict()
    # Our names map one to one onto his, in the same order, with the same shapes.
    assert [sniklaus_name(name) for name in ours] == [key for key, _ in manifest]
    assert [list(t.shape) for t in ours.values()] == [shape for _, shape in manifest]


@pytest.mark.parametrize("old_names", [False, True])
def test_both_namings_load_and_the_first_convolution_turns_bgr_into_rgb(manifest, old_names):
    state = random_state(manifest, seed=3, old_names=old_names)
    assert next(iter(state)).startswith("module" if old_names else "net")
    assert detect(state) is SNIKLAUS
    mapped, _ = import_published(state)
    key = "netFeatures.netOne.0.weight".replace("net", "module") if old_names else "netFeatures.netOne.0.weight"
    assert torch.equal(mapped["netc.level1.0.weight"], state[key].flip(1))  # his input is BGR
    assert torch.equal(mapped["regularization.level2.scale_y.bias"],
                       state[key.replace("Features.", "Regularization.0.").replace("One.0.weight", "ScaleY.bias")
                             .replace("netOne", "netScaleY").replace("moduleOne", "moduleScaleY")])


def test_the_node_the_cli_and_the_engine_take_the_file_as_it_is(tmp_path, manifest):
    path = tmp_path / "network-default.pytorch"
    torch.save(random_state(manifest, seed=5), path)
    model, card = load_model(path)
    assert model.finest_level == 2  # the published network runs to level 2
    assert card["imported"]["layout"] == "sniklaus" and "did not train" in card["trained_by"]
    assert "research purposes only" in card["licence"]
    from lfn_ros.engine import FlowEngine
    first = read_image(SEQUENCE / "frame_0000.jpg")
    engine = FlowEngine(weights=str(path), device="cpu", precision="fp32", backend="torch")
    assert engine.infer(first, read_image(SEQUENCE / "frame_0001.jpg")).flow.shape == first.shape[:2] + (2,)


def test_golden_flow_recorded_from_sniklaus_own_implementation(manifest):
    """His run.py (estimate(): resize to multiples of 32, his network, resize back) with these
    random weights on a 200x150 pair gave these flows; lfn_ros must give the same to float rounding."""
    golden = json.loads(GOLDEN.read_text())
    state = random_state(manifest, seed=golden["seed"])
    model = LiteFlowNet()
    model.load_state_dict(import_published(state, model)[0])
    got, expected = golden_flows(model, golden)
    assert np.abs(expected).max() > 0.2, "a non-trivial flow to compare"
    # Measured against the reference on real pairs: at most 1.4e-5 px (fp32 rounding).
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_other_networks_and_damaged_files_get_one_line_that_names_the_expected_layout(tmp_path, manifest):
    cases = {
        "pwc.pytorch": ({"netExtractor.netOne.0.weight": torch.zeros(16, 3, 3, 3)}, "PWC-Net"),
        "raft.pth": ({"module.fnet.conv1.weight": torch.zeros(64, 3, 7, 7)}, "RAFT"),
        "ptlflow.ckpt": ({"state_dict": {"feature_net.convs.0.0.weight": torch.zeros(32, 3, 7, 7)}}, "ptlflow"),
        "mmflow.pth": ({"meta": {}, "state_dict": {"encoder.layers.0.weight": torch.zeros(1)}}, "mmflow"),
        "other.pt": ({"conv.weight": torch.zeros(3)}, "sniklaus/pytorch-liteflownet"),
    }
    for name, (payload, expected) in cases.items():
        torch.save(payload, tmp_path / name)
        with pytest.raises(WeightsError, match=expected) as info:
            read_checkpoint(tmp_path / name)
        assert "\n" not in str(info.value)
    # His layout with a tensor of the wrong shape (LiteFlowNet2 has other channel counts) or one missing.
    state = random_state(manifest, seed=1)
    state["netMatching.0.netMain.0.weight"] = torch.zeros(128, 81, 3, 3)
    with pytest.raises(LayoutError, match="of the wrong shape"):
        import_published(state)
    state.pop("netMatching.0.netMain.0.weight")
    with pytest.raises(LayoutError, match="1 missing"):
        import_published(state)
    # A truncated download.
    good = tmp_path / "network-default.pytorch"
    torch.save(random_state(manifest, seed=1), good)
    truncated = tmp_path / "truncated.pytorch"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated"):
        read_checkpoint(truncated)


def test_import_weights_writes_a_safe_checkpoint_with_the_provenance(tmp_path, manifest):
    from lfn_ros.cli import main

    source = tmp_path / "network-sintel.pytorch"
    torch.save(random_state(manifest, seed=7), source)
    out = tmp_path / "lfn_sintel.pt"
    assert main(["import-weights", str(source), "--out", str(out), "--fp32"]) == 0
    payload = torch.load(out, weights_only=True)
    assert payload["format"] == "lfn_ros-checkpoint"
    card = payload["card"]
    assert card["imported"]["layout"] == "sniklaus" and card["imported"]["file"] == source.name
    assert "lfn_ros did not train" in card["trained_by"] and "research purposes only" in card["licence"]
    direct, _ = load_model(source)
    converted, converted_card = load_model(out)
    for (name, a), (_, b) in zip(direct.state_dict().items(), converted.state_dict().items()):
        assert torch.equal(a, b), name
    assert converted_card["imported"]["sha256"] == card["imported"]["sha256"]
    # Importing an lfn_ros checkpoint again is refused; the fp16 default is half the size.
    assert main(["import-weights", str(out), "--out", str(tmp_path / "again.pt")]) == 2
    assert main(["import-weights", str(source), "--out", str(tmp_path / "half.pt")]) == 0
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * out.stat().st_size


def test_openvino_runs_imported_weights_as_torch_does(tmp_path, manifest):
    """The graph backend takes the imported network too (its encoder/decoder graphs are exported
    from the mapped model): OpenVINO f32 gives torch f32's flow."""
    pytest.importorskip("openvino")
    from lfn_ros.engine import FlowEngine

    path = tmp_path / "network-kitti.pytorch"
    torch.save(random_state(manifest, seed=11), path)
    a, b = read_image(SEQUENCE / "frame_0002.jpg"), read_image(SEQUENCE / "frame_0003.jpg")
    flows = [FlowEngine(weights=str(path), device="cpu", precision="fp32", backend=backend, occlusion_method="check")
             .infer(a, b).flow for backend in ("torch", "openvino")]
    assert np.abs(flows[0]).max() > 0.05
    np.testing.assert_allclose(flows[1], flows[0], atol=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_imported_weights_on_cuda_give_the_cpu_flow(tmp_path, manifest):
    """The published layout on CUDA (streams, pinned buffers): the CPU's flow, fp32 on both."""
    from lfn_ros.engine import FlowEngine

    path = tmp_path / "network-default.pytorch"
    torch.save(random_state(manifest, seed=13), path)
    a, b = read_image(SEQUENCE / "frame_0000.jpg"), read_image(SEQUENCE / "frame_0001.jpg")
    cpu = FlowEngine(weights=str(path), device="cpu", precision="fp32", backend="torch").infer(a, b).flow
    gpu = FlowEngine(weights=str(path), device="cuda", precision="fp32", backend="torch").infer(a, b).flow
    np.testing.assert_allclose(gpu, cpu, atol=1e-3)
