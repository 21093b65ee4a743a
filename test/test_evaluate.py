"""Metrics on hand-made cases, the peers on real pairs, and the evaluation runner end to end."""

import argparse
import io
import json
import math
import warnings

import numpy as np
import pytest

from lfn_ros.data.datasets import discover
from lfn_ros.evaluate import (
    METHODS,
    MOTION_BINS,
    MethodUnavailable,
    add_counts,
    add_parser,
    endpoint_error,
    error_counts,
    evaluate,
    make_method,
    occlusion_scores,
    raft_state_dict,
    summarize_errors,
)
from lfn_ros.model.weights import UntrainedWarning
from lfn_ros.resources import raft_weights

# ------------------------------------------------------------------------- endpoint error


def test_perfect_prediction():
    rng = np.random.default_rng(0)
    gt = rng.normal(scale=5, size=(6, 7, 2)).astype(np.float32)
    m = endpoint_error(gt.copy(), gt)
    assert m["epe"] == 0 and m["1px"] == m["3px"] == m["5px"] == 1.0 and m["fl_all"] == 0 and m["n"] == 42


def test_constant_offset_gives_exact_epe():
    gt = np.zeros((4, 5, 2), np.float32)
    pred = gt + np.array([3.0, 4.0], np.float32)  # |(3, 4)| = 5 px everywhere
    m = endpoint_error(pred, gt)
    assert m["epe"] == pytest.approx(5.0, abs=1e-9)
    assert m["1px"] == m["3px"] == m["5px"] == 0.0  # "< 5 px" is strict
    assert m["fl_all"] == 100.0  # 5 > 3 px and 5 > 5 % of |0|
    m = endpoint_error(gt + np.array([0.6, 0.8], np.float32), gt)
    assert m["epe"] == pytest.approx(1.0, abs=1e-6) and m["3px"] == 1.0 and m["fl_all"] == 0.0


def test_motion_bins_score_pixels_by_their_true_motion():
    # Three columns of true motion 5, 25 and 60 px with errors 1, 2 and 4 px: each bin sees its own.
    gt = np.zeros((3, 3, 2), np.float32)
    gt[:, 0, 0], gt[:, 1, 0], gt[:, 2, 1] = 5.0, 25.0, 60.0
    pred = gt.copy()
    pred[:, 0, 1] += 1.0
    pred[:, 1, 0] += 2.0
    pred[:, 2, 0] += 4.0
    m = endpoint_error(pred, gt)
    assert [name for name, _, _ in MOTION_BINS] == ["s0-10", "s10-40", "s40+"]
    assert (m["epe_s0-10"], m["epe_s10-40"], m["epe_s40+"]) == pytest.approx((1.0, 2.0, 4.0))
    assert m["n_s0-10"] == m["n_s10-40"] == m["n_s40+"] == 3
    # The edges: 10 px belongs to s10-40, 40 px to s40+; a bin without pixels is NaN, not 0.
    edge = np.zeros((1, 2, 2), np.float32)
    edge[0, 0, 0], edge[0, 1, 0] = 10.0, 40.0
    m = endpoint_error(edge, edge)
    assert m["n_s10-40"] == 1 and m["n_s40+"] == 1 and math.isnan(m["epe_s0-10"])
    # Summed counts give pixel-weighted bins over pairs.
    total = add_counts(add_counts({}, error_counts(pred, gt)), error_counts(edge, edge))
    assert summarize_errors(total)["epe_s10-40"] == pytest.approx((3 * 2.0 + 0.0) / 4)


def test_fl_all_needs_both_absolute_and_relative_error():
    # Every pixel is off by 4 px (> 3 px). Left half: |gt| = 50, 5 % = 2.5 -> outlier.
    # Right half: |gt| = 100, 5 % = 5 -> not an outlier.
    gt = np.zeros((2, 4, 2), np.float32)
    gt[:, :2, 0] = 50.0
    gt[:, 2:, 0] = 100.0
    pred = gt.copy()
    pred[..., 1] += 4.0
    m = endpoint_error(pred, gt)
    assert m["epe"] == pytest.approx(4.0)
    assert m["fl_all"] == pytest.approx(50.0)  # percent
    assert m["3px"] == 0.0 and m["5px"] == 1.0
    # 2.9 px error with a tiny gt: relative clause passes, absolute one fails -> not an outlier.
    small = np.zeros((1, 1, 2), np.float32)
    assert endpoint_error(small + np.array([2.9, 0], np.float32), small)["fl_all"] == 0.0


def test_invalid_pixels_are_ignored():
    gt = np.zeros((3, 3, 2), np.float32)
    pred = gt.copy()
    valid = np.ones((3, 3), bool)
    pred[0, 0] = (1e6, -1e6)
    valid[0, 0] = False
    pred[1, 1] = (0.0, 2.0)
    m = endpoint_error(pred, gt, valid)
    assert m["n"] == 8 and m["epe"] == pytest.approx(2.0 / 8)
    assert m["1px"] == pytest.approx(7 / 8) and m["3px"] == 1.0
    none = endpoint_error(pred, gt, np.zeros((3, 3), bool))
    assert none["n"] == 0 and math.isnan(none["epe"])
    with pytest.raises(ValueError, match=r"\(3, 3, 2\)"):
        endpoint_error(pred[:, :2], gt)
    with pytest.raises(ValueError):
        endpoint_error(pred, gt, valid[:2])


