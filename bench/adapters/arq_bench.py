"""arq: ``ArqRedis.enqueue_job`` and ``Worker`` (``max_jobs`` is its concurrency).

arq has no bulk enqueue. Its worker reads job ids in batches and sleeps
``poll_delay`` (0.5 s by default, kept here) between batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker

from bench.adapters import IO_SECONDS
from bench.probe import job_done

BULK = False
IN_PROCESS_CONCURRENCY = True


async def noop(ctx: dict, i: int) -> None:
    job_done()


async def io(ctx: dict, i: int) -> None:
    await asyncio.sleep(IO_SECONDS)
    job_done()


class Producer:
    def __init__(self, url: str, queue: str, kind: str) -> None:
        self.url, self.queue_name, self.job = url, queue, kind
        self.pool = None

    async def add_one(self, i: int) -> None:
        if self.pool is None:
            self.pool = await create_pool(RedisSettings.from_dsn(self.url))
        await self.pool.enqueue_job(self.job, i, _queue_name=self.queue_name)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()


async def serve(url: str, queue: str, concurrency: int, kind: str, go: Callable[[], None]) -> None:
    worker = Worker(
        functions=[noop, io],
        redis_settings=RedisSettings.from_dsn(url),
        queue_name=queue,
        max_jobs=concurrency,
        handle_signals=False,
    )
    go()
    await worker.main()
