"""minibull.viz.states: the diagram of a job's life names every state of the package,
with its key, and draws one arrow per transition."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from minibull import STATES, viz  # noqa: E402
from minibull.keys import STATE_SUFFIX  # noqa: E402


def test_every_state_is_in_the_diagram_and_every_arrow_joins_two_places():
    assert set(STATES) <= set(viz.JOB_STATE_PLACES)
    nodes = set(viz.JOB_STATE_PLACES)
    for move in viz.JOB_TRANSITIONS:
        assert {move.source, move.target} <= nodes
    moves = {(m.source, m.target) for m in viz.JOB_TRANSITIONS}
    # The review's missing pieces: a due job with a priority, and removal.
    assert {("delayed", "prioritized"), ("completed", "removed"), ("failed", "removed")} <= moves
    # Every state can be left or is an end, and every state can be reached.
    assert {target for _, target in moves} >= set(STATES)


def test_the_figure_draws_each_state_with_its_key_and_each_transition():
    figure = viz.plot_job_states()
    ax = figure.axes[0]
    texts = {t.get_gid(): t for t in ax.texts if t.get_gid()}
    for state in STATES:
        assert texts[f"node:{state}"].get_text() == f"{state}\nkey …:{STATE_SUFFIX[state]}"
    for move in viz.JOB_TRANSITIONS:
        arrow = texts[f"move:{move.source}->{move.target}"]
        assert arrow.xy == viz.JOB_STATE_PLACES[move.target]
        assert arrow.xyann == viz.JOB_STATE_PLACES[move.source]
        assert texts[f"label:{move.source}->{move.target}"].get_text() == move.label
    assert figure._repr_png_().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="no place"):
        viz.plot_job_states([viz.Transition("waiting", "limbo", "?")])
