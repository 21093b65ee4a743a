"""Fixtures for the node integration tests: real rclpy processes on a private ROS domain.

Every test module gets its own ROS_DOMAIN_ID and the loopback-only transport of
lfn_ros.nodes.processes.loopback_env (Fast DDS shared memory + UDP on 127.0.0.1), so tests running in
parallel, here or in other checkouts on the machine, do not see each other's topics.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROBE = HERE / "probe.py"



def _domain_id() -> int:
    # Spread over 1..100 (Fast DDS port range), seeded by the pid so parallel sessions differ.
    return random.Random(os.getpid() * 7919 + time.monotonic_ns()).randint(1, 100)


@pytest.fixture(scope="module")
def ros_env():
    from lfn_ros.nodes.processes import loopback_env

    env = loopback_env(domain_id=_domain_id())
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["RCUTILS_COLORIZED_OUTPUT"] = "0"
    return env


def node_command(module: str, params: dict, remaps: dict | None = None) -> list:
    from lfn_ros.nodes.processes import node_command as build

    return build(module, params, remaps)


class NodeProcess:
    """A node started with Popen; its output goes to a log file (shown on failure)."""

    def __init__(self, command: list, env: dict, log: Path) -> None:
        self.log = log
        self._file = open(log, "wb")
        self.process = subprocess.Popen(command, env=env, stdout=self._file, stderr=subprocess.STDOUT,
                                        cwd=REPO)

    def output(self) -> str:
        self._file.flush()
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal_and_wait(self, sig: int, timeout: float) -> tuple[int | None, float]:
        """Send a signal; returns (exit status or None on timeout, seconds until exit)."""
        t0 = time.monotonic()
        self.process.send_signal(sig)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            status = None
        return status, time.monotonic() - t0

    def stop(self) -> None:
        for sig in (signal.SIGINT, signal.SIGKILL):
            if self.process.poll() is None:
                self.process.send_signal(sig)
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        self._file.close()


def run_probe(env: dict, out: Path, scenarios: list, timeout: float = 240.0) -> dict:
    """Run test/nodes/probe.py with the scenarios; returns its JSON (raises with its output)."""
    result = subprocess.run([sys.executable, str(PROBE), "--out", str(out), *scenarios], env=env,
                            capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if not out.is_file():
        raise RuntimeError(f"probe wrote nothing (status {result.returncode}):\n{result.stdout}\n{result.stderr}")
    data = json.loads(out.read_text())
    data["_probe_output"] = result.stdout + result.stderr
    return data


@pytest.fixture(scope="module")
def start_node(ros_env, tmp_path_factory):
    """Factory: start_node(module, params, name=None) -> NodeProcess; all stopped at teardown."""
    started = []
    logs = tmp_path_factory.mktemp("node_logs")

    def start(module: str, params: dict, name: str | None = None, remaps: dict | None = None) -> NodeProcess:
        log = logs / f"{name or module}_{len(started)}.log"
        node = NodeProcess(node_command(module, params, remaps), ros_env, log)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture(scope="module")
def probe(ros_env, tmp_path_factory):
    """probe(scenarios) -> dict: runs test/nodes/probe.py in its own process."""
    folder = tmp_path_factory.mktemp("probe")
    runs = []

    def run(scenarios: list, timeout: float = 240.0) -> dict:
        runs.append(None)
        return run_probe(ros_env, folder / f"result_{len(runs)}.json", scenarios, timeout)

    return run
