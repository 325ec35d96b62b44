"""Duplicate requests over time, and what each defence made of them (notebook 08)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .base import OUTCOME_COLOURS, NotebookFigure


@dataclass(frozen=True)
class Request:
    """One ``add`` under one defence: when (seconds), and the job it got back."""

    defence: str
    at: float
    job_id: str
    new: bool  # True: a new job; False: the add was ignored and returned an existing job


def requests_from_adds(defence: str, adds: Sequence[tuple[float, str]]) -> list[Request]:
    """(time, job id returned) of successive adds -> Requests; an id seen before is ignored."""
    seen: set[str] = set()
    requests = []
    for at, job_id in adds:
        requests.append(Request(defence, at, job_id, job_id not in seen))
        seen.add(job_id)
    return requests


def plot_duplicates(
    requests: Sequence[Request],
    runs: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """One row per defence: each request as a dot (a new job) or a cross (ignored), labelled
    with the job id it got; ``runs`` (defence -> (start, end) in seconds) as bars behind."""
    if not requests:
        raise ValueError("no requests to draw")
    defences = list(dict.fromkeys(request.defence for request in requests))
    figure = NotebookFigure(figsize=(10, 1.2 + 0.6 * len(defences)), layout="constrained")
    ax = figure.add_subplot()
    for row, defence in enumerate(defences):
        for start, end in (runs or {}).get(defence, []):
            bar = ax.barh(row, end - start, left=start, height=0.5, alpha=0.25,
                          color=OUTCOME_COLOURS["completed"])[0]  # fmt: skip
            bar.set_gid(f"run:{defence}:{start}")
        for request in (r for r in requests if r.defence == defence):
            (mark,) = ax.plot(
                request.at, row, marker="o" if request.new else "x", markersize=9,
                color="#1b9e77" if request.new else "#d95f02", linestyle="none",
            )  # fmt: skip
            mark.set_gid(f"{'new' if request.new else 'ignored'}:{defence}:{request.at}")
            ax.annotate(request.job_id, (request.at, row), xytext=(0, 8),
                        textcoords="offset points", ha="center", fontsize=7)  # fmt: skip
    ax.set_yticks(range(len(defences)), defences)
    ax.set_ylim(len(defences) - 0.5, -0.7)
    ax.set_xlabel("time of the request (s)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "Duplicate requests, and what each defence made of them")
    handles = [
        Line2D([], [], marker="o", color="#1b9e77", linestyle="none", label="a new job"),
        Line2D([], [], marker="x", color="#d95f02", linestyle="none", label="ignored"),
    ]
    if runs:
        handles.append(Line2D([], [], color=OUTCOME_COLOURS["completed"], alpha=0.4, lw=8,
                              label="a job running"))  # fmt: skip
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return figure
