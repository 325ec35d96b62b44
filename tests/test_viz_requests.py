"""minibull.viz.requests: the request timeline pairs each answer with its email, and
draws exactly those times."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from minibull import viz  # noqa: E402


def test_answers_are_paired_with_their_emails_on_the_burst_clock():
    answers = [("a@x", 100.2), ("b@x", 100.3), ("/health", 100.01)]
    emails = [("b@x", 100.3, 101.1), ("a@x", 100.05, 100.85), ("a@x", 105.0, 105.8)]
    rows = viz.request_times(answers, emails, started=100.0)
    assert [r.label for r in rows] == ["a@x", "b@x", "/health"]  # the answers' order
    a, b, health = rows
    assert (a.sent, a.answered) == (0.0, pytest.approx(0.2))
    # The first email to an address is its email (a later one is another request's).
    assert (a.email_start, a.email_end) == (pytest.approx(0.05), pytest.approx(0.85))
    assert (b.email_start, b.email_end) == (pytest.approx(0.3), pytest.approx(1.1))
    assert health.email_start is None and health.email_end is None


def test_the_figure_draws_one_bar_per_request_and_per_email():
    queued = viz.request_times([("a@x", 0.01), ("/health", 0.003)], [("a@x", 0.02, 0.82)])
    inline = viz.request_times([("a@x", 0.8), ("/health", 0.002)], [("a@x", 0.0, 0.8)])
    figure = viz.plot_request_timeline({"inline": inline, "queued": queued})
    assert len(figure.axes) == 2
    for ax, (name, rows) in zip(figure.axes, [("inline", inline), ("queued", queued)], strict=True):
        bars = {p.get_gid(): p for p in ax.patches if p.get_gid()}
        for y, row in enumerate(rows):
            request = bars[f"request:{name}:{y}"]
            assert request.get_x() == row.sent
            assert request.get_width() == pytest.approx(row.answered - row.sent)
            if row.email_start is None:
                assert f"email:{name}:{y}" not in bars
            else:
                email = bars[f"email:{name}:{y}"]
                assert email.get_x() == pytest.approx(row.email_start)
                assert email.get_x() + email.get_width() == pytest.approx(row.email_end)
        assert ax.get_title(loc="left") == name
        assert [t.get_text() for t in ax.get_yticklabels()] == ["a@x", "/health"]
    assert "(s)" in figure.axes[-1].get_xlabel()
    assert figure.axes[0].get_legend() is not None
    assert figure._repr_png_().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="at least one"):
        viz.plot_request_timeline({})
