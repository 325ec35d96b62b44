"""Cancelling a running attempt (issue 16, item 2): ``worker.cancel_job``, the ``CancelSignal``
a processor may take, and the ``timeout=`` job option (seconds on the worker's clock).

A cancelled attempt fails (retried while attempts are left) and is recorded once, whether
the processor is an ``async def`` (its task is cancelled), a thread (the worker stops
waiting, the signal tells the thread) or a sandboxed child (killed)."""

from __future__ import annotations

import asyncio
import functools
import math
import threading
import time
from pathlib import Path

import pytest

import minibull
from minibull.cancellation import Attempt, timeout_ms, wants_signal
from tests.conftest import START_MS, wait_for
from tests.test_input_limits import refused

#: A job's events when its one attempt failed, recorded once.
FAILED_ONCE = ["added", "waiting", "active", "failed", "retries-exhausted"]


def processing(worker: minibull.Worker, job_id: str) -> bool:
    """The worker's processor has started on the job (its attempt can be stopped)."""
    attempt = worker._attempts.get(job_id)
    return attempt is not None and attempt.running


async def event_names(queue: minibull.Queue, job_id: str) -> list[str]:
    entries = await queue.redis.xrange(queue.keys.events)
    return [fields["event"] for _id, fields in entries if fields.get("jobId") == job_id]


# -- cancel_job -----------------------------------------------------------------------------


async def test_cancel_job_cancels_an_async_processor_and_fails_the_attempt(
    queue, make_worker, clock
):
    cleaned = []

    async def processor(job):
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(job.id)  # an async processor cleans up in finally

    worker = make_worker(processor)
    job = await queue.add("upload", {}, attempts=1)
    await wait_for(lambda: processing(worker, job.id))
    assert worker.cancel_job(job.id, "the user pressed stop") is True
    with pytest.raises(minibull.JobFailedError, match="was cancelled: the user pressed stop"):
        await job.wait_until_finished(timeout=5)
    stored = await queue.get_job(job.id)
    assert stored.attempts_made == 1 and cleaned == [job.id]
    assert stored.failed_reason == "job 1 was cancelled: the user pressed stop"
    assert "JobCancelledError" in stored.stacktrace[-1]
    assert worker.cancel_job(job.id) is False  # no longer running here


async def test_a_cancelled_attempt_is_retried_while_attempts_are_left(queue, make_worker, clock):
    runs = []

    async def processor(job):
        runs.append(job.attempts_made)
        if len(runs) == 1:
            await asyncio.Event().wait()
        return "second time"

    worker = make_worker(processor)
    job = await queue.add("upload", {}, attempts=2)
    await wait_for(lambda: runs == [0])
    assert worker.cancel_job(job.id)
    assert await job.wait_until_finished(timeout=5) == "second time"
    assert runs == [0, 1]


async def test_cancel_job_answers_false_for_a_job_it_does_not_run(queue, make_worker, clock):
    worker = make_worker(lambda job: None)
    waiting = await queue.add("later", {}, delay=60)
    assert worker.cancel_job(waiting.id) is False
    assert worker.cancel_job("no-such-job") is False
    assert await waiting.get_state() == "delayed"


async def test_a_processor_may_answer_a_cancel_with_its_own_error(queue, make_worker, clock):
    async def processor(job):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise minibull.UnrecoverableError("stopped by hand: do not retry") from None

    worker = make_worker(processor)
    job = await queue.add("upload", {}, attempts=3)
    await wait_for(lambda: processing(worker, job.id))
    worker.cancel_job(job.id)
    with pytest.raises(minibull.JobFailedError, match="stopped by hand"):
        await job.wait_until_finished(timeout=5)
    assert (await queue.get_job(job.id)).attempts_made == 1  # no retry


async def test_a_processor_that_swallows_the_cancel_still_fails(queue, make_worker, clock):
    async def processor(job):
        if job.name == "next":
            return None
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        return "pretends nothing happened"

    worker = make_worker(processor)
    job = await queue.add("upload", {})
    await wait_for(lambda: processing(worker, job.id))
    worker.cancel_job(job.id, "enough")
    with pytest.raises(minibull.JobFailedError, match="was cancelled: enough"):
        await job.wait_until_finished(timeout=5)
    # the task went on to record the failure, and goes on working
    assert await (await queue.add("next", {})).wait_until_finished(timeout=5) is None


