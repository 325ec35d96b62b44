"""The package stays readable (issue #14): no function longer than 40 lines, docstring
not counted, so that each fits on a screen beside the notebook that shows it."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import minibull
from minibull.keys import LIST_STATES, STATE_SUFFIX, QueueKeys
from minibull.scripts import SCRIPT_KEYS, remove_job_args

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


# -- each fact once (#14): the delayed score and the scheduler run id live in Lua only ---

LUA = PACKAGE / "lua"


def python_pieces(root: Path, found_in: Callable[[ast.AST], bool]) -> list[str]:
    """``file:line`` of every node of the package's Python code that ``found_in`` picks."""
    return [
        f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        for path in sorted(root.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if found_in(node)
    ]


def lua_files_with(text: str) -> list[str]:
    """The Lua files (under lua/) whose text has ``text``, not followed by a word character."""
    pattern = re.compile(re.escape(text) + r"(?!\w)")
    return sorted(
        str(p.relative_to(LUA)) for p in LUA.rglob("*.lua") if pattern.search(p.read_text())
    )


def is_delayed_score_unit(node: ast.AST) -> bool:
    """The number 4096 (``0x1000``), in whatever spelling: the delayed score's unit."""
    return (
        isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value == 4096
    )


def is_run_id_piece(node: ast.AST) -> bool:
    """Code that builds, matches or splits a run id ``repeat:<scheduler id>:<ms>``: text
    starting with ``repeat:`` and no space (prose such as "repeat: the schedule has ended"
    is not an id), or ``<something>.id.split(...)`` / ``.id.rsplit(...)``."""
    if isinstance(node, ast.JoinedStr) and node.values:
        node = node.values[0]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.startswith("repeat:") and not node.value.startswith("repeat: ")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        target = node.func.value
        return node.func.attr in ("split", "rsplit") and (
            isinstance(target, ast.Attribute) and target.attr == "id"
        )
    return False


def test_only_one_lua_include_knows_the_delayed_score_encoding() -> None:
    # due ms * 0x1000 + a sequence: encoded, and decoded, in includes/getDelayedScore.lua only;
    # Python asks a script (Queue.has_ready_work -> hasReadyWork) instead of computing it.
    assert python_pieces(PACKAGE, is_delayed_score_unit) == []
    assert lua_files_with("0x1000") == ["includes/getDelayedScore.lua"]


def test_only_one_lua_include_knows_the_scheduler_run_id() -> None:
    # keys.py's "repeat:" is the prefix of the scheduler hashes' key names, not a run id.
    pieces = python_pieces(PACKAGE, is_run_id_piece)
    assert [piece for piece in pieces if not piece.startswith("keys.py:")] == []
    assert lua_files_with('"repeat:"') == ["includes/schedulerRunId.lua"]


@pytest.mark.parametrize(
    "code, found",
    [
        ("score // 0x1000", True),
        ("(now + 1) * 4096 - 1", True),
        ('"due ms * 4096"', False),
        ('job.id.rsplit(":", 1)[-1]', True),
        ('job.id.startswith("repeat:")', True),
        ('f"repeat:{sid}:{ms}"', True),
        ('"repeat: the schedule has already ended"', False),
        ('self.key("repeat")', False),
    ],
)
def test_the_finders_see_the_pieces(tmp_path: Path, code: str, found: bool) -> None:
    (tmp_path / "m.py").write_text(f"x = {code}\n")
    pieces = python_pieces(tmp_path, is_delayed_score_unit) + python_pieces(
        tmp_path, is_run_id_piece
    )
    assert (pieces != []) is found, pieces


def test_remove_job_reads_the_states_from_keys_py() -> None:
    # The states a job can be in are listed once, in keys.py (STATE_SUFFIX, LIST_STATES);
    # removeJob-11.lua gets them in ARGV[4] with the index of each one's key in its KEYS.
    source = (LUA / "removeJob-11.lua").read_text().split("]]", 1)[1]  # the code, not the header
    named = [state for state in {*STATE_SUFFIX, *STATE_SUFFIX.values()} if f'"{state}"' in source]
    assert named == []
    keys = QueueKeys("emails", "bull")
    names, argv = remove_job_args(keys, "7")
    states = json.loads(argv[3])
    assert [state for state, *_ in states] == list(STATE_SUFFIX)
    for state, suffix, kind, index in states:
        assert SCRIPT_KEYS["removeJob"][index - 1] == suffix
        assert names[index - 1] == keys.state_key(state)
        assert kind == ("list" if state in LIST_STATES else "zset")
