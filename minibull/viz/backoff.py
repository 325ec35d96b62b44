"""Backoff timelines (when each retry of one job runs) and retry storms (what many
clients retrying at once do to a service)."""

from __future__ import annotations

import heapq
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text

from ..backoff import backoff_delay, backoff_schedule, normalize_backoff
from ..clock import to_ms

if TYPE_CHECKING:
    from matplotlib.axes import Axes

from .base import (
    UNITS,
    NotebookFigure,
    _drop_labels_that_do_not_fit,
    _legend_outside,
    _new_figure,
    _unit,
    format_ms,
)

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
    rows = _backoff_rows(policies, attempts, run, seed)
    end = max(1, max(row.starts[-1] + row.run for row in rows))  # 1: immediate retries
    unit = _unit(unit, end)
    scale = UNITS[unit]
    figure, ax = _new_figure(10, 1.2 + 0.75 * len(rows))
    labels: list[tuple[Text, float, float]] = []
    for y, row in enumerate(rows):
        labels += _draw_backoff_row(ax, y, row, scale)
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


def _backoff_rows(
    policies: Mapping[str, Any] | Sequence[BackoffPoints], attempts: int, run: float, seed: int
) -> list[BackoffPoints]:
    if isinstance(policies, Mapping):
        rows = [
            backoff_points(backoff, attempts, run=run, seed=seed, label=label)
            for label, backoff in policies.items()
        ]
    else:
        rows = list(policies)
    if not rows:
        raise ValueError("policies must name at least one backoff policy")
    return rows


def _draw_backoff_row(
    ax: Axes, y: int, row: BackoffPoints, scale: float
) -> list[tuple[Text, float, float]]:
    """One policy's attempts (dots, bars) and waits (arrows); returns the wait labels."""
    starts = [start / scale for start in row.starts]
    if row.run:
        ax.barh([y] * len(starts), row.run / scale, left=starts, height=0.3, color="#1b9e77")
    (marker,) = ax.plot(starts, [y] * len(starts), "o", color="#1b9e77", markersize=7)
    marker.set_gid(f"attempts:{row.label}")
    for start, count in sorted(Counter(starts).items()):
        if count > 1:  # attempts at the same moment: one dot would read as one attempt
            text = ax.text(start, y + 0.12, f"×{count}", ha="center", va="top", fontsize=9)
            text.set_gid(f"count:{row.label}:{start:g}")
    labels = []
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
    return labels


# -- retry storm ----------------------------------------------------------------------


@dataclass(frozen=True)
class RetryStorm:
    """The requests many clients sent to a dependency that was down, then could come back."""

    label: str
    request_times: list[int]  # ms, one per request, in time order
    served_times: list[int]  # ms, one per request that succeeded
    bucket: int  # ms per bucket in ``load`` and ``served``
    load: list[int]  # requests per bucket
    served: list[int]  # successful requests per bucket
    clients: int
    recover_at: int  # ms: the outage ends here; from then on the dependency can serve
    capacity: int | None  # requests per second it can serve (None: all, never overloaded)
    gave_up: int  # clients that ran out of attempts
    latency: int = 0  # ms each call takes
    down_seconds: list[int] = field(default_factory=list)  # whole seconds it served nothing

    @property
    def done_at(self) -> int | None:
        """When the last client got its answer (ms), or None if some never did."""
        if len(self.served_times) < self.clients:
            return None
        return self.served_times[-1] if self.served_times else 0


def storm_is_up(second: int, recover_ms: int, load_before: int, capacity: int | None) -> bool:
    """The capacity model: is the dependency up during this whole second?

    Down during the outage (before ``recover_ms``). After it, up in a second only
    if the second before brought at most ``capacity`` requests: an overloaded
    service spends its time on requests it cannot finish, so it stays down while
    the load stays above what it can serve, and comes back after one quiet second.
    """
    if second * 1000 < recover_ms:
        return False
    return capacity is None or load_before <= capacity


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
    After the outage the dependency serves at most ``capacity`` calls a second
    (None: all) and fails the rest, but only in a second that follows a second
    with at most ``capacity`` calls (``storm_is_up``): retries that overload it
    keep it down. Clients start within ``start_spread`` s; all randomness comes
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
    starts = [round(rng.random() * spread_ms) for rng in rngs]
    model = _StormModel(stored, rngs, recover_ms, capacity, attempts, latency_ms)
    request_times, served_times, load_per_second, gave_up = model.run(starts, end_ms)
    return RetryStorm(
        label=label or describe_backoff(backoff),
        request_times=request_times,
        served_times=served_times,
        bucket=bucket_ms,
        load=_histogram(request_times, bucket_ms, end_ms),
        served=_histogram(served_times, bucket_ms, end_ms),
        clients=clients,
        recover_at=recover_ms,
        capacity=capacity,
        gave_up=gave_up,
        latency=latency_ms,
        down_seconds=model.down_seconds(end_ms, load_per_second),
    )


