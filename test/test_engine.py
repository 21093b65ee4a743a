import copy
import logging

import numpy as np
import pytest
import torch

from lfn_ros.engine import STAGES, EngineError, FlowEngine, processing_size, resolve_device
from lfn_ros.model.liteflownet import LiteFlowNet


@pytest.fixture(scope="module")
def engine():
    torch.manual_seed(0)
    return FlowEngine(model=LiteFlowNet(), device="cpu", backend="torch", cascade="none")  # one pass: test/ops/test_cascade.py has the cascade


def frames(height=64, width=96, n=3, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height, width + 8 * n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[:, 2 * i: 2 * i + width]) for i in range(n)]


def test_stream_first_frame_none_then_flow_with_stamps(engine):
    engine.reset()
    a, b, c = frames()
    assert engine.process(a, stamp="t0", seconds=0.0) is None
    result = engine.process(b, stamp="t1", seconds=0.1)
    assert result.flow.shape == (64, 96, 2) and result.flow.dtype == np.float32
    assert result.occlusion.shape == (64, 96) and result.occlusion.dtype == bool
    assert (result.stamp, result.previous_stamp) == ("t1", "t0")
    assert set(STAGES) <= set(result.timings) and result.timings["compute"] > 0
    assert engine.process(c, stamp="t2", seconds=0.2).previous_stamp == "t1"


def test_features_are_computed_once_per_frame(engine, monkeypatch):
    engine.reset()
    calls = []
    original = engine.model.netc.forward
    monkeypatch.setattr(engine.model.netc, "forward", lambda x: calls.append(x.shape[0]) or original(x))
    for i, image in enumerate(frames(n=4)):
        engine.process(image, seconds=float(i))
    assert calls == [1, 1, 1, 1]  # one frame through NetC per call, never the pair


def test_resolution_change_and_backwards_stamp_reset(engine, caplog):
    engine.reset()
    small, big = frames()[0], frames(96, 128)[0]
    engine.process(small, seconds=1.0)
    with caplog.at_level(logging.INFO):
        assert engine.process(big, seconds=2.0) is None
        assert "resolution changed" in caplog.text
        assert engine.process(frames(96, 128)[1], seconds=3.0) is not None
        assert engine.process(frames(96, 128)[2], seconds=1.0) is None  # a bag looping
        assert "stamp went from" in caplog.text


def test_occlusion_off_and_scale(engine):
    half = FlowEngine(model=engine.model, device="cpu", scale=0.5, occlusion=False, backend="torch")
    a, b, _ = frames(128, 160)
    result = half.infer(a, b)
    assert result.flow.shape == (128, 160, 2) and result.occlusion is None
    assert processing_size(480, 640, 1.0, 320) == (240, 320)
    assert processing_size(40, 40, 0.1) == (32, 32)


def test_infer_does_not_disturb_the_stream(engine):
    engine.reset()
    a, b, c = frames()
    engine.process(a, stamp="a", seconds=0.0)
    engine.infer(b, c)
    assert engine.process(b, stamp="b", seconds=1.0).previous_stamp == "a"


@pytest.mark.parametrize("bad", [np.zeros((64, 96), np.uint8), np.zeros((64, 96, 3), np.float32), np.zeros((16, 96, 3), np.uint8), "x"])
def test_bad_images_raise_engine_error(engine, bad):
    with pytest.raises(EngineError):
        engine.stage(bad)


def test_device_resolution():
    if not torch.cuda.is_available():
        device, warning = resolve_device("cuda:1")
        assert device.type == "cpu" and "not available" in warning
    assert resolve_device("cpu") == (torch.device("cpu"), None)
    with pytest.raises(ValueError, match="tpu"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="precision"):
        FlowEngine(model=LiteFlowNet(), device="cpu", precision="int4", backend="torch")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_streams_match_cpu_with_the_shipped_weights_at_a_real_displacement():
    """The CUDA path (streams, pinned buffers, events) computes what the CPU computes, on a 3 px
    motion seen by the trained network: within 1 % of the mean flow (fp32 on both)."""
    from lfn_ros.io import shifted_pair

    cpu = FlowEngine(device="cpu", backend="torch", precision="fp32")
    gpu = FlowEngine(device="cuda", backend="torch", precision="fp32")
    a, b = shifted_pair(3, -2, size=(240, 320))
    reference = cpu.infer(a, b).flow
    got = gpu.infer(a, b).flow
    signal = np.linalg.norm(reference, axis=-1).mean()
    assert signal > 2.0  # the trained network sees the motion
    assert np.abs(got - reference).max() < 0.01 * signal
    assert gpu.process(a, seconds=0.0) is None and gpu.process(b, seconds=1.0).flow.shape == (240, 320, 2)


def test_check_thresholds_come_from_the_call_then_the_weights_card_then_the_paper():
    from lfn_ros.engine.backends import check_thresholds

    chosen = {"occlusion": {"check": {"alpha": 0.05, "beta": 8.0}}}
    assert check_thresholds({}, None, None) == (0.01, 0.5)  # the paper's (Sundaram et al. 2010)
    assert check_thresholds(chosen, None, None) == (0.05, 8.0)  # chosen on synthetic validation
    assert check_thresholds(chosen, -1.0, 2.0) == (0.05, 2.0)  # the node's -1: the weights' value
    assert check_thresholds(chosen, 0.0, 0.0) == (0.0, 0.0)


def test_runtime_thresholds_of_minus_one_return_to_the_weights_values():
    engine = FlowEngine(weights=None, device="cpu", model=LiteFlowNet(finest_level=3).eval())
    engine.card = {"occlusion": {"check": {"alpha": 0.2, "beta": 2.0}}}
    engine.configure(alpha=0.0, beta=0.0)
    assert (engine.alpha, engine.beta) == (0.0, 0.0)
    engine.configure(alpha=-1.0, beta=-1.0)
    assert (engine.alpha, engine.beta) == (0.2, 2.0)
