"""launch/odometry.launch.py, checked by construction as flow.launch.py is (test_launch_config.py):
it compiles, every argument is described, and against stand-ins of the launch API it builds the
player -> flow_node -> flow_odometry chain with the remappings that join them."""

from __future__ import annotations

import ast
import importlib.util
import py_compile
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launch" / "odometry.launch.py"
ARGUMENTS = {"image", "camera_info", "sequence", "rate", "params_file", "device", "weights"}


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


@pytest.fixture
def description(monkeypatch):
    names = {"launch": ["LaunchDescription"], "launch.actions": ["DeclareLaunchArgument"], "launch.conditions": ["IfCondition"],
             "launch.substitutions": ["LaunchConfiguration", "PathJoinSubstitution", "PythonExpression"], "launch_ros": [],
             "launch_ros.actions": ["Node"], "launch_ros.parameter_descriptions": ["ParameterValue"],
             "launch_ros.substitutions": ["FindPackageShare"]}
    for module, classes in names.items():
        stub = types.ModuleType(module)
        for cls in classes:
            setattr(stub, cls, type(cls, (_Recorded,), {}))
        monkeypatch.setitem(sys.modules, module, stub)
    spec = importlib.util.spec_from_file_location("odometry_launch_under_test", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def test_it_compiles_and_every_argument_is_described():
    py_compile.compile(str(LAUNCH), doraise=True)
    declared = {}
    for call in ast.walk(ast.parse(LAUNCH.read_text())):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "DeclareLaunchArgument":
            declared[call.args[0].value] = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "description"))
    assert set(declared) == ARGUMENTS
    assert all(len(text) > 10 for text in declared.values())


def test_the_chain_is_joined_by_its_remappings(description):
    entities = description.args[0]
    nodes = {e.kwargs["executable"]: e for e in entities if type(e).__name__ == "Node"}
    assert set(nodes) == {"image_player", "flow_node", "flow_odometry"}
    remap = {name: dict(node.kwargs["remappings"]) for name, node in nodes.items()}
    config = lambda e: e.args[0] if e.args else None  # noqa: E731  LaunchConfiguration("name")
    assert config(remap["image_player"]["image"]) == config(remap["flow_node"]["image"]) == "image"
    assert config(remap["image_player"]["camera_info"]) == config(remap["flow_odometry"]["camera_info"]) == "camera_info"
    assert "condition" in nodes["image_player"].kwargs  # only with a sequence
    player = nodes["image_player"].kwargs["parameters"][0]
    assert type(player["camera_info"]).__name__ == "PathJoinSubstitution"
