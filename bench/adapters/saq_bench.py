"""saq: ``Queue.enqueue`` and ``Worker`` (saq has no bulk enqueue)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from saq import Queue, Worker

from bench.adapters import IO_SECONDS
from bench.probe import job_done

BULK = False
IN_PROCESS_CONCURRENCY = True


async def noop(ctx: dict, *, i: int) -> None:
    job_done()


async def io(ctx: dict, *, i: int) -> None:
    await asyncio.sleep(IO_SECONDS)
    job_done()


class Producer:
    def __init__(self, url: str, queue: str, kind: str) -> None:
        self.queue = Queue.from_url(url, name=queue)
        self.job = kind

    async def add_one(self, i: int) -> None:
        await self.queue.enqueue(self.job, i=i)

    async def close(self) -> None:
        await self.queue.disconnect()


async def serve(url: str, queue: str, concurrency: int, kind: str, go: Callable[[], None]) -> None:
    worker = Worker(Queue.from_url(url, name=queue), functions=[noop, io], concurrency=concurrency)
    go()
    await worker.start()
