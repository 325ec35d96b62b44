"""Pictures of a queue: backoff timelines, retry storms, job timelines, queue depth.

Optional: ``from minibull import viz`` needs matplotlib (``import minibull`` does not).
Each picture has two halves: a pure function that returns plain data (tested
exactly) and a ``plot_*`` function that draws it on a new ``Figure`` and returns
it, with no global state (no pyplot), so a notebook cell shows it and a script
saves it with ``fig.savefig(path)``.
"""

from __future__ import annotations

import asyncio
import heapq
import io
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text

from .backoff import backoff_delay, backoff_schedule, normalize_backoff
from .clock import Pace, to_ms
from .events import decode_event
from .job import STATES

logger = logging.getLogger("minibull.viz")

if TYPE_CHECKING:
    from .queue import Queue

#: Time units for axes and labels: name -> milliseconds.
UNITS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000}

#: Outcome of an attempt -> colour (colour-blind friendly, and distinct in grey).
OUTCOME_COLOURS = {
    "completed": "#1b9e77",
    "retried": "#e6ab02",
    "failed": "#d95f02",
    "stalled": "#7570b3",
    "running": "#999999",
}
#: What each outcome means, for legends.
OUTCOME_LABELS = {
    "completed": "completed",
    "retried": "failed, retried",
    "failed": "failed for good",
    "stalled": "stalled (worker lost)",
    "running": "still running",
}


# -- time -----------------------------------------------------------------------------


def time_unit(span_ms: float) -> str:
    """The unit that keeps an axis of ``span_ms`` readable: ms, s, min or h."""
    for name in ("h", "min", "s"):
        if span_ms >= 2 * UNITS[name]:
            return name
    return "ms"


def format_ms(ms: float) -> str:
    """A duration for a label: ``250 ms``, ``1.5 s``, ``2 min``, ``1.2 h``."""
    name = "ms"
    for candidate in ("s", "min", "h"):
        if ms >= UNITS[candidate]:
            name = candidate
    return f"{ms / UNITS[name]:.3g} {name}"


def _unit(unit: str | None, span_ms: float) -> str:
    if unit is None:
        return time_unit(span_ms)
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)} (got {unit!r})")
    return unit