def test_counts_sum_over_pairs_like_one_big_pair():
    rng = np.random.default_rng(3)
    a, b = (rng.normal(scale=4, size=(5, 6, 2)) for _ in range(2))
    c, d = (rng.normal(scale=4, size=(7, 6, 2)) for _ in range(2))
    total = error_counts(a, b)
    for key, value in error_counts(c, d).items():
        total[key] += value
    joined = endpoint_error(np.concatenate([a, c]), np.concatenate([b, d]))
    for key, value in summarize_errors(total).items():
        assert value == pytest.approx(joined[key], nan_ok=True)  # no pixel moves 40 px: s40+ is NaN


# ------------------------------------------------------------------------- occlusion


def test_occlusion_precision_recall_f1():
    pred = np.array([[1, 1, 0, 0], [0, 0, 0, 1]], bool)
    gt = np.array([[1, 0, 0, 0], [1, 0, 0, 1]], bool)
    p, r, f1 = occlusion_scores(pred, gt)  # tp 2, fp 1, fn 1
    assert (p, r, f1) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    valid = np.ones_like(gt)
    valid[1, 0] = False  # drop the false negative
    scores = occlusion_scores(pred, gt, valid)
    assert scores.precision == pytest.approx(2 / 3) and scores.recall == 1.0 and scores.f1 == pytest.approx(0.8)
    assert occlusion_scores(np.zeros_like(gt), np.zeros_like(gt)) == (1.0, 1.0, 1.0)
    assert occlusion_scores(np.zeros_like(gt), gt) == (0.0, 0.0, 0.0)
    assert occlusion_scores(gt, gt) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        occlusion_scores(pred, gt[:, :3])


# ------------------------------------------------------------------------- peers


@pytest.fixture(scope="module")
def found(shared_data):
    return discover(shared_data)


def _dataset_epe(method, loaders):
    errors = {"n": 0}
    for loader in loaders:
        sample = loader()
        flow, _ = method.fn(sample.image1, sample.image2)
        add_counts(errors, error_counts(flow, sample.flow, sample.valid))
    return summarize_errors(errors)["epe"]


def _middlebury(found, scene):
    return [loader for loader in found["Middlebury"] if loader.name == scene]


def test_dis_medium_is_far_better_than_zero_flow(found):
    dis, zero = make_method("DIS-medium"), make_method("zero")
    # Measured: RubberWhale DIS-medium 0.23 px, zero 1.26 px; Dimetrodon 0.16 vs 2.06;
    # FlyingChairs (9 pairs) 3.70 vs 10.51; KITTI 2015 000010 (noc) 2.98 vs 8.90.
    for scene, zero_epe, dis_bound in (("RubberWhale", 1.256, 0.35), ("Dimetrodon", 2.058, 0.25)):
        scene_dis, scene_zero = _dataset_epe(dis, _middlebury(found, scene)), _dataset_epe(zero, _middlebury(found, scene))
        assert scene_zero == pytest.approx(zero_epe, abs=0.01), scene
        assert scene_dis < dis_bound and scene_dis < 0.3 * scene_zero, scene
    kitti_dis, kitti_zero = _dataset_epe(dis, found["KITTI2015-noc"]), _dataset_epe(zero, found["KITTI2015-noc"])
    assert kitti_zero == pytest.approx(8.896, abs=0.01)
    assert kitti_dis < 4.0 and kitti_dis < 0.5 * kitti_zero
    chairs_dis, chairs_zero = _dataset_epe(dis, found["FlyingChairs"]), _dataset_epe(zero, found["FlyingChairs"])
    assert chairs_zero == pytest.approx(10.51, abs=0.05)
    assert chairs_dis < 5.0 and chairs_dis < 0.5 * chairs_zero


def test_farneback_beats_zero_on_middlebury(found):
    # Measured 0.36 px on RubberWhale (zero 1.26), 0.94 on Dimetrodon (zero 2.06), with
    # pyr_scale 0.5, levels 5, winsize 15, iterations 3, poly_n 5, sigma 1.2.
    assert _dataset_epe(make_method("Farneback"), _middlebury(found, "RubberWhale")) < 0.5
    assert _dataset_epe(make_method("Farneback"), _middlebury(found, "Dimetrodon")) < 1.2


def test_raft_is_unavailable_without_torchvision_and_unknown_methods_are_refused():
    try:
        import torchvision  # noqa: F401
        pytest.skip("torchvision present: RAFT-small can run")
    except (ImportError, RuntimeError):
        pass
    with pytest.raises(MethodUnavailable, match="torchvision"):
        make_method("RAFT-small", device="cpu")
    with pytest.raises(ValueError, match="unknown method"):
        make_method("PWC-Net")


