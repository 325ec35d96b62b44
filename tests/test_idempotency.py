"""Side effects done once although the job runs again; CPU work in sandboxed processors."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest

import minibull
from minibull.idempotency import forget
from tests.conftest import wait_for


async def test_a_retried_job_does_not_repeat_its_side_effect(queue, make_worker, clock):
    sent = []

    async def send_welcome(job):
        receipt = await minibull.once(
            job, f"welcome:{job.data['to']}", lambda: sent.append(job.data["to"]) or len(sent)
        )
        if job.attempts_made == 0:
            raise ConnectionError("crashed after sending")  # the email went out, then we died
        return receipt

    make_worker(send_welcome)
    job = await queue.add("welcome", {"to": "ada"}, attempts=3, backoff=10)
    await clock.advance(60)
    assert await job.wait_until_finished(timeout=5) == 1
    assert sent == ["ada"]  # once, not twice
    assert (await queue.get_job(job.id)).attempts_made == 2


async def test_without_once_the_retry_repeats_it(queue, make_worker, clock):
    sent = []

    async def send_welcome(job):
        sent.append(job.data["to"])
        if job.attempts_made == 0:
            raise ConnectionError("crashed after sending")

    make_worker(send_welcome)
    await queue.add("welcome", {"to": "ada"}, attempts=3, backoff=10)
    await clock.advance(60)
    assert sent == ["ada", "ada"]


async def test_a_failed_side_effect_can_be_tried_again(queue, make_worker, clock):
    calls = []

    def flaky_charge():
        calls.append(1)
        if len(calls) == 1:  # refused: the charge surely did not happen
            raise ConnectionRefusedError("payment API refused the connection")
        return {"charge": "ch_1"}

    async def process(job):
        return await minibull.once(job, "charge:1", flaky_charge)

    make_worker(process)
    job = await queue.add("charge", {}, attempts=2)
    assert await job.wait_until_finished(timeout=5) == {"charge": "ch_1"}
    assert len(calls) == 2
    await forget(job, "charge:1")
    assert await queue.redis.get(queue.keys.idempotency("charge:1")) is None


async def test_a_concurrent_run_sees_the_claim(queue):
    job = await queue.add("charge", {})
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_effect():
        started.set()
        await release.wait()
        return "ok"

    first = asyncio.create_task(minibull.once(job, "k", slow_effect))
    await started.wait()
    with pytest.raises(minibull.SideEffectBusyError):
        await minibull.once(job, "k", slow_effect)
    release.set()
    assert await first == "ok"
    assert await minibull.once(job, "k", slow_effect) == "ok"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"ttl": 0}, ValueError),
        ({"ttl": 0.0001}, ValueError),
        ({"ttl": -1}, ValueError),
        ({"ttl": float("nan")}, ValueError),
        ({"ttl": 1e20}, ValueError),
        ({"ttl": "7d"}, TypeError),
        ({"lease": 0}, ValueError),
        ({"lease": timedelta(seconds=-1)}, ValueError),
        ({"lease": None}, TypeError),
    ],
)
async def test_bad_ttl_or_lease_is_refused_before_the_action(queue, options, error):
    job = await queue.add("charge", {})
    ran = []
    name = next(iter(options))
    with pytest.raises(error, match=name):
        await minibull.once(job, "k", lambda: ran.append(1), **options)
    assert ran == []
    assert await queue.redis.get(queue.keys.idempotency("k")) is None  # no claim left


async def test_a_result_that_is_not_json_is_recorded_so_the_effect_does_not_repeat(queue):
    job = await queue.add("charge", {})
    sent = []

    def send():
        sent.append(1)
        return object()  # e.g. an HTTP response object

    with pytest.raises(TypeError, match="recorded as done with result None"):
        await minibull.once(job, "k", send)
    assert await minibull.once(job, "k", send) is None  # the retry: not sent again
    assert sent == [1]


async def test_the_lease_is_renewed_while_the_action_runs(queue):
    job = await queue.add("charge", {})
    record_key = queue.keys.idempotency("k")
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_effect():
        started.set()
        await release.wait()
        return "ok"

    first = asyncio.create_task(minibull.once(job, "k", slow_effect, lease=0.3))
    await started.wait()
    deadline = time.monotonic() + 1.2  # four leases
    while time.monotonic() < deadline:
        assert await queue.redis.pttl(record_key) > 0
        with pytest.raises(minibull.SideEffectBusyError):
            await minibull.once(job, "k", slow_effect, lease=0.3)
        await asyncio.sleep(0.05)
    release.set()
    assert await first == "ok"
    assert json.loads(await queue.redis.get(record_key)) == {"done": True, "result": '"ok"'}


@pytest.mark.parametrize("meanwhile", ["expired", "another run"])
async def test_a_claim_that_expired_during_the_action_is_reported(queue, caplog, meanwhile):
    job = await queue.add("charge", {})
    record_key = queue.keys.idempotency("k")

    async def effect():
        # What a lease running out (the renewals failing) looks like from here.
        await queue.redis.delete(record_key)
        if meanwhile == "another run":
            await queue.redis.set(record_key, json.dumps({"token": "other"}), px=60_000)
        return "ok"

    assert await minibull.once(job, "k", effect) == "ok"
    if meanwhile == "expired":  # nobody else claimed it: recorded all the same
        assert "recorded now" in caplog.text
        assert await minibull.once(job, "k", effect) == "ok"
    else:
        assert "it may have happened twice" in caplog.text
        assert json.loads(await queue.redis.get(record_key)) == {"token": "other"}


@pytest.mark.parametrize("outcome", ["cancelled", "timed out"])
async def test_an_unknown_outcome_keeps_the_claim_until_the_lease_ends(queue, outcome, caplog):
    job = await queue.add("charge", {})
    record_key = queue.keys.idempotency("k")
    started = asyncio.Event()
    calls = []

    async def request():
        calls.append(1)
        started.set()
        if outcome == "timed out":
            raise TimeoutError("no answer from the payment API")
        await asyncio.Event().wait()  # never answers

    task = asyncio.create_task(minibull.once(job, "k", request, lease=0.5))
    await started.wait()
    task.cancel()
    with pytest.raises((asyncio.CancelledError, TimeoutError)):
        await task
    assert "outcome unknown" in caplog.text
    with pytest.raises(minibull.SideEffectBusyError):  # a retry right away does not repeat it
        await minibull.once(job, "k", request)

    async def lease_ended():
        return await queue.redis.get(record_key) is None

    await wait_for(lease_ended, timeout=5)  # not renewed any more

    async def succeed():
        calls.append(2)
        return "charged"

    assert await minibull.once(job, "k", succeed) == "charged"
    assert calls == [1, 2]


def burn_cpu(job):
    """Module-level, so the sandbox can pickle it: 1.5 s of pure computation."""
    end = time.monotonic() + job.data["seconds"]
    n = 0
    while time.monotonic() < end:
        n += 1
    return {"loops": n > 0, "had_connection": job.queue is not None}


async def test_a_sandboxed_cpu_bound_job_longer_than_its_lock_is_not_stalled(queue, make_worker):
    stalled = []
    worker = make_worker(burn_cpu, sandboxed=True, lock_duration=0.5, stalled_interval=0.1)
    worker.on("stalled", stalled.append)
    # A second worker that only sweeps for stalled jobs (paused, it takes none).
    sweeper = make_worker(lambda job: None, stalled_interval=0.1, start=False)
    sweeper.on("stalled", stalled.append)
    await sweeper.pause()
    sweeper.start()
    job = await queue.add("crunch", {"seconds": 1.5})
    assert await job.wait_until_finished(timeout=15) == {"loops": True, "had_connection": False}
    assert stalled == []
    assert (await queue.get_job(job.id)).stalled_counter == 0
