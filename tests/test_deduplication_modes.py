"""BullMQ's deduplication modes (issue 16, item 4): ``extend``, ``replace`` (a debounce with
``extend`` and a delay) and ``keep_last_if_active`` (an edit made while the job runs is
kept and run after it); the ``deduplicated`` event; ``Queue.remove_deduplication_key``.
Bad input changes nothing. The simple mode (id, ttl) is tested in test_single_add/test_guards.
"""

from __future__ import annotations

import asyncio
import json

import pytest

import minibull
from tests.conftest import wait_for
from tests.test_input_limits import refused, snapshot

KEEP = {"id": "doc-7", "keep_last_if_active": True}
DEBOUNCE = {"id": "search", "ttl": 60, "extend": True, "replace": True}


async def events_of(queue: minibull.Queue, *names: str) -> list[dict[str, str]]:
    found = [fields for _id, fields in await queue.redis.xrange(queue.keys.events)]
    return [fields for fields in found if not names or fields["event"] in names]


async def held_by(queue: minibull.Queue, dedup_id: str) -> str | None:
    return await queue.redis.get(queue.keys.deduplication(dedup_id))


class Gate:
    """A processor that records each run's data and holds the run until ``open``."""

    def __init__(self) -> None:
        self.ran: list[object] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, job: minibull.Job) -> None:
        self.ran.append(job.data)
        self.started.set()
        await self.release.wait()


# -- keep_last_if_active: an edit while the job runs is not dropped ------------------------


async def test_an_edit_made_while_the_job_runs_runs_after_it(queue, make_worker, clock):
    gate = Gate()
    make_worker(gate)
    first = await queue.add("save", {"v": 1}, deduplication=KEEP)
    await wait_for(gate.started.is_set)
    second = await queue.add("save", {"v": 2}, deduplication=KEEP)
    third = await queue.add("save", {"v": 3}, deduplication=KEEP)
    # Both stand in for the running job; the latest edit is kept in dn:<id> under its own id.
    assert second.id == third.id == first.id == "1"
    kept = await queue.redis.hgetall(queue.keys.deduplication_next("doc-7"))
    assert kept["jid"] == "3" and json.loads(kept["data"]) == {"v": 3}
    assert json.loads(kept["opts"])["de"] == {"id": "doc-7", "keepLastIfActive": True}
    assert await held_by(queue, "doc-7") == "1"
    assert await queue.redis.pttl(queue.keys.deduplication("doc-7")) == -1
    assert [
        (e["jobId"], e["deduplicatedJobId"]) for e in await events_of(queue, "deduplicated")
    ] == [
        ("1", "2"),
        ("1", "3"),
    ]
    gate.release.set()
    await clock.settle()
    assert gate.ran == [{"v": 1}, {"v": 3}]
    assert sorted(job.id for job in await queue.get_jobs("completed")) == ["1", "3"]
    assert (await queue.get_job("3")).deduplication_id == "doc-7"
    assert await held_by(queue, "doc-7") is None  # freed when job 3 ended
    assert await queue.redis.exists(queue.keys.deduplication_next("doc-7")) == 0
    ends = [(e["event"], e.get("jobId")) for e in await events_of(queue)]
    # As BullMQ's moveToFinished: the kept job is added before job 1's "completed".
    at = ends.index(("completed", "1"))
    assert ends[at - 2 : at] == [("added", "3"), ("waiting", "3")]


async def test_without_the_mode_the_edit_is_dropped(queue, make_worker, clock):
    # The simple mode, for contrast: what notebook 08 shows going wrong.
    gate = Gate()
    make_worker(gate)
    await queue.add("save", {"v": 1}, deduplication={"id": "doc-7"})
    await wait_for(gate.started.is_set)
    await queue.add("save", {"v": 2}, deduplication={"id": "doc-7"})
    gate.release.set()
    await clock.settle()
    assert gate.ran == [{"v": 1}]


async def test_an_edit_while_the_job_waits_is_dropped(queue):
    await queue.add("save", {"v": 1}, deduplication=KEEP)
    again = await queue.add("save", {"v": 2}, deduplication=KEEP)
    assert again.id == "1" and again.data == {"v": 1}
    assert await queue.redis.exists(queue.keys.deduplication_next("doc-7")) == 0
    (event,) = await events_of(queue, "deduplicated")
    assert event == {
        "event": "deduplicated",
        "jobId": "1",
        "deduplicationId": "doc-7",
        "deduplicatedJobId": "2",
    }


async def test_the_kept_edit_runs_after_a_final_failure_too(queue, make_worker, clock):
    gate = Gate()

    async def fail_first(job: minibull.Job) -> None:
        await gate(job)
        if job.data == {"v": 1}:
            raise RuntimeError("boom")

    make_worker(fail_first)
    await queue.add("save", {"v": 1}, deduplication=KEEP, attempts=2)
    await wait_for(gate.started.is_set)
    await queue.add("save", {"v": 2}, deduplication=KEEP)
    gate.release.set()
    await clock.settle()
    # Job 1's retry is not its end: the edit waits for its second failure.
    assert gate.ran == [{"v": 1}, {"v": 1}, {"v": 2}]
    assert [j.id for j in await queue.get_jobs("failed")] == ["1"]
    assert [j.id for j in await queue.get_jobs("completed")] == ["2"]


