"""benchmarks/large_ops.py: its one-hot f-lcon window is the model's slices, and it runs (so it
cannot rot)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

import lfn_ros.model.liteflownet as liteflownet

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "large_ops.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("large_ops", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("k", [3, 5, 7])
def test_the_one_hot_window_is_the_models_neighbourhood_to_the_bit(k):
    flow = torch.randn(2, 1, 24, 32) * 5.0  # NetE units: up to ~15 (300 px)
    assert torch.equal(load_benchmark().one_hot_neighbourhood(flow, k), liteflownet.neighbourhood(flow, k))


def test_the_benchmark_runs_and_the_candidates_flow_is_the_models(tmp_path):
    large_ops = load_benchmark()
    original = liteflownet.neighbourhood, liteflownet.correlation
    out = tmp_path / "large_ops.json"
    assert large_ops.main(["--reps", "1", "--grids", "64x96", "--backends", "torch,openvino", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == list(large_ops.VARIANTS) * 2
    assert [r["max_flow_difference"] for r in rows if r["variant"] == "one-hot conv"] == [0.0, 0.0]
    assert all(r["decoder_ms"] > 0 for r in rows)
    assert (liteflownet.neighbourhood, liteflownet.correlation) == original, "the patches were undone"
