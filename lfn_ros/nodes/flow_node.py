"""The lfn_ros flow node: camera images in, optical flow, occlusion and timing out.

A thin rclpy node around :class:`lfn_ros.engine.FlowEngine` and the ROS-free inference loop
:class:`lfn_ros.pipeline.FlowPipeline` (docs/architecture.md, "Data flow in the node"):

- ``image`` (sensor_msgs/Image, or ``image/compressed`` when ``transport`` is "compressed"):
  the callback hands the message to the pipeline's latest-only slot and returns.
- The pipeline's inference thread converts (through this node's :meth:`FlowNode._convert`),
  stages, runs and waits, overlapping the next frame's upload with this frame's compute, and
  calls :meth:`FlowNode._publish`: ``flow`` (32FC2), ``occlusion`` (mono8), ``flow/color``
  (rgb8), ``flow/points`` (PointCloud2) and ``flow/timing`` (lfn_ros/msg/FlowTiming), all with
  the header of the current frame.
- A 1 Hz timer publishes ``/diagnostics``.

Sequences, drops, resets and the handling of bad messages and engine failures (out of device
memory included) are the pipeline's: see lfn_ros/pipeline.py.

Exit status: 0 after Ctrl-C / SIGINT / SIGTERM; 2 when the configuration is unusable (weights
file missing or corrupt, unknown device, parameter value out of range): those are errors to fix
in the launch file or parameters, so the node stops rather than running without a model.

Run: ``flow_node --ros-args -p device:=cpu -r image:=/camera/image_raw`` or ``ros2 run lfn_ros
flow_node`` or ``ros2 launch lfn_ros flow.launch.py``. Parameters: lfn_ros/nodes/parameters.py,
config/flow.yaml and docs/ros_api.md. Diagnostics rules: lfn_ros/nodes/health.py.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, PointCloud2

from lfn_ros.engine import STAGES
from lfn_ros.nodes import runtime
from lfn_ros.nodes.health import FlowStats, assess
from lfn_ros.nodes.parameters import PARAMETERS, check_start_values, check_update, default_cpu_threads
from lfn_ros.pipeline import FlowPipeline, InputError, InputFrame

__all__ = ["FlowNode", "ConfigError", "PARAMETERS", "main"]

NODE_NAME = "flow_node"
EXIT_OK = 0
EXIT_CONFIG = 2
_LEVELS = {0: DiagnosticStatus.OK, 1: DiagnosticStatus.WARN, 2: DiagnosticStatus.ERROR}


class ConfigError(RuntimeError):
    """The node's configuration cannot work (exit status 2)."""


class _RosLogHandler(logging.Handler):
    """Forwards Python logging of lfn_ros (engine, weights) to the node's ROS logger."""

    def __init__(self, ros_logger) -> None:
        super().__init__(logging.INFO)
        self._ros = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.levelno >= logging.ERROR:
                self._ros.error(text)
            elif record.levelno >= logging.WARNING:
                self._ros.warning(text)
            elif record.levelno >= logging.INFO:
                self._ros.info(text)
            else:
                self._ros.debug(text)
        except Exception:  # never let logging break inference
            pass


