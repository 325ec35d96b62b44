"""The minibull command and worker processes: fair sharing, graceful SIGTERM, SIGKILL recovery."""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys

import pytest

import minibull
from minibull.cli import redact
from minibull.processes import WorkerProcess, start_workers, stop_workers
from tests.conftest import wait_for

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minibull", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or ENV,
    )


def test_redact_hides_passwords():
    assert redact("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact("rediss://:s3cret@host/1") == "rediss://:***@host/1"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"


def test_clear_errors_and_exit_codes():
    no_env = {k: v for k, v in ENV.items() if k != "MINIBULL_REDIS_URL"}
    bad_path = cli("worker", "q", "--processor", "no_such_module:run", "--redis", "redis://x")
    assert bad_path.returncode == 2 and "cannot import module 'no_such_module'" in bad_path.stderr
    bad_form = cli("worker", "q", "--processor", "justamodule")
    assert bad_form.returncode == 2 and "package.module:function" in bad_form.stderr
    nowhere = cli("status", "q", env=no_env)
    assert nowhere.returncode == 2 and "minibull server" in nowhere.stderr
    unreachable = cli("status", "q", "--redis", "redis://:hunter2@127.0.0.1:1/0")
    assert unreachable.returncode == 1 and "cannot reach Redis" in unreachable.stderr
    assert "hunter2" not in unreachable.stderr + unreachable.stdout


async def test_status_jobs_and_retry(shared_redis_url, prefix):
    async with minibull.Queue("q", shared_redis_url, prefix=prefix) as queue:
        await queue.add("ok", {})
        job = await queue.add("bad", {})

        async def fail(job):
            raise RuntimeError("smtp down")

        async with minibull.Worker("q", fail, shared_redis_url, prefix=prefix):
            with pytest.raises(minibull.JobFailedError):
                await job.wait_until_finished(timeout=10)
        base = ("--redis", shared_redis_url, "--prefix", prefix)
        status = cli("status", "q", *base)
        assert status.returncode == 0
        assert "failed" in status.stdout and "completed" in status.stdout
        failed = cli("jobs", "q", "--state", "failed", *base)
        assert failed.returncode == 0 and "smtp down" in failed.stdout
        retried = cli("retry", "q", *base)
        assert retried.returncode == 0 and "moved" in retried.stdout
        assert (await queue.get_job_counts("failed"))["failed"] == 0
        await queue.obliterate(force=True)


async def test_three_worker_processes_share_a_backlog_fairly(shared_redis_url, prefix):
    total = 3000 if minibull.connection.redis_url() else 900
    async with minibull.Queue("q", shared_redis_url, prefix=prefix) as queue:
        await queue.add_bulk([{"name": "job", "data": {"seconds": 0.002}} for _ in range(total)])
        workers = start_workers(
            3, "q", "minibull.examples:whoami", url=shared_redis_url, concurrency=4, prefix=prefix
        )
        try:

            async def all_done():
                return (await queue.get_job_counts("completed"))["completed"] == total

            await wait_for(all_done, timeout=150)
        finally:
            codes = stop_workers(workers)
        assert codes == [0, 0, 0], [w.log() for w in workers]
        jobs = await queue.get_jobs("completed")
        by_pid = collections.Counter(job.returnvalue["pid"] for job in jobs)
        assert set(by_pid) == {w.pid for w in workers}
        assert min(by_pid.values()) >= 0.2 * total, by_pid
        assert all(job.attempts_made == 1 for job in jobs)
        counts = await queue.get_job_counts()
        assert counts["completed"] == total and counts["active"] == counts["waiting"] == 0
        await queue.obliterate(force=True)


async def test_sigterm_finishes_the_running_job_then_exits(shared_redis_url, prefix):
    async with minibull.Queue("q", shared_redis_url, prefix=prefix) as queue:
        worker = WorkerProcess("q", "minibull.examples:whoami", url=shared_redis_url, prefix=prefix)
        worker.start()
        try:
            job = await queue.add("slow", {"seconds": 1.5})

            async def active():
                return await job.get_state() == "active"

            await wait_for(active, timeout=30)
            code = await asyncio.to_thread(worker.stop)
        finally:
            if worker.running:
                worker.kill()
        assert code == 0, worker.log()
        assert await job.get_state() == "completed"
        assert (await queue.get_job(job.id)).returnvalue == {"pid": worker.pid}
        assert "closing after the running jobs" in worker.log()
        await queue.obliterate(force=True)


FAST = ("--lock-duration", "1", "--stalled-interval", "0.3")


async def job_of_a_killed_worker(queue, url, prefix):
    """A slow job taken by a worker process that is then SIGKILLed mid-job."""
    victim = WorkerProcess(
        "q", "minibull.examples:whoami", url=url, prefix=prefix, args=FAST
    ).start()
    try:
        job = await queue.add("slow", {"seconds": 3})

        async def active():
            return await job.get_state() == "active"

        await wait_for(active, timeout=30)
    finally:
        victim.kill()
    return job


async def test_sigkill_and_a_surviving_process_recovers_the_job(shared_redis_url, prefix):
    async with minibull.Queue("q", shared_redis_url, prefix=prefix) as queue:
        job = await job_of_a_killed_worker(queue, shared_redis_url, prefix)
        with WorkerProcess(
            "q", "minibull.examples:whoami", url=shared_redis_url, prefix=prefix, args=FAST
        ) as survivor:
            result = await job.wait_until_finished(timeout=30)
            assert result == {"pid": survivor.pid}
        job = await queue.get_job(job.id)
        assert (job.stalled_counter, job.attempts_made) == (1, 1)
        await queue.obliterate(force=True)


async def test_max_stalled_count_flag_decides_when_a_recovered_job_fails(shared_redis_url, prefix):
    # The survivor allows no recovery at all: the killed worker's job fails instead of
    # running again (with the default, 1, the test above sees it complete).
    async with minibull.Queue("q", shared_redis_url, prefix=prefix) as queue:
        job = await job_of_a_killed_worker(queue, shared_redis_url, prefix)
        strict = (*FAST, "--max-stalled-count", "0")
        with WorkerProcess(
            "q", "minibull.examples:whoami", url=shared_redis_url, prefix=prefix, args=strict
        ):
            with pytest.raises(minibull.JobFailedError, match="stalled more than"):
                await job.wait_until_finished(timeout=30)
        await queue.obliterate(force=True)
