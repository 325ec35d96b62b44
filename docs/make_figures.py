"""Draw the example figures of the README into docs/figures/ (run it to refresh them).

    .venv/bin/python docs/make_figures.py

Runs on the embedded server unless MINIBULL_REDIS_URL is set. The backoff and
retry-storm pictures are the same on every run; the job timeline and queue
depth come from a real run of a few hundred milliseconds, so their bars move a
little from one run to the next.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path

from minibull import Queue, Worker, viz

OUT = Path(__file__).resolve().parent / "figures"
DPI = 110


def backoff_figure() -> None:
    figure = viz.plot_backoff_timeline(
        {
            "fixed 2 s": {"type": "fixed", "delay": 2},
            "exponential 1 s": {"type": "exponential", "delay": 1},
            "exponential 1 s\n+ jitter 0.5": {"type": "exponential", "delay": 1, "jitter": 0.5},
        },
        attempts=6,
    )
    figure.savefig(OUT / "backoff_timeline.png", dpi=DPI)


def retry_storm_figure() -> None:
    policies = {
        "immediate": None,
        "fixed 1 s": 1,
        "exponential 1 s": {"type": "exponential", "delay": 1},
        "exponential 1 s, jitter 0.5": {"type": "exponential", "delay": 1, "jitter": 0.5},
    }
    storms = [
        viz.simulate_retry_storm(backoff, label=label, duration=90, seed=1)
        for label, backoff in policies.items()
    ]
    viz.plot_retry_storm(storms).savefig(OUT / "retry_storm.png", dpi=DPI)


async def flaky(job) -> str:
    """Takes 40-160 ms; jobs 4 and 11 fail once, job 17 fails every time."""
    await asyncio.sleep(job.data["ms"] / 1000)
    if job.id == "17" or (job.id in ("4", "11") and job.attempts_made == 0):
        raise RuntimeError("the dependency timed out")
    return "ok"


async def real_run_figures() -> None:
    """Two workers (as two processes would be) with 3 slots each, on real time."""
    queue = Queue("figures", prefix=f"figures-{uuid.uuid4().hex[:8]}")
    rng = random.Random(7)
    await queue.add_bulk(
        [
            {"name": "task", "data": {"ms": rng.randint(40, 160)}, "attempts": 2, "backoff": 0.1}
            for _ in range(24)
        ]
    )
    sampler = viz.DepthSampler(queue, interval=0.02)
    await sampler.sample()
    sampler.start()
    workers = [Worker("figures", flaky, prefix=queue.prefix, concurrency=3) for _ in range(2)]
    for worker in workers:
        worker.start()
    while sum((await queue.get_job_counts("completed", "failed")).values()) < 24:
        await asyncio.sleep(0.02)
    samples = await sampler.stop()
    for worker in workers:
        await worker.close()
    spans = await viz.job_spans(queue)
    viz.plot_job_timeline(spans).savefig(OUT / "job_timeline.png", dpi=DPI)
    viz.plot_queue_depth(samples).savefig(OUT / "queue_depth.png", dpi=DPI)
    await queue.obliterate(force=True)
    await queue.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    backoff_figure()
    retry_storm_figure()
    asyncio.run(real_run_figures())
    for path in sorted(OUT.glob("*.png")):
        print(path.relative_to(OUT.parent.parent))


if __name__ == "__main__":
    main()
