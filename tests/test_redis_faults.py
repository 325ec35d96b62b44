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

from collections.abc import AsyncIterator

import pytest

from minibull.connection import redis_url
from tests.faultlab import FAULTS, Start, private_servers, problems, redis_server_version, run_plan

pytestmark = [
    pytest.mark.skipif(
        redis_url() is not None,
        reason="starts its own redis-servers whatever the backend: runs once, in the "
        "embedded pass of CI (MINIBULL_REDIS_URL unset)",
    ),
    pytest.mark.timeout(180),
]


@pytest.fixture
async def start_redis(tmp_path) -> AsyncIterator[Start]:
    """``await start_redis(*options)`` starts a private redis-server; every one is killed
    at the end of the test, even a failing one."""
    try:
        redis_server_version()
    except OSError:
        pytest.fail("redis-server is needed (apt-get install -y redis-server)")
    async with private_servers(tmp_path) as start:
        yield start


async def test_restart_with_aof_loses_no_acknowledged_add(start_redis):
    outcome = await run_plan("restart", start_redis)
    assert problems(outcome, FAULTS["restart"].error) == []


async def test_client_kill_repeated_during_a_drain(start_redis):
    """redis-py re-sends the killed command on a new connection (nothing is lost); each
    retried try reaches the worker as an ``error`` event (connection.on_reconnect)."""
    outcome = await run_plan("client_kill", start_redis)
    assert problems(outcome, FAULTS["client_kill"].error) == []


async def test_out_of_memory_then_memory_again(start_redis):
    outcome = await run_plan("oom", start_redis)
    assert any("OutOfMemory" in text for text in outcome.refusals), outcome.refusals
    assert problems(outcome, FAULTS["oom"].error) == []


async def test_debug_sleep_longer_than_the_socket_timeout(start_redis):
    outcome = await run_plan("debug_sleep", start_redis)
    assert problems(outcome, FAULTS["debug_sleep"].error) == []


async def test_readonly_while_the_server_is_a_replica(start_redis):
    outcome = await run_plan("readonly", start_redis)
    assert problems(outcome, FAULTS["readonly"].error) == []


async def test_busy_script_from_another_client(start_redis):
    outcome = await run_plan("busy", start_redis)
    assert problems(outcome, FAULTS["busy"].error) == []