class NotebookFigure(Figure):
    """A matplotlib Figure that a notebook shows as a PNG, with or without pyplot imported."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


def _new_figure(width: float, height: float) -> tuple[Figure, Axes]:
    figure = NotebookFigure(figsize=(width, height), layout="constrained")
    return figure, figure.add_subplot()


def _legend_outside(ax: Axes, handles: list[Any]) -> None:
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)


def _drop_labels_that_do_not_fit(figure: Figure, labels: list[tuple[Text, float, float]]) -> None:
    """Remove each label wider than its span (x0..x1 in data units) once laid out."""
    if not labels:
        return
    figure.draw_without_rendering()
    for text, x0, x1 in labels:
        transform = text.axes.transData
        room = transform.transform((x1, 0))[0] - transform.transform((x0, 0))[0]
        if text.get_window_extent().width > room - 4:
            text.remove()


# -- backoff timeline -----------------------------------------------------------------


@dataclass(frozen=True)
class BackoffPoints:
    """When each attempt of a job that always fails starts, in ms after the first one."""

    label: str
    starts: list[int]
    waits: list[int]
    run: int = 0


def describe_backoff(backoff: Any) -> str:
    """A short name for a backoff setting: ``exponential 1 s, jitter 0.5``."""
    stored = normalize_backoff(backoff)
    if not stored or (stored.get("type") == "fixed" and not stored.get("delay")):
        return "immediate"
    text = f"{stored['type']} {format_ms(stored.get('delay', 0))}"
    if stored.get("jitter"):
        text += f", jitter {stored['jitter']:g}"
    return text


def backoff_points(
    backoff: Any, attempts: int, *, run: float = 0.0, seed: int = 0, label: str | None = None
) -> BackoffPoints:
    """The attempts of a job with this ``backoff`` that fails every time, each taking ``run`` s.

    The waits come from ``backoff_schedule``, the worker's own formulas; jitter is
    drawn from ``random.Random(seed)``, so a picture is the same on every run.
    """
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be an int >= 1 (got {attempts!r})")
    run_ms = to_ms(run, "run")
    waits = backoff_schedule(backoff, attempts, random.Random(seed))
    starts = [0]
    for wait in waits:
        starts.append(starts[-1] + run_ms + wait)
    return BackoffPoints(label or describe_backoff(backoff), starts, waits, run_ms)


def plot_backoff_timeline(
    policies: Mapping[str, Any] | Sequence[BackoffPoints],
    attempts: int = 5,
    *,
    run: float = 0.0,
    seed: int = 0,
    unit: str | None = None,
    title: str | None = None,
) -> Figure:
    """One row per backoff policy: when each attempt runs, with the waits labelled.

    ``policies`` maps a label to a ``backoff=`` value (``{"type": "exponential",
    "delay": 1}``, ``2``, None for immediate retries), or is a list of ``BackoffPoints``.
    """
    if isinstance(policies, Mapping):
        rows = [
            backoff_points(backoff, attempts, run=run, seed=seed, label=label)
            for label, backoff in policies.items()
        ]
    else:
        rows = list(policies)
    if not rows:
        raise ValueError("policies must name at least one backoff policy")
    end = max(1, max(row.starts[-1] + row.run for row in rows))  # 1: immediate retries
    unit = _unit(unit, end)
    scale = UNITS[unit]
    figure, ax = _new_figure(10, 1.2 + 0.75 * len(rows))
    labels: list[tuple[Text, float, float]] = []
    for y, row in enumerate(rows):
        starts = [start / scale for start in row.starts]
        if row.run:
            ax.barh([y] * len(starts), row.run / scale, left=starts, height=0.3, color="#1b9e77")
        (marker,) = ax.plot(starts, [y] * len(starts), "o", color="#1b9e77", markersize=7)
        marker.set_gid(f"attempts:{row.label}")
        for number, (start, wait) in enumerate(zip(row.starts, row.waits, strict=False)):
            x0, x1 = (start + row.run) / scale, (start + row.run + wait) / scale
            ax.annotate(
                "",
                xy=(x1, y),
                xytext=(x0, y),
                arrowprops={"arrowstyle": "->", "color": "#555555", "shrinkA": 4, "shrinkB": 4},
            )
            # The y axis runs downwards (first policy on top): y - 0.1 is just above the arrow.
            text = ax.text(
                (x0 + x1) / 2, y - 0.1, format_ms(wait), ha="center", va="bottom", fontsize=9
            )
            text.set_gid(f"wait:{row.label}:{number + 1}")
            labels.append((text, x0, x1))
    ax.set_yticks(range(len(rows)), [row.label for row in rows])
    ax.set_ylim(len(rows) - 0.5, -0.6)
    ax.set_xlim(-0.02 * end / scale, 1.03 * end / scale)
    ax.set_xlabel(f"time since the first attempt ({unit})")
    ax.set_title(
        title or f"When each attempt runs: {len(rows[0].starts)} attempts, each one failing"
    )
    ax.grid(axis="x", alpha=0.3)
    _legend_outside(
        ax,
        [
            Line2D([], [], marker="o", linestyle="", color="#1b9e77", label="an attempt starts"),
            Line2D([], [], color="#555555", marker=">", label="wait (backoff)"),
        ],
    )
    _drop_labels_that_do_not_fit(figure, labels)
    return figure


# -- retry storm ----------------------------------------------------------------------


@dataclass(frozen=True)
class RetryStorm:
    """The requests many clients sent to a dependency that was down, then came back."""

    label: str
    request_times: list[int]  # ms, one per request, in time order
    served_times: list[int]  # ms, one per request that succeeded
    bucket: int  # ms per bucket in ``load`` and ``served``
    load: list[int]  # requests per bucket
    served: list[int]  # successful requests per bucket
    clients: int
    recover_at: int  # ms: the dependency answers from here on
    capacity: int | None  # requests per second it can serve once back (None: all)
    gave_up: int  # clients that ran out of attempts

    @property
    def done_at(self) -> int | None:
        """When the last client got its answer (ms), or None if some never did."""
        if len(self.served_times) < self.clients:
            return None
        return self.served_times[-1] if self.served_times else 0


def simulate_retry_storm(
    backoff: Any,
    *,
    clients: int = 100,
    recover_at: float = 30.0,
    duration: float = 120.0,
    capacity: int | None = 50,
    latency: float = 0.2,
    attempts: int | None = None,
    start_spread: float = 1.0,
    bucket: float = 1.0,
    seed: int = 0,
    label: str | None = None,
) -> RetryStorm:
    """Clients calling a dependency that is down until ``recover_at`` s, retrying with ``backoff``.

    Each call takes ``latency`` s to fail; the client then waits what
    ``backoff_delay`` (the worker's formula) says and calls again, until it
    succeeds, runs out of ``attempts`` (None: never) or ``duration`` s have passed.
    Once back, the dependency serves ``capacity`` calls per second (None: all) and
    fails the rest. Clients start within ``start_spread`` s; all randomness comes
    from ``seed``, so the same arguments give the same storm, on virtual time.
    """
    stored = normalize_backoff(backoff)
    if backoff_delay(stored, 1, random.Random(0)) is None:
        raise ValueError("simulate_retry_storm works for the built-in backoff types only")
    recover_ms, end_ms = to_ms(recover_at, "recover_at"), to_ms(duration, "duration")
    latency_ms, bucket_ms = to_ms(latency, "latency"), to_ms(bucket, "bucket")
    if bucket_ms < 1:
        raise ValueError(f"bucket must be at least 1 ms (got {bucket!r})")
    spread_ms = to_ms(start_spread, "start_spread")
    rngs = [random.Random(f"{seed}:{client}") for client in range(clients)]
    calls = [(round(rng.random() * spread_ms), client, 1) for client, rng in enumerate(rngs)]
    heapq.heapify(calls)
    request_times: list[int] = []
    served_times: list[int] = []
    served_per_second: dict[int, int] = defaultdict(int)
    gave_up = 0
    while calls and calls[0][0] <= end_ms:
        now, client, attempt = heapq.heappop(calls)
        request_times.append(now)
        second = now // 1000
        if now >= recover_ms and (capacity is None or served_per_second[second] < capacity):
            served_per_second[second] += 1
            served_times.append(now)
        elif attempts is not None and attempt >= attempts:
            gave_up += 1
        else:
            wait = backoff_delay(stored, attempt, rngs[client]) or 0
            heapq.heappush(calls, (now + latency_ms + wait, client, attempt + 1))
    buckets = end_ms // bucket_ms + 1
    return RetryStorm(
        label=label or describe_backoff(backoff),
        request_times=request_times,
        served_times=served_times,
        bucket=bucket_ms,
        load=_histogram(request_times, bucket_ms, buckets),
        served=_histogram(served_times, bucket_ms, buckets),
        clients=clients,
        recover_at=recover_ms,
        capacity=capacity,
        gave_up=gave_up,
    )


def _histogram(times: list[int], bucket_ms: int, buckets: int) -> list[int]:
    counts = [0] * buckets
    for time in times:
        counts[min(time // bucket_ms, buckets - 1)] += 1
    return counts


def plot_retry_storm(storms: Sequence[RetryStorm], *, title: str | None = None) -> Figure:
    """The load on the dependency over time, one panel per retry policy, on a shared scale."""
    if not storms:
        raise ValueError("storms must hold at least one RetryStorm")
    figure = NotebookFigure(figsize=(10, 1.2 + 1.7 * len(storms)), layout="constrained")
    axes = figure.subplots(len(storms), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    peak = max(1, max(max(storm.load) for storm in storms)) * 1000 / storms[0].bucket
    for ax, storm in zip(axes, storms, strict=True):
        per_second = 1000 / storm.bucket
        edges = [i * storm.bucket / 1000 for i in range(len(storm.load) + 1)]
        ax.axvspan(0, storm.recover_at / 1000, color="#d95f02", alpha=0.12, lw=0)
        requests = ax.stairs([n * per_second for n in storm.load], edges, fill=True)
        requests.set(color="#7570b3", alpha=0.8, gid="load")
        served = ax.stairs([n * per_second for n in storm.served], edges, fill=True)
        served.set(color="#1b9e77", gid="served")
        if storm.capacity is not None:
            ax.axhline(storm.capacity, color="black", linestyle="--", linewidth=1)
        done = storm.done_at
        outcome = (
            f"all {storm.clients} served at {done / 1000:.0f} s"
            if done is not None
            else f"{len(storm.served_times)} of {storm.clients} served"
        )
        ax.set_title(
            f"{storm.label}: {len(storm.request_times):,} requests, {outcome}",
            loc="left",
            fontsize=10,
        )
        ax.set_yscale("symlog", linthresh=10)
        ax.set_ylim(0, peak * 1.8)
        ax.set_ylabel("requests/s")
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0, len(storms[0].load) * storms[0].bucket / 1000)
    figure.suptitle(
        title
        or f"Retry storm: {storms[0].clients} clients, a dependency down for "
        f"{storms[0].recover_at / 1000:g} s"
    )
    handles = [
        Patch(color="#d95f02", alpha=0.12, label="dependency down"),
        Patch(color="#7570b3", alpha=0.8, label="requests (load)"),
        Patch(color="#1b9e77", label="requests served"),
    ]
    if storms[0].capacity is not None:
        handles.append(Line2D([], [], color="black", linestyle="--", label="capacity"))
    _legend_outside(axes[0], handles)
    return figure


# -- job timeline ---------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """One attempt of a job: on which worker slot it ran, when (epoch ms), and how it ended."""

    job_id: str
    attempt: int  # 1 for the first run of the job seen in the events
    worker: str  # the worker's id
    lane: int  # the worker's slot: 0 .. concurrency - 1
    start: int
    end: int | None  # None: still running, or stalled (the events do not say when)
    outcome: str  # completed, retried, failed, stalled or running
    retry_at: int | None = None  # when a retried attempt was due again


async def read_events(queue: Queue, after: str = "0-0", *, batch: int = 1000) -> list[dict]:
    """The queue's events after stream id ``after`` (default: all), oldest first, decoded."""
    events: list[dict[str, Any]] = []
    while True:
        replies = await queue.redis.xread({queue.keys.events: after}, count=batch)
        entries = replies[0][1] if replies else []
        for entry_id, fields in entries:
            events.append(decode_event(entry_id, fields))
            after = entry_id
        if len(entries) < batch:
            return events


def _ts(event: Mapping[str, Any]) -> int | None:
    value = event.get("ts")
    return None if value in (None, "") else int(float(value))


def attempt_spans(events: Iterable[Mapping[str, Any]]) -> list[Span]:
    """One Span per attempt in an events stream, in the order they started.

    An attempt runs from its ``active`` event to its job's next ``completed``,
    ``failed``, ``delayed`` or ``waiting`` (retried) or ``stalled`` event; times
    are the events' ``ts`` (the queue's clock). Each attempt takes the lowest slot
    of its worker that is free at that moment, so a worker with concurrency N
    uses at most N slots.
    """
    spans: list[Span] = []
    running: dict[str, int] = {}  # job id -> index in spans
    busy: dict[str, set[int]] = defaultdict(set)  # worker -> lanes in use
    attempts: dict[str, int] = defaultdict(int)

    def finish(job_id: str, outcome: str, end: int | None, retry_at: int | None = None) -> None:
        index = running.pop(job_id)
        span = spans[index]
        busy[span.worker].discard(span.lane)
        spans[index] = replace(span, end=end, outcome=outcome, retry_at=retry_at)

    for event in events:
        kind, job_id, ts = event.get("event"), event.get("jobId"), _ts(event)
        if job_id is None:
            continue
        if kind == "active":
            if job_id in running:  # its last run ended without an event we know
                finish(job_id, "stalled", None)
            if ts is None:
                continue
            worker = str(event.get("worker", ""))
            lane = next(lane for lane in range(len(busy[worker]) + 1) if lane not in busy[worker])
            busy[worker].add(lane)
            attempts[job_id] += 1
            running[job_id] = len(spans)
            spans.append(Span(job_id, attempts[job_id], worker, lane, ts, None, "running"))
        elif job_id not in running:
            continue
        elif kind in ("completed", "failed"):
            finish(job_id, kind, ts)
        elif kind == "delayed" and event.get("prev") == "active":
            finish(job_id, "retried", ts, int(float(event["delay"])))
        elif kind == "waiting" and event.get("prev") == "active":
            finish(job_id, "retried", ts, ts)  # retried at once (ts None: time not recorded)
        elif kind == "stalled":
            finish(job_id, "stalled", None)
    return spans


async def job_spans(queue: Queue) -> list[Span]:
    """Every attempt recorded in the queue's events stream (see ``attempt_spans``)."""
    return attempt_spans(await read_events(queue))


def timeline_rows(spans: Iterable[Span]) -> list[tuple[str, int]]:
    """The (worker, slot) rows of a job timeline: workers in the order they started work."""
    rows: dict[tuple[str, int], None] = {}
    workers: dict[str, None] = {}
    for span in sorted(spans, key=lambda span: span.start):
        workers.setdefault(span.worker)
        rows.setdefault((span.worker, span.lane))
    return sorted(rows, key=lambda row: (list(workers).index(row[0]), row[1]))


def plot_job_timeline(
    spans: Sequence[Span],
    *,
    unit: str | None = None,
    until: int | None = None,
    title: str | None = None,
    label_jobs: bool | None = None,
) -> Figure:
    """A Gantt chart: one row per worker slot, one bar per attempt, coloured by outcome.

    Time is measured from the first attempt's start. Attempts with no known end
    (running, stalled) reach ``until`` (epoch ms; default: the last time seen) and are
    hatched; attempts that took no time (virtual clock) are drawn as ticks.
    Job ids are written in the bars when ``label_jobs`` (default: up to 40 attempts).
    """
    if not spans:
        raise ValueError("no attempts to draw: run some jobs first (spans is empty)")
    t0 = min(span.start for span in spans)
    known = [span.end for span in spans if span.end is not None] + [s.start for s in spans]
    until = until if until is not None else max(known)
    unit = _unit(unit, max(until - t0, 1))
    scale = UNITS[unit]
    rows = timeline_rows(spans)
    row_of = {row: index for index, row in enumerate(rows)}
    figure, ax = _new_figure(10, 1.6 + 0.32 * len(rows))
    labels: list[tuple[Text, float, float]] = []
    label_jobs = len(spans) <= 40 if label_jobs is None else label_jobs
    for span in spans:
        y = row_of[(span.worker, span.lane)]
        left = (span.start - t0) / scale
        width = ((span.end if span.end is not None else until) - span.start) / scale
        colour = OUTCOME_COLOURS[span.outcome]
        (bar,) = ax.barh(
            y,
            width,
            left=left,
            height=0.7,
            color=colour,
            edgecolor="white" if span.end is not None else colour,
            hatch=None if span.end is not None else "//",
            alpha=1 if span.end is not None else 0.5,
        )
        bar.set_gid(f"{span.job_id}:{span.attempt}")
        if width == 0:
            ax.plot(left, y, marker="|", markersize=12, mew=2.5, color=colour)
        if label_jobs:
            text = ax.text(left + width / 2, y, span.job_id, ha="center", va="center", fontsize=8)
            labels.append((text, left, left + width))
    names = {}
    for worker, _lane in rows:
        names.setdefault(worker, worker[:6] or "?")
    ax.set_yticks(range(len(rows)), [f"{names[w]} / {lane + 1}" for w, lane in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_ylabel("worker id / slot")
    ax.set_xlabel(f"time since the first attempt started ({unit})")
    ax.set_title(
        title
        or f"Job timeline: {len(spans)} attempts of {len({s.job_id for s in spans})} jobs "
        f"on {len(names)} worker(s)"
    )
    ax.grid(axis="x", alpha=0.3)
    present = [outcome for outcome in OUTCOME_COLOURS if any(s.outcome == outcome for s in spans)]
    _legend_outside(ax, [Patch(color=OUTCOME_COLOURS[o], label=OUTCOME_LABELS[o]) for o in present])
    _drop_labels_that_do_not_fit(figure, labels)
    return figure


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
