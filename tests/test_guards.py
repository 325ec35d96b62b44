"""BullMQ's hard-won guards in the Lua scripts: cut-offs, batches, missing hashes, reserved ids.

Each test drives the scripts (through ``Queue``/``Worker`` or ``queue.scripts`` directly) into
the situation a guard is for, and checks that the queue's structures stay consistent.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import pytest
from redis.exceptions import ResponseError

import minibull
from minibull.keys import RESERVED_JOB_IDS
from minibull.options import build_job
from minibull.scripts import Take, retry_job_args
from tests.conftest import wait_for


async def keys_under(queue: minibull.Queue) -> list[str]:
    """Every Redis key of the queue's prefix."""
    pattern = queue.keys.prefix + ":*"
    return sorted([key async for key in queue.redis.scan_iter(match=pattern, count=1000)])


# -- B7: a job id that names a queue key -------------------------------------------------


@pytest.mark.parametrize("job_id", ["wait", "meta", "events", "marker"])
async def test_add_job_refuses_a_reserved_id_and_writes_nothing(queue, job_id):
    # Straight to the script (the Python check in options comes first in Queue.add): a bulk
    # whose second job has a reserved id is refused as a whole.
    fine, reserved = build_job("fine", {}), build_job("bad", {})
    reserved["id"] = job_id
    with pytest.raises(ValueError, match=f"job_id '{job_id}' is reserved"):
        await queue.scripts.add_jobs(queue.clock.now(), [fine, reserved])
    assert await keys_under(queue) == []
    job = await queue.add("after", {})
    assert await queue.get_job_state(job.id) == "waiting"


async def test_add_job_refuses_every_reserved_id_and_only_those(queue):
    # The script looks each custom id up in the text of the reserved ids (a plain find):
    # every reserved id is refused, and ids that only contain them, or join two of them
    # with the separator, are jobs like any other.
    for job_id in sorted(RESERVED_JOB_IDS):
        spec = build_job("bad", {})
        spec["id"] = job_id
        with pytest.raises(ValueError, match=f"job_id '{job_id}' is reserved"):
            await queue.scripts.add_jobs(queue.clock.now(), [spec])
    assert await keys_under(queue) == []
    look_alikes = ["stalled stalled-check", "de delayed", "wai", "waits", "stalled-", " wait"]
    for job_id in look_alikes:
        spec = build_job("fine", {})
        spec["id"] = job_id
        assert await queue.scripts.add_jobs(queue.clock.now(), [spec]) == [(job_id, True)]
    assert (await queue.get_job_counts("waiting"))["waiting"] == len(look_alikes)


def test_the_reserved_ids_are_the_queue_keys():
    assert {"wait", "active", "meta", "events", "marker", "id", "repeat"} <= RESERVED_JOB_IDS
    assert not any(":" in name for name in RESERVED_JOB_IDS)


# -- B1: retry_jobs while workers run -------------------------------------------------------


async def test_retry_jobs_moves_each_finished_job_once_while_workers_run(
    prefix, make_worker, monkeypatch
):
    # Workers re-run the retried jobs at once and finish them again. Between two batches of
    # retry_jobs the test lets them finish every job again: without a cut-off the next batch
    # took those jobs again, and retry_jobs never ended (every job ran again and again).
    clock = minibull.SystemClock()
    runs = collections.Counter()

    async def count_runs(job):
        runs[job.id] += 1

    async with minibull.Queue("q", prefix=prefix, clock=clock) as queue:
        count = 50
        jobs = await queue.add_bulk([{"name": "j", "data": i} for i in range(count)])
        make_worker(count_runs, clock=clock, concurrency=10)
        settled = {"completed": count, "waiting": 0, "active": 0}

        async def all_finished(min_runs: int) -> bool:
            counts = await queue.get_job_counts(*settled)
            return sum(runs.values()) >= min_runs and counts == settled

        await wait_for(lambda: all_finished(count))
        move_batch = queue.scripts.move_jobs_to_wait

        async def move_then_let_workers_finish(*args):
            before = sum(runs.values())  # nothing runs now: every job has finished
            moved = await move_batch(*args)
            await wait_for(lambda: all_finished(before + moved))
            return moved

        monkeypatch.setattr(queue.scripts, "move_jobs_to_wait", move_then_let_workers_finish)
        assert await asyncio.wait_for(queue.retry_jobs("completed"), timeout=10) == count
        assert set(runs.values()) == {2}, collections.Counter(runs.values())
        assert set(runs) == {job.id for job in jobs}


