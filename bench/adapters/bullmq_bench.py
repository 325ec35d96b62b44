"""bullmq, BullMQ's official Python port: ``Queue.add`` / ``addBulk`` and ``Worker``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bullmq import Queue, Worker

from bench.adapters import IO_SECONDS
from bench.probe import job_done

BULK = True
IN_PROCESS_CONCURRENCY = True


async def noop(job: object, token: str) -> None:
    job_done()


async def io(job: object, token: str) -> None:
    await asyncio.sleep(IO_SECONDS)
    job_done()


JOBS = {"noop": noop, "io": io}


class Producer:
    def __init__(self, url: str, queue: str, kind: str) -> None:
        self.queue = Queue(queue, {"connection": url})

    async def add_one(self, i: int) -> None:
        await self.queue.add("job", {"i": i})

    async def add_bulk(self, start: int, count: int) -> None:
        await self.queue.addBulk(
            [{"name": "job", "data": {"i": i}} for i in range(start, start + count)]
        )

    async def close(self) -> None:
        await self.queue.close()


async def serve(url: str, queue: str, concurrency: int, kind: str, go: Callable[[], None]) -> None:
    go()
    # bullmq's Worker starts running in its constructor.
    Worker(queue, JOBS[kind], {"connection": url, "concurrency": concurrency})
    await asyncio.Event().wait()
