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
