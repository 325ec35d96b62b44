"""Changing a job after it was added (issue 16, item 3): BullMQ's promote, changeDelay,
updateData, changePriority and promoteJobs; and a processor that defers its own job
(``Job.move_to_delayed`` + ``DelayedError``). Bad input changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

import minibull
from minibull import scripts
from minibull.keys import QueueKeys
from minibull.options import MAX_DELAY_MS, MAX_PRIORITY
from tests.conftest import START_MS, states_of
from tests.test_input_limits import refused, snapshot


async def events_of(queue: minibull.Queue) -> list[dict[str, str]]:
    return [fields for _id, fields in await queue.redis.xrange(queue.keys.events)]


async def prioritized_order(queue: minibull.Queue) -> list[str]:
    return list(await queue.redis.zrange(queue.keys.prioritized, 0, -1))


# -- promote -------------------------------------------------------------------------


async def test_promote_makes_a_delayed_job_wait_now(queue, make_worker, clock):
    job = await queue.add("report", {}, delay=3600)
    await job.promote()
    assert job.delay == 0
    assert await job.get_state() == "waiting"
    stored = await queue.get_job(job.id)
    assert stored.delay == 0
    assert (await events_of(queue))[-1] == {"event": "waiting", "jobId": job.id, "prev": "delayed"}
    ran = []
    make_worker(lambda j: ran.append(clock.now()))
    await clock.settle()
    assert ran == [START_MS]  # run an hour early, no time passed


async def test_promote_keeps_the_priority(queue):
    await queue.add("other", {}, priority=5)
    job = await queue.add("urgent", {}, priority=1, delay=60)
    await job.promote()
    assert await prioritized_order(queue) == [job.id, "1"]


async def test_promote_refuses_a_job_that_is_not_delayed_and_changes_nothing(queue):
    job = await queue.add("now", {})
    await refused(queue, ValueError, "cannot promote job 1: it is not delayed", job.promote)
    gone = minibull.Job(id="nope", name="x", queue=queue)
    await refused(queue, minibull.JobNotFoundError, "does not exist", gone.promote)


async def test_promote_on_a_paused_queue_wakes_no_worker(queue):
    await queue.pause()
    job = await queue.add("later", {}, delay=60)
    await queue.redis.delete(queue.keys.marker)
    await job.promote()
    assert await job.get_state() == "waiting"
    assert await queue.redis.zcard(queue.keys.marker) == 0


async def test_promote_jobs_moves_every_delayed_job_in_batches(queue):
    specs = [{"name": "d", "data": i, "delay": 10 + i} for i in range(1500)]
    specs[3]["priority"] = 2
    await queue.add_bulk(specs)
    await queue.add("now", {})
    assert await queue.promote_jobs() == 1500
    counts = await queue.get_job_counts()
    assert counts["delayed"] == 0
    assert counts["waiting"] == 1500 and counts["prioritized"] == 1
    # soonest due first, each LPUSHed: after the job that was waiting, they run in due order
    assert await queue.redis.lrange(queue.keys.wait, -4, -1) == ["3", "2", "1", "1501"]
    assert await queue.promote_jobs() == 0


async def test_promote_jobs_drops_an_id_whose_hash_is_gone(queue):
    job = await queue.add("d", {}, delay=60)
    await queue.redis.delete(queue.keys.job(job.id))
    assert await queue.promote_jobs() == 1
    assert await queue.redis.exists(queue.keys.job(job.id)) == 0
    assert await states_of(queue) == {state: [] for state in minibull.STATES}


# -- change_delay ----------------------------------------------------------------------


async def test_change_delay_moves_the_due_time(queue, make_worker, clock):
    job = await queue.add("later", {}, delay=60)
    await job.change_delay(timedelta(seconds=10))
    assert job.delay == 10_000 and (await queue.get_job(job.id)).delay == 10_000
    last = (await events_of(queue))[-1]
    assert last == {"event": "delayed", "jobId": job.id, "delay": str(START_MS + 10_000)}
    ran = []
    make_worker(lambda j: ran.append(clock.now()))
    await clock.advance(9)
    assert ran == []
    await clock.advance(2)
    assert ran == [START_MS + 10_000]


async def test_change_delay_later_moves_the_marker_later_too(queue, make_worker, clock):
    job = await queue.add("soon", {}, delay=5)
    await job.change_delay(120)
    ran = []
    make_worker(lambda j: ran.append(clock.now()))
    await clock.advance(60)
    assert ran == []
    await clock.advance(61)
    assert ran == [START_MS + 120_000]


async def test_change_delay_refuses_a_job_that_is_not_delayed(queue):
    job = await queue.add("now", {})
    await refused(queue, ValueError, "it is not delayed", lambda: job.change_delay(5))


@pytest.mark.parametrize(
    ("delay", "error", "words"),
    [
        (-1, ValueError, "delay must be >= 0"),
        ("5", TypeError, "delay must be seconds"),
        (float("nan"), ValueError, "delay must be a finite"),
        (MAX_DELAY_MS / 1000 + 1, ValueError, "delay must be at most 5 years"),
    ],
)
async def test_change_delay_bad_input_changes_nothing(queue, delay, error, words):
    job = await queue.add("later", {}, delay=60)
    await refused(queue, error, words, lambda: job.change_delay(delay))


# -- update_data -------------------------------------------------------------------------


async def test_update_data_is_what_the_next_run_reads(queue, make_worker, clock):
    job = await queue.add("mail", {"to": "ada"}, delay=60)
    await job.update_data({"to": "grace", "tags": ("a", "b")})
    assert job.data == {"to": "grace", "tags": ["a", "b"]}
    seen = []
    make_worker(lambda j: seen.append(j.data))
    await clock.advance(61)
    assert seen == [{"to": "grace", "tags": ["a", "b"]}]


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        ({"f": object()}, TypeError, "data"),
        ({"x": "\ud800"}, ValueError, "data"),
        ("x" * 200, ValueError, "over size_limit"),
    ],
)
async def test_update_data_bad_input_changes_nothing(queue, data, error, words):
    job = await queue.add("mail", {"to": "ada"}, size_limit=100)
    await refused(queue, error, words, lambda: job.update_data(data))
    assert (await queue.get_job(job.id)).data == {"to": "ada"}


async def test_update_data_of_a_removed_job_writes_nothing(queue):
    job = await queue.add("mail", {})
    await job.remove()
    await refused(queue, minibull.JobNotFoundError, "does not exist", lambda: job.update_data(1))


# -- change_priority ---------------------------------------------------------------------


async def test_change_priority_moves_a_prioritized_job_behind_its_equals(queue):
    a = await queue.add("a", {}, priority=3)
    b = await queue.add("b", {}, priority=2)
    c = await queue.add("c", {}, priority=2)
    await a.change_priority(2)
    assert await prioritized_order(queue) == [b.id, c.id, a.id]
    await a.change_priority(2, lifo=True)
    assert await prioritized_order(queue) == [a.id, b.id, c.id]
    assert a.priority == 2 and (await queue.get_job(a.id)).priority == 2


async def test_change_priority_between_wait_and_prioritized(queue):
    a = await queue.add("a", {})
    b = await queue.add("b", {})
    await a.change_priority(4)
    assert (await states_of(queue))["waiting"] == [b.id]
    assert await prioritized_order(queue) == [a.id]
    await a.change_priority(0, lifo=True)
    assert await queue.redis.lrange(queue.keys.wait, 0, -1) == [b.id, a.id]  # a pops next
    assert await queue.redis.zcard(queue.keys.prioritized) == 0


async def test_change_priority_of_a_delayed_job_applies_when_it_falls_due(queue, clock):
    job = await queue.add("later", {}, delay=60)
    await job.change_priority(7)
    assert await job.get_state() == "delayed"
    await job.promote()
    assert await prioritized_order(queue) == [job.id]


@pytest.mark.parametrize(
    ("priority", "lifo", "error", "words"),
    [
        (-1, False, ValueError, "priority"),
        (MAX_PRIORITY + 1, False, ValueError, "priority"),
        (1.5, False, TypeError, "priority"),
        (True, False, TypeError, "priority"),
        (1, "yes", TypeError, "lifo"),
    ],
)
async def test_change_priority_bad_input_changes_nothing(queue, priority, lifo, error, words):
    job = await queue.add("a", {}, priority=3)
    await refused(queue, error, words, lambda: job.change_priority(priority, lifo=lifo))


async def test_change_priority_of_a_missing_job_writes_nothing(queue):
    gone = minibull.Job(id="nope", name="x", queue=queue)
    await refused(
        queue, minibull.JobNotFoundError, "does not exist", lambda: gone.change_priority(1)
    )


# -- a processor that defers its own job ---------------------------------------------------


async def test_a_processor_defers_its_job_without_using_an_attempt(queue, make_worker, clock):
    runs = []

    async def processor(job):
        runs.append(clock.now())
        if len(runs) == 1:
            await job.move_to_delayed(clock.now() + 30_000)
            raise minibull.DelayedError()
        return "done"

    job = await queue.add("poll", {}, attempts=1)
    make_worker(processor)
    await clock.settle()
    stored = await queue.get_job(job.id)
    assert await stored.get_state() == "delayed"
    assert stored.attempts_made == 0 and stored.delay == 30_000
    await clock.advance(31)
    assert runs == [START_MS, START_MS + 30_000]
    assert await job.wait_until_finished(timeout=5) == "done"
    events = [e["event"] for e in await events_of(queue)]
    assert events[:4] == ["added", "waiting", "active", "delayed"]


async def test_a_run_that_deferred_its_job_cannot_complete_it(queue, make_worker, clock):
    errors = []

    async def forgets_to_raise(job):
        await job.move_to_delayed(clock.now() + 30_000)
        return "oops"

    worker = make_worker(forgets_to_raise, start=False)
    worker.on("error", errors.append)
    job = await queue.add("poll", {})
    worker.start()
    await clock.settle()
    assert await job.get_state() == "delayed"
    assert [type(e) for e in errors] == [minibull.LockLostError]


async def test_move_to_delayed_needs_the_runs_token(queue):
    job = await queue.add("poll", {})
    await refused(queue, ValueError, "token", lambda: job.move_to_delayed(START_MS))
    await refused(queue, ValueError, "timestamp", lambda: job.move_to_delayed(-1, "t"))
    await refused(queue, TypeError, "timestamp", lambda: job.move_to_delayed(1.5, "t"))
    await refused(queue, minibull.LockLostError, "lock", lambda: job.move_to_delayed(0, "t"))


# -- the builders are pure -------------------------------------------------------------------


def test_builders_name_bullmq_keys():
    keys = QueueKeys("q")
    assert scripts.promote_args(keys, "7") == (
        [f"bull:q:{s}" for s in ("delayed", "wait", "prioritized", "pc", "marker", "meta")]
        + ["bull:q:events"],
        ["bull:q:", "7"],
    )
    assert scripts.change_delay_args(keys, "7", 500, 1000) == (
        ["bull:q:delayed", "bull:q:meta", "bull:q:marker", "bull:q:events"],
        ["bull:q:", "7", 500, 1000],
    )
    assert scripts.update_data_args(keys, "7", "{}") == (["bull:q:7"], ["{}"])
    assert scripts.change_priority_args(keys, "7", 3, True)[1] == ["bull:q:", "7", 3, 1]
    assert scripts.defer_args(keys, 1000, "7", "tok", 5)[1][-1] == "1"


async def test_snapshot_sees_a_change(queue):
    # the "nothing written" checks above rest on this: a real change shows in the snapshot
    job = await queue.add("a", {}, priority=3)
    before = await snapshot(queue)
    await job.change_priority(1)
    assert await snapshot(queue) != before
