"""The tables the docs publish are the ones the tools write from the committed result files
(issue 12: claims that drifted). A figure edited by hand, a result file replaced without
rerunning the tool, or an evaluation of another weights file fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generated_section(path: Path) -> str:
    sections = load_tool("generated_sections")
    text = path.read_text()
    assert sections.BEGIN in text and sections.END in text, f"{path} lost its generated section"
    return text.split(sections.BEGIN, 1)[1].split(sections.END, 1)[0].strip("\n")


@pytest.mark.parametrize("tool, document", [
    ("weights_card", REPO / "lfn_ros" / "weights" / "README.md"),
    ("benchmarks_doc", REPO / "docs" / "benchmarks.md"),
    ("odometry_doc", REPO / "docs" / "odometry.md"),
])
def test_the_published_tables_are_generated_from_the_committed_results(tool, document):
    expected = load_tool(tool).generate().strip("\n")
    assert expected, f"tools/{tool}.py generated nothing"
    assert generated_section(document) == expected, f"rerun: python tools/{tool}.py --write"
