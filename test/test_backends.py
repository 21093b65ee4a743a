"""Engine backends and precisions (issue 10): the same flow, within a stated tolerance, from
torch fp32 / bf16 and OpenVINO f32 / bf16, on real pairs with ground truth; resolution of 'auto'."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lfn_ros.data.datasets import discover
from lfn_ros.engine import FlowEngine, resolve_backend
from lfn_ros.engine.openvino_backend import openvino_available
from lfn_ros.evaluate.metrics import endpoint_error
from lfn_ros.io import shifted_pair

@pytest.fixture(scope="module")
def pairs(shared_data):
    found = discover(shared_data)
    return [found[name][index]() for name, index in (("Middlebury", 0), ("KITTI2012-noc", 0), ("Sintel-clean", 0),
                                                     ("Sintel-final", 2))]


@pytest.fixture(scope="module")
def reference(pairs):
    engine = FlowEngine(device="cpu", backend="torch", precision="fp32")
    return [endpoint_error(engine.infer(p.image1, p.image2).flow, p.flow, p.valid)["epe"] for p in pairs]


def test_auto_picks_the_fastest_accurate_backend():
    expected = "openvino" if openvino_available() else "torch"
    assert resolve_backend("auto", torch.device("cpu"), "fp32") == expected
    # OpenVINO's bf16 costs +5 % EPE (below): bf16 runs on torch, which keeps the flow in fp32.
    assert resolve_backend("auto", torch.device("cpu"), "bf16") == "torch"
    assert resolve_backend("auto", torch.device("cuda"), "fp32") == "torch"
    assert resolve_backend("torch", torch.device("cpu")) == "torch"
    with pytest.raises(ValueError, match="CPU"):
        resolve_backend("openvino", torch.device("cuda"))
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("tensorrt", torch.device("cpu"))


@pytest.mark.parametrize("backend, precision, per_pair, on_mean", [
    # The paths "auto" chooses: within 1 % of torch fp32 (issue 10's target).
    ("torch", "bf16", 0.01, 0.01),
    ("openvino", "fp32", 0.001, 0.001),
])
def test_every_automatic_fast_path_stays_within_1_percent_of_torch_fp32(pairs, reference, backend, precision, per_pair, on_mean):
    changes = [(epe - epe_fp32) / epe_fp32 for epe, epe_fp32 in zip(epes(pairs, backend, precision), reference)]
    assert max(abs(c) for c in changes) <= per_pair, changes
    assert abs(float(np.mean(changes))) <= on_mean, changes


def test_openvino_bf16_costs_what_the_docs_say(pairs, reference):
    """OpenVINO bf16, opt-in only: its precision hint rounds the accumulated flow to bf16 too
    (8 significant bits: 0.25 px steps at 60 px), so its cost is an absolute error that grows with
    the motion, not with the EPE: measured on these pairs -0.01 to +0.01 px on Middlebury and
    KITTI, +0.06 to +0.09 px on the Sintel pairs (+9 to +18 % there, depending on the weights).
    The bound says the cost stays what docs/benchmarks.md states, not that issue 10's 1 % is met."""
    added = [epe - epe_fp32 for epe, epe_fp32 in zip(epes(pairs, "openvino", "bf16"), reference)]
    assert max(abs(a) for a in added) <= 0.2, added
    assert abs(float(np.mean(added))) <= 0.1, added


def test_int8_costs_what_the_docs_say(pairs, reference):
    """OpenVINO int8, opt-in only (NNCF's quantised convolutions, the flow path in f32): on the
    evaluation data +1.4 % mean EPE with the refinement (+0.017 px; docs/benchmarks.md, "INT8"),
    over issue 16's 1 % rule, so ``auto`` never picks it. The bound keeps that cost what the
    docs state."""
    pytest.importorskip("nncf", reason="precision int8 needs NNCF (requirements.txt installs it)")
    added = [epe - epe_fp32 for epe, epe_fp32 in zip(epes(pairs, "openvino", "int8"), reference)]
    assert max(abs(a) for a in added) <= 0.1, added
    assert abs(float(np.mean(added))) <= 0.05, added


def epes(pairs, backend: str, precision: str) -> list[float]:
    if backend == "openvino" and not openvino_available():
        pytest.skip("OpenVINO is not installed")
    # Without native bf16, torch emulates it (slowly) and the tolerance still applies.
    engine = FlowEngine(device="cpu", backend=backend, precision=precision)
    assert engine.backend.name == backend and engine.precision == precision
    return [endpoint_error(engine.infer(p.image1, p.image2).flow, p.flow, p.valid)["epe"] for p in pairs]


