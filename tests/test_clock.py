"""The virtual clock: time moves only on advance, in order, waiting for workers in between."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

import minibull
from minibull.clock import SystemClock, to_ms
from tests.conftest import START, START_MS


def test_start_forms():
    assert minibull.VirtualClock(START).now() == START_MS
    assert minibull.VirtualClock(START_MS / 1000).now() == START_MS
    assert minibull.VirtualClock(START).now_datetime() == START
    assert repr(minibull.VirtualClock(START)) == "VirtualClock(2026-01-05T12:00:00+00:00)"
    with pytest.raises(TypeError, match="start"):
        minibull.VirtualClock("today")


def test_durations_in_seconds_or_timedelta():
    assert to_ms(1.5) == 1500 and to_ms(timedelta(hours=1)) == 3_600_000
    with pytest.raises(ValueError, match="finite"):
        to_ms(float("nan"), "delay")
    with pytest.raises(TypeError, match="delay"):
        to_ms(True, "delay")


async def test_sleepers_wake_in_deadline_order_at_their_deadline():
    clock = minibull.VirtualClock(START)
    woke = []

    async def sleeper(name, seconds):
        await clock.sleep(seconds)
        woke.append((name, (clock.now() - START_MS) // 1000))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in [("c", 30), ("a", 10), ("b", 20)]]
    await asyncio.sleep(0)
    await clock.advance(15)
    await asyncio.sleep(0)
    assert woke == [("a", 10)]
    await clock.advance(timedelta(seconds=100))
    await asyncio.gather(*tasks)
    assert woke == [("a", 10), ("b", 20), ("c", 30)]
    assert clock.now() == START_MS + 115_000
    with pytest.raises(ValueError, match="delta"):
        await clock.advance(-1)


async def test_advance_waits_for_the_worker_between_steps(queue, make_worker, clock):
    """A job that reschedules itself each run (via retries) runs at every step."""
    times = []

    async def always_fails(job):
        times.append((clock.now() - START_MS) // 60000)
        raise RuntimeError("again")

    make_worker(always_fails)
    await queue.add("tick", {}, attempts=6, backoff=60)
    await clock.advance(timedelta(hours=1))
    assert times == [0, 1, 2, 3, 4, 5]


async def test_settle_times_out_if_a_worker_never_idles(queue, make_worker, clock):
    async def hang(job):
        await asyncio.Event().wait()

    make_worker(hang)
    await queue.add("hang", {})
    with pytest.raises(TimeoutError, match="still busy"):
        await clock.settle(timeout=0.3)


async def test_system_clock_is_real_time():
    clock = SystemClock()
    before = int(datetime.now(timezone.utc).timestamp() * 1000)
    assert abs(clock.now() - before) < 1000
    assert clock.call_at(clock.now() + 10, lambda: None) is None
    assert 0 < clock.block_timeout(clock.now() + 300, 5) <= 0.3
    assert clock.block_timeout(None, 5) == 5


async def test_jobs_can_take_virtual_time(queue, make_worker, clock):
    """A job that sleeps on the clock is idle for advance: ten 2-hour jobs, 3 at a time."""
    spans = []

    async def report(job):
        start = clock.now()
        await clock.sleep(timedelta(hours=2))
        spans.append(((start - START_MS) // 3_600_000, (clock.now() - START_MS) // 3_600_000))

    make_worker(report, concurrency=3)
    await queue.add_bulk([{"name": "report", "data": n} for n in range(10)])
    await clock.advance(timedelta(hours=9))
    assert sorted(spans) == [(0, 2)] * 3 + [(2, 4)] * 3 + [(4, 6)] * 3 + [(6, 8)]
