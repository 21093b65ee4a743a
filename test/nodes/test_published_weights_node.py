"""flow_node with the ports' files as downloaded (issue 17): real rclpy, the node and the probe
in separate processes. A ptlflow .ckpt and an mmflow .pth (random weights in their layouts: CI
cannot download the real ones) each start the node, which reports the port's computation and
publishes flow for every frame after the first."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("rclpy", reason="rclpy is not installed")
pytest.importorskip("lfn_ros.msg", reason="lfn_ros.msg is not built (make msgs)")

from lfn_ros.model.published import MMFLOW_LAYOUT, PTLFLOW_LAYOUT  # noqa: E402

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "model"))
from random_layouts import random_state  # noqa: E402

from test_flow_node import H, W, NODE_PARAMS, _expect_nothing  # noqa: E402


@pytest.mark.parametrize("layout, filename", [(PTLFLOW_LAYOUT, "liteflownet-things-a4d066e2.ckpt"),
                                              (MMFLOW_LAYOUT, "liteflownet_8x1_500k_flyingthings3d_subset_384x768.pth")])
def test_the_node_runs_a_ports_file_as_downloaded(start_node, probe, tmp_path, layout, filename):
    path = tmp_path / filename
    torch.save({"state_dict": random_state(layout.manifest(), seed=2, gain=1.0)}, path)
    node = start_node("flow_node", dict(NODE_PARAMS, weights=str(path)), name=f"flow_node_{layout.name}")
    try:
        results = probe(["ready", "basic"])
    finally:
        output = node.output()
        alive = node.alive()
        node.stop()  # the next case's node publishes on the same topics
    assert "error" not in results["basic"], f"{results['basic'].get('traceback')}\n{output[-3000:]}"
    assert alive, output[-3000:]
    frames = results["basic"]["frames"]
    _expect_nothing(frames[0])
    for frame in frames[1:]:
        assert frame["arrived"], f"no flow for stamp {frame['stamp']}: {frame}\n{output[-3000:]}"
        flow, timing = frame["outputs"]["flow"], frame["outputs"]["timing"]
        assert (flow["encoding"], flow["height"], flow["width"], flow["finite"]) == ("32FC2", H, W, True)
        # The node names the file it runs (its card), level 2 as published.
        assert f"weights {path.stem}" in timing["model"] and "level 2" in timing["model"]
