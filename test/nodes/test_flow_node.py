"""flow_node end to end: real rclpy, the node and a checker (test/nodes/probe.py) in separate
processes, on a private ROS domain over loopback.

One node process (CPU, untrained weights: these tests check plumbing, not accuracy; 96x128
frames so a pair takes a fraction of a second) serves every scenario in order; the probe sends
frames in lock step (the next frame only after the previous one's flow arrived) so that nothing
is dropped and each expectation is exact. What is published:

- the first frame of a sequence (start-up, or after a reset) publishes nothing;
- every later frame publishes flow, occlusion, flow/color and flow/points (they have
  subscribers) and flow/timing, all with that frame's header;
- a malformed frame publishes nothing and does not reset the sequence.
"""

from __future__ import annotations

import signal
import time

import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed")
pytest.importorskip("lfn_ros.msg", reason="lfn_ros.msg is not built (make msgs)")

H, W = 96, 128
SCENARIOS = ["ready", "basic", "malformed", "encodings", "resolution", "backwards", "params",
             "diagnostics", "stale"]
NODE_PARAMS = {
    "device": "cpu", "weights": "", "cpu_threads": 1, "warmup": True, "warmup_height": 64,
    "warmup_width": 64, "stale_timeout": 60.0, "points_stride": 8,
    # The probe publishes reliably; a reliable subscription makes the lock-step exact even on a
    # loaded machine (best effort may lose a frame, which would shift every expectation after it).
    # The default, best effort (REP 2003), is exercised by test_demo.py (image_player -> node).
    "qos_reliability": "reliable",
}


@pytest.fixture(scope="module")
def session(start_node, probe):
    node = start_node("flow_node", NODE_PARAMS)
    results = probe(SCENARIOS)
    results["_node"] = node
    return results


def _check(session, name):
    result = session[name]
    assert "error" not in result, f"{result.get('traceback')}\nnode log:\n{session['_node'].output()[-3000:]}"
    assert session["_node"].alive(), f"flow_node died:\n{session['_node'].output()[-3000:]}"
    return result


def _expect_flow(frame, previous_stamp, h=H, w=W, frame_id="cam_test", points=True, color=True):
    out = frame["outputs"]
    stamp = frame["stamp"]
    assert frame["arrived"], f"no flow for stamp {stamp}: {frame}"
    flow = out["flow"]
    assert (flow["encoding"], flow["height"], flow["width"]) == ("32FC2", h, w)
    assert flow["step"] == w * 8 and flow["bytes"] == h * w * 8 and flow["finite"]
    assert (flow["stamp"], flow["frame_id"]) == (stamp, frame_id)
    occlusion = out["occlusion"]
    assert (occlusion["encoding"], occlusion["height"], occlusion["width"]) == ("mono8", h, w)
    assert (occlusion["stamp"], occlusion["frame_id"]) == (stamp, frame_id)
    assert set(occlusion["values"]) <= {0, 255}
    timing = out["timing"]
    assert (timing["stamp"], timing["frame_id"]) == (stamp, frame_id)
    assert timing["previous_stamp"] == previous_stamp
    assert timing["compute_ms"] > 0 and timing["decoder_ms"] > 0 and timing["latency_ms"] > 0
    assert timing["refine_ms"] >= 0 and timing["compute_ms"] >= timing["refine_ms"]
    assert timing["device"] == "cpu" and "LiteFlowNet" in timing["model"] and "untrained" in timing["model"]
    if color:
        assert (out["color"]["encoding"], out["color"]["height"], out["color"]["width"]) == ("rgb8", h, w)
        assert out["color"]["stamp"] == stamp
    else:
        assert "color" not in out
    if points:
        cloud = out["points"]
        assert cloud["fields"] == ["x", "y", "z", "u", "v", "occluded"]
        assert cloud["stamp"] == stamp and cloud["frame_id"] == frame_id
        assert cloud["point_step"] == 24 and cloud["bytes"] == cloud["height"] * cloud["width"] * 24
    return out


def _expect_nothing(frame):
    assert not frame["arrived"] and frame["outputs"] == {}, f"stamp {frame['stamp']} published: {frame}"


def test_node_starts_and_subscribes(session):
    result = _check(session, "ready")
    assert result["running"] and result["subscribed"]


