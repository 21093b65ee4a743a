"""Where lfn_ros finds its files: one home for every location (issue 9).

Inside the package (installed with it):
    :data:`SEQUENCE_DIR`   the embedded camera sequence of the demo (``make run``, ``--demo``);
    :data:`DEFAULT_WEIGHTS` the shipped checkpoint and its card (``lfn_ros/weights/``);
    :func:`flow_timing_definition` msg/FlowTiming.msg (beside the package, or under an ament prefix).

Outside the package (never assumed to sit next to a checkout; given explicitly or by environment):
    evaluation data  an argument, else ``$LFN_ROS_DATA``;
    RAFT-small peer  an argument, else ``$LFN_ROS_RAFT_WEIGHTS``.

The Makefile sets both variables to the team's ``../shared`` folder, so ``make test`` and
``make run`` find them in a checkout laid out like the team's; library code names no such path.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: Frames shipped with the package for demos (see lfn_ros/data/sequence/README.md).
SEQUENCE_DIR = PACKAGE_DIR / "data" / "sequence"
#: The checkpoint that ships with the package (trained by lfn_ros on synthetic data).
DEFAULT_WEIGHTS = PACKAGE_DIR / "weights" / "liteflownet_synthetic.pt"
#: The FlowTiming message definition: msg/ beside the package in a checkout (make, editable
#: installs), share/lfn_ros/msg/ under an ament prefix (colcon installs). Bags carry its text.
FLOW_TIMING_MSG_NAME = "FlowTiming.msg"
#: Environment variables naming the folders outside the package.
DATA_ENV = "LFN_ROS_DATA"
RAFT_ENV = "LFN_ROS_RAFT_WEIGHTS"


def default_weights() -> Path | None:
    """The shipped checkpoint, or None when this installation has none."""
    return DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.is_file() else None


def data_root(explicit=None) -> Path | None:
    """The evaluation data folder: ``explicit``, else ``$LFN_ROS_DATA``; None when neither names
    an existing folder."""
    value = explicit or os.environ.get(DATA_ENV)
    if not value:
        return None
    path = Path(value)
    return path if path.is_dir() else None


def raft_weights(explicit=None) -> Path | None:
    """The RAFT-small peer's weights: ``explicit``, else ``$LFN_ROS_RAFT_WEIGHTS``; None if unset."""
    value = explicit or os.environ.get(RAFT_ENV)
    return Path(value) if value else None


def flow_timing_definition() -> Path:
    """The FlowTiming.msg file of this installation (see :data:`FLOW_TIMING_MSG_NAME`)."""
    candidates = [PACKAGE_DIR.parent / "msg" / FLOW_TIMING_MSG_NAME]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "lfn_ros" / "msg" / FLOW_TIMING_MSG_NAME)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{FLOW_TIMING_MSG_NAME} not found (looked in {', '.join(str(c) for c in candidates)})")
