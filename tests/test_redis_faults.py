"""Redis faults on a private redis-server: no acknowledged job lost, none stuck, workers alive.

Each test starts its own redis-server (a free port, data in tmp_path, killed at the end even
on failure), two in-process workers (concurrency 4, lock 2 s, stalled sweep every 1 s) and a
producer adding jobs one by one, then hits Redis with one fault mid-run (tests/faultlab.py
has the method, from ../shared/reviews/faults.md section 2). For each fault:

- every acknowledged add completes (none lost, none failed) and nothing stays in ``active``;
- duplicates stay within the at-least-once bound: a job runs again only when its lock
  expired while it ran, so at most one extra run per slot (workers x concurrency) per lock
  duration the fault lasted, plus one; an add is sent again by the client only when its
  reply was lost (``connection.py`` retries twice), so at most 2 extra copies per fault;
- every worker reported the fault as an ``error`` event;
- after-checks: one job per slot lasting 3 lock durations runs exactly once (every
  worker's lock renewal is alive) and a ghost job left in ``active`` with an expiring lock,
  as a SIGKILLed worker leaves it, is put back by a live stalled sweep and runs.

These tests start their own servers whatever the backend, so they run once in CI: in the
embedded pass (no ``MINIBULL_REDIS_URL``), and are skipped in the real-Redis pass.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator, Callable

import pytest

import minibull.connection
from minibull.connection import redis_url
from tests.conftest import wait_for
from tests.faultlab import (
    CONCURRENCY,
    LOCK_S,
    WORKERS,
    Outcome,
    PrivateRedis,
    redis_server_version,
    run_fault,
)

pytestmark = [
    pytest.mark.skipif(
        redis_url() is not None,
        reason="starts its own redis-servers whatever the backend: runs once, in the "
        "embedded pass of CI (MINIBULL_REDIS_URL unset)",
    ),
    pytest.mark.timeout(180),
]


@pytest.fixture
async def start_redis(tmp_path) -> AsyncIterator[Callable[..., PrivateRedis]]:
    """Factory: ``await start_redis(*options)`` starts a private redis-server; every one is
    killed at the end of the test, even a failing one."""
    if not (shutil.which("redis-server")):
        pytest.fail("redis-server is needed (apt-get install -y redis-server)")
    servers: list[PrivateRedis] = []

    async def start(*options: str) -> PrivateRedis:
        folder = tmp_path / f"redis-{len(servers)}"
        folder.mkdir()
        server = PrivateRedis(folder, *options)
        servers.append(server)
        await server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.kill()


def check(outcome: Outcome, error: str | None, *, add_episodes: int = 1) -> None:
    """The invariants every fault run must keep; ``error``: a regex every worker's error
    events must match at least once (None: checked by the caller)."""
    assert outcome.acked > 100, outcome.summary()
    assert outcome.lost == [], f"acknowledged jobs never completed: {outcome.lost[:20]}"
    assert outcome.failed == [], f"failed jobs: {outcome.failed[:20]}"
    assert outcome.stuck == 0, f"{outcome.stuck} jobs stuck in active"
    slots = WORKERS * CONCURRENCY
    outcome.duplicate_bound = slots * (1 + int(outcome.fault_s // LOCK_S))
    assert outcome.duplicate_runs <= outcome.duplicate_bound, outcome.summary()
    assert outcome.duplicate_adds <= 2 * add_episodes, outcome.summary()
    for number, errors in enumerate(outcome.errors if error else ()):
        assert any(re.search(error, text) for text in errors), (
            f"worker {number} reported no {error!r} error event; it reported {errors[:5]}"
        )
    assert outcome.long_job_runs == [1] * slots, (
        f"long jobs (3 lock durations) ran {outcome.long_job_runs} times: lock renewal is dead"
    )
    assert outcome.ghost_recovered_s is not None, "no live stalled sweep recovered the ghost job"
    assert outcome.workers_alive, "a worker's loop ended"


async def test_restart_with_aof_loses_no_acknowledged_add(start_redis):
    server = await start_redis("--appendonly", "yes", "--appendfsync", "everysec")

    async def restart() -> None:
        await server.shutdown()  # SHUTDOWN: the AOF is written before the server exits
        await asyncio.sleep(1)
        await server.start()  # same port, folder and options: the AOF is loaded

    outcome = await run_fault("restart (SHUTDOWN, 1 s down, AOF everysec)", server.url, restart)
    check(outcome, r"Connection|connect")


async def test_client_kill_repeated_during_a_drain(start_redis):
    server = await start_redis()
    kills = 0

    async def kill_clients() -> None:
        nonlocal kills
        async with server.admin() as admin:
            for _ in range(12):  # every 0.25 s for 3 s; SKIPME yes spares the admin client
                await admin.client_kill_filter(_type="normal")
                kills += 1
                await asyncio.sleep(0.25)

    outcome = await run_fault("CLIENT KILL TYPE normal, 12 times in 3 s", server.url, kill_clients)
    check(outcome, None, add_episodes=kills)
    if not all(outcome.errors):
        # redis-py's Retry (connection._reconnect_retry) reconnects and re-sends the command
        # without telling anyone: nothing is lost, but the fault is invisible to the worker.
        pytest.xfail("a killed connection that the client re-opens gives no error event")
    assert all(any("Connection" in text for text in errors) for errors in outcome.errors)


async def test_out_of_memory_then_memory_again(start_redis):
    server = await start_redis("--maxmemory-policy", "noeviction")

    async def out_of_memory() -> None:
        async with server.admin() as admin:
            await admin.config_set("maxmemory", 1)
            await asyncio.sleep(3)
            await admin.config_set("maxmemory", 0)

    outcome = await run_fault("OOM 3 s (maxmemory 1, noeviction)", server.url, out_of_memory)
    assert any("OutOfMemory" in text for text in outcome.refusals), outcome.refusals
    check(outcome, r"OutOfMemory|OOM")


async def test_debug_sleep_longer_than_the_socket_timeout(start_redis, monkeypatch):
    options = ("--enable-debug-command", "local") if redis_server_version() >= (7,) else ()
    server = await start_redis(*options)
    # Every minibull connection made from here on times out after 1 s (30 s by default).
    monkeypatch.setattr(minibull.connection, "SOCKET_TIMEOUT", 1.0)

    async def debug_sleep() -> None:
        async with server.admin() as admin:
            await admin.execute_command("DEBUG", "SLEEP", 5)

    outcome = await run_fault("DEBUG SLEEP 5 (socket timeout 1 s)", server.url, debug_sleep)
    check(outcome, r"Timeout")


async def test_readonly_while_the_server_is_a_replica(start_redis):
    server = await start_redis("--repl-diskless-sync-delay", "0")  # the replica syncs at once
    other = await start_redis("--replicaof", "127.0.0.1", str(server.port))

    async def synced() -> bool:
        async with other.admin() as admin:
            return (await admin.info("replication")).get("master_link_status") == "up"

    await wait_for(synced, 15)

    async def demote_and_promote() -> None:
        async with server.admin() as admin:
            # FAILOVER waits until the replica has every write, then swaps the roles: our
            # server becomes a replica of the other (READONLY to writes) and keeps its data.
            await admin.execute_command("FAILOVER", "TIMEOUT", 10_000)

            async def demoted() -> bool:
                return (await admin.info("replication"))["role"] == "slave"

            await wait_for(demoted, 15)
            await asyncio.sleep(3)
            await admin.execute_command("REPLICAOF", "NO", "ONE")

    outcome = await run_fault(
        "READONLY 3 s (FAILOVER, then REPLICAOF NO ONE)", server.url, demote_and_promote
    )
    check(outcome, r"READONLY|ReadOnly")


async def test_busy_script_from_another_client(start_redis):
    # BUSY replies start once a script has run for lua-time-limit ms (5 s by default).
    server = await start_redis("--lua-time-limit", "300")
    busy_loop = (
        "local t0 = redis.call('TIME'); local start = t0[1] * 1000000 + t0[2]; "
        "while true do local t = redis.call('TIME'); "
        "if t[1] * 1000000 + t[2] - start > tonumber(ARGV[1]) * 1000 then return 1 end end"
    )

    async def busy() -> None:
        async with server.admin() as admin:
            await admin.eval(busy_loop, 0, 3000)

    outcome = await run_fault("BUSY 3 s (a Lua busy loop, lua-time-limit 300 ms)", server.url, busy)
    check(outcome, r"BUSY")
