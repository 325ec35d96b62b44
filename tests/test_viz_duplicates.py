"""viz.duplicates: duplicate requests, and what each defence made of them."""

from __future__ import annotations

import pytest

from minibull import viz


def test_requests_from_adds_marks_a_repeated_id_as_ignored():
    adds = [(0.0, "1"), (0.5, "1"), (1.5, "2"), (6.0, "2")]
    assert viz.requests_from_adds("dedup", adds) == [
        viz.Request("dedup", 0.0, "1", True),
        viz.Request("dedup", 0.5, "1", False),
        viz.Request("dedup", 1.5, "2", True),
        viz.Request("dedup", 6.0, "2", False),
    ]


def test_each_defence_is_a_row_of_new_and_ignored_requests():
    requests = viz.requests_from_adds("none", [(0, "1"), (0.5, "2")]) + viz.requests_from_adds(
        "job_id", [(0, "r-7"), (0.5, "r-7")]
    )
    runs = {"none": [(0.0, 1.0), (1.0, 2.0)], "job_id": [(0.0, 1.0)]}
    figure = viz.plot_duplicates(requests, runs, title="Figure 8.1")
    ax = figure.axes[0]
    marks = {line.get_gid(): line for line in ax.lines if line.get_gid()}
    assert set(marks) == {"new:none:0", "new:none:0.5", "new:job_id:0", "ignored:job_id:0.5"}
    assert marks["ignored:job_id:0.5"].get_marker() == "x"
    assert marks["ignored:job_id:0.5"].get_ydata()[0] == 1  # the second row
    bars = [p for p in ax.patches if (p.get_gid() or "").startswith("run:")]
    assert sorted((b.get_x(), b.get_width()) for b in bars) == [(0, 1), (0, 1), (1, 1)]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["none", "job_id"]
    assert ax.get_title() == "Figure 8.1"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "a new job",
        "ignored",
        "a job running",
    ]
    with pytest.raises(ValueError, match="no requests"):
        viz.plot_duplicates([])
