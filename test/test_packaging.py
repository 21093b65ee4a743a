"""Packaging checks: package.xml, the generated FlowTiming message, the Fast DDS profile."""

import ast
import importlib
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# ROS packages that may be imported without being in this environment's ament index.
KNOWN_ROS_PACKAGES = {
    "rclpy", "std_msgs", "sensor_msgs", "sensor_msgs_py", "diagnostic_msgs", "builtin_interfaces",
    "rcl_interfaces", "geometry_msgs", "cv_bridge", "launch", "launch_ros",
    "ament_index_python", "rosbag2_py",
}


def package_xml():
    return ET.parse(REPO / "package.xml").getroot()


def declared_dependencies(root, kinds=("depend", "exec_depend", "build_depend")):
    return {e.text.strip() for kind in kinds for e in root.findall(kind)}


def is_ros_package(name):
    if name in KNOWN_ROS_PACKAGES:
        return True
    prefixes = [sys.prefix] + os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
    return any(p and os.path.isfile(os.path.join(p, "share", "ament_index", "resource_index",
                                                 "packages", name)) for p in prefixes)


def imported_top_level_modules(paths):
    """Top-level names of all absolute imports in the given Python files."""
    names = set()
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_package_xml_parses_and_names_the_package():
    root = package_xml()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "lfn_ros"
    assert root.findtext("export/build_type") == "ament_cmake"
    assert root.findtext("member_of_group") == "rosidl_interface_packages"


#: Third-party Python modules lfn_ros imports -> (rosdep key or None, pip requirement name, setup.py
#: extra or None for install_requires). A new import must be added here, and declared.
PYTHON_DEPENDENCIES = {
    "numpy": ("python3-numpy", "numpy", None),
    "cv2": ("python3-opencv", "opencv-python-headless", None),
    "torch": ("python3-torch", "torch", None),
    "tqdm": ("python3-tqdm", "tqdm", None),
    "matplotlib": ("python3-matplotlib", "matplotlib", "train"),
    "skimage": ("python3-skimage", "scikit-image", "train"),
    "onnxruntime": (None, "onnxruntime", "export"),
    "torchvision": (None, "torchvision", "raft"),
    "openvino": (None, "openvino", "openvino"),
    "nncf": (None, "nncf", "int8"),
    "rosbags": (None, "rosbags", "bags"),
    "yaml": ("python3-yaml", "PyYAML", None),
}
#: Needed without being imported by lfn_ros's Python: torch.onnx.export needs onnx; the launch
#: file starts rviz2; rosidl's runtime loads the message bindings; the msg file uses
#: builtin_interfaces; the launch file and the tests import the rest.
NOT_IMPORTED = {"onnx", "rviz2", "rosidl_default_runtime", "builtin_interfaces"}


def imported_third_party():
    """Top-level modules imported by lfn_ros/ and launch/ that are neither stdlib nor lfn_ros."""
    sources = sorted((REPO / "lfn_ros").rglob("*.py")) + sorted((REPO / "launch").glob("*.py"))
    return {n for n in imported_top_level_modules(sources) if n != "lfn_ros" and n not in sys.stdlib_module_names}


