"""The worker: outcomes, retention, pause, concurrency, events, callbacks, closing."""

from __future__ import annotations

import asyncio
import collections
import threading
import time

import pytest

import minibull
from tests.conftest import START_MS, wait_for


async def test_return_value_is_stored_and_read_back(queue, make_worker):
    make_worker(lambda job: {"sent_to": job.data["to"], "n": [1, 2]})
    job = await queue.add("email", {"to": "ada"})
    assert await job.wait_until_finished(timeout=5) == {"sent_to": "ada", "n": [1, 2]}
    stored = await queue.get_job(job.id)
    assert stored.returnvalue == {"sent_to": "ada", "n": [1, 2]}
    assert stored.attempts_made == 1 and stored.attempts_started == 1
    assert stored.processed_on == stored.finished_on == START_MS
    assert await stored.get_state() == "completed"


async def test_plain_functions_run_in_a_thread(queue, make_worker):
    threads = []

    def blocking(job):
        threads.append(threading.current_thread() is threading.main_thread())
        return "ok"

    make_worker(blocking)
    job = await queue.add("sync", {})
    assert await job.wait_until_finished(timeout=5) == "ok"
    assert threads == [False]


async def test_a_return_value_that_is_not_json_fails_the_job(queue, make_worker):
    make_worker(lambda job: object())
    job = await queue.add("bad", {})
    with pytest.raises(minibull.JobFailedError, match="JSON-serialisable"):
        await job.wait_until_finished(timeout=5)


async def test_wait_until_finished_raises_with_the_reason(queue, make_worker):
    async def failing(job):
        raise ValueError("no such user")

    make_worker(failing)
    job = await queue.add("email", {})
    with pytest.raises(minibull.JobFailedError, match="no such user") as caught:
        await job.wait_until_finished(timeout=5)
    assert caught.value.job_id == job.id and caught.value.failed_reason == "no such user"


async def test_wait_until_finished_times_out(queue):
    job = await queue.add("nobody-runs-me", {})
    with pytest.raises(TimeoutError):
        await job.wait_until_finished(timeout=0.2)


@pytest.mark.parametrize(
    "setting, kept",
    [
        (True, []),
        (False, ["1", "2", "3", "4", "5"]),
        (2, ["4", "5"]),
        ({"count": 3}, ["3", "4", "5"]),
        ({"count": 4, "age": 2}, ["4", "5"]),  # one second apart: age prunes more
        ({"count": 2, "age": 3600}, ["4", "5"]),
    ],
)
async def test_remove_on_complete(queue, make_worker, clock, setting, kept):
    make_worker(lambda job: job.id)
    for _ in range(5):
        job = await queue.add("job", {}, remove_on_complete=setting)
        assert await job.wait_until_finished(timeout=5) == job.id
        await clock.advance(1)
    completed = sorted(await queue.redis.zrange(queue.keys.completed, 0, -1))
    assert completed == kept
    for job_id in "12345":
        assert (await queue.get_job(job_id) is not None) == (job_id in kept)


async def test_remove_on_fail_by_age(queue, make_worker, clock):
    async def failing(job):
        raise RuntimeError("nope")

    make_worker(failing)
    for _ in range(4):
        job = await queue.add("job", {}, remove_on_fail={"age": 60})
        with pytest.raises(minibull.JobFailedError):
            await job.wait_until_finished(timeout=5)
        await clock.advance(45)
    # Each failure prunes jobs that finished more than 60 s before it.
    assert sorted(await queue.redis.zrange(queue.keys.failed, 0, -1)) == ["3", "4"]
    assert await queue.get_job("1") is None


async def test_pause_and_resume_the_queue(queue, make_worker, clock):
    done = []
    make_worker(lambda job: done.append(job.name))
    await queue.pause()
    assert await queue.is_paused()
    await queue.add("while-paused", {})
    await clock.settle()
    await asyncio.sleep(0.1)
    assert done == [] and (await queue.get_job_counts("waiting"))["waiting"] == 1
    await queue.resume()
    assert not await queue.is_paused()
    await wait_for(lambda: done == ["while-paused"])


async def test_delayed_jobs_are_promoted_while_paused_but_not_run(queue, make_worker, clock):
    done = []
    make_worker(lambda job: done.append(job.name))
    await queue.add("later", {}, delay=10)
    await queue.pause()
    await clock.advance(20)
    assert done == []
    await queue.resume()
    await wait_for(lambda: done == ["later"])


