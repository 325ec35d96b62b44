"""Pictures of an incident: what the queue did, with the moments that explain it marked.

``plot_incident`` draws queue depth (a ``DepthSampler``'s samples) through an outage;
``plot_crash_timeline`` draws a job timeline through a crash (a kill, a freeze). Both take
``marks``: label -> epoch ms on the queue's clock (``queue.clock.now()`` when it happened),
drawn as numbered dashed lines, with the labels in a key beside the plot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .base import UNITS
from .depth import DepthSample, plot_queue_depth
from .timeline import Span, plot_job_timeline


def mark_positions(marks: Mapping[str, float], t0: float, unit: str) -> list[tuple[str, float]]:
    """Each mark's x position (in ``unit`` after ``t0``), in time order."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)} (got {unit!r})")
    return sorted(
        ((label, (at - t0) / UNITS[unit]) for label, at in marks.items()), key=lambda m: m[1]
    )


def _draw_marks(ax: Axes, marks: Mapping[str, float], t0: float, unit: str) -> None:
    positions = mark_positions(marks, t0, unit)
    key = []
    for number, (label, x) in enumerate(positions, start=1):
        line = ax.axvline(x, color="#444444", linestyle="--", linewidth=1)
        line.set_gid(f"mark:{label}")
        ax.annotate(
            str(number),
            (x, 1),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize=9,
            fontweight="bold",
        )
        key.append(f"{number}  {label}")
    if key:
        ax.text(
            1.01,
            0.0,
            "\n".join(key),
            transform=ax.transAxes,
            ha="left",
            va="bottom",
            fontsize=8,
        )


def plot_incident(
    samples: Sequence[DepthSample],
    marks: Mapping[str, float],
    *,
    states: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Queue depth over a run (see ``plot_queue_depth``), in seconds, with ``marks`` drawn."""
    figure = plot_queue_depth(samples, states=states, unit="s", title=title)
    _draw_marks(figure.axes[0], marks, samples[0].at, "s")
    return figure


def plot_crash_timeline(
    spans: Sequence[Span],
    marks: Mapping[str, float],
    *,
    worker_names: Mapping[str, str] | None = None,
    ends: Mapping[str, float] | None = None,
    title: str | None = None,
) -> Figure:
    """A job timeline (see ``plot_job_timeline``), in seconds, with ``marks`` drawn.

    Attempts with no end in the events (stalled: the worker was killed or frozen) are
    hatched up to the last mark or event, whichever is later; ``ends`` (worker id -> epoch
    ms) says when a worker stopped for good (killed), where its open attempts end instead.
    """
    if not spans:
        raise ValueError("no attempts to draw: run some jobs first (spans is empty)")
    ends = ends or {}
    spans = [
        replace(span, end=int(ends[span.worker]))
        if span.end is None and span.worker in ends
        else span
        for span in spans
    ]
    t0 = min(span.start for span in spans)
    known = [s.end for s in spans if s.end is not None] + [s.start for s in spans]
    until = int(max([*known, *marks.values()]))
    figure = plot_job_timeline(
        spans, unit="s", until=until, title=title, worker_names=worker_names, label_jobs=True
    )
    _draw_marks(figure.axes[0], marks, t0, "s")
    return figure
