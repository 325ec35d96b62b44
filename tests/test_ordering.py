"""The order in which jobs run: FIFO, LIFO, priorities, delayed jobs by due time."""

from __future__ import annotations

import asyncio

from tests.conftest import START_MS


async def run_all(queue, make_worker, clock, expected_count, **worker_options):
    """Start a worker at concurrency 1 after the jobs were added; return job names in run order."""
    order = []

    async def record(job):
        order.append(job.name)

    worker = make_worker(record, **worker_options)
    await clock.settle()
    while len(order) < expected_count:
        await asyncio.sleep(0.01)
    await worker.close()
    return order


async def test_fifo(queue, make_worker, clock):
    for n in range(5):
        await queue.add(f"job{n}", {})
    assert await run_all(queue, make_worker, clock, 5) == [f"job{n}" for n in range(5)]


async def test_ids_are_a_counter(queue):
    jobs = [await queue.add("job", {}) for _ in range(3)]
    assert [job.id for job in jobs] == ["1", "2", "3"]


async def test_lifo_jobs_run_first_newest_first(queue, make_worker, clock):
    await queue.add("a", {})
    await queue.add("b", {}, lifo=True)
    await queue.add("c", {}, lifo=True)
    await queue.add("d", {})
    assert await run_all(queue, make_worker, clock, 4) == ["c", "b", "a", "d"]


async def test_priorities_lowest_first_ties_fifo_and_plain_jobs_before_all(
    queue, make_worker, clock
):
    await queue.add("p10", {}, priority=10)
    await queue.add("p5-first", {}, priority=5)
    await queue.add("p1", {}, priority=1)
    await queue.add("p5-second", {}, priority=5)
    await queue.add("plain", {})
    order = await run_all(queue, make_worker, clock, 5)
    assert order == ["plain", "p1", "p5-first", "p5-second", "p10"]


async def test_delayed_jobs_run_in_due_order_at_their_due_time(queue, make_worker, clock):
    times = {}

    async def record(job):
        times[job.name] = (clock.now() - START_MS) // 1000

    make_worker(record)
    await queue.add("in-30s", {}, delay=30)
    await queue.add("in-10s", {}, delay=10)
    await queue.add("in-20s", {}, delay=20)
    await clock.advance(15)
    assert times == {"in-10s": 10}
    await clock.advance(60)
    assert times == {"in-10s": 10, "in-20s": 20, "in-30s": 30}
    assert list(times) == ["in-10s", "in-20s", "in-30s"]


async def test_jobs_due_in_the_same_millisecond_keep_their_order(queue, make_worker, clock):
    names = [f"job{n}" for n in range(20)]
    await queue.add_bulk([{"name": name, "data": {}, "delay": 5} for name in names])
    scores = await queue.redis.zrange(queue.keys.delayed, 0, -1, withscores=True)
    due = START_MS + 5000
    assert [int(score) for _, score in scores] == [due * 4096 + n for n in range(20)]
    await clock.advance(5)
    assert await run_all(queue, make_worker, clock, 20) == names


async def test_delayed_job_with_priority_goes_to_prioritized_when_due(queue, make_worker, clock):
    await queue.add("later-urgent", {}, delay=5, priority=1)
    await queue.add("now-slow", {}, priority=9)
    await clock.advance(5)
    order = await run_all(queue, make_worker, clock, 2)
    assert order == ["later-urgent", "now-slow"]


async def test_jobs_added_before_any_worker_are_processed(queue, make_worker, clock):
    await queue.add_bulk([{"name": f"job{n}", "data": n} for n in range(50)])
    assert len(await run_all(queue, make_worker, clock, 50)) == 50
    assert (await queue.get_job_counts("completed"))["completed"] == 50
