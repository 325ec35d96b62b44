"""Interrupting a notebook of 06-11 at its riskiest cell, or restarting its kernel, leaves
nothing running.

For each notebook a kernel runs the cells before the risky one, starts the risky cell,
and interrupts it (Kernel > Interrupt) while it runs: while worker processes start (06), while
worker B is frozen with SIGSTOP (07), while in-kernel workers run (08, 09, 11) or while a
minibull worker process is about to be killed for BullMQ to rescue (10, real Redis only).
Then every process the kernel started must be gone, and after the notebook's reset cell
no in-kernel worker may run. Last, a worker process is started and frozen, and the kernel
is restarted the hard way (killed, as Jupyter does when a kernel does not answer): the
process must die with it (minibull.processes: PR_SET_PDEATHSIG on Linux).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager

from minibull.connection import redis_url

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

#: notebook -> (a unique piece of its risky cell, seconds to let it run before the interrupt;
#: None: interrupt as soon as the cell has started a process, which a fixed time cannot
#: catch on every machine: 06's processes connect within 0.6 s to a real Redis, and 10's
#: had not started 0.3 s in on a loaded one)
RISKY = {
    "06_concurrency_and_scaling": ("processes = start_workers(3", None),
    "07_crashes_locks_and_stalled_jobs": ("job2 = await queue.add(", 0.8),
    "08_idempotency": ("crash_queue = ", 0.3),
    "09_operating_in_production": ('await queue.add_bulk(image_jobs(40, data={"seconds"', 0.4),
    "10_minibull_and_bullmq": ("rescued_by_bullmq = None", None),
    "11_flows_fan_out_fan_in": ("POLICIES = [None", 0.3),
}

#: Run in the kernel: the in-kernel workers and dashboards still running, as JSON.
PROBE = """
import json as _json
from minibull import Worker as _Worker
from minibull.processes import running_workers as _running
print(_json.dumps({
    "worker_processes": [w.pid for w in _running()],
    "workers": [repr(w) for w in list(globals().values()) if isinstance(w, _Worker) and w.running],
    "dashboard": bool(globals().get("dashboard") is not None and globals()["dashboard"].running),
}))
"""

FREEZE_A_WORKER = """
import os as _os, signal as _signal
from minibull.processes import SharedServer as _Server, WorkerProcess as _WorkerProcess
_server = _Server()
_frozen = _WorkerProcess("nb-interrupt-test", "minibull.examples:noop", url=_server.start()).start()
_os.kill(_frozen.pid, _signal.SIGSTOP)
print(_frozen.pid)
"""


def descendants(pid: int) -> set[int]:
    """Every live (not zombie) process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while (left := {p for p in pids if _not_zombie(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def first_processes(pid: int, before: set[int], timeout: float = 60.0) -> set[int]:
    """The processes below ``pid`` as soon as there is one not in ``before`` (polled every
    10 ms)."""
    deadline = time.monotonic() + timeout
    while not (found := descendants(pid) - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


class Kernel:
    """A python3 kernel in notebooks/ (on the backend of this test run) and its client."""

    def __init__(self) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(NOTEBOOKS), env=dict(os.environ))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    @property
    def pid(self) -> int:
        return self.km.provisioner.process.pid

    def run(self, code: str, timeout: float = 120) -> tuple[dict, str]:
        """Run ``code`` to the end; returns the reply's content and the stdout text."""
        return self.wait(self.kc.execute(code), timeout)

    def wait(self, msg_id: str, timeout: float = 120) -> tuple[dict, str]:
        text = []
        deadline = time.monotonic() + timeout
        while True:
            message = self.kc.get_iopub_msg(timeout=max(1, deadline - time.monotonic()))
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "stream" and message["content"]["name"] == "stdout":
                text.append(message["content"]["text"])
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                break
        while True:
            reply = self.kc.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"], "".join(text)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(RISKY))
def test_an_interrupt_and_a_restart_leave_nothing_running(name):
    if name.startswith("10_") and redis_url() is None:
        pytest.skip("notebook 10's risky cell runs only on a real Redis (its BullMQ section)")
    if name.startswith("10_"):
        pytest.importorskip("bullmq", reason="notebook 10's BullMQ section needs bullmq")
    needle, run_for = RISKY[name]
    cells = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells
    code = [cell.source for cell in cells if cell.cell_type == "code"]
    risky = next(i for i, source in enumerate(code) if needle in source)
    reset = next(
        i for i, source in enumerate(code) if "stop_all()" in source or "left_running" in source
    )
    kernel = Kernel()
    try:
        for source in code[:risky]:
            reply, _ = kernel.run(source)
            assert reply["status"] == "ok", reply
        before = descendants(kernel.pid)
        msg_id = kernel.kc.execute(code[risky])
        if run_for is None:
            started = first_processes(kernel.pid, before)
        else:
            time.sleep(run_for)
            started = descendants(kernel.pid)
        kernel.km.interrupt_kernel()
        reply, _ = kernel.wait(msg_id)
        if not name.startswith(("08_", "09_", "11_")):  # 08, 09, 11: workers in the kernel
            assert started, "the risky cell had started no process yet: interrupt it later"
        # Interrupted: KeyboardInterrupt, CancelledError (a top-level await), or an error
        # raised from one of those (asyncio.timeout turns a cancellation into TimeoutError).
        assert reply["status"] == "error", reply
        assert wait_gone(started) == set(), f"left after the interrupt: {started}"
        reply, _ = kernel.run(code[reset])  # the notebook's reset cell
        assert reply["status"] == "ok", reply
        reply, text = kernel.run(PROBE)
        assert json.loads(text) == {"worker_processes": [], "workers": [], "dashboard": False}
        assert descendants(kernel.pid) == set()

        # A restart that kills the kernel (no atexit): a frozen worker process dies with it.
        reply, text = kernel.run(FREEZE_A_WORKER)
        frozen = int(text)
        assert frozen in descendants(kernel.pid)
        kernel.km.restart_kernel(now=True)
        kernel.kc.wait_for_ready(timeout=60)
        assert wait_gone({frozen}) == set(), f"worker {frozen} outlived its kernel"
    finally:
        kernel.close()