# -- B2: trimming a big finished set ----------------------------------------------------------


async def finished_jobs(queue: minibull.Queue, count: int, state: str = "completed") -> list[str]:
    """``count`` jobs in ``state`` at once: one bulk add, then moved there straight in Redis."""
    jobs = await queue.add_bulk([{"name": "old", "data": i} for i in range(count)])
    ids = [job.id for job in jobs]
    now = queue.clock.now()
    async with queue.redis.pipeline(transaction=False) as pipe:
        pipe.delete(queue.keys.wait)
        pipe.zadd(
            queue.keys.state_key(state), {job_id: now - count + i for i, job_id in enumerate(ids)}
        )
        for job_id in ids:
            pipe.hset(queue.keys.job(job_id), "finishedOn", now)
        await pipe.execute()
    return ids


async def run_one(queue: minibull.Queue, keep: dict[str, int], failed: bool = False) -> str:
    """Add a job, take it and finish it (straight through the scripts) with ``keep``."""
    job = await queue.add("new", {})
    take = Take(token="t", lock_ms=60_000)
    taken = await queue.scripts.move_to_active(queue.clock.now(), take)
    assert taken.job_id == job.id
    await queue.scripts.move_to_finished(
        job.id,
        now=queue.clock.now(),
        token="t",
        failed=failed,
        value='"done"',
        keep=keep,
        attempts=1,
    )
    return job.id


async def test_trimming_more_than_8000_finished_jobs_works_in_bounded_steps(queue):
    # A queue kept every job, then sets a count: the excess (8,101 here) is more than Lua's
    # unpack takes. Each finish removes up to 1,000 of the oldest, hashes included.
    old = await finished_jobs(queue, 8200)
    await queue.clock.advance(1)
    newest = [await run_one(queue, {"count": 100})]
    assert await queue.redis.zcard(queue.keys.completed) == 8201 - 1000
    assert not await queue.redis.exists(*(queue.keys.job(job_id) for job_id in old[:1000]))
    assert await queue.redis.exists(*(queue.keys.job(job_id) for job_id in old[1000:])) == 7200
    while len(newest) < 10:
        newest.append(await run_one(queue, {"count": 100}))
    kept = await queue.redis.zrange(queue.keys.completed, 0, -1)
    assert kept == old[-90:] + newest
    assert await queue.redis.exists(*(queue.keys.job(job_id) for job_id in old)) == 90


async def test_a_huge_keep_count_or_age_finishes_the_job_and_trims_nothing(queue):
    # Straight to the script (options refuse such counts): no Redis error half-way through.
    old = await finished_jobs(queue, 5)
    events_before = await queue.redis.xlen(queue.keys.events)
    job_id = await run_one(queue, {"count": 2**70})
    await run_one(queue, {"count": 2**70, "age": 2**70})
    assert await queue.redis.zcard(queue.keys.completed) == 7
    assert await queue.redis.exists(*(queue.keys.job(i) for i in old)) == 5
    assert (await queue.get_job(job_id)).returnvalue == "done"
    events = await queue.redis.xrange(queue.keys.events, min="-", max="+")
    assert [e["event"] for _, e in events[events_before:]].count("completed") == 2


# -- B6: a job whose hash disappears ----------------------------------------------------------


async def take(queue: minibull.Queue, token: str = "t") -> str | None:
    """One moveToActive at the clock's now: the id taken (or None)."""
    taken = await queue.scripts.move_to_active(queue.clock.now(), Take(token, lock_ms=60_000))
    return taken.job_id


FINISH_CALLS = {
    "moveToFinished": lambda scripts, job_id, now: scripts.move_to_finished(
        job_id, now=now, token="t", failed=False, value="1", keep={"count": -1}, attempts=1
    ),
    "retryJob": lambda scripts, job_id, now: scripts.retry_job(
        job_id, "t", lifo=False, fields={}, now=now
    ),
    "moveToDelayed": lambda scripts, job_id, now: scripts.move_to_delayed(
        now, job_id, "t", 1000, {}
    ),
}


