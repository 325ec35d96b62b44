"""Safe to re-run: each notebook, with every cell that starts a worker run twice, then
"Run All" again in the same kernel, leaves no worker, task or child process behind.

A learner re-runs cells and presses Run All without restarting the kernel; a worker
left behind keeps taking the next run's jobs (on a real Redis, with its old clock).
To check more notebooks, add them to RERUN_NOTEBOOKS.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
RERUN_NOTEBOOKS = sorted((ROOT / "notebooks").glob("0[0-5]_*.ipynb"))

# A cell that starts something that runs on after it: `worker.start()`, `w.start()`.
STARTS_A_WORKER = re.compile(r"^\s*\w+\.start\(\)", re.MULTILINE)

# What the kernel is running, as JSON: its asyncio tasks (by coroutine name), the
# minibull workers still running and its child processes.
PROBE = """
import asyncio as _asyncio, gc as _gc, json as _json, multiprocessing as _mp
import minibull as _minibull
_me = _asyncio.current_task()
_tasks = sorted(
    getattr(_t.get_coro(), "__qualname__", repr(_t.get_coro()))
    for _t in _asyncio.all_tasks() if _t is not _me and not _t.done()
)
_workers = [repr(_w) for _w in _gc.get_objects() if isinstance(_w, _minibull.Worker) and _w.running]
try:
    import psutil as _psutil
    _children = [" ".join(_p.cmdline()) for _p in _psutil.Process().children(recursive=True)]
except ImportError:
    _children = [_p.name for _p in _mp.active_children()]
print(_json.dumps({"tasks": _tasks, "workers": _workers, "children": _children}))
"""


def probe(client: NotebookClient) -> dict:
    cell = nbformat.v4.new_code_cell(PROBE)
    client.execute_cell(cell, 0)
    text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
    return json.loads(text.strip().splitlines()[-1])


def starts_a_worker(cell) -> bool:
    return cell.cell_type == "code" and bool(STARTS_A_WORKER.search(cell.source))


def test_the_rerun_list_is_the_first_six_notebooks():
    assert [path.name[:2] for path in RERUN_NOTEBOOKS] == ["00", "01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", RERUN_NOTEBOOKS, ids=lambda p: p.name)
def test_rerun_cells_and_run_all_twice_leave_nothing_running(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    with client.setup_kernel():
        before = probe(client)
        for run in (1, 2):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                client.execute_cell(cell, index)
                if run == 1 and starts_a_worker(cell):
                    client.execute_cell(cell, index)  # a learner runs it again
        after = probe(client)
    assert after["workers"] == [], f"{path.name}: workers left running: {after['workers']}"
    new_tasks = sorted(set(after["tasks"]) - set(before["tasks"]))
    assert new_tasks == [], f"{path.name}: tasks left running: {new_tasks}"
    assert after["children"] == before["children"], f"{path.name}: processes left"
