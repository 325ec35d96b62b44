"""Notebooks 06-11 survive a presenter who talks: a pause before every code cell.

Each notebook runs top to bottom in a kernel of its own with ``PAUSE`` seconds (5) of
silence before each code cell, as when an instructor explains the cell before running
it. Every cell must still run without an error (the check cells are asserts), every
exercise check must give the verdict stored in the notebook (✓ in a solution), and at
the end no worker process, child process or in-kernel worker may be left. The six
notebooks and their solutions run concurrently (asyncio, one kernel each), so the test
takes about the longest notebook's code-cell count times PAUSE, not the sum.

Embedded default only (skipped when MINIBULL_REDIS_URL is set): the timing of the demos
does not depend on the backend, and CI's real-Redis pass runs the same notebooks
under nbval. Notebook 10's BullMQ section needs a real Redis, so here it takes its
documented skip path (its check cells assert the skip); its crossing is checked by the
real-Redis nbval pass, without pauses (it adds and runs its jobs within one cell each).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from minibull.connection import redis_url

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PARTS = ["06_*", "07_*", "08_*", "09_*", "10_*", "11_*"]
PAUSE = float(os.environ.get("MINIBULL_PRESENTER_PAUSE", "5"))

#: Run in each kernel after the last cell: what is still running, as JSON.
PROBE = """
import json as _json, os as _os
from minibull import Worker as _Worker
from minibull.processes import running_workers as _running_workers

def _children(pid):
    kids = []
    for entry in _os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == str(pid) and fields[0] != "Z":
                kids.append(int(entry))
    return kids

print(_json.dumps({
    "worker_processes": [w.pid for w in _running_workers()],
    "child_processes": _children(_os.getpid()),
    "workers": [repr(w) for w in list(globals().values()) if isinstance(w, _Worker) and w.running],
}))
"""


class Presenter(NotebookClient):
    """Executes a notebook with a pause before every code cell."""

    pause: float = PAUSE

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type == "code":
            await asyncio.sleep(self.pause)
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)


def presented() -> list[Path]:
    paths = []
    for pattern in PARTS:
        paths += sorted(NOTEBOOKS.glob(f"{pattern}.ipynb"))
        paths += sorted((NOTEBOOKS / "solutions").glob(f"{pattern}.ipynb"))
    return paths


def verdicts(nb: nbformat.NotebookNode) -> dict[int, str]:
    """Each exercise check's verdict, by cell: ✓, ✗ or "not answered"."""
    found = {}
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith("Exercise "):
                    found[index] = "✓" if "✓" in line else "✗" if "✗" in line else "not answered"
    return found


def problems_in(
    nb: nbformat.NotebookNode, stored: nbformat.NotebookNode, solution: bool
) -> list[str]:
    """Checks that changed their verdict (a solution's must all be ✓), and what was left."""
    found = []
    expected = verdicts(stored)
    for index, verdict in verdicts(nb).items():
        wanted = "✓" if solution else expected.get(index)
        if verdict != wanted:
            found.append(f"cell {index}: exercise check says {verdict}, expected {wanted}")
    probe = json.loads(nb.cells[-1].outputs[-1]["text"])
    found += [f"left running: {key} {value}" for key, value in probe.items() if value]
    return found


#: A kernel that dies while it starts is started again, up to this many times in all: its
#: ports are picked before they are bound, so ten kernels starting at once on a busy machine
#: can collide (ZMQError "Address already in use", then "Kernel died before replying to
#: kernel_info"). An error after the kernel has started is reported as it is.
KERNEL_STARTS = 3


async def present(path: Path) -> tuple[float, list[str]]:
    for start in range(1, KERNEL_STARTS + 1):
        try:
            return await present_once(path)
        except RuntimeError as error:
            if "before replying to kernel_info" not in str(error) or start == KERNEL_STARTS:
                raise
    raise AssertionError("unreachable")


async def present_once(path: Path) -> tuple[float, list[str]]:
    stored = nbformat.read(path, as_version=4)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    env = {k: v for k, v in os.environ.items() if k != "MINIBULL_REDIS_URL"}
    client = Presenter(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    started = time.perf_counter()
    await client.async_execute(env=env)
    return time.perf_counter() - started, problems_in(nb, stored, path.parent.name == "solutions")


@pytest.mark.skipif(redis_url() is not None, reason="embedded default only (see the docstring)")
@pytest.mark.timeout(900)
async def test_notebooks_06_to_11_survive_a_pause_before_every_cell():
    paths = presented()
    assert len(paths) == 12, paths
    started = time.perf_counter()
    results = await asyncio.gather(*(present(path) for path in paths), return_exceptions=True)
    wall = time.perf_counter() - started
    report = []
    for path, result in zip(paths, results, strict=True):
        name = str(path.relative_to(NOTEBOOKS))
        if isinstance(result, BaseException):
            report.append(f"{name}: {type(result).__name__}: {str(result)[-2000:]}")
        else:
            seconds, found = result
            print(f"{name}: {seconds:.0f} s")
            report += [f"{name}: {problem}" for problem in found]
    print(f"all twelve, concurrently: {wall:.0f} s (pause {PAUSE:g} s per code cell)")
    assert report == [], "\n".join(report)


def test_a_changed_verdict_and_a_worker_left_running_are_reported():
    def notebook(verdict_line: str, probe: dict) -> nbformat.NotebookNode:
        nb = nbformat.v4.new_notebook()
        check = nbformat.v4.new_code_cell("print(check())")
        check.outputs = [nbformat.v4.new_output("stream", name="stdout", text=verdict_line)]
        cell = nbformat.v4.new_code_cell(PROBE)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=json.dumps(probe))]
        nb.cells = [check, cell]
        return nb

    clean = {"worker_processes": [], "child_processes": [], "workers": []}
    stored = notebook("Exercise 1: not answered yet: set X.\n", clean)
    ran = notebook("Exercise 1: ✗ no\n", {**clean, "worker_processes": [4242]})
    assert problems_in(ran, stored, solution=False) == [
        "cell 0: exercise check says ✗, expected not answered",
        "left running: worker_processes [4242]",
    ]
    assert problems_in(stored, stored, solution=False) == []  # the same verdict: fine
    # A solution's check must pass, whatever its stored output says.
    assert problems_in(stored, stored, solution=True) == [
        "cell 0: exercise check says not answered, expected ✓"
    ]
