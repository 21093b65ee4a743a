"""Shared pytest fixtures for lfn_ros, and the strict mode CI runs in.

Locations outside the package come from the environment (lfn_ros.resources): $LFN_ROS_DATA for
the evaluation data and $LFN_ROS_RAFT_WEIGHTS for the RAFT-small peer. When unset, the tests
point them at the team's layout, ``../shared`` beside the checkout (test code may know it;
library code does not).

Strict mode (``LFN_ROS_STRICT_TESTS=1``, set by .ci/run): a test that skips for a missing
prerequisite (data, rclpy, the built messages, onnx, ...) FAILS instead, so a green CI means the
suite ran. Only tests marked ``gpu`` may skip there: CI never has a GPU.
"""

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
STRICT = os.environ.get("LFN_ROS_STRICT_TESTS", "") not in ("", "0", "false", "no")

# Make `import lfn_ros` work with a bare `pytest` from anywhere, not only `python -m pytest`
# from the repository root.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("LFN_ROS_DATA", str(SHARED / "data"))
os.environ.setdefault("LFN_ROS_RAFT_WEIGHTS", str(SHARED / "weights" / "raft-small.pth"))


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs CUDA; the only kind of test allowed to skip in strict mode")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and item.get_closest_marker("gpu") is None and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"strict mode (LFN_ROS_STRICT_TESTS): a prerequisite is missing, so this test did not run: {reason}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the evaluation data (see its MANIFEST.md): $LFN_ROS_DATA. Tests using it skip
    when it is absent (and fail in strict mode)."""
    path = Path(os.environ["LFN_ROS_DATA"])
    if not path.is_dir():
        pytest.skip(f"evaluation data not found at {path} ($LFN_ROS_DATA); set it to the folder that holds "
                    "Sintel/, KITTI2012/, ...")
    return path
