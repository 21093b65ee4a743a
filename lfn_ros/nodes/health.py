"""Health of the flow node, as /diagnostics reports it: counters and their assessment.

No rclpy here (the node turns a :class:`Health` into a diagnostic_msgs/DiagnosticStatus), so the
rules can be tested without ROS. Levels are those of DiagnosticStatus: OK 0, WARN 1, ERROR 2.

Rules (docs/ros_api.md):
- ERROR: no flow for ``stale_timeout`` s after there was some (the message says whether images
  still arrive), or the engine failed FAILURES_FOR_ERROR times in a row.
- WARN: median latency over the last WINDOW_S seconds above the budget; CUDA asked for but not
  available; untrained weights.
- OK otherwise.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

OK, WARN, ERROR = 0, 1, 2
WINDOW_S = 10.0
FAILURES_FOR_ERROR = 3


@dataclass
class FlowStats:
    """Counters of a flow node. Times are time.monotonic() seconds; the node guards it with a lock."""

    received: int = 0
    processed: int = 0
    bad_messages: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    resets: int = 0
    last_error: str = ""
    last_input: float | None = None
    last_output: float | None = None
    input_description: str = ""
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=10000))
    stage_ms: dict = field(default_factory=dict)

    def record_input(self, now: float) -> None:
        self.received += 1
        self.last_input = now

    def record_bad_input(self, text: str) -> None:
        self.bad_messages += 1
        self.last_error = text

    def record_failure(self, text: str) -> None:
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = text

    def record_output(self, now: float, latency_ms: float, stage_ms: dict) -> int:
        """One flow published; returns the number processed so far."""
        self.processed += 1
        self.consecutive_failures = 0
        self.last_output = now
        self.latencies.append((now, latency_ms))
        self.stage_ms = dict(stage_ms)
        return self.processed


@dataclass
class Health:
    level: int
    message: str
    values: dict  # str -> str, the DiagnosticStatus key/values


def _fmt(value: float) -> str:
    return "nan" if value != value else f"{value:.2f}"


def assess(stats: FlowStats, now: float, *, dropped: int, state: str, device: str, model: str,
           stale_timeout: float, latency_budget_ms: float, device_warning: str | None = None,
           trained: bool = True) -> Health:
    """The node's health at ``now`` (monotonic seconds) from its counters and settings."""
    window = [(t, ms) for t, ms in stats.latencies if now - t <= WINDOW_S]
    latencies = np.array([ms for _, ms in window], dtype=np.float64)
    if len(window) > 1:
        rate = (len(window) - 1) / max(window[-1][0] - window[0][0], 1e-6)
    else:
        rate = len(window) / WINDOW_S
    p50 = float(np.percentile(latencies, 50)) if latencies.size else float("nan")
    p99 = float(np.percentile(latencies, 99)) if latencies.size else float("nan")

    errors, warnings = [], []
    if stats.consecutive_failures >= FAILURES_FOR_ERROR:
        errors.append(f"flow engine failed {stats.consecutive_failures} times in a row: {stats.last_error}")
    if stats.last_output is not None and now - stats.last_output > stale_timeout:
        idle = now - stats.last_output
        if stats.last_input is not None and now - stats.last_input <= stale_timeout:
            errors.append(f"images arrive but no flow for {idle:.1f} s")
        else:
            errors.append(f"no flow for {idle:.1f} s: no images for {now - (stats.last_input or now):.1f} s")
    if latency_budget_ms > 0 and latencies.size and p50 > latency_budget_ms:
        warnings.append(f"latency p50 {p50:.1f} ms over the budget of {latency_budget_ms:g} ms")
    if device_warning:
        warnings.append(device_warning)
    if not trained:
        warnings.append("untrained weights: flow is noise")

    if errors:
        level, message = ERROR, "; ".join(errors + warnings)
    elif warnings:
        level, message = WARN, "; ".join(warnings)
    elif stats.processed == 0:
        level, message = OK, f"{state}: waiting for images"
    else:
        level, message = OK, f"{rate:.1f} Hz, latency p50 {p50:.0f} ms"

    values = {
        "state": state,
        "device": device,
        "model": model,
        "input": stats.input_description,
        "rate_hz": _fmt(rate),
        "latency_p50_ms": _fmt(p50),
        "latency_p99_ms": _fmt(p99),
        "latency_window_s": f"{WINDOW_S:g}",
        "latency_budget_ms": f"{latency_budget_ms:g}",
        "frames_received": str(stats.received),
        "frames_processed": str(stats.processed),
        "frames_dropped": str(dropped),
        "bad_messages": str(stats.bad_messages),
        "engine_failures": str(stats.failures),
        "sequence_resets": str(stats.resets),
        "last_error": stats.last_error,
    }
    for stage, ms in stats.stage_ms.items():
        values[f"last_{stage}_ms"] = _fmt(ms)
    return Health(level, message, values)
