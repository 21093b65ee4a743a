"""The shipped weights, tested with real signal: known motions are recovered (through the engine,
the model and the CLI), the engine's output is the model's, and the published evaluation belongs
to the shipped file. A zeroed, negated, u/v-swapped or missing model fails here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lfn_ros.data.synthetic import SyntheticConfig, SyntheticFlow
from lfn_ros.engine import FlowEngine
from lfn_ros.io import read_flo, shifted_pair, write_image
from lfn_ros.model.weights import file_sha256, load_model
from lfn_ros.ops.occlusion import forward_backward_occlusion
from lfn_ros.resources import DEFAULT_WEIGHTS

REPO = Path(__file__).resolve().parents[1]
#: Largest error allowed for the mean flow of a rigid shift (px), and for its median EPE.
MEAN_TOLERANCE_PX = 0.6
MEDIAN_EPE_PX = 1.5
#: Mean EPE on synthetic pairs with exact flow, relative to zero flow's EPE (round 1's weights: 0.60).
SYNTHETIC_RATIO = 0.7


@pytest.fixture(scope="module")
def engine():
    # The shipped weights at their recommended level; the forward-backward check, so the test
    # below can recompute the mask from the model's two directions; the network's flow alone
    # (the refinement that follows it by default is tested in test/ops/test_refine.py).
    return FlowEngine(device="cpu", precision="fp32", backend="torch", occlusion_method="check", refinement="none",
                      cascade="none")  # the network in one pass (test/ops/test_cascade.py: the cascade)


def shift_errors(flow: np.ndarray, dx: int, dy: int, border: int = 16):
    inner = flow[border:-border, border:-border]
    mean = inner.reshape(-1, 2).mean(0)
    epe = np.linalg.norm(inner - np.array([dx, dy], np.float32), axis=-1)
    return mean, float(np.median(epe))


def test_the_shipped_checkpoint_is_trained_and_recommends_a_level():
    model, card = load_model("default")
    assert card["trained"] is True and card["steps"] > 0 and card["pairs_seen"] > 0
    assert model.finest_level == card["recommended_finest_level"] in (2, 3)


@pytest.mark.parametrize("dx, dy", [(3, -2), (-5, 4), (0, 6)])
def test_the_engine_recovers_a_rigid_shift(engine, dx, dy):
    first, second = shifted_pair(dx, dy)
    mean, median = shift_errors(engine.infer(first, second).flow, dx, dy)
    assert np.all(np.abs(mean - (dx, dy)) < MEAN_TOLERANCE_PX), (mean, (dx, dy))
    assert median < MEDIAN_EPE_PX, median
    backward = engine.infer(second, first).flow  # the reverse pair moves the other way
    mean_back, _ = shift_errors(backward, -dx, -dy)
    assert np.all(np.abs(mean_back - (-dx, -dy)) < MEAN_TOLERANCE_PX), mean_back


def test_the_engine_beats_zero_flow_on_a_synthetic_pair_with_exact_flow(engine):
    data = SyntheticFlow(224, 320, seed=21, config=SyntheticConfig.round1(augment=False, large_motion_prob=0.0)).sample(3)
    ratios = []
    for i in range(3):
        a = (data["image1"][i].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        b = (data["image2"][i].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        truth = data["flow"][i].permute(1, 2, 0).numpy()
        error = np.linalg.norm(engine.infer(a, b).flow - truth, axis=-1).mean()
        ratios.append(error / np.linalg.norm(truth, axis=-1).mean())
    # Zero flow scores 1, a negated flow about 2, swapped u/v about 1.4.
    assert np.mean(ratios) < SYNTHETIC_RATIO and max(ratios) < 0.9, ratios


def test_the_engine_publishes_exactly_what_the_model_computes(engine):
    """Forward flow is the model's forward flow (not the backward half of the batch), and the
    occlusion mask is the forward-backward check of the model's two directions."""
    first, second = shifted_pair(3, -2)
    result = engine.infer(first, second)
    to_tensor = lambda image: torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)  # noqa: E731
    model = engine.model
    with torch.no_grad():
        # A streamed frame is encoded once, with the midpoint of the published pair means.
        a, b = model.encode(to_tensor(first)), model.encode(to_tensor(second))
        forward, backward = model.estimate(a, b), model.estimate(b, a)
        published = model(to_tensor(first), to_tensor(second))  # each image with its own mean
    np.testing.assert_allclose(result.flow, forward[0].permute(1, 2, 0).numpy(), atol=1e-4)
    occlusion = forward_backward_occlusion(forward, backward, engine.alpha, engine.beta)[0, 0].numpy()
    assert (result.occlusion == occlusion).mean() > 0.999
    # What the shared mean costs against the pair as published: measured 0.004-0.008 px mean on real pairs.
    cost = np.linalg.norm(result.flow - published[0].permute(1, 2, 0).numpy(), axis=-1)
    assert cost.mean() < 0.02 and cost.max() < 0.5, (cost.mean(), cost.max())


def test_the_default_occlusion_is_the_shipped_head_on_the_same_flow(engine):
    """The shipped file carries the occlusion head and the engine uses it by default; the head
    changes the mask, never the flow; its mask is neither empty nor the whole picture."""
    first, second = shifted_pair(3, -2)
    default = FlowEngine(device="cpu", precision="fp32", backend="torch", refinement="none", cascade="none")
    assert default.occlusion_method == "head"
    result = default.infer(first, second)
    np.testing.assert_allclose(result.flow, engine.infer(first, second).flow, atol=1e-4)
    assert 0.0 < result.occlusion.mean() < 0.5, result.occlusion.mean()


def test_scale_and_max_width_round_trip_to_input_pixels(engine):
    first, second = shifted_pair(6, -4)
    half = FlowEngine(model=engine.model, device="cpu", max_width=160, backend="torch")
    result = half.infer(first, second)
    assert result.flow.shape == first.shape[:2] + (2,)
    mean, _ = shift_errors(result.flow, 6, -4)
    assert np.all(np.abs(mean - (6, -4)) < 2 * MEAN_TOLERANCE_PX), mean  # in input pixels, not half-size ones


def test_lfn_ros_infer_writes_the_recovered_shift(tmp_path):
    from lfn_ros.cli import main

    first, second = shifted_pair(-4, 3)
    write_image(tmp_path / "a.png", first)
    write_image(tmp_path / "b.png", second)
    status = main(["infer", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--out", str(tmp_path / "f.flo")])
    assert status == 0
    mean, median = shift_errors(read_flo(tmp_path / "f.flo"), -4, 3)
    assert np.all(np.abs(mean - (-4, 3)) < MEAN_TOLERANCE_PX) and median < MEDIAN_EPE_PX, (mean, median)


def test_the_published_evaluation_measured_the_shipped_file():
    results = json.loads((REPO / "benchmarks" / "results" / "evaluation_cpu.json").read_text())
    assert results["lfn_ros"]["weights_sha256"] == file_sha256(DEFAULT_WEIGHTS), \
        "benchmarks/results/evaluation_cpu.json is not the evaluation of the shipped weights: rerun lfn-ros evaluate"