@pytest.mark.parametrize("script", FINISH_CALLS)
async def test_finishing_a_job_whose_hash_is_gone_still_takes_it_out_of_active(queue, script):
    job = await queue.add("doomed", {})
    assert await take(queue) == job.id
    await queue.redis.sadd(queue.keys.stalled, job.id)
    await queue.redis.delete(queue.keys.job(job.id))
    with pytest.raises(minibull.JobNotFoundError):
        await FINISH_CALLS[script](queue.scripts, job.id, queue.clock.now())
    assert await queue.redis.lrange(queue.keys.active, 0, -1) == []
    assert not await queue.redis.exists(queue.keys.lock(job.id), queue.keys.job(job.id))
    assert not await queue.redis.sismember(queue.keys.stalled, job.id)
    assert await queue.get_job_counts() == dict.fromkeys(minibull.STATES, 0)


async def test_finishing_a_missing_job_leaves_another_workers_lock_alone(queue):
    job = await queue.add("doomed", {})
    assert await take(queue, token="theirs") == job.id
    await queue.redis.delete(queue.keys.job(job.id))
    with pytest.raises(minibull.JobNotFoundError):
        await FINISH_CALLS["moveToFinished"](queue.scripts, job.id, queue.clock.now())
    assert await queue.redis.lrange(queue.keys.active, 0, -1) == [job.id]
    assert await queue.redis.get(queue.keys.lock(job.id)) == "theirs"


async def sweep(queue: minibull.Queue, max_stalled_count: int = 0) -> list[str]:
    """One stalled sweep, whatever the stalled-check key says."""
    await queue.redis.delete(queue.keys.stalled_check)
    now = queue.clock.now()
    return await queue.scripts.move_stalled_jobs_to_wait(now, max_stalled_count, 1000)


async def test_the_stalled_sweep_drops_a_job_whose_hash_is_gone(queue):
    # A crashed worker's job, then its hash is deleted: the sweep used to recreate a
    # hash-less job (HINCRBY stc) and put it back in line, for ever.
    lost, fine = await queue.add("lost", {}), await queue.add("fine", {})
    assert await take(queue) == lost.id and await take(queue) == fine.id
    await queue.redis.delete(queue.keys.lock(lost.id), queue.keys.lock(fine.id))
    await queue.redis.delete(queue.keys.job(lost.id))
    assert await sweep(queue) == []  # marks both as suspects
    assert await sweep(queue) == [fine.id]
    assert await queue.redis.lrange(queue.keys.wait, 0, -1) == [fine.id]
    assert await queue.redis.lrange(queue.keys.active, 0, -1) == []
    assert not await queue.redis.exists(queue.keys.job(lost.id))


async def test_take_skips_an_id_whose_hash_is_gone(queue):
    first, second = await queue.add("a", {}), await queue.add("b", {}, priority=1)
    await queue.redis.delete(queue.keys.job(first.id))
    assert await take(queue) == second.id
    assert await queue.redis.lrange(queue.keys.active, 0, -1) == [second.id]
    assert await take(queue) is None
    assert await queue.redis.lrange(queue.keys.active, 0, -1) == [second.id]


# -- B19: check first, then write --------------------------------------------------------------


@pytest.mark.parametrize("script", FINISH_CALLS)
async def test_a_refused_finish_changes_nothing(queue, script):
    # The job has our lock but is not in "active" (-3): the lock used to be deleted first.
    job = await queue.add("j", {})
    assert await take(queue) == job.id
    await queue.redis.lrem(queue.keys.active, 0, job.id)
    with pytest.raises(minibull.LockLostError, match="not in the expected state"):
        await FINISH_CALLS[script](queue.scripts, job.id, queue.clock.now())
    assert await queue.redis.get(queue.keys.lock(job.id)) == "t"


