"""The minibull command and worker processes: fair sharing, graceful SIGTERM, SIGKILL recovery."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile

import pytest

import minibull
from minibull import cli as cli_module
from minibull.cli import redact
from minibull.processes import SharedServer, WorkerProcess, start_workers, stop_workers
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
    # A query password, and passwords that are not percent-encoded.
    assert redact("redis://host:6379/0?password=s3cret") == "redis://host:6379/0?password=***"
    assert redact("redis://h/0?db=1&PASSWORD=s3cret&x=1") == "redis://h/0?db=1&PASSWORD=***&x=1"
    assert redact("redis://:s3c#r/e@t@host:6379/0") == "redis://:***@host:6379/0"
    assert redact("redis://u:s3c/ret@host/0?password=s3cret") == "redis://u:***@host/0?password=***"


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:1/0?password=s3cretPW",
        "redis://:s3c#retPW@127.0.0.1:1/0",
        "redis://:s3c/retPW@127.0.0.1:1/0",
        "redis://:s3c%23retPW@127.0.0.1:1/0",
    ],
)
def test_no_part_of_a_password_is_printed(url):
    result = cli("status", "q", "--redis", url)
    assert result.returncode in (1, 2), result.stderr
    shown = result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, shown
    assert "s3c" not in shown and "retPW" not in shown, shown


class FakeWorker:
    """Stands in for Worker in ``minibull worker``: runs ``behaviour``, records close calls."""

    closes: list[dict] = []
    behaviour = None

    def __init__(self, *args, **kwargs):
        self.listeners = {}

    def on(self, event, callback):
        self.listeners[event] = callback

    async def run(self):
        await type(self).behaviour(self)

    async def close(self, force=False, timeout=None):
        type(self).closes.append({"force": force, "timeout": timeout})
        self.closed.set()


@pytest.fixture
def fake_worker(monkeypatch):
    async def reachable(url):
        return None

    monkeypatch.setattr(cli_module, "Worker", FakeWorker)
    monkeypatch.setattr(cli_module, "check_reachable", reachable)
    FakeWorker.closes = []
    return FakeWorker


def run_fake_worker(*args: str) -> int:
    return cli_module.main(
        ["worker", "q", "--processor", "minibull.examples:noop", "--redis", URL_WITH_PW, *args]
    )


URL_WITH_PW = "redis://:pw-s3cret@127.0.0.1:1/0"


def test_a_worker_that_cannot_go_on_exits_4_naming_the_cause(fake_worker, capsys):
    async def broken(worker):
        raise RuntimeError("NOPERM no permissions (pw-s3cret)")

    fake_worker.behaviour = broken
    assert run_fake_worker() == cli_module.EXIT_FAILED == 4
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "stopped" in line]
    assert lines == [
        "minibull worker: stopped on an error: RuntimeError: NOPERM no permissions (***)"
    ]


def test_sys_exit_in_a_processor_is_not_a_forced_close(fake_worker, capsys):
    async def exits(worker):
        raise SystemExit(3)

    fake_worker.behaviour = exits
    assert run_fake_worker() == 4
    assert "a processor called sys.exit(3)" in capsys.readouterr().err


def test_sigterm_closes_with_the_shutdown_timeout_and_a_burst_of_signals_is_one(fake_worker):
    async def until_closed(worker):
        worker.closed = asyncio.Event()
        for _ in range(3):  # a group signal, passed on by a sandboxed worker's children
            os.kill(os.getpid(), signal.SIGTERM)
        await worker.closed.wait()
        await asyncio.sleep(0.05)  # any other signal would be handled by now

    fake_worker.behaviour = until_closed
    assert run_fake_worker("--shutdown-timeout", "12.5") == 0
    assert fake_worker.closes == [{"force": False, "timeout": 12.5}]


@pytest.mark.parametrize("value", ["-1", "soon"])
def test_a_bad_shutdown_timeout_is_refused(value):
    result = cli(
        "worker", "q", "--processor", "minibull.examples:noop", "--shutdown-timeout", value
    )
    assert result.returncode == 2 and "--shutdown-timeout" in result.stderr


def test_the_working_directory_comes_last_on_sys_path(tmp_path, monkeypatch):
    (tmp_path / "my_jobs.py").write_text("def run(job):\n    return 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert cli_module.load_processor("my_jobs:run")(None) == 1
    assert sys.path[-1] == str(tmp_path)  # a stray redis.py there shadows nothing


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
        none = cli("jobs", "q", "--state", "failed", "--limit", "0", *base)
        assert none.returncode == 2 and "--limit: must be >= 1" in none.stderr
        retried = cli("retry", "q", *base)
        assert retried.returncode == 0 and "moved 2 failed job(s)" in retried.stdout
        assert "attempts made kept" in retried.stdout
        assert (await queue.get_job_counts("failed"))["failed"] == 0
        await queue.obliterate(force=True)


async def test_jobs_explains_attempts_past_the_option_and_retry_can_reset_them(
    shared_redis_url, prefix
):
    base = ("--redis", shared_redis_url, "--prefix", prefix)
    async with minibull.Queue("q", shared_redis_url, prefix=prefix) as queue:
        job = await queue.add("bad", {}, attempts=2)

        async def fail(job):
            raise RuntimeError("smtp down")

        async with minibull.Worker("q", fail, shared_redis_url, prefix=prefix):
            with pytest.raises(minibull.JobFailedError):
                await job.wait_until_finished(timeout=10)
            listed = cli("jobs", "q", *base)
            assert f"{job.id}\tbad\tattempts 2/2  smtp down" in listed.stdout.splitlines()
            assert "*" not in listed.stdout  # within the option: no footnote
            assert cli("retry", "q", *base).returncode == 0  # keeps the count: one more run
            with pytest.raises(minibull.JobFailedError):
                await job.wait_until_finished(timeout=10)
            listed = cli("jobs", "q", *base)
            assert f"{job.id}\tbad\tattempts 3/2*  smtp down" in listed.stdout.splitlines()
            assert cli_module.PAST_THE_OPTION in listed.stdout.splitlines()
        reset = cli("retry", "q", "--reset-attempts", *base)
        assert reset.returncode == 0 and "attempts made reset to 0" in reset.stdout
        assert (await queue.get_job(job.id)).attempts_made == 0
        await queue.obliterate(force=True)


def test_server_port_errors_are_one_line():
    out_of_range = cli("server", "--port", "70000")
    assert out_of_range.returncode == 2 and "--port: must be <= 65535" in out_of_range.stderr
    with SharedServer() as url:
        port = url.rsplit(":", 1)[1].split("/")[0]
        taken = cli("server", "--port", port)
    assert taken.returncode == 1, taken.stderr
    assert taken.stderr == f"minibull: cannot serve on 127.0.0.1:{port}: Address already in use\n"


def fake_job(job_id: str, name: str, attempts: int = 1, made: int = 0) -> minibull.Job:
    return minibull.Job(
        id=job_id, name=name, data={}, opts={"attempts": attempts}, attempts_made=made
    )


def drive(job_log: cli_module.JobLog) -> None:
    """A job completed, a job failed then retried, a job failed for good."""
    ok, bad = fake_job("1", "welcome"), fake_job("2", "bad\x1b[2J", attempts=2)
    job_log.on_active(ok)
    ok.attempts_made = 1
    job_log.on_completed(ok, None)
    for final in (False, True):
        job_log.on_active(bad)
        bad.attempts_made += 1
        bad.failed_reason = "smtp down"
        bad.finished_on = 1 if final else None
        job_log.on_failed(bad, RuntimeError("smtp down"))
    job_log.on_active(fake_job("3", "slow"))
    job_log.summary()


def test_job_lines_as_text(capsys):
    drive(cli_module.JobLog("text", interval=60))
    lines = [line.split(" ", 2)[2] for line in capsys.readouterr().out.splitlines()]
    assert [re.sub(r"in [0-9.]+ s", "in T s", line) for line in lines] == [
        "job 1 welcome: started, attempt 1/1",
        "job 1 welcome: completed in T s, attempt 1/1",
        "job 2 bad\\x1b[2J: started, attempt 1/2",
        "job 2 bad\\x1b[2J: failed in T s, attempt 1/2, will retry: smtp down",
        "job 2 bad\\x1b[2J: started, attempt 2/2",
        "job 2 bad\\x1b[2J: failed in T s, attempt 2/2, no retry left: smtp down",
        "job 3 slow: started, attempt 1/1",
        "summary, last 60 s: 1 completed, 1 failed, 1 to retry; 1 running",
    ]


def test_job_lines_as_json_and_quiet(capsys):
    drive(cli_module.JobLog("json", interval=60))
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["event"], r.get("job"), r.get("attempt"), r.get("retry")) for r in records] == [
        ("started", "1", 1, None),
        ("completed", "1", 1, None),
        ("started", "2", 1, None),
        ("failed", "2", 1, True),
        ("started", "2", 2, None),
        ("failed", "2", 2, False),
        ("started", "3", 1, None),
        ("summary", None, None, None),
    ]
    assert records[1]["duration"] >= 0 and records[2]["name"] == "bad\x1b[2J"
    assert records[-1] == {**records[-1], "completed": 1, "failed": 1, "retried": 1, "running": 1}
    drive(cli_module.JobLog("text", quiet=True, interval=60))
    assert [line.split(" ", 2)[2] for line in capsys.readouterr().out.splitlines()] == [
        "summary, last 60 s: 1 completed, 1 failed, 1 to retry; 1 running"
    ]


async def test_a_worker_process_prints_its_jobs_and_summaries(
    shared_redis_url, prefix, tmp_path, monkeypatch
):
    (tmp_path / "flaky_jobs.py").write_text(
        "def run(job):\n    if job.data.get('fail'):\n        raise RuntimeError('smtp down')\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    async with minibull.Queue("q", shared_redis_url, prefix=prefix) as queue:
        ok = await queue.add("welcome", {})
        bad = await queue.add("bad", {"fail": True})
        args = ("--summary-interval", "0.2")
        with WorkerProcess(
            "q", "flaky_jobs:run", url=shared_redis_url, prefix=prefix, args=args
        ) as worker:
            await wait_for(lambda: "1 completed, 1 failed" in worker.log(), timeout=30)
        await queue.obliterate(force=True)
    log = worker.log()
    assert re.search(rf"job {ok.id} welcome: completed in [0-9.]+ s, attempt 1/1\n", log), log
    assert f"job {bad.id} bad: started, attempt 1/1" in log
    assert re.search(rf"job {bad.id} bad: failed in [0-9.]+ s, .*no retry left: smtp down", log)


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


async def worker_with_a_running_job(queue, url, prefix, seconds, args=()):
    """A worker process (``minibull.examples:whoami``) and a job it is running, ``seconds`` long."""
    worker = WorkerProcess(
        "q", "minibull.examples:whoami", url=url, prefix=prefix, args=args
    ).start()
    try:
        job = await queue.add("slow", {"seconds": seconds})

        async def active():
            return await job.get_state() == "active"

        await wait_for(active, timeout=30)
    except BaseException:
        worker.kill()
        raise
    return worker, job


async def stop_within(worker, timeout: float = 30) -> int:
    """SIGTERM, then the exit code (SIGKILL if the worker is still there after ``timeout``)."""
    try:
        return await asyncio.to_thread(worker.stop, timeout)
    finally:
        if worker.running:
            worker.kill()


async def test_sigterm_finishes_the_running_job_then_exits(shared_redis_url, prefix):
    async with minibull.Queue("q", shared_redis_url, prefix=prefix) as queue:
        worker, job = await worker_with_a_running_job(queue, shared_redis_url, prefix, 1.5)
        code = await stop_within(worker)
        assert code == 0, worker.log()
        assert await job.get_state() == "completed"
        assert (await queue.get_job(job.id)).returnvalue == {"pid": worker.pid}
        assert "closing after the running jobs" in worker.log()
        await queue.obliterate(force=True)


FAST = ("--lock-duration", "1", "--stalled-interval", "0.3")


async def job_of_a_killed_worker(queue, url, prefix):
    """A slow job taken by a worker process that is then SIGKILLed mid-job."""
    victim, job = await worker_with_a_running_job(queue, url, prefix, 3, args=FAST)
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
        assert f"job {job.id} stalled (its worker stopped renewing its lock)" in survivor.log()
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
        ) as survivor:
            with pytest.raises(minibull.JobFailedError, match="stalled more than"):
                await job.wait_until_finished(timeout=30)
        assert f"job {job.id} failed: job stalled more than allowable limit" in survivor.log()
        await queue.obliterate(force=True)


async def test_jobs_escapes_terminal_control_characters(shared_redis_url, prefix):
    evil = "evil\x1b[31mRED\x1b[0m\nfake-job-line\u202e"
    async with minibull.Queue("q", shared_redis_url, prefix=prefix) as queue:
        await queue.add(evil, {})
        listed = cli(
            "jobs", "q", "--state", "waiting", "--redis", shared_redis_url, "--prefix", prefix
        )
        await queue.obliterate(force=True)
    assert listed.returncode == 0, listed.stderr
    assert "\x1b" not in listed.stdout and listed.stdout.count("\n") == 1, listed.stdout
    assert "evil\\x1b[31mRED\\x1b[0m\\nfake-job-line\\u202e" in listed.stdout


def test_printable_log_lines():
    formatter = cli_module.PrintableFormatter("%(message)s")
    record = logging.LogRecord("w", logging.WARNING, __file__, 1, "job %s", ("a\nb\x1b[2J",), None)
    assert formatter.format(record) == "job a\\nb\\x1b[2J"


def worker_log_files() -> set[str]:
    return {
        name for name in os.listdir(tempfile.gettempdir()) if name.startswith("minibull-worker")
    }


async def test_worker_processes_get_the_url_from_the_environment_and_leave_no_files():
    before = worker_log_files()
    with SharedServer(password="s3cret-in-ps") as url:
        worker = WorkerProcess("q", "minibull.examples:noop", url=url).start()
        try:
            await wait_for(lambda: "minibull worker: queue" in worker.log(), timeout=30)
            with open(f"/proc/{worker.pid}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
            with open(f"/proc/{worker.pid}/environ", "rb") as environ:
                env = environ.read().split(b"\0")
        finally:
            code = await asyncio.to_thread(worker.stop)
    assert code == 0, worker.log()
    assert not any(b"s3cret" in arg for arg in argv), argv
    assert f"MINIBULL_REDIS_URL={url}".encode() in env
    assert "s3cret" not in worker.log() and ":***@127.0.0.1" in worker.log()
    assert worker_log_files() == before  # the log file went with the process


async def test_shutdown_timeout_bounds_a_graceful_close(shared_redis_url, prefix):
    async with minibull.Queue("q", shared_redis_url, prefix=prefix) as queue:
        deadline = ("--shutdown-timeout", "0.5")
        worker, job = await worker_with_a_running_job(
            queue, shared_redis_url, prefix, 60, args=deadline
        )
        code = await stop_within(worker, 20)  # not the job's 60 s
        assert code == 0, worker.log()
        assert "at most 0.5 s" in worker.log()
        assert "left to the" in worker.log() and await job.get_state() == "active"
        await queue.obliterate(force=True)


def test_add_refuses_data_that_is_not_json_before_reaching_redis():
    result = cli("add", "q", "welcome", "{to: ada}", "--redis", "redis://127.0.0.1:1/0")
    assert result.returncode == 2 and result.stderr.startswith("minibull: data must be JSON")
