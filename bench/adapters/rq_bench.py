"""rq: ``Queue.enqueue`` / ``enqueue_many`` and ``SimpleWorker``.

rq's default ``Worker`` forks a child process for every job; ``SimpleWorker``
runs jobs in the worker process itself, which is what measures the queue rather
than ``fork()``. One rq worker runs one job at a time, so "concurrency 10" does
not exist here, and two worker processes run two jobs at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis import Redis
from rq import Queue, SimpleWorker

from bench.adapters import IO_SECONDS
from bench.probe import job_done

BULK = True
IN_PROCESS_CONCURRENCY = False


def noop(i: int) -> None:
    job_done()


def io(i: int) -> None:
    time.sleep(IO_SECONDS)
    job_done()


JOBS = {"noop": noop, "io": io}


class Producer:
    def __init__(self, url: str, queue: str, kind: str) -> None:
        self.redis = Redis.from_url(url)
        self.queue = Queue(queue, connection=self.redis)
        self.job = JOBS[kind]

    def add_one(self, i: int) -> None:
        self.queue.enqueue(self.job, i)

    def add_bulk(self, start: int, count: int) -> None:
        self.queue.enqueue_many(
            [Queue.prepare_data(self.job, (i,)) for i in range(start, start + count)]
        )

    def close(self) -> None:
        self.redis.close()


def serve(url: str, queue: str, concurrency: int, kind: str, go: Callable[[], None]) -> None:
    if concurrency != 1:
        raise ValueError("an rq worker runs one job at a time")
    redis = Redis.from_url(url)
    worker = SimpleWorker([Queue(queue, connection=redis)], connection=redis)
    go()
    # rq logs every job at INFO by default; every library here runs at WARNING.
    worker.work(logging_level="WARNING")
