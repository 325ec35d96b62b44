"""A job's life as a picture: its states (and the key that holds each) and the scripts
that move a job between them. The diagram is data (``JOB_STATE_PLACES``,
``JOB_TRANSITIONS``), so a test can check it against the package's states."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..keys import STATE_SUFFIX
from .base import _new_figure

#: Where each node sits (x, y); "add" is where jobs come from, "removed" where
#: remove_on_complete / remove_on_fail send them.
JOB_STATE_PLACES: dict[str, tuple[float, float]] = {
    "add": (0.0, 3.0),
    "delayed": (2.8, 5.9),
    "waiting": (2.8, 3.0),
    "prioritized": (2.8, 0.4),
    "active": (6.2, 3.0),
    "completed": (9.6, 4.9),
    "failed": (9.6, 1.1),
    "removed": (12.4, 3.0),
}


@dataclass(frozen=True)
class Transition:
    """An arrow: from one node to another, with what moves the job (and how to draw it)."""

    source: str
    target: str
    label: str
    rad: float = 0.0  # curvature: 0 is straight
    offset: tuple[float, float] = (0.0, 0.0)  # where the label sits, from the middle


JOB_TRANSITIONS: tuple[Transition, ...] = (
    Transition("add", "delayed", "delay", offset=(-0.45, 0.2)),
    Transition("add", "waiting", "addJob", offset=(0, 0.25)),
    Transition("add", "prioritized", "priority", offset=(-0.45, -0.2)),
    Transition(
        "delayed",
        "waiting",
        "when due (moveToActive);\nto prioritized if it\nhas a priority",
        offset=(1.05, 0.35),
    ),
    Transition("delayed", "prioritized", "", rad=0.35),
    Transition("waiting", "active", "moveToActive", offset=(0, 0.25)),
    Transition("prioritized", "active", "moveToActive\n(wait empty)", offset=(0.55, -0.3)),
    Transition("active", "completed", "returned\n(moveToFinished)", offset=(-0.3, 0.5)),
    Transition(
        "active", "failed", "raised, no attempts\nleft (moveToFinished)", offset=(-0.35, -0.5)
    ),
    Transition(
        "active",
        "delayed",
        "raised: retry after backoff\n(moveToDelayed)",
        rad=0.3,
        offset=(1.3, 0.85),
    ),
    Transition(
        "active",
        "waiting",
        "stalled, or retry at once\n(moveStalledJobsToWait, retryJob)",
        rad=0.55,
        offset=(0.0, 1.15),
    ),
    Transition("failed", "waiting", "job.retry()", rad=-0.35, offset=(1.0, -0.95)),
    Transition("completed", "removed", "remove_on_complete", offset=(0.3, 0.35)),
    Transition("failed", "removed", "remove_on_fail", offset=(0.3, -0.35)),
)

_COLOURS = {"completed": "#d9f0d3", "failed": "#fddbc7", "active": "#d1e5f0"}


def plot_job_states(
    transitions: Sequence[Transition] = JOB_TRANSITIONS,
    places: Mapping[str, tuple[float, float]] = JOB_STATE_PLACES,
    *,
    title: str | None = None,
) -> Figure:
    """Boxes for the states (with the suffix of the key that holds each), arrows for the
    transitions, labelled with what moves the job."""
    for move in transitions:
        for node in (move.source, move.target):
            if node not in places:
                raise ValueError(f"no place for {node!r}: add it to places")
    figure, ax = _new_figure(12, 6.6)
    ax.set_xlim(-0.7, 13.4)
    ax.set_ylim(-0.5, 6.8)
    ax.axis("off")
    for node, (x, y) in places.items():
        _draw_state(ax, node, x, y)
    for move in transitions:
        _draw_transition(ax, move, places[move.source], places[move.target])
    ax.set_title(title or "The life of a job: its states (and their keys) and what moves it")
    return figure


def _draw_state(ax: Axes, node: str, x: float, y: float) -> None:
    """A state's box, naming the key that holds it (``add``: a dot, the job's start)."""
    if node == "add":
        ax.plot(x, y, "ko", markersize=8, gid="node:add")
        ax.text(x, y - 0.45, "Queue.add", ha="center", fontsize=10)
        return
    if node == "removed":
        text = "removed\n(hash deleted)"
    else:
        text = f"{node}\nkey …:{STATE_SUFFIX[node]}"
    box = ax.text(
        x,
        y,
        text,
        ha="center",
        va="center",
        fontsize=10,
        bbox={"boxstyle": "round,pad=0.6", "facecolor": _COLOURS.get(node, "#f0f0f0")},
    )
    box.set_gid(f"node:{node}")


def _draw_transition(
    ax: Axes, move: Transition, a: tuple[float, float], b: tuple[float, float]
) -> None:
    """An arrow from state ``a`` to state ``b``, labelled with what moves the job."""
    arrow = ax.annotate(
        "",
        xy=b,
        xytext=a,
        arrowprops={
            "arrowstyle": "-|>",
            "color": "#444444",
            "lw": 1.3,
            "shrinkA": 5 if move.source == "add" else 32,
            "shrinkB": 36,
            "connectionstyle": f"arc3,rad={move.rad}",
        },
    )
    arrow.set_gid(f"move:{move.source}->{move.target}")
    middle = ((a[0] + b[0]) / 2 + move.offset[0], (a[1] + b[1]) / 2 + move.offset[1])
    ax.text(
        *middle,
        move.label,
        ha="center",
        va="center",
        fontsize=8.5,
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
    ).set_gid(f"label:{move.source}->{move.target}")
