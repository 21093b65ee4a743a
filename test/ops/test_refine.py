"""The variational refinement (lfn_ros.ops.refine) and the engine's last stage that runs it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lfn_ros.engine import FlowEngine
from lfn_ros.io.sources import iter_source
from lfn_ros.model.liteflownet import LiteFlowNet
from lfn_ros.ops.refine import REFINEMENTS, VariationalParams, VariationalRefiner, grey, make_refiner, resolve_refinement

#: A sub-pixel motion: what a quarter-resolution flow upsampled 4x renders imprecisely.
SHIFT = (2.4, -1.3)
INNER = (slice(12, -12), slice(12, -12))


def subpixel_pair(size=(120, 160), shift=SHIFT):
    """The embedded camera frame at ``size`` (H, W) and the same frame moved by ``shift`` px
    (bilinear, edges reflected): the true flow is ``shift`` everywhere."""
    image = cv2.resize(next(iter_source("")), (size[1], size[0]), interpolation=cv2.INTER_AREA)
    moved = cv2.warpAffine(image, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (size[1], size[0]),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return image, moved


def median_error(flow, shift=SHIFT) -> float:
    return float(np.median(np.linalg.norm(flow[INNER] - np.array(shift), axis=-1)))


def blurred_noise(size=(120, 160), seed=0):
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random(size + (3,)).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def test_refinement_moves_a_wrong_flow_towards_the_truth_and_leaves_its_input_alone():
    image = blurred_noise()
    moved = cv2.warpAffine(image, np.float32([[1, 0, SHIFT[0]], [0, 1, SHIFT[1]]]), (160, 120),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    start = np.zeros((120, 160, 2), np.float32)
    start[...] = (2.0, -1.0)  # whole pixels, as a coarse grid would give
    kept = start.copy()
    refined = VariationalRefiner()(start, grey(image), grey(moved))
    assert refined.shape == start.shape and refined.dtype == np.float32
    np.testing.assert_array_equal(start, kept)
    assert median_error(refined) < median_error(start) - 0.02, (median_error(refined), median_error(start))
    # A stronger data term moves it further (the parameters reach the solver).
    stronger = VariationalRefiner(VariationalParams(gamma=100.0))(start, grey(image), grey(moved))
    assert median_error(stronger) < median_error(refined) - 0.1


def test_the_exact_flow_stays_where_it_is():
    image = blurred_noise(seed=1)
    moved = cv2.warpAffine(image, np.float32([[1, 0, SHIFT[0]], [0, 1, SHIFT[1]]]), (160, 120),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    exact = np.zeros((120, 160, 2), np.float32)
    exact[...] = SHIFT
    assert median_error(VariationalRefiner()(exact, grey(image), grey(moved))) < 0.02


def test_bad_shapes_and_names_are_refused():
    refiner = VariationalRefiner()
    frame = np.zeros((40, 50), np.uint8)
    with pytest.raises(ValueError, match="expected flow"):
        refiner(np.zeros((40, 50, 3), np.float32), frame, frame)
    with pytest.raises(ValueError, match="expected flow"):
        refiner(np.zeros((40, 50, 2), np.float32), frame, np.zeros((41, 50), np.uint8))
    assert make_refiner("none") is None and isinstance(make_refiner("variational"), VariationalRefiner)
    for name in ("bilateral", "auto"):  # auto must be resolved against the weights first
        with pytest.raises(ValueError, match="refinement must be one of"):
            make_refiner(name)
    with pytest.raises(ValueError, match="refinement must be one of auto, variational, none"):
        resolve_refinement("bilateral", {})
    assert REFINEMENTS == ("auto", "variational", "none")


def test_auto_refines_lfn_ros_weights_and_runs_the_papers_as_published():
    ours, papers = {"name": "liteflownet_synthetic", "trained": True}, {"imported": {"layout": "sniklaus"}}
    assert resolve_refinement("auto", ours) == "variational"
    assert resolve_refinement("auto", papers) == "none"
    assert resolve_refinement("variational", papers) == "variational"  # asked for explicitly
    assert resolve_refinement("none", ours) == "none"


@pytest.fixture(scope="module")
def shipped_engines():
    """The shipped weights with and without the refinement, sharing one model."""
    refined = FlowEngine(device="cpu", backend="torch", precision="fp32", occlusion=False)
    plain = FlowEngine(model=refined.model, device="cpu", backend="torch", precision="fp32", occlusion=False,
                       refinement="none")
    return refined, plain


def test_the_engine_refines_by_default_and_it_sharpens_a_subpixel_motion(shipped_engines):
    refined, plain = shipped_engines
    first, second = subpixel_pair()
    with_refinement, without = refined.infer(first, second), plain.infer(first, second)
    assert "variational refinement" in refined.model_name and "refinement" not in plain.model_name
    assert with_refinement.timings["refine"] > 0 and without.timings["refine"] == 0
    assert with_refinement.timings["compute"] >= with_refinement.timings["refine"]
    # Measured: 0.20 px without, 0.14 px with (the shipped round-3 weights, level 3).
    assert median_error(with_refinement.flow) < median_error(without.flow) - 0.02, \
        (median_error(with_refinement.flow), median_error(without.flow))


def test_streaming_refines_with_the_previous_frames_grey_and_switches_at_runtime():
    torch.manual_seed(0)
    engine = FlowEngine(model=LiteFlowNet(), device="cpu", backend="torch", occlusion=False, refinement="none")
    frames = [subpixel_pair(shift=(0.0, 0.0))[0]] + [subpixel_pair(shift=(1.5 * i, 0.0))[1] for i in (1, 2, 3, 4)]
    assert engine.process(frames[0], seconds=0.0) is None
    assert engine.process(frames[1], seconds=1.0).timings["refine"] == 0
    engine.configure(refinement="variational")
    # The previous frame arrived while the refinement was off: it has no grey image yet.
    assert engine.process(frames[2], seconds=2.0).timings["refine"] == 0
    result = engine.process(frames[3], seconds=3.0)
    assert result.timings["refine"] > 0
    expected = VariationalRefiner()(_network_flow(engine, frames[2], frames[3]), grey(frames[2]), grey(frames[3]))
    np.testing.assert_allclose(result.flow, expected, atol=1e-4)
    engine.configure(refinement="none")
    assert engine.process(frames[4], seconds=4.0).timings["refine"] == 0
    with pytest.raises(ValueError, match="refinement must be one of"):
        engine.configure(refinement="median")
    engine.configure(refinement="auto")  # an in-memory model is lfn_ros's own: auto refines
    assert engine.refinement == "variational" and engine.refiner is not None


def _network_flow(engine, first, second):
    """The network's flow for a pair through ``engine`` with its refinement off for one call."""
    saved = engine.refiner
    engine.refiner = None
    try:
        return engine.infer(first, second).flow
    finally:
        engine.refiner = saved