def setup_requirements():
    """(install_requires names, {extra: names}) of setup.py, read without running it."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    values = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("install_requires", "extras_require")}
    name = lambda req: re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0]  # noqa: E731
    return ({name(r) for r in values["install_requires"]},
            {extra: {name(r) for r in reqs} for extra, reqs in values["extras_require"].items()})


def test_every_import_is_declared_in_package_xml_and_setup_py():
    declared = declared_dependencies(package_xml())
    required, extras = setup_requirements()
    imported = imported_third_party()
    ros = {n for n in imported if is_ros_package(n)}
    python = imported - ros
    unknown = sorted(python - set(PYTHON_DEPENDENCIES))
    assert not unknown, f"imports with no entry in PYTHON_DEPENDENCIES (declare them): {unknown}"
    missing = sorted(ros - declared)
    assert not missing, f"ROS packages imported but not declared in package.xml: {missing}"
    for module in python:
        key, pip_name, extra = PYTHON_DEPENDENCIES[module]
        if key is not None:
            assert key in declared, f"{module} is imported but {key} is not in package.xml"
        wanted = required if extra is None else extras.get(extra, set())
        assert pip_name in wanted, f"{module} is imported but {pip_name} is not in setup.py {extra or 'install_requires'}"


def test_everything_declared_is_used():
    declared = declared_dependencies(package_xml(), kinds=("depend", "exec_depend"))
    required, extras = setup_requirements()
    imported = imported_third_party()
    keys = {PYTHON_DEPENDENCIES[m][0] for m in imported if m in PYTHON_DEPENDENCIES}
    unused = sorted(declared - imported - keys - NOT_IMPORTED)
    assert not unused, f"declared in package.xml but never imported: {unused}"
    pip_used = {PYTHON_DEPENDENCIES[m][1] for m in imported if m in PYTHON_DEPENDENCIES} | (NOT_IMPORTED & {"onnx"})
    declared_pip = required.union(*extras.values())
    assert not declared_pip - pip_used, f"setup.py requires what nothing imports: {sorted(declared_pip - pip_used)}"
    assert "cv_bridge" not in declared, "nothing imports cv_bridge (lfn_ros.nodes.image_msg converts images)"


def test_cmake_install_into_a_prefix_outside_the_source_tree(tmp_path):
    """What colcon does: configure, build and install the whole package into a prefix outside
    the tree (while the venv lives inside it), then import the installed sources and messages."""
    import shutil
    import subprocess

    if shutil.which("cmake") is None or not (Path(sys.prefix) / "share" / "ament_cmake").is_dir():
        pytest.skip("cmake or the ament CMake wheels are missing")
    venv = Path(sys.prefix)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(venv), CMAKE_PREFIX_PATH=str(venv),
               PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    build, prefix = tmp_path / "build", tmp_path / "install"
    steps = [
        ["cmake", "-S", str(REPO), "-B", str(build), f"-DCMAKE_INSTALL_PREFIX={prefix}", "-DBUILD_TESTING=OFF",
         "-DLFN_ROS_INSTALL_PYTHON=ON", f"-DPython3_EXECUTABLE={sys.executable}", "-DPython3_FIND_VIRTUALENV=ONLY"],
        ["cmake", "--build", str(build), "--parallel", "2"],
        ["cmake", "--install", str(build)],
    ]
    for command in steps:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(command[:2])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    site = next(prefix.glob("lib/python3*/site-packages"))
    for name in ("share/lfn_ros/package.xml", "share/lfn_ros/launch/flow.launch.py", "share/lfn_ros/config/flow.yaml",
                 "lib/lfn_ros/flow_node", "lib/lfn_ros/image_player"):
        assert (prefix / name).exists(), name
    check = ("import lfn_ros, lfn_ros.msg, lfn_ros.model.weights as w; "
             "assert lfn_ros.__file__.startswith(%r), lfn_ros.__file__; lfn_ros.msg.FlowTiming(); "
             "assert w.default_weights() is not None" % str(site))
    env = dict(env, PYTHONPATH=str(site), AMENT_PREFIX_PATH=f"{prefix}{os.pathsep}{venv}",
               LD_LIBRARY_PATH=f"{prefix / 'lib'}{os.pathsep}{os.environ.get('LD_LIBRARY_PATH', '')}")
    done = subprocess.run([sys.executable, "-c", check], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def test_versions_agree():
    import lfn_ros

    setup_py = (REPO / "setup.py").read_text(encoding="utf-8")
    setup_version = re.search(r'version="([^"]+)"', setup_py).group(1)
    assert package_xml().findtext("version") == setup_version == lfn_ros.__version__


def test_executables_match_console_scripts():
    setup_py = (REPO / "setup.py").read_text(encoding="utf-8")
    for name in ("flow_node", "image_player"):
        script = REPO / "scripts" / name
        assert os.access(script, os.X_OK), f"{script} is not executable"
        assert f"from lfn_ros.nodes.{name} import main" in script.read_text(encoding="utf-8")
        assert f'"{name}=lfn_ros.nodes.{name}:main"' in setup_py


def msg_fields(path):
    """(name, type) of every field in a .msg file, in order (constants skipped)."""
    fields = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or "=" in line:
            continue
        field_type, name = line.split()[:2]
        fields.append((name, field_type))
    return fields


# .msg primitive names -> names in get_fields_and_field_types()
PRIMITIVE_NAMES = {"float32": "float", "float64": "double"}


def test_flowtiming_message_imports_with_its_fields():
    pytest.importorskip("rclpy", reason="ROS 2 Python bindings not installed")
    from lfn_ros.msg import FlowTiming

    generated = FlowTiming.get_fields_and_field_types()
    expected = [(name, PRIMITIVE_NAMES.get(t, t)) for name, t in msg_fields(REPO / "msg" / "FlowTiming.msg")]
    assert list(generated.items()) == expected

    msg = FlowTiming(device="cpu", latency_ms=1.5, frames_processed=3)
    assert (msg.device, msg.frames_processed) == ("cpu", 3)
    assert msg.latency_ms == pytest.approx(1.5)


def test_message_bindings_and_sources_share_the_lfn_ros_package():
    pytest.importorskip("rclpy", reason="ROS 2 Python bindings not installed")
    import lfn_ros
    import lfn_ros.msg

    model = importlib.import_module("lfn_ros.model")
    assert Path(model.__file__).parent.parent == Path(lfn_ros.__file__).parent
    if Path(sys.prefix).resolve() == (REPO / ".venv").resolve():
        # `make` venv: sources are this tree (edits apply at once), bindings are in the venv.
        assert Path(lfn_ros.__file__).resolve() == REPO / "lfn_ros" / "__init__.py"
        assert not (REPO / "lfn_ros" / "msg").exists(), "lfn_ros/msg is generated; keep it out of the tree"


def test_fastdds_profile_is_loopback_only():
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(REPO / "config" / "fastdds_loopback.xml").getroot()
    participant = root.find("d:profiles/d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    assert participant.findtext("d:rtps/d:useBuiltinTransports", namespaces=ns) == "false"

    transports = {t.findtext("d:transport_id", namespaces=ns): t
                  for t in root.findall("d:profiles/d:transport_descriptors/d:transport_descriptor", ns)}
    used = [e.text for e in participant.findall("d:rtps/d:userTransports/d:transport_id", ns)]
    assert used and set(used) <= set(transports)
    kinds = {transports[t].findtext("d:type", namespaces=ns): transports[t] for t in used}
    assert set(kinds) == {"SHM", "UDPv4"}
    assert int(kinds["SHM"].findtext("d:segment_size", namespaces=ns)) >= 32 * 1024 * 1024
    assert [a.text for a in kinds["UDPv4"].findall("d:interfaceWhiteList/d:address", ns)] == ["127.0.0.1"]
    peers = participant.findall("d:rtps/d:builtin/d:initialPeersList/d:locator/d:udpv4/d:address", ns)
    assert [p.text for p in peers] == ["127.0.0.1"]