async def test_pause_and_resume_one_worker(queue, make_worker, clock):
    done = []
    worker = make_worker(lambda job: done.append(job.name))
    await worker.pause()
    await queue.add("job", {})
    await asyncio.sleep(0.1)
    assert done == []
    await worker.resume()
    await wait_for(lambda: done == ["job"])


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_concurrency_is_never_exceeded_and_is_used(queue, make_worker, concurrency):
    running, peak, finished = 0, 0, []

    async def slow(job):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        finished.append(job.id)

    await queue.add_bulk([{"name": "job", "data": n} for n in range(20)])
    make_worker(slow, concurrency=concurrency)
    await wait_for(lambda: len(finished) == 20)
    assert peak == concurrency


async def test_two_workers_share_the_jobs_and_run_each_once(queue, make_worker):
    seen = []

    async def record(job):
        seen.append(job.id)
        await asyncio.sleep(0.005)

    make_worker(record, concurrency=3)
    make_worker(record, concurrency=3)
    await queue.add_bulk([{"name": "job", "data": n} for n in range(60)])
    await wait_for(lambda: len(seen) >= 60)
    await asyncio.sleep(0.05)
    assert sorted(seen, key=int) == [str(n) for n in range(1, 61)]


async def test_events_on_the_stream(queue, make_worker, clock):
    async def processor(job):
        await job.update_progress(50)
        if job.name == "bad":
            raise RuntimeError("broken")
        return {"ok": True}

    make_worker(processor)
    good = await queue.add("good", {})
    await good.wait_until_finished(timeout=5)
    bad = await queue.add("bad", {})
    with pytest.raises(minibull.JobFailedError):
        await bad.wait_until_finished(timeout=5)
    events = [fields for _, fields in await queue.redis.xrange(queue.keys.events)]
    by_job = {}
    for fields in events:
        by_job.setdefault(fields.get("jobId"), []).append(fields["event"])
    assert by_job[good.id] == ["added", "waiting", "active", "progress", "completed"]
    assert by_job[bad.id] == [
        "added",
        "waiting",
        "active",
        "progress",
        "failed",
        "retries-exhausted",
    ]
    completed = next(f for f in events if f["event"] == "completed")
    assert completed["returnvalue"] == '{"ok":true}' and completed["prev"] == "active"
    assert by_job[None].count("drained") == 2


async def test_queue_events_reads_the_stream_and_decodes_values(queue, make_worker, prefix):
    make_worker(lambda job: {"n": job.data})
    seen = []
    async with minibull.QueueEvents("q", prefix=prefix) as events:
        events.on("completed", seen.append)
        job = await queue.add("job", 7)
        await job.wait_until_finished(timeout=5)
        await wait_for(lambda: len(seen) == 1)
    assert seen[0]["jobId"] == job.id and seen[0]["returnvalue"] == {"n": 7}

    replay = minibull.QueueEvents("q", prefix=prefix, last_event_id="0")
    names = []
    async for event in replay:
        names.append(event["event"])
        if event["event"] == "completed":
            break
    await replay.close()
    assert names == ["added", "waiting", "active", "completed"]


async def test_worker_events_and_a_failing_callback_is_reported_not_fatal(queue, make_worker):
    calls = []
    worker = make_worker(lambda job: job.data, start=False)
    worker.on("active", lambda job: calls.append(("active", job.id)))
    worker.on("completed", lambda job, result: calls.append(("completed", job.id, result)))

    async def async_listener(job, result):
        calls.append(("async completed", job.id))

    worker.on("completed", async_listener)
    worker.on("completed", lambda job, result: 1 / 0)
    worker.on("error", lambda exc: calls.append(("error", type(exc).__name__)))
    worker.on("drained", lambda: calls.append(("drained",)))
    with pytest.raises(ValueError, match="unknown event"):
        worker.on("finished", print)
    worker.start()
    first = await queue.add("job", 1)
    await first.wait_until_finished(timeout=5)
    second = await queue.add("job", 2)
    assert await second.wait_until_finished(timeout=5) == 2
    await wait_for(lambda: calls.count(("error", "ZeroDivisionError")) == 2)
    assert ("completed", "1", 1) in calls and ("async completed", "2") in calls
    await wait_for(lambda: ("drained",) in calls)  # the worker finds the queue empty next


async def test_failed_event_fires_on_every_failed_attempt(queue, make_worker, clock):
    failures = []

    async def failing(job):
        raise RuntimeError(f"attempt {job.attempts_made + 1}")

    worker = make_worker(failing, start=False)
    worker.on("failed", lambda job, error: failures.append((job.attempts_made, str(error))))
    worker.start()
    await queue.add("job", {}, attempts=3, backoff=10)
    await clock.advance(60)
    assert failures == [(1, "attempt 1"), (2, "attempt 2"), (3, "attempt 3")]


