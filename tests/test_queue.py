"""The producer's side: adding, looking, and the housekeeping calls."""

from __future__ import annotations

from datetime import timedelta

import pytest

import minibull
from tests.conftest import START_MS, record_commands, states_of


async def test_add_returns_the_job_as_stored(queue):
    job = await queue.add("email", {"to": "ada"}, attempts=2, delay=timedelta(minutes=1))
    stored = await queue.get_job(job.id)
    for field in ("id", "name", "data", "opts", "timestamp", "delay", "priority"):
        assert getattr(job, field) == getattr(stored, field), field
    assert stored.timestamp == START_MS and stored.delay == 60000
    assert repr(job) == "Job(id='1', name='email', data={'to': 'ada'})"
    assert await queue.get_job("nope") is None


async def test_same_job_id_twice_adds_once_and_returns_the_first(queue):
    first = await queue.add("welcome", {"v": 1}, job_id="welcome-ada")
    second = await queue.add("welcome", {"v": 2}, job_id="welcome-ada")
    assert second.id == first.id == "welcome-ada"
    assert second.data == {"v": 1}
    assert (await queue.get_job_counts("waiting"))["waiting"] == 1
    events = [f["event"] for _, f in await queue.redis.xrange(queue.keys.events)]
    assert events == ["added", "waiting", "duplicated"]


async def test_add_bulk_is_one_round_trip(queue, monkeypatch):
    await queue.add("warm-up", {})  # loads the script
    sent = record_commands(queue, monkeypatch)
    jobs = await queue.add_bulk(
        [
            {"name": "a", "data": 1},
            {"name": "b", "data": 2, "priority": 3},
            {"name": "c", "data": 3, "delay": 9},
        ]
    )
    assert [args[0] for args in sent] == ["EVALSHA"]
    assert [job.id for job in jobs] == ["2", "3", "4"]
    assert await states_of(queue) == {
        "waiting": ["1", "2"],
        "active": [],
        "prioritized": ["3"],
        "delayed": ["4"],
        "completed": [],
        "failed": [],
    }
    assert await queue.add_bulk([]) == []


async def test_keys_follow_bullmq_layout(queue, prefix):
    await queue.add("a", {})
    await queue.add("b", {}, delay=5)
    await queue.add("c", {}, priority=2)
    keys = sorted(await queue.redis.keys(f"{prefix}:q:*"))
    assert keys == sorted(
        f"{prefix}:q:{suffix}"
        for suffix in [
            "1",
            "2",
            "3",
            "delayed",
            "events",
            "id",
            "marker",
            "pc",
            "prioritized",
            "wait",
        ]
    )
    assert await queue.redis.type(f"{prefix}:q:marker") == "zset"
    # "0": a job is ready now; "1": the next delayed job is due then (ms).
    markers = await queue.redis.zrange(f"{prefix}:q:marker", 0, -1, withscores=True)
    assert markers == [("0", 0.0), ("1", START_MS + 5000)]


async def test_get_jobs_newest_first_or_oldest_first(queue):
    for n in range(4):
        await queue.add(f"job{n}", {})
    newest = [job.name for job in await queue.get_jobs("waiting")]
    assert newest == ["job3", "job2", "job1", "job0"]
    oldest = [job.name for job in await queue.get_jobs("waiting", asc=True)]
    assert oldest == ["job0", "job1", "job2", "job3"]
    assert [job.name for job in await queue.get_jobs("waiting", 0, 1, asc=True)] == ["job0", "job1"]
    assert [job.name for job in await queue.get_jobs(["waiting"], 1, 2)] == ["job2", "job1"]


async def test_counts_for_every_state(queue, make_worker, clock):
    async def fail_bad(job):
        if job.name == "bad":
            raise RuntimeError("bad")

    await queue.add_bulk(
        [
            {"name": "ok", "data": 0},
            {"name": "bad", "data": 0},
            {"name": "later", "data": 0, "delay": 60},
            {"name": "urgent", "data": 0, "priority": 1},
        ]
    )
    worker = make_worker(fail_bad)
    await clock.settle()
    await worker.close()
    await queue.add("fresh", {})
    assert await queue.get_job_counts() == {
        "waiting": 1,
        "active": 0,
        "prioritized": 0,
        "delayed": 1,
        "completed": 2,
        "failed": 1,
    }
    assert await queue.get_job_counts("failed", "delayed") == {"failed": 1, "delayed": 1}


