"""Fixtures: every test gets its own key prefix on the backend under test, cleaned before and after.

The backend is the embedded fakeredis server, or the real Redis named by
MINIBULL_REDIS_URL (``make test`` runs both in CI).
"""

from __future__ import annotations

import asyncio
import gc
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

import minibull
from minibull.connection import connect, redis_url
from minibull.processes import SharedServer

#: A fixed start for virtual clocks, so timestamps in assertions are readable.
START = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
START_MS = int(START.timestamp() * 1000)


def backend_name() -> str:
    return "real redis" if redis_url() else "embedded fakeredis"


def pytest_report_header(config: pytest.Config) -> str:
    return f"minibull backend: {backend_name()} ({redis_url() or 'in-process'})"


async def delete_prefix(prefix: str) -> None:
    client = connect()
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(autouse=True)
async def unread_task_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Fails the test when a background task died with an exception nobody read.

    asyncio only logs "Task exception was never retrieved" (a log line, not a warning, so
    ``filterwarnings = error`` misses it); this handler records it and the test fails.
    """
    loop = asyncio.get_running_loop()
    unread: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()

    def record(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "never retrieved" in context.get("message", ""):
            unread.append(context)
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(record)
    yield unread
    gc.collect()  # a finished task reports an unread exception when it is collected
    await asyncio.sleep(0)
    loop.set_exception_handler(previous)
    if unread:
        lines = [
            f"{c.get('message')}: {c.get('exception')!r} in {c.get('future')!r}" for c in unread
        ]
        pytest.fail("a background task died with an exception nobody read:\n" + "\n".join(lines))


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own (instead of ``bull``)."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    await delete_prefix(name)
    yield name
    await delete_prefix(name)


@pytest.fixture
def shared_redis_url() -> Iterator[str]:
    """A Redis URL other processes can reach: the real Redis, or fakeredis over TCP."""
    if redis_url():
        yield redis_url()
        return
    with SharedServer() as url:
        yield url


@pytest.fixture
def clock() -> minibull.VirtualClock:
    return minibull.VirtualClock(START)


@pytest.fixture
async def queue(prefix: str, clock: minibull.VirtualClock) -> AsyncIterator[minibull.Queue]:
    """Queue ``q`` on a virtual clock."""
    q = minibull.Queue("q", prefix=prefix, clock=clock)
    yield q
    await q.close()


@pytest.fixture
async def make_worker(
    prefix: str, clock: minibull.VirtualClock
) -> AsyncIterator[Callable[..., minibull.Worker]]:
    """Factory: ``make_worker(processor, **options)`` starts a worker on queue ``q``; all are
    closed (forcibly) at the end of the test."""
    workers: list[minibull.Worker] = []

    def make(processor: Callable[..., Any], start: bool = True, **options: Any) -> minibull.Worker:
        options.setdefault("prefix", prefix)
        options.setdefault("clock", clock)
        worker = minibull.Worker(options.pop("name", "q"), processor, **options)
        workers.append(worker)
        if start:
            worker.start()
        return worker

    yield make
    results = await asyncio.gather(*(w.close(force=True) for w in workers), return_exceptions=True)
    crashed = [f"{w!r}: {r!r}" for w, r in zip(workers, results, strict=True) if r is not None]
    if crashed:
        pytest.fail("a worker's run ended in an exception:\n" + "\n".join(crashed))


async def states_of(queue: minibull.Queue) -> dict[str, list[str]]:
    """Every job id by state, read straight from Redis."""
    result = {}
    for state in minibull.STATES:
        result[state] = sorted(job.id for job in await queue.get_jobs(state))
    return result


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll ``predicate`` (sync or async) until true, failing the test after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


def record_commands(
    queue: minibull.Queue | minibull.SyncQueue, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[Any, ...]]:
    """Every command ``queue`` (async or sync) sends from now on: its client's, and its
    script calls, which go through ``queue.scripts.lane``; a list that fills as they go."""
    calls: list[tuple[Any, ...]] = []
    for owner in (queue.redis, queue.scripts.lane):
        original = owner.execute_command if owner is queue.redis else owner.execute

        def recording(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            calls.append(args)
            return _original(*args, **kwargs)

        name = "execute_command" if owner is queue.redis else "execute"
        monkeypatch.setattr(owner, name, recording)
    return calls
