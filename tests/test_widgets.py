"""minibull.widgets: the dashboard shows what the queue holds and stops cleanly; the backoff
explorer redraws what the worker would do."""

from __future__ import annotations

import asyncio

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from minibull import viz, widgets  # noqa: E402
from tests.conftest import wait_for  # noqa: E402


def dashboard_tasks() -> list[asyncio.Task]:
    return [task for task in asyncio.all_tasks() if task.get_coro().__qualname__ == "Every._run"]


async def test_dashboard_shows_counts_throughput_and_failures(queue, make_worker, clock):
    async def work(job):
        if job.name == "bad":
            raise ValueError("no such <user>")

    make_worker(work)
    await queue.add_bulk([{"name": "good", "data": {}} for _ in range(4)])
    bad = await queue.add("bad", {})
    await queue.add("later", {}, delay=60)
    await clock.settle()

    dashboard = widgets.QueueDashboard(queue, window=10)
    await dashboard.refresh()
    assert dashboard.counts == await queue.get_job_counts()
    assert dashboard.counts == {
        "waiting": 0,
        "active": 0,
        "prioritized": 0,
        "delayed": 1,
        "completed": 4,
        "failed": 1,
    }
    assert dashboard.throughput == 0.5  # 5 jobs finished in the last 10 s of the clock
    assert dashboard.failures == [
        {"id": bad.id, "name": "bad", "attempts": 1, "reason": "no such <user>"}
    ]
    assert dashboard.to_text() == (
        "queue q\n"
        "waiting 0  active 0  prioritized 0  delayed 1  completed 4  failed 1\n"
        "throughput: 0.5 jobs/s over the last 10 s\n"
        "latest failures:\n"
        f"  job {bad.id} (bad), 1 attempt(s): no such <user>"
    )
    html = dashboard.to_html()
    assert "no such &lt;user&gt;" in html and "<td style='text-align:center'>4</td>" in html
    assert dashboard.widget.children[0].value == html

    await clock.advance(61)  # the delayed job runs at 60 s; the first five leave the window
    await queue.pause()
    await dashboard.refresh()
    assert dashboard.counts["completed"] == 5 and dashboard.counts["delayed"] == 0
    assert dashboard.throughput == 0.1
    assert dashboard.paused and dashboard.to_text().startswith("queue q (paused)\n")

    bundle = dashboard._repr_mimebundle_()
    assert bundle["text/plain"] == dashboard.to_text()
    assert bundle["text/html"] == dashboard.to_html()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    await dashboard.close()
    closed = dashboard._repr_mimebundle_()  # a closed dashboard still shows its last state
    assert closed == {"text/plain": dashboard.to_text(), "text/html": dashboard.to_html()}


async def test_dashboard_refreshes_while_workers_run_and_stops_cleanly(queue, make_worker):
    dashboard = widgets.QueueDashboard(queue, interval=0.02)
    assert dashboard.start() is dashboard and dashboard.running
    assert dashboard.start() is dashboard and len(dashboard_tasks()) == 1  # started once
    make_worker(lambda job: None, concurrency=3)
    await queue.add_bulk([{"name": "job", "data": {}} for _ in range(12)])
    await wait_for(lambda: dashboard.counts["completed"] == 12)
    assert "completed 12" in dashboard.to_text()

    await dashboard.close()
    assert not dashboard.running and dashboard_tasks() == []
    refreshes = dashboard.refreshes
    await asyncio.sleep(0.06)
    assert dashboard.refreshes == refreshes  # nothing refreshes after close
    assert dashboard.widget.comm is None and dashboard.widget.children[0].comm is None
    await dashboard.close()  # twice is fine


async def test_dashboard_says_why_a_refresh_failed_and_goes_on(queue, monkeypatch):
    counts = queue.get_job_counts

    async def broken(*states):
        raise ConnectionError("redis went away")

    monkeypatch.setattr(queue, "get_job_counts", broken)
    dashboard = widgets.QueueDashboard(queue, interval=0.01).start()
    await wait_for(lambda: dashboard.error is not None)
    assert dashboard.running and isinstance(dashboard.error, ConnectionError)
    assert dashboard.to_text().endswith(
        "refresh failed (retrying): ConnectionError: redis went away"
    )
    assert "redis went away" in dashboard.widget.children[0].value
    monkeypatch.setattr(queue, "get_job_counts", counts)  # Redis is back
    await wait_for(lambda: dashboard.error is None and dashboard.refreshes > 0)
    assert "refresh failed" not in dashboard.to_text()
    await dashboard.close()
    assert dashboard_tasks() == []


def test_dashboard_refuses_bad_settings(queue):
    with pytest.raises(ValueError, match="interval and window must be > 0"):
        widgets.QueueDashboard(queue, interval=0)


def test_backoff_explorer_redraws_from_the_worker_formulas():
    explorer = widgets.BackoffExplorer(attempts=4, delay=2, strategy="fixed")
    assert explorer.backoff == {"type": "fixed", "delay": 2}
    assert explorer.points == [viz.backoff_points({"type": "fixed", "delay": 2}, 4)]
    assert explorer.to_text() == "fixed 2 s: waits 2 s, 2 s, 2 s; last attempt at 6 s"
    first_image = bytes(explorer.image.value)
    assert first_image.startswith(b"\x89PNG")

    explorer.strategy.value = "exponential"
    explorer.attempts.value = 6
    explorer.jitter.value = 0.5
    policy = {"type": "exponential", "delay": 2, "jitter": 0.5}
    assert explorer.backoff == policy
    assert explorer.points == [
        viz.backoff_points(policy, 6),
        viz.backoff_points({"type": "exponential", "delay": 2}, 6),
    ]
    assert explorer.points[1].waits == [2000, 4000, 8000, 16000, 32000]
    assert bytes(explorer.image.value) != first_image
    assert explorer.to_text().splitlines()[1] == (
        "exponential 2 s: waits 2 s, 4 s, 8 s, 16 s, 32 s; last attempt at 1.03 min"
    )
    assert explorer.summary.value == explorer.to_html()
    assert explorer._repr_mimebundle_()["text/plain"] == explorer.to_text()

    assert explorer.widget.comm is not None
    explorer.close()
    image = bytes(explorer.image.value)
    explorer.attempts.value = 3  # closed: no longer listening
    assert bytes(explorer.image.value) == image and len(explorer.points[0].starts) == 6
    assert explorer.widget.comm is None and explorer.image.comm is None
