"""BullMQ's backoff formulas, and retries scheduled by them on virtual time."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import minibull
from minibull.backoff import MAX_DELAY_MS, backoff_delay, backoff_schedule
from tests.conftest import START_MS


def test_fixed_and_exponential_match_bullmq():
    assert backoff_schedule(2, attempts=4) == [2000, 2000, 2000]
    assert backoff_schedule({"type": "exponential", "delay": 1}, attempts=5) == [
        1000,
        2000,
        4000,
        8000,
    ]


@given(
    kind=st.sampled_from(["fixed", "exponential"]),
    delay=st.integers(0, 10**7),
    jitter=st.floats(0, 1),
    attempt=st.integers(1, 20),
    seed=st.integers(0, 2**32),
)
def test_jitter_stays_between_delay_times_one_minus_jitter_and_delay(
    kind, delay, jitter, attempt, seed
):
    full = backoff_delay({"type": kind, "delay": delay}, attempt)
    jittered = backoff_delay(
        {"type": kind, "delay": delay, "jitter": jitter}, attempt, random.Random(seed)
    )
    assert full * (1 - jitter) - 1 <= jittered <= full


@given(
    kind=st.sampled_from(["fixed", "exponential"]),
    delay=st.integers(-(10**30), 10**30) | st.floats(-1e300, 1e300),
    attempt=st.integers(0, 10**6),
    jitter=st.floats(0, 1),
)
def test_a_backoff_delay_is_never_more_than_5_years(kind, delay, attempt, jitter):
    # Stored options may come from another client (BullMQ accepts any delay); before, an
    # exponential delay of 1e20 ms put a retry 10^15 days away, and attempt 10^6 made a
    # 300,000-digit integer.
    stored = {"type": kind, "delay": delay, "jitter": jitter}
    assert 0 <= backoff_delay(stored, attempt, random.Random(0)) <= MAX_DELAY_MS


def test_huge_backoff_options_are_capped_at_5_years():
    assert backoff_delay({"type": "exponential", "delay": 10**20}, 1) == MAX_DELAY_MS
    assert backoff_delay({"type": "exponential", "delay": 1000}, 10**9) == MAX_DELAY_MS
    assert backoff_delay({"type": "fixed", "delay": 10**20}, 3) == MAX_DELAY_MS


def test_custom_types_are_left_to_the_worker():
    assert backoff_delay({"type": "linear"}, 3) is None
    assert backoff_delay(None, 3) == 0


async def run_failing_job(queue, make_worker, clock, fail_times, advance, **options):
    """Add a job that fails ``fail_times`` times; return (attempt times in s from start, job)."""
    runs = []

    async def flaky(job):
        runs.append(((clock.now() - START_MS) / 1000, job.attempts_made))
        if job.attempts_made < fail_times:
            raise RuntimeError(f"failure {job.attempts_made + 1}")
        return "done"

    make_worker(flaky, backoff_strategy=options.pop("backoff_strategy", None))
    job = await queue.add("flaky", {}, **options)
    await clock.advance(advance)
    return runs, await queue.get_job(job.id)


async def test_fixed_backoff_on_virtual_time(queue, make_worker, clock):
    runs, job = await run_failing_job(queue, make_worker, clock, 2, 3600, attempts=3, backoff=600)
    assert runs == [(0, 0), (600, 1), (1200, 2)]
    assert job.returnvalue == "done" and job.attempts_made == 3
    assert await job.get_state() == "completed"


async def test_exponential_backoff_on_virtual_time(queue, make_worker, clock):
    runs, job = await run_failing_job(
        queue,
        make_worker,
        clock,
        3,
        86400,
        attempts=4,
        backoff={"type": "exponential", "delay": 3600},
    )
    assert runs == [(0, 0), (3600, 1), (3 * 3600, 2), (7 * 3600, 3)]
    assert job.finished_on == START_MS + 7 * 3600 * 1000


async def test_jittered_backoff_is_within_bounds_and_reproducible(queue, make_worker, clock):
    runs, job = await run_failing_job(
        queue,
        make_worker,
        clock,
        3,
        86400,
        attempts=4,
        backoff={"type": "exponential", "delay": 1000, "jitter": 0.5},
    )
    waits = [later[0] - earlier[0] for earlier, later in zip(runs, runs[1:], strict=False)]
    for wait, full in zip(waits, [1000, 2000, 4000], strict=True):
        assert full / 2 <= wait <= full
    # Jitter is seeded by the job and attempt, so the same run gives the same timeline.
    expected = [
        backoff_delay(
            {"type": "exponential", "delay": 1_000_000, "jitter": 0.5},
            attempt,
            random.Random(f"{queue.keys.job(job.id)}:{attempt}"),
        )
        / 1000
        for attempt in (1, 2, 3)
    ]
    assert waits == pytest.approx(expected)


async def test_custom_backoff_strategy(queue, make_worker, clock):
    seen = []

    def linear(attempts_made, kind, error, job):
        seen.append((attempts_made, kind, str(error)))
        return 10 * attempts_made

    runs, job = await run_failing_job(
        queue,
        make_worker,
        clock,
        2,
        3600,
        attempts=3,
        backoff="linear",
        backoff_strategy=linear,
    )
    assert runs == [(0, 0), (10, 1), (30, 2)]
    assert seen == [(1, "linear", "failure 1"), (2, "linear", "failure 2")]


async def test_custom_backoff_returning_minus_one_fails_at_once(queue, make_worker, clock):
    runs, job = await run_failing_job(
        queue,
        make_worker,
        clock,
        5,
        3600,
        attempts=5,
        backoff="give-up",
        backoff_strategy=lambda *args: -1,
    )
    assert runs == [(0, 0)]
    assert await job.get_state() == "failed" and job.failed_reason == "failure 1"


async def test_custom_type_without_strategy_fails_the_job(queue, make_worker, clock):
    runs, job = await run_failing_job(queue, make_worker, clock, 5, 3600, attempts=5, backoff="x")
    assert runs == [(0, 0)]
    assert await job.get_state() == "failed"


async def test_unrecoverable_error_fails_at_once(queue, make_worker, clock):
    runs = []

    async def processor(job):
        runs.append(job.attempts_made)
        raise minibull.UnrecoverableError("card declined")

    make_worker(processor)
    job = await queue.add("charge", {}, attempts=5, backoff=1)
    with pytest.raises(minibull.JobFailedError, match="card declined"):
        await job.wait_until_finished(timeout=5)
    assert runs == [0]
    job = await queue.get_job(job.id)
    assert job.attempts_made == 1 and job.failed_reason == "card declined"


async def test_exhausted_attempts_end_in_failed_with_reason_and_stacktraces(
    queue, make_worker, clock
):
    runs, job = await run_failing_job(queue, make_worker, clock, 10, 3600, attempts=3, backoff=0)
    assert [attempt for _, attempt in runs] == [0, 1, 2]
    assert await job.get_state() == "failed"
    assert job.failed_reason == "failure 3" and job.attempts_made == 3
    assert len(job.stacktrace) == 3 and "RuntimeError: failure 3" in job.stacktrace[-1]
    events = [f["event"] for _, f in await queue.redis.xrange(queue.keys.events)]
    assert events.count("failed") == 1 and events.count("retries-exhausted") == 1
    assert events.count("waiting") == 3  # added, then two immediate retries


@pytest.mark.parametrize("strategy", [lambda *a: None, lambda *a: 1 / 0, lambda *a: "soon"])
async def test_a_broken_backoff_strategy_fails_the_job_and_reports_it(
    queue, make_worker, clock, strategy
):
    errors = []

    async def failing(job):
        raise RuntimeError("boom")

    worker = make_worker(failing, backoff_strategy=strategy, start=False)
    worker.on("error", errors.append)
    worker.start()
    job = await queue.add("x", {}, attempts=3, backoff="capped")
    with pytest.raises(minibull.JobFailedError, match="boom"):
        await job.wait_until_finished(timeout=5)
    assert len(errors) == 1