def test_the_openvino_node_path_keeps_features_and_recompiles_on_a_resolution_change():
    if not openvino_available():
        pytest.skip("OpenVINO is not installed")
    engine = FlowEngine(device="cpu", backend="openvino", precision="fp32", cascade="none")
    small = shifted_pair(3, -2, size=(96, 128))
    large = shifted_pair(3, -2, size=(128, 160))
    assert engine.process(small[0], seconds=0.0) is None
    calls = []
    encode = engine.backend.encode
    engine.backend.encode = lambda *a: calls.append(a[0].shape) or encode(*a)
    result = engine.process(small[1], seconds=1.0)
    assert len(calls) == 1, "one frame through the encoder per step (the previous one is kept)"
    assert result.flow.shape == (96, 128, 2) and result.occlusion.shape == (96, 128)
    assert engine.process(large[0], seconds=2.0) is None  # a new resolution starts a new sequence
    assert engine.process(large[1], seconds=3.0).flow.shape == (128, 160, 2)
    assert len(engine.backend._encoders) == 2  # compiled for both grids


def test_the_occlusion_head_needs_the_decoder_down_to_its_level():
    """The head reads level-3 features and a flow of level 3 or finer: auto falls back to the
    check for a decoder that stops at level 4-6, an explicit 'head' is refused in one line (the
    graph backend once crashed there on a missing level-3 feature map)."""
    from lfn_ros.engine.backends import resolve_occlusion_method

    assert resolve_occlusion_method("auto", True, 3) == "head" and resolve_occlusion_method("auto", True, 2) == "head"
    assert resolve_occlusion_method("auto", True, 4) == "check"
    with pytest.raises(ValueError, match="level 3 or finer"):
        resolve_occlusion_method("head", True, 6)
    engine = FlowEngine(device="cpu", precision="fp32", backend="torch", finest_level=5)
    assert engine.occlusion_method == "check"
    first, second = shifted_pair(2, 1, size=(64, 96))
    assert engine.infer(first, second).occlusion.shape == (64, 96)


def test_openvino_runs_the_occlusion_head_at_level_2_as_torch_does():
    """At level 2 the head averages the finer flow down to level 3; OpenVINO's decoder graph with
    the head failed to export there (adaptive pooling, found by benchmarks/speed.py)."""
    if not openvino_available():
        pytest.skip("OpenVINO is not installed")
    first, second = shifted_pair(3, -2, size=(96, 128))
    results = []
    for backend in ("torch", "openvino"):
        engine = FlowEngine(device="cpu", backend=backend, precision="fp32", finest_level=2, occlusion_method="head",
                            cascade="none")  # the network; the cascade's agreement: test/ops/test_cascade.py
        assert engine.occlusion_method == "head"
        engine.process(first, seconds=0.0)
        results.append(engine.process(second, seconds=1.0))
    assert np.abs(results[0].flow - results[1].flow).max() < 1e-3
    assert (results[0].occlusion != results[1].occlusion).mean() < 0.01


def test_the_compiled_torch_backend_gives_the_eager_flow():
    """TorchInductor (issue 16 item 3): the same network compiled. A small decoder (levels 6..5)
    on a small pair keeps the compile to about a minute on two cores; the accuracy on the real
    pairs and the speed of the full network are in docs/benchmarks.md."""
    a, b = shifted_pair(4, -2, size=(96, 128))
    kwargs = dict(device="cpu", precision="fp32", finest_level=5, occlusion_method="check")
    eager = FlowEngine(backend="torch", **kwargs)
    compiled = FlowEngine(backend="torch-compiled", **kwargs)
    assert compiled.backend.name == "torch-compiled" and "torch-compiled" in compiled.model_name
    expected, got = eager.infer(a, b), compiled.infer(a, b)
    assert np.abs(expected.flow).max() > 0.5
    np.testing.assert_allclose(got.flow, expected.flow, atol=1e-3)
    np.testing.assert_array_equal(got.occlusion, expected.occlusion)
    # Its streaming state works like torch's: a second frame reuses the first's encoding.
    assert compiled.process(a) is None and compiled.process(b).flow.shape == expected.flow.shape
