"""A worker's CPU per no-op job (issue #13): µs of this process's CPU for each job a
``Worker`` takes, runs and records, at concurrency 1 and 10, with redis-py's pure-Python
reply parser and (when ``hiredis`` is installed) with hiredis.

    .venv/bin/python bench/worker_cpu.py [--url redis://127.0.0.1:6379/0] [--jobs 3000]

Each measure adds ``--jobs`` jobs with ``add_bulk``, then starts one worker and times
from its first job's end to its last: CPU (``time.process_time``) over those jobs, and
jobs/s. The measures take turns, ``--rounds`` times, and each figure is the median of
its rounds, so a busy moment of the machine touches all of them alike. CPU per job
hardly moves when the machine is busy; jobs/s does. Runs under a prefix of its own,
deleted at the end (``--url`` else ``MINIBULL_REDIS_URL`` else 127.0.0.1:6379/0;
``--url embedded`` for the in-process default).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis  # noqa: E402
from redis.asyncio.connection import _AsyncHiredisParser, _AsyncRESP2Parser  # noqa: E402
from redis.utils import HIREDIS_AVAILABLE  # noqa: E402

import minibull  # noqa: E402
from minibull import connection  # noqa: E402

PARSERS: dict[str, Any] = {"python parser": _AsyncRESP2Parser}
if HIREDIS_AVAILABLE:
    PARSERS["hiredis"] = _AsyncHiredisParser


def client(url: str, parser: Any) -> Redis:
    """``connect(url)`` with the reply parser ``parser``."""
    redis = connection.connect(None if url == "embedded" else url)
    if url != "embedded":
        redis.connection_pool.connection_kwargs["parser_class"] = parser
    return redis


async def drain(url: str, parser: Any, concurrency: int, jobs: int, prefix: str) -> tuple:
    """(CPU µs per job, jobs/s) of one worker draining ``jobs`` no-op jobs."""
    name = f"cpu-{uuid.uuid4().hex[:6]}"
    queue = minibull.Queue(name, client(url, parser), prefix=prefix)
    for start in range(0, jobs, 1000):
        count = min(1000, jobs - start)
        await queue.add_bulk([{"name": "job", "data": {"i": i}} for i in range(count)])
    done = asyncio.Event()
    marks: list[tuple[float, float]] = []
    count = 0

    async def noop(job: object) -> None:
        nonlocal count
        count += 1
        if count == 1 or count == jobs:  # the clocks read twice, not per job
            marks.append((time.process_time(), time.perf_counter()))
        if count == jobs:
            done.set()

    worker = minibull.Worker(
        name, noop, client(url, parser), concurrency=concurrency, prefix=prefix
    )
    gc.collect()
    worker.start()
    await done.wait()
    await worker.close()
    await queue.obliterate(force=True)
    await queue.close()
    await worker.queue.close()
    (cpu0, wall0), (cpu1, wall1) = marks[0], marks[-1]
    return (cpu1 - cpu0) / (jobs - 1) * 1e6, (jobs - 1) / (wall1 - wall0)


async def measure(url: str, jobs: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    prefix = f"bench-cpu-{uuid.uuid4().hex[:8]}"
    names = [
        (p, c) for c in (1, 10) for p in PARSERS if not (url == "embedded" and p != "python parser")
    ]
    results: dict[str, list[tuple[float, float]]] = {}
    for round_number in range(rounds + 1):  # round 0: warm-up
        turn = names[round_number % len(names) :] + names[: round_number % len(names)]
        for parser, concurrency in turn:
            figure = await drain(url, PARSERS[parser], concurrency, jobs, prefix)
            if round_number:
                results.setdefault(f"c{concurrency}, {parser}", []).append(figure)
    return results


def report(results: dict[str, list[tuple[float, float]]], url: str) -> None:
    print(f"no-op jobs on {url}, medians of {len(next(iter(results.values())))} rounds")
    for name, figures in sorted(results.items()):
        cpu = statistics.median(f[0] for f in figures)
        rate = statistics.median(f[1] for f in figures)
        print(f"{name:<22} {cpu:7.1f} µs CPU/job  {rate:7,.0f} jobs/s")
    import redis

    print(f"(python {sys.version.split()[0]}, redis-py {redis.__version__})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=connection.redis_url() or "redis://127.0.0.1:6379/0")
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    report(asyncio.run(measure(args.url, args.jobs, args.rounds)), args.url)


if __name__ == "__main__":
    main()