def test_flow_occlusion_timing_have_the_frame_header(session):
    frames = _check(session, "basic")["frames"]
    _expect_nothing(frames[0])  # the very first frame: no previous frame, nothing published
    outs = [_expect_flow(f, previous, frame_id="cam_basic")
            for f, previous in zip(frames[1:], (1000, 1001, 1002))]
    processed = [o["timing"]["frames_processed"] for o in outs]
    assert processed == sorted(processed) and processed[-1] - processed[0] == 2
    assert outs[-1]["timing"]["frames_dropped"] == 0  # lock step: nothing overwritten
    assert (outs[0]["points"]["height"], outs[0]["points"]["width"]) == (H // 8, W // 8)


@pytest.mark.parametrize("case", ["short_data", "step_too_small", "unknown_encoding", "zero_size",
                                  "too_small_for_network"])
def test_malformed_input_is_skipped_and_node_keeps_publishing(session, case):
    result = _check(session, "malformed")
    assert result["bad_produced_flow"][case] is False
    _expect_flow(result["before"]["frames"][0], 1003)
    after = result["after"]["frames"]
    # The bad messages did not reset the sequence: 2010 pairs with 2000, the last good frame.
    _expect_flow(after[0], 2000)
    _expect_flow(after[1], 2010)


@pytest.mark.parametrize("encoding", ["bgr8", "mono8", "mono16", "bgra8", "rgba8", "8UC1", "8UC3", "rgb8"])
def test_every_encoding_with_row_padding(session, encoding):
    frames = _check(session, "encodings")[encoding]["frames"]
    _expect_nothing(frames[0])  # an encoding change starts a new sequence
    _expect_flow(frames[1], frames[0]["stamp"])


def test_resolution_change_resets(session):
    frames = _check(session, "resolution")["frames"]
    _expect_nothing(frames[0])
    _expect_flow(frames[1], 4000, h=64, w=96)
    _expect_flow(frames[2], 4001, h=64, w=96)


def test_backwards_stamp_resets(session):
    result = _check(session, "backwards")
    frames = result["frames"]
    _expect_nothing(frames[0])  # resolution back to 96x128
    _expect_flow(frames[1], 5000)
    _expect_nothing(frames[2])  # 4500 < 5001: new sequence, no flow
    _expect_flow(frames[3], 4500)
    assert result["repeated_stamp_flows"] == 1  # the same stamp again: a reset, no second flow


def test_runtime_parameters(session):
    result = _check(session, "params")
    assert result["points_stride_4"]["successful"]
    assert not result["points_stride_0"]["successful"]
    assert not result["device_readonly"]["successful"]
    assert not result["budget_negative"]["successful"]
    assert not result["budget_string"]["successful"]
    assert result["color_off"]["successful"] and result["color_on"]["successful"]
    assert not result["refinement_bad"]["successful"] and "variational, none" in result["refinement_bad"]["reason"]
    assert result["refinement_none"]["successful"] and result["refinement_on"]["successful"]
    first, second = result["after"]["frames"]
    # publish_color off: no flow/color; points_stride 4: a 24x32 grid. 6000 continues the
    # sequence that the repeated 4501 started.
    out = _expect_flow(first, 4501, color=False)
    _expect_flow(second, 6000, color=False)
    assert (out["points"]["height"], out["points"]["width"]) == (H // 4, W // 4)
    # refinement none: the flow is the network's alone (refined by default, as the basic frames are).
    assert first["outputs"]["timing"]["refine_ms"] == 0 and second["outputs"]["timing"]["refine_ms"] == 0
    basic = session["basic"]["frames"]
    assert all(f["outputs"]["timing"]["refine_ms"] > 0 for f in basic if f["arrived"])


def test_diagnostics(session):
    result = _check(session, "diagnostics")
    assert result["received"]
    assert result["name"].startswith("flow_node")
    assert result["hardware_id"] == "cpu"
    values = result["values"]
    for key in ("state", "device", "model", "rate_hz", "latency_p50_ms", "latency_p99_ms", "frames_dropped",
                "frames_processed", "bad_messages", "last_error", "engine_failures"):
        assert key in values, key
    assert values["state"] == "running" and values["device"] == "cpu"
    assert int(values["bad_messages"]) >= 5 and values["last_error"]
    assert int(values["frames_processed"]) >= 20
    # WARN: untrained weights, and the test stamps (year 1970) are far over the latency budget.
    assert result["level"] == 1, result["message"]
    assert "untrained" in result["message"] and "latency" in result["message"]


def test_diagnostics_error_when_no_flow_for_a_while(session):
    result = _check(session, "stale")
    assert result["level"] == 2, result["message"]
    assert "no flow" in result["message"]


def test_sigint_shuts_down_cleanly(session):
    node = session["_node"]
    assert node.alive()
    status, seconds = node.signal_and_wait(signal.SIGINT, timeout=10)
    assert status == 0, node.output()[-3000:]
    assert seconds < 2.0, f"took {seconds:.2f} s"
    assert "Traceback" not in node.output()


def test_sigterm_shuts_down_cleanly_and_compressed_transport(start_node, probe):
    node = start_node("flow_node", dict(NODE_PARAMS, transport="compressed", warmup=False), name="compressed")
    result = probe(["compressed"])["compressed"]
    assert "error" not in result, result.get("traceback")
    assert result["subscribed"]
    first, second, third = result["frames"]
    _expect_nothing(first)
    _expect_flow(second, first["stamp"], frame_id="cam_z")
    _expect_flow(third, second["stamp"], frame_id="cam_z")
    status, seconds = node.signal_and_wait(signal.SIGTERM, timeout=10)
    assert status == 0, node.output()[-3000:]
    assert seconds < 2.0, f"took {seconds:.2f} s"


@pytest.mark.parametrize("params, text", [
    ({"weights": "/nonexistent/lfn_weights.pt"}, "/nonexistent/lfn_weights.pt"),
    ({"weights": "CORRUPT"}, "corrupt.pt"),
    ({"finest_level": 9}, "finest_level"),
    ({"device": "tpu"}, "device"),
])
def test_configuration_errors_exit_with_status_2(start_node, tmp_path, params, text):
    if params.get("weights") == "CORRUPT":
        bad = tmp_path / "corrupt.pt"
        bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
        params = {"weights": str(bad)}
    node = start_node("flow_node", dict(NODE_PARAMS, warmup=False, **params), name="config")
    t0 = time.monotonic()
    try:
        status = node.process.wait(60)
    finally:
        output = node.output()
    assert status == 2, output
    assert text in output, output
    assert time.monotonic() - t0 < 60
