import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from lfn_ros.export import check_onnx, export_onnx  # noqa: E402
from lfn_ros.model.liteflownet import LiteFlowNet  # noqa: E402


@pytest.mark.parametrize("occlusion,size", [(False, (64, 96)), (True, (70, 100))])
def test_onnx_matches_pytorch_on_onnxruntime(tmp_path, occlusion, size):
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


def test_export_validates_arguments(tmp_path):
    with pytest.raises(ValueError, match="opset"):
        export_onnx(LiteFlowNet(), tmp_path / "x.onnx", 64, 64, opset=11)
    with pytest.raises(ValueError, match="32x32"):
        export_onnx(LiteFlowNet(), tmp_path / "x.onnx", 16, 64)
