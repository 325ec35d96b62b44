"""Small gaps of issue 16 (item 6): a worker's Redis client name and ``Queue.get_workers``,
as BullMQ's; the length of the events stream (``set_max_len_events``). ("drained" once
each time the queue runs dry: tests/test_failure_policy.py.)"""

from __future__ import annotations

import base64

import pytest
from redis.exceptions import ResponseError

import minibull
from minibull import worker as worker_module
from minibull.keys import QueueKeys
from tests.conftest import wait_for
from tests.test_input_limits import refused


def test_client_names_are_bullmqs():
    keys = QueueKeys("emails", "bull")
    assert keys.client_name() == "bull:" + base64.b64encode(b"emails").decode()
    assert keys.client_name("box-1") == "bull:ZW1haWxz:w:box-1"


async def test_get_workers_lists_running_workers_and_forgets_closed_ones(queue, make_worker):
    assert await queue.get_workers() == []
    named = make_worker(lambda job: None, worker_name="box-1")
    unnamed = make_worker(lambda job: None)
    await wait_for(lambda: _count(queue, 2))
    workers = await queue.get_workers()
    assert sorted(w["rawname"] for w in workers) == [
        queue.keys.client_name(),
        queue.keys.client_name("box-1"),
    ]
    assert {w["name"] for w in workers} == {"q"}
    assert named.client_name == queue.keys.client_name("box-1")
    await named.close()
    assert [w["rawname"] for w in await queue.get_workers()] == [unnamed.client_name]
    await unnamed.close()
    assert await queue.get_workers() == []


async def _count(queue: minibull.Queue, n: int) -> bool:
    return len(await queue.get_workers()) == n


async def test_get_workers_sees_only_its_own_queue(queue, make_worker, prefix):
    make_worker(lambda job: None, name="other", worker_name="w")
    other = minibull.Queue("other", prefix=prefix)
    try:
        await wait_for(lambda: _count(other, 1))
        assert await queue.get_workers() == []
    finally:
        await other.close()


@pytest.mark.parametrize(
    ("worker_name", "error"),
    [
        ("", ValueError),
        (3, TypeError),
        ("\ud800", ValueError),
        ("box 1", ValueError),
        ("é", ValueError),
    ],
)
async def test_a_bad_worker_name_is_refused(prefix, worker_name, error):
    with pytest.raises(error, match="worker_name"):
        minibull.Worker("q", lambda job: None, prefix=prefix, worker_name=worker_name)


async def test_max_len_events_keeps_the_stream_short(queue):
    await queue.add_bulk([{"name": "a", "data": i} for i in range(600)])
    assert await queue.redis.xlen(queue.keys.events) == 1200  # added + waiting each
    await queue.set_max_len_events(50)
    assert await queue.redis.hget(queue.keys.meta, "opts.maxLenEvents") == "50"
    trimmed = await queue.redis.xlen(queue.keys.events)
    assert 50 <= trimmed <= 250  # "~": Redis trims whole stream nodes (100 entries each)
    await queue.add_bulk([{"name": "b", "data": i} for i in range(600)])
    assert 50 <= await queue.redis.xlen(queue.keys.events) <= 250  # every later XADD trims


@pytest.mark.parametrize(
    ("max_len", "error"), [(0, ValueError), (-5, ValueError), (2.5, TypeError), ("9", TypeError)]
)
async def test_a_bad_max_len_events_writes_nothing(queue, max_len, error):
    await queue.add("a", {})
    await refused(queue, error, "max_len", lambda: queue.set_max_len_events(max_len))


async def test_a_server_that_refuses_client_names_gets_one_warning(
    queue, make_worker, monkeypatch, caplog
):
    class Refusing:
        """A client whose connect fails as a server without CLIENT SETNAME answers."""

        pings = 0

        async def ping(self):
            Refusing.pings += 1
            raise ResponseError("NOPERM this user has no permissions to run 'client|setname'")

        async def aclose(self):
            pass

        @property
        def connection_pool(self):
            return queue.redis.connection_pool.__class__(max_connections=1)

    monkeypatch.setattr(worker_module, "named_client", lambda client, name: Refusing())
    errors = []
    worker = make_worker(lambda job: None, start=False)
    worker.on("error", errors.append)
    worker.start()
    job = await queue.add("a", {})
    await job.wait_until_finished(timeout=5)
    await wait_for(lambda: Refusing.pings == 1)
    assert errors == [] and "refused its client name" in caplog.text
    assert worker._named is None and worker._name_refused
