"""minibull.viz: the data behind each picture matches what the queue recorded, and the
pictures draw exactly that data (and render to PNG)."""

from __future__ import annotations

import asyncio
import io
import random
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import minibull  # noqa: E402
from minibull import viz  # noqa: E402
from minibull.backoff import backoff_schedule  # noqa: E402
from tests.conftest import START_MS, wait_for  # noqa: E402

EXPONENTIAL = {"type": "exponential", "delay": 1}
JITTERED = {"type": "exponential", "delay": 1, "jitter": 0.5}


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def assert_readable(figure: Figure, title: str, xlabel: str) -> None:
    """Titled, labelled with a unit, with a legend, and renders to a PNG."""
    ax = figure.axes[0]
    titles = [ax.get_title(), ax.get_title("left"), figure.get_suptitle()]
    assert any(title in text for text in titles), titles
    assert xlabel in figure.axes[-1].get_xlabel()
    assert ax.get_legend() is not None and ax.get_legend().get_texts()
    assert png_bytes(figure).startswith(b"\x89PNG")
    assert figure._repr_png_().startswith(b"\x89PNG")  # how a notebook shows it, without pyplot


def by_gid(ax, prefix: str) -> dict:
    artists = [*ax.lines, *ax.patches, *ax.texts]
    return {a.get_gid(): a for a in artists if (a.get_gid() or "").startswith(prefix)}


@pytest.fixture
async def rt_queue(prefix):
    """Queue ``rt`` on real time, for attempts that take time."""
    queue = minibull.Queue("rt", prefix=prefix)
    yield queue
    await queue.close()


def rt_worker(make_worker, processor, **options):
    return make_worker(processor, name="rt", clock=minibull.SystemClock(), **options)


async def wait_until_finished(queue, count: int) -> None:
    async def finished():
        counts = await queue.get_job_counts("completed", "failed")
        return sum(counts.values()) == count

    await wait_for(finished)


