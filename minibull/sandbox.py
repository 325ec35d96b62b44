"""Sandboxed processors: run each job in a child process (``Worker(..., sandboxed=True)``).

CPU-bound work in the worker's own process blocks its event loop, and with it
the lock renewals: the job looks stalled and runs again elsewhere. In a child
process the loop stays free. The child gets a copy of the job without a Redis
connection (so no ``update_progress`` there), and the processor must be
picklable: a module-level function (on Linux, functions defined in a notebook
work too, since children are forked).

Each running job has a child of its own (a one-process pool), so a child that
dies (``os._exit``, a segfault, the OOM killer) takes only its own job with it:
that job fails with a reason saying so, and the next job gets a new child. This
charges the attempt, as BullMQ's sandbox does ("Unexpected exit code"): a job
that kills every child it runs in must not be retried for ever.

Children leave signals to the worker: they ignore SIGINT and SIGTERM (one Ctrl-C,
or a SIGTERM to the process group, reaches the worker, which closes gracefully),
and they drop asyncio's signal wake-up fd inherited through fork, through which a
signal sent to a child would look to the worker as if it had been sent to it.
"""

from __future__ import annotations

import asyncio
import inspect
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

from .job import Job


class ChildProcessDied(RuntimeError):
    """The child process running a sandboxed job died before it returned."""


def _run_in_child(processor: Any, job: Job) -> Any:
    result = processor(job)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _start_child() -> None:
    """In a new child: forget the parent's signal set-up and leave signals to it."""
    inherited = signal.set_wakeup_fd(-1)
    if inherited != -1:
        os.close(inherited)  # the parent's copy stays open
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def make_pool(size: int) -> ProcessPoolExecutor:
    """A pool of ``size`` child processes (forked where the platform allows)."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(max_workers=size, mp_context=context, initializer=_start_child)


def _kill(pool: ProcessPoolExecutor) -> None:
    """Stop a pool whose child may still be busy (its job was cancelled): SIGKILL the child,
    since it ignores SIGTERM and would otherwise keep the process from exiting.
    (``_processes`` is private; Python 3.14 has ``kill_workers()`` for this.)"""
    for child in list((getattr(pool, "_processes", None) or {}).values()):
        if child.is_alive():
            child.kill()
    pool.shutdown(wait=False, cancel_futures=True)


class Sandbox:
    """Child processes for sandboxed jobs: one per running job, reused, replaced if one dies."""

    def __init__(self) -> None:
        self._idle: list[ProcessPoolExecutor] = []
        self._busy: set[ProcessPoolExecutor] = set()

    async def run(self, processor: Any, job: Job) -> Any:
        """Run ``processor`` on a detached copy of ``job`` in a child; return its result."""
        pool = self._idle.pop() if self._idle else make_pool(1)
        self._busy.add(pool)
        detached = replace(job, queue=None)
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                pool, _run_in_child, processor, detached
            )
        except BrokenProcessPool:
            self._busy.discard(pool)
            pool.shutdown(wait=False)
            raise ChildProcessDied(
                f"the child process running job {job.id} died before it returned "
                "(os._exit(), a crash, or a kill such as the OOM killer's); "
                "the next job gets a new child"
            ) from None
        except BaseException:  # cancelled (a forced close): the child may still be working
            self._busy.discard(pool)
            _kill(pool)
            raise
        self._busy.discard(pool)
        self._idle.append(pool)
        return result

    def shutdown(self) -> None:
        """Let idle children exit and kill busy ones (the worker has given up on their jobs)."""
        for pool in self._idle:
            pool.shutdown(wait=False, cancel_futures=True)
        for pool in self._busy:
            _kill(pool)
        self._idle.clear()
        self._busy.clear()
