"""ONNX export: the graph's contract, and its flow against PyTorch's with the shipped weights at a
real displacement (the `lfn-ros export` command itself, its check included)."""

import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from lfn_ros.cli import main  # noqa: E402
from lfn_ros.export import MAX_RELATIVE_DIFF, check_onnx, export_onnx  # noqa: E402
from lfn_ros.model.liteflownet import LiteFlowNet  # noqa: E402
from lfn_ros.model.weights import load_model  # noqa: E402


@pytest.mark.parametrize("occlusion,size", [(False, (64, 96)), (True, (70, 100))])
def test_the_graph_has_the_contract_and_matches_pytorch(tmp_path, occlusion, size):
    torch.manual_seed(0)
    model = LiteFlowNet()
    path = export_onnx(model, tmp_path / "lfn.onnx", *size, occlusion=occlusion)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    ops = {n.op_type for n in graph.graph.node}
    assert "GridSample" in ops and not any(n.domain not in ("", "ai.onnx") for n in graph.graph.node)
    assert [o.name for o in graph.graph.output] == (["flow", "occlusion"] if occlusion else ["flow"])
    report = check_onnx(model, path, *size, occlusion=occlusion)
    assert report["max_abs_diff"] < 1e-4
    if occlusion:
        assert report["occlusion_agreement"] > 0.999


def test_lfn_ros_export_with_the_shipped_weights_agrees_at_a_real_displacement(tmp_path, capsys):
    path = tmp_path / "shipped.onnx"
    assert main(["export", "--onnx", str(path), "--size", "160x128", "--occlusion"]) == 0
    assert "of the mean |flow|" in capsys.readouterr().out
    model, _ = load_model("default")
    report = check_onnx(model, path, 128, 160, occlusion=True, shift=(3, -2))
    # Real signal: the trained network sees the 3 px motion ...
    assert abs(report["mean_flow_xy"][0] - 3) < 1.0 and abs(report["mean_flow_xy"][1] + 2) < 1.0, report
    # ... and ONNX Runtime reproduces it to a small fraction of it.
    assert report["relative_diff"] < MAX_RELATIVE_DIFF / 10, report
    assert report["occlusion_agreement"] > 0.995


def test_export_validates_arguments(tmp_path):
    with pytest.raises(ValueError, match="opset"):
        export_onnx(LiteFlowNet(), tmp_path / "x.onnx", 64, 64, opset=11)
    with pytest.raises(ValueError, match="32x32"):
        export_onnx(LiteFlowNet(), tmp_path / "x.onnx", 16, 64)