def test_import_minibull_loads_no_plotting_or_widget_library():
    code = (
        "import sys, minibull; "
        "assert 'matplotlib' not in sys.modules and 'ipywidgets' not in sys.modules; "
        # The pictures use Figure objects, never pyplot's global state.
        "from minibull import viz, widgets; widgets.BackoffExplorer().close(); "
        "viz.plot_job_timeline([viz.Span('1', 1, 'w', 0, 0, 5, 'completed')]); "
        "assert 'matplotlib.pyplot' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_time_units_and_labels():
    assert [viz.time_unit(ms) for ms in (500, 1999, 2000, 130_000, 7_200_000)] == [
        "ms",
        "ms",
        "s",
        "min",
        "h",
    ]
    assert [viz.format_ms(ms) for ms in (0, 250, 1000, 1500, 90_000, 5_400_000)] == [
        "0 ms",
        "250 ms",
        "1 s",
        "1.5 s",
        "1.5 min",
        "1.5 h",
    ]
    assert viz.describe_backoff(None) == "immediate"
    assert viz.describe_backoff(2) == "fixed 2 s"
    assert viz.describe_backoff(JITTERED) == "exponential 1 s, jitter 0.5"


# -- backoff ---------------------------------------------------------------------------


def test_backoff_points_come_from_the_worker_formulas():
    points = viz.backoff_points(EXPONENTIAL, 5)
    assert points.waits == backoff_schedule(EXPONENTIAL, 5) == [1000, 2000, 4000, 8000]
    assert points.starts == [0, 1000, 3000, 7000, 15000]
    assert viz.backoff_points(2, 3, run=0.5).starts == [0, 2500, 5000]

    jittered = viz.backoff_points(JITTERED, 6, seed=3)
    assert jittered.waits == backoff_schedule(JITTERED, 6, random.Random(3))
    assert jittered == viz.backoff_points(JITTERED, 6, seed=3)  # the same picture every time
    for attempt, wait in enumerate(jittered.waits, start=1):
        full = 1000 * 2 ** (attempt - 1)
        assert full // 2 <= wait <= full
    with pytest.raises(ValueError, match="attempts must be an int >= 1"):
        viz.backoff_points(EXPONENTIAL, 0)


async def test_backoff_points_are_when_the_worker_really_retries(queue, make_worker, clock):
    async def always_fails(job):
        raise RuntimeError("down")

    make_worker(always_fails)
    backoff = {"type": "exponential", "delay": 10}
    job = await queue.add("flaky", {}, attempts=4, backoff=backoff)
    await clock.advance(200)
    spans = await viz.job_spans(queue)
    assert [span.outcome for span in spans] == ["retried", "retried", "retried", "failed"]
    assert [span.start - START_MS for span in spans] == viz.backoff_points(backoff, 4).starts
    assert [span.retry_at for span in spans[:-1]] == [span.start for span in spans[1:]]
    stored = await queue.get_job(job.id)
    assert spans[-1].start == stored.processed_on and spans[-1].end == stored.finished_on


def test_backoff_timeline_draws_the_points():
    policies = {"fixed 2 s": 2, "exponential 1 s": EXPONENTIAL, "jitter": JITTERED}
    figure = viz.plot_backoff_timeline(policies, attempts=5, unit="s")
    ax = figure.axes[0]
    for label, backoff in policies.items():
        points = viz.backoff_points(backoff, 5, label=label)
        marker = by_gid(ax, "attempts:")[f"attempts:{label}"]
        assert list(marker.get_xdata()) == [start / 1000 for start in points.starts]
        labels = by_gid(ax, f"wait:{label}:")
        # Labels too wide for their arrow are left out; the long waits always fit.
        assert labels and f"wait:{label}:4" in labels
        for gid, text in labels.items():
            number = int(gid.rsplit(":", 1)[1])
            assert text.get_text() == viz.format_ms(points.waits[number - 1])
    assert [tick.get_text() for tick in ax.get_yticklabels()] == list(policies)
    assert_readable(figure, "When each attempt runs", "(s)")

    immediate = viz.plot_backoff_timeline({"immediate": None}, attempts=3)
    marker = by_gid(immediate.axes[0], "attempts:")["attempts:immediate"]
    assert list(marker.get_xdata()) == [0, 0, 0]
    assert png_bytes(immediate).startswith(b"\x89PNG")


# -- retry storm -----------------------------------------------------------------------


def test_one_client_retries_on_the_backoff_schedule():
    storm = viz.simulate_retry_storm(
        EXPONENTIAL, clients=1, recover_at=20, capacity=None, latency=0.1, start_spread=0
    )
    expected = [0]
    for wait in backoff_schedule(EXPONENTIAL, 6):
        expected.append(expected[-1] + 100 + wait)
    assert storm.request_times == expected == [0, 1100, 3200, 7300, 15400, 31500]
    assert storm.served_times == [31500] and storm.done_at == 31500
    assert sum(storm.load) == 6 and storm.load[31] == storm.served[31] == 1


def test_retry_storms_are_reproducible_and_backoff_with_jitter_spreads_the_load():
    policies = {"immediate": None, "fixed": 1, "exponential": EXPONENTIAL, "jitter": JITTERED}
    storms = {label: viz.simulate_retry_storm(b, seed=1) for label, b in policies.items()}
    assert storms["jitter"] == viz.simulate_retry_storm(JITTERED, seed=1)
    assert storms["jitter"] != viz.simulate_retry_storm(JITTERED, seed=2)
    for storm in storms.values():
        assert sum(storm.load) == len(storm.request_times)
        # Served at most once per client (the capacity model may keep some from ever being).
        assert sum(storm.served) == len(storm.served_times) <= storm.clients == 100
        assert storm.request_times == sorted(storm.request_times)
        # Never more served in a second than the dependency's capacity.
        assert max(storm.served) <= storm.capacity
    requests = {label: len(storm.request_times) for label, storm in storms.items()}
    assert requests["immediate"] > requests["fixed"] > requests["exponential"]
    after_recovery = {label: max(storm.load[31:]) for label, storm in storms.items()}
    # Without jitter the clients retry together: bursts above capacity; jitter spreads them.
    assert after_recovery["exponential"] > 50 > after_recovery["jitter"]


def test_clients_give_up_after_their_attempts():
    storm = viz.simulate_retry_storm(None, clients=10, attempts=3, recover_at=60)
    assert storm.gave_up == 10 and storm.served_times == [] and storm.done_at is None
    assert len(storm.request_times) == 30
    with pytest.raises(ValueError, match="built-in backoff types"):
        viz.simulate_retry_storm("my-custom-type")


def test_retry_storm_figure_draws_the_load():
    storms = [viz.simulate_retry_storm(b, seed=1) for b in (None, EXPONENTIAL, JITTERED)]
    figure = viz.plot_retry_storm(storms)
    assert len(figure.axes) == 3
    for ax, storm in zip(figure.axes, storms, strict=True):
        load = by_gid(ax, "load")["load"]
        data = load.get_data()
        assert list(data.values) == storm.load  # buckets of 1 s: requests per bucket = per second
        assert list(data.edges) == list(range(len(storm.load) + 1))
        assert list(by_gid(ax, "served")["served"].get_data().values) == storm.served
        assert ax.get_title("left").startswith(f"{storm.label}: {len(storm.request_times):,}")
        assert ax.get_ylabel().startswith("requests/s")
    assert_readable(figure, "Retry storm: 100 clients", "time (s)")


# -- job timeline ----------------------------------------------------------------------


def test_attempt_spans_from_events():
    def ev(event, job, ts=None, **fields):
        return {
            "event": event,
            "jobId": job,
            **({"ts": str(ts)} if ts is not None else {}),
            **fields,
        }

    events = [
        ev("added", "1"),
        ev("active", "1", 100, worker="A"),
        ev("active", "2", 110, worker="A"),
        ev("delayed", "1", 150, delay="400", prev="active"),
        ev("active", "3", 160, worker="A"),  # takes lane 0, freed by job 1
        ev("completed", "2", 200, prev="active"),
        ev("active", "4", 210, worker="B"),
        ev("waiting", "4", 220, prev="active"),  # retried at once
        ev("active", "4", 230, worker="B"),
        ev("stalled", "4"),  # its worker died
        ev("waiting", "4", prev="active"),
        ev("active", "1", 400, worker="A"),
        ev("failed", "1", 420, prev="active", failedReason="boom"),
        ev("active", "4", 500, worker="A"),  # still running
        ev("active", "5", worker="A"),  # no ts: cannot be placed
        ev("active", "6", 600, worker="B"),
        ev("waiting", "6", prev="active"),  # retried, at a time not recorded
    ]
    spans = viz.attempt_spans(events)
    table = [(s.job_id, s.attempt, s.worker, s.lane, s.start, s.end, s.outcome) for s in spans]
    assert table == [
        ("1", 1, "A", 0, 100, 150, "retried"),
        ("2", 1, "A", 1, 110, 200, "completed"),
        ("3", 1, "A", 0, 160, None, "running"),
        ("4", 1, "B", 0, 210, 220, "retried"),
        ("4", 2, "B", 0, 230, None, "stalled"),
        ("1", 2, "A", 1, 400, 420, "failed"),
        ("4", 3, "A", 1, 500, None, "running"),  # lane 1 is free again
        ("6", 1, "B", 0, 600, None, "retried"),
    ]
    assert spans[0].retry_at == 400 and spans[3].retry_at == 220
    assert viz.timeline_rows(spans) == [("A", 0), ("A", 1), ("B", 0)]


def assert_lanes_never_overlap(spans, concurrency: int) -> None:
    by_lane = {}
    for span in spans:
        assert 0 <= span.lane < concurrency
        by_lane.setdefault((span.worker, span.lane), []).append(span)
    for lane_spans in by_lane.values():
        lane_spans.sort(key=lambda span: span.start)
        for before, after in zip(lane_spans, lane_spans[1:], strict=False):
            assert before.end <= after.start


@pytest.mark.parametrize("concurrency", [1, 10])
async def test_spans_are_the_recorded_attempts(rt_queue, make_worker, concurrency):
    async def work(job):
        await asyncio.sleep(0.03)
        return job.id

    jobs = await rt_queue.add_bulk([{"name": "work", "data": {}} for _ in range(10)])
    worker = rt_worker(make_worker, work, concurrency=concurrency)
    await wait_until_finished(rt_queue, 10)
    spans = await viz.job_spans(rt_queue)
    assert sorted(span.job_id for span in spans) == sorted(job.id for job in jobs)
    for span in spans:
        stored = await rt_queue.get_job(span.job_id)
        assert (span.start, span.end) == (stored.processed_on, stored.finished_on)
        assert span.outcome == "completed" and span.worker == worker.id and span.attempt == 1
        assert span.end - span.start >= 30
    assert_lanes_never_overlap(spans, concurrency)
    lanes = {span.lane for span in spans}
    assert lanes == {0} if concurrency == 1 else len(lanes) > 1


async def test_spans_of_two_workers_with_retries_delays_and_failures(rt_queue, make_worker):
    async def flaky(job):
        await asyncio.sleep(0.02)
        if job.data["fail"] > job.attempts_made:
            raise RuntimeError(f"attempt {job.attempts_made + 1} failed")
        return "ok"

    specs = [
        ({"fail": 0}, {"attempts": 1}),  # completes
        ({"fail": 1}, {"attempts": 2, "backoff": 0.05}),  # delayed retry, then completes
        ({"fail": 1}, {"attempts": 2}),  # retried at once, then completes
        ({"fail": 5}, {"attempts": 2, "backoff": 0.05}),  # fails for good
    ] * 3
    jobs = await rt_queue.add_bulk([{"name": "flaky", "data": d, **o} for d, o in specs])
    workers = [rt_worker(make_worker, flaky, concurrency=3) for _ in range(2)]
    await wait_until_finished(rt_queue, len(jobs))
    spans = await viz.job_spans(rt_queue)
    assert {span.worker for span in spans} <= {worker.id for worker in workers}
    assert_lanes_never_overlap(spans, 3)
    expected = {
        0: ["completed"],
        1: ["retried", "completed"],
        2: ["retried", "completed"],
        3: ["retried", "failed"],
    }
    for index, job in enumerate(jobs):
        mine = [span for span in spans if span.job_id == job.id]
        assert [span.outcome for span in mine] == expected[index % 4]
        assert [span.attempt for span in mine] == list(range(1, len(mine) + 1))
        stored = await rt_queue.get_job(job.id)
        assert (mine[-1].start, mine[-1].end) == (stored.processed_on, stored.finished_on)
        assert mine[-1].worker == await rt_queue.redis.hget(rt_queue.keys.job(job.id), "pb")
        for retried, then in zip(mine, mine[1:], strict=False):
            assert retried.retry_at is not None and then.start >= retried.retry_at
            gap = then.start - retried.end
            assert gap >= 50 if index % 4 in (1, 3) else gap >= 0


async def test_job_timeline_bars_are_the_spans(rt_queue, make_worker):
    async def work(job):
        await asyncio.sleep(0.02)
        if job.id == "3":
            raise RuntimeError("no")

    await rt_queue.add_bulk([{"name": "work", "data": {}} for _ in range(6)])
    rt_worker(make_worker, work, concurrency=2)
    await wait_until_finished(rt_queue, 6)
    spans = await viz.job_spans(rt_queue)
    figure = viz.plot_job_timeline(spans, unit="ms")
    ax = figure.axes[0]
    t0 = min(span.start for span in spans)
    rows = viz.timeline_rows(spans)
    bars = {p.get_gid(): p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid()}
    assert len(bars) == len(spans)
    for span in spans:
        bar = bars[f"{span.job_id}:{span.attempt}"]
        assert bar.get_x() == span.start - t0 and bar.get_width() == span.end - span.start
        assert bar.get_y() + bar.get_height() / 2 == rows.index((span.worker, span.lane))
        expected = "failed" if span.job_id == "3" else "completed"
        assert span.outcome == expected
        assert matplotlib.colors.same_color(bar.get_facecolor(), viz.OUTCOME_COLOURS[expected])
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["completed", "failed for good"]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        f"{rows[0][0][:6]} / 1",
        f"{rows[0][0][:6]} / 2",
    ]
    assert_readable(figure, "Job timeline: 6 attempts of 6 jobs on 1 worker", "(ms)")


