"""The manual rate limit (issue 16, item 1): ``worker.rate_limit(seconds)`` then
``raise RateLimitError`` puts the job back without using an attempt and holds every worker
of the queue until the window ends (BullMQ's limiter key and moveJobFromActiveToWait).

Rate-limit windows are Redis expiries: real time, whatever the clock, so these tests
measure real time with short windows."""

from __future__ import annotations

import asyncio
import math
import re
import time
from pathlib import Path

import pytest

import minibull
from minibull import scripts
from minibull.keys import QueueKeys
from minibull.scripts import MANUAL_RATE_LIMIT
from tests.conftest import wait_for
from tests.test_input_limits import refused


class FakeProvider:
    """An API that allows ``quota`` calls, then answers 429 with Retry-After until the
    window has passed (real time), when the quota starts again."""

    def __init__(self, quota: int, retry_after: float) -> None:
        self.quota, self.retry_after = quota, retry_after
        self.used, self.reopens_at = 0, None
        self.answers: list[int] = []

    def call(self) -> tuple[int, float]:
        """(status, Retry-After seconds): 200 and 0, or 429 and the seconds left."""
        now = time.monotonic()
        if self.reopens_at is not None and now >= self.reopens_at:
            self.used, self.reopens_at = 0, None  # the window has passed: a new quota
        if self.used >= self.quota:
            self.answers.append(429)
            if self.reopens_at is None:
                self.reopens_at = now + self.retry_after
            return 429, self.reopens_at - now
        self.used += 1
        self.answers.append(200)
        return 200, 0.0


def polite(provider: FakeProvider, limit: minibull.Queue) -> object:
    """The processor of the README's example: on 429, hold the queue for Retry-After."""

    async def call_provider(job: minibull.Job) -> str:
        status, retry_after = provider.call()
        if status == 429:
            await limit.rate_limit(retry_after)
            raise minibull.RateLimitError()
        return "sent"

    return call_provider


async def test_a_429_holds_every_worker_and_uses_no_attempt(queue, make_worker, clock):
    provider = FakeProvider(quota=2, retry_after=0.5)
    jobs = [await queue.add("sms", {"n": n}, attempts=1) for n in range(4)]
    started = time.monotonic()
    make_worker(polite(provider, queue))
    make_worker(polite(provider, queue))  # a second worker, no limiter of its own
    for job in jobs:
        assert await job.wait_until_finished(timeout=10) == "sent"
    took = time.monotonic() - started
    # two calls went through, then 429 (once, or twice if both workers called before the
    # limit was set), then nothing until the window ended
    limited = provider.answers.count(429)
    assert provider.answers[:3] == [200, 200, 429] and limited in (1, 2)
    assert provider.answers.count(200) == 4
    assert took >= 0.45
    started = 0
    for job in jobs:
        stored = await queue.get_job(job.id)
        assert await stored.get_state() == "completed"
        assert stored.attempts_made == 1  # the rate-limited run was no attempt
        started += stored.attempts_started
    assert started == 4 + limited


async def test_the_job_goes_back_to_the_front_of_the_line(queue, make_worker, clock):
    order: list[str] = []

    async def processor(job):
        order.append(job.id)
        if job.id == "1" and job.attempts_started == 1:
            await queue.rate_limit(0.3)
            raise minibull.RateLimitError()

    first = await queue.add("a", {})
    make_worker(processor, concurrency=1)
    await wait_for(lambda: order == ["1"])
    await queue.add_bulk([{"name": "b", "data": {}}, {"name": "c", "data": {}}])
    await first.wait_until_finished(timeout=5)
    await wait_for(lambda: len(order) == 4)
    assert order == ["1", "1", "2", "3"]


async def test_a_prioritized_job_goes_ahead_of_its_equals(queue, make_worker, clock):
    events = []

    async def processor(job):
        if job.id == "1" and job.attempts_started == 1:
            await queue.add("equal", {}, priority=5)
            await queue.rate_limit(10)
            raise minibull.RateLimitError()

    await queue.add("first", {}, priority=5)
    worker = make_worker(processor)
    worker.on("active", lambda job: events.append(job.id))
    await wait_for(lambda: queue.redis.zcard(queue.keys.prioritized))
    await wait_for(lambda: _zlen_is(queue, 2))
    assert await queue.redis.zrange(queue.keys.prioritized, 0, -1) == ["1", "2"]
    stored = await queue.get_job("1")
    assert await stored.get_state() == "prioritized" and stored.attempts_made == 0
    assert 9 < await queue.get_rate_limit_ttl() <= 10


async def _zlen_is(queue: minibull.Queue, n: int) -> bool:
    return await queue.redis.zcard(queue.keys.prioritized) == n


async def test_a_manual_limit_holds_a_worker_with_a_limiter_and_one_without(
    queue, make_worker, clock
):
    await queue.rate_limit(0.4)
    assert await queue.redis.get(queue.keys.limiter) == str(MANUAL_RATE_LIMIT)
    started: list[float] = []
    t0 = time.monotonic()
    job = await queue.add("a", {})
    other = await queue.add("b", {})
    make_worker(lambda j: started.append(time.monotonic() - t0))
    make_worker(
        lambda j: started.append(time.monotonic() - t0), limiter={"max": 100, "duration": 1}
    )
    await job.wait_until_finished(timeout=5)
    await other.wait_until_finished(timeout=5)
    assert len(started) == 2 and min(started) >= 0.35


