"""Replace the generated section of a document (between <!-- generated:begin --> and
<!-- generated:end -->): the tools that write tables from committed result files share it."""

import argparse
from pathlib import Path
from typing import Callable

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


def main(path: Path, generate: Callable[[], str], description: str, argv=None) -> int:
    """The tools' command line: print the generated text, or with --write put it into ``path``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--write", action="store_true", help=f"replace the generated section of {Path(path).name}")
    args = parser.parse_args(argv)
    text = generate()
    if args.write:
        replace_generated(path, text)
    else:
        print(text)
    return 0