async def test_progress_and_logs(queue, make_worker):
    progress = []

    async def processor(job):
        await job.update_progress(10)
        await job.update_progress({"step": "render", "pct": 90})
        await job.log("rendered")
        await job.log("sent")
        return None

    worker = make_worker(processor, start=False)
    worker.on("progress", lambda job, value: progress.append(value))
    worker.start()
    job = await queue.add("job", {})
    await job.wait_until_finished(timeout=5)
    assert progress == [10, {"step": "render", "pct": 90}]
    await job.refresh()
    assert job.progress == {"step": "render", "pct": 90}
    assert await job.get_logs() == ["rendered", "sent"]


async def test_close_waits_for_the_running_job(queue, make_worker):
    started, finished = asyncio.Event(), []

    async def slow(job):
        started.set()
        await asyncio.sleep(0.3)
        finished.append(job.id)

    worker = make_worker(slow)
    job = await queue.add("job", {})
    await started.wait()
    await worker.close()
    assert finished == [job.id] and not worker.running
    assert await job.get_state() == "completed"


async def test_async_with_starts_and_closes(queue, prefix, clock):
    async with minibull.Worker("q", lambda job: "hi", prefix=prefix, clock=clock) as worker:
        assert worker.running
        job = await queue.add("job", {})
        assert await job.wait_until_finished(timeout=5) == "hi"
    assert not worker.running
    with pytest.raises(RuntimeError, match="runs once"):
        await worker.run()


async def test_closing_a_worker_that_never_started(prefix):
    worker = minibull.Worker("q", lambda job: None, prefix=prefix)
    await worker.close()
    assert not worker.running


async def test_one_bulk_add_wakes_every_idle_worker(prefix, make_worker):
    # Three idle workers block on the marker; one add_bulk sets it once. The worker that
    # wakes passes the wake-up on (moveToActive sets the marker while jobs wait), so all
    # three share the work now, not after their 5 s block runs out.
    clock = minibull.SystemClock()

    async def slow(job):
        await asyncio.sleep(0.03)
        return job.id

    workers = [make_worker(slow, clock=clock, drain_delay=5) for _ in range(3)]
    async with minibull.Queue("q", prefix=prefix, clock=clock) as queue:
        await asyncio.sleep(0.3)  # all three parked on the marker
        jobs = await queue.add_bulk([{"name": "job", "data": i} for i in range(30)])
        started = time.monotonic()
        for job in jobs:
            await job.wait_until_finished(timeout=10)
        assert time.monotonic() - started < 2.5
        done = await queue.get_jobs("completed")
        by_worker = collections.Counter(job.processed_by for job in done)
        assert set(by_worker) == {worker.id for worker in workers}, by_worker
        assert min(by_worker.values()) >= 5, by_worker


async def test_a_job_deleted_while_it_runs_is_reported_and_the_worker_goes_on(
    queue, make_worker, clock
):
    # Someone deletes the running job's hash (an obliterate, a hand-made DEL): finishing
    # it fails with JobNotFoundError, which the worker reports as an error event; its slot
    # is free again, and no task dies with an exception nobody reads. The id leaves
    # "active" with its lock: long after the lock would have expired, the stalled sweep
    # has not brought it back as a job with no data (it ran again and again, empty).
    errors, done = [], []

    async def processor(job):
        if job.name == "doomed":
            await queue.redis.delete(queue.keys.job(job.id))
        done.append(job.name)

    worker = make_worker(processor, lock_duration=0.3, stalled_interval=0.1, start=False)
    sweeps = []
    sweep = worker.queue.scripts.move_stalled_jobs_to_wait

    async def counted_sweep(*args):
        sweeps.append(await sweep(*args))
        return sweeps[-1]

    worker.queue.scripts.move_stalled_jobs_to_wait = counted_sweep
    worker.on("error", errors.append)
    worker.start()
    doomed = await queue.add("doomed", {})
    await wait_for(lambda: len(errors) == 1)
    assert isinstance(errors[0], minibull.JobNotFoundError), errors
    assert await queue.redis.lrange(queue.keys.active, 0, -1) == []
    assert not await queue.redis.exists(queue.keys.lock(doomed.id))
    job = await queue.add("next", {})
    assert await job.wait_until_finished(timeout=5) is None
    # 8 sweeps, 0.1 s apart: well past the 0.3 s lock the doomed job had.
    seen = len(sweeps)
    await wait_for(lambda: len(sweeps) >= seen + 8)
    assert done == ["doomed", "next"]
    assert not any(sweeps), sweeps
    assert not await queue.redis.exists(queue.keys.job(doomed.id))
    assert len(errors) == 1, errors
