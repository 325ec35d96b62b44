"""A request timeline: when each HTTP request was answered, and when the work it asked
for (an email) was really done, for handlers that do the work inline or queue it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .base import NotebookFigure, _legend_outside

REQUEST_COLOUR, EMAIL_COLOUR = "#7570b3", "#d95f02"


@dataclass(frozen=True)
class RequestTimes:
    """One request, in seconds after its burst began: sent, answered, and its email."""

    label: str
    sent: float
    answered: float
    email_start: float | None = None  # None: no email was sent for it (yet)
    email_end: float | None = None


def request_times(
    answers: Sequence[tuple[str, float]],
    emails: Sequence[tuple[str, float, float]],
    *,
    started: float = 0.0,
) -> list[RequestTimes]:
    """Pair each answer with the email sent to the same address, on one time axis.

    ``answers``: (address, answered at) per request; ``emails``: (address, start,
    end) per email sent. Times are any clock's (``time.perf_counter()``); ``started``
    is when the burst began on that clock, the zero of the result. Requests are sent
    at ``started``; an address with no email gets None for its email times.
    """
    sent_at: dict[str, tuple[float, float]] = {}
    for address, start, end in emails:
        sent_at.setdefault(address, (start - started, end - started))
    rows = []
    for address, answered in answers:
        email = sent_at.get(address)
        rows.append(
            RequestTimes(
                label=address,
                sent=0.0,
                answered=answered - started,
                email_start=email[0] if email else None,
                email_end=email[1] if email else None,
            )
        )
    return rows


def plot_request_timeline(
    versions: Mapping[str, Sequence[RequestTimes]], *, title: str | None = None
) -> Figure:
    """One panel per version of a handler: a row per request, its wait and its email.

    A purple bar runs from the request to its answer, an orange bar while its email
    was being sent; a dot marks the answer, a cross the email delivered.
    """
    if not versions:
        raise ValueError("versions must name at least one handler version")
    rows = max(len(times) for times in versions.values())
    figure = NotebookFigure(
        figsize=(10, 1.0 + (0.35 * rows + 0.6) * len(versions)), layout="constrained"
    )
    axes = figure.subplots(len(versions), 1, sharex=True, squeeze=False)[:, 0]
    end = max(max(t.answered, t.email_end or 0.0) for times in versions.values() for t in times)
    for ax, (name, times) in zip(axes, versions.items(), strict=True):
        for y, t in enumerate(times):
            _draw_request(ax, name, y, t)
        ax.set_yticks(range(len(times)), [t.label for t in times], fontsize=8)
        ax.set_ylim(len(times) - 0.4, -0.6)
        ax.set_title(name, loc="left", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("time since the burst of requests began (s)")
    axes[-1].set_xlim(-0.02 * end if end > 0 else -0.02, end * 1.05 if end > 0 else 1)
    figure.suptitle(title or "When each request was answered, and when its email went out")
    _legend_outside(
        axes[0],
        [
            Patch(color=REQUEST_COLOUR, label="user waits\nfor the answer"),
            Line2D([], [], marker="o", linestyle="", color=REQUEST_COLOUR, label="answer sent"),
            Patch(color=EMAIL_COLOUR, label="email being sent"),
            Line2D([], [], marker="x", linestyle="", color="black", label="email delivered"),
        ],
    )
    return figure


def _draw_request(ax: Axes, name: str, y: int, t: RequestTimes) -> None:
    """One request's row: the wait for its answer above, its email (if any) below."""
    bar = ax.barh(y + 0.15, t.answered - t.sent, left=t.sent, height=0.3, color=REQUEST_COLOUR)
    bar.patches[0].set_gid(f"request:{name}:{y}")
    (dot,) = ax.plot([t.answered], [y + 0.15], "o", color=REQUEST_COLOUR, markersize=5)
    dot.set_gid(f"answered:{name}:{y}")
    if t.email_start is None or t.email_end is None:
        return
    width = t.email_end - t.email_start
    bar = ax.barh(y - 0.15, width, left=t.email_start, height=0.3, color=EMAIL_COLOUR)
    bar.patches[0].set_gid(f"email:{name}:{y}")
    (cross,) = ax.plot([t.email_end], [y - 0.15], "x", color="black", markersize=6)
    cross.set_gid(f"delivered:{name}:{y}")
