"""huey: calling a task enqueues it (no bulk); the consumer runs ``workers`` threads."""

from __future__ import annotations

import time
from collections.abc import Callable

from huey import RedisHuey

from bench.adapters import IO_SECONDS
from bench.probe import job_done

BULK = False
IN_PROCESS_CONCURRENCY = True


def noop(i: int) -> None:
    job_done()


def io(i: int) -> None:
    time.sleep(IO_SECONDS)
    job_done()


def make_huey(url: str, queue: str) -> tuple[RedisHuey, dict]:
    huey = RedisHuey(queue, url=url)
    return huey, {"noop": huey.task(name="noop")(noop), "io": huey.task(name="io")(io)}


class Producer:
    def __init__(self, url: str, queue: str, kind: str) -> None:
        self.huey, tasks = make_huey(url, queue)
        self.task = tasks[kind]

    def add_one(self, i: int) -> None:
        self.task(i)

    def close(self) -> None:
        pass


def serve(url: str, queue: str, concurrency: int, kind: str, go: Callable[[], None]) -> None:
    huey, _tasks = make_huey(url, queue)
    consumer = huey.create_consumer(workers=concurrency, worker_type="thread", periodic=False)
    go()
    consumer.run()
