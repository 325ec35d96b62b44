"""The script lane (speed only, ``minibull/lane.py``): script calls on held connections.

What must stay as without it: one connection per call in flight, given back when the
queue closes; a Redis error reply raised as usual; a broken connection sent again through
the client's retry (and told to ``on_reconnect``); a cancelled call leaves no connection
with a reply still on its way; a hung server times out.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis.asyncio
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

import minibull
from minibull.connection import connect, connect_sync, on_reconnect, redis_url
from minibull.lane import Lane
from tests.faultlab import PrivateRedis, Start, private_servers, redis_server_version

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def server(tmp_path) -> AsyncIterator[PrivateRedis]:
    """A private redis-server (its connections are killed here, it is put to sleep with
    DEBUG SLEEP), killed at the end."""
    try:
        version = redis_server_version()
    except OSError:
        pytest.fail("redis-server is needed (apt-get install -y redis-server)")
    options = ("--enable-debug-command", "local") if version >= (7,) else ()
    start: Start
    async with private_servers(tmp_path) as start:
        yield await start(*options)


def in_use(client: redis.asyncio.Redis) -> int:
    return len(client.connection_pool._in_use_connections)


async def test_script_calls_skip_the_client_and_give_their_connections_back(queue, monkeypatch):
    sent: list[object] = []
    original = queue.redis.execute_command

    async def counting(*args, **kwargs):
        sent.append(args[0])
        return await original(*args, **kwargs)

    await queue.add("warm-up", {})
    monkeypatch.setattr(queue.redis, "execute_command", counting)
    await asyncio.gather(*(queue.add("job", {"i": i}) for i in range(5)))
    assert sent == []  # five EVALSHAs, none through redis-py's execute_command
    assert 1 <= len(queue.scripts.lane._held) <= 5
    assert (await queue.get_job_counts("waiting"))["waiting"] == 6
    await queue.scripts.close()
    assert queue.scripts.lane._held == set()


async def test_a_shared_client_gets_every_connection_back_when_the_queue_closes(prefix):
    client = connect()
    try:
        before = in_use(client)
        async with minibull.Queue("q", client, prefix=prefix) as queue:
            await asyncio.gather(*(queue.add("job", {}) for _ in range(3)))
            assert in_use(client) > before
        assert in_use(client) == before
    finally:
        await client.aclose()


async def test_an_error_reply_is_raised_and_the_connection_kept(queue):
    lane = queue.scripts.lane
    await queue.add("warm-up", {})
    (held,) = lane._held
    with pytest.raises(NoScriptError):
        await lane.execute("EVALSHA", "0" * 40, 0)
    assert lane._held == {held} and lane._idle == [held]
    await queue.redis.script_flush()  # a restarted server forgets scripts: loaded again
    assert (await queue.add("after a flush", {})).id == "2"
    assert lane._held == {held}


async def test_a_killed_connection_is_sent_again_through_the_client_and_told(server):
    client = connect(server.url)
    told: list[Exception] = []
    on_reconnect(client, told.append)
    try:
        async with minibull.Queue("q", client) as queue:
            await queue.add("first", {})
            (first,) = queue.scripts.lane._held
            async with server.admin() as admin:
                assert await admin.client_kill_filter(_type="normal") >= 1
            await asyncio.sleep(0.05)  # the kill reaches our socket
            job = await queue.add("second", {})
            assert job.id == "2"
            assert told, "the retry was not told"
            assert first not in queue.scripts.lane._held  # given back to the pool
            assert (await queue.get_job_counts("waiting"))["waiting"] == 2
    finally:
        await client.aclose()


async def test_a_cancelled_call_gives_its_connection_back_disconnected(server):
    client = connect(server.url)
    try:
        lane = Lane(client)
        before = in_use(client)
        call = asyncio.create_task(lane.execute("BLPOP", "nothing", 5))
        await asyncio.sleep(0.2)  # sent, waiting for the reply
        (held,) = lane._held
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert lane._held == set() and lane._idle == []
        assert not held.is_connected  # its late reply cannot reach the next call
        assert in_use(client) == before
        assert await lane.execute("PING") in ("PONG", True)
    finally:
        await client.aclose()


async def test_a_single_connection_client_is_left_to_redis_py():
    client = connect()
    single = redis.asyncio.Redis(
        connection_pool=client.connection_pool, single_connection_client=True
    )
    try:
        lane = Lane(single)
        assert not lane.usable
        assert await lane.execute("PING") in ("PONG", True)
        assert lane._held == set()
        assert Lane(client).usable
    finally:
        await single.aclose()
        await client.aclose()


# -- the synchronous lane (SyncQueue) ---------------------------------------------------


def test_sync_script_calls_skip_the_client_and_give_their_connections_back(prefix):
    client = connect_sync()
    try:
        before = len(client.connection_pool._in_use_connections)
        with minibull.SyncQueue("q", client, prefix=prefix) as queue:
            queue.add("warm-up", {})
            sent: list[object] = []
            original = client.execute_command
            client.execute_command = lambda *args, **kw: sent.append(args) or original(*args, **kw)
            assert queue.add("job", {}).id == "2"
            assert sent == []  # the EVALSHA went through the lane
            assert len(queue.scripts.lane._held) == 1
            del client.execute_command
        assert len(client.connection_pool._in_use_connections) == before
    finally:
        client.close()


def test_sync_calls_from_many_threads_never_share_a_connection(prefix):
    with minibull.SyncQueue("q", prefix=prefix) as queue:
        queue.add("warm-up", {})
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda n: queue.add("job", {"n": n}).id, range(200)))
        assert sorted(map(int, ids)) == list(range(2, 202))  # each reply went to its caller
        assert 1 <= len(queue.scripts.lane._held) <= 8
        assert queue.get_job_counts("waiting") == {"waiting": 201}


def test_sync_error_reply_keeps_the_connection_and_a_flush_loads_the_script_again(prefix):
    with minibull.SyncQueue("q", prefix=prefix) as queue:
        queue.add("warm-up", {})
        (held,) = queue.scripts.lane._held
        with pytest.raises(NoScriptError):
            queue.scripts.lane.execute("EVALSHA", "0" * 40, 0)
        queue.redis.script_flush()
        assert queue.add("after a flush", {}).id == "2"
        assert queue.scripts.lane._held == {held}


async def test_sync_killed_connection_is_sent_again_through_the_client(server):
    with minibull.SyncQueue("q", server.url) as queue:
        queue.add("first", {})
        (first,) = queue.scripts.lane._held
        async with server.admin() as admin:
            assert await admin.client_kill_filter(_type="normal") >= 1
        await asyncio.sleep(0.05)
        assert queue.add("second", {}).id == "2"
        assert first not in queue.scripts.lane._held
        assert queue.get_job_counts("waiting") == {"waiting": 2}


async def test_a_hung_server_times_out_an_add_through_the_lane(server, monkeypatch):
    monkeypatch.setattr(minibull.connection, "SOCKET_TIMEOUT", 0.3)
    told: list[Exception] = []
    async with minibull.Queue("q", server.url) as queue:
        on_reconnect(queue.redis, told.append)
        await queue.add("first", {})
        admin = server.admin()
        slept = asyncio.create_task(admin.execute_command("DEBUG", "SLEEP", 3))
        await asyncio.sleep(0.2)  # the server sleeps and reads nothing
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await queue.add("second", {})  # the lane's try, then the client's three
        assert time.monotonic() - started < 2.5
        assert told and isinstance(told[0], RedisTimeoutError)
        await slept
        await admin.aclose()
        assert (await queue.add("third", {})).id in ("2", "3")  # "second" may have run


def test_a_forked_child_never_uses_its_parents_connections(prefix):
    """A WSGI server that forks its workers after the app made a SyncQueue (gunicorn
    --preload): the child's adds go on connections of its own, and the parent's still work."""
    with minibull.SyncQueue("q", prefix=prefix) as queue:
        queue.add("parent", {})
        (parents,) = queue.scripts.lane._held
        pid = os.fork()
        if pid == 0:  # the child: exit status 0 only if all is well
            ok = False
            try:
                job = queue.add("child", {})
                ok = job.id == "2" and parents not in queue.scripts.lane._held
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # (the embedded server is in memory: the child added to its own copy of it)
        assert queue.add("parent again", {}).id == ("3" if redis_url() else "2")
        assert queue.scripts.lane._held == {parents}


async def test_a_bounded_pool_keeps_half_its_connections_for_the_client(server):
    """Connections the lane keeps count against ``max_connections`` while idle: it keeps at
    most half of them, and further calls go through the client, as without the lane."""
    bounded = redis.asyncio.Redis.from_url(server.url, max_connections=6, decode_responses=True)
    try:
        async with minibull.Queue("q", bounded) as queue:
            await asyncio.gather(*(queue.add("job", {}) for _ in range(6)))
            assert len(queue.scripts.lane._held) == 3
            assert await bounded.ping()  # the client still finds a connection
            assert (await queue.get_job_counts("waiting"))["waiting"] == 6
        assert in_use(bounded) == 0
    finally:
        await bounded.aclose()
