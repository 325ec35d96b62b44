"""Side effects done once although the job runs again; CPU work in sandboxed processors."""

from __future__ import annotations

import asyncio
import time

import pytest

import minibull
from minibull.idempotency import forget


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
        if len(calls) == 1:
            raise TimeoutError("payment API timed out")
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
