"""Metrics (issue 16, item 5): a worker made with ``metrics=`` counts finished jobs per
minute in BullMQ's ``metrics:<completed|failed>`` keys; ``Queue.get_metrics`` reads them
and ``viz.plot_metrics`` draws them."""

from __future__ import annotations

import pytest

import minibull
from minibull import UnrecoverableError, scripts
from minibull.keys import QueueKeys
from minibull.worker import MAX_DATA_POINTS
from tests.conftest import START_MS
from tests.test_input_limits import refused

MINUTE = 60
METRIC_GIDS = ("metrics:completed", "metrics:failed")


async def finish_at(queue, clock, minutes_and_jobs, **job_options):
    """Add ``jobs`` jobs at each minute offset and let the worker finish them there."""
    for minute, jobs in minutes_and_jobs:
        await clock.advance(minute * MINUTE - (clock.now() - START_MS) / 1000)
        await queue.add_bulk([{"name": "j", "data": {}, **job_options} for _ in range(jobs)])
        await clock.settle()


async def test_completed_jobs_per_minute_as_bullmq_counts_them(queue, make_worker, clock):
    make_worker(lambda job: None, metrics={"max_data_points": 10})
    # 3 in minute 0, 2 in minute 1, none in minute 2, 1 in minute 3
    await finish_at(queue, clock, [(0, 3), (1, 2), (3, 1)])
    metrics = await queue.get_metrics("completed")
    # newest first; the minute now running (3) is only in the total
    assert metrics == {
        "meta": {"count": 6, "prev_ts": START_MS + 3 * 60_000, "prev_count": 5},
        "data": [0, 2, 3],
        "count": 3,
    }
    assert (await queue.get_metrics("completed", 0, 0))["data"] == [0]
    assert (await queue.get_metrics("completed", -1, -1))["data"] == [3]
    assert (await queue.get_metrics("failed"))["count"] == 0
    raw = await queue.redis.hgetall(queue.keys.metrics("completed"))
    assert raw == {"count": "6", "prevTS": str(START_MS + 180_000), "prevCount": "5"}


async def test_failures_count_only_when_final(queue, make_worker, clock):
    def fail(job):
        raise UnrecoverableError("no") if job.data.get("final") else ValueError("again")

    make_worker(fail, metrics={"max_data_points": 10})
    await finish_at(queue, clock, [(0, 2)], data={"final": True})
    await finish_at(queue, clock, [(1, 1)], attempts=3)  # retried at once, fails for good
    await finish_at(queue, clock, [(2, 1)], attempts=2, backoff=3600)  # waits to retry
    metrics = await queue.get_metrics("failed")
    assert metrics["meta"]["count"] == 3 and metrics["data"] == [2]  # minute 0
    assert (await queue.get_metrics("completed"))["meta"]["count"] == 0


async def test_points_are_capped_at_max_data_points(queue, make_worker, clock):
    make_worker(lambda job: None, metrics={"max_data_points": 4})
    await finish_at(queue, clock, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (100, 1)])
    metrics = await queue.get_metrics("completed")
    # as BullMQ: after a gap, the last minute's count lands N points back, N capped
    assert metrics["data"] == [0, 0, 0, 5] and metrics["count"] == 4
    await finish_at(queue, clock, [(101, 2)])
    assert (await queue.get_metrics("completed"))["data"] == [1, 0, 0, 0]


async def test_a_worker_without_metrics_writes_none(queue, make_worker, clock, prefix):
    make_worker(lambda job: None)
    await finish_at(queue, clock, [(0, 2), (1, 1)])
    assert await queue.redis.keys(f"{prefix}:q:metrics*") == []


async def test_obliterate_removes_the_metrics(queue, make_worker, clock, prefix):
    worker = make_worker(lambda job: None, metrics={"max_data_points": 5})
    await finish_at(queue, clock, [(0, 1), (1, 1)])
    await worker.close()
    assert len(await queue.redis.keys(f"{prefix}:q:metrics*")) == 2
    await queue.obliterate()
    assert await queue.redis.keys(f"{prefix}:q:*") == []


@pytest.mark.parametrize(
    ("metrics", "error", "words"),
    [
        ({"max_data_points": 0}, ValueError, "max_data_points"),
        ({"max_data_points": MAX_DATA_POINTS + 1}, ValueError, "max_data_points"),
        ({"max_data_points": 2.5}, TypeError, "max_data_points"),
        ({"maxDataPoints": 5}, ValueError, "metrics must be"),
        ([5], ValueError, "metrics must be"),
    ],
)
def test_bad_metrics_options_are_refused(prefix, metrics, error, words):
    with pytest.raises(error, match=words):
        minibull.Worker("q", lambda job: None, prefix=prefix, metrics=metrics)


@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        (("done",), ValueError, "kind"),
        (("completed", 1.5), TypeError, "start"),
        (("completed", 0, "x"), TypeError, "end"),
    ],
)
async def test_bad_get_metrics_arguments_are_refused(queue, args, error, words):
    await refused(queue, error, words, lambda: queue.get_metrics(*args))


def test_get_metrics_reads_bullmqs_keys():
    assert scripts.get_metrics_args(QueueKeys("q"), "failed", 0, -1) == (
        ["bull:q:metrics:failed", "bull:q:metrics:failed:data"],
        [0, -1],
    )


def test_plot_metrics_draws_the_points_by_minute():
    viz = pytest.importorskip("minibull.viz")
    completed = {"meta": {"count": 6, "prev_ts": 3 * 60_000, "prev_count": 5}, "data": [0, 2, 3]}
    failed = {"meta": {"count": 1, "prev_ts": 2 * 60_000 + 5, "prev_count": 1}, "data": [1]}
    assert viz.metrics_minutes(completed) == [(0, 3), (1, 2), (2, 0)]
    assert viz.metrics_minutes(failed) == [(1, 1)]  # the minute before prev_ts's
    figure = viz.plot_metrics(completed, failed)
    ax = figure.axes[0]
    kinds = {gid: [bar for bar in ax.patches if bar.get_gid() == gid] for gid in METRIC_GIDS}
    heights = [bar.get_height() for bar in kinds["metrics:completed"]]
    assert heights == [3, 2, 0]
    centres = [bar.get_x() + bar.get_width() / 2 for bar in kinds["metrics:completed"]]
    assert [round(x + 0.2, 6) for x in centres] == [-2, -1, 0]
    assert [bar.get_height() for bar in kinds["metrics:failed"]] == [1]
    failed_centre = [bar.get_x() + bar.get_width() / 2 for bar in kinds["metrics:failed"]]
    assert [round(x - 0.2, 6) for x in failed_centre] == [-1]
    assert ax.get_xlabel() == "minutes before the newest point"
    assert figure._repr_png_().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="no data points"):
        viz.plot_metrics({"meta": {"count": 0, "prev_ts": 0, "prev_count": 0}, "data": []})
