"""The package stays readable (issue #14): no function longer than 40 lines, docstring
not counted, so that each fits on a screen beside the notebook that shows it."""

from __future__ import annotations

import ast
from pathlib import Path

import minibull

MAX_LINES = 40
PACKAGE = Path(minibull.__file__).parent


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """A function's lines, from ``def`` to its end, without its docstring."""
    lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        if isinstance(first.value.value, str):
            lines -= first.end_lineno - first.lineno + 1  # type: ignore[operator]
    return lines


def long_functions(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if code_lines(node) > MAX_LINES:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    return found


def test_no_function_is_longer_than_40_lines() -> None:
    assert long_functions(PACKAGE) == []


def test_the_count_leaves_out_the_docstring_only(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES - 1))
    docstring = '    """A docstring\n    over two lines."""\n'
    (tmp_path / "fits.py").write_text(f"def fits():\n{docstring}{body}\n")
    (tmp_path / "long.py").write_text(f"def long():\n{docstring}{body}\n    x = 0\n")
    assert long_functions(tmp_path) == ["long.py:1 long"]


def run_id_pieces(root: Path) -> list[str]:
    """Code that builds or matches a run id: the literal "repeat:" or an f-string starting
    with it (prose that mentions ``repeat:<id>`` is not code). keys.py is left out: its
    ``repeat:`` is the prefix of the scheduler hashes' key names, not of a job id."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "keys.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value == "repeat:":
                found.append(f"{path.relative_to(root)}:{node.lineno}")
            elif isinstance(node, ast.JoinedStr) and node.values:
                first = node.values[0]
                if isinstance(first, ast.Constant) and str(first.value).startswith("repeat:"):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_the_scheduler_run_id_format_is_written_only_in_lua() -> None:
    # "repeat:<scheduler id>:<ms>" is built in lua/includes/schedulerRunId.lua; Python reads
    # a run's time from its opts.prevMillis instead of parsing the id.
    assert (PACKAGE / "lua" / "includes" / "schedulerRunId.lua").read_text().count('"repeat:"') == 1
    assert run_id_pieces(PACKAGE) == []
