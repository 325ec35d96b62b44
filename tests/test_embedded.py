"""The embedded server's script runner: fakeredis's answers, with scripts compiled once.

Each script below runs on a stock fakeredis server (the reference) and on a
ScriptCachingSocket server; results and errors must be the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.exceptions import NoScriptError, ResponseError

from minibull import Queue, embedded
from minibull.connection import connect, connect_sync, resolve
from minibull.scripts import Take

SCRIPTS = [
    ("return 1", [], []),
    ("return {KEYS[1], ARGV[1], #KEYS, #ARGV}", ["k"], ["a", "b"]),
    ("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])", ["k"], ["v"]),
    ("return redis.call('HGETALL', KEYS[1])", ["h"], []),
    (
        "redis.call('HSET', KEYS[1], 'a', 1, 'b', 2.5) return redis.call('HGETALL', KEYS[1])",
        ["h"],
        [],
    ),
    ("return redis.call('INCR', KEYS[1])", ["n"], []),
    ("return redis.pcall('LPUSH', KEYS[1])", ["l"], []),
    ("return redis.pcall('INCR', KEYS[1])", ["s"], []),
    ("return {ok = 'fine'}", [], []),
    ("return redis.error_reply('my error')", [], []),
    ("return cjson.encode({a = ARGV[1]})", [], ["x"]),
    ("return cjson.decode(ARGV[1])[2]", [], ["[1, 2, 3]"]),
    ("return 3.7", [], []),
    ("return {1, 2, nil, 4}", [], []),
    ("return false", [], []),
    ("return redis.call('NOSUCHCOMMAND')", [], []),
    ("return redis.call('GET')", [], []),
    ("return redis.call('GET', {})", [], []),
    ("error('boom')", [], []),
    ("local x = nil; return x.field", [], []),
    ("leaked = 1 return 1", [], []),
    ("return leaked", [], []),
    ("return redis.call('SET', KEYS[1], 'v', 'PX', 'notanumber')", ["k"], []),
    ("return (", [], []),
]


async def outcome(client: fakeredis.FakeAsyncRedis, script: str, keys: list, args: list):
    try:
        return ("ok", await client.eval(script, len(keys), *keys, *args))
    except ResponseError as exc:
        return ("error", str(exc))


def test_fast_scripts_are_on_with_this_fakeredis() -> None:
    # If a fakeredis upgrade turns this off, learners lose the speed: notice it here.
    assert embedded.fast_scripts_supported


async def test_same_answers_as_stock_fakeredis() -> None:
    stock = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    server = fakeredis.FakeServer()
    fast = embedded.embedded_client(server)
    await stock.set("s", "text")
    await fast.set("s", "text")
    try:
        for script, keys, args in SCRIPTS:
            for _ in range(2):  # compiled on the first run, reused on the second
                expected = await outcome(stock, script, keys, args)
                assert await outcome(fast, script, keys, args) == expected, script
        keys = sorted(await fast.keys("*"))
        assert keys and keys == sorted(await stock.keys("*"))
        compiled = server._minibull_compiled  # type: ignore[attr-defined]
        assert len(compiled) == len({s for s, _k, _a in SCRIPTS if s != "return ("})
    finally:
        await stock.aclose()
        await fast.aclose()


async def test_evalsha_runs_the_cached_script_and_flush_forgets_it() -> None:
    client = embedded.embedded_client(fakeredis.FakeServer())
    try:
        sha = await client.script_load("return ARGV[1] .. '!'")
        assert await client.evalsha(sha, 0, "hi") == "hi!"
        assert await client.evalsha(sha, 0, "again") == "again!"
        await client.script_flush()
        with pytest.raises(NoScriptError):
            await client.evalsha(sha, 0, "gone")
    finally:
        await client.aclose()


async def test_the_embedded_default_uses_the_fast_runner(monkeypatch) -> None:
    monkeypatch.delenv("MINIBULL_REDIS_URL", raising=False)  # the learner's default
    client = connect()
    try:
        assert isinstance(client, fakeredis.FakeAsyncRedis)
        pool_class = client.connection_pool.connection_class
        assert issubclass(pool_class, embedded.ScriptCachingConnection)
        assert await client.eval("return 7", 0) == 7
    finally:
        await client.aclose()


def sync_outcome(client: fakeredis.FakeRedis, script: str, keys: list, args: list):
    try:
        return ("ok", client.eval(script, len(keys), *keys, *args))
    except ResponseError as exc:
        return ("error", str(exc))


def test_the_sync_client_gives_the_same_answers_as_stock_fakeredis() -> None:
    stock = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    server = fakeredis.FakeServer()
    fast = embedded.embedded_sync_client(server)
    stock.set("s", "text")
    fast.set("s", "text")
    try:
        for script, keys, args in SCRIPTS:
            for _ in range(2):  # compiled on the first run, reused on the second
                expected = sync_outcome(stock, script, keys, args)
                assert sync_outcome(fast, script, keys, args) == expected, script
        assert sorted(fast.keys("*")) == sorted(stock.keys("*"))
        compiled = server._minibull_compiled  # type: ignore[attr-defined]
        assert len(compiled) == len({s for s, _k, _a in SCRIPTS if s != "return ("})
    finally:
        stock.close()
        fast.close()


async def test_the_embedded_sync_default_shares_the_compiled_scripts(monkeypatch) -> None:
    # SyncQueue's client on the embedded default: the fast runner too, and one cache of
    # compiled scripts with the async clients of the same server.
    monkeypatch.delenv("MINIBULL_REDIS_URL", raising=False)
    server = fakeredis.FakeServer()
    sync_client = embedded.embedded_sync_client(server)
    async_client = embedded.embedded_client(server)
    try:
        default = connect_sync()
        assert issubclass(
            default.connection_pool.connection_class, embedded.SyncScriptCachingConnection
        )
        default.close()
        sha = sync_client.script_load("return ARGV[1] .. '!'")
        assert sync_client.evalsha(sha, 0, "sync") == "sync!"
        assert await async_client.evalsha(sha, 0, "async") == "async!"
        assert list(server._minibull_compiled) == [sha.encode()]  # type: ignore[attr-defined]
    finally:
        sync_client.close()
        await async_client.aclose()


texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.dictionaries(texts, texts, max_size=6), ats=st.integers(0, 5))
async def test_a_taken_job_comes_back_with_every_field_of_its_hash(fields, ats) -> None:
    # takeNextJob returns the hash as a JSON array built in Lua (cjson), with processedOn,
    # pb and ats set: on the backend under test, any field names and values read back.
    queue = Queue("fields", prefix=f"test-fields-{uuid.uuid4().hex[:8]}")
    try:
        job_key = queue.keys.job("7")
        stored = {**fields, "ats": str(ats)}
        await queue.redis.hset(job_key, mapping=stored)
        await queue.redis.lpush(queue.keys.wait, "7")
        taken = await queue.scripts.move_to_active(1000, Take("token", 30_000, "w1"))
        assert taken.job_id == "7"
        assert taken.fields == {**stored, "processedOn": "1000", "pb": "w1", "ats": str(ats + 1)}
        assert await queue.redis.hgetall(job_key) == taken.fields
    finally:
        await queue.obliterate(force=True)
        await queue.close()


async def test_a_job_id_without_a_hash_is_skipped(queue) -> None:
    # A hand-made id in "wait" with no hash behind it is dropped (takeNextJob's guard,
    # since 6e95a38); the next job is taken instead, with its fields.
    await queue.redis.lpush(queue.keys.wait, "ghost")
    job = await queue.add("real", {})
    taken = await queue.scripts.move_to_active(1000, Take("token", 30_000, "w1"))
    assert taken.job_id == job.id
    assert await queue.redis.lrange(queue.keys.active, 0, -1) == [job.id]


async def test_one_connection_is_one_client_of_the_server() -> None:
    server = fakeredis.FakeServer()
    client = embedded.embedded_client(server)
    try:
        await client.ping()
        assert len(server.sockets) == 1  # no socket made only to be replaced
        assert len(await client.client_list()) == 1
    finally:
        await client.aclose()


@pytest.mark.parametrize("pool_class", [ConnectionPool, BlockingConnectionPool])
async def test_a_client_that_does_not_decode_is_wrapped_with_the_same_pool_limits(pool_class):
    # Built only, never connected: the limits are what matters.
    extra = {"timeout": 7} if pool_class is BlockingConnectionPool else {}
    pool = pool_class.from_url("redis://127.0.0.1:6379/0", max_connections=3, **extra)
    client = Redis(connection_pool=pool)
    wrapped, owned = resolve(client)
    try:
        assert owned and wrapped is not client
        assert type(wrapped.connection_pool) is pool_class
        assert wrapped.connection_pool.max_connections == 3
        assert getattr(wrapped.connection_pool, "timeout", None) == extra.get("timeout")
        assert wrapped.get_encoder().decode_responses
    finally:
        await wrapped.aclose()
        await client.aclose()


OLD_FAKEREDIS = """
import asyncio
import fakeredis._socket
# As on fakeredis 2.26-2.40, which has no fakeredis._socket.AsyncFakeSocket.
del fakeredis._socket.AsyncFakeSocket

import minibull
from minibull import embedded

async def main():
    assert not embedded.fast_scripts_supported
    async with minibull.Queue("q") as queue:
        async with minibull.Worker("q", lambda job: job.data * 2):
            job = await queue.add("double", 21)
            assert await job.wait_until_finished(timeout=10) == 42
        assert await queue.redis.eval("return type(os)", 0) == "nil"
        escape = "return tostring(redis.call.__globals__)"
        try:
            await queue.redis.eval(escape, 0)
        except Exception as exc:
            assert "cannot reach Python attributes" in str(exc), exc
        else:
            raise AssertionError("Python attributes are reachable")
    print("slow path, sandboxed")

asyncio.run(main())
"""


def test_minibull_imports_and_works_without_the_fast_paths_fakeredis_internals():
    env = {k: v for k, v in os.environ.items() if k != "MINIBULL_REDIS_URL"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    result = subprocess.run(
        [sys.executable, "-c", OLD_FAKEREDIS], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "slow path, sandboxed"