def _qos(values: dict) -> tuple[QoSProfile, QoSProfile]:
    """(subscription, publisher) QoS: sensor data (REP 2003) by default for the image (best
    effort, volatile, keep last 1); reliable outputs with an explicit depth (Fast DDS and Cyclone
    DDS differ in the default)."""
    sub = QoSProfile(depth=values["qos_depth"],
                     reliability=(ReliabilityPolicy.RELIABLE if values["qos_reliability"] == "reliable"
                                  else ReliabilityPolicy.BEST_EFFORT),
                     durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
    pub = QoSProfile(depth=values["publish_depth"], reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
    return sub, pub


class FlowNode(Node):
    """rclpy node publishing LiteFlowNet optical flow for an image stream (module docstring)."""

    def __init__(self, *, stop_event: threading.Event | None = None, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self._stop = stop_event or threading.Event()
        self._closing = False
        self._lock = threading.Lock()  # guards _stats and _params
        self._stats = FlowStats()
        self._state = "starting"
        self._log_bridge = None
        self._thread = None
        try:
            self._setup()
        except Exception:
            self._remove_log_bridge()
            self.destroy_node()
            raise

    # ------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        values = runtime.declare_parameters(self, PARAMETERS)
        problem = check_start_values(values)
        if problem:
            raise ConfigError(problem)
        self._params = {p.name: values[p.name] for p in PARAMETERS if p.runtime}
        self._warmup_size = (values["warmup_height"], values["warmup_width"])
        self._warmup_pending = bool(values["warmup"])

        # Python logging of the engine and weights loader (resets, fallbacks) goes to the ROS log.
        self._log_bridge = _RosLogHandler(self.get_logger())
        py_logger = logging.getLogger("lfn_ros")
        py_logger.addHandler(self._log_bridge)
        py_logger.setLevel(logging.INFO)
        py_logger.propagate = False  # no second copy on stderr through the root logger
        self.engine = self._make_engine(values)
        self.pipeline = FlowPipeline(self.engine, self._convert, self._publish, self._settings, self._report)

        from lfn_ros.msg import FlowTiming

        self._FlowTiming = FlowTiming
        sub_qos, pub_qos = _qos(values)
        self._pub_flow = self.create_publisher(Image, "flow", pub_qos)
        self._pub_occlusion = self.create_publisher(Image, "occlusion", pub_qos)
        self._pub_color = self.create_publisher(Image, "flow/color", pub_qos)
        self._pub_points = self.create_publisher(PointCloud2, "flow/points", pub_qos)
        self._pub_timing = self.create_publisher(FlowTiming, "flow/timing", pub_qos)
        self._pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if values["transport"] == "compressed":
            self._sub = self.create_subscription(CompressedImage, "image/compressed", self._on_message, sub_qos)
        else:
            self._sub = self.create_subscription(Image, "image", self._on_message, sub_qos)
        self._diagnostics_timer = self.create_timer(1.0, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._thread = threading.Thread(target=self._run, name="lfn_ros-inference", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"flow node ready: {self.engine.model_name} on {self.engine.device_name}; subscribed "
            f"to '{getattr(self._sub, 'topic_name', 'image')}' ({values['transport']}, "
            f"{values['qos_reliability']}, depth {values['qos_depth']}); publishing flow, occlusion, "
            f"flow/color, flow/points, flow/timing (reliable, depth {values['publish_depth']})")

    def _make_engine(self, values: dict):
        import warnings

        import torch

        from lfn_ros.engine import FlowEngine
        from lfn_ros.model.weights import UntrainedWarning, WeightsError

        # cpu_threads 0: see default_cpu_threads (measured, docs/benchmarks.md, node latency).
        # The same count goes to OpenVINO's thread pool.
        threads = int(values["cpu_threads"]) or default_cpu_threads()
        # The engine is built here, on the executor's thread, and runs on the inference thread.
        # With GNU OpenMP every thread that runs a parallel torch op owns a worker pool, and once
        # the pools hold more threads than there are cores, libgomp stops its workers from
        # spin-waiting: each of the hundreds of small ops per frame then waits for a futex wake-up.
        # Measured at 320x240, torch bf16, 2 threads (issue 16): 154 ms per step with the engine
        # built on another thread at full width, 94-103 ms with this thread kept serial.
        # So this thread builds it with one thread (and gets its count back after), and _run gives
        # the inference thread all of them.
        builder_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        self._torch_threads = threads
        weights = values["weights"]
        if weights not in ("default", ""):
            weights = os.path.expanduser(weights)
        try:
            with warnings.catch_warnings():
                # load_model also logs it (through the bridge): one copy in the ROS log is enough.
                warnings.simplefilter("ignore", UntrainedWarning)
                engine = FlowEngine(
                    weights=weights, device=values["device"], precision=values["precision"],
                    finest_level=values["finest_level"] or None, occlusion=values["publish_occlusion"],
                    alpha=values["occlusion_alpha"], beta=values["occlusion_beta"],
                    scale=values["scale"], max_width=values["max_width"], backend=values["backend"],
                    threads=threads, occlusion_method=values["occlusion_method"], refinement=values["refinement"],
                    cascade=values["cascade"])
        except WeightsError as exc:
            raise ConfigError(f"cannot load the LiteFlowNet weights: {exc}") from exc
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot start the flow engine ({values['device']}, "
                              f"{values['precision']}): {exc}") from exc
        finally:
            torch.set_num_threads(builder_threads)  # a count only: no OpenMP pool without a parallel op
        if not engine.card.get("trained", False):
            self.get_logger().warning(
                "*** UNTRAINED WEIGHTS: the published flow is random noise (weights parameter "
                f"'{values['weights']}'). Use weights:=default or a checkpoint path. ***")
        return engine

    def _remove_log_bridge(self) -> None:
        if self._log_bridge is not None:
            logging.getLogger("lfn_ros").removeHandler(self._log_bridge)
            self._log_bridge = None

    # ------------------------------------------------------------------ parameters at runtime
    def _on_set_parameters(self, params) -> SetParametersResult:
        updates = {}
        for parameter in params:
            problem = check_update(parameter.name, parameter.value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
            if parameter.name in self._params:
                updates[parameter.name] = parameter.value
        with self._lock:
            self._params.update(updates)
        self.engine.configure(alpha=updates.get("occlusion_alpha"), beta=updates.get("occlusion_beta"),
                              refinement=updates.get("refinement"))
        for name, value in updates.items():
            self.get_logger().info(f"parameter {name} = {value}")
        return SetParametersResult(successful=True)

    def _settings(self) -> dict:
        """The pipeline's per-frame switches: the runtime parameters, and whether anyone listens to
        flow/points (which needs the occlusion mask)."""
        with self._lock:
            settings = dict(self._params)
        settings["want_points"] = settings["publish_points"] and self._pub_points.get_subscription_count() > 0
        return settings

    # ------------------------------------------------------------------ input (executor thread)
    def _on_message(self, msg) -> None:
        # No conversion here: the callback must never wait for the inference thread.
        with self._lock:
            self._stats.record_input(time.monotonic())
        self.pipeline.submit(msg)

    def _convert(self, msg) -> InputFrame:
        """A ROS image message -> the pipeline's InputFrame (InputError when unusable)."""
        from lfn_ros.nodes.image_msg import ImageMsgError, compressed_msg_to_rgb8, image_msg_to_rgb8

        try:
            if isinstance(msg, CompressedImage):
                rgb, encoding = compressed_msg_to_rgb8(msg), "compressed"
            else:
                rgb, encoding = image_msg_to_rgb8(msg), msg.encoding
        except ImageMsgError as exc:
            raise InputError(str(exc)) from exc
        if self._warmup_pending:
            self._warmup(*rgb.shape[:2])
        with self._lock:
            self._stats.input_description = f"{rgb.shape[1]}x{rgb.shape[0]} {encoding}"
        stamp = msg.header.stamp
        return InputFrame(rgb=rgb, encoding=encoding, header=msg.header, stamp=stamp,
                          seconds=stamp.sec + stamp.nanosec * 1e-9)

    # ------------------------------------------------------------------ inference thread
    def _run(self) -> None:
        import torch

        torch.set_num_threads(self._torch_threads)  # the only thread that runs torch (see _make_engine)
        if self._warmup_pending and self._warmup_size[0] > 0:
            self._warmup(*self._warmup_size)
        self._state = "running"
        ahead = None
        while not self._stop.is_set():
            try:
                ahead = self.pipeline.step(ahead)
            except Exception as exc:  # a bug, not a bad frame: report it and keep serving
                ahead = None
                if self._closing:
                    return
                self._report("failure", f"unexpected error in the inference thread: {type(exc).__name__}: {exc}")

    def _warmup(self, height: int, width: int) -> None:
        self._state = "warming up"
        t0 = time.perf_counter()
        if self.engine.backend.name == "torch-compiled":  # say why the first flow takes minutes
            self.get_logger().info(f"torch-compiled: compiling LiteFlowNet for {width}x{height} "
                                   "(about 2 minutes on a 2-core CPU with an empty Inductor cache)")
        try:
            self.engine.warmup(height, width)
        except Exception as exc:  # the first real frame will show the problem again
            self.get_logger().warning(f"warm-up at {width}x{height} failed: {type(exc).__name__}: {exc}")
        else:
            self.get_logger().info(f"warm-up at {width}x{height} took {time.perf_counter() - t0:.2f} s")
        self._warmup_pending = False

    def _report(self, kind: str, text: str) -> None:
        """The pipeline's events: bad input (WARN), engine failures (ERROR), resets (INFO)."""
        with self._lock:
            if kind == "bad_input":
                self._stats.record_bad_input(text)
            elif kind == "failure":
                self._stats.record_failure(text)
        if kind == "bad_input":
            self.get_logger().warning(f"skipping image: {text}", throttle_duration_sec=5.0)
        elif kind == "failure":
            self.get_logger().error(text, throttle_duration_sec=5.0)
        else:
            self.get_logger().info(text)

    # ------------------------------------------------------------------ output
    def _publish(self, frame, result, settings: dict) -> None:
        if self._closing:
            return
        from lfn_ros.io.color import flow_to_color, occlusion_to_image
        from lfn_ros.nodes.image_msg import array_to_image_msg

        header = frame.header
        if settings["publish_flow"]:
            self._pub_flow.publish(array_to_image_msg(result.flow, "32FC2", header))
        if settings["publish_occlusion"] and result.occlusion is not None:
            self._pub_occlusion.publish(array_to_image_msg(occlusion_to_image(result.occlusion), "mono8", header))
        if settings["publish_color"] and self._pub_color.get_subscription_count() > 0:
            self._pub_color.publish(array_to_image_msg(flow_to_color(result.flow), "rgb8", header))
        if settings["want_points"]:
            from lfn_ros.nodes.pointcloud import flow_to_pointcloud

            self._pub_points.publish(flow_to_pointcloud(header, result.flow, result.occlusion,
                                                        stride=settings["points_stride"]))
        self._publish_timing(header, result)

    def _publish_timing(self, header, result) -> None:
        now_ns = self.get_clock().now().nanoseconds
        latency_ms = (now_ns - (header.stamp.sec * 10**9 + header.stamp.nanosec)) / 1e6
        with self._lock:
            self._stats.resets = self.pipeline.counts.resets
            processed = self._stats.record_output(time.monotonic(), latency_ms, result.timings)
        timing = self._FlowTiming(header=header)
        if result.previous_stamp is not None:
            timing.previous_stamp = result.previous_stamp
        for stage in STAGES + ("compute",):
            setattr(timing, f"{stage}_ms", float(result.timings.get(stage, 0.0)))
        timing.latency_ms = float(latency_ms)
        timing.frames_processed = processed
        timing.frames_dropped = self.pipeline.dropped
        timing.device = self.engine.device_name
        timing.model = self.engine.describe(result.cascade)
        self._pub_timing.publish(timing)

    def _publish_diagnostics(self) -> None:
        if self._closing:
            return
        engine = self.engine
        with self._lock:
            self._stats.resets = self.pipeline.counts.resets
            health = assess(self._stats, time.monotonic(), dropped=self.pipeline.dropped, state=self._state,
                            device=engine.device_name, model=engine.model_name,
                            stale_timeout=self._params["stale_timeout"],
                            latency_budget_ms=self._params["latency_budget_ms"],
                            device_warning=engine.device_warning, trained=bool(engine.card.get("trained")))
        status = DiagnosticStatus(level=_LEVELS[health.level], name=f"{self.get_name()}: optical flow",
                                  message=health.message, hardware_id=engine.device_name)
        status.values = [KeyValue(key=k, value=v) for k, v in health.values.items()]
        if engine.cascade != "none":  # the adaptive cascade (lfn_ros.governor): how many frames ran in one pass
            governor = self.pipeline.governor
            status.values += [KeyValue(key="cascade_now", value="one pass" if governor.reduced else "two-scale"),
                              KeyValue(key="frames_one_pass", value=str(self.pipeline.counts.one_pass))]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._pub_diagnostics.publish(array)

    # ------------------------------------------------------------------ shutdown
    def close(self, timeout: float = 1.0) -> bool:
        """Stop the inference thread; True when it finished within ``timeout`` seconds."""
        self._stop.set()
        finished = True
        if self._thread is not None:
            self._thread.join(timeout)
            finished = not self._thread.is_alive()
            if not finished:
                self.get_logger().warning(f"inference thread still busy after {timeout:g} s; exiting anyway")
        self._closing = True
        self._remove_log_bridge()
        return finished


# ----------------------------------------------------------------------------- entry point


def main(args=None) -> int:
    """Console script ``flow_node``. Returns the exit status (module docstring)."""
    stop = threading.Event()
    if not runtime.init_or_report(NODE_NAME, args):
        return EXIT_CONFIG
    runtime.install_stop_handlers(stop)
    status = EXIT_OK
    finished = True
    try:
        node = FlowNode(stop_event=stop)
    except ConfigError as exc:
        get_logger(NODE_NAME).error(f"configuration error: {exc}")
        status = EXIT_CONFIG
    except Exception as exc:  # rclpy's parameter exceptions (wrong type, out of range) and others
        get_logger(NODE_NAME).error(f"cannot start: {type(exc).__name__}: {exc}")
        status = EXIT_CONFIG
    else:
        status = runtime.spin_until(node, stop)
        finished = node.close(timeout=1.0)
        node.destroy_node()
    runtime.shutdown()
    if not finished:
        # The inference thread is inside a long device call: do not wait for it at interpreter
        # exit (torch in a daemon thread during finalisation is not safe).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
