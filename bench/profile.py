"""Profile one minibull scenario in this process with pyinstrument (in the bench venv).

    bench/.venv/bin/python bench/profile.py embedded          # fakeredis: add_bulk + drain at c10
    bench/.venv/bin/python bench/profile.py worker --url redis://127.0.0.1:6379/14
    bench/.venv/bin/python bench/profile.py enqueue --url redis://127.0.0.1:6379/14

Prints pyinstrument's call tree (``--html`` also writes an HTML page) and the
jobs/s of the profiled run. The worker scenario flushes the database of ``--url``:
give it a database of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyinstrument import Profiler  # noqa: E402

from minibull import Queue, Worker  # noqa: E402


async def drain(url: str | None, jobs: int, concurrency: int, profiler: Profiler) -> float:
    queue = Queue("profile", url)
    await queue.obliterate(force=True)
    for start in range(0, jobs, 1000):
        count = min(1000, jobs - start)
        await queue.add_bulk(
            [{"name": "job", "data": {"i": i}} for i in range(start, start + count)]
        )
    done = asyncio.Event()
    finished = 0

    async def noop(job: object) -> None:
        nonlocal finished
        finished += 1
        if finished == jobs:
            done.set()

    worker = Worker("profile", noop, url, concurrency=concurrency)
    profiler.start()
    started = time.perf_counter()
    worker.start()
    await done.wait()
    seconds = time.perf_counter() - started
    profiler.stop()
    await worker.close()
    await queue.obliterate(force=True)
    await queue.close()
    return jobs / seconds


async def enqueue(url: str | None, jobs: int, profiler: Profiler) -> float:
    queue = Queue("profile", url)
    await queue.add("warm-up", {})
    profiler.start()
    started = time.perf_counter()
    for i in range(jobs):
        await queue.add("job", {"i": i})
    seconds = time.perf_counter() - started
    profiler.stop()
    await queue.obliterate(force=True)
    await queue.close()
    return jobs / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=("embedded", "worker", "enqueue"))
    parser.add_argument("--url", help="a real Redis (db of its own); default: embedded")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--html", type=Path)
    parser.add_argument("--all", action="store_true", help="show library frames too")
    args = parser.parse_args()
    if args.scenario == "worker" and not args.url:
        parser.error("the worker scenario needs --url (the embedded one is 'embedded')")
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    url = None if args.scenario == "embedded" else args.url
    if args.scenario == "enqueue":
        rate = asyncio.run(enqueue(url, args.jobs, profiler))
    else:
        rate = asyncio.run(drain(url, args.jobs, args.concurrency, profiler))
    print(profiler.output_text(unicode=True, color=False, show_all=args.all))
    print(f"{args.scenario}: {rate:,.0f} jobs/s while profiled")
    if args.html:
        args.html.write_text(profiler.output_html())


if __name__ == "__main__":
    main()