async def test_removing_the_job_drops_the_edit_kept_for_after_it(queue, make_worker, clock):
    # As BullMQ's removeDeduplicationKeyIfNeededOnRemoval: else the edit would run after
    # whichever job takes the id next.
    gate = Gate()

    async def fail(job: minibull.Job) -> None:
        await gate(job)
        raise RuntimeError("boom")

    make_worker(fail)
    job = await queue.add(
        "save", {"v": 1}, deduplication=KEEP, attempts=2, backoff={"type": "fixed", "delay": 60}
    )
    await wait_for(gate.started.is_set)
    await queue.add("save", {"v": 2}, deduplication=KEEP)
    gate.release.set()
    await wait_for(lambda: _state_is(queue, "1", "delayed"))  # its retry waits a minute
    assert await queue.redis.exists(queue.keys.deduplication_next("doc-7")) == 1
    await job.remove()
    assert await queue.redis.exists(queue.keys.deduplication_next("doc-7")) == 0
    assert await held_by(queue, "doc-7") is None


async def test_a_kept_edit_whose_id_was_taken_meanwhile_gets_a_new_one(queue, make_worker, clock):
    # minibull's own guard: BullMQ would write the kept add over job "mine" and list it twice.
    gate = Gate()
    make_worker(gate)
    await queue.add("save", {"v": 1}, deduplication=KEEP)
    await wait_for(gate.started.is_set)
    await queue.add("save", {"v": 2}, deduplication=KEEP, job_id="mine")
    await queue.add("other", {"mine": True}, job_id="mine")
    gate.release.set()
    await clock.settle()
    assert gate.ran == [{"v": 1}, {"mine": True}, {"v": 2}]
    assert (await queue.get_job("mine")).data == {"mine": True}
    assert (await queue.get_job("4")).data == {"v": 2}  # the counter: every add took one


async def test_the_kept_edit_keeps_its_delay_and_priority(queue, make_worker, clock):
    gate = Gate()
    make_worker(gate)
    await queue.add("save", {"v": 1}, deduplication=KEEP)
    await wait_for(gate.started.is_set)
    await queue.add("save", {"v": 2}, deduplication=KEEP, delay=30, priority=4)
    await queue.pause()
    gate.release.set()
    await wait_for(lambda: _state_is(queue, "2", "delayed"))
    job = await queue.get_job("2")
    assert (job.delay, job.priority) == (30_000, 4)
    assert await queue.redis.zscore(queue.keys.delayed, "2") // 4096 == clock.now() + 30_000


async def _state_is(queue: minibull.Queue, job_id: str, state: str) -> bool:
    return await queue.get_job_state(job_id) == state


async def test_a_key_whose_job_is_gone_is_taken_by_the_next_add(queue):
    # BullMQ's recoverStaleDeduplicationKey: a key without ttl outlived its job (an outage).
    await queue.redis.set(queue.keys.deduplication("doc-7"), "99")
    job = await queue.add("save", {"v": 1}, deduplication=KEEP)
    assert job.id == "1" and await held_by(queue, "doc-7") == "1"
    assert await events_of(queue, "deduplicated") == []


# -- extend and replace: a debounce --------------------------------------------------------


async def test_extend_restarts_the_ttl_on_each_dropped_add(queue):
    await queue.add("ping", {}, deduplication={"id": "p", "ttl": 60, "extend": True})
    key = queue.keys.deduplication("p")
    await queue.redis.pexpire(key, 500)
    again = await queue.add("ping", {}, deduplication={"id": "p", "ttl": 60, "extend": True})
    assert again.id == "1"
    assert 59_000 < await queue.redis.pttl(key) <= 60_000
    # Without extend the window keeps its end.
    await queue.redis.pexpire(key, 500)
    await queue.add("ping", {}, deduplication={"id": "p", "ttl": 60})
    assert await queue.redis.pttl(key) <= 500


async def test_a_debounce_runs_the_last_add_once(queue, make_worker, clock):
    ran = []
    for n in range(3):
        job = await queue.add("search", {"q": "abc"[: n + 1]}, delay=2, deduplication=DEBOUNCE)
        assert job.id == str(n + 1)
    assert await queue.get_job_counts("delayed") == {"delayed": 1}
    assert await held_by(queue, "search") == "3"
    assert await queue.get_job("1") is None and await queue.get_job("2") is None
    assert [
        (e["event"], e["jobId"], e.get("deduplicatedJobId"))
        for e in await events_of(queue, "removed", "deduplicated")
    ] == [
        ("removed", "1", None),
        ("deduplicated", "2", "1"),
        ("removed", "2", None),
        ("deduplicated", "3", "2"),
    ]
    make_worker(lambda job: ran.append(job.data))
    await clock.advance(2)
    await clock.settle()
    assert ran == [{"q": "abc"}]


