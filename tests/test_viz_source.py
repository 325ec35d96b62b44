"""minibull.viz.source: excerpts are the package's own lines, found by text, short, and
name their file and function without any path of this machine."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from minibull import Worker
from minibull.viz import cut, excerpt


def test_an_excerpt_is_the_methods_own_lines_with_file_and_function():
    shown = excerpt(Worker._retry_delay, start="if isinstance(error", count=4)
    source = inspect.getsource(Worker._retry_delay).splitlines()
    assert shown.where == "minibull/worker.py, Worker._retry_delay"
    assert shown.lines[0].startswith("if isinstance(error")  # dedented
    assert [line.strip() for line in shown.lines] == [
        line.strip() for line in source[shown.first - 1 : shown.last]
    ]
    assert shown.total == len(source) and shown.last - shown.first + 1 == 4
    text = str(shown)
    assert text.splitlines()[0] == (
        f"# minibull/worker.py, Worker._retry_delay, lines {shown.first}-{shown.last} of "
        f"{len(source)}"
    )
    assert str(Path.home()) not in text and "/minibull/minibull" not in text


def test_an_excerpt_can_end_at_a_line_and_stays_short():
    source = "a\n  b = 1\n  c = 2\n  d = 3\ne\n"
    shown = cut(source, start="b =", end="d =", where="x.py, f")
    assert shown.lines == ["b = 1", "c = 2", "d = 3"] and (shown.first, shown.last) == (2, 4)
    with pytest.raises(ValueError, match="source changed"):
        cut(source, start="nowhere")
    with pytest.raises(ValueError, match="between 1 and 15"):
        cut(source, start="a", count=16)
    long = "\n".join(f"line {i}" for i in range(40))
    with pytest.raises(ValueError, match="over 15 lines"):
        cut(long, start="line 1", end="line 30")
