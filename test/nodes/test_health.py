"""lfn_ros.nodes.health (diagnostics rules) and lfn_ros.nodes.parameters (checks), without ROS
spinning; and the node's latest-only slot."""


import pytest

from lfn_ros.nodes.health import ERROR, FAILURES_FOR_ERROR, OK, WARN, WINDOW_S, FlowStats, assess
from lfn_ros.nodes.parameters import BY_NAME, PARAMETERS, check_start_values, check_update, check_value

COMMON = dict(dropped=0, state="running", device="cpu", model="LiteFlowNet level 2, fp32, weights x",
              stale_timeout=5.0, latency_budget_ms=100.0)


def _stats_with_outputs(now, count=11, period=0.1, latency=50.0):
    stats = FlowStats()
    for i in range(count):
        t = now - (count - 1 - i) * period
        stats.record_input(t)
        stats.record_output(t, latency, {"compute": 40.0})
    return stats


def test_waiting_for_images_is_ok():
    health = assess(FlowStats(), 100.0, **COMMON)
    assert health.level == OK and "waiting for images" in health.message
    assert health.values["frames_processed"] == "0" and health.values["latency_p50_ms"] == "nan"


def test_running_within_budget_is_ok_with_rate_and_latency():
    health = assess(_stats_with_outputs(100.0), 100.0, **COMMON)
    assert health.level == OK, health.message
    assert float(health.values["rate_hz"]) == pytest.approx(10.0)
    assert float(health.values["latency_p50_ms"]) == 50.0 and float(health.values["latency_p99_ms"]) == 50.0
    assert health.values["last_compute_ms"] == "40.00"
    assert health.values["latency_window_s"] == f"{WINDOW_S:g}"


def test_latency_over_budget_warns():
    health = assess(_stats_with_outputs(100.0, latency=250.0), 100.0, **COMMON)
    assert health.level == WARN and "budget" in health.message
    assert assess(_stats_with_outputs(100.0, latency=250.0), 100.0, **dict(COMMON, latency_budget_ms=0.0)).level == OK


def test_old_latencies_leave_the_window():
    stats = _stats_with_outputs(100.0, latency=250.0)
    stats.record_output(100.0 + WINDOW_S + 1, 50.0, {})
    stats.record_input(100.0 + WINDOW_S + 1)
    health = assess(stats, 100.0 + WINDOW_S + 1, **COMMON)
    assert health.level == OK and float(health.values["latency_p50_ms"]) == 50.0


def test_untrained_and_cpu_fallback_warn():
    stats = _stats_with_outputs(100.0)
    assert "untrained" in assess(stats, 100.0, trained=False, **COMMON).message
    health = assess(stats, 100.0, device_warning="CUDA is not available", **COMMON)
    assert health.level == WARN and "CUDA" in health.message


def test_no_flow_for_a_while_is_an_error_that_says_why():
    stats = _stats_with_outputs(100.0)
    assert assess(stats, 104.0, **COMMON).level == OK  # within stale_timeout
    stopped = assess(stats, 110.0, **COMMON)
    assert stopped.level == ERROR and "no images" in stopped.message
    stats.record_input(109.5)
    stuck = assess(stats, 110.0, **COMMON)
    assert stuck.level == ERROR and "images arrive but no flow" in stuck.message


def test_repeated_engine_failures_are_an_error_until_a_success():
    stats = _stats_with_outputs(100.0)
    for _ in range(FAILURES_FOR_ERROR - 1):
        stats.record_failure("boom")
    assert assess(stats, 100.0, **COMMON).level == OK
    stats.record_failure("out of memory")
    health = assess(stats, 100.0, **COMMON)
    assert health.level == ERROR and "out of memory" in health.message
    assert health.values["engine_failures"] == str(FAILURES_FOR_ERROR)
    stats.record_output(100.0, 50.0, {})
    assert assess(stats, 100.0, **COMMON).level == OK


def test_parameter_checks():
    defaults = {p.name: p.default for p in PARAMETERS}
    assert check_start_values(defaults) is None
    assert "device" in check_start_values(dict(defaults, device="tpu"))
    assert check_value("device", "cuda:1") is None and check_value("device", "cuda:x")
    assert "finest_level" in check_start_values(dict(defaults, finest_level=7))
    assert "transport" in check_start_values(dict(defaults, transport="theora"))
    assert "warmup" in check_start_values(dict(defaults, warmup_height=64))
    assert check_value("scale", float("nan")) and check_value("scale", 1) and check_value("scale", 0.5) is None
    assert check_update("points_stride", 4) is None
    assert check_update("points_stride", 0) and check_update("points_stride", True)
    assert "read-only" in check_update("weights", "x.pt")
    assert check_update("use_sim_time", True) is None  # rclpy's own
    runtime = {p.name for p in PARAMETERS if p.runtime}
    assert runtime == {"occlusion_alpha", "occlusion_beta", "publish_flow", "publish_occlusion", "publish_color",
                       "publish_points", "points_stride", "latency_budget_ms", "stale_timeout", "refinement",
                       "stale_frame_age", "adaptive_cascade"}
    for param in PARAMETERS:
        assert param.description and BY_NAME[param.name] is param


def test_descriptors():
    pytest.importorskip("rcl_interfaces")
    from lfn_ros.nodes.parameters import descriptor

    d = descriptor(BY_NAME["finest_level"])
    assert d.read_only and (d.integer_range[0].from_value, d.integer_range[0].to_value) == (0, 6)
    d = descriptor(BY_NAME["latency_budget_ms"])
    assert not d.read_only and d.floating_point_range[0].to_value == 600000.0
    assert "one of" in descriptor(BY_NAME["transport"]).additional_constraints
