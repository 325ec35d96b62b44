"""viz.rates: job starts per bin, and their histograms on shared axes."""

from __future__ import annotations

import pytest
from matplotlib.patches import Rectangle

from minibull import viz


def test_starts_per_bin_counts_each_start_once_in_its_bin():
    # A fixed-window limiter of 10 per 500 ms: bursts at 0, ~500 and ~1000 ms.
    starts = [0] * 10 + [503] * 10 + [1010] * 10
    assert viz.starts_per_bin(starts, 500) == [10, 10, 10]
    assert viz.starts_per_bin(starts, 100) == [10, 0, 0, 0, 0, 10, 0, 0, 0, 0, 10]
    assert viz.starts_per_bin([0, 99, 100], 100) == [2, 1]  # a bin is [start, end)
    assert viz.starts_per_bin([5], 100, until_ms=350) == [1, 0, 0, 0]
    with pytest.raises(ValueError, match="bin_ms must be > 0"):
        viz.starts_per_bin([1], 0)
    with pytest.raises(ValueError, match="negative"):
        viz.starts_per_bin([-1], 100)


def test_histograms_share_their_bins_and_axes():
    series = {"no limiter": [0, 10, 20, 70], "limiter": [0, 5, 500, 505, 1000]}
    figure = viz.plot_start_histogram(
        series, bin_ms=100, limits={"limiter": (2, 500)}, title="Figure X"
    )
    left, right = figure.axes
    heights = [
        [p.get_height() for p in ax.patches if isinstance(p, Rectangle)] for ax in (left, right)
    ]
    assert heights[0] == [4] + [0] * 10  # the unlimited run: one burst, same 11 bins
    assert heights[1] == [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1]
    assert left.get_xlim() == right.get_xlim() and left.get_ylim() == right.get_ylim()
    assert left.get_title() == "no limiter (4 starts)"
    assert left.get_ylabel() == "jobs started per 100 ms"
    assert [t.get_text() for t in right.texts] == ["limit: 2 per 500 ms"]
    assert list(left.texts) == []  # only the limited series has a limit
    assert figure._suptitle.get_text() == "Figure X"
    with pytest.raises(ValueError, match="nothing to draw"):
        viz.plot_start_histogram({})
