"""rclpy start-up, spinning and shutdown for lfn_ros's nodes, written once (issue 9).

Every lfn_ros process that talks ROS (flow_node, image_player, the demo's recorder, the load
benchmark) starts with :func:`init` (rclpy without its own signal handlers, so SIGINT and SIGTERM
set a stop event instead of raising inside a callback), spins with :func:`spin_until` (short
spin_once calls, so a stop is seen within 0.1 s) and ends with :func:`shutdown`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor

from .parameters import descriptor


def init(args=None, context=None) -> None:
    """rclpy.init without rclpy's signal handlers. Raises what rclpy raises (malformed --ros-args)."""
    kwargs = {"args": args, "context": context} if context is not None else {"args": args}
    try:
        from rclpy.signals import SignalHandlerOptions
    except ImportError:  # very old rclpy: its handlers are replaced by install_stop_handlers anyway
        rclpy.init(**kwargs)
        return
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO, **kwargs)


def init_or_report(name: str, args=None) -> bool:
    """:func:`init` with the process arguments; False (after one line on stderr) when rclpy refuses them."""
    try:
        init(sys.argv if args is None else args)
    except Exception as exc:  # RCLError: malformed --ros-args
        print(f"[{name}] cannot initialise ROS (check the --ros-args): {exc}", file=sys.stderr)
        return False
    return True


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGINT / SIGTERM set ``stop``; a second signal, when the clean path is stuck, exits at once."""

    def on_signal(signum, _frame):
        if stop.is_set():
            os._exit(128 + signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def spin_until(node, stop: threading.Event, period: float = 0.1) -> int:
    """Spin ``node`` until ``stop`` is set or rclpy shuts down; 0, or 1 when the executor failed."""
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    status = 0
    try:
        while not stop.is_set() and rclpy.ok(context=node.context):
            executor.spin_once(timeout_sec=period)
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # ExternalShutdownException (context shut down elsewhere), ...
        if rclpy.ok(context=node.context):
            node.get_logger().error(f"executor stopped: {type(exc).__name__}: {exc}")
            status = 1
    finally:
        executor.remove_node(node)
    return status


def shutdown(context=None) -> None:
    """rclpy.try_shutdown (safe when already shut down)."""
    rclpy.try_shutdown(context=context)


def declare_parameters(node, table) -> dict:
    """Declare every parameter of ``table`` (lfn_ros.nodes.parameters) with its descriptor;
    returns {name: value} as given by the launch file / command line."""
    for param in table:
        node.declare_parameter(param.name, param.default, descriptor(param))
    return {param.name: node.get_parameter(param.name).value for param in table}
