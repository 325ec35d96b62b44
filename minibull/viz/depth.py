"""Queue depth over a run (``DepthSampler``) and ``Every``, the background loop that
samples it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from ..clock import Pace
from ..job import STATES
from .base import (
    OUTCOME_COLOURS,
    UNITS,
    _new_figure,
    _unit,
)

if TYPE_CHECKING:
    from ..queue import Queue

logger = logging.getLogger("minibull.viz")


# -- background work ------------------------------------------------------------------


class Every:
    """Runs ``await step()`` every ``interval`` real seconds in the background, until
    ``stop()`` or until a step returns False.

    A step that raises is reported (a log line naming the loop, ``error``, and
    ``on_error(exc)`` if given), then tried again after a back-off (up to 30 intervals):
    the loop ends only when told to. ``stop()`` lets the loop end at its next step
    instead of cancelling it, because a cancellation that lands inside a Redis call
    can be swallowed by the client.
    """

    def __init__(
        self,
        interval: float,
        step: Callable[[], Awaitable[object]],
        *,
        name: str = "background loop",
        on_error: Callable[[Exception], object] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds (got {interval!r})")
        self.interval = interval
        self.step = step
        self.name = name
        self.on_error = on_error
        self.error: Exception | None = None  # the last step's failure (None: it worked)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def running(self) -> bool:
        """True while the background loop runs."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop on the running event loop (once)."""
        if not self.running:
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        pace = Pace(first=self.interval, cap=30 * self.interval)
        while not self._stopping.is_set():
            pause = self.interval
            try:
                if await self.step() is False:
                    return
                self.error = None
                pace.reset()
            except Exception as exc:
                self.error, pause = exc, pace.next()
                logger.warning("%s failed: %s: %s", self.name, type(exc).__name__, exc)
                if self.on_error is not None:
                    self.on_error(exc)
            try:
                await asyncio.wait_for(self._stopping.wait(), pause)
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        """Stop the loop and wait for it to end."""
        if self._task is not None:
            self._stopping.set()
            task, self._task = self._task, None
            await task


# -- queue depth ----------------------------------------------------------------------


@dataclass(frozen=True)
class DepthSample:
    """How many jobs were in each state at time ``at`` (epoch ms on the queue's clock)."""

    at: int
    counts: dict[str, int]


class DepthSampler:
    """Records ``queue.get_job_counts()`` over a run: ``start()`` samples every ``interval``
    real seconds until ``await stop()``; or call ``await sample()`` yourself (e.g. after each
    ``clock.advance`` on a virtual clock)."""

    def __init__(self, queue: Queue, interval: float = 0.1) -> None:
        self.queue = queue
        self.interval = interval
        self.samples: list[DepthSample] = []
        self._every = Every(interval, self.sample, name=f"depth sampler of {queue!r}")

    def __repr__(self) -> str:
        return f"DepthSampler({self.queue!r}, samples={len(self.samples)})"

    async def sample(self) -> DepthSample:
        """Take one sample now."""
        counts = await self.queue.get_job_counts()
        sample = DepthSample(self.queue.clock.now(), counts)
        self.samples.append(sample)
        return sample

    def start(self) -> DepthSampler:
        """Sample in the background on the running event loop; returns self."""
        self._every.start()
        return self

    async def stop(self) -> list[DepthSample]:
        """Stop sampling, take a last sample, and return them all."""
        await self._every.stop()
        await self.sample()
        return self.samples

    async def __aenter__(self) -> DepthSampler:
        return self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def plot_queue_depth(
    samples: Sequence[DepthSample],
    *,
    states: Sequence[str] | None = None,
    unit: str | None = None,
    title: str | None = None,
) -> Figure:
    """Jobs per state over time, one step line per state (default: the states ever non-empty)."""
    if not samples:
        raise ValueError("no samples to draw: use a DepthSampler during a run first")
    t0 = samples[0].at
    unit = _unit(unit, max(samples[-1].at - t0, 1))
    xs = [(sample.at - t0) / UNITS[unit] for sample in samples]
    if states is None:
        states = [s for s in STATES if any(sample.counts.get(s) for sample in samples)]
    figure, ax = _new_figure(10, 4)
    colours = {"waiting": "#7570b3", "active": "#e7298a", "delayed": "#e6ab02"}
    colours.update(completed=OUTCOME_COLOURS["completed"], failed=OUTCOME_COLOURS["failed"])
    for state in states:
        ys = [sample.counts.get(state, 0) for sample in samples]
        (line,) = ax.step(xs, ys, where="post", label=state, color=colours.get(state), lw=2)
        line.set_gid(f"depth:{state}")
    ax.set_xlabel(f"time since the first sample ({unit})")
    ax.set_ylabel("jobs")
    ax.set_title(title or f"Queue depth: jobs per state, {len(samples)} samples")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return figure
