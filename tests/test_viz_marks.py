"""viz.marks: an incident's queue depth and a crash's timeline, with the moments marked."""

from __future__ import annotations

import matplotlib.colors
import pytest
from matplotlib.patches import Rectangle

from minibull import viz


def test_mark_positions_are_in_time_order_and_unit():
    marks = {"resumed": 3500, "paused": 1500, "down": 1000}
    assert viz.mark_positions(marks, 1000, "s") == [("down", 0), ("paused", 0.5), ("resumed", 2.5)]
    assert viz.mark_positions(marks, 1000, "ms")[1] == ("paused", 500)
    with pytest.raises(ValueError, match="unit must be one of"):
        viz.mark_positions(marks, 0, "days")


def mark_lines(figure):
    ax = figure.axes[0]
    return {line.get_gid(): line.get_xdata()[0] for line in ax.lines if line.get_gid()}


def test_an_incident_is_queue_depth_with_numbered_marks():
    samples = [
        viz.DepthSample(10_000, {"waiting": 0, "failed": 0}),
        viz.DepthSample(10_500, {"waiting": 0, "failed": 6}),
        viz.DepthSample(11_000, {"waiting": 9, "failed": 6}),
        viz.DepthSample(12_000, {"waiting": 0, "failed": 6, "completed": 9}),
    ]
    marks = {"partner down": 10_100, "queue paused": 10_600, "partner back, resumed": 11_500}
    figure = viz.plot_incident(samples, marks, title="Figure 9.2. An outage")
    ax = figure.axes[0]
    lines = mark_lines(figure)
    assert lines["mark:partner down"] == pytest.approx(0.1)
    assert lines["mark:partner back, resumed"] == pytest.approx(1.5)
    assert lines["depth:failed"] is not None  # the depth lines are there too
    assert "(s)" in ax.get_xlabel() and ax.get_title() == "Figure 9.2. An outage"
    texts = [t.get_text() for t in ax.texts]
    assert "1  partner down\n2  queue paused\n3  partner back, resumed" in texts
    assert [a.get_text() for a in ax.texts if a.get_text() in "123"] == ["1", "2", "3"]


def test_a_crash_timeline_hatches_the_lost_attempt_up_to_the_last_mark():
    spans = [
        viz.Span("1", 1, "wA", 0, 1000, None, "stalled"),  # worker A killed: no end in events
        viz.Span("1", 2, "wB", 0, 3000, 4200, "completed"),
    ]
    marks = {"A killed": 1100, "lock expired": 2000, "B's sweep: stalled": 2900}
    names = {"wA": "worker A", "wB": "worker B"}
    figure = viz.plot_crash_timeline(spans, marks, worker_names=names, title="Figure 7.1")
    ax = figure.axes[0]
    bars = {p.get_gid(): p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid()}
    assert bars["1:1"].get_hatch() == "//" and bars["1:1"].get_width() == pytest.approx(3.2)
    assert bars["1:2"].get_x() == pytest.approx(2.0) and bars["1:2"].get_hatch() is None
    assert mark_lines(figure)["mark:lock expired"] == pytest.approx(1.0)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["worker A / 1", "worker B / 1"]
    # A mark after the last event stretches the lost attempt to it.
    later = viz.plot_crash_timeline(spans, {**marks, "end": 6000}, worker_names=names)
    lost = [p for p in later.axes[0].patches if p.get_gid() == "1:1"][0]
    assert lost.get_width() == pytest.approx(5.0)
    # A worker that was killed: its attempt ends at the kill, solid, in the stalled colour.
    killed = viz.plot_crash_timeline(spans, marks, worker_names=names, ends={"wA": 1100})
    bar = [p for p in killed.axes[0].patches if p.get_gid() == "1:1"][0]
    assert bar.get_width() == pytest.approx(0.1) and bar.get_hatch() is None
    assert matplotlib.colors.same_color(bar.get_facecolor(), viz.OUTCOME_COLOURS["stalled"])
    with pytest.raises(ValueError, match="no attempts"):
        viz.plot_crash_timeline([], marks)
