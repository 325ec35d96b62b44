"""A worker's two guards against lost jobs, each a background task (lesson 07).

- ``LockRenewal``: a running job's lock expires after ``lock_duration`` unless renewed;
  the worker renews the locks of the jobs it runs every half lock duration.
- ``StalledSweep``: a job whose lock expired (its worker died, or froze) is "stalled";
  every ``stalled_interval`` the sweep puts such jobs back in line (BullMQ's two-phase
  check: a job is marked once, and moved if it is still unlocked at the next sweep).

``keep_running`` runs either with the worker's failure policy: an exception is reported
and the step tried again after a back-off; only the worker's close stops it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .clock import Clock, Pace
from .errors import LockLostError
from .scripts import Scripts

Report = Callable[[str, BaseException], Awaitable[None]]


async def keep_running(
    task: str, step: Callable[[], Awaitable[float]], cap: float, stop: asyncio.Event, report: Report
) -> None:
    """Run ``step`` until ``stop`` is set, sleeping the seconds it returns between runs. An
    exception is reported and ``step`` tried again after a back-off (at most ``cap`` s)."""
    pace = Pace(first=min(0.05, cap), cap=cap)
    pause = 0.0
    while await _sleep_unless_stopped(stop, pause):
        try:
            pause = await step()
            pace.reset()
        except Exception as exc:
            await report(task, exc)
            pause = pace.next()


async def _sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep (real time); return early, and False, once ``stop`` is set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
    return not stop.is_set()


class LockRenewal:
    """The locks of the jobs a worker runs (job id -> lock token), renewed while they run."""

    def __init__(self, scripts: Scripts, lock_ms: int, report: Report) -> None:
        self.scripts = scripts
        self.lock_ms = lock_ms
        self.report = report
        self.held: dict[str, str] = {}

    async def step(self) -> float:
        """Renew every lock held (also while a closing worker finishes its jobs); report
        those that were lost; returns the seconds until the next renewal."""
        locks = dict(self.held)
        lost = await self.scripts.extend_locks(locks, self.lock_ms)
        for job_id in lost:
            # A job whose outcome was being recorded meanwhile gave its lock up: not lost.
            if self.held.get(job_id) == locks[job_id]:
                await self.report("lock renewal", LockLostError(f"lost the lock of job {job_id}"))
        return self.lock_ms / 2000


class StalledSweep:
    """Puts back the jobs whose worker died (their lock expired), every ``interval_ms``."""

    def __init__(
        self,
        scripts: Scripts,
        clock: Clock,
        limits: tuple[int, int],
        on_stalled: Callable[[str], Awaitable[None]],
        active: Callable[[], bool],
    ) -> None:
        self.scripts = scripts
        self.clock = clock
        self.max_stalled_count, self.interval_ms = limits
        self.on_stalled = on_stalled  # called with each recovered job's id
        self.active = active  # False once the worker closes: it sweeps no more

    async def step(self) -> float:
        """One sweep; each job put back is passed to ``on_stalled``. A job stalled too
        often fails when a worker takes it (``max_stalled_count``)."""
        if self.active():
            recovered = await self.scripts.move_stalled_jobs_to_wait(
                self.clock.now(), self.max_stalled_count, self.interval_ms
            )
            for job_id in recovered:
                await self.on_stalled(job_id)
        return self.interval_ms / 1000