async def test_a_virtual_clock_counts_a_rate_limited_worker_as_idle(queue, make_worker, clock):
    # advance() must not wait for the window (real time) to end: nothing can start meanwhile
    await queue.rate_limit(30)
    job = await queue.add("a", {})
    make_worker(lambda j: None)
    began = time.monotonic()
    await clock.advance(5)
    assert time.monotonic() - began < 5
    assert await job.get_state() == "waiting"


async def test_the_script_refuses_a_wrong_token_and_changes_nothing(queue, make_worker, clock):
    release = asyncio.Event()

    async def hold(job):
        await release.wait()

    job = await queue.add("a", {})
    make_worker(hold)
    await wait_for(lambda: _is_active(queue, job.id))
    call = queue.scripts.move_job_from_active_to_wait
    await refused(queue, minibull.LockLostError, "held by another", lambda: call("1", "x", 0))
    missing = lambda: call("nope", "x", 0)  # noqa: E731
    await refused(queue, minibull.JobNotFoundError, "does not exist", missing)
    release.set()
    await job.wait_until_finished(timeout=5)


async def _is_active(queue: minibull.Queue, job_id: str) -> bool:
    return job_id in await queue.redis.lrange(queue.keys.active, 0, -1)


async def test_a_rerun_of_the_script_changes_nothing(queue):
    # The reply lost, the call sent again: the same answer, the job pushed once.
    job = await queue.add("a", {})
    await queue.redis.rpoplpush(queue.keys.wait, queue.keys.active)
    await queue.redis.set(queue.keys.lock(job.id), "tok")
    await queue.rate_limit(20)
    first = await queue.scripts.move_job_from_active_to_wait(job.id, "tok", 0)
    again = await queue.scripts.move_job_from_active_to_wait(job.id, "tok", 0)
    assert 19_000 < again <= first <= 20_000
    assert await queue.redis.lrange(queue.keys.wait, 0, -1) == [job.id]
    assert await queue.redis.lrange(queue.keys.active, 0, -1) == []
    assert await queue.redis.hget(queue.keys.job(job.id), "atm") is None
    events = [f for _i, f in await queue.redis.xrange(queue.keys.events)]
    assert events[-1] == {"event": "waiting", "jobId": job.id, "prev": "active", "ts": "0"}
    assert [e["event"] for e in events].count("waiting") == 2  # added, put back: once


async def test_put_back_on_a_paused_queue_sets_no_marker(queue):
    job = await queue.add("a", {})
    await queue.redis.rpoplpush(queue.keys.wait, queue.keys.active)
    await queue.redis.set(queue.keys.lock(job.id), "tok")
    await queue.pause()
    await queue.redis.delete(queue.keys.marker)
    assert await queue.scripts.move_job_from_active_to_wait(job.id, "tok", 0) == 0
    assert await queue.redis.zcard(queue.keys.marker) == 0
    assert await job.get_state() == "waiting"


@pytest.mark.parametrize(
    ("seconds", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (6 * 365 * 24 * 3600, ValueError),
        ("5", TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
async def test_bad_windows_are_refused_and_nothing_is_written(queue, make_worker, seconds, error):
    await queue.add("a", {})
    await refused(queue, error, "seconds", lambda: queue.rate_limit(seconds))
    worker = make_worker(lambda j: None, start=False)
    await refused(queue, error, "seconds", lambda: worker.rate_limit(seconds))


def test_the_builder_names_bullmq_keys():
    keys = QueueKeys("q")
    script_keys, argv = scripts.move_job_from_active_to_wait_args(keys, "7", "tok", 1000)
    suffixes = ["active", "wait", "stalled", "meta", "limiter", "prioritized", "marker", "events"]
    assert script_keys == [f"bull:q:{s}" for s in suffixes]
    assert argv == ["bull:q:", "7", "tok", 1000]
    assert MANUAL_RATE_LIMIT == 9007199254740991  # BullMQ's Number.MAX_SAFE_INTEGER


# -- the README's example, run as printed ------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    """The README's ``py`` block that raises RateLimitError."""
    blocks = re.findall(r"^```py\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    (block,) = [b for b in blocks if "RateLimitError" in b]
    return block


class Response:
    """What the README's API client returns: a status, headers and a JSON body."""

    def __init__(self, status: int, retry_after: float) -> None:
        self.status = status
        self.headers = {"Retry-After": f"{retry_after:.3f}"} if status == 429 else {}

    def json(self) -> dict[str, str]:
        return {"status": "sent"}


class Client:
    """An async client over ``FakeProvider``."""

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider

    async def send(self, data: object) -> Response:
        return Response(*self.provider.call())


async def test_the_readme_example_runs(queue, make_worker, clock):
    provider = FakeProvider(quota=1, retry_after=0.3)
    namespace = {"minibull": minibull, "provider": Client(provider)}
    exec(readme_example(), namespace)
    worker = make_worker(namespace["send_sms"], start=False)
    namespace["worker"] = worker
    jobs = [await queue.add("sms", {"to": n}, attempts=1) for n in range(2)]
    began = time.monotonic()
    worker.start()
    for job in jobs:
        assert await job.wait_until_finished(timeout=10) == {"status": "sent"}
    assert provider.answers == [200, 429, 200]
    assert time.monotonic() - began >= 0.25