async def test_an_async_processor_with_a_signal_reads_the_reason(queue, make_worker, clock):
    seen = []

    async def processor(job, signal):
        try:
            await asyncio.Event().wait()
        finally:
            seen.append((signal.cancelled, signal.reason))

    worker = make_worker(processor)
    job = await queue.add("upload", {})
    await wait_for(lambda: processing(worker, job.id))
    worker.cancel_job(job.id, "why")
    with pytest.raises(minibull.JobFailedError):
        await job.wait_until_finished(timeout=5)
    assert seen == [(True, "job 1 was cancelled: why")]


async def test_a_thread_processor_stops_on_its_signal_and_frees_its_slot_at_once(
    queue, make_worker, clock
):
    stopped = threading.Event()
    release = threading.Event()

    def processor(job, signal):
        if job.name == "quick":
            return "quick"
        while not signal.cancelled:
            time.sleep(0.01)
        release.wait(5)  # still cleaning up when the worker has moved on
        stopped.set()
        signal.raise_if_cancelled()

    worker = make_worker(processor, concurrency=1)
    job = await queue.add("long", {})
    await wait_for(lambda: processing(worker, job.id))
    worker.cancel_job(job.id)
    with pytest.raises(minibull.JobFailedError, match="was cancelled"):
        await job.wait_until_finished(timeout=5)
    quick = await queue.add("quick", {})
    assert await quick.wait_until_finished(timeout=5) == "quick"  # the slot is free
    assert not stopped.is_set()
    release.set()
    await wait_for(stopped.is_set)
    assert await job.get_state() == "failed"


async def test_a_thread_that_ignores_the_cancel_is_not_waited_for(queue, make_worker, clock):
    release = threading.Event()

    def processor(job):
        release.wait(5)
        return "too late"

    worker = make_worker(processor)
    job = await queue.add("stuck", {})
    await wait_for(lambda: processing(worker, job.id))
    worker.cancel_job(job.id)
    with pytest.raises(minibull.JobFailedError, match="was cancelled"):
        await job.wait_until_finished(timeout=5)
    release.set()
    await asyncio.sleep(0.1)
    stored = await queue.get_job(job.id)
    assert await stored.get_state() == "failed" and stored.returnvalue is None
    assert await event_names(queue, job.id) == FAILED_ONCE


async def test_cancel_all_jobs(queue, make_worker, clock):
    async def processor(job):
        await asyncio.Event().wait()

    worker = make_worker(processor, concurrency=3)
    jobs = [await queue.add("upload", {"n": n}) for n in range(3)]
    await wait_for(lambda: all(processing(worker, job.id) for job in jobs))
    assert worker.cancel_all_jobs("shutting the feature off") == 3
    for job in jobs:
        with pytest.raises(minibull.JobFailedError, match="shutting the feature off"):
            await job.wait_until_finished(timeout=5)


@pytest.mark.timeout(60)
async def test_a_sandboxed_child_is_killed_when_cancelled(queue, make_worker, clock):
    worker = make_worker(_sleep_in_child, sandboxed=True)
    job = await queue.add("crunch", {"seconds": 30})
    await wait_for(lambda: processing(worker, job.id))
    await asyncio.sleep(0.2)  # the child has started the job
    began = time.monotonic()
    worker.cancel_job(job.id)
    with pytest.raises(minibull.JobFailedError, match="was cancelled"):
        await job.wait_until_finished(timeout=10)
    assert time.monotonic() - began < 5
    quick = await queue.add("crunch", {"seconds": 0})
    assert await quick.wait_until_finished(timeout=20) == "slept 0"  # a new child


def _sleep_in_child(job):
    time.sleep(job.data["seconds"])
    return f"slept {job.data['seconds']}"


# -- timeout= ---------------------------------------------------------------------------------