async def test_job_timeline_on_virtual_time_draws_instant_attempts(queue, make_worker, clock):
    async def fails_once(job):
        if job.attempts_made == 0:
            raise RuntimeError("once")

    make_worker(fails_once)
    await queue.add("job", {}, attempts=2, backoff=30)
    await clock.advance(60)
    spans = await viz.job_spans(queue)
    assert [(s.start - START_MS, s.end - START_MS, s.outcome) for s in spans] == [
        (0, 0, "retried"),
        (30_000, 30_000, "completed"),
    ]
    figure = viz.plot_job_timeline(spans)
    ax = figure.axes[0]
    ticks = [line for line in ax.lines if line.get_marker() == "|"]
    assert sorted(tick.get_xdata()[0] for tick in ticks) == [0, 30]  # unit picked: s
    assert_readable(figure, "Job timeline", "(s)")
    with pytest.raises(ValueError, match="no attempts to draw"):
        viz.plot_job_timeline([])


# -- queue depth -----------------------------------------------------------------------


async def test_depth_sampler_records_the_counts_during_a_run(rt_queue, make_worker):
    async def work(job):
        await asyncio.sleep(0.01)

    await rt_queue.add_bulk([{"name": "work", "data": {}} for _ in range(20)])
    sampler = viz.DepthSampler(rt_queue, interval=0.01)
    first = await sampler.sample()
    assert first.counts == {**dict.fromkeys(minibull.STATES, 0), "waiting": 20}
    sampler.start()
    rt_worker(make_worker, work, concurrency=2)
    await wait_until_finished(rt_queue, 20)
    samples = await sampler.stop()
    assert not sampler._every.running
    assert samples[-1].counts["completed"] == 20 and samples[-1].counts["waiting"] == 0
    assert len(samples) >= 3
    completed = [sample.counts["completed"] for sample in samples]
    assert completed == sorted(completed)
    assert [s.at for s in samples] == sorted(s.at for s in samples)
    assert max(sample.counts["active"] for sample in samples) <= 2


