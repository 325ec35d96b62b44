"""One failure policy for every long-lived task, and a bounded, honest close.

Faults are injected on the client (a script call that raises once), so each test is fast
and deterministic; tests/test_redis_faults.py does the same on a real redis-server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

import minibull
from minibull import viz
from minibull.errors import WorkerError
from tests.conftest import wait_for

OOM = "OOM command not allowed when used memory > 'maxmemory'."


def fail_first(target: Any, name: str, *errors: BaseException) -> list[int]:
    """Make ``target.name(...)`` raise ``errors`` one by one, then behave; returns a call log."""
    original = getattr(target, name)
    pending = list(errors)
    calls: list[int] = []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if pending:
            raise pending.pop(0)
        return await original(*args, **kwargs)

    setattr(target, name, flaky)
    return calls


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- B4: wake-ups ---------------------------------------------------------------------


async def test_a_failed_wake_up_is_reported_and_the_worker_goes_on(queue, make_worker):
    errors, done = [], []
    worker = make_worker(lambda job: done.append(job.id), drain_delay=5)
    worker.on("error", errors.append)
    await wait_for(lambda: worker.waiting == "work")  # blocked on the marker
    fail_first(worker.queue.redis, "zadd", RedisConnectionError("blip"))
    await worker.pause()  # wakes the blocked wait through the wake-up key: that write fails
    await wait_for(lambda: errors)
    await worker.resume()
    job = await queue.add("after", {})
    await job.wait_until_finished(timeout=5)
    assert worker.running and done == [job.id]
    assert isinstance(errors[0], RedisConnectionError)


# -- B5: any Redis error in the background tasks and in finishing ---------------------


async def test_a_response_error_in_lock_renewal_is_reported_and_renewal_goes_on(queue, make_worker):
    errors, runs = [], []

    async def long_job(job):
        runs.append(job.id)
        await asyncio.sleep(1.6)  # more than three lock durations
        return "done"

    worker = make_worker(long_job, lock_duration=0.4, stalled_interval=0.1)
    worker.on("error", errors.append)
    calls = fail_first(worker.queue.scripts, "extend_locks", ReadOnlyError("READONLY replica"))
    sweeper = make_worker(lambda job: None, stalled_interval=0.1, start=False)
    await sweeper.pause()
    sweeper.start()
    job = await queue.add("long", {})
    assert await job.wait_until_finished(timeout=10) == "done"
    assert runs == [job.id] and len(calls) >= 4
    assert [type(e) for e in errors] == [ReadOnlyError]


async def test_a_response_error_in_the_stalled_sweep_is_reported_and_the_sweep_goes_on(
    queue, make_worker
):
    started = asyncio.Event()

    async def hang(job):
        started.set()
        await asyncio.Event().wait()

    crashing = make_worker(hang, lock_duration=0.3, stalled_interval=0.1)
    job = await queue.add("email", {})
    await started.wait()
    await crashing.close(force=True)  # its job stays active until the lock expires

    errors, stalled = [], []
    rescuer = make_worker(lambda job: "rescued", lock_duration=0.3, stalled_interval=0.1)
    rescuer.on("error", errors.append)
    rescuer.on("stalled", stalled.append)
    fail_first(
        rescuer.queue.scripts,
        "move_stalled_jobs_to_wait",
        OutOfMemoryError(OOM),
        ResponseError("BUSY"),
    )
    assert await job.wait_until_finished(timeout=10) == "rescued"
    assert stalled == [job.id]
    assert [type(e) for e in errors] == [OutOfMemoryError, ResponseError]


async def test_a_response_error_while_finishing_is_retried(queue, make_worker, caplog):
    errors = []
    worker = make_worker(lambda job: "ok")
    worker.on("error", errors.append)
    fail_first(worker.queue.scripts, "move_to_finished", OutOfMemoryError(OOM))
    job = await queue.add("job", {})
    assert await job.wait_until_finished(timeout=5) == "ok"
    assert [type(e) for e in errors] == [OutOfMemoryError]
    assert "recording the outcome of job 1" in caplog.text


async def test_a_failure_recorded_on_the_second_try_keeps_one_stack_trace(queue, make_worker):
    async def failing(job):
        raise ValueError("no")

    worker = make_worker(failing)
    fail_first(worker.queue.scripts, "move_to_finished", ResponseError("BUSY"))
    job = await queue.add("job", {})
    with pytest.raises(minibull.JobFailedError):
        await job.wait_until_finished(timeout=5)
    assert len((await queue.get_job(job.id)).stacktrace) == 1


async def test_a_broken_main_loop_step_is_reported_and_the_loop_goes_on(queue, make_worker):
    errors = []
    worker = make_worker(lambda job: "ok")
    worker.on("error", errors.append)
    fail_first(worker.queue.scripts, "move_to_active", ResponseError("WRONGTYPE"), KeyError("x"))
    job = await queue.add("job", {})
    assert await job.wait_until_finished(timeout=5) == "ok"
    assert [type(e) for e in errors] == [ResponseError, KeyError]


async def test_a_worker_that_can_no_longer_work_raises_from_close(prefix):
    class Fatal(BaseException):
        pass

    worker = minibull.Worker("q", lambda job: None, prefix=prefix)

    def broken():
        raise Fatal("the loop itself broke")

    worker._take = broken  # type: ignore[method-assign]
    task = worker.start()
    await wait_for(task.done)
    with pytest.raises(WorkerError, match="the loop itself broke"):
        await worker.close()


# -- B11: a hash that cannot be decoded -----------------------------------------------


async def test_data_nested_too_deep_fails_the_job_and_the_worker_goes_on(queue, make_worker):
    job = await queue.add("deep", {})
    await queue.redis.hset(queue.keys.job(job.id), "data", nested(5000))
    stored = await queue.get_job(job.id)  # readable, no RecursionError
    assert stored.data == nested(5000) and "nested too deeply" in stored.deferred_failure
    make_worker(lambda job: "ran")
    with pytest.raises(minibull.JobFailedError, match="nested too deeply"):
        await job.wait_until_finished(timeout=5)
    after = await queue.add("next", {})
    assert await after.wait_until_finished(timeout=5) == "ran"


async def test_opts_that_are_not_an_object_fail_the_job(queue, make_worker):
    job = await queue.add("odd", {})
    await queue.redis.hset(queue.keys.job(job.id), mapping={"opts": "[1]", "stacktrace": '"x"'})
    make_worker(lambda job: "ran")
    with pytest.raises(minibull.JobFailedError, match="opts"):
        await job.wait_until_finished(timeout=5)


# -- processors that end the process --------------------------------------------------


def exits(job):
    if job.name == "bad":
        sys.exit(3)
    return "ok"


async def exits_async(job):
    if job.name == "bad":
        sys.exit(4)
    return "ok"


async def interrupts(job):
    if job.name == "bad":
        raise KeyboardInterrupt
    return "ok"


@pytest.mark.parametrize("processor", [exits, exits_async, interrupts])
async def test_sys_exit_or_keyboard_interrupt_in_a_processor_fails_the_job(
    queue, make_worker, processor
):
    worker = make_worker(processor)
    bad = await queue.add("bad", {})
    with pytest.raises(minibull.JobFailedError, match="SystemExit|KeyboardInterrupt"):
        await bad.wait_until_finished(timeout=5)
    good = await queue.add("good", {})
    assert await good.wait_until_finished(timeout=5) == "ok"
    assert worker.running


async def test_a_sync_processor_runs_in_a_daemon_thread(queue, make_worker):
    daemon = []
    make_worker(lambda job: daemon.append(threading.current_thread().daemon))
    job = await queue.add("job", {})
    await job.wait_until_finished(timeout=5)
    assert daemon == [True]


def test_a_hung_sync_processor_does_not_keep_a_force_closed_process_alive(shared_redis_url, prefix):
    script = textwrap.dedent(
        f"""
        import asyncio, time, minibull
        async def main():
            started = asyncio.Event()
            loop = asyncio.get_running_loop()
            def hang(job):
                loop.call_soon_threadsafe(started.set)
                time.sleep(10**6)
            async with minibull.Queue("q", {shared_redis_url!r}, prefix={prefix!r}) as queue:
                worker = minibull.Worker("q", hang, {shared_redis_url!r}, prefix={prefix!r})
                worker.start()
                await queue.add("hang", {{}})
                await started.wait()
                await worker.close(force=True)
            print("closed", flush=True)
        asyncio.run(main())
        """
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and "closed" in done.stdout, done.stderr
    assert time.monotonic() - started < 20


# -- B3, B17: closing ------------------------------------------------------------------


async def test_close_waits_for_a_job_fetched_while_it_began(queue, make_worker):
    finished = []

    async def slow(job):
        await asyncio.sleep(0.2)
        finished.append(job.id)

    worker = make_worker(slow, drain_delay=0.05)
    await wait_for(lambda: worker.waiting == "work")
    release = asyncio.Event()
    fetching = asyncio.Event()
    original = worker.queue.scripts.move_to_active

    async def slow_fetch(*args: Any) -> Any:
        fetching.set()
        await release.wait()
        return await original(*args)

    worker.queue.scripts.move_to_active = slow_fetch  # type: ignore[method-assign]
    job = await queue.add("job", {})
    await fetching.wait()
    closing = asyncio.create_task(worker.close())
    await asyncio.sleep(0.05)
    release.set()
    await closing
    assert finished == [job.id]
    assert await job.get_state() == "completed"


async def test_close_has_a_deadline_and_leaves_running_jobs_to_the_stalled_check(
    queue, make_worker, caplog
):
    started = asyncio.Event()

    async def hang(job):
        started.set()
        await asyncio.Event().wait()

    worker = make_worker(hang)
    job = await queue.add("hang", {})
    await started.wait()
    began = time.monotonic()
    await worker.close(timeout=0.3)
    assert 0.25 < time.monotonic() - began < 3
    assert await job.get_state() == "active"
    assert "left to the stalled check" in caplog.text and job.id in caplog.text
    (left,) = [r for r in caplog.records if "left to the stalled check" in r.getMessage()]
    assert left.levelno == logging.WARNING  # the graceful close ran out of time


async def test_a_forced_close_leaves_its_running_jobs_without_a_warning(queue, make_worker, caplog):
    # The caller asked for it, so it is INFO: a notebook's forced close (a simulated crash)
    # must not print a warning whose presence depends on timing.
    caplog.set_level(logging.INFO, logger="minibull")
    started = asyncio.Event()

    async def hang(job):
        started.set()
        await asyncio.Event().wait()

    worker = make_worker(hang)
    await queue.add("hang", {})
    await started.wait()
    await worker.close(force=True)
    (left,) = [r for r in caplog.records if "left to the stalled check" in r.getMessage()]
    assert left.levelno == logging.INFO


async def test_close_during_an_outage_while_finishing_stops_at_the_deadline(
    queue, make_worker, caplog
):
    worker = make_worker(lambda job: "ok")
    down = [RedisConnectionError("down")] * 1000
    recorded = fail_first(worker.queue.scripts, "move_to_finished", *down)
    await queue.add("job", {})
    await wait_for(lambda: recorded)
    began = time.monotonic()
    await asyncio.wait_for(worker.close(timeout=0.5), 5)
    assert time.monotonic() - began < 3
    assert "left to the stalled check" in caplog.text


# -- B19: drained once, scheduler planning retried -------------------------------------


async def test_drained_is_emitted_once_each_time_the_queue_empties(queue, make_worker):
    drained = []
    worker = make_worker(lambda job: None, drain_delay=0.02, start=False)
    worker.on("drained", lambda: drained.append(1))
    worker.start()
    await asyncio.sleep(0.3)  # many idle polls
    assert drained == [1]
    job = await queue.add("job", {})
    await job.wait_until_finished(timeout=5)
    await wait_for(lambda: len(drained) == 2)
    await asyncio.sleep(0.2)
    assert len(drained) == 2


async def test_a_scheduler_whose_planning_failed_once_still_advances(queue, make_worker, clock):
    errors, runs = [], []
    worker = make_worker(lambda job: runs.append(job.id))
    worker.on("error", errors.append)
    fail_first(worker.queue.scripts, "update_job_scheduler", RedisConnectionError("blip"))
    await queue.upsert_job_scheduler("tick", {"every": 10})
    await clock.advance(35)
    assert len(runs) == 4, runs
    assert [type(e) for e in errors] == [RedisConnectionError]


# -- S4 and bad text: what goes to Redis is capped and valid UTF-8 -----------------------


async def test_failed_reason_and_stack_traces_are_capped(queue, make_worker):
    async def verbose(job):
        raise ValueError("x" * 100_000)

    make_worker(verbose)
    job = await queue.add("job", {})
    with pytest.raises(minibull.JobFailedError):
        await job.wait_until_finished(timeout=5)
    stored = await queue.get_job(job.id)
    assert len(stored.failed_reason) < 2100 and stored.failed_reason.endswith("characters cut]")
    assert len(stored.stacktrace[0]) < 8100 and stored.stacktrace[0].endswith("characters cut]")


@pytest.mark.parametrize("attempts", [1, 2])
async def test_a_lone_surrogate_in_the_error_text_does_not_lose_the_job(
    queue, make_worker, clock, attempts
):
    async def failing(job):
        raise ValueError("bad input: " + job.data["name"])

    job = await queue.add("s", {"name": "?"}, attempts=attempts)
    # Valid JSON that any other client may write; Python decodes it to a lone surrogate.
    await queue.redis.hset(queue.keys.job(job.id), "data", '{"name": "\\ud800"}')
    make_worker(failing)
    await clock.advance(1)
    with pytest.raises(minibull.JobFailedError, match="bad input: \ufffd"):
        await job.wait_until_finished(timeout=5)
    assert (await queue.get_job(job.id)).attempts_made == attempts


async def test_a_lone_surrogate_in_the_return_value_fails_the_job_with_a_reason(queue, make_worker):
    make_worker(lambda job: {"text": "\ud800"})
    job = await queue.add("s", {})
    with pytest.raises(minibull.JobFailedError, match="lone surrogate"):
        await job.wait_until_finished(timeout=5)


async def test_job_log_keeps_the_newest_lines(queue, make_worker):
    async def chatty(job):
        for n in range(5):
            await job.log(f"line {n}", keep=2)

    make_worker(chatty)
    job = await queue.add("job", {})
    await job.wait_until_finished(timeout=5)
    assert await job.get_logs() == ["line 3", "line 4"]
    with pytest.raises(ValueError, match="keep"):
        await job.log("x", keep=-1)


# -- B10: sandboxed children ------------------------------------------------------------


def die_or_report(job):
    if job.name == "die":
        os._exit(7)
    wakeup_fd = signal.set_wakeup_fd(-1)
    return {
        "wakeup_fd": wakeup_fd,
        "sigint_ignored": signal.getsignal(signal.SIGINT) is signal.SIG_IGN,
    }


async def test_a_dead_sandboxed_child_fails_its_job_and_the_next_job_gets_a_new_one(
    queue, make_worker
):
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)  # as the CLI does: sets a wake-up fd
    try:
        make_worker(die_or_report, sandboxed=True, concurrency=2)
        doomed = await queue.add("die", {})
        with pytest.raises(minibull.JobFailedError, match="child process .* died"):
            await doomed.wait_until_finished(timeout=20)
        after = await queue.add_bulk([{"name": "ok", "data": {}} for _ in range(3)])
        for job in after:
            assert await job.wait_until_finished(timeout=20) == {
                "wakeup_fd": -1,
                "sigint_ignored": True,
            }
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)


# -- B15: QueueEvents ---------------------------------------------------------------------


async def test_queue_events_goes_on_after_a_raising_listener_and_a_lost_connection(
    queue, prefix, caplog
):
    seen, errors = [], []
    events = minibull.QueueEvents("q", prefix=prefix, block=0.05)

    def listener(event):
        seen.append(event["jobId"])
        if len(seen) == 1:
            raise RuntimeError("listener bug")

    async with events:
        events.on("added", listener)
        events.on("error", errors.append)
        await queue.add("one", {})
        await wait_for(lambda: seen == ["1"])
        fail_first(events.redis, "xread", RedisConnectionError("gone"))
        await asyncio.sleep(0.1)
        await queue.add("two", {})
        await wait_for(lambda: seen == ["1", "2"])
    assert [type(e) for e in errors] == [RuntimeError, RedisConnectionError]
    assert "listener bug" in caplog.text


# -- B16: virtual time with global limits --------------------------------------------------


async def test_virtual_time_settles_with_a_global_concurrency_cap(queue, make_worker, clock):
    done = []

    async def report(job):
        await clock.sleep(3600)
        done.append(job.id)

    await queue.set_global_concurrency(1)
    make_worker(report)
    make_worker(report)
    await queue.add_bulk([{"name": "r", "data": {}} for _ in range(3)])
    await asyncio.wait_for(clock.advance(3 * 3600), 20)
    assert sorted(done) == ["1", "2", "3"]


async def test_virtual_time_settles_while_rate_limited(queue, make_worker, clock):
    done = []
    await queue.set_global_rate_limit(1, 3600)  # real seconds: only one job starts here
    make_worker(lambda job: done.append(job.id))
    await queue.add_bulk([{"name": "r", "data": {}} for _ in range(3)])
    await asyncio.wait_for(clock.advance(10), 20)
    assert done == ["1"]


# -- the dashboard and the depth sampler ---------------------------------------------------


async def test_every_reports_a_failed_step_and_goes_on(caplog):
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) <= 2:
            raise RedisConnectionError("gone")

    every = viz.Every(0.01, flaky, name="sampler")
    every.start()
    await wait_for(lambda: len(calls) >= 4)
    assert every.running and isinstance(every.error, type(None))
    await every.stop()
    assert caplog.text.count("sampler failed") == 2
    assert [r.levelno for r in caplog.records if "sampler" in r.getMessage()] == [
        logging.WARNING
    ] * 2
