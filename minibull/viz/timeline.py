"""Job timelines: one bar per attempt, per worker slot, read from the events stream."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.text import Text

from ..events import decode_event
from .base import (
    OUTCOME_COLOURS,
    OUTCOME_LABELS,
    UNITS,
    _drop_labels_that_do_not_fit,
    _legend_outside,
    _new_figure,
    _unit,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..queue import Queue


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
    worker_names: Mapping[str, str] | None = None,
    duration_ms: int | None = None,
) -> Figure:
    """A Gantt chart: one row per worker slot, one bar per attempt, coloured by outcome.

    Time is measured from the first attempt's start. Attempts with no known end
    (running, stalled) reach ``until`` (epoch ms; default: the last time seen) and are
    hatched; attempts that took no time (virtual clock) are drawn as ticks.
    Job ids are written in the bars when ``label_jobs`` (default: up to 40 attempts).
    Rows are labelled ``worker_names[worker id]`` (default: the id's first 6 characters);
    ``duration_ms`` fixes the axis to that many ms after the first start, so that several
    timelines can be compared on one scale.
    """
    if not spans:
        raise ValueError("no attempts to draw: run some jobs first (spans is empty)")
    t0 = min(span.start for span in spans)
    until = _timeline_end(spans, t0, until, duration_ms)
    unit = _unit(unit, max(until - t0, 1))
    scale = UNITS[unit]
    rows = timeline_rows(spans)
    row_of = {row: index for index, row in enumerate(rows)}  # (worker, slot) -> y
    figure, ax = _new_figure(10, 1.6 + 0.32 * len(rows))
    label_jobs = len(spans) <= 40 if label_jobs is None else label_jobs
    labels: list[tuple[Text, float, float]] = []
    for span in spans:
        text = _draw_span(
            ax, span, row_of[(span.worker, span.lane)], (t0, until, scale), label_jobs
        )
        labels += [text] if text is not None else []
    names = _label_rows(ax, rows, worker_names)
    if duration_ms is not None:
        ax.set_xlim(0, duration_ms / scale)
    ax.set_ylabel("worker / slot" if worker_names else "worker id / slot")
    ax.set_xlabel(f"time since the first attempt started ({unit})")
    ax.set_title(
        title
        or f"Job timeline: {len(spans)} attempts of {len({s.job_id for s in spans})} jobs "
        f"on {len(names)} worker(s)"
    )
    ax.grid(axis="x", alpha=0.3)
    _legend_outside(ax, _outcome_legend(spans))
    _drop_labels_that_do_not_fit(figure, labels)
    return figure


def _outcome_legend(spans: Sequence[Span]) -> list[Patch]:
    """One legend entry per outcome present, in OUTCOME_COLOURS' order."""
    present = [outcome for outcome in OUTCOME_COLOURS if any(s.outcome == outcome for s in spans)]
    return [Patch(color=OUTCOME_COLOURS[o], label=OUTCOME_LABELS[o]) for o in present]


def _timeline_end(spans: Sequence[Span], t0: int, until: int | None, duration: int | None) -> int:
    """Where the time axis ends: ``until``, else ``duration`` after t0, else the last time seen."""
    if until is not None:
        return until
    if duration is not None:
        return t0 + duration
    return max([span.end for span in spans if span.end is not None] + [s.start for s in spans])


def _draw_span(
    ax: Axes, span: Span, y: int, frame: tuple[int, int, float], label_jobs: bool
) -> tuple[Text, float, float] | None:
    """One attempt's bar (hatched if it has no known end; a tick if it took no time)."""
    t0, until, scale = frame
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
    if not label_jobs:
        return None
    text = ax.text(left + width / 2, y, span.job_id, ha="center", va="center", fontsize=8)
    return text, left, left + width


def _label_rows(
    ax: Axes, rows: list[tuple[str, int]], worker_names: Mapping[str, str] | None
) -> dict[str, str]:
    """Label each row "<worker name> / <slot>", first row on top; returns the names used."""
    names: dict[str, str] = {}
    for worker, _lane in rows:
        names.setdefault(worker, (worker_names or {}).get(worker) or worker[:6] or "?")
    ax.set_yticks(range(len(rows)), [f"{names[w]} / {lane + 1}" for w, lane in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    return names
