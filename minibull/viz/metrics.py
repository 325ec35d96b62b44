"""Jobs finished per minute, from ``Queue.get_metrics`` (BullMQ's ``metrics:`` keys)."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from .base import OUTCOME_COLOURS, _new_figure

MINUTE_MS = 60_000


def metrics_minutes(metrics: dict[str, Any]) -> list[tuple[int, int]]:
    """``get_metrics``' answer as (minute, jobs) pairs, oldest first; a minute is counted
    from the epoch (``ms // 60000``). The newest point is the minute before the one of
    ``meta["prev_ts"]``: a point is written by the first finish of a later minute."""
    newest = metrics["meta"]["prev_ts"] // MINUTE_MS - 1
    return [(newest - age, jobs) for age, jobs in enumerate(metrics["data"])][::-1]


def plot_metrics(
    completed: dict[str, Any],
    failed: dict[str, Any] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Bars of jobs completed (and failed) per minute, the minutes counted back from the
    newest point of either; from ``queue.get_metrics("completed")`` (and ``"failed"``)."""
    series = {"completed": metrics_minutes(completed)}
    if failed is not None:
        series["failed"] = metrics_minutes(failed)
    minutes = [minute for points in series.values() for minute, _ in points]
    if not minutes:
        raise ValueError("no data points: a worker with metrics= writes one per minute")
    newest = max(minutes)
    figure, ax = _new_figure(10, 3.5)
    width = 0.8 / len(series)
    for index, (kind, points) in enumerate(series.items()):
        xs = [minute - newest + (index - (len(series) - 1) / 2) * width for minute, _ in points]
        bars = ax.bar(
            xs, [jobs for _, jobs in points], width, color=OUTCOME_COLOURS[kind], label=kind
        )
        for bar in bars:
            bar.set_gid(f"metrics:{kind}")
    ax.set_xlabel("minutes before the newest point")
    ax.set_ylabel("jobs per minute")
    ax.set_title(title or "Jobs finished per minute (Queue.get_metrics)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return figure
