"""The large chaos runs of the bench: workers killed at random, Redis restarted, Redis faults.

    .venv/bin/python -m bench.chaos --url redis://127.0.0.1:6379/14            # alone
    .venv/bin/python -m bench.chaos --url ... --update   # and rewrite results + README

``make bench`` runs them once (scenario ``chaos``) and writes their figures into
results.json and the README's Reliability section. tests/test_chaos.py and
tests/test_redis_faults.py run the same experiments, smaller, in CI. Every run prints and
records the settings it used.

- ``random_kills``: 4 worker processes (``minibull worker``, concurrency 4) drain
  20,000 jobs while a supervisor SIGKILLs a random one every 0.5-1 s, until every job
  has completed or failed, and starts a replacement. Counted at the end: jobs completed,
  failed (and why), lost (neither), stuck (still active or marked stalled), and
  duplicates (runs beyond the first, ``attemptsStarted - 1``), which at-least-once
  delivery bounds by kills x concurrency. Run twice: with short locks and 10 recoveries
  per job (``fast``), and with the CLI's defaults (``defaults``), under which a job
  caught by two kills fails with "job stalled more than allowable limit".
- ``redis_restart``: a private redis-server with AOF (fsync always) is stopped and
  started again while a producer adds jobs and a worker runs them. Counted: adds the
  producer was told succeeded, adds refused with a connection error, and how many of
  the acknowledged jobs completed.
- ``redis_faults``: the faults of tests/test_redis_faults.py (restart, CLIENT KILL, OOM,
  DEBUG SLEEP, READONLY, BUSY), each on private redis-servers, with the same code
  (tests/faultlab.py): acknowledged adds, lost, stuck, duplicates, recovery time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

import minibull
from minibull.cli import build_parser
from minibull.processes import WorkerProcess, stop_workers

#: The worker settings of the random-kills runs, as ``minibull worker`` arguments.
#: ``fast``: short locks, so that a killed worker's jobs come back within a second or two,
#: and enough recoveries per job (a recovered job runs next, so a second kill can catch
#: it). ``defaults``: what ``minibull worker`` does when given nothing.
SETTINGS = {
    "fast": ("--lock-duration", "1", "--stalled-interval", "0.5", "--max-stalled-count", "10"),
    "defaults": (),
}
FAST = SETTINGS["fast"]
KILL_EVERY_S = (0.5, 1.0)


def worker_settings(args: tuple[str, ...]) -> dict[str, Any]:
    """The settings a ``minibull worker`` given ``args`` really uses (read from its parser)."""
    parsed = build_parser().parse_args(["worker", "chaos", "--processor", "m:f", *args])
    return {
        "lock_duration_s": parsed.lock_duration,
        "stalled_interval_s": parsed.stalled_interval,
        "max_stalled_count": parsed.max_stalled_count,
        "cli_args": " ".join(args) or "(none: the CLI defaults)",
    }


async def random_kills(
    url: str,
    *,
    jobs: int = 20_000,
    processes: int = 4,
    concurrency: int = 4,
    job_seconds: float = 0.002,
    seed: int = 7,
    timeout: float = 600,
    settings: str = "fast",
) -> dict[str, Any]:
    """Drain ``jobs`` with ``processes`` workers, one SIGKILLed every 0.5-1 s until every
    job has completed or failed; ``settings``: a key of ``SETTINGS``."""
    args = SETTINGS[settings]
    used = {
        "settings": settings,
        **worker_settings(args),
        "job_ms": job_seconds * 1000,
        "kill_every_s": f"{KILL_EVERY_S[0]:g}-{KILL_EVERY_S[1]:g}",
        "kills_until": "every job completed or failed",
    }
    print(f"chaos random_kills: {jobs:,} jobs, {processes} x {concurrency}, {used}", flush=True)
    rng = random.Random(seed)
    async with minibull.Queue("chaos", url) as queue:
        await queue.obliterate(force=True)
        for start in range(0, jobs, 1000):
            batch = min(1000, jobs - start)
            await queue.add_bulk([{"name": "job", "data": {"seconds": job_seconds}}] * batch)

        def spawn() -> WorkerProcess:
            return WorkerProcess(
                "chaos",
                "minibull.examples:whoami",
                url=url,
                concurrency=concurrency,
                args=(*args, "--quiet"),  # 20,000 jobs: the per-job lines are not needed
            ).start()

        started = time.monotonic()
        workers = [spawn() for _ in range(processes)]
        kills = 0
        try:
            while (counts := await queue.get_job_counts("completed", "failed"))[
                "completed"
            ] + counts["failed"] < jobs:
                if time.monotonic() - started > timeout:
                    break
                await asyncio.sleep(rng.uniform(*KILL_EVERY_S))
                victim = workers.pop(rng.randrange(len(workers)))
                victim.kill()
                kills += 1
                workers.append(spawn())
        finally:
            stop_workers(workers)
        seconds = time.monotonic() - started
        counts = await queue.get_job_counts()
        stalled = await queue.redis.scard(queue.keys.stalled)
        started_runs = await _attempts_started(queue, "completed")
        reasons = collections.Counter(job.failed_reason for job in await queue.get_jobs("failed"))
        await queue.obliterate(force=True)
    duplicates = sum(runs - 1 for runs in started_runs)
    return {
        **used,
        "jobs": jobs,
        "processes": processes,
        "concurrency": concurrency,
        "job_ms": job_seconds * 1000,
        "kills": kills,
        "seconds": round(seconds, 1),
        "completed": counts["completed"],
        "failed": counts["failed"],
        "failed_reasons": dict(reasons),
        "lost": jobs - counts["completed"] - counts["failed"],
        "stuck": counts["active"] + stalled,
        "duplicates": duplicates,
        "duplicate_bound": kills * concurrency,
    }


async def _attempts_started(queue: minibull.Queue, state: str) -> list[int]:
    """Each job's ``ats`` (runs begun), read in pipelines of 1,000."""
    ids = await queue.redis.zrange(queue.keys.key(state), 0, -1)
    found: list[int] = []
    for start in range(0, len(ids), 1000):
        pipe = queue.redis.pipeline(transaction=False)
        for job_id in ids[start : start + 1000]:
            pipe.hget(queue.keys.job(job_id), "ats")
        found.extend(int(value or 0) for value in await pipe.execute())
    return found


