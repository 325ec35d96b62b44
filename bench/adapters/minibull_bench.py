"""minibull: ``Queue.add`` / ``add_bulk`` and ``Worker`` (its CLI worker for several processes)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bench.adapters import IO_SECONDS
from bench.probe import job_done, start_probe
from minibull import Queue, Worker

BULK = True
IN_PROCESS_CONCURRENCY = True

# `minibull worker --processor bench.adapters.minibull_bench:noop` imports this module:
# that is where a CLI worker process starts counting.
start_probe()


async def noop(job: object) -> None:
    job_done()


async def io(job: object) -> None:
    await asyncio.sleep(IO_SECONDS)
    job_done()


JOBS = {"noop": noop, "io": io}


class Producer:
    def __init__(self, url: str | None, queue: str, kind: str) -> None:
        self.queue = Queue(queue, url)

    async def add_one(self, i: int) -> None:
        await self.queue.add("job", {"i": i})

    async def add_bulk(self, start: int, count: int) -> None:
        await self.queue.add_bulk(
            [{"name": "job", "data": {"i": i}} for i in range(start, start + count)]
        )

    async def close(self) -> None:
        await self.queue.close()


def serving(jobs: dict[str, Callable[..., Any]]) -> Callable[..., Awaitable[None]]:
    """The adapter's ``serve``: one ``Worker`` running ``jobs[kind]`` (minibull_threads
    makes its own with plain-function jobs)."""

    async def serve(
        url: str | None, queue: str, concurrency: int, kind: str, go: Callable[[], None]
    ) -> None:
        worker = Worker(queue, jobs[kind], url, concurrency=concurrency)
        go()
        await worker.run()

    return serve


serve = serving(JOBS)
