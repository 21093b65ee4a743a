"""Replace the generated section of a document (between <!-- generated:begin --> and
<!-- generated:end -->): the tools that write tables from committed result files share it."""

from pathlib import Path

BEGIN, END = "<!-- generated:begin -->", "<!-- generated:end -->"


def replace_generated(path: Path, text: str) -> None:
    """Put ``text`` between the markers of ``path`` (which must have them)."""
    content = Path(path).read_text()
    if BEGIN not in content or END not in content:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} section")
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    Path(path).write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    print(f"updated {path}")
