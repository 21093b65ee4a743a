"""launch/flow.launch.py, config/flow.yaml and config/flow.rviz.

`launch` and `launch_ros` cannot be installed here, so the launch file is checked by
construction: it byte-compiles, every argument has a description (AST), and
generate_launch_description() runs against small stand-ins of the launch API that record what
it builds (names, parameters, remappings, conditions).
"""

from __future__ import annotations

import ast
import importlib.util
import py_compile
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import yaml

from lfn_ros.nodes.parameters import PARAMETERS

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launch" / "flow.launch.py"
ARGUMENTS = {"image", "params_file", "device", "weights", "use_player", "rviz"}


def test_launch_file_compiles():
    py_compile.compile(str(LAUNCH), doraise=True)


def test_every_launch_argument_has_a_description():
    tree = ast.parse(LAUNCH.read_text())
    declared = {}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "DeclareLaunchArgument":
            name = call.args[0].value
            description = next(k.value for k in call.keywords if k.arg == "description")
            text = ast.literal_eval(description)
            declared[name] = text
    assert set(declared) == ARGUMENTS
    for name, text in declared.items():
        assert isinstance(text, str) and len(text.strip()) > 10, name


# ----------------------------------------------------------------------------- API stand-ins


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _stub_modules():
    names = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument"],
        "launch.conditions": ["IfCondition"],
        "launch.substitutions": ["LaunchConfiguration", "PathJoinSubstitution"],
        "launch_ros": [],
        "launch_ros.actions": ["Node"],
        "launch_ros.parameter_descriptions": ["ParameterValue"],
        "launch_ros.substitutions": ["FindPackageShare"],
    }
    modules = {}
    for module, classes in names.items():
        stub = types.ModuleType(module)
        for cls in classes:
            setattr(stub, cls, type(cls, (_Recorded,), {}))
        modules[module] = stub
    return modules


