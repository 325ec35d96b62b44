"""plot_job_timeline's options for the course's figures: named workers and a shared scale."""

from __future__ import annotations

from matplotlib.patches import Rectangle

from minibull import viz


def spans(worker: str, ends: list[int]) -> list[viz.Span]:
    """Attempts one after the other on one slot, ending at ``ends`` (ms after 1,000)."""
    starts = [1000, *(1000 + end for end in ends[:-1])]
    return [
        viz.Span(str(i + 1), 1, worker, 0, start, 1000 + end, "completed")
        for i, (start, end) in enumerate(zip(starts, ends, strict=True))
    ]


def test_rows_are_labelled_with_the_names_given():
    data = spans("4f9ac2d1e0", [10, 20]) + [
        viz.Span("3", 1, "b81c0aa9", 0, 1005, 1015, "completed")
    ]
    names = {"4f9ac2d1e0": "process A", "b81c0aa9": "process B"}
    figure = viz.plot_job_timeline(data, unit="ms", worker_names=names)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["process A / 1", "process B / 1"]
    assert ax.get_ylabel() == "worker / slot"
    # A worker missing from the names keeps its short id.
    figure = viz.plot_job_timeline(data, unit="ms", worker_names={"b81c0aa9": "process B"})
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == [
        "4f9ac2 / 1",
        "process B / 1",
    ]


def test_duration_puts_two_timelines_on_one_scale():
    short, long = spans("w", [10, 20]), spans("w", [100, 200])
    figures = [viz.plot_job_timeline(s, unit="ms", duration_ms=200) for s in (short, long)]
    assert [f.axes[0].get_xlim() for f in figures] == [(0, 200), (0, 200)]
    # The bars keep their true widths: the short run fills a tenth of the axis.
    bars = [p for p in figures[0].axes[0].patches if isinstance(p, Rectangle) and p.get_gid()]
    assert max(bar.get_x() + bar.get_width() for bar in bars) == 20
    # Without it, each axis fits its own run (the default, unchanged).
    assert viz.plot_job_timeline(short, unit="ms").axes[0].get_xlim()[1] < 40