@dataclass
class _StormModel:
    """The clients' calls, one at a time in time order, against the capacity model."""

    backoff: dict[str, Any]
    rngs: list[random.Random]
    recover_ms: int
    capacity: int | None
    attempts: int | None
    latency_ms: int

    def run(self, starts: list[int], end_ms: int) -> tuple[list[int], list[int], dict, int]:
        """(request times, served times, requests per second, clients that gave up)."""
        calls = [(start, client, 1) for client, start in enumerate(starts)]
        heapq.heapify(calls)
        request_times: list[int] = []
        served_times: list[int] = []
        load_per_second: dict[int, int] = defaultdict(int)
        served_per_second: dict[int, int] = defaultdict(int)
        gave_up = 0
        while calls and calls[0][0] <= end_ms:
            now, client, attempt = heapq.heappop(calls)
            request_times.append(now)
            second = now // 1000
            load_per_second[second] += 1
            load_before = load_per_second[second - 1]
            up = storm_is_up(second, self.recover_ms, load_before, self.capacity)
            if up and (self.capacity is None or served_per_second[second] < self.capacity):
                served_per_second[second] += 1
                served_times.append(now)
            elif self.attempts is not None and attempt >= self.attempts:
                gave_up += 1
            else:
                wait = backoff_delay(self.backoff, attempt, self.rngs[client]) or 0
                heapq.heappush(calls, (now + self.latency_ms + wait, client, attempt + 1))
        return request_times, served_times, load_per_second, gave_up

    def down_seconds(self, end_ms: int, load_per_second: dict[int, int]) -> list[int]:
        """The whole seconds in which the dependency served nothing."""
        return [
            second
            for second in range(end_ms // 1000 + 1)
            if not storm_is_up(second, self.recover_ms, load_per_second[second - 1], self.capacity)
        ]


def _histogram(times: list[int], bucket_ms: int, end_ms: int) -> list[int]:
    buckets = end_ms // bucket_ms + 1
    counts = [0] * buckets
    for time in times:
        counts[min(time // bucket_ms, buckets - 1)] += 1
    return counts


def _runs(seconds: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs of whole seconds, as (first, last + 1)."""
    runs: list[tuple[int, int]] = []
    for second in seconds:
        if runs and runs[-1][1] == second:
            runs[-1] = (runs[-1][0], second + 1)
        else:
            runs.append((second, second + 1))
    return runs


def plot_retry_storm(storms: Sequence[RetryStorm], *, title: str | None = None) -> Figure:
    """The load on the dependency over time, one panel per retry policy, on a shared scale.

    The y axis is logarithmic above 10 requests/s (and labelled so); shaded are the
    seconds the dependency served nothing: its outage, then any second it was overloaded.
    """
    if not storms:
        raise ValueError("storms must hold at least one RetryStorm")
    figure = NotebookFigure(figsize=(10, 1.4 + 1.7 * len(storms)), layout="constrained")
    axes = figure.subplots(len(storms), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    peak = max(1, max(max(storm.load) for storm in storms)) * 1000 / storms[0].bucket
    end = len(storms[0].load) * storms[0].bucket / 1000
    for ax, storm in zip(axes, storms, strict=True):
        _draw_storm_panel(ax, storm, end, peak)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0, end)
    figure.suptitle(title or _storm_title(storms[0]))
    _legend_outside(axes[0], _storm_legend(storms[0]))
    return figure


def _draw_storm_panel(ax: Axes, storm: RetryStorm, end: float, peak: float) -> None:
    """One policy's load and served requests per second, its down seconds shaded."""
    per_second = 1000 / storm.bucket
    edges = [i * storm.bucket / 1000 for i in range(len(storm.load) + 1)]
    for first, last in _runs(storm.down_seconds):
        span = ax.axvspan(first, min(last, end), color="#d95f02", alpha=0.15, lw=0)
        span.set_gid("down")
    requests = ax.stairs([n * per_second for n in storm.load], edges, fill=True)
    requests.set(color="#7570b3", alpha=0.8, gid="load")
    served = ax.stairs([n * per_second for n in storm.served], edges, fill=True)
    served.set(color="#1b9e77", gid="served")
    if storm.capacity is not None:
        ax.axhline(storm.capacity, color="black", linestyle="--", linewidth=1)
    done = storm.done_at
    outcome = (
        f"all {storm.clients} served by {done / 1000:.0f} s"
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
    ax.set_ylabel("requests/s\n(log scale)")
    ax.grid(axis="y", alpha=0.3)


def _storm_title(first: RetryStorm) -> str:
    capacity = "all calls" if first.capacity is None else f"at most {first.capacity} calls/s"
    return (
        f"Retry storm: {first.clients} clients, a dependency down for "
        f"{first.recover_at / 1000:g} s, then serving {capacity}\n"
        f"(each failed call takes {format_ms(first.latency)}; a second with more calls "
        "than capacity keeps it down for the next second)"
    )


def _storm_legend(first: RetryStorm) -> list[Any]:
    handles: list[Any] = [
        Patch(color="#d95f02", alpha=0.15, label="dependency down\n(outage or overload)"),
        Patch(color="#7570b3", alpha=0.8, label="requests (load)"),
        Patch(color="#1b9e77", label="requests served"),
    ]
    if first.capacity is not None:
        handles.append(Line2D([], [], color="black", linestyle="--", label="capacity"))
    return handles
