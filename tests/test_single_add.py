"""One ``Queue.add`` is cheap (issue #13): a path of its own, and no Task per command.

``add`` builds one job and makes one addJob call (no bulk batching); it stores what
``add_bulk`` stores and refuses what it refuses. ``connect()``'s clients bound each write by
the socket timeout with a timer instead of redis-py's ``asyncio.wait_for`` (a Task per
command before Python 3.12): a hung server still raises TimeoutError, on a read and on a
write that cannot finish. The connection tests run on a private redis-server, whatever the
backend (the embedded server has no sockets).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator

import pytest
from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer
from redis.exceptions import DataError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.utils import HIREDIS_AVAILABLE

import minibull
import minibull.connection
from minibull.connection import _OnePassPacking, connect, pack_flat
from minibull.keys import QueueKeys
from minibull.options import PLAIN_OPTS, PLAIN_OPTS_JSON, build_job, build_plain_job
from minibull.scripts import add_job_args
from tests.conftest import START_MS, record_commands
from tests.faultlab import PrivateRedis, private_servers, redis_server_version

pytestmark = pytest.mark.timeout(60)


async def test_add_is_one_addjob_call_with_one_job(queue, monkeypatch):
    await queue.add("warm-up", {})  # loads the script
    calls = record_commands(queue, monkeypatch)
    job = await queue.add("email", {"to": "ada"}, priority=2)
    assert [call[0] for call in calls] == ["EVALSHA"]
    (sent,) = json.loads(calls[0][3 + 8 + 2])  # EVALSHA sha numkeys, 8 keys, ARGV[3]
    assert (sent["name"], sent["data"], sent["priority"]) == ("email", '{"to":"ada"}', 2)
    assert (job.id, job.timestamp, job.priority) == ("2", START_MS, 2)


async def test_add_stores_what_add_bulk_stores(queue):
    options = {"attempts": 3, "backoff": 2.0, "delay": 5, "remove_on_complete": 10}
    one = await queue.add("report", {"n": [1, 2]}, job_id="one", **options)
    (bulk,) = await queue.add_bulk([{"name": "report", "data": {"n": [1, 2]}, **options}])
    stored = [await queue.redis.hgetall(queue.keys.job(job.id)) for job in (one, bulk)]
    assert stored[0] == stored[1] | {"opts": stored[0]["opts"]}
    assert json.loads(stored[0]["opts"]) == json.loads(stored[1]["opts"]) | {"jobId": "one"}
    for job in (one, bulk):
        again = await queue.get_job(job.id)
        for field in ("name", "data", "opts", "timestamp", "delay", "priority"):
            assert getattr(job, field) == getattr(again, field), field
    events = [fields["event"] for _, fields in await queue.redis.xrange(queue.keys.events)]
    assert events == ["added", "delayed"] * 2


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"colour": "red"}, TypeError, "unknown job option"),
        ({"attempts": 0}, ValueError, "attempts"),
        ({"job_id": "wait"}, ValueError, "job_id"),
        ({"delay": -1}, ValueError, "delay"),
    ],
)
async def test_add_refuses_what_add_bulk_refuses_before_writing(queue, options, error, match):
    with pytest.raises(error, match=match):
        await queue.add("job", {}, **options)
    with pytest.raises(error, match=match):
        await queue.add_bulk([{"name": "job", "data": {}, **options}])
    assert [key async for key in queue.redis.scan_iter(match=f"{queue.prefix}:*")] == []


async def test_a_duplicate_add_reads_the_stored_job_back(queue):
    first = await queue.add("welcome", {"v": 1}, job_id="ada")
    again = await queue.add("welcome", {"v": 2}, job_id="ada")
    assert (again.id, again.data, again.timestamp) == ("ada", {"v": 1}, first.timestamp)
    assert again.queue is queue


# -- the socket timeout without a Task ------------------------------------------------------


@pytest.fixture
async def server(tmp_path) -> AsyncIterator[PrivateRedis]:
    """A private redis-server that allows DEBUG SLEEP, killed at the end of the test."""
    try:
        version = redis_server_version()
    except OSError:
        pytest.fail("redis-server is needed (apt-get install -y redis-server)")
    options = ("--enable-debug-command", "local") if version >= (7,) else ()
    async with private_servers(tmp_path) as start:
        yield await start(*options)


async def test_a_command_runs_without_a_task_of_its_own(server, monkeypatch):
    def no_wait_for(awaitable, *args, **kwargs):
        awaitable.close()
        raise AssertionError("a command ran in asyncio.wait_for (a Task per command)")

    client = connect(server.url)
    try:
        monkeypatch.setattr(asyncio, "wait_for", no_wait_for)
        assert await client.ping()
        async with minibull.Queue("q", client) as queue:
            job = await queue.add("email", {"to": "ada"})
            assert (await queue.get_job(job.id)).data == {"to": "ada"}
    finally:
        monkeypatch.undo()
        await client.aclose()


async def sleeping(server: PrivateRedis, seconds: float) -> asyncio.Task[object]:
    """``DEBUG SLEEP seconds`` sent by another client; returns once the server sleeps."""
    admin = server.admin()

    async def sleep() -> object:
        async with admin:
            return await admin.execute_command("DEBUG", "SLEEP", seconds)

    task = asyncio.create_task(sleep())
    await asyncio.sleep(0.2)  # the command is on its way; the server reads nothing meanwhile
    return task


async def test_a_hung_server_times_out_a_read(server, monkeypatch):
    monkeypatch.setattr(minibull.connection, "SOCKET_TIMEOUT", 0.3)
    client = connect(server.url)
    try:
        assert await client.ping()
        slept = await sleeping(server, 3)
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await client.ping()  # three tries (connect() retries twice), each 0.3 s
        assert time.monotonic() - started < 2.5
        await slept
        assert await client.ping()  # a new connection once the server is back
    finally:
        await client.aclose()


async def test_a_hung_server_times_out_a_write_that_cannot_finish(server, monkeypatch):
    monkeypatch.setattr(minibull.connection, "SOCKET_TIMEOUT", 0.3)
    client = connect(server.url)
    try:
        assert await client.ping()
        slept = await sleeping(server, 4)
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            # More than the socket buffers hold: the write waits for a server that
            # reads nothing, until the timer ends it.
            await client.set("big", "x" * (48 * 1024 * 1024))
        assert time.monotonic() - started < 3.5
        await slept
        assert await client.ping()
    finally:
        await client.aclose()


# -- commands packed in one pass (speed only) ------------------------------------------------

PACKED_ARGS = [
    ("EVALSHA", "0" * 40, 2, "bull:q:wait", "bull:q:meta", 1_700_000_000_000, "null"),
    ("SET", "k", "ünïcödé ✓", "PX", 1500),
    ("HSET", "h", "f", b"raw \x00 bytes", "n", -7, "x", 2.5),
    ("GET", ""),
]


@pytest.mark.parametrize("args", PACKED_ARGS)
def test_one_pass_packing_sends_what_redis_py_sends(args):
    encoder = Encoder("utf-8", "strict", True)
    reference = b"".join(PythonRespSerializer(6000, encoder.encode).pack(*args))
    assert pack_flat(args, encoder, 6000) == [reference]


@pytest.mark.parametrize(
    "args",
    [("SCRIPT LOAD", "return 1"), ("SET", "k", "x" * 6001), ("SET", "k", bytearray(b"x"))],
)
def test_one_pass_packing_leaves_split_names_and_big_or_odd_values_to_redis_py(args):
    assert pack_flat(args, Encoder("utf-8", "strict", True), 6000) is None


def test_one_pass_packing_refuses_what_redis_py_refuses():
    with pytest.raises(DataError):
        pack_flat(("SET", "k", True), Encoder("utf-8", "strict", True), 6000)


async def test_clients_pack_in_one_pass_and_redis_reads_it(server):
    # Both clients of connect()/connect_sync() talk to Redis through pack_flat (the sync one
    # when hiredis is absent): values of every kind come back as sent, big ones too.
    values = {"text": "ünïcödé ✓", "int": "-7", "big": "y" * 100_000}
    client = connect(server.url)
    sync_client = minibull.connection.connect_sync(server.url)
    try:
        await client.hset("h", mapping={"text": values["text"], "int": -7, "big": values["big"]})
        assert await client.hgetall("h") == values
        sync_client.hset("s", mapping={"text": values["text"], "int": -7, "big": values["big"]})
        assert sync_client.hgetall("s") == values
        assert issubclass(client.connection_pool.connection_class, _OnePassPacking)
        packer = sync_client.connection_pool.connection_kwargs.get("command_packer")
        assert HIREDIS_AVAILABLE or isinstance(packer, minibull.connection._FlatPacker)
    finally:
        await client.aclose()
        sync_client.close()


# -- a plain add (no options) skips the walk through every option's default (speed only) ----


@pytest.mark.parametrize(
    "data", [{"to": "ada"}, None, [1, 2.5, "ü"], "text", 0, {"deep": [[[{"a": True}]]]}]
)
def test_a_plain_job_is_built_as_build_job_builds_it(data):
    assert build_plain_job("email", data) == build_job("email", data)
    assert json.loads(PLAIN_OPTS_JSON) == PLAIN_OPTS


@pytest.mark.parametrize(
    ("name", "data"),
    [("", {}), (3, {}), ("\ud800", {}), ("n", {"x": float("nan")}), ("n", object())],
)
def test_a_plain_job_refuses_what_build_job_refuses(name, data):
    with pytest.raises((TypeError, ValueError)) as expected:
        build_job(name, data)
    with pytest.raises(type(expected.value), match=re.escape(str(expected.value))):
        build_plain_job(name, data)


async def test_a_plain_add_returns_and_stores_the_default_options(queue):
    job = await queue.add("email", {"to": "ada"})
    job.opts["attempts"] = 5  # the Job's options are its own, not a shared default
    assert PLAIN_OPTS == {"attempts": 1, "delay": 0}
    stored = await queue.get_job(job.id)
    assert stored.opts == PLAIN_OPTS and stored.attempts == 1
    again = await queue.add("email", {"to": "bob"})
    assert again.opts == PLAIN_OPTS and again.opts is not PLAIN_OPTS


@pytest.mark.parametrize(
    "spec",
    [
        build_plain_job("email", {"to": "ada", "quote": 'say "hi" \\ ü ✓'}),
        build_job("report", [1, None, 2.5], job_id="a b", priority=3, lifo=True, delay=2),
        build_job("nightly", None, attempts=3, backoff=2.0, remove_on_complete=10),
        build_job("once", "x", deduplication={"id": "k", "ttl": 5}),
    ],
)
def test_one_job_is_sent_as_the_generic_encoder_writes_it(spec):
    # addJob's ARGV[3] for one job is written field by field (speed only): the same text.
    generic = json.dumps([spec], separators=(",", ":"))
    assert add_job_args(QueueKeys("q", "bull"), 0, [spec])[1][2] == generic
    assert add_job_args(QueueKeys("q", "bull"), 0, [spec, spec])[1][2] == generic[:-1] + (
        "," + generic[1:]
    )
