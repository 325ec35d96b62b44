"""Short source excerpts for the notebooks: the lines that matter, taken from the
installed package at run time (so they cannot drift), with the file and function named."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_LINES = 15  # a longer excerpt stops teaching: show the rest with `??`


@dataclass(frozen=True)
class Excerpt:
    """Some lines of a function: where they come from, and the lines themselves."""

    where: str  # "minibull/worker.py, Worker._wait_for_work"
    first: int  # 1-based line numbers within the function's source
    last: int
    total: int  # lines in the whole function
    lines: list[str]

    def __str__(self) -> str:
        header = f"# {self.where}, lines {self.first}-{self.last} of {self.total}"
        return "\n".join([header, *self.lines])

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython shows it as text
        printer.text(str(self))


def _where(obj: Any) -> str:
    path = Path(inspect.getsourcefile(obj) or "?").resolve()
    package = Path(__file__).resolve().parents[1]  # .../minibull
    try:
        shown = path.relative_to(package.parent).as_posix()
    except ValueError:  # not from minibull: the file name only, never a machine path
        shown = path.name
    return f"{shown}, {obj.__qualname__}"


def cut(
    source: str, *, start: str, count: int = 10, where: str = "", end: str | None = None
) -> Excerpt:
    """``count`` lines of ``source`` from the first line containing ``start`` (up to and
    including the first later line containing ``end``, if given), dedented."""
    if not 1 <= count <= MAX_LINES:
        raise ValueError(f"count must be between 1 and {MAX_LINES} (got {count})")
    lines = source.splitlines()
    begin = next((i for i, line in enumerate(lines) if start in line), None)
    if begin is None:
        raise ValueError(f"no line contains {start!r}: the source changed, pick other lines")
    stop = min(begin + count, len(lines))
    if end is not None:
        found = next((i for i in range(begin, len(lines)) if end in lines[i]), None)
        if found is None:
            raise ValueError(f"no line after {start!r} contains {end!r}")
        if found - begin + 1 > MAX_LINES:
            raise ValueError(f"{start!r} .. {end!r} is over {MAX_LINES} lines")
        stop = found + 1
    chosen = lines[begin:stop]
    indent = min((len(line) - len(line.lstrip()) for line in chosen if line.strip()), default=0)
    return Excerpt(where, begin + 1, stop, len(lines), [line[indent:] for line in chosen])


def excerpt(obj: Any, *, start: str, count: int = 10, end: str | None = None) -> Excerpt:
    """Lines of a function or method of the package, found by text (not line numbers)."""
    return cut(inspect.getsource(obj), start=start, count=count, where=_where(obj), end=end)
