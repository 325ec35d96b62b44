"""Job schedulers (repeatable jobs): cron with time zones, every N seconds, on virtual time."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

import minibull
from minibull.schedule import check_repeat, next_run

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def clock():
    """Thursday 2026-03-26 00:00 UTC: the week includes the spring DST change in Paris (29th)."""
    return minibull.VirtualClock(datetime(2026, 3, 26, tzinfo=timezone.utc))


def local(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, PARIS).strftime("%a %d %H:%M %Z")


async def test_a_week_of_8am_digests_across_dst(queue, make_worker, clock):
    runs = []

    async def digest(job):
        runs.append((job.id, local(clock.now())))

    make_worker(digest)
    await queue.add(
        "digest", {"list": "all"}, repeat={"pattern": "0 8 * * *", "tz": "Europe/Paris"}
    )
    await clock.advance(timedelta(days=7))
    assert [when for _, when in runs] == [
        "Thu 26 08:00 CET",
        "Fri 27 08:00 CET",
        "Sat 28 08:00 CET",
        "Sun 29 08:00 CEST",
        "Mon 30 08:00 CEST",
        "Tue 31 08:00 CEST",
        "Wed 01 08:00 CEST",
    ]
    # BullMQ's ids: repeat:<scheduler id>:<millis>; one hour less between Sat and Sun.
    millis = [int(job_id.rsplit(":", 1)[1]) for job_id, _ in runs]
    assert runs[0][0] == f"repeat:digest:{millis[0]}"
    gaps = [(b - a) / 3_600_000 for a, b in zip(millis, millis[1:], strict=False)]
    assert gaps == [24, 24, 23, 24, 24, 24]
    (scheduler,) = await queue.get_job_schedulers()
    assert scheduler["id"] == "digest" and scheduler["pattern"] == "0 8 * * *"
    assert scheduler["tz"] == "Europe/Paris" and scheduler["iterations"] == 8
    assert local(scheduler["next"]) == "Thu 02 08:00 CEST"


async def test_every_with_a_limit(queue, make_worker, clock):
    times = []
    job = await queue.add("ping", {}, repeat={"every": 3600, "limit": 3})
    assert await job.get_state() == "waiting"  # every: the first run is now
    make_worker(lambda job: times.append(clock.now_datetime().strftime("%H:%M")))
    await clock.advance(timedelta(hours=10))
    assert times == ["00:00", "01:00", "02:00"]
    assert await queue.get_job_schedulers() == []


async def test_end_date_and_start_date(queue, make_worker, clock):
    times = []
    make_worker(lambda job: times.append(clock.now_datetime().strftime("%d %H:%M")))
    start = datetime(2026, 3, 26, 2, tzinfo=timezone.utc)
    await queue.upsert_job_scheduler(
        "report",
        {"every": 1800, "start_date": start, "end_date": start + timedelta(hours=1)},
        name="report",
    )
    await clock.advance(timedelta(hours=5))
    assert times == ["26 02:00", "26 02:30", "26 03:00"]


async def test_upsert_replaces_the_schedule_and_its_pending_run(queue, make_worker, clock):
    await queue.upsert_job_scheduler("tick", {"every": 600}, name="tick", data={"v": 1})
    await queue.upsert_job_scheduler("tick", {"pattern": "30 * * * *"}, name="tick", data={"v": 2})
    jobs = await queue.get_jobs(["waiting", "delayed"])
    assert [(job.id, job.data) for job in jobs] == [
        (f"repeat:tick:{clock.now() + 30 * 60_000}", {"v": 2})
    ]
    assert len(await queue.get_job_schedulers()) == 1


async def test_remove_job_scheduler(queue, make_worker, clock):
    ran = []
    make_worker(lambda job: ran.append(job.id))
    await queue.add("nightly", {}, repeat={"pattern": "0 3 * * *"})
    assert await queue.remove_job_scheduler("nightly") is True
    assert await queue.remove_job_scheduler("nightly") is False
    await clock.advance(timedelta(days=2))
    assert ran == [] and sum((await queue.get_job_counts()).values()) == 0


async def test_run_options_apply_to_every_run(queue, make_worker, clock):
    attempts = []

    async def flaky(job):
        attempts.append(job.attempts_made)
        if job.attempts_made == 0:
            raise RuntimeError("first try fails")

    make_worker(flaky)
    await queue.add("sync", {}, repeat={"every": 3600}, attempts=2, backoff=60)
    await clock.advance(timedelta(minutes=90))
    assert attempts == [0, 1, 0, 1]


async def test_two_producers_and_three_workers_make_one_job_per_tick(
    queue, make_worker, prefix, clock
):
    ran = []

    async def record(job):
        ran.append(job.id)
        await asyncio.sleep(0.001)

    for _ in range(3):
        make_worker(record, concurrency=2)
    other = minibull.Queue("q", prefix=prefix, clock=clock)
    repeat = {"pattern": "*/15 * * * *"}
    await asyncio.gather(
        queue.upsert_job_scheduler("quarter", repeat, name="quarter"),
        other.upsert_job_scheduler("quarter", repeat, name="quarter"),
    )
    await clock.advance(timedelta(hours=2))
    await other.close()
    assert len(ran) == len(set(ran)) == 8
    assert sorted(ran) == ran  # ids end with the millis: in time order


@pytest.mark.parametrize(
    "repeat, words",
    [
        ({"pattern": "61 * * * *"}, "not a valid cron"),
        ({"pattern": "0 8 * * *", "every": 10}, "exactly one"),
        ({}, "exactly one"),
        ({"every": 0}, "every must be > 0"),
        ({"every": -5}, "every must be >= 0"),
        ({"pattern": "0 8 * * *", "tz": "Mars/Olympus"}, "not a known time zone"),
        ({"every": 5, "limit": 0}, "limit"),
        ({"every": 5, "when": "now"}, "unknown keys"),
    ],
)
async def test_bad_repeat_options_raise_and_write_nothing(queue, prefix, repeat, words):
    with pytest.raises(ValueError, match=words):
        await queue.add("digest", {}, repeat=repeat)
    assert await queue.redis.keys(f"{prefix}:*") == []


def test_next_run_for_every_skips_missed_slots():
    stored = check_repeat({"every": 60})
    assert next_run(stored, now=1_000_000) == 1_000_000
    assert next_run(stored, now=1_000_000, previous=1_000_000) == 1_060_000
    assert next_run(stored, now=1_250_000, previous=1_000_000) == 1_300_000


def test_next_run_for_cron_skips_times_that_dst_removes():
    stored = check_repeat({"pattern": "30 2 * * *", "tz": "Europe/Paris"})
    before = int(datetime(2026, 3, 28, 12, tzinfo=timezone.utc).timestamp() * 1000)
    when = next_run(stored, now=before)
    # 02:30 does not exist on 29 March in Paris: it runs as far after the gap as it was
    # into it (03:30 CEST, the instant of 02:30 winter time), as _next_cron documents.
    assert datetime.fromtimestamp(when / 1000, PARIS).strftime("%d %H:%M %Z") == "29 03:30 CEST"


def test_next_run_for_cron_runs_a_repeated_time_once_and_skips_the_repeated_hour():
    # 25 October 2026 in Paris: 02:00-02:59 happens twice (CEST, then CET).
    stored = check_repeat({"pattern": "*/15 * * * *", "tz": "Europe/Paris"})
    when = int(datetime(2026, 10, 25, 2, 40, tzinfo=PARIS).timestamp() * 1000)  # 02:40 CEST
    runs = []
    for _ in range(3):
        when = next_run(stored, now=when, previous=when)
        runs.append(datetime.fromtimestamp(when / 1000, PARIS).strftime("%H:%M %Z"))
    assert runs == ["02:45 CEST", "03:00 CET", "03:15 CET"]
    assert (
        int(datetime(2026, 10, 25, 3, 0, tzinfo=PARIS).timestamp())
        - int(datetime(2026, 10, 25, 2, 45, tzinfo=PARIS).timestamp())
        == 75 * 60  # 75 minutes of real time between two runs "15 minutes" apart
    )


async def test_upserting_again_does_not_use_up_the_limit(queue, make_worker, clock):
    ran = []
    for _ in range(3):  # e.g. three app servers booting
        await queue.upsert_job_scheduler("ping", {"every": 3600, "limit": 3}, name="ping")
    (scheduler,) = await queue.get_job_schedulers()
    assert scheduler["iterations"] == 1  # only the pending run counts
    make_worker(lambda job: ran.append(job.id))
    await clock.advance(timedelta(hours=10))
    assert len(ran) == 3


@pytest.mark.parametrize("delayed", [False, True])
async def test_drain_keeps_schedulers_running(queue, make_worker, clock, delayed):
    runs = []
    await queue.upsert_job_scheduler("tick", {"every": 10}, name="tick", data={})
    await queue.add("plain", {})
    assert await queue.drain(delayed=delayed) == 1
    make_worker(lambda job: runs.append(job.name))
    await clock.advance(25)
    assert runs == ["tick"] * 3


# -- #14: the worker passes the id of the run it took; the script checks it is the pending one


async def test_update_job_scheduler_plans_only_for_the_pending_runs_job(queue, clock):
    first = await queue.upsert_job_scheduler("tick", {"every": 10})
    start = clock.now()
    assert first is not None and first.id == f"repeat:tick:{start}"
    later = start + 10_000
    # Not the pending run: an older run's job, a made-up id, another scheduler's run.
    for other in (f"repeat:tick:{start - 10_000}", "tick", f"repeat:tock:{start}"):
        assert await queue.scripts.update_job_scheduler(start, "tick", other, later) is None
    scheduler = await queue.get_job_scheduler("tick")
    assert scheduler is not None and scheduler["next"] == start
    # The pending run's job: the scheduler moves to the next run, whose job is added.
    planned = await queue.scripts.update_job_scheduler(start, "tick", first.id, later)
    assert planned == f"repeat:tick:{later}"
    scheduler = await queue.get_job_scheduler("tick")
    assert scheduler is not None and scheduler["next"] == later
    # The same run taken again (its second attempt) is no longer the pending one.
    assert await queue.scripts.update_job_scheduler(start, "tick", first.id, later + 1) is None
    pending = await queue.get_jobs(["waiting", "delayed"])
    assert sorted(job.id for job in pending) == sorted([first.id, planned])


async def test_a_retried_run_does_not_plan_another(queue, make_worker, clock):
    # Run 1 fails and is retried 2 s later, when run 2 is already the pending one: the
    # retry's worker computes a next time from run 2's, and the script refuses it.
    ran = []

    async def fail_once(job):
        ran.append((job.id, job.attempts_made))
        if job.attempts_made == 0 and len(ran) == 1:
            raise RuntimeError("first run fails once")

    make_worker(fail_once)
    start = clock.now()
    await queue.upsert_job_scheduler(
        "tick", {"every": 10}, opts={"attempts": 2, "backoff": {"type": "fixed", "delay": 2}}
    )
    await clock.advance(25)
    assert ran == [
        (f"repeat:tick:{start}", 0),
        (f"repeat:tick:{start}", 1),
        (f"repeat:tick:{start + 10_000}", 0),
        (f"repeat:tick:{start + 20_000}", 0),
    ]
    scheduler = await queue.get_job_scheduler("tick")
    assert scheduler is not None and scheduler["next"] == start + 30_000
    assert scheduler["iterations"] == 4  # runs made: 1, 2, 3 and the pending 4th
