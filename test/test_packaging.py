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
    "rclpy", "std_msgs", "sensor_msgs", "diagnostic_msgs", "builtin_interfaces",
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


def test_package_xml_declares_what_the_code_imports():
    declared = declared_dependencies(package_xml())
    # Used by the nodes and the message definition, whether or not the nodes exist yet.
    required = {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "builtin_interfaces"}
    sources = sorted((REPO / "lfn_ros").rglob("*.py")) + sorted((REPO / "launch").glob("*.py"))
    imported_ros = {n for n in imported_top_level_modules(sources) if n != "lfn_ros" and is_ros_package(n)}
    missing = sorted((required | imported_ros) - declared)
    assert not missing, f"imported but not declared in package.xml: {missing}"


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