@pytest.fixture
def description(monkeypatch):
    for name, module in _stub_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("flow_launch_under_test", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def _nodes(description):
    entities = description.args[0]
    return {e.kwargs.get("executable"): e for e in entities if type(e).__name__ == "Node"}


def test_launch_description_structure(description):
    entities = description.args[0]
    arguments = [e for e in entities if type(e).__name__ == "DeclareLaunchArgument"]
    assert {a.args[0] for a in arguments} == ARGUMENTS
    defaults = {a.args[0]: a.kwargs["default_value"] for a in arguments}
    assert defaults["device"] == "cuda" and defaults["weights"] == "default"
    assert defaults["use_player"] == "false" and defaults["rviz"] == "false"
    params_default = defaults["params_file"]
    assert type(params_default).__name__ == "PathJoinSubstitution"
    share, *rest = params_default.args[0]
    assert share.args == ("lfn_ros",) and rest == ["config", "flow.yaml"]

    nodes = _nodes(description)
    assert set(nodes) == {"flow_node", "image_player", "rviz2"}
    flow = nodes["flow_node"].kwargs
    assert flow["package"] == "lfn_ros"
    assert "condition" not in flow
    params_file, overrides = flow["parameters"]
    assert params_file.args == ("params_file",)
    assert set(overrides) == {"device", "weights"}
    for name, value in overrides.items():
        assert value.args[0].args == (name,) and value.kwargs == {"value_type": str}
    remaps = dict((src, dst) for src, dst in flow["remappings"])
    assert remaps["image"].args == ("image",)
    assert remaps["image/compressed"][0].args == ("image",) and remaps["image/compressed"][1] == "/compressed"

    player = nodes["image_player"].kwargs
    assert player["package"] == "lfn_ros"
    assert player["condition"].args[0].args == ("use_player",)
    assert player["parameters"][0]["loop"] is True
    assert dict(player["remappings"])["image"].args == ("image",)

    rviz = nodes["rviz2"].kwargs
    assert rviz["package"] == "rviz2" and rviz["condition"].args[0].args == ("rviz",)
    assert rviz["arguments"][0] == "-d" and rviz["arguments"][1].args[0][1:] == ["config", "flow.rviz"]


def test_launch_executables_are_installed_by_cmake(description):
    cmake = (REPO / "CMakeLists.txt").read_text()
    for executable in ("flow_node", "image_player"):
        assert f"scripts/{executable}" in cmake
        assert (REPO / "scripts" / executable).is_file()
    assert "launch config" in cmake or ("launch" in cmake and "config" in cmake)


# ----------------------------------------------------------------------------- config files


def test_flow_yaml_has_every_parameter_with_its_default_and_a_comment():
    text = (REPO / "config" / "flow.yaml").read_text()
    data = yaml.safe_load(text)
    params = data["/**"]["ros__parameters"]
    assert set(params) == {p.name for p in PARAMETERS}
    for param in PARAMETERS:
        value = params[param.name]
        assert type(value) is type(param.default) and value == param.default, param.name
    # Each parameter has an inline comment, or a comment right above it or above the group of
    # parameter lines it belongs to (e.g. warmup_height and warmup_width share one).
    lines = [line.strip() for line in text.splitlines()]

    def is_param(line):
        return ":" in line and not line.startswith("#") and line.split(":")[0] in params

    for index, line in enumerate(lines):
        if is_param(line) and "#" not in line:
            above = index - 1
            while above >= 0 and is_param(lines[above]) and "#" not in lines[above]:
                above -= 1
            assert lines[above].startswith("#"), f"parameter without a comment: {line!r}"


def test_flow_rviz_shows_camera_flow_and_occlusion():
    data = yaml.safe_load((REPO / "config" / "flow.rviz").read_text())
    manager = data["Visualization Manager"]
    images = {d["Topic"]["Value"] for d in manager["Displays"]
              if d["Class"] == "rviz_default_plugins/Image" and d["Enabled"]}
    assert images == {"/image", "/flow/color", "/occlusion"}
    from lfn_ros.nodes.parameters import PLAYER_PARAMETERS

    assert manager["Global Options"]["Fixed Frame"] == "camera"
    assert {p.name: p.default for p in PLAYER_PARAMETERS}["frame_id"] == "camera"


def test_node_starts_with_the_shipped_parameters_file(ros_env, tmp_path):
    pytest.importorskip("rclpy")
    pytest.importorskip("lfn_ros.msg")
    log = tmp_path / "node.log"
    command = [sys.executable, "-m", "lfn_ros.nodes.flow_node", "--ros-args", "--params-file",
               str(REPO / "config" / "flow.yaml"), "-p", "device:=cpu", "-p", "weights:=''", "-p", "warmup:=false"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=ros_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while "flow node ready" not in log.read_text() and process.poll() is None:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            assert process.poll() is None, log.read_text()
            assert "[ERROR]" not in log.read_text(), log.read_text()
        finally:
            process.send_signal(signal.SIGINT)
            status = process.wait(10)
    assert status == 0, log.read_text()


def test_ros_api_doc_lists_every_parameter_and_topic():
    text = (REPO / "docs" / "ros_api.md").read_text()
    for param in PARAMETERS:
        assert f"`{param.name}`" in text, param.name
    for topic in ("`image`", "`image/compressed`", "`flow`", "`occlusion`", "`flow/color`", "`flow/points`",
                  "`flow/timing`", "`/diagnostics`"):
        assert topic in text, topic
    assert (REPO / "msg" / "FlowTiming.msg").read_text().strip() in text  # the definition, verbatim


def test_cpu_threads_zero_means_every_core_up_to_four_then_all_but_one():
    from lfn_ros.nodes.parameters import default_cpu_threads

    assert [default_cpu_threads(n) for n in (1, 2, 4, 5, 8, 64)] == [1, 2, 4, 4, 7, 63]