async def test_fields_cjson_refuses_change_nothing(queue):
    # Straight to retryJob with fields as another client could send them: cjson refuses a
    # lone surrogate escape. The job used to vanish (out of "active", lock gone, in no state).
    job = await queue.add("j", {})
    assert await take(queue) == job.id
    script_keys, argv = retry_job_args(
        queue.keys, job.id, "t", lifo=False, fields={}, now=queue.clock.now()
    )
    argv[4] = '{"failedReason": "bad \\ud800"}'
    # Redis answers an error; the embedded fakeredis's cjson raises UnicodeEncodeError.
    with pytest.raises((ResponseError, UnicodeError)):
        await queue.scripts.run("retryJob", (script_keys, argv))
    assert await queue.get_job_state(job.id) == "active"
    assert await queue.redis.get(queue.keys.lock(job.id)) == "t"


async def test_a_reason_with_a_lone_surrogate_is_recorded_with_a_replacement(queue):
    # An error message that quotes data a Node producer wrote ("\\ud800" is valid JSON):
    # Redis takes only UTF-8 and cjson refuses the escape, so the builders replace it.
    job = await queue.add("j", {})
    assert await take(queue) == job.id
    reason = "bad input: \ud800"
    await queue.scripts.retry_job(
        job.id, "t", lifo=False, fields={"failedReason": reason}, now=queue.clock.now()
    )
    assert (await queue.get_job(job.id)).failed_reason == "bad input: \ufffd"
    assert await take(queue) == job.id
    await queue.scripts.move_to_finished(
        job.id,
        now=queue.clock.now(),
        token="t",
        failed=True,
        value=reason,
        keep={"count": -1},
        attempts=2,
    )
    assert await queue.get_job_state(job.id) == "failed"
    assert (await queue.get_job(job.id)).failed_reason == "bad input: \ufffd"


async def test_a_stalled_scheduler_run_is_not_failed_while_its_scheduler_exists(queue):
    # BullMQ exempts repeatable jobs from max_stalled_count: failing the run would end the
    # schedule (its next run is planned when a worker takes this one).
    await queue.upsert_job_scheduler("tick", {"every": 60, "immediately": True})
    plain = await queue.add("plain", {})
    taken = {await take(queue), await take(queue)}
    run_id = (taken - {plain.id}).pop()
    assert run_id.startswith("repeat:tick:")
    await queue.redis.delete(queue.keys.lock(run_id), queue.keys.lock(plain.id))
    await sweep(queue)
    assert set(await sweep(queue)) == taken
    defa = [queue.redis.hget(queue.keys.job(job_id), "defa") for job_id in (run_id, plain.id)]
    assert [await marked is not None for marked in defa] == [False, True]
    # A run whose scheduler is gone is failed like any job (BullMQ 5.80 fails orphans).
    assert {await take(queue), await take(queue)} == taken
    await queue.remove_job_scheduler("tick")
    await queue.redis.delete(queue.keys.lock(run_id))
    await sweep(queue)
    assert await sweep(queue) == [run_id]
    assert await queue.redis.hget(queue.keys.job(run_id), "defa") is not None


# -- B9: a job scheduler's pending run ----------------------------------------------------------


async def test_removing_a_schedulers_pending_run_is_refused(queue):
    run = await queue.upsert_job_scheduler("tick", {"every": 60})
    with pytest.raises(RuntimeError, match="next run of a job scheduler"):
        await run.remove()
    assert await queue.get_job_state(run.id) == "waiting"
    assert await take(queue) == run.id


async def test_clean_and_drain_skip_a_schedulers_pending_run(queue):
    run = await queue.upsert_job_scheduler("tick", {"every": 60})
    plain = await queue.add("plain", {})
    assert await queue.clean(0, state="waiting") == [plain.id]
    assert [job.id for job in await queue.get_jobs("waiting")] == [run.id]
    assert await queue.drain(delayed=True) == 0
    assert await queue.get_job_state(run.id) == "waiting"


async def test_clean_removes_an_unlocked_active_job_with_its_stalled_mark(queue):
    job = await queue.add("j", {}, deduplication={"id": "d"})
    assert await take(queue) == job.id
    await queue.redis.delete(queue.keys.lock(job.id))
    await sweep(queue)  # marks it stalled
    assert await queue.clean(0, state="active") == [job.id]
    assert not await queue.redis.sismember(queue.keys.stalled, job.id)
    assert not await queue.redis.exists(queue.keys.deduplication("d"))


