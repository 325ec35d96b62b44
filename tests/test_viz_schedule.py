"""minibull.viz.schedule: the promotion steps follow the scripts, the wall-clock runs
follow the time zone, and the pictures draw exactly those."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from minibull import viz  # noqa: E402
from minibull.schedule import check_repeat, next_run  # noqa: E402

PARIS = ZoneInfo("Europe/Paris")


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_promotion_steps_wake_at_add_block_until_due_then_promote_and_take():
    steps = viz.promotion_steps(1_000, 61_000)
    assert {s.at for s in steps} == {1_000, 61_000}
    at_add = [s for s in steps if s.at == 1_000]
    at_due = [s for s in steps if s.at == 61_000]
    assert ("producer", "delayed") in [(s.actor, s.target) for s in at_add]
    assert ("producer", "marker") in [(s.actor, s.target) for s in at_add]
    assert "1 min" in at_add[-1].text  # the blocking timeout is the time left
    # At the due time: promoted from delayed to wait, then taken, in that order.
    assert [(s.actor, s.target) for s in at_due][-2:] == [("delayed", "wait"), ("wait", "worker")]
    assert all(s.actor in viz.PROMOTION_LANES and s.target in viz.PROMOTION_LANES for s in steps)
    with pytest.raises(ValueError, match="before"):
        viz.promotion_steps(5, 4)


def test_promotion_figure_draws_one_arrow_per_step():
    steps = viz.promotion_steps(0, 86_400_000)
    figure = viz.plot_promotion(steps)
    ax = figure.axes[0]
    arrows = {t.get_gid(): t for t in ax.texts if (t.get_gid() or "").startswith("step:")}
    labels = {
        t.get_gid(): t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("text:")
    }
    assert len(arrows) == len(labels) == len(steps)
    assert [labels[f"text:{i}"] for i in range(len(steps))] == [s.text for s in steps]
    lanes = {}
    for i, step in enumerate(steps):  # arrows point from the actor's column to the target's
        start, end = arrows[f"step:{i}"].xyann, arrows[f"step:{i}"].xy
        lanes.setdefault(step.actor, start[0])
        lanes.setdefault(step.target, end[0])
        assert (lanes[step.actor], lanes[step.target]) == (start[0], end[0])
    assert "24 h later" in [t.get_text() for t in ax.texts]
    assert figure._repr_png_().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="unknown lane"):
        viz.plot_promotion([viz.PromotionStep(0, "producer", "nowhere", "?")])


def test_local_runs_across_the_change_to_summer_time():
    saturday = ms(datetime(2026, 3, 28, 8, 0, tzinfo=PARIS))
    cron, every = [saturday], [saturday]
    for _ in range(2):
        cron.append(
            next_run(
                check_repeat({"pattern": "0 8 * * *", "tz": "Europe/Paris"}),
                cron[-1],
                previous=cron[-1],
            )
        )
        every.append(
            next_run(check_repeat({"every": timedelta(hours=24)}), every[-1], previous=every[-1])
        )
    on_cron = viz.local_runs(cron, "Europe/Paris")
    on_every = viz.local_runs(every, "Europe/Paris")
    assert [r.hour for r in on_cron] == [8, 8, 8]
    assert [r.hours_since_last for r in on_cron] == [None, 23, 24]
    assert [r.hour for r in on_every] == [8, 9, 9]  # a fixed interval drifts on the wall clock
    assert [r.hours_since_last for r in on_every] == [None, 24, 24]
    assert [r.day for r in on_cron] == [date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)]
    assert on_cron[1].label == "Sun 29 Mar 08:00 CEST" and on_cron[0].label.endswith("CET")


def test_schedule_week_figure_draws_the_runs_and_marks_the_23_hour_gap():
    saturday = ms(datetime(2026, 3, 28, 8, 0, tzinfo=PARIS))
    cron = viz.local_runs([saturday, saturday + 23 * 3_600_000], "Europe/Paris")
    every = viz.local_runs([saturday, saturday + 24 * 3_600_000], "Europe/Paris")
    figure = viz.plot_schedule_week({"cron": cron, "every": every}, change=date(2026, 3, 29))
    ax = figure.axes[0]
    lines = {line.get_gid(): line for line in ax.lines if line.get_gid()}
    assert list(lines["runs:cron"].get_ydata()) == [8, 8]
    assert list(lines["runs:every"].get_ydata()) == [8, 9]
    gaps = [t.get_gid() for t in ax.texts if (t.get_gid() or "").startswith("gap:")]
    assert gaps == ["gap:cron:2026-03-29"]  # only the run that did not come 24 h later
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Sat 28 Mar", "Sun 29 Mar"]
    assert "(h)" in ax.get_ylabel() and ax.get_legend() is not None
    assert figure._repr_png_().startswith(b"\x89PNG")
