"""Shared pytest fixtures for lfn_ros."""

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Make `import lfn_ros` work with a bare `pytest` from anywhere, not only `python -m pytest`
# from the repository root.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the evaluation data (see its MANIFEST.md): $LFN_ROS_DATA, else
    <repo>/../shared/data. Tests using it are skipped when it is absent."""
    env = os.environ.get("LFN_ROS_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        source = "LFN_ROS_DATA" if env else "default location"
        pytest.skip(f"evaluation data not found at {path} ({source}); set LFN_ROS_DATA to "
                    f"the folder that holds Sintel/, KITTI2012/, ...")
    return path