async def test_a_timeout_is_clock_seconds_and_fails_the_attempt(queue, make_worker, clock):
    async def processor(job):
        await clock.sleep(3600)  # an hour of virtual work

    make_worker(processor)
    job = await queue.add("report", {}, timeout=10, attempts=2, backoff=60)
    began = time.monotonic()
    await clock.advance(9.999)
    assert await job.get_state() == "active"
    await clock.advance(0.001)
    stored = await queue.get_job(job.id)
    assert await stored.get_state() == "delayed"  # retried per attempts, after its backoff
    assert stored.failed_reason == "job 1 timed out after 10 s (its timeout)"
    await clock.advance(60 + 10)
    stored = await queue.get_job(job.id)
    assert await stored.get_state() == "failed" and stored.attempts_made == 2
    assert stored.finished_on == START_MS + 10_000 + 60_000 + 10_000
    assert time.monotonic() - began < 5  # virtual seconds took no real time


async def test_a_timeout_on_real_time(prefix):
    queue = minibull.Queue("q", prefix=prefix)
    worker = minibull.Worker("q", _sleep_five, prefix=prefix)
    try:
        async with worker:
            job = await queue.add("slow", {}, timeout=0.2)
            began = time.monotonic()
            with pytest.raises(minibull.JobFailedError, match="timed out after 0.2 s"):
                await job.wait_until_finished(timeout=5)
            assert 0.15 < time.monotonic() - began < 2
    finally:
        await queue.close()


async def _sleep_five(job):
    await asyncio.sleep(5)


async def test_a_timed_out_job_lets_go_of_its_lock_and_slot(queue, make_worker, clock):
    async def processor(job):
        if job.name == "slow":
            await clock.sleep(3600)
        return job.name

    worker = make_worker(processor, concurrency=1)
    slow = await queue.add("slow", {}, timeout=5)
    quick = await queue.add("quick", {})
    await clock.advance(5)
    assert await slow.get_state() == "failed"
    assert await quick.wait_until_finished(timeout=5) == "quick"
    assert await queue.redis.exists(queue.keys.lock(slow.id)) == 0
    assert worker._held_locks == {} and worker._attempts == {}
    assert await queue.redis.lrange(queue.keys.active, 0, -1) == []


async def test_finishing_at_the_instant_of_the_timeout_is_recorded_once(queue, make_worker, clock):
    # The processor's own sleep ends at the same virtual instant as its timeout: the timeout
    # (its timer came first) wins, the attempt is recorded once, and the job the same task
    # fetches next is not touched by anything left of the first.
    async def processor(job):
        await clock.sleep(10)
        return job.name

    worker = make_worker(processor, concurrency=1)
    first = await queue.add("first", {}, timeout=10)
    second = await queue.add("second", {})
    errors = []
    worker.on("error", errors.append)
    await clock.advance(10)
    stored = await queue.get_job(first.id)
    assert await stored.get_state() == "failed" and stored.attempts_made == 1
    assert "timed out" in stored.failed_reason
    await clock.advance(10)
    assert await second.wait_until_finished(timeout=5) == "second"
    assert await event_names(queue, first.id) == FAILED_ONCE
    assert errors == []


async def test_a_timer_left_from_a_finished_job_never_cancels_the_next(queue, make_worker, clock):
    async def processor(job):
        await clock.sleep(job.data["work"])
        return job.name

    make_worker(processor, concurrency=1)
    first = await queue.add("first", {"work": 5}, timeout=10)
    second = await queue.add("second", {"work": 20})  # runs from 5 to 25, past 10
    await clock.advance(30)
    assert await first.wait_until_finished(timeout=5) == "first"
    assert await second.wait_until_finished(timeout=5) == "second"


async def test_a_cancel_and_a_return_in_the_same_instant_count_once(queue, make_worker, clock):
    # A thread returns; its cancel was queued on the loop just before: the cancel wins,
    # the return value is dropped, one failure is recorded.
    worker = None

    def processor(job):
        loop.call_soon_threadsafe(worker.cancel_job, job.id, "at the same time")
        return "returned"

    loop = asyncio.get_running_loop()
    worker = make_worker(processor)
    job = await queue.add("race", {})
    with pytest.raises(minibull.JobFailedError, match="at the same time"):
        await job.wait_until_finished(timeout=5)
    await asyncio.sleep(0.05)
    assert await event_names(queue, job.id) == FAILED_ONCE