class RestartableRedis:
    """A private redis-server with AOF (fsync always), stopped and started on the same port."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.folder), "--appendonly", "yes", "--appendfsync", "always",
             "--save", ""],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True)
            if ping.stdout.strip() == b"PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # a clean shutdown: the AOF already has every write
            self.process.wait(10)
            self.process = None


async def redis_restart(
    port: int, *, adds: int = 3000, outage_at: int = 1000, outage: float = 1.5
) -> dict[str, Any]:
    """Add ``adds`` jobs one by one; Redis is down from add ``outage_at`` for ``outage`` seconds."""
    used = {
        "outage_s": outage,
        "aof": "appendfsync always",
        "concurrency": 10,
        "lock_duration_s": 2,
        "stalled_interval_s": 0.5,
        "max_stalled_count": 1,
    }
    print(f"chaos redis_restart: {adds:,} adds, {used}", flush=True)
    with tempfile.TemporaryDirectory(prefix="minibull-chaos-") as folder:
        server = RestartableRedis(Path(folder), port)
        server.start()
        url = f"redis://127.0.0.1:{port}/0"
        acknowledged: list[minibull.Job] = []
        refused = 0
        worker = minibull.Worker(
            "restart", lambda job: job.data, url, concurrency=10, drain_delay=0.2,
            lock_duration=2, stalled_interval=0.5,
        )  # fmt: skip
        try:
            async with minibull.Queue("restart", url) as queue:
                worker.start()
                outage_started = 0.0
                for n in range(adds):
                    if n == outage_at:
                        outage_started = time.monotonic()
                        await asyncio.to_thread(server.stop)
                    if outage_started and time.monotonic() - outage_started > outage:
                        await asyncio.to_thread(server.start)
                        outage_started = 0.0
                    try:
                        acknowledged.append(await queue.add("job", n))
                    except (RedisConnectionError, OSError):
                        refused += 1
                        await asyncio.sleep(0.01)
                completed = 0
                for job in acknowledged:
                    try:
                        if await job.wait_until_finished(timeout=60) == job.data:
                            completed += 1
                    except Exception:  # counted as not completed
                        pass
                counts = await queue.get_job_counts()
        finally:
            await worker.close(force=True)
            server.stop()
    return {
        **used,
        "adds": adds,
        "acknowledged": len(acknowledged),
        "refused": refused,
        "completed": completed,
        "lost": len(acknowledged) - completed,
        "stuck": counts["active"] + counts["waiting"],
    }


async def redis_faults() -> dict[str, Any]:
    """The Redis faults of tests/test_redis_faults.py, run once each with the same code."""
    from tests import faultlab  # the repository root is on sys.path (python -m bench...)

    found = {}
    with tempfile.TemporaryDirectory(prefix="minibull-faults-") as folder:
        for key, plan in faultlab.FAULTS.items():
            print(f"chaos redis_faults: {plan.label}, {faultlab.SETTINGS}", flush=True)
            data = Path(folder) / key
            data.mkdir()
            async with faultlab.private_servers(data) as start:
                outcome = await faultlab.run_plan(key, start)
            found[key] = {
                **outcome.summary(),
                "problems": faultlab.problems(outcome, plan.error),
            }
    return found


RUNS = ("random_kills", "random_kills_defaults", "redis_restart", "redis_faults")


async def run_all(
    url: str,
    restart_port: int,
    jobs: int,
    default_jobs: int | None = None,
    only: tuple[str, ...] = RUNS,
) -> dict[str, Any]:
    """Every run of ``only`` (all, as ``make bench`` does): random kills with fast settings
    (``jobs``) and with the CLI's defaults (``default_jobs``, the same number if None), the
    Redis restart, and the Redis faults."""
    found: dict[str, Any] = {}
    if "random_kills" in only:
        found["random_kills"] = await random_kills(url, jobs=jobs)
    if "random_kills_defaults" in only:
        found["random_kills_defaults"] = await random_kills(
            url, jobs=default_jobs or jobs, settings="defaults"
        )
    if "redis_restart" in only:
        found["redis_restart"] = await redis_restart(restart_port)
    if "redis_faults" in only:
        found["redis_faults"] = await redis_faults()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description="the bench's chaos runs, alone")
    parser.add_argument("--url", required=True, help="a Redis URL with a database of its own")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument(
        "--default-jobs", type=int, default=None, help="jobs of the run on the CLI's defaults"
    )
    parser.add_argument(
        "--only", default=",".join(RUNS), help=f"comma-separated runs (default: {','.join(RUNS)})"
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="merge the figures into bench/results/results.json (key chaos) and rewrite the "
        "README's Reliability section (nothing else)",
    )
    args = parser.parse_args()
    import signal
    import socket

    # Stopped with SIGTERM: unwind, so that the worker processes are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    only = tuple(args.only.split(","))
    if unknown := set(only) - set(RUNS):
        parser.error(f"unknown runs {sorted(unknown)} (runs: {', '.join(RUNS)})")
    found = asyncio.run(run_all(args.url, port, args.jobs, args.default_jobs, only))
    print(json.dumps(found, indent=1))
    if args.update:
        from bench import report

        root = Path(__file__).resolve().parent.parent
        path = root / "bench" / "results" / "results.json"
        results = json.loads(path.read_text())
        results["chaos"] = {**results.get("chaos", {}), **found}
        path.write_text(json.dumps(results, indent=1) + "\n")
        report.update_reliability(root / "README.md", results)
        print(f"wrote {path} (chaos) and the README's Reliability section")


if __name__ == "__main__":
    sys.exit(main())
