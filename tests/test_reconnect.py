"""A connection that redis-py re-opens and a command it sends again are reported (issue #12).

``connect()`` gives redis-py a Retry that reconnects after a ConnectionError/TimeoutError and
tries again; without a report, a server that drops the worker's connections (``CLIENT KILL``)
left no trace. The server tests run on a private redis-server (the embedded backend has no
connections to kill), so they need ``redis-server`` on PATH, whatever the backend.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

import minibull
from minibull.connection import ReportingRetry, connect, on_reconnect
from tests.conftest import wait_for
from tests.faultlab import PrivateRedis, Start, private_servers, redis_server_version

pytestmark = pytest.mark.timeout(60)


def failing(times: int) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    """A command that fails ``times`` times with a ConnectionError, then answers "OK"."""
    calls: list[int] = []

    async def do() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise RedisConnectionError(f"try {len(calls)} broke")
        return "OK"

    return calls, do


async def disconnect(error: Exception, *failure_count: int) -> None:
    """redis-py's ``fail`` callback when it retries: it closes the connection."""


async def test_each_retried_try_is_told_once_and_the_last_is_raised():
    retry = ReportingRetry(NoBackoff(), 2)
    told: list[str] = []
    retry.listeners.append(lambda error: told.append(str(error)))
    _, do = failing(2)
    assert await retry.call_with_retry(do, disconnect) == "OK"
    assert told == ["try 1 broke", "try 2 broke"]
    told.clear()
    _, do = failing(3)
    with pytest.raises(RedisConnectionError, match="try 3 broke"):
        await retry.call_with_retry(do, disconnect)
    assert told == ["try 1 broke", "try 2 broke"]  # the 3rd is raised, the caller reports it


async def test_a_try_redis_py_does_not_retry_is_not_told():
    """redis-py 5 retries a command only for errors in ``retry_on_error``: its ``fail``
    raises, the error goes to the caller, and nothing is told."""
    retry = ReportingRetry(NoBackoff(), 2)
    told: list[Exception] = []
    retry.listeners.append(told.append)

    async def fail_raises(error: Exception) -> None:
        raise error

    calls, do = failing(1)
    with pytest.raises(RedisConnectionError):
        await retry.call_with_retry(do, fail_raises)
    assert (len(calls), told) == (1, [])


async def test_listeners_may_be_async_or_fail_and_are_shared_by_copies(caplog):
    retry = ReportingRetry(NoBackoff(), 1)
    told: list[str] = []

    async def later(error: Exception) -> None:
        told.append(f"async: {error}")

    def broken(error: Exception) -> None:
        raise RuntimeError("a broken listener")

    copied = copy.deepcopy(retry)  # what redis-py does for the client and each connection
    retry.listeners += [broken, later]
    _, do = failing(1)
    with caplog.at_level(logging.ERROR, "minibull.connection"):
        assert await copied.call_with_retry(do, disconnect) == "OK"
    assert told == ["async: try 1 broke"]
    assert "a reconnect listener failed" in caplog.text


async def test_a_listeners_own_retried_call_is_not_told_again():
    retry = ReportingRetry(NoBackoff(), 1)
    told: list[str] = []

    async def listener(error: Exception) -> None:
        told.append(str(error))
        _, do = failing(1)
        await retry.call_with_retry(do, disconnect)  # e.g. an error listener writing to Redis

    retry.listeners.append(listener)
    _, do = failing(1)
    assert await retry.call_with_retry(do, disconnect) == "OK"
    assert told == ["try 1 broke"]


async def test_on_reconnect_does_nothing_for_a_client_minibull_did_not_make():
    client = minibull.embedded.embedded_client()
    try:
        stop = on_reconnect(client, print)
        stop()
    finally:
        await client.aclose()


@pytest.fixture
async def server(tmp_path) -> AsyncIterator[PrivateRedis]:
    """A private redis-server, killed at the end of the test even when it fails."""
    try:
        redis_server_version()
    except OSError:
        pytest.fail("redis-server is needed (apt-get install -y redis-server)")
    start: Start
    async with private_servers(tmp_path) as start:
        yield await start()


async def blocked_clients(server: PrivateRedis) -> int:
    """How many clients wait in a blocking command (BZPOPMIN, XREAD BLOCK) right now."""
    async with server.admin() as admin:
        return int((await admin.info("clients"))["blocked_clients"])


async def kill_connections(server: PrivateRedis) -> None:
    """``CLIENT KILL TYPE normal`` once a client is blocked (the admin spares itself)."""
    await wait_for(lambda: blocked_clients(server))
    async with server.admin() as admin:
        assert await admin.client_kill_filter(_type="normal") >= 1


def connection_errors(errors: list[BaseException]) -> list[str]:
    return [str(exc) for exc in errors if isinstance(exc, RedisConnectionError)]


async def test_worker_reports_a_killed_connection_and_goes_on(server):
    ran: list[str] = []
    worker = minibull.Worker("q", lambda job: ran.append(job.id), server.url, drain_delay=5)
    errors: list[BaseException] = []
    worker.on("error", errors.append)
    async with minibull.Queue("q", server.url) as queue, worker:
        await kill_connections(server)  # the worker waits in BZPOPMIN
        await wait_for(lambda: connection_errors(errors))
        assert "sent again on a new connection" in connection_errors(errors)[0]
        job = await queue.add("after", {})
        await wait_for(lambda: ran == [job.id])
    # One report per broken connection the worker used again: its BZPOPMIN's, and maybe a
    # pooled one of the lock renewal or stalled sweep (killed too). Nothing else went wrong.
    assert errors and all("sent again on a new connection" in str(e) for e in errors), errors


async def test_queue_events_report_a_killed_connection_and_go_on(server):
    errors: list[BaseException] = []
    seen: list[str] = []
    async with (
        minibull.Queue("q", server.url) as queue,
        minibull.QueueEvents("q", server.url, block=5) as events,
    ):
        events.on("error", errors.append)
        events.on("waiting", lambda event: seen.append(event["jobId"]))
        await kill_connections(server)  # QueueEvents waits in XREAD BLOCK
        await wait_for(lambda: connection_errors(errors))
        job = await queue.add("after", {})
        await wait_for(lambda: seen == [job.id])
    assert len(errors) == 1, errors


async def test_worker_on_a_shared_client_stops_listening_when_closed(server):
    client = connect(server.url)
    still_listening: list[Exception] = []
    on_reconnect(client, still_listening.append)
    try:
        worker = minibull.Worker("q", lambda job: None, client, drain_delay=5)
        errors: list[BaseException] = []
        worker.on("error", errors.append)
        async with worker:
            await kill_connections(server)
            await wait_for(lambda: connection_errors(errors))
        reported, told = len(errors), len(still_listening)
        # A command in flight when its connection is killed is sent again, and told.
        blocked = asyncio.create_task(client.blpop(["nothing"], timeout=1))
        await kill_connections(server)
        assert await blocked is None
        assert len(still_listening) > told
        assert len(errors) == reported  # the closed worker no longer listens
    finally:
        await client.aclose()
