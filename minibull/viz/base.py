"""What every picture shares: time units and labels, outcome colours, a figure that
shows itself in a notebook and a few drawing helpers."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text

if TYPE_CHECKING:
    pass

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