async def test_clean_reads_the_state_in_pages_oldest_first(queue):
    jobs = await queue.add_bulk([{"name": "j", "data": i} for i in range(2500)])
    ids = [job.id for job in jobs]
    assert await queue.clean(0, limit=3, state="waiting") == ids[:3]
    assert await queue.clean(0, state="waiting") == ids[3:]
    await finished_jobs(queue, 2500)
    locked = (await queue.get_jobs("completed", 1200, 1200))[0].id
    await queue.redis.set(queue.keys.lock(locked), "someone")
    assert len(await queue.clean(0, state="completed")) == 2499
    assert await queue.redis.zrange(queue.keys.completed, 0, -1) == [locked]


# -- B8: obliterate deletes its own keys only ---------------------------------------------------


async def test_obliterate_deletes_by_name_and_spares_a_queue_named_like_a_prefix(queue):
    # Keys of a queue "q:high", written straight (queue names with ':' are refused now,
    # but BullMQ's old clients, or older minibull, may have made them).
    sibling = minibull.QueueKeys("q:high", prefix=queue.keys.prefix)
    await queue.redis.lpush(sibling.wait, "1")
    await queue.redis.hset(sibling.job("1"), "name", "theirs")
    await finished_jobs(queue, 3, state="failed")
    await queue.add("waiting", {}, deduplication={"id": "d"})
    await queue.add("later", {}, delay=60)
    await queue.upsert_job_scheduler("tick", {"every": 60})
    assert await take(queue) is not None
    await queue.scripts.add_log("1", "a line")
    await queue.obliterate(force=True)
    assert await keys_under(queue) == sorted([sibling.wait, sibling.job("1")])


async def test_obliterate_also_deletes_the_families_found_by_pattern(prefix, clock):
    # Side-effect records, deduplication ids with a TTL and wake-up keys are not listed in
    # any state: obliterate left them behind (notebook 08 found 'idem:' keys after cleanup).
    # A queue name with glob characters must not reach other queues through the pattern.
    queue = minibull.Queue("q*", prefix=prefix, clock=clock)
    other = minibull.Queue("qx", prefix=prefix, clock=clock)
    try:
        for q in (queue, other):
            await q.redis.set(q.keys.idempotency("receipt:1"), "{}")
            await q.redis.set(q.keys.deduplication("gone"), "7", px=60_000)
            await q.redis.zadd(q.keys.worker_wakeup("w1"), {"0": 0})
        await queue.obliterate(force=True)
        left = await keys_under(queue)
        assert left == sorted(
            [
                other.keys.idempotency("receipt:1"),
                other.keys.deduplication("gone"),
                other.keys.worker_wakeup("w1"),
            ]
        )
    finally:
        await other.obliterate(force=True)
        await queue.close()
        await other.close()


@pytest.mark.parametrize("job_id", ["idem", "wakeup"])
async def test_ids_that_name_a_key_family_are_reserved(queue, job_id):
    with pytest.raises(ValueError, match="reserved"):
        await queue.add("x", {}, job_id=job_id)


# -- B18: a lost reply at finish --------------------------------------------------------------


def finish_taking_next(queue: minibull.Queue, fetch_token: str, **options: Any) -> Any:
    """moveToFinished of the job held by "t", fetching the next one under ``fetch_token``."""
    return queue.scripts.move_to_finished(
        options.pop("job_id"),
        now=queue.clock.now(),
        token=options.pop("token", "t"),
        failed=False,
        value="1",
        keep=options.pop("keep", {"count": -1}),
        attempts=1,
        fetch_next=Take(fetch_token, lock_ms=60_000),
    )


async def event_names(queue: minibull.Queue) -> list[str]:
    return [e["event"] for _, e in await queue.redis.xrange(queue.keys.events, "-", "+")]


async def test_a_rerun_finish_answers_again_with_the_job_it_fetched(queue):
    # redis-py re-sends a script whose reply was lost: the same arguments, run twice. The
    # second run used to answer -2 (lock lost) and leave the fetched job locked under a
    # token nobody knew, until the stalled check took it back (stc + 1).
    first, second = await queue.add("a", {}), await queue.add("b", {})
    assert await take(queue) == first.id
    taken = await finish_taking_next(queue, "next", job_id=first.id)
    events = await event_names(queue)
    again = await finish_taking_next(queue, "next", job_id=first.id)
    assert taken.job_id == again.job_id == second.id
    assert again.fields == taken.fields
    assert await queue.redis.get(queue.keys.lock(second.id)) == "next"
    assert await queue.redis.lrange(queue.keys.active, 0, -1) == [second.id]
    assert await event_names(queue) == events  # nothing happened twice
    assert (await queue.get_job(first.id)).attempts_made == 1


