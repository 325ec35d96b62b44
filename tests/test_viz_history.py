"""viz.history: what a queue keeps in Redis after each batch of jobs, per setting."""

from __future__ import annotations

import pytest

from minibull import viz


def test_history_lines_start_at_the_origin_in_kilobytes():
    points = [(50, 50, 2048), (100, 50, 3072)]
    assert viz.history_lines(points) == ([0, 50, 100], [0, 50, 50], [0.0, 2.0, 3.0])
    assert viz.history_lines([]) == ([0], [0], [0.0])


@pytest.mark.parametrize(
    "points", [[(50, 1, 1), (50, 2, 2)], [(0, 0, 0)], [(100, 1, 1), (50, 1, 1)]]
)
def test_history_lines_refuse_points_out_of_order(points):
    with pytest.raises(ValueError, match="in order of jobs run"):
        viz.history_lines(points)


def test_one_line_per_setting_in_each_panel():
    measured = {
        "keep all": [(50, 50, 10 * 1024), (100, 100, 20 * 1024)],
        "keep 50": [(50, 50, 11 * 1024), (100, 50, 11 * 1024)],
    }
    figure = viz.plot_history(measured, title="Figure 9.1. History")
    hashes_ax, kb_ax = figure.axes
    lines = {line.get_gid(): line for ax in figure.axes for line in ax.lines}
    assert set(lines) == {"hashes:keep all", "hashes:keep 50", "kb:keep all", "kb:keep 50"}
    assert list(lines["hashes:keep 50"].get_ydata()) == [0, 50, 50]
    assert list(lines["kb:keep all"].get_ydata()) == [0.0, 10.0, 20.0]
    assert list(lines["kb:keep all"].get_xdata()) == [0, 50, 100]
    assert all(line.axes is hashes_ax for gid, line in lines.items() if gid.startswith("hashes"))
    assert hashes_ax.get_ylabel() == "job hashes in Redis"
    assert kb_ax.get_xlabel() == "jobs run" and kb_ax.get_ylim()[0] == 0
    assert [t.get_text() for t in kb_ax.get_legend().get_texts()] == ["keep all", "keep 50"]
    assert figure._suptitle.get_text() == "Figure 9.1. History"
    assert figure._repr_png_().startswith(b"\x89PNG")


def test_nothing_measured_is_refused():
    with pytest.raises(ValueError, match="nothing to draw"):
        viz.plot_history({})