async def test_drain_keeps_delayed_unless_asked(queue):
    await queue.add_bulk(
        [
            {"name": "a", "data": 0},
            {"name": "b", "data": 0, "priority": 2},
            {"name": "c", "data": 0, "delay": 10},
        ]
    )
    assert await queue.drain() == 2
    assert await queue.get_job("1") is None and await queue.get_job("3") is not None
    assert await queue.drain(delayed=True) == 1
    assert sum((await queue.get_job_counts()).values()) == 0


async def test_clean_finished_jobs_older_than_grace(queue, make_worker, clock):
    make_worker(lambda job: None)
    for n in range(3):
        job = await queue.add(f"job{n}", {})
        await job.wait_until_finished(timeout=5)
        await clock.advance(60)
    # Finished at 0, 60 and 120 s; now is 180 s.
    assert sorted(await queue.clean(grace=90, state="completed")) == ["1", "2"]
    assert await queue.redis.zrange(queue.keys.completed, 0, -1) == ["3"]
    assert await queue.get_job("1") is None
    events = [f for _, f in await queue.redis.xrange(queue.keys.events) if f["event"] == "cleaned"]
    assert events[-1]["count"] == "2"


async def test_clean_waiting_jobs_with_a_limit(queue, clock):
    for n in range(4):
        await queue.add(f"job{n}", {})
    await clock.advance(10)
    await queue.add("young", {})
    assert len(await queue.clean(5, limit=3, state="waiting")) == 3
    remaining = [job.name for job in await queue.get_jobs("waiting")]
    assert len(remaining) == 2 and "young" in remaining


async def test_obliterate_removes_every_key_and_refuses_while_active(queue, prefix, make_worker):
    import asyncio

    started = asyncio.Event()

    async def hang(job):
        started.set()
        await asyncio.Event().wait()

    await queue.add_bulk([{"name": "a", "data": 0}, {"name": "b", "data": 0, "delay": 5}])
    worker = make_worker(hang)
    await started.wait()
    with pytest.raises(RuntimeError, match="force=True"):
        await queue.obliterate()
    await queue.obliterate(force=True)
    await worker.close(force=True)
    assert await queue.redis.keys(f"{prefix}:q:*") == []


async def test_retry_failed_jobs_after_fixing_the_bug(queue, make_worker, clock):
    fixed = False

    def processor(job):
        if not fixed:
            raise RuntimeError("bug")
        return "ok"

    make_worker(processor)
    jobs = await queue.add_bulk([{"name": f"job{n}", "data": n, "attempts": 2} for n in range(3)])
    await clock.settle()
    assert (await queue.get_job_counts("failed"))["failed"] == 3
    fixed = True
    assert await queue.retry_jobs() == 3
    for job in jobs:
        assert await job.wait_until_finished(timeout=5) == "ok"
    retried = await queue.get_job(jobs[0].id)
    assert retried.failed_reason is None and retried.attempts_made == 3


async def test_job_retry_and_remove(queue, make_worker, clock):
    make_worker(lambda job: 1 / job.data)
    job = await queue.add("divide", 0)
    with pytest.raises(minibull.JobFailedError, match="division by zero"):
        await job.wait_until_finished(timeout=5)
    with pytest.raises(ValueError, match="not completed"):
        await job.retry("completed")
    await job.retry(reset_attempts=True)
    with pytest.raises(minibull.JobFailedError):
        await job.wait_until_finished(timeout=5)
    assert (await queue.get_job(job.id)).attempts_made == 1
    await job.remove()
    assert await queue.get_job(job.id) is None and await job.get_state() == "unknown"
    with pytest.raises(minibull.JobNotFoundError):
        await job.remove()


async def test_pause_emits_events_and_is_shared(queue, prefix):
    other = minibull.Queue("q", prefix=prefix)
    await queue.pause()
    assert await other.is_paused()
    await other.resume()
    assert not await queue.is_paused()
    events = [f["event"] for _, f in await queue.redis.xrange(queue.keys.events)]
    assert events == ["paused", "resumed"]
    await other.close()


async def test_async_with_closes_the_queue(prefix):
    async with minibull.Queue("q", prefix=prefix) as q:
        await q.add("job", {})
    async with minibull.Queue("q", prefix=prefix) as again:
        assert (await again.get_job_counts("waiting"))["waiting"] == 1
