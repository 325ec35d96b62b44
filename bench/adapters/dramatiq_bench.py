"""dramatiq (Redis broker): ``actor.send`` (no bulk) and ``Worker`` with ``worker_threads``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.adapters import IO_SECONDS
from bench.probe import job_done

BULK = False
IN_PROCESS_CONCURRENCY = True


def noop(i: int) -> None:
    job_done()


def io(i: int) -> None:
    time.sleep(IO_SECONDS)
    job_done()


def make_broker(url: str, queue: str) -> tuple[RedisBroker, dict]:
    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)
    actors = {
        name: dramatiq.actor(fn, actor_name=name, queue_name=queue, broker=broker, max_retries=0)
        for name, fn in (("noop", noop), ("io", io))
    }
    return broker, actors


class Producer:
    def __init__(self, url: str, queue: str, kind: str) -> None:
        self.broker, actors = make_broker(url, queue)
        self.actor = actors[kind]

    def add_one(self, i: int) -> None:
        self.actor.send(i)

    def close(self) -> None:
        self.broker.close()


def serve(url: str, queue: str, concurrency: int, kind: str, go: Callable[[], None]) -> None:
    broker, _actors = make_broker(url, queue)
    worker = dramatiq.Worker(broker, worker_threads=concurrency)
    go()
    worker.start()
    threading.Event().wait()
