"""Clocks: the system clock, and a virtual clock that makes hours pass in milliseconds.

Every script gets ``now`` from the clock of the Queue or Worker that calls it, so
a job's timestamps, delays and backoff all follow the injected clock. Redis's own
timers (lock expiry, the stalled-check key) stay on real time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Protocol


def to_ms(value: float | timedelta, name: str = "duration") -> int:
    """Seconds (or a timedelta) as whole milliseconds, refusing negatives and non-numbers."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(
            f"{name} must be seconds (int or float) or a timedelta (got {type(value).__name__})"
        )
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number of seconds (got {value!r})")
    if seconds < 0:
        raise ValueError(f"{name} must be >= 0 seconds (got {value!r})")
    return round(seconds * 1000)


class Pace:
    """Real-time pauses between retries of a failing step: ``first`` seconds, doubling up
    to ``cap``; ``reset()`` after a success. The one back-off of every long-lived task."""

    def __init__(self, first: float = 0.05, cap: float = 2.0) -> None:
        self.first, self.cap = first, max(first, cap)
        self._next = first

    def next(self) -> float:
        """The pause before the next try (and double the one after it)."""
        pause, self._next = self._next, min(self._next * 2, self.cap)
        return pause

    def reset(self) -> None:
        """The step worked: the next failure starts from ``first`` again."""
        self._next = self.first


class Actor(Protocol):
    """Something that runs on a clock and can say whether it has nothing left to do now."""

    async def is_idle(self) -> bool: ...


class Timer:
    """A callback due at a time on a virtual clock; ``cancel()`` stops it."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: int, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SystemClock:
    """Real time: what every Queue and Worker uses unless given another clock."""

    virtual = False

    def now(self) -> int:
        """Milliseconds since the epoch."""
        return int(time.time() * 1000)

    def now_datetime(self) -> datetime:
        """The current time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now() / 1000, tz=timezone.utc)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_at(self, when: int, callback: Callable[[], None]) -> Timer | None:
        """Real time needs no timers: a worker's blocking wait already times out at ``when``."""
        return None

    def block_timeout(self, until: int | None, cap: float) -> float:
        """How long (real seconds) a worker may block waiting for work due at ``until``."""
        if until is None:
            return cap
        return min(cap, max(0.001, (until - self.now()) / 1000))

    def is_sleeping(self, task: asyncio.Task[object]) -> bool:
        """Real time has no virtual sleepers."""
        return False

    def add_actor(self, actor: Actor) -> None:
        """Real time waits for nobody."""

    def remove_actor(self, actor: Actor) -> None:
        """Real time waits for nobody."""


class VirtualClock:
    """Time that moves only when you say so: ``await clock.advance(3600)``.

    Pass the same clock to a Queue and its Workers. ``advance`` moves time forward
    in steps, stopping at each moment something was due (a delayed job, a retry),
    and after each step waits until every worker on the clock has done what became
    due, so a day of backoff runs in milliseconds and in the same order every time.
    """

    virtual = True

    def __init__(self, start: datetime | float | None = None) -> None:
        if start is None:
            self._now = int(time.time() * 1000)
        elif isinstance(start, datetime):
            if start.tzinfo is None:
                raise ValueError(
                    "start must be a timezone-aware datetime (add tzinfo=timezone.utc)"
                )
            self._now = int(start.timestamp() * 1000)
        elif isinstance(start, (int, float)) and not isinstance(start, bool):
            self._now = int(start * 1000)
        else:
            raise TypeError(f"start must be an aware datetime or epoch seconds (got {start!r})")
        self._timers: list[tuple[int, int, Timer]] = []
        self._sequence = itertools.count()
        self._actors: list[Actor] = []
        self._sleeping: set[asyncio.Task[object]] = set()

    def now(self) -> int:
        """Milliseconds since the epoch, on this clock."""
        return self._now

    def now_datetime(self) -> datetime:
        """This clock's time as an aware UTC datetime."""
        return datetime.fromtimestamp(self._now / 1000, tz=timezone.utc)

    def __repr__(self) -> str:
        return f"VirtualClock({self.now_datetime().isoformat()})"

    def call_at(self, when: int, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` when the clock reaches ``when`` (epoch ms)."""
        timer = Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._sequence), timer))
        return timer

    async def sleep(self, seconds: float | timedelta) -> None:
        """Wait until the clock has been advanced by ``seconds``.

        A job can do this to take virtual time (a two-hour report, in no real time):
        while its task sleeps here, ``advance`` counts it as idle.
        """
        done = asyncio.get_running_loop().create_future()
        self.call_at(
            self._now + to_ms(seconds, "seconds"), lambda: done.done() or done.set_result(None)
        )
        task = asyncio.current_task()
        if task is not None:
            self._sleeping.add(task)
        try:
            await done
        finally:
            self._sleeping.discard(task)  # type: ignore[arg-type]

    def is_sleeping(self, task: asyncio.Task[object]) -> bool:
        """True while ``task`` waits in ``sleep`` on this clock."""
        return task in self._sleeping

    def block_timeout(self, until: int | None, cap: float) -> float:
        """Virtual time wakes workers with timers, so they block for the full cap."""
        return cap

    def add_actor(self, actor: Actor) -> None:
        self._actors.append(actor)

    def remove_actor(self, actor: Actor) -> None:
        if actor in self._actors:
            self._actors.remove(actor)

    async def advance(self, delta: float | timedelta) -> None:
        """Move time forward by ``delta`` seconds, running everything that falls due on the way."""
        target = self._now + to_ms(delta, "delta")
        await self.settle()
        while self._timers and self._timers[0][0] <= target:
            self._now = max(self._now, self._timers[0][0])
            while self._timers and self._timers[0][0] <= self._now:
                _, _, timer = heapq.heappop(self._timers)
                if not timer.cancelled:
                    timer.callback()
            await self.settle()
        self._now = target
        await self.settle()

    async def settle(self, timeout: float = 60.0) -> None:
        """Wait (in real time) until every actor on this clock is idle twice in a row."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet_rounds = 0
        while quiet_rounds < 2:
            await asyncio.sleep(0)
            idle = True
            for actor in list(self._actors):
                if not await actor.is_idle():
                    idle = False
                    break
            if idle:
                quiet_rounds += 1
                continue
            quiet_rounds = 0
            if loop.time() > deadline:
                raise TimeoutError(f"workers were still busy after {timeout} s of real time")
            await asyncio.sleep(0.001)


Clock = SystemClock | VirtualClock
