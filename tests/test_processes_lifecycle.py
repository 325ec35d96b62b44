"""Worker processes never outlive the Python process that started them, even stopped ones.

A notebook that is interrupted or whose kernel is restarted must leave no worker behind
(notebooks 06 and 07 start them; 07 freezes one with SIGSTOP).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from minibull.processes import WorkerProcess, running_workers, stop_all

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def wait_ready(worker: WorkerProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while "minibull worker: queue" not in worker.log():
        assert time.monotonic() < deadline, worker.log()
        assert worker.running, worker.log()
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("frozen", [False, True], ids=["running", "sigstopped"])
def test_a_worker_dies_with_its_parent(shared_redis_url, prefix, frozen):
    # The parent stands for a Jupyter kernel that is restarted (SIGKILLed): no atexit runs.
    parent_code = textwrap.dedent(
        f"""
        import os, signal, sys, time
        from minibull.processes import WorkerProcess
        worker = WorkerProcess("q", "minibull.examples:whoami", url={shared_redis_url!r},
                               prefix={prefix!r}).start()
        while "minibull worker: queue" not in worker.log():
            time.sleep(0.05)
        if {frozen!r}:
            os.kill(worker.pid, signal.SIGSTOP)
        print(worker.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE)
    try:
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.kill()
        parent.wait(10)
        assert wait_dead(child), f"worker {child} outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()


def test_stop_all_resumes_a_stopped_worker_and_lets_it_close(shared_redis_url, prefix):
    worker = WorkerProcess("q", "minibull.examples:whoami", url=shared_redis_url, prefix=prefix)
    worker.start()
    try:
        wait_ready(worker)
        os.kill(worker.pid, signal.SIGSTOP)
        assert worker in running_workers()
        assert stop_all(grace=10) == [worker.pid]
        # Exit code 0: the SIGTERM reached it (it was resumed) and it closed gracefully,
        # instead of waiting out the grace period and being killed (-9).
        assert worker.process.returncode == 0, worker.log()
        assert "closed" in worker.log()
        assert running_workers() == []
        assert stop_all() == []  # nothing left: a second call is a no-op
    finally:
        if worker.running:
            worker.kill()


def test_stop_sigterms_a_stopped_worker(shared_redis_url, prefix):
    worker = WorkerProcess("q", "minibull.examples:whoami", url=shared_redis_url, prefix=prefix)
    worker.start()
    try:
        wait_ready(worker)
        os.kill(worker.pid, signal.SIGSTOP)
        assert worker.stop(timeout=10) == 0, worker.log()
    finally:
        if worker.running:
            worker.kill()


def test_the_child_runs_the_minibull_worker_command(shared_redis_url, prefix):
    worker = WorkerProcess("q", "minibull.examples:noop", url=shared_redis_url, prefix=prefix)
    assert worker.command[1:4] == ["-m", "minibull", "worker"]
    with worker:
        wait_ready(worker)
        with open(f"/proc/{worker.pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().split(b"\0")
        assert argv[argv.index(str(os.getpid()).encode()) + 1 :][:2] == [b"worker", b"q"]


def test_an_interrupt_is_recognised_through_the_errors_it_caused():
    from asyncio import CancelledError

    from minibull.processes import _interrupted

    def raised_from(cause: BaseException) -> BaseException:
        try:
            try:
                raise cause
            except BaseException as exc:
                raise TimeoutError("wrapped") from exc
        except TimeoutError as wrapped:
            return wrapped

    assert _interrupted(KeyboardInterrupt())
    assert _interrupted(CancelledError())
    assert _interrupted(raised_from(CancelledError()))  # asyncio.timeout's way
    assert not _interrupted(raised_from(ValueError("a bug in the cell")))
    assert not _interrupted(ValueError("a bug in the cell"))
    assert not _interrupted(None)
