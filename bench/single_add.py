"""One add at a time, against its floor (issue #13): p50 of ``await Queue.add`` and of
``SyncQueue.add`` next to a bare EVALSHA on a client with the same settings.

    .venv/bin/python bench/single_add.py [--url redis://127.0.0.1:6379/0] [--calls 2000]

Measured on a real Redis (``--url``, else ``MINIBULL_REDIS_URL``, else 127.0.0.1:6379/0)
under a prefix of its own, deleted at the end. Each measure times ``--calls`` calls one by
one (after a warm-up); the measures take turns, ``--rounds`` times, and each figure is the
median of its rounds' p50s, so a busy moment of the machine touches all of them alike.

- async floor: ``connect(url)`` (the client every Queue and Worker makes) running EVALSHA
  of ``return 1``; the issue's target is ``Queue.add`` within 1.15x of it.
- sync floor: ``connect_sync(url)`` running EVALSHA of the addJob script with arguments
  built once; the target is ``SyncQueue.add`` within 25 µs of it.
- for reference: the same trivial EVALSHA on redis-py's own connection class with the
  same settings (its ``asyncio.wait_for`` per write) and on a client with no timeout; the
  addJob EVALSHA with prepared arguments on ``connect(url)`` (what ``Queue.add`` costs
  beyond it is minibull's Python) and a sync trivial EVALSHA (what the script costs).

Runs with an older minibull too (``PYTHONPATH=<old checkout>``): measures it lacks are left out.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis
from redis.asyncio import Redis

import minibull
import minibull.connection as connection
from minibull.options import build_job
from minibull.scripts import add_job_args, script_source

TRIVIAL = "return 1"
DATA = {"to": "ada@example.com", "template": "welcome"}

AsyncCall = Callable[[], Awaitable[Any]]
SyncCall = Callable[[], Any]


def p50_us(timings_ns: list[int]) -> float:
    return statistics.median(timings_ns) / 1000


async def time_async(call: AsyncCall, calls: int) -> float:
    timings = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        started = clock()
        await call()
        timings.append(clock() - started)
    return p50_us(timings)


def time_sync(call: SyncCall, calls: int) -> float:
    timings = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        started = clock()
        call()
        timings.append(clock() - started)
    return p50_us(timings)


def stock_settings_client(url: str) -> Redis:
    """``connect(url)``'s settings on redis-py's own connection class (before issue #13)."""
    return Redis.from_url(
        url,
        decode_responses=True,
        retry=connection._reconnect_retry(),
        retry_on_error=list(connection.RETRIED_ERRORS),
        socket_timeout=connection.SOCKET_TIMEOUT,
        socket_keepalive=True,
    )


async def measure(url: str, calls: int, rounds: int) -> dict[str, float]:
    prefix = f"bench-single-{uuid.uuid4().hex[:8]}"
    ours, stock = connection.connect(url), stock_settings_client(url)
    bare = Redis.from_url(url, decode_responses=True)
    queue = minibull.Queue("single", ours, prefix=prefix)
    trivial = await ours.script_load(TRIVIAL)
    measures: dict[str, Callable[[], Awaitable[float]]] = {
        "async floor: EVALSHA 'return 1', connect()": lambda: time_async(
            lambda: ours.evalsha(trivial, 0), calls
        ),
        "await Queue.add": lambda: time_async(lambda: queue.add("email", DATA), calls),
        "EVALSHA 'return 1', redis-py's Connection + socket_timeout": lambda: time_async(
            lambda: stock.evalsha(trivial, 0), calls
        ),
        "EVALSHA 'return 1', no socket_timeout": lambda: time_async(
            lambda: bare.evalsha(trivial, 0), calls
        ),
    }
    keys, argv = add_job_args(queue.keys, 0, [build_job("email", DATA)])
    add_sha = await ours.script_load(script_source("addJob"))
    measures["EVALSHA addJob, prepared arguments, connect()"] = lambda: time_async(
        lambda: ours.evalsha(add_sha, len(keys), *keys, *argv), calls
    )
    sync_queue = sync_floor = None
    if hasattr(minibull, "SyncQueue"):
        sync_client = connection.connect_sync(url)
        sync_queue = minibull.SyncQueue("single-sync", sync_client, prefix=prefix)
        sync_keys, sync_argv = add_job_args(sync_queue.keys, 0, [build_job("email", DATA)])
        sync_client.script_load(script_source("addJob"))

        def sync_floor() -> Any:
            return sync_client.evalsha(add_sha, len(sync_keys), *sync_keys, *sync_argv)

        measures["sync EVALSHA 'return 1', connect_sync()"] = lambda: _in_sync(
            lambda: sync_client.evalsha(trivial, 0), calls
        )

        measures["sync floor: EVALSHA addJob, prepared arguments, connect_sync()"] = lambda: (
            _in_sync(sync_floor, calls)
        )
        measures["SyncQueue.add"] = lambda: _in_sync(lambda: sync_queue.add("email", DATA), calls)
    results: dict[str, list[float]] = {name: [] for name in measures}
    try:
        for run in measures.values():  # warm-up: scripts loaded, connections open
            await run()
        for round_number in range(rounds):
            names = list(measures)
            names = names[round_number % len(names) :] + names[: round_number % len(names)]
            for name in names:
                gc.collect()
                results[name].append(await measures[name]())
    finally:
        await queue.close()
        for client in (ours, stock, bare):
            await client.aclose()
        if sync_queue is not None:
            sync_queue.close()
        await _delete_prefix(url, prefix)
    return {name: statistics.median(values) for name, values in results.items()}


async def _in_sync(call: SyncCall, calls: int) -> float:
    return time_sync(call, calls)


async def _delete_prefix(url: str, prefix: str) -> None:
    client = Redis.from_url(url, decode_responses=True)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for first in range(0, len(keys), 1000):
            await client.unlink(*keys[first : first + 1000])
    finally:
        await client.aclose()


def report(figures: dict[str, float]) -> None:
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:7.1f} µs")
    async_floor = figures["async floor: EVALSHA 'return 1', connect()"]
    add = figures["await Queue.add"]
    print(f"Queue.add / async floor: {add / async_floor:.2f}x (target <= 1.15x)")
    sync_floor = figures.get("sync floor: EVALSHA addJob, prepared arguments, connect_sync()")
    if sync_floor is not None:
        sync_add = figures["SyncQueue.add"]
        print(f"SyncQueue.add - sync floor: {sync_add - sync_floor:+.1f} µs (target <= 25 µs)")
    print(f"(python {sys.version.split()[0]}, redis-py {redis.__version__})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=connection.redis_url() or "redis://127.0.0.1:6379/0")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per measure")
    parser.add_argument("--rounds", type=int, default=5, help="turns of every measure")
    args = parser.parse_args()
    report(asyncio.run(measure(args.url, args.calls, args.rounds)))


if __name__ == "__main__":
    main()
