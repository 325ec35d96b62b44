"""Sandboxed processors: run each job in a child process (``Worker(..., sandboxed=True)``).

CPU-bound work in the worker's own process blocks its event loop, and with it
the lock renewals: the job looks stalled and runs again elsewhere. In a child
process the loop stays free. The child gets a copy of the job without a Redis
connection (so no ``update_progress`` there), and the processor must be
picklable: a module-level function (on Linux, functions defined in a notebook
work too, since children are forked).
"""

from __future__ import annotations

import asyncio
import inspect
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from .job import Job


def _run_in_child(processor: Any, job: Job) -> Any:
    result = processor(job)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def make_pool(size: int) -> ProcessPoolExecutor:
    """A pool of ``size`` child processes (forked where the platform allows)."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(max_workers=size, mp_context=context)


async def run_sandboxed(pool: ProcessPoolExecutor, processor: Any, job: Job) -> Any:
    """Run ``processor`` on a detached copy of ``job`` in ``pool``; return its result."""
    detached = replace(job, queue=None)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, _run_in_child, processor, detached)
