"""Rate limits and global concurrency (shared by every worker), and deduplication."""

from __future__ import annotations

import asyncio
import time

import pytest

import minibull
from tests.conftest import wait_for


def most_in_any_window(starts: list[float], window: float) -> int:
    return max(sum(1 for t in starts if s <= t < s + window) for s in starts)


async def test_worker_limiter_is_shared_by_all_workers(queue, make_worker):
    starts: list[float] = []

    async def record(job):
        starts.append(time.monotonic())

    limiter = {"max": 2, "duration": 0.3}
    make_worker(record, concurrency=5, limiter=limiter)
    make_worker(record, concurrency=5, limiter=limiter)
    await queue.add_bulk([{"name": "email", "data": n} for n in range(10)])
    await wait_for(lambda: len(starts) == 10, timeout=10)
    starts.sort()
    # 10 jobs at 2 per 0.3 s window need at least 4 more windows after the first.
    assert starts[-1] - starts[0] >= 4 * 0.3 - 0.05
    # Fixed windows: any 0.3 s span overlaps at most two windows, so at most 4 starts.
    assert most_in_any_window(starts, 0.3) <= 4


async def test_global_rate_limit_applies_without_worker_options(queue, make_worker):
    starts: list[float] = []
    await queue.set_global_rate_limit(1, 0.2)
    assert await queue.get_global_limits() == {"concurrency": None, "max": 1, "duration": 0.2}
    for _ in range(2):
        make_worker(lambda job: starts.append(time.monotonic()), concurrency=4)
    await queue.add_bulk([{"name": "job", "data": n} for n in range(5)])
    await wait_for(lambda: len(starts) == 5, timeout=10)
    starts.sort()
    assert starts[-1] - starts[0] >= 4 * 0.2 - 0.05
    await queue.set_global_rate_limit(None)
    assert (await queue.get_global_limits())["max"] is None


@pytest.mark.parametrize("cap", [1, 2])
async def test_global_concurrency_caps_all_workers_together(queue, make_worker, cap):
    running, peak, done = 0, 0, []

    async def slow(job):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        done.append(job.id)

    await queue.set_global_concurrency(cap)
    make_worker(slow, concurrency=3)
    make_worker(slow, concurrency=3)
    await queue.add_bulk([{"name": "job", "data": n} for n in range(12)])
    await wait_for(lambda: len(done) == 12, timeout=10)
    assert peak == cap


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="limiter"):
        minibull.Worker("q", print, limiter={"max": 1})
    with pytest.raises(ValueError, match="limiter max"):
        minibull.Worker("q", print, limiter={"max": 0, "duration": 1})
    with pytest.raises(ValueError, match="limiter duration"):
        minibull.Worker("q", print, limiter={"max": 1, "duration": 0})


async def test_deduplication_until_the_job_ends(queue, make_worker):
    first = await queue.add("sync", {"v": 1}, deduplication={"id": "user-7"})
    second = await queue.add("sync", {"v": 2}, deduplication={"id": "user-7"})
    assert second.id == first.id and second.data == {"v": 1}
    assert (await queue.get_job_counts("waiting"))["waiting"] == 1
    events = [f for _, f in await queue.redis.xrange(queue.keys.events)]
    assert events[-1] == {
        "event": "deduplicated",
        "jobId": first.id,
        "deduplicationId": "user-7",
        "deduplicatedJobId": "2",  # the id the ignored add took, as in BullMQ
    }
    make_worker(lambda job: job.data)
    await first.wait_until_finished(timeout=5)
    third = await queue.add("sync", {"v": 3}, deduplication={"id": "user-7"})
    assert third.id != first.id and third.deduplication_id is None  # returned as added
    assert (await queue.get_job(third.id)).deduplication_id == "user-7"


async def test_deduplication_with_a_ttl_outlives_the_job(queue, make_worker):
    make_worker(lambda job: job.data)
    first = await queue.add("sync", 1, deduplication={"id": "x", "ttl": 0.4})
    await first.wait_until_finished(timeout=5)
    again = await queue.add("sync", 2, deduplication={"id": "x", "ttl": 0.4})
    assert again.id == first.id
    await asyncio.sleep(0.5)
    later = await queue.add("sync", 3, deduplication={"id": "x", "ttl": 0.4})
    assert later.id != first.id


async def test_removing_a_job_frees_its_deduplication_id(queue):
    job = await queue.add("sync", 1, deduplication={"id": "x"})
    await job.remove()
    assert (await queue.add("sync", 2, deduplication={"id": "x"})).id != job.id


@pytest.mark.parametrize(
    "dedup, words",
    [
        ({"ttl": 5}, "deduplication must be"),
        ({"id": ""}, "must not be empty"),
        ({"id": "a", "ttl": 0}, "ttl"),
    ],
)
async def test_bad_deduplication_raises_and_writes_nothing(queue, prefix, dedup, words):
    with pytest.raises(ValueError, match=words):
        await queue.add("sync", {}, deduplication=dedup)
    assert await queue.redis.keys(f"{prefix}:*") == []


@pytest.mark.parametrize("how", ["drain", "clean"])
async def test_draining_or_cleaning_frees_deduplication_ids(queue, clock, how):
    job = await queue.add("sync", 1, deduplication={"id": "x"})
    if how == "drain":
        await queue.drain()
    else:
        await clock.advance(10)
        await queue.clean(5, state="waiting")
    assert await queue.get_job(job.id) is None
    assert (await queue.add("sync", 2, deduplication={"id": "x"})).id != job.id
