"""The lfn_ros flow node: camera images in, optical flow, occlusion and timing out.

A thin rclpy node around :class:`lfn_ros.engine.FlowEngine` (DESIGN.md sections 2 and 5):

- ``image`` (sensor_msgs/Image, or ``image/compressed`` when ``transport`` is "compressed"):
  the callback only stores the newest message in a single slot (latest-only; overwriting one
  that was not processed yet counts as a drop).
- One inference thread takes the slot: converts to RGB, ``engine.stage``, ``engine.run``; while
  the device computes, converts and stages the next frame if one is already waiting (its upload
  overlaps this frame's compute), then ``wait`` and publishes ``flow`` (32FC2), ``occlusion``
  (mono8), ``flow/color`` (rgb8), ``flow/points`` (PointCloud2) and ``flow/timing``
  (lfn_ros/msg/FlowTiming), all with the header of the current frame.
- A 1 Hz timer publishes ``/diagnostics``.

The first frame of a sequence has no previous frame, so nothing is published for it. A sequence
starts at start-up and again after a reset: an encoding change (checked here), a resolution
change or a stamp that is not after the previous one (checked by the engine). A malformed message
is logged (throttled) and skipped, without a reset: the next good frame pairs with the last good
one. Engine failures (including running out of device memory) are logged and the node goes on.

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
import signal
import sys
import threading
import time
from dataclasses import dataclass

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, PointCloud2

from lfn_ros.nodes.health import FlowStats, assess
from lfn_ros.nodes.parameters import PARAMETERS, check_start_values, check_update, descriptor

__all__ = ["FlowNode", "LatestSlot", "ConfigError", "PARAMETERS", "main"]

NODE_NAME = "flow_node"
EXIT_OK = 0
EXIT_CONFIG = 2
_LEVELS = {0: DiagnosticStatus.OK, 1: DiagnosticStatus.WARN, 2: DiagnosticStatus.ERROR}


class ConfigError(RuntimeError):
    """The node's configuration cannot work (exit status 2)."""


