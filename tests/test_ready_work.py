"""Queue.has_ready_work, the question a VirtualClock asks before it moves time on (#14).

It runs one script, hasReadyWork, which decides with takeNextJob's own includes (the pause,
the global concurrency cap, the rate limits, the delayed score): so each case checks that
its answer agrees with what moveToActive then does on the same queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import minibull
from minibull.scripts import Take, has_ready_work_args

LIMITER = (1, 60_000)  # a worker's limiter: one job a minute


async def forget_marker(queue: minibull.Queue) -> None:
    """Drop the wake-up marker, as an idle worker's BZPOPMIN has by the time it is asked."""
    await queue.redis.delete(queue.keys.marker)


async def take(queue: minibull.Queue, limiter: tuple[int, int] | None = None) -> str | None:
    """What moveToActive gives a worker now: a job id, or None."""
    taken = await queue.scripts.move_to_active(
        queue.clock.now(), Take("token", 30_000, "w", limiter)
    )
    return taken.job_id


async def nothing(queue: minibull.Queue) -> None:
    pass


async def waiting(queue: minibull.Queue) -> None:
    await queue.add("job", {})


async def prioritized(queue: minibull.Queue) -> None:
    await queue.add("job", {}, priority=3)


async def paused(queue: minibull.Queue) -> None:
    await queue.add("job", {})
    await queue.pause()


async def capped(queue: minibull.Queue) -> None:
    await queue.set_global_concurrency(1)
    await queue.add_bulk([{"name": "job", "data": n} for n in range(2)])
    assert await take(queue) is not None  # one runs: the cap of 1 is reached


async def below_the_cap(queue: minibull.Queue) -> None:
    await queue.set_global_concurrency(2)
    await queue.add_bulk([{"name": "job", "data": n} for n in range(2)])
    assert await take(queue) is not None


async def queue_rate_limited(queue: minibull.Queue) -> None:
    await queue.set_global_rate_limit(1, 60)
    await queue.add_bulk([{"name": "job", "data": n} for n in range(2)])
    assert await take(queue) is not None  # the one start of this minute


async def worker_rate_limited(queue: minibull.Queue) -> None:
    await queue.add_bulk([{"name": "job", "data": n} for n in range(2)])
    assert await take(queue, LIMITER) is not None


async def manually_rate_limited(queue: minibull.Queue) -> None:
    await queue.add("job", {})
    await queue.rate_limit(60)


async def stale_limiter(queue: minibull.Queue) -> None:
    """A count at the limit that never expires (written by hand): it holds nobody back."""
    await queue.set_global_rate_limit(1, 60)
    await queue.add("job", {})
    await queue.redis.set(queue.keys.limiter, 5)


async def delayed_not_due(queue: minibull.Queue) -> None:
    await queue.add("job", {}, delay=10)
    await queue.clock.advance(9.999)


async def delayed_due(queue: minibull.Queue) -> None:
    await queue.add("job", {}, delay=10)
    await queue.clock.advance(10)  # due this very millisecond


Setup = Callable[[minibull.Queue], Awaitable[None]]
CASES: list[tuple[Setup, tuple[int, int] | None, bool]] = [
    (nothing, None, False),
    (waiting, None, True),
    (prioritized, None, True),
    (paused, None, False),
    (capped, None, False),
    (below_the_cap, None, True),
    (queue_rate_limited, None, False),
    (queue_rate_limited, LIMITER, False),  # the queue's limit wins over the worker's
    (worker_rate_limited, LIMITER, False),
    (worker_rate_limited, None, True),  # a worker without a limiter is not held
    (manually_rate_limited, None, False),  # a manual limit holds every worker
    (manually_rate_limited, LIMITER, False),
    (stale_limiter, None, True),
    (delayed_not_due, None, False),
    (delayed_due, None, True),
]


@pytest.mark.parametrize(
    "setup, limiter, ready",
    CASES,
    ids=[
        f"{setup.__name__}-{'limiter' if limiter else 'no limiter'}" for setup, limiter, _ in CASES
    ],
)
async def test_ready_work_agrees_with_what_a_worker_gets(
    queue: minibull.Queue, setup: Setup, limiter: tuple[int, int] | None, ready: bool
) -> None:
    await setup(queue)
    await forget_marker(queue)
    assert await queue.has_ready_work(limiter) is ready
    assert (await take(queue, limiter) is not None) is ready


@pytest.mark.parametrize(
    "setup, ready", [(waiting, True), (delayed_not_due, True), (capped, False)]
)
async def test_a_pending_marker_is_ready_work_unless_the_queue_is_held(
    queue: minibull.Queue, setup: Setup, ready: bool
) -> None:
    # addJob leaves the marker: "0" for a ready job, "1" at a delayed job's due time. A
    # worker blocked on it would wake now, so time must not move on yet; but a worker
    # woken on a queue at its concurrency cap could start nothing.
    await setup(queue)
    assert await queue.redis.zcard(queue.keys.marker) >= 1
    assert await queue.has_ready_work() is ready


def test_the_builder_passes_the_time_and_the_workers_limit() -> None:
    keys = minibull.keys.QueueKeys("emails", "bull")
    names, argv = has_ready_work_args(keys, 1_000, LIMITER)
    assert names[0] == keys.marker and names[-1] == keys.limiter
    assert argv == [1_000, 1]
    assert has_ready_work_args(keys, 1_000, None)[1] == [1_000, 0]


async def test_it_is_one_script_call(queue: minibull.Queue, monkeypatch: Any) -> None:
    calls: list[str] = []
    run = queue.scripts.run

    async def counted(name: str, args: Any) -> Any:
        calls.append(name)
        return await run(name, args)

    monkeypatch.setattr(queue.scripts, "run", counted)
    await queue.has_ready_work()
    assert calls == ["hasReadyWork"]