def test_an_attempt_that_ended_ignores_a_late_cancel():
    async def scenario():
        task = asyncio.current_task()
        attempt = Attempt("1", task)
        assert attempt.start(minibull.SystemClock(), 0, None)
        attempt.end()
        assert attempt.cancel("too late") is False and not attempt.cancelled
        assert attempt.outcome(None) is None

    asyncio.run(scenario())


async def test_a_job_cancelled_before_its_processor_starts_never_runs(queue, make_worker, clock):
    ran = []
    worker = make_worker(ran.append, start=False)
    answers = []
    worker.on("active", lambda job: answers.append(worker.cancel_job(job.id, "too soon")))
    job = await queue.add("a", {})
    worker.start()
    with pytest.raises(minibull.JobFailedError, match="was cancelled: too soon"):
        await job.wait_until_finished(timeout=5)
    assert answers == [True] and ran == []
    assert (await queue.get_job(job.id)).attempts_made == 1


# -- options and bad input --------------------------------------------------------------------


async def test_the_timeout_is_stored_in_ms_where_bullmq_ignores_it(queue):
    job = await queue.add("a", {}, timeout=2.5)
    assert job.opts["timeout"] == 2500
    assert (await queue.get_job(job.id)).opts["timeout"] == 2500
    assert timeout_ms({"timeout": 2500}) == 2500
    for garbage in ("2500", -1, 0, True, None, 1e300, math.nan):
        assert timeout_ms({"timeout": garbage}) is None


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (0, ValueError),
        (0.0001, ValueError),
        (-1, ValueError),
        (math.nan, ValueError),
        (6 * 365 * 24 * 3600, ValueError),
        ("10", TypeError),
        (True, TypeError),
    ],
)
async def test_bad_timeouts_are_refused_and_nothing_is_written(queue, timeout, error):
    await queue.add("a", {})
    await refused(queue, error, "timeout", lambda: queue.add("b", {}, timeout=timeout))
    spec = [{"name": "b", "data": {}, "timeout": timeout}]
    await refused(queue, error, "timeout", lambda: queue.add_bulk(spec))


async def test_bad_cancel_arguments_are_refused(queue, make_worker, clock):
    worker = make_worker(lambda job: None, start=False)
    with pytest.raises(TypeError, match="job_id"):
        worker.cancel_job(1)
    with pytest.raises(ValueError, match="job_id"):
        worker.cancel_job("")
    with pytest.raises(TypeError, match="reason"):
        worker.cancel_job("1", reason=42)
    with pytest.raises(ValueError, match="reason"):
        worker.cancel_all_jobs(reason="\ud800")


@pytest.mark.timeout(60)
async def test_a_sandboxed_child_stops_on_its_signal(queue, make_worker, clock, tmp_path):
    worker = make_worker(_stop_in_child, sandboxed=True)
    note = tmp_path / "note"
    job = await queue.add("crunch", {"note": str(note)})
    await wait_for(note.exists)  # the child is working
    began = time.monotonic()
    worker.cancel_job(job.id, "enough")
    with pytest.raises(minibull.JobFailedError, match="was cancelled: enough"):
        await job.wait_until_finished(timeout=10)
    assert note.read_text() == "stopped on the signal"
    assert time.monotonic() - began < 5


def _stop_in_child(job, signal):
    note = Path(job.data["note"])
    note.write_text("working")
    deadline = time.monotonic() + 30
    while not signal.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    note.write_text("stopped on the signal" if signal.cancelled else "never told")
    signal.raise_if_cancelled()


def _takes_a_signal(job, signal):
    return None


def test_which_processors_get_the_signal():
    assert wants_signal(_takes_a_signal)
    assert wants_signal(lambda job, *rest: None)
    assert not wants_signal(lambda job: None)
    assert not wants_signal(lambda job, *, signal=None: None)  # keyword-only: not passed
    assert not wants_signal(functools.partial(_takes_a_signal, signal=None))
    assert wants_signal(functools.partial(_takes_a_signal))
