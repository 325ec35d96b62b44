"""Pictures of a flow: its tree of jobs coloured by state, and the timeline of a flow's run
(the children's attempts, then the parent's, on every queue of the flow)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Patch

from .base import UNITS, _legend_outside, _new_figure
from .timeline import Span, attempt_spans, plot_job_timeline, read_events

if TYPE_CHECKING:
    from ..queue import Queue

#: A job's state in a flow -> the colour of its box.
STATE_COLOURS = {
    "waiting-children": "#7570b3",
    "waiting": "#a6cee3",
    "prioritized": "#a6cee3",
    "delayed": "#e6ab02",
    "active": "#999999",
    "completed": "#1b9e77",
    "failed": "#d95f02",
    "unknown": "#ffffff",
}


@dataclass(frozen=True)
class TreeBox:
    """One job of a flow, placed: ``x`` across (leaves 0, 1, 2 ...), ``depth`` down
    (the root 0), ``parent`` the index of its parent's box (None for the root)."""

    label: str
    state: str
    x: float
    depth: int
    parent: int | None


def tree_layout(tree: Mapping[str, Any]) -> list[TreeBox]:
    """Boxes for a tree ``{"label", "state", "children": [...]}``, parents first: leaves one
    apart in the order given, each parent centred over its children."""
    boxes: list[TreeBox] = []
    next_leaf = [0.0]

    def place(node: Mapping[str, Any], depth: int, parent: int | None) -> float:
        index = len(boxes)
        boxes.append(TreeBox(str(node["label"]), str(node["state"]), 0.0, depth, parent))
        children = node.get("children") or []
        if children:
            xs = [place(child, depth + 1, index) for child in children]
            x = (min(xs) + max(xs)) / 2
        else:
            x, next_leaf[0] = next_leaf[0], next_leaf[0] + 1
        boxes[index] = replace(boxes[index], x=x)
        return x

    place(tree, 0, None)
    return boxes


async def read_flow_tree(node: Mapping[str, Any]) -> dict[str, Any]:
    """A FlowProducer JobNode as ``tree_layout`` takes it: labels ``<name>`` over
    ``<queue>:<id>``, and each job's state now, read from Redis."""
    job = node["job"]
    queue = job.queue
    return {
        "label": f"{job.name}\n{queue.name}:{job.id}",
        "state": await queue.get_job_state(job.id),
        "children": [await read_flow_tree(child) for child in node.get("children") or []],
    }


def plot_flow_tree(tree: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """The tree of a flow: the root at the top, one box per job coloured by its state, a
    line from each child up to its parent (where its result goes)."""
    boxes = tree_layout(tree)
    width = max(box.x for box in boxes) + 1
    depth = max(box.depth for box in boxes) + 1
    figure, ax = _new_figure(min(2 + 1.6 * width, 14), 1 + 1.1 * depth)
    for box in boxes:
        if box.parent is not None:
            up = boxes[box.parent]
            ax.plot([box.x, up.x], [box.depth, up.depth], color="#666666", lw=1, zorder=1)
    for index, box in enumerate(boxes):
        patch = FancyBboxPatch(
            (box.x - 0.45, box.depth - 0.22),
            0.9,
            0.44,
            boxstyle="round,pad=0.02",
            facecolor=STATE_COLOURS.get(box.state, "#ffffff"),
            edgecolor="#333333",
            zorder=2,
        )
        patch.set_gid(f"box:{index}")
        ax.add_patch(patch)
        ax.text(box.x, box.depth, box.label, ha="center", va="center", fontsize=8, zorder=3)
    ax.set_xlim(-0.6, width - 0.4)
    ax.set_ylim(depth - 0.4, -0.6)
    ax.axis("off")
    ax.set_title(title or f"A flow of {len(boxes)} jobs (parents above their children)")
    present = [state for state in STATE_COLOURS if any(b.state == state for b in boxes)]
    _legend_outside(ax, [Patch(color=STATE_COLOURS[s], label=s) for s in present])
    return figure


# -- the run of a flow ------------------------------------------------------------------


async def flow_spans(queues: Sequence[Queue]) -> list[Span]:
    """Every attempt on the flow's queues, job ids as ``<queue>:<id>`` (ids repeat across
    queues), from each queue's events stream (see ``attempt_spans``)."""
    spans: list[Span] = []
    for queue in queues:
        for span in attempt_spans(await read_events(queue)):
            spans.append(replace(span, job_id=f"{queue.name}:{span.job_id}"))
    return sorted(spans, key=lambda span: span.start)


def ready_marks(spans: Sequence[Span], parents: Sequence[str]) -> dict[str, int]:
    """When each parent (a ``<queue>:<id>``) started its first attempt (epoch ms)."""
    marks = {}
    for parent in parents:
        starts = [span.start for span in spans if span.job_id == parent]
        if starts:
            marks[parent] = min(starts)
    return marks


def plot_flow_timeline(
    spans: Sequence[Span],
    parents: Sequence[str],
    *,
    worker_names: Mapping[str, str] | None = None,
    unit: str = "s",
    title: str | None = None,
) -> Figure:
    """The job timeline of a flow's run, with a dashed line where each parent started:
    after its last child, whichever worker and queue ran them."""
    figure = plot_job_timeline(spans, unit=unit, worker_names=worker_names, title=title)
    ax = figure.axes[0]
    t0 = min(span.start for span in spans)
    scale = UNITS[unit]
    for parent, start in ready_marks(spans, parents).items():
        line = ax.axvline((start - t0) / scale, color="#333333", ls="--", lw=1)
        line.set_gid(f"parent:{parent}")
        bottom = ax.get_ylim()[0]  # rows go down: the largest y is at the bottom
        ax.text((start - t0) / scale, bottom, f" {parent} starts", fontsize=8, va="bottom")
    return figure
