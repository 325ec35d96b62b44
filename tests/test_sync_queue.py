"""SyncQueue: a producer without an event loop (issue #13), checked against Queue.

The async ``Queue`` is the reference: the same calls made through both, on two queues of
one prefix, must leave the same data in Redis (hashes, lists, sorted sets with their
scores, the events) and answer the same. Runs on both backends; on the embedded one a
SyncQueue and the async Queues and Workers of the process share one server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio

import minibull
import minibull.queue
from minibull.connection import embedded_server, redis_url
from tests.conftest import record_commands, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sync_queue(prefix: str, clock: minibull.VirtualClock) -> Iterator[minibull.SyncQueue]:
    """SyncQueue ``q`` (the queue of the ``queue`` fixture and of ``make_worker``)."""
    with minibull.SyncQueue("q", prefix=prefix, clock=clock) as q:
        yield q


async def queue_data(queue: minibull.Queue) -> dict[str, Any]:
    """Every key of ``queue`` by its suffix, read by type; events without their stream ids."""
    found: dict[str, Any] = {}
    async for key in queue.redis.scan_iter(match=queue.keys.key("*")):
        suffix = key.removeprefix(queue.keys.job_prefix)
        kind = await queue.redis.type(key)
        if kind == "hash":
            found[suffix] = await queue.redis.hgetall(key)
        elif kind == "list":
            found[suffix] = await queue.redis.lrange(key, 0, -1)
        elif kind == "zset":
            found[suffix] = await queue.redis.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            found[suffix] = [fields for _, fields in await queue.redis.xrange(key)]
        else:
            found[suffix] = await queue.redis.get(key)
    return found


def job_fields(job: minibull.Job | None) -> dict[str, Any] | None:
    """A Job's fields but its queue (Jobs compare by identity)."""
    if job is None:
        return None
    return {name: getattr(job, name) for name in job.__dataclass_fields__ if name != "queue"}


#: One of every kind of add: plain, options, priority, lifo, delayed, custom id, a
#: duplicate id, a deduplication id twice.
ADDS: list[tuple[str, Any, dict[str, Any]]] = [
    ("plain", {"to": "ada"}, {}),
    ("tries", [1, 2], {"attempts": 3, "backoff": {"type": "exponential", "delay": 1}}),
    ("urgent", None, {"priority": 1}),
    ("later", "x", {"priority": 5}),
    ("last", 7, {"lifo": True}),
    ("delayed", {}, {"delay": 90, "remove_on_complete": True, "remove_on_fail": 3}),
    ("mine", {"v": 1}, {"job_id": "mine"}),
    ("mine", {"v": 2}, {"job_id": "mine"}),
    ("once", 1, {"deduplication": {"id": "d", "ttl": 60}}),
    ("once", 2, {"deduplication": {"id": "d", "ttl": 60}}),
]


async def test_the_same_adds_leave_the_same_data_and_answers_as_queue(prefix, clock, sync_queue):
    async with minibull.Queue("a", prefix=prefix, clock=clock) as reference:
        with minibull.SyncQueue("a2", prefix=prefix, clock=clock) as checked:
            for name, data, options in ADDS:
                expected = await reference.add(name, data, **options)
                assert job_fields(checked.add(name, data, **options)) == job_fields(expected)
            bulk = [{"name": name, "data": data, **options} for name, data, options in ADDS]
            expected_bulk = await reference.add_bulk(bulk)
            assert list(map(job_fields, checked.add_bulk(bulk))) == list(
                map(job_fields, expected_bulk)
            )
            for job_id in ("1", "2", "mine", "12", "nope", "meta", "wait"):
                assert job_fields(checked.get_job(job_id)) == job_fields(
                    await reference.get_job(job_id)
                ), job_id
            assert checked.get_job_counts() == await reference.get_job_counts()
            counted = ("delayed", "prioritized")
            assert checked.get_job_counts(*counted) == await reference.get_job_counts(*counted)
            synced = minibull.Queue("a2", prefix=prefix, clock=clock)
            try:
                assert await queue_data(synced) == await queue_data(reference)
            finally:
                await synced.close()


async def test_an_async_worker_runs_what_a_sync_queue_added(sync_queue, make_worker):
    ran: list[tuple[str, Any]] = []
    make_worker(lambda job: ran.append((job.name, job.data)))
    sync_queue.add("first", {"n": 1})
    sync_queue.add_bulk([{"name": "second", "data": 2}, {"name": "third", "data": [3]}])
    await wait_for(lambda: sync_queue.get_job_counts("completed") == {"completed": 3})
    assert sorted(ran) == [("first", {"n": 1}), ("second", 2), ("third", [3])]
    assert sync_queue.get_job_counts("waiting", "active") == {"waiting": 0, "active": 0}


async def test_a_job_added_while_a_worker_waits_wakes_it(sync_queue, make_worker):
    ran: list[str] = []
    worker = make_worker(lambda job: ran.append(job.id), drain_delay=5)
    await wait_for(lambda: worker.waiting == "work")  # blocked on the marker
    job = sync_queue.add("wake", {})
    await wait_for(lambda: ran == [job.id], timeout=3)  # long before the 5 s drain delay


