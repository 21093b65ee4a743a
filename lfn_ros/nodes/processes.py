"""Start lfn_ros's nodes as processes that talk over loopback only (the demo, tests, benchmarks).

All ROS traffic stays on this machine (:func:`loopback_env`): rmw_fastrtps_cpp with the Fast DDS
profile config/fastdds_loopback.xml (shared memory sized for images, UDP on 127.0.0.1 only) and a
random ROS_DOMAIN_ID unless one is set, so parallel runs do not see each other. Measured facts
behind the profile: docs/architecture.md, "ROS 2 from pip wheels".
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from ..resources import PACKAGE_DIR

PROFILE_NAME = "fastdds_loopback.xml"


def find_config(name: str) -> Path | None:
    """A file of the package's config/ folder: in this source tree, in the share directory of a
    colcon install (every prefix of AMENT_PREFIX_PATH, as ament_index finds it), or under
    sys.prefix/share/lfn_ros (pip installs); None if nowhere."""
    candidates = [PACKAGE_DIR.parent / "config" / name]
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidates.append(Path(prefix) / "share" / "lfn_ros" / "config" / name)
    candidates.append(Path(sys.prefix) / "share" / "lfn_ros" / "config" / name)
    for path in candidates:
        if path.is_file():
            return path
    return None


def loopback_env(base: dict | None = None, domain_id: int | None = None) -> dict:
    """Environment variables for ROS processes that talk over loopback only.

    Args:
        base: the environment to extend (default: os.environ).
        domain_id: ROS_DOMAIN_ID to use; default: the one in ``base``, else a random 1..100.

    Returns:
        A new dict: RMW_IMPLEMENTATION=rmw_fastrtps_cpp, FASTDDS_DEFAULT_PROFILES_FILE = the
        package's loopback profile with ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT (the profile
        decides), or ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST when the profile cannot be found.
    """
    env = dict(os.environ if base is None else base)
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    profile = find_config(PROFILE_NAME)
    if profile is not None:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SYSTEM_DEFAULT"
    else:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    elif not env.get("ROS_DOMAIN_ID"):
        env["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 100))
    return env


def ros_string(value: str) -> str:
    """A string for ``-p name:=value`` that rcl reads as that string (YAML single quotes):
    '' stays an empty string, '123' and 'true' stay strings."""
    return "'" + str(value).replace("'", "''") + "'"


def node_command(module: str, params: dict, remaps: dict | None = None) -> list:
    """``python -m lfn_ros.nodes.<module> --ros-args -p k:=v ... -r from:=to``."""
    command = [sys.executable, "-m", f"lfn_ros.nodes.{module}", "--ros-args"]
    for name, value in params.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        else:
            text = ros_string(value)
        command += ["-p", f"{name}:={text}"]
    for source, target in (remaps or {}).items():
        command += ["-r", f"{source}:={target}"]
    return command


def stop_process(process: subprocess.Popen, timeout: float = 5.0) -> int:
    """SIGINT, then SIGTERM, then SIGKILL, each after ``timeout`` s; returns the exit status."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            continue
    return process.wait()