async def test_removing_a_debounced_job_frees_the_id_at_once(queue):
    # As BullMQ's removeDeduplicationKeyIfNeededOnRemoval, whatever the ttl: before, the id
    # stayed held by the removed job for its ttl, and the next add returned that gone job.
    job = await queue.add("search", {"q": "a"}, delay=2, deduplication=DEBOUNCE)
    await job.remove()
    assert await held_by(queue, "search") is None
    again = await queue.add("search", {"q": "b"}, delay=2, deduplication=DEBOUNCE)
    assert again.id == "2" and await queue.get_job_counts("delayed") == {"delayed": 1}


async def test_a_ttl_still_outlives_a_finished_job_trimmed_by_keep_counts(
    queue, make_worker, clock
):
    # Only a removal frees a ttl key; a finished job (kept or trimmed) leaves it (BullMQ).
    make_worker(lambda job: None)
    for n in range(2):
        await queue.add(
            "x", {"n": n}, deduplication={"id": f"t{n}", "ttl": 60}, remove_on_complete=1
        )
    await clock.settle()
    assert [await held_by(queue, f"t{n}") for n in range(2)] == ["1", "2"]
    assert [j.id for j in await queue.get_jobs("completed")] == ["2"]


async def test_replace_without_extend_keeps_the_window_end(queue):
    options = {"id": "r", "ttl": 60, "replace": True}
    await queue.add("x", {"n": 1}, delay=5, deduplication=options)
    key = queue.keys.deduplication("r")
    await queue.redis.pexpire(key, 5_000)
    job = await queue.add("x", {"n": 2}, delay=5, deduplication=options)
    assert job.id == "2" and await held_by(queue, "r") == "2"
    assert await queue.redis.pttl(key) <= 5_000


async def test_replace_is_too_late_once_the_job_waits(queue):
    await queue.add("x", {"n": 1}, deduplication={"id": "r", "replace": True})
    before = await snapshot(queue)
    job = await queue.add("x", {"n": 2}, deduplication={"id": "r", "replace": True})
    assert job.id == "1" and job.data == {"n": 1}
    after = await snapshot(queue)
    # As BullMQ: only the id counter moved; no event, no job.
    assert {k for k in after if after[k] != before.get(k)} == {queue.keys.id}


# -- remove_deduplication_key --------------------------------------------------------------


async def test_remove_deduplication_key_frees_the_id(queue):
    await queue.add("x", {}, deduplication={"id": "d"})
    assert await queue.remove_deduplication_key("d") == 1
    assert await queue.remove_deduplication_key("d") == 0
    job = await queue.add("x", {}, deduplication={"id": "d"})
    assert job.id == "2" and await held_by(queue, "d") == "2"


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dedup", "error", "words"),
    [
        ({"id": "d", "extend": 1, "ttl": 5}, TypeError, "deduplication extend must be True or"),
        ({"id": "d", "replace": "yes"}, TypeError, "deduplication replace must be True or"),
        ({"id": "d", "keep_last_if_active": None}, TypeError, "keep_last_if_active must be"),
        ({"id": "d", "extend": True}, ValueError, "deduplication extend needs a ttl"),
        ({"id": "d", "keepLastIfActive": True}, ValueError, "deduplication must be a dict"),
        ({"id": "", "replace": True}, ValueError, "deduplication id"),
        ({"id": "d", "ttl": 0, "extend": True}, ValueError, "deduplication ttl must be > 0"),
    ],
)
async def test_bad_modes_are_refused_and_change_nothing(queue, dedup, error, words):
    await queue.add("x", {}, deduplication={"id": "d"})
    await refused(queue, error, words, lambda: queue.add("x", {}, deduplication=dedup))
    bulk = [{"name": "ok", "data": {}}, {"name": "x", "data": {}, "deduplication": dedup}]
    await refused(queue, error, words, lambda: queue.add_bulk(bulk))


@pytest.mark.parametrize("dedup_id", ["", 7, None])
async def test_remove_deduplication_key_refuses_a_bad_id(queue, dedup_id):
    await queue.add("x", {}, deduplication={"id": "d"})
    await refused(
        queue, (TypeError, ValueError), "dedup_id", lambda: queue.remove_deduplication_key(dedup_id)
    )


# -- the synchronous producer ------------------------------------------------------------------


async def test_a_sync_queue_debounces_as_queue_does(prefix, clock, queue):
    with minibull.SyncQueue("q", prefix=prefix, clock=clock) as sync_queue:
        ids = [sync_queue.add("search", {"q": q}, delay=2, deduplication=DEBOUNCE).id for q in "ab"]
    assert ids == ["1", "2"]
    assert [job.id for job in await queue.get_jobs("delayed")] == ["2"]
    assert await held_by(queue, "search") == "2"
