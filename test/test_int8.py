"""Precision int8 (issue 16 item 3): the OpenVINO graphs with NNCF-quantised convolutions, the
flow path left in f32, refused where it cannot run. Its accuracy on the real pairs:
test_backends.py; its speed: docs/benchmarks.md."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from lfn_ros import precision as precisions
from lfn_ros.engine import FlowEngine, resolve_backend
from lfn_ros.engine.openvino_backend import BackendUnavailable, OpenVINOBackend
from lfn_ros.io import shifted_pair
from lfn_ros.model.weights import load_model

ov = pytest.importorskip("openvino", reason="the int8 precision runs on OpenVINO (requirements.txt installs it)")


def test_int8_is_refused_where_it_cannot_run():
    assert resolve_backend("auto", torch.device("cpu"), "int8") == "openvino"
    with pytest.raises(ValueError, match="int8 runs on the OpenVINO backend"):
        resolve_backend("torch", torch.device("cpu"), "int8")
    with pytest.raises(ValueError, match="int8 runs on the OpenVINO backend"):
        resolve_backend("torch-compiled", torch.device("cpu"), "int8")
    with pytest.raises(ValueError, match="int8 runs on the CPU"):
        precisions.resolve("int8", "cuda")
    assert precisions.checked("int8", "cpu") == "int8"  # no f-warp probe: the warps stay f32
    # Training has no int8 (it is a post-training quantisation).
    from lfn_ros.train.config import TrainConfig

    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="int8")


def test_a_missing_nncf_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "nncf", None)  # import nncf -> ImportError
    model, _ = load_model("default", finest_level=5)
    with pytest.raises(BackendUnavailable, match="pip install nncf"):
        OpenVINOBackend(model, "int8")


def input_kind(op, index: int = 0) -> str:
    return op.input_value(index).get_node().get_type_name()


def test_the_quantised_decoder_keeps_the_flow_path_in_f32(tmp_path):
    """Every convolution reads int8 (a FakeQuantize on its input) except the ones
    lfn_ros.engine.int8 keeps in f32: those that read the cost volume, output a flow or a logit,
    or are f-lcon's; and no warp, upsampling or correlation op reads a quantised tensor."""
    from lfn_ros.engine.int8 import calibration_feeds, calibration_frames, f32_convolutions, quantize
    from lfn_ros.model.graphs import decoder_onnx
    from lfn_ros.model.weights import load_occlusion_head

    model, _ = load_model("default", finest_level=3)
    head, _ = load_occlusion_head("default")
    grid = (64, 96)
    ov_model = ov.Core().read_model(str(decoder_onnx(model, grid, "head", tmp_path, head)))
    kept = set(f32_convolutions(ov_model))
    # 4 levels x (M's first conv, M's flow, S's flow, R's flow, f-lcon's 2-3) + the head's logit.
    assert len(kept) >= 4 * 6 + 1
    _, feeds = calibration_feeds(model, calibration_frames(model, grid, pairs=2))
    quantised = quantize(ov_model, feeds)
    convolutions = [op for op in quantised.get_ops() if op.get_type_name() == "Convolution"]
    int8 = [op.get_friendly_name() for op in convolutions if input_kind(op) == "FakeQuantize"]
    f32 = [op.get_friendly_name() for op in convolutions if input_kind(op) != "FakeQuantize"]
    assert set(f32) == kept & {op.get_friendly_name() for op in convolutions}
    assert len(int8) >= 40, "the other convolutions (NetE's trunks, the head's) run int8"
    for op in quantised.get_ops():
        if op.get_type_name() in ("GridSample", "GroupConvolutionBackpropData", "ReduceSum"):
            assert all(input_kind(op, i) != "FakeQuantize" for i in range(op.get_input_size())), op.get_friendly_name()


def test_the_int8_engine_follows_a_shift_and_streams_like_fp32():
    first, second = shifted_pair(5, -3, size=(96, 128))
    engine = FlowEngine(device="cpu", backend="auto", precision="int8", cascade="none")  # the network quantised, one pass
    assert engine.backend.name == "openvino" and "openvino int8" in engine.model_name
    reference = FlowEngine(device="cpu", backend="openvino", precision="fp32", cascade="none")
    got, expected = engine.infer(first, second), reference.infer(first, second)
    inner = (slice(16, -16), slice(16, -16))
    error = np.linalg.norm(got.flow[inner] - np.array([5.0, -3.0]), axis=-1)
    assert np.median(error) < 0.5, np.median(error)
    assert np.abs(got.flow - expected.flow)[inner].mean() < 0.25
    assert not engine.backend._calibration, "the calibration features are freed once the decoder is built"
    # Streaming: the previous frame's encoding is kept; a new resolution is quantised again.
    assert engine.process(first, seconds=0.0) is None
    assert engine.process(second, seconds=1.0).flow.shape == (96, 128, 2)
    small = shifted_pair(2, 1, size=(64, 96))
    assert engine.process(small[0], seconds=2.0) is None
    assert engine.process(small[1], seconds=3.0).flow.shape == (64, 96, 2)
    assert len(engine.backend._encoders) == 2
