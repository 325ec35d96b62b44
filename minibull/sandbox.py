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

A cancelled job (``worker.cancel_job``, or its ``timeout``) kills its child. A processor
that takes a second parameter gets a ``CancelSignal`` in the child too: it is set first, and
the child has ``CANCEL_GRACE`` seconds to stop on it (and be reused) before it is killed.

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

from .cancellation import CancelSignal
from .job import Job

#: Seconds a cancelled job's child may take to stop on its CancelSignal before it is killed.
CANCEL_GRACE = 1.0

#: In a child: the event its parent sets to cancel the job it runs (see ``make_pool``).
_cancelled: Any = None


class ChildProcessDied(RuntimeError):
    """The child process running a sandboxed job died before it returned."""


def _run_in_child(processor: Any, job: Job, with_signal: bool = False) -> Any:
    result = processor(job, _child_signal()) if with_signal else processor(job)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _child_signal() -> CancelSignal:
    """A CancelSignal that reads the event the parent sets (its reason stays None here)."""
    signal_ = CancelSignal()
    if _cancelled is not None:
        signal_._event = _cancelled
    return signal_


def _start_child(cancelled: Any = None) -> None:
    """In a new child: keep the parent's cancel event; forget the parent's signal set-up and
    leave signals to it."""
    global _cancelled
    _cancelled = cancelled
    inherited = signal.set_wakeup_fd(-1)
    if inherited != -1:
        os.close(inherited)  # the parent's copy stays open
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def make_pool(size: int) -> tuple[ProcessPoolExecutor, Any]:
    """A pool of ``size`` child processes (forked where the platform allows), and the event
    that cancels the job its child runs (inherited: events cannot be sent with a job)."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    cancelled = context.Event()
    pool = ProcessPoolExecutor(
        max_workers=size, mp_context=context, initializer=_start_child, initargs=(cancelled,)
    )
    return pool, cancelled


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
        self._cancel_events: dict[ProcessPoolExecutor, Any] = {}

    async def run(self, processor: Any, job: Job, signal_: CancelSignal | None = None) -> Any:
        """Run ``processor`` on a detached copy of ``job`` in a child; return its result.
        With ``signal_``, the processor gets it as its second argument (see CANCEL_GRACE)."""
        pool = self._idle.pop() if self._idle else self._new_pool()
        self._busy.add(pool)
        cancelled = self._cancel_events[pool]
        cancelled.clear()
        detached = replace(job, queue=None)
        running = pool.submit(_run_in_child, processor, detached, signal_ is not None)
        try:
            result = await asyncio.wrap_future(running)
        except BrokenProcessPool:
            self._busy.discard(pool)
            self._cancel_events.pop(pool, None)
            pool.shutdown(wait=False)
            raise ChildProcessDied(
                f"the child process running job {job.id} died before it returned "
                "(os._exit(), a crash, or a kill such as the OOM killer's); "
                "the next job gets a new child"
            ) from None
        except BaseException:  # cancelled: the child may still be working
            if signal_ is not None and signal_.cancelled:
                await _let_it_stop(running, cancelled)
            self._busy.discard(pool)
            self._cancel_events.pop(pool, None)
            _kill(pool)
            raise
        self._busy.discard(pool)
        self._idle.append(pool)
        return result

    def _new_pool(self) -> ProcessPoolExecutor:
        pool, cancelled = make_pool(1)
        self._cancel_events[pool] = cancelled
        return pool

    def shutdown(self) -> None:
        """Let idle children exit and kill busy ones (the worker has given up on their jobs)."""
        for pool in self._idle:
            pool.shutdown(wait=False, cancel_futures=True)
        for pool in self._busy:
            _kill(pool)
        self._idle.clear()
        self._busy.clear()
        self._cancel_events.clear()


async def _let_it_stop(running: Any, cancelled: Any) -> None:
    """Tell the child its job was cancelled and give it ``CANCEL_GRACE`` seconds to stop."""
    cancelled.set()
    stopped = asyncio.wrap_future(running)
    await asyncio.wait({stopped}, timeout=CANCEL_GRACE)
    if stopped.done() and not stopped.cancelled():
        stopped.exception()  # read, not raised: the attempt fails as cancelled anyway
    else:
        stopped.cancel()
