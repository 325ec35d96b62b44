"""Chaos: worker processes killed at random, and Redis restarted, lose no job."""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import subprocess
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

import minibull
from minibull.connection import redis_url
from minibull.processes import WorkerProcess, stop_workers
from tests.conftest import free_port

# Short locks, so a killed worker's jobs come back within a second or two; and enough
# recoveries allowed per job: a recovered job runs next, so with a kill every 0.5-1 s it
# can be caught by a second kill, and BullMQ's default (1) would then fail it.
FAST = ("--lock-duration", "1", "--stalled-interval", "0.5", "--max-stalled-count", "10")


async def test_random_sigkills_lose_nothing(shared_redis_url, prefix):
    total = 5000 if redis_url() else 1500
    concurrency = 4
    rng = random.Random(7)
    async with minibull.Queue("q", shared_redis_url, prefix=prefix) as queue:
        await queue.add_bulk([{"name": "job", "data": {"seconds": 0.004}} for _ in range(total)])

        def spawn() -> WorkerProcess:
            return WorkerProcess(
                "q",
                "minibull.examples:whoami",
                url=shared_redis_url,
                prefix=prefix,
                concurrency=concurrency,
                args=FAST,
            ).start()

        workers = [spawn() for _ in range(4)]
        kills = 0
        deadline = time.monotonic() + 240
        try:
            while (counts := await queue.get_job_counts("completed", "failed"))[
                "completed"
            ] < total:
                assert counts["failed"] == 0, await queue.get_jobs("failed")
                assert time.monotonic() < deadline, await queue.get_job_counts()
                await asyncio.sleep(rng.uniform(0.5, 1.0))
                if kills < 6:
                    victim = workers.pop(rng.randrange(len(workers)))
                    victim.kill()
                    kills += 1
                    workers.append(spawn())
        finally:
            codes = stop_workers(workers)
        # 0: closed gracefully; -SIGTERM: a replacement stopped while Python was still
        # starting, before the worker installed its signal handler (it held no job).
        assert all(code in (0, -signal.SIGTERM) for code in codes), codes
        counts = await queue.get_job_counts()
        assert counts == {
            "waiting": 0,
            "active": 0,
            "prioritized": 0,
            "delayed": 0,
            "completed": total,
            "failed": 0,
        }
        assert await queue.redis.scard(queue.keys.stalled) == 0
        jobs = await queue.get_jobs("completed")
        assert len(jobs) == total
        duplicates = sum(job.attempts_started - 1 for job in jobs)
        # Up to 6 kills, one every 0.5-1 s, while jobs remain (a fast run may end sooner).
        assert kills >= 3 and duplicates <= kills * concurrency, (kills, duplicates)
        await queue.obliterate(force=True)


class PersistentRedis:
    """A private redis-server with AOF (fsync always), restartable on the same port and data."""

    def __init__(self, folder) -> None:
        self.folder, self.port = folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True)
            if out.stdout.strip() == b"PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # shutdown: AOF is already fsynced on every write
            self.process.wait(10)
            self.process = None


async def test_redis_restart_mid_run(tmp_path):
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        pytest.fail("redis-server and redis-cli are needed (apt-get install -y redis-server)")
    server = PersistentRedis(tmp_path)
    server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    acknowledged, refused = [], []
    worker = minibull.Worker(
        "q", lambda job: job.data, url, drain_delay=0.2, lock_duration=2, stalled_interval=0.5
    )
    try:
        async with minibull.Queue("q", url) as queue:
            worker.start()
            for n in range(300):
                if n == 100:
                    await asyncio.to_thread(server.stop)
                if n == 110:
                    await asyncio.to_thread(server.start)
                try:
                    acknowledged.append(await queue.add("job", n))
                except (RedisConnectionError, OSError) as exc:
                    refused.append((n, str(exc)))
                await asyncio.sleep(0.002)
            assert 0 < len(refused) < 300 and len(acknowledged) + len(refused) == 300
            assert all(
                "connect" in reason.lower() or "closed" in reason.lower() for _, reason in refused
            ), refused[:3]
            for job in acknowledged:
                assert await job.wait_until_finished(timeout=30) == job.data
            counts = await queue.get_job_counts()
            assert counts["completed"] == len(acknowledged) and counts["active"] == 0
    finally:
        await worker.close(force=True)
        server.stop()
