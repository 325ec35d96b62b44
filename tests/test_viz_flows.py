"""viz.flows: a flow's tree laid out and drawn, and the timeline of a flow's run."""

from __future__ import annotations

import pytest

import minibull
from minibull import viz
from tests.conftest import wait_for

TREE = {
    "label": "report",
    "state": "waiting-children",
    "children": [
        {"label": "a", "state": "completed"},
        {"label": "b", "state": "failed", "children": [
            {"label": "b1", "state": "completed"}, {"label": "b2", "state": "active"}]},
        {"label": "c", "state": "waiting"},
    ],
}  # fmt: skip


def test_leaves_are_one_apart_and_parents_centred_over_their_children():
    boxes = viz.tree_layout(TREE)
    placed = [(b.label, b.x, b.depth, b.parent) for b in boxes]
    assert placed == [
        ("report", 1.5, 0, None),
        ("a", 0.0, 1, 0),
        ("b", 1.5, 1, 0),
        ("b1", 1.0, 2, 2),
        ("b2", 2.0, 2, 2),
        ("c", 3.0, 1, 0),
    ]


def test_a_lone_job_is_a_tree_of_one_box():
    assert viz.tree_layout({"label": "x", "state": "waiting"}) == [
        viz.TreeBox("x", "waiting", 0.0, 0, None)
    ]


def test_the_tree_figure_has_a_box_per_job_coloured_by_state_and_a_legend_of_states():
    figure = viz.plot_flow_tree(TREE)
    ax = figure.axes[0]
    boxes = {p.get_gid(): p for p in ax.patches if (p.get_gid() or "").startswith("box:")}
    assert len(boxes) == 6
    colour = boxes["box:2"].get_facecolor()
    expected = viz.STATE_COLOURS["failed"]
    assert tuple(round(c * 255) for c in colour[:3]) == tuple(
        int(expected[i : i + 2], 16) for i in (1, 3, 5)
    )
    assert len(ax.lines) == 5  # one line per child
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["waiting-children", "waiting", "active", "completed", "failed"]
    assert [t.get_text() for t in ax.texts] == ["report", "a", "b", "b1", "b2", "c"]


def test_ready_marks_are_each_parents_first_start():
    spans = [
        viz.Span("emails:1", 1, "w", 0, 1000, 1100, "completed"),
        viz.Span("reports:1", 1, "w", 0, 1200, 1250, "retried"),
        viz.Span("reports:1", 2, "w", 0, 1300, 1350, "completed"),
    ]
    assert viz.ready_marks(spans, ["reports:1", "reports:9"]) == {"reports:1": 1200}
    figure = viz.plot_flow_timeline(spans, ["reports:1"], unit="ms")
    (line,) = [ln for ln in figure.axes[0].lines if ln.get_gid() == "parent:reports:1"]
    assert list(line.get_xdata()) == [200, 200]


async def test_a_flow_run_is_read_from_every_queue_and_the_parent_starts_last(
    prefix, clock, make_worker
):
    flows = minibull.FlowProducer(prefix=prefix, clock=clock)

    async def slow(job):
        await clock.sleep(1)
        return job.name

    make_worker(slow, name="emails", concurrency=2)
    make_worker(slow, name="reports")
    node = await flows.add({"name": "report", "queue_name": "reports", "children": [
        {"name": f"send{i}", "queue_name": "emails"} for i in range(3)]})  # fmt: skip
    await clock.advance(5)
    await wait_for(lambda: _done(node))
    tree = await viz.read_flow_tree(node)
    assert tree["state"] == "completed" and tree["label"] == f"report\nreports:{node['job'].id}"
    assert [child["state"] for child in tree["children"]] == ["completed"] * 3
    spans = await viz.flow_spans([flows.queue("emails"), flows.queue("reports")])
    parent = f"reports:{node['job'].id}"
    assert [s.job_id for s in spans][-1] == parent
    assert viz.ready_marks(spans, [parent])[parent] >= max(
        s.end for s in spans if s.job_id.startswith("emails:")
    )
    await flows.close()


async def _done(node) -> bool:
    return await node["job"].get_state() == "completed"


def test_an_empty_timeline_is_refused():
    with pytest.raises(ValueError, match="no attempts"):
        viz.plot_flow_timeline([], ["reports:1"])