async def test_queue_depth_lines_are_the_samples(queue, make_worker, clock):
    make_worker(lambda job: None)
    await queue.add_bulk([{"name": "later", "data": {}, "delay": 10 * i} for i in (1, 2, 3)])
    sampler = viz.DepthSampler(queue)
    for _ in range(4):
        await sampler.sample()
        await clock.advance(10)
    samples = sampler.samples
    assert [s.at - START_MS for s in samples] == [0, 10_000, 20_000, 30_000]
    assert [s.counts["delayed"] for s in samples] == [3, 2, 1, 0]
    assert [s.counts["completed"] for s in samples] == [0, 1, 2, 3]
    figure = viz.plot_queue_depth(samples)
    lines = by_gid(figure.axes[0], "depth:")
    assert set(lines) == {"depth:delayed", "depth:completed"}  # the states ever non-empty
    for state in ("delayed", "completed"):
        line = lines[f"depth:{state}"]
        assert list(line.get_xdata()) == [0, 10, 20, 30]
        assert list(line.get_ydata()) == [s.counts[state] for s in samples]
    assert figure.axes[0].get_ylabel() == "jobs"
    assert_readable(figure, "Queue depth", "(s)")


async def test_every_runs_a_step_until_stopped_and_reports_its_failure():
    calls = []

    async def step():
        calls.append(len(calls))
        if len(calls) == 3:
            return False  # a step can end the loop itself
        return None

    every = viz.Every(0.001, step)
    every.start()
    await wait_for(lambda: not every.running)
    assert calls == [0, 1, 2]
    await every.stop()

    async def broken():
        raise ConnectionError("gone")

    failing = viz.Every(0.001, broken)  # a failing step is reported and retried
    failing.start()
    await wait_for(lambda: isinstance(failing.error, ConnectionError))
    assert failing.running
    await failing.stop()
    with pytest.raises(ValueError, match="interval must be > 0"):
        viz.DepthSampler(None, interval=0)