async def test_a_retried_finish_hands_the_fetched_job_to_its_new_token(queue):
    # The worker's own retry makes a fresh fetch token: the job fetched under the lost
    # one moves to it (nobody else can know a token whose reply was lost).
    first, second = await queue.add("a", {}), await queue.add("b", {})
    assert await take(queue) == first.id
    assert (await finish_taking_next(queue, "lost", job_id=first.id)).job_id == second.id
    assert (await finish_taking_next(queue, "new", job_id=first.id)).job_id == second.id
    assert await queue.redis.get(queue.keys.lock(second.id)) == "new"
    assert (await finish_taking_next(queue, "newer", job_id=first.id)).job_id == second.id
    assert await queue.redis.get(queue.keys.lock(second.id)) == "newer"
    assert await queue.redis.hget(queue.keys.job(second.id), "ats") == "1"


async def test_a_rerun_finish_does_not_take_a_job_someone_else_holds(queue):
    first, second = await queue.add("a", {}), await queue.add("b", {})
    assert await take(queue) == first.id
    assert (await finish_taking_next(queue, "next", job_id=first.id)).job_id == second.id
    await queue.redis.set(queue.keys.lock(second.id), "theirs")  # e.g. stalled and re-taken
    assert (await finish_taking_next(queue, "next", job_id=first.id)).job_id is None
    assert await queue.redis.get(queue.keys.lock(second.id)) == "theirs"


async def test_a_finish_with_another_token_still_finds_the_lock_lost(queue):
    first, second = await queue.add("a", {}), await queue.add("b", {})
    assert await take(queue) == first.id
    assert (await finish_taking_next(queue, "next", job_id=first.id)).job_id == second.id
    with pytest.raises(minibull.LockLostError, match="lock is missing"):
        await finish_taking_next(queue, "mine", job_id=first.id, token="other")
    assert await queue.redis.get(queue.keys.lock(second.id)) == "next"


@pytest.mark.parametrize("script", ["retryJob", "moveToDelayed"])
async def test_a_rerun_retry_answers_again(queue, script):
    # retryJob and moveToDelayed fetch nothing: a re-run only must not report a lost lock.
    job = await queue.add("a", {})
    assert await take(queue) == job.id
    await FINISH_CALLS[script](queue.scripts, job.id, queue.clock.now())
    events = await event_names(queue)
    await FINISH_CALLS[script](queue.scripts, job.id, queue.clock.now())
    assert await event_names(queue) == events
    assert (await queue.get_job(job.id)).attempts_made == 1


async def test_a_worker_whose_finish_reply_is_lost_runs_the_job_it_fetched(queue, make_worker):
    # The first moveToFinished runs, then its reply is lost (ConnectionError): the
    # worker's retry runs it again and must get the job the first run fetched.
    first, second = await queue.add("a", {}), await queue.add("b", {})
    ran: list[str] = []
    errors: list[BaseException] = []
    worker = make_worker(lambda job: ran.append(job.id), start=False)
    worker.on("error", errors.append)
    real_run, lost = worker.queue.scripts.run, []

    async def run_and_lose_one_reply(name: str, args: Any) -> Any:
        reply = await real_run(name, args)
        if name == "moveToFinished" and not lost:
            lost.append(reply)
            raise ConnectionError("reply lost")
        return reply

    worker.queue.scripts.run = run_and_lose_one_reply  # type: ignore[method-assign]
    worker.start()
    await wait_for(
        lambda: len(ran) == 2 or any(isinstance(e, minibull.LockLostError) for e in errors)
    )
    assert ran == [first.id, second.id]
    assert [type(e) for e in errors] == [ConnectionError]

    async def second_completed() -> bool:
        return await queue.get_job_state(second.id) == "completed"

    await wait_for(second_completed)
    assert "stc" not in await queue.redis.hgetall(queue.keys.job(second.id))
