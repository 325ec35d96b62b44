"""BullMQ's hard-won guards in the Lua scripts: cut-offs, batches, missing hashes, reserved ids.

Each test drives the scripts (through ``Queue``/``Worker`` or ``queue.scripts`` directly) into
the situation a guard is for, and checks that the queue's structures stay consistent.
"""

from __future__ import annotations

import asyncio
import collections

import pytest

import minibull
from minibull.keys import RESERVED_JOB_IDS
from minibull.options import build_job
from minibull.scripts import Take
from tests.conftest import wait_for


async def keys_under(queue: minibull.Queue) -> list[str]:
    """Every Redis key of the queue's prefix."""
    pattern = queue.keys.prefix + ":*"
    return sorted([key async for key in queue.redis.scan_iter(match=pattern, count=1000)])


# -- B7: a job id that names a queue key -------------------------------------------------


@pytest.mark.parametrize("job_id", ["wait", "meta", "events", "marker"])
async def test_add_job_refuses_a_reserved_id_and_writes_nothing(queue, job_id):
    # Straight to the script (the Python check in options comes first in Queue.add): a bulk
    # whose second job has a reserved id is refused as a whole.
    fine, reserved = build_job("fine", {}), build_job("bad", {})
    reserved["id"] = job_id
    with pytest.raises(ValueError, match=f"job_id '{job_id}' is reserved"):
        await queue.scripts.add_jobs(queue.clock.now(), [fine, reserved])
    assert await keys_under(queue) == []
    job = await queue.add("after", {})
    assert await queue.get_job_state(job.id) == "waiting"


def test_the_reserved_ids_are_the_queue_keys():
    assert {"wait", "active", "meta", "events", "marker", "id", "repeat"} <= RESERVED_JOB_IDS
    assert not any(":" in name for name in RESERVED_JOB_IDS)


# -- B1: retry_jobs while workers run -------------------------------------------------------


async def test_retry_jobs_moves_each_finished_job_once_while_workers_run(
    prefix, make_worker, monkeypatch
):
    # Workers re-run the retried jobs at once and finish them again. Between two batches of
    # retry_jobs the test lets them finish every job again: without a cut-off the next batch
    # took those jobs again, and retry_jobs never ended (every job ran again and again).
    clock = minibull.SystemClock()
    runs = collections.Counter()

    async def count_runs(job):
        runs[job.id] += 1

    async with minibull.Queue("q", prefix=prefix, clock=clock) as queue:
        count = 50
        jobs = await queue.add_bulk([{"name": "j", "data": i} for i in range(count)])
        make_worker(count_runs, clock=clock, concurrency=10)
        settled = {"completed": count, "waiting": 0, "active": 0}

        async def all_finished(min_runs: int) -> bool:
            counts = await queue.get_job_counts(*settled)
            return sum(runs.values()) >= min_runs and counts == settled

        await wait_for(lambda: all_finished(count))
        move_batch = queue.scripts.move_jobs_to_wait

        async def move_then_let_workers_finish(*args):
            before = sum(runs.values())  # nothing runs now: every job has finished
            moved = await move_batch(*args)
            await wait_for(lambda: all_finished(before + moved))
            return moved

        monkeypatch.setattr(queue.scripts, "move_jobs_to_wait", move_then_let_workers_finish)
        assert await asyncio.wait_for(queue.retry_jobs("completed"), timeout=10) == count
        assert set(runs.values()) == {2}, collections.Counter(runs.values())
        assert set(runs) == {job.id for job in jobs}


# -- B2: trimming a big finished set ----------------------------------------------------------


async def finished_jobs(queue: minibull.Queue, count: int, state: str = "completed") -> list[str]:
    """``count`` jobs in ``state`` at once: one bulk add, then moved there straight in Redis."""
    jobs = await queue.add_bulk([{"name": "old", "data": i} for i in range(count)])
    ids = [job.id for job in jobs]
    now = queue.clock.now()
    async with queue.redis.pipeline(transaction=False) as pipe:
        pipe.delete(queue.keys.wait)
        pipe.zadd(
            queue.keys.state_key(state), {job_id: now - count + i for i, job_id in enumerate(ids)}
        )
        for job_id in ids:
            pipe.hset(queue.keys.job(job_id), "finishedOn", now)
        await pipe.execute()
    return ids


async def run_one(queue: minibull.Queue, keep: dict[str, int], failed: bool = False) -> str:
    """Add a job, take it and finish it (straight through the scripts) with ``keep``."""
    job = await queue.add("new", {})
    take = Take(token="t", lock_ms=60_000)
    taken = await queue.scripts.move_to_active(queue.clock.now(), take)
    assert taken.job_id == job.id
    await queue.scripts.move_to_finished(
        job.id,
        now=queue.clock.now(),
        token="t",
        failed=failed,
        value='"done"',
        keep=keep,
        attempts=1,
    )
    return job.id


async def test_trimming_more_than_8000_finished_jobs_works_in_bounded_steps(queue):
    # A queue kept every job, then sets a count: the excess (8,101 here) is more than Lua's
    # unpack takes. Each finish removes up to 1,000 of the oldest, hashes included.
    old = await finished_jobs(queue, 8200)
    await queue.clock.advance(1)
    newest = [await run_one(queue, {"count": 100})]
    assert await queue.redis.zcard(queue.keys.completed) == 8201 - 1000
    assert not await queue.redis.exists(*(queue.keys.job(job_id) for job_id in old[:1000]))
    assert await queue.redis.exists(*(queue.keys.job(job_id) for job_id in old[1000:])) == 7200
    while len(newest) < 10:
        newest.append(await run_one(queue, {"count": 100}))
    kept = await queue.redis.zrange(queue.keys.completed, 0, -1)
    assert kept == old[-90:] + newest
    assert await queue.redis.exists(*(queue.keys.job(job_id) for job_id in old)) == 90


async def test_a_huge_keep_count_or_age_finishes_the_job_and_trims_nothing(queue):
    # Straight to the script (options refuse such counts): no Redis error half-way through.
    old = await finished_jobs(queue, 5)
    events_before = await queue.redis.xlen(queue.keys.events)
    job_id = await run_one(queue, {"count": 2**70})
    await run_one(queue, {"count": 2**70, "age": 2**70})
    assert await queue.redis.zcard(queue.keys.completed) == 7
    assert await queue.redis.exists(*(queue.keys.job(i) for i in old)) == 5
    assert (await queue.get_job(job_id)).returnvalue == "done"
    events = await queue.redis.xrange(queue.keys.events, min="-", max="+")
    assert [e["event"] for _, e in events[events_before:]].count("completed") == 2
