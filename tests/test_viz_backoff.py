"""The retry-storm capacity model (minibull.viz.backoff): an overloaded dependency stays
down, so retrying too often costs the clients their answers, not just requests."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from collections import Counter  # noqa: E402

import pytest  # noqa: E402

from minibull import viz  # noqa: E402
from minibull.viz.backoff import storm_is_up  # noqa: E402

POLICIES = {
    "immediate": None,
    "fixed 1 s": 1,
    "exponential 1 s": {"type": "exponential", "delay": 1},
    "exponential 1 s, jitter 1": {"type": "exponential", "delay": 1, "jitter": 1},
}


@pytest.fixture(scope="module")
def storms() -> dict[str, viz.RetryStorm]:
    return {
        label: viz.simulate_retry_storm(b, seed=1, label=label) for label, b in POLICIES.items()
    }


def test_the_dependency_is_up_only_after_its_outage_and_a_second_within_capacity():
    assert not storm_is_up(29, 30_000, 0, 50)  # still in the outage, however quiet
    assert storm_is_up(30, 30_000, 50, 50)  # outage over, last second at capacity
    assert not storm_is_up(30, 30_000, 51, 50)  # one call too many keeps it down
    assert storm_is_up(31, 30_500, 10_000, None)  # no capacity limit: never overloaded
    assert not storm_is_up(30, 30_500, 0, None)  # second 30 starts before 30.5 s


def reference_down_seconds(storm: viz.RetryStorm) -> list[int]:
    """The seconds the model must report down, recomputed from the raw request times."""
    load = Counter(ms // 1000 for ms in storm.request_times)
    last = len(storm.load) * storm.bucket // 1000
    return [
        s
        for s in range(last)
        if s * 1000 < storm.recover_at
        or (storm.capacity is not None and load[s - 1] > storm.capacity)
    ]


def test_served_only_while_up_and_never_above_capacity(storms):
    for storm in storms.values():
        assert storm.down_seconds == reference_down_seconds(storm), storm.label
        served = Counter(ms // 1000 for ms in storm.served_times)
        assert not set(served) & set(storm.down_seconds), storm.label
        assert max(served.values(), default=0) <= storm.capacity


def test_immediate_and_fixed_retries_keep_the_dependency_down(storms):
    for label in ("immediate", "fixed 1 s"):
        storm = storms[label]
        assert storm.served_times == [] and storm.done_at is None, label
        # Down for the whole run, 90 s of it after the outage ended: the retries did that.
        assert storm.down_seconds == list(range(121)), label
    assert len(storms["immediate"].request_times) > len(storms["fixed 1 s"].request_times)


def test_exponential_backoff_lets_it_recover_and_jitter_serves_sooner(storms):
    plain, jittered = storms["exponential 1 s"], storms["exponential 1 s, jitter 1"]
    # Without jitter one wave of all 100 clients overloads it for one second.
    assert plain.done_at is not None and len(plain.down_seconds) == 31
    assert jittered.down_seconds == list(range(30))  # never overloaded after the outage

    def by_45(storm):
        return sum(ms <= 45_000 for ms in storm.served_times)

    assert by_45(jittered) > by_45(plain) >= 50
    assert len(plain.request_times) < len(jittered.request_times) < 1_000


def test_without_a_capacity_limit_everyone_is_served_right_after_the_outage():
    storm = viz.simulate_retry_storm(None, capacity=None, seed=1)
    assert storm.done_at is not None and 30_000 <= storm.done_at < 30_000 + 300
    assert storm.down_seconds == list(range(30))


def test_the_figure_shades_the_seconds_it_was_down_and_says_log_scale(storms):
    drawn = list(storms.values())
    figure = viz.plot_retry_storm(drawn)
    for ax, storm in zip(figure.axes, drawn, strict=True):
        spans = [p for p in ax.patches if p.get_gid() == "down"]
        covered = set()
        for span in spans:
            x0, x1 = span.get_x(), span.get_x() + span.get_width()
            covered |= set(range(round(x0), round(x1)))
        assert covered == {s for s in storm.down_seconds if s < 121}, storm.label
        assert "log scale" in ax.get_ylabel()
    suptitle = figure.get_suptitle()
    assert "200 ms" in suptitle and "at most 50 calls/s" in suptitle
    assert figure._repr_png_().startswith(b"\x89PNG")


def test_attempts_at_the_same_moment_are_counted_on_the_timeline():
    figure = viz.plot_backoff_timeline({"immediate": None, "fixed 1 s": 1}, attempts=6)
    ax = figure.axes[0]
    counts = {
        t.get_gid(): t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("count:")
    }
    assert counts == {"count:immediate:0": "×6"}  # six attempts, one dot: say so