def test_raft_key_mapping_covers_the_authors_checkpoint():
    import torch

    path = raft_weights()
    if path is None or not path.is_file():
        pytest.skip(f"no RAFT-small weights at {path} ($LFN_ROS_RAFT_WEIGHTS)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    mapped = raft_state_dict(state)
    assert len(mapped) == len(state) == 106
    assert sum(t.numel() for t in mapped.values()) == 990_162
    prefixes = ("feature_encoder.", "context_encoder.", "update_block.motion_encoder.",
                "update_block.recurrent_block.convgru1.", "update_block.flow_head.")
    assert all(name.startswith(prefixes) for name in mapped)
    expected = {
        "feature_encoder.convnormrelu.0.weight": (32, 3, 7, 7),
        "feature_encoder.layer2.0.convnormrelu2.0.weight": (16, 16, 3, 3),
        "feature_encoder.layer3.0.downsample.0.weight": (96, 64, 1, 1),
        "feature_encoder.conv.weight": (128, 96, 1, 1),
        "context_encoder.conv.weight": (160, 96, 1, 1),
        "update_block.motion_encoder.convcorr1.0.weight": (96, 196, 1, 1),
        "update_block.motion_encoder.convflow1.0.weight": (64, 2, 7, 7),
        "update_block.motion_encoder.convflow2.0.weight": (32, 64, 3, 3),
        "update_block.motion_encoder.conv.0.weight": (80, 128, 3, 3),
        "update_block.recurrent_block.convgru1.convq.weight": (96, 242, 3, 3),
        "update_block.flow_head.conv2.bias": (2,),
    }
    for name, shape in expected.items():
        assert tuple(mapped[name].shape) == shape, name
    with pytest.raises(ValueError, match="no torchvision"):
        raft_state_dict({"module.cnet.norm1.weight": torch.zeros(1)})


# ------------------------------------------------------------------------- runner


def test_runner_end_to_end_untrained_network(shared_data, tmp_path):
    out = io.StringIO()
    plot, raw = tmp_path / "eval.png", tmp_path / "eval.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWarning)
        results = evaluate(shared_data, weights=None, device="cpu", datasets=["Middlebury"], max_pairs=1,
                           plot=plot, json_out=raw, progress=False, warmup=False, out=out)
    text = out.getvalue()
    assert "== Middlebury: 1 pair(s), 584x388 ==" in text and "== all:" in text
    for label in ("lfn_ros (untrained)", "DIS-ultrafast", "DIS-fast", "DIS-medium", "Farneback", "zero flow"):
        assert label in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(raw.read_text())
    assert saved["datasets"]["Middlebury"]["pairs"] == 1
    rows = results["datasets"]["Middlebury"]["methods"]
    assert list(rows)[0] == "lfn_ros" and results["lfn_ros"]["card"]["trained"] is False
    expected_runnable = [m for m in METHODS if m not in results["skipped"]]
    assert list(rows) == expected_runnable
    if "RAFT-small" in results["skipped"]:
        assert "RAFT-small skipped:" in text
    assert rows["DIS-medium"]["epe"] < 0.35 < rows["zero"]["epe"]
    assert math.isfinite(rows["lfn_ros"]["epe"]) and rows["lfn_ros"]["ms_per_pair"] > 0
    assert saved["all"]["methods"]["DIS-medium"]["epe"] == pytest.approx(rows["DIS-medium"]["epe"])


def test_runner_scores_kitti_once_for_noc_and_occ(shared_data):
    out = io.StringIO()
    results = evaluate(shared_data, methods=("DIS-fast", "zero"), datasets=["KITTI2012-noc", "KITTI2012-occ"],
                       progress=False, out=out)
    noc, occ = (results["datasets"][d]["methods"]["DIS-fast"] for d in ("KITTI2012-noc", "KITTI2012-occ"))
    assert noc["ms_per_pair"] == occ["ms_per_pair"]  # computed once, scored twice
    assert occ["n"] > noc["n"] and occ["epe"] > noc["epe"]  # occluded pixels are harder
    assert results["all"]["datasets"] == ["KITTI2012-noc"] and results["all"]["left_out"] == ["KITTI2012-occ"]
    with pytest.raises(ValueError, match="not found"):
        evaluate(shared_data, methods=("zero",), datasets=["Sintel-albedo"], progress=False, out=out)
    with pytest.raises(ValueError, match="unknown method"):
        evaluate(shared_data, methods=("magic",), progress=False, out=out)


def test_cli_subcommand(shared_data, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="lfn-ros")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["evaluate", str(shared_data), "--datasets", "Middlebury", "--methods", "DIS-fast,zero",
                              "--json", str(tmp_path / "r.json"), "--no-progress"])
    assert args.func(args) == 0
    assert "DIS-fast" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["methods"] == ["DIS-fast", "zero"]
    args = parser.parse_args(["evaluate", str(shared_data), "--datasets", "Nope", "--methods", "zero"])
    assert args.func(args) == 2
    args = parser.parse_args(["evaluate", str(tmp_path / "missing")])
    assert args.func(args) == 2
    defaults = parser.parse_args(["evaluate", "--no-peers", "--max-pairs", "2", "--finest-level", "3"])
    assert defaults.weights == "default" and defaults.max_pairs == 2 and defaults.finest_level == 3

