"""The adaptive cascade in the real node (lfn_ros.governor; the rule itself: test/test_governor.py,
in the loop: test/test_pipeline.py): a two-scale node fed by a camera far faster than its engine
runs its frames in one pass, says so on flow/timing and counts them in /diagnostics. Real rclpy,
node and probe in separate processes (test/nodes/conftest.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed")
pytest.importorskip("lfn_ros.msg", reason="lfn_ros.msg is not built (make msgs)")

from test_flow_node import NODE_PARAMS  # noqa: E402  (test/nodes is on sys.path under pytest)


def test_a_two_scale_node_behind_its_camera_runs_one_pass_and_reports_it(start_node, probe):
    # Warmed up at the probe's frame size: the OpenVINO backend compiles the cascade's three
    # graphs for a new size (about 25 s here), which would otherwise fall inside the flood.
    node = start_node("flow_node", {**NODE_PARAMS, "cascade": "two-scale", "warmup_height": 96, "warmup_width": 128})
    results = probe(["ready", "flood"])
    assert results["ready"]["running"], node.output()[-3000:]
    flood = results["flood"]
    assert "error" not in flood, flood.get("traceback")
    models = flood["models"]
    assert len(models) >= 5, (flood["sent"], models, node.output()[-3000:])
    # The first flows are two-scale; after three cascaded turns longer than the 10 ms period the
    # governor gives way and stays away (one pass does not keep up at 100 Hz either).
    assert "two-scale cascade" in models[0]
    assert all("one pass (adaptive cascade)" in model for model in models[4:]), models
    values = flood["diagnostics"]["values"]
    assert values["cascade_now"] == "one pass"
    assert int(values["frames_one_pass"]) == sum("one pass" in model for model in models)
    assert node.alive()
