"""Locks, stalled jobs and crashes: a job whose worker dies is not lost (at-least-once)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import fakeredis
import pytest

import minibull
from minibull.connection import redis_url
from tests.conftest import free_port, wait_for

FAST = {"lock_duration": 0.5, "stalled_interval": 0.2}


async def never_finishes(job):
    await asyncio.Event().wait()


async def test_lock_renewal_keeps_a_long_job_from_stalling(queue, make_worker):
    stalled, runs = [], []

    async def long_job(job):
        runs.append(job.id)
        await asyncio.sleep(2.5)  # two and a half lock durations
        return "finished"

    worker = make_worker(long_job, lock_duration=1.0, stalled_interval=0.1)
    worker.on("stalled", stalled.append)
    # A second worker that only sweeps for stalled jobs (paused, it takes none).
    sweeper = make_worker(lambda job: None, stalled_interval=0.1, start=False)
    sweeper.on("stalled", stalled.append)
    await sweeper.pause()
    sweeper.start()
    job = await queue.add("long", {})
    assert await job.wait_until_finished(timeout=10) == "finished"
    assert stalled == [] and runs == [job.id]
    assert (await queue.get_job(job.id)).stalled_counter == 0


async def test_a_crashed_workers_job_is_recovered_by_another(queue, make_worker):
    started = asyncio.Event()

    async def hang(job):
        started.set()
        await asyncio.Event().wait()

    crashing = make_worker(hang, **FAST)
    job = await queue.add("email", {}, attempts=1)
    await started.wait()
    # Cancel its tasks without cleanup: the lock stays until it expires, as after a crash.
    await crashing.close(force=True)
    assert await job.get_state() == "active"

    stalled = []
    rescuer = make_worker(lambda job: "rescued", **FAST)
    rescuer.on("stalled", stalled.append)
    assert await job.wait_until_finished(timeout=10) == "rescued"
    assert stalled == [job.id]
    job = await queue.get_job(job.id)
    assert (job.attempts_started, job.attempts_made, job.stalled_counter) == (2, 1, 1)
    events = [f["event"] for _, f in await queue.redis.xrange(queue.keys.events)]
    assert events.count("stalled") == 1


async def test_a_job_stalled_too_often_fails_and_both_steps_are_logged(queue, make_worker, caplog):
    started = asyncio.Event()

    async def hang(job):
        started.set()
        await asyncio.Event().wait()

    crashing = make_worker(hang, **FAST)
    job = await queue.add("poison", {}, attempts=5)
    await started.wait()
    await crashing.close(force=True)

    ran = []
    make_worker(lambda job: ran.append(job.id), max_stalled_count=0, **FAST)
    with pytest.raises(minibull.JobFailedError, match="stalled more than allowable limit"):
        await job.wait_until_finished(timeout=10)
    assert ran == []  # failed on pickup, not run again
    assert f"job {job.id} stalled (its worker died or lost the lock)" in caplog.text
    assert f"job {job.id} fails: job stalled more than allowable limit" in caplog.text


# -- a real crash: SIGKILL a worker process in the middle of a job ---------------

WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    import minibull

    url, prefix, flag = sys.argv[1:4]

    async def hang(job):
        Path(flag).write_text(job.id)
        await asyncio.Event().wait()

    async def main():
        worker = minibull.Worker("q", hang, url, prefix=prefix, lock_duration=0.5,
                                 stalled_interval=0.2)
        await worker.run()

    asyncio.run(main())
    """
)


async def test_sigkill_mid_job_and_another_worker_finishes_it(shared_redis_url, prefix, tmp_path):
    flag = tmp_path / "started"
    queue = minibull.Queue("q", shared_redis_url, prefix=prefix)
    child = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, shared_redis_url, prefix, str(flag)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        job = await queue.add("email", {"to": "ada"})
        await wait_for(flag.exists, timeout=20)
        assert flag.read_text() == job.id
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert await job.get_state() == "active"
        async with minibull.Worker("q", lambda j: "done", shared_redis_url, prefix=prefix, **FAST):
            assert await job.wait_until_finished(timeout=15) == "done"
        job = await queue.get_job(job.id)
        assert (job.attempts_made, job.stalled_counter) == (1, 1)
    finally:
        child.kill()
        child.wait()
        await queue.obliterate(force=True)
        await queue.close()


# -- the Redis connection goes away and comes back ------------------------------


class RealServer:
    """A throwaway redis-server that the test can stop and start."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                threading.Event().wait(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


async def test_worker_survives_a_lost_connection(prefix):
    """Embedded: the fake server goes offline. Real: our own redis-server is killed, restarted."""
    if redis_url():
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is needed for this test on the real-Redis backend")
        server = RealServer()
        server.start()
        connection = server.url
        go_down, come_back = server.stop, server.start
    else:
        fake = fakeredis.FakeServer()
        connection = fakeredis.FakeAsyncRedis(server=fake, decode_responses=True)

        def go_down():
            fake.connected = False

        def come_back():
            fake.connected = True

    errors = []
    worker = minibull.Worker(
        "q", lambda job: job.data * 2, connection, prefix=prefix, drain_delay=0.2
    )
    worker.on("error", errors.append)
    queue = minibull.Queue("q", connection, prefix=prefix)
    worker.start()
    try:
        first = await queue.add("double", 1)
        assert await first.wait_until_finished(timeout=5) == 2
        go_down()
        await wait_for(lambda: len(errors) > 0, timeout=10)
        come_back()
        second = await queue.add("double", 21)
        assert await second.wait_until_finished(timeout=15) == 42
        assert worker.running
    finally:
        await worker.close(force=True)
        await queue.close()
        if redis_url():
            server.stop()


async def test_graceful_close_keeps_renewing_the_lock_of_the_job_it_waits_for(queue, make_worker):
    errors = []

    async def slow(job):
        await asyncio.sleep(1.5)  # three times the lock duration
        return "done"

    worker = make_worker(slow, lock_duration=0.5, stalled_interval=0.2)
    worker.on("error", errors.append)
    job = await queue.add("slow", {})

    async def active():
        return await job.get_state() == "active"

    await wait_for(active, timeout=5)
    await worker.close()
    assert await job.get_state() == "completed" and errors == []