class LatestSlot:
    """A single-item mailbox: put() replaces an unread item (counted in ``dropped``)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item = None
        self.dropped = 0

    def put(self, item) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout: float | None = None):
        """The item (clearing the slot), waiting up to ``timeout`` s; None if there is none."""
        with self._cond:
            if self._item is None and timeout:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def ready(self) -> bool:
        with self._cond:
            return self._item is not None

    def count_drop(self) -> None:
        with self._cond:
            self.dropped += 1


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


@dataclass
class _Frame:
    """A received frame, converted and on its way to the device."""

    header: object
    encoding: str
    size: tuple
    staged: object


class FlowNode(Node):
    """rclpy node publishing LiteFlowNet optical flow for an image stream (module docstring)."""

    def __init__(self, *, stop_event: threading.Event | None = None, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self._stop = stop_event or threading.Event()
        self._closing = False
        self._lock = threading.Lock()  # guards _stats and _params
        self._stats = FlowStats()
        self._slot = LatestSlot()
        self._state = "starting"
        self._log_bridge = None
        self._thread = None
        self._last_encoding = None
        self._sequences_started = 0
        try:
            self._setup()
        except Exception:
            self._remove_log_bridge()
            self.destroy_node()
            raise

    # ------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        for param in PARAMETERS:
            self.declare_parameter(param.name, param.default, descriptor(param))
        values = {p.name: self.get_parameter(p.name).value for p in PARAMETERS}
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

        from lfn_ros.msg import FlowTiming

        self._FlowTiming = FlowTiming
        depth = values["publish_depth"]
        pub_qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
        self._pub_flow = self.create_publisher(Image, "flow", pub_qos)
        self._pub_occlusion = self.create_publisher(Image, "occlusion", pub_qos)
        self._pub_color = self.create_publisher(Image, "flow/color", pub_qos)
        self._pub_points = self.create_publisher(PointCloud2, "flow/points", pub_qos)
        self._pub_timing = self.create_publisher(FlowTiming, "flow/timing", pub_qos)
        self._pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        # Sensor data (REP 2003) by default: best effort, volatile, keep last 1.
        sub_qos = QoSProfile(
            depth=values["qos_depth"],
            reliability=(ReliabilityPolicy.RELIABLE if values["qos_reliability"] == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT),
            durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
        if values["transport"] == "compressed":
            self._sub = self.create_subscription(CompressedImage, "image/compressed", self._on_compressed, sub_qos)
        else:
            self._sub = self.create_subscription(Image, "image", self._on_image, sub_qos)
        self._diagnostics_timer = self.create_timer(1.0, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._thread = threading.Thread(target=self._run, name="lfn_ros-inference", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"flow node ready: {self.engine.model_name} on {self.engine.device_name}; subscribed "
            f"to '{getattr(self._sub, 'topic_name', 'image')}' ({values['transport']}, "
            f"{values['qos_reliability']}, depth {values['qos_depth']}); publishing flow, occlusion, "
            f"flow/color, flow/points, flow/timing (reliable, depth {depth})")

    def _make_engine(self, values: dict):
        import warnings

        import torch

        from lfn_ros.engine import FlowEngine
        from lfn_ros.model.weights import UntrainedWarning, WeightsError

        # Measured on 2 cores with a 60 Hz camera: torch on both cores competes with the image
        # callbacks and took 3.7 s a 320x240 pair; on one core 1.1 s. Hence all cores but one.
        torch.set_num_threads(int(values["cpu_threads"]) or max(1, (os.cpu_count() or 2) - 1))
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
                    scale=values["scale"], max_width=values["max_width"])
        except WeightsError as exc:
            raise ConfigError(f"cannot load the LiteFlowNet weights: {exc}") from exc
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot start the flow engine ({values['device']}, "
                              f"{values['precision']}): {exc}") from exc
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
        if "occlusion_alpha" in updates:
            self.engine.alpha = float(updates["occlusion_alpha"])
        if "occlusion_beta" in updates:
            self.engine.beta = float(updates["occlusion_beta"])
        for name, value in updates.items():
            self.get_logger().info(f"parameter {name} = {value}")
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ input (executor thread)
    def _on_image(self, msg: Image) -> None:
        self._receive(msg, "raw")

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._receive(msg, "compressed")

    def _receive(self, msg, kind: str) -> None:
        # No conversion here: the callback must never wait for the inference thread.
        with self._lock:
            self._stats.record_input(time.monotonic())
        self._slot.put((msg, kind))

    # ------------------------------------------------------------------ inference thread
    def _run(self) -> None:
        if self._warmup_pending and self._warmup_size[0] > 0:
            self._warmup(*self._warmup_size)
        self._state = "running"
        ahead = None
        while not self._stop.is_set():
            try:
                frame = None
                if ahead is not None:
                    if self._slot.ready():
                        self._slot.count_drop()  # a newer frame came after `ahead` was staged
                    else:
                        frame = ahead
                    ahead = None
                if frame is None:
                    item = self._slot.take(timeout=0.1)
                    if item is None:
                        continue
                    frame = self._prepare(item)
                    if frame is None:
                        continue
                ahead = self._process(frame)
            except Exception as exc:  # a bug, not a bad frame: report it and keep serving
                ahead = None
                if self._closing:
                    return
                self._failure(f"unexpected error in the inference thread: {type(exc).__name__}: {exc}")

    def _warmup(self, height: int, width: int) -> None:
        self._state = "warming up"
        t0 = time.perf_counter()
        try:
            self.engine.warmup(height, width)
        except Exception as exc:  # the first real frame will show the problem again
            self.get_logger().warning(f"warm-up at {width}x{height} failed: {type(exc).__name__}: {exc}")
        else:
            self.get_logger().info(f"warm-up at {width}x{height} took {time.perf_counter() - t0:.2f} s")
        self._warmup_pending = False

    def _bad_input(self, text: str) -> None:
        with self._lock:
            self._stats.record_bad_input(text)
        self.get_logger().warning(f"skipping image: {text}", throttle_duration_sec=5.0)

    def _failure(self, text: str) -> None:
        with self._lock:
            self._stats.record_failure(text)
        self.get_logger().error(text, throttle_duration_sec=5.0)

    def _prepare(self, item) -> _Frame | None:
        """Convert and stage one message; None (after a throttled warning) when it is unusable."""
        from lfn_ros.engine import EngineError
        from lfn_ros.io.image_msg import ImageMsgError, compressed_msg_to_rgb8, image_msg_to_rgb8

        msg, kind = item
        try:
            if kind == "raw":
                rgb, encoding = image_msg_to_rgb8(msg), msg.encoding
            else:
                rgb, encoding = compressed_msg_to_rgb8(msg), "compressed"
        except ImageMsgError as exc:
            self._bad_input(str(exc))
            return None
        if self._warmup_pending:
            self._warmup(*rgb.shape[:2])
        stamp = msg.header.stamp
        try:
            staged = self.engine.stage(rgb, stamp=stamp, seconds=stamp.sec + stamp.nanosec * 1e-9)
        except EngineError as exc:  # e.g. smaller than 32x32
            self._bad_input(str(exc))
            return None
        return _Frame(header=msg.header, encoding=encoding, size=rgb.shape[:2], staged=staged)

    def _process(self, frame: _Frame) -> _Frame | None:
        """Run one frame and publish its flow. Returns the next frame, already staged, when one
        was waiting (its conversion and upload overlapped this frame's compute)."""
        from lfn_ros.engine import EngineError, FlowOutOfMemory

        with self._lock:
            params = dict(self._params)
            self._stats.input_description = f"{frame.size[1]}x{frame.size[0]} {frame.encoding}"
        engine = self.engine
        if self._last_encoding not in (None, frame.encoding):
            self.get_logger().info(f"encoding changed from {self._last_encoding} to {frame.encoding}: "
                                   "starting a new sequence")
            engine.reset()
        self._last_encoding = frame.encoding
        had_previous = engine.has_previous
        want_points = params["publish_points"] and self._pub_points.get_subscription_count() > 0
        engine.occlusion = bool(params["publish_occlusion"] or want_points)
        size = f"{frame.size[1]}x{frame.size[0]}"
        try:
            pending = engine.run(frame.staged)  # resets itself on a size change or stamp going back
        except FlowOutOfMemory as exc:
            self._failure(f"out of device memory at {size}; the sequence restarts: {exc}")
            return None
        except (EngineError, RuntimeError, ValueError) as exc:
            self._failure(f"flow engine failed on a {size} frame: {type(exc).__name__}: {exc}")
            return None

        item = self._slot.take()
        ahead = self._prepare(item) if item is not None else None  # overlaps the device's work

        try:
            result = pending.wait()
        except (EngineError, RuntimeError, ValueError) as exc:
            self._failure(f"flow engine failed finishing a {size} frame: {type(exc).__name__}: {exc}")
            return ahead
        if result is None:  # the first frame of a sequence
            if had_previous or self._sequences_started:
                with self._lock:
                    self._stats.resets += 1
            self._sequences_started += 1
            return ahead
        self._publish(frame, result, params, want_points)
        return ahead

    # ------------------------------------------------------------------ output
    def _publish(self, frame: _Frame, result, params: dict, want_points: bool) -> None:
        if self._closing:
            return
        from lfn_ros.io.color import flow_to_color, occlusion_to_image
        from lfn_ros.io.image_msg import array_to_image_msg

        header = frame.header
        if params["publish_flow"]:
            self._pub_flow.publish(array_to_image_msg(result.flow, "32FC2", header))
        if params["publish_occlusion"] and result.occlusion is not None:
            self._pub_occlusion.publish(array_to_image_msg(occlusion_to_image(result.occlusion), "mono8", header))
        if params["publish_color"] and self._pub_color.get_subscription_count() > 0:
            self._pub_color.publish(array_to_image_msg(flow_to_color(result.flow), "rgb8", header))
        if want_points:
            from lfn_ros.io.pointcloud import flow_to_pointcloud

            self._pub_points.publish(flow_to_pointcloud(header, result.flow, result.occlusion,
                                                        stride=params["points_stride"]))
        now_ns = self.get_clock().now().nanoseconds
        latency_ms = (now_ns - (header.stamp.sec * 10**9 + header.stamp.nanosec)) / 1e6
        with self._lock:
            processed = self._stats.record_output(time.monotonic(), latency_ms, result.timings)
        timing = self._FlowTiming(header=header)
        if result.previous_stamp is not None:
            timing.previous_stamp = result.previous_stamp
        for stage in ("upload", "preprocess", "features", "decoder", "postprocess", "download", "compute"):
            setattr(timing, f"{stage}_ms", float(result.timings.get(stage, 0.0)))
        timing.latency_ms = float(latency_ms)
        timing.frames_processed = processed
        timing.frames_dropped = self._slot.dropped
        timing.device = self.engine.device_name
        timing.model = self.engine.model_name
        self._pub_timing.publish(timing)

    def _publish_diagnostics(self) -> None:
        if self._closing:
            return
        engine = self.engine
        with self._lock:
            health = assess(self._stats, time.monotonic(), dropped=self._slot.dropped, state=self._state,
                            device=engine.device_name, model=engine.model_name,
                            stale_timeout=self._params["stale_timeout"],
                            latency_budget_ms=self._params["latency_budget_ms"],
                            device_warning=engine.device_warning, trained=bool(engine.card.get("trained")))
        status = DiagnosticStatus(level=_LEVELS[health.level], name=f"{self.get_name()}: optical flow",
                                  message=health.message, hardware_id=engine.device_name)
        status.values = [KeyValue(key=k, value=v) for k, v in health.values.items()]
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


def _init_rclpy(args) -> None:
    """rclpy.init without rclpy's signal handlers: main() handles SIGINT and SIGTERM itself."""
    try:
        from rclpy.signals import SignalHandlerOptions
    except ImportError:  # very old rclpy: its handlers are replaced in main() anyway
        rclpy.init(args=args)
        return
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


def main(args=None) -> int:
    """Console script ``flow_node``. Returns the exit status (module docstring)."""
    stop = threading.Event()

    def on_signal(signum, _frame):
        if stop.is_set():  # a second Ctrl-C: the clean path is stuck, leave now
            os._exit(128 + signum)
        stop.set()

    try:
        _init_rclpy(sys.argv if args is None else args)
    except Exception as exc:  # RCLError: malformed --ros-args
        print(f"[{NODE_NAME}] cannot initialise ROS (check the --ros-args): {exc}", file=sys.stderr)
        return EXIT_CONFIG
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
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
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            # spin_once with a timeout, so the stop event is seen within 0.1 s of a signal.
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
        except KeyboardInterrupt:
            pass
        except Exception as exc:  # ExternalShutdownException (context shut down elsewhere), ...
            if rclpy.ok():
                node.get_logger().error(f"executor stopped: {type(exc).__name__}: {exc}")
                status = 1
        finished = node.close(timeout=1.0)
        executor.remove_node(node)
        node.destroy_node()
    rclpy.try_shutdown()
    if not finished:
        # The inference thread is inside a long device call: do not wait for it at interpreter
        # exit (torch in a daemon thread during finalisation is not safe).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
