"""docs/reading-guide.md names the files and functions one job passes through (issue #14):
every name must exist, the path must stay about 2,000 lines, and a notebook may print a
private method only if the guide names it."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "reading-guide.md"
#: A reference in the guide: `minibull/<file>` or `minibull/<file>.py::<name>[.<name>]`.
REFERENCE = re.compile(r"`(minibull/[\w/.-]+\.(?:py|lua))(?:::([\w.]+))?`")
MAX_PATH_LINES = 2000
#: How a notebook prints code: excerpt(<object>, ...) or inspect.getsource(<object>).
PRINTED = re.compile(r"(?:excerpt|getsource)\(\s*([\w.]+)")


def references(text: str) -> list[tuple[str, str | None]]:
    return [(path, name or None) for path, name in REFERENCE.findall(text)]


def reading_path() -> str:
    text = GUIDE.read_text()
    return text.split("## The reading path", 1)[1].split("\n## ", 1)[0]


def resolve(path: str, name: str) -> object:
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    found: object = module
    for part in name.split("."):
        found = getattr(found, part)
    return found


def lines_of(path: str, name: str | None) -> int:
    if name is None:
        return len((ROOT / path).read_text().splitlines())
    return len(inspect.getsourcelines(resolve(path, name))[0])  # type: ignore[arg-type]


@pytest.mark.parametrize("path, name", sorted(set(references(GUIDE.read_text())), key=str))
def test_every_name_in_the_guide_exists(path: str, name: str | None) -> None:
    assert (ROOT / path).is_file(), path
    if name is not None:
        assert path.endswith(".py"), f"{path}::{name}: only Python files have names"
        resolve(path, name)


def test_the_reading_path_is_about_2000_lines() -> None:
    named = sorted(set(references(reading_path())), key=str)
    assert len(named) >= 30  # the path is really listed, step by step
    total = sum(lines_of(path, name) for path, name in named)
    assert total <= MAX_PATH_LINES, f"the reading path is {total} lines"


def printed_private_names() -> set[str]:
    """Class._method and module._function names that the notebooks print."""
    found = set()
    for notebook in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] == "code":
                for target in PRINTED.findall("".join(cell["source"])):
                    last = target.split(".")[-2:]
                    if last[-1].startswith("_") and not last[-1].startswith("__"):
                        found.add(".".join(last))
    return found


def test_a_notebook_prints_only_private_methods_the_guide_names() -> None:
    guide = GUIDE.read_text()
    assert {name for name in printed_private_names() if f"::{name}`" not in guide} == set()


def test_the_private_method_finder_sees_a_print() -> None:
    # The check above can fail: notebook 04 prints Worker._retry_delay.
    assert "Worker._retry_delay" in printed_private_names()