BAD_ADDS = [
    ({"colour": "red"}, TypeError, "unknown job option"),
    ({"attempts": 0}, ValueError, "attempts"),
    ({"priority": -1}, ValueError, "priority"),
    ({"job_id": "42"}, ValueError, "job_id"),
    ({"job_id": "meta"}, ValueError, "job_id"),
    ({"delay": float("nan")}, ValueError, "delay"),
    ({"deduplication": {"ttl": 1}}, ValueError, "deduplication"),
    ({"size_limit": 2}, ValueError, "size_limit"),
    ({"timeout": -1}, ValueError, "timeout"),
]


@pytest.mark.parametrize(("options", "error", "match"), BAD_ADDS)
async def test_bad_input_raises_before_anything_is_written(
    sync_queue, queue, options, error, match
):
    with pytest.raises(error, match=match):
        sync_queue.add("job", {"x": 1}, **options)
    good = {"name": "fine", "data": 1}
    with pytest.raises(error, match=match):
        sync_queue.add_bulk([good, {"name": "job", "data": {"x": 1}, **options}, good])
    assert [key async for key in queue.redis.scan_iter(match=f"{queue.prefix}:*")] == []


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda q: q.add("job", {1j}), TypeError, "data must be JSON"),
        (lambda q: q.add("", {}), ValueError, "name must not be empty"),
        (lambda q: q.add("job", {}, repeat={"every": 5}), TypeError, "repeat"),
        (lambda q: q.add_bulk({"name": "job"}), TypeError, "jobs must be a list"),
        (lambda q: q.add_bulk([{"data": 1}]), TypeError, r"jobs\[0\]"),
        (lambda q: q.get_job_counts("sleeping"), ValueError, "unknown state"),
    ],
)
async def test_other_bad_calls_name_the_argument(sync_queue, queue, call, error, match):
    with pytest.raises(error, match=match):
        call(sync_queue)
    assert [key async for key in queue.redis.scan_iter(match=f"{queue.prefix}:*")] == []


def test_bad_queue_arguments_are_refused():
    with pytest.raises(ValueError, match="queue name must not contain ':'"):
        minibull.SyncQueue("a:b")
    with pytest.raises(TypeError, match="redis.Redis"):
        minibull.SyncQueue("q", redis.asyncio.Redis())  # an async client, by mistake


async def test_add_bulk_goes_in_batches_each_one_call(sync_queue, monkeypatch):
    monkeypatch.setattr(minibull.queue, "BULK_BATCH_JOBS", 2)
    sync_queue.add("warm-up", None)  # loads the script
    sent = record_commands(sync_queue, monkeypatch)
    jobs = sync_queue.add_bulk([{"name": f"j{n}", "data": n} for n in range(5)])
    assert [args[0] for args in sent] == ["EVALSHA"] * 3
    assert [job.id for job in jobs] == ["2", "3", "4", "5", "6"]
    assert sync_queue.get_job_counts("waiting") == {"waiting": 6}
    assert sync_queue.add_bulk([]) == []


async def test_duplicates_return_the_stored_job(sync_queue, queue):
    first = sync_queue.add("welcome", {"v": 1}, job_id="ada")
    again = sync_queue.add("welcome", {"v": 2}, job_id="ada")
    assert (again.id, again.data, again.timestamp) == ("ada", {"v": 1}, first.timestamp)
    kept = sync_queue.add("d", 1, deduplication={"id": "x"})
    assert sync_queue.add("d", 2, deduplication={"id": "x"}).id == kept.id
    assert sync_queue.get_job_counts("waiting") == {"waiting": 2}
    events = [fields["event"] for _, fields in await queue.redis.xrange(queue.keys.events)]
    assert events == ["added", "waiting", "duplicated", "added", "waiting", "deduplicated"]


async def test_delayed_and_prioritized_jobs_run_in_order(sync_queue, make_worker, clock):
    ran: list[str] = []
    sync_queue.add("later", None, delay=60)
    sync_queue.add_bulk(
        [
            {"name": "low", "data": None, "priority": 9},
            {"name": "high", "data": None, "priority": 1},
            {"name": "plain", "data": None},
        ]
    )
    assert sync_queue.get_job_counts("delayed", "prioritized", "waiting") == {
        "delayed": 1,
        "prioritized": 2,
        "waiting": 1,
    }
    make_worker(lambda job: ran.append(job.name), concurrency=1)
    await wait_for(lambda: len(ran) == 3)
    assert ran == ["plain", "high", "low"]  # no priority first, as BullMQ
    await clock.advance(60)
    await wait_for(lambda: len(ran) == 4)
    assert ran[-1] == "later"


def test_no_event_loop_and_no_thread(prefix):
    """Called from plain synchronous code: nothing runs in the background."""
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    threads = threading.active_count()
    with minibull.SyncQueue("q", prefix=prefix) as sync_queue:
        job = sync_queue.add("email", {"to": "ada"})
        assert sync_queue.get_job(job.id).data == {"to": "ada"}
        assert job.queue is None  # a Job from a SyncQueue is data
    assert threading.active_count() == threads


async def test_a_client_that_does_not_decode_is_wrapped(prefix):
    url = redis_url()
    raw = redis.Redis.from_url(url) if url else fakeredis.FakeRedis(server=embedded_server())
    try:
        with minibull.SyncQueue("q", raw, prefix=prefix) as sync_queue:
            assert sync_queue.redis is not raw
            job = sync_queue.add("email", {"to": "ada"})
            assert sync_queue.get_job(job.id).name == "email"
        assert raw.ping()  # the caller's client is theirs to close
    finally:
        raw.close()
