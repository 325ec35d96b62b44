"""Payloads are data, never code; credentials stay out of sight; sizes are bounded."""

from __future__ import annotations

import base64
import contextlib
import os
import pickle
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

import minibull
from minibull import embedded
from minibull.cli import redact
from minibull.embedded import ScriptCachingConnection
from minibull.processes import SharedServer
from tests.conftest import free_port
from tests.test_cli import cli


class Boom:
    def __reduce__(self):
        return (exec, ("import sys; sys.modules['minibull'].HACKED = True",))


async def test_a_pickle_in_a_job_hash_is_read_as_text_never_run(queue, make_worker):
    job = await queue.add("job", {"ok": 1})
    payload = pickle.dumps(Boom())
    await queue.redis.hset(queue.keys.job(job.id), "data", base64.b64encode(payload).decode())
    await queue.redis.hset(queue.keys.job(job.id), "returnvalue", payload.decode("latin-1"))
    seen = []
    make_worker(lambda job: seen.append(job.data) or "done")
    assert await job.wait_until_finished(timeout=5) == "done"
    assert seen == [base64.b64encode(payload).decode()]  # the raw text, as data
    assert not hasattr(minibull, "HACKED")


async def test_a_corrupted_job_hash_fails_the_job_with_a_reason(queue, make_worker):
    job = await queue.add("job", {})
    await queue.redis.hset(queue.keys.job(job.id), "timestamp", "not-a-number")
    ran = []
    make_worker(lambda job: ran.append(job.id))
    with pytest.raises(minibull.JobFailedError, match="cannot be read"):
        await job.wait_until_finished(timeout=5)
    assert ran == []


async def test_size_limit(queue, prefix):
    with pytest.raises(ValueError, match="over size_limit"):
        await queue.add("big", {"blob": "x" * 2000}, size_limit=1000)
    assert await queue.redis.keys(f"{prefix}:*") == []
    job = await queue.add("small", {"blob": "x" * 10}, size_limit=1000)
    assert job.opts["sizeLimit"] == 1000
    with pytest.raises(TypeError, match="size_limit"):
        await queue.add("small", {}, size_limit="1kB")


def wait_for_port(port: int, seconds: float = 10) -> None:
    """Until something listens on loopback ``port`` (a redis-server starting)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            threading.Event().wait(0.02)


@pytest.fixture
def protected_redis():
    """A private redis-server with a password for the default user and an ACL user."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed (apt-get install -y redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            "s3cret-default",
            "--user",
            "worker",
            "on",
            ">s3cret-acl",
            "~*",
            "&*",
            "+@all",
        ],
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(port)
    yield port
    process.kill()
    process.wait()


@pytest.mark.parametrize("userinfo", [":s3cret-default", "worker:s3cret-acl"])
async def test_password_and_acl_user_urls_work_and_stay_hidden(protected_redis, userinfo, caplog):
    url = f"redis://{userinfo}@127.0.0.1:{protected_redis}/0"
    async with minibull.Queue("q", url) as queue:
        worker = minibull.Worker("q", lambda job: job.data + 1, url)
        async with worker:
            job = await queue.add("inc", 41)
            assert await job.wait_until_finished(timeout=10) == 42
        shown = repr(queue) + repr(worker) + repr(job) + caplog.text + redact(url)
        assert "s3cret" not in shown
    with pytest.raises(Exception) as wrong:
        async with minibull.Queue("q", f"redis://:wrong@127.0.0.1:{protected_redis}/0") as q:
            await q.add("inc", 1)
    assert "wrong" not in str(wrong.value)


async def test_hostile_names_and_ids_are_just_data(queue, make_worker):
    names = ["'; DROP TABLE jobs; --", "emoji 🐂", "new\nline", "x" * 1000, "{bull}:*"]
    make_worker(lambda job: job.name)
    jobs = [await queue.add(name, {"name": name}) for name in names]
    jobs.append(await queue.add("id", {}, job_id="weird id with spaces {} *"))
    results = [await job.wait_until_finished(timeout=5) for job in jobs]
    assert results == [*names, "id"]


def nested(inner: st.SearchStrategy) -> st.SearchStrategy:
    """Lists and dicts of ``inner`` (a def, not a lambda: hypothesis reads its source)."""
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(max_size=20),
    nested,
    max_leaves=20,
)
options = st.fixed_dictionaries(
    {},
    optional={
        "attempts": st.one_of(st.integers(-2, 5), st.floats(), st.text(max_size=3)),
        "delay": st.one_of(st.integers(-5, 5), st.floats(allow_nan=True), st.none()),
        "priority": st.one_of(st.integers(-1, 3_000_000), st.text(max_size=2)),
        "job_id": st.one_of(st.text(max_size=6), st.integers()),
        "backoff": st.one_of(st.integers(-1, 3), st.text(max_size=5), values),
        "remove_on_complete": values,
        "lifo": values,
    },
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples in every CI run
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    batch=st.lists(st.tuples(st.one_of(st.text(max_size=10), values), values, options), max_size=6)
)
async def test_random_input_gives_clear_errors_or_jobs_that_run(queue, batch):
    added = []
    for name, data, opts in batch:
        try:
            added.append(await queue.add(name, data, **opts))
        except (ValueError, TypeError):
            continue
    ids = {job.id for job in added}
    async with minibull.Worker("q", lambda job: job.data, prefix=queue.prefix, clock=queue.clock):
        await queue.clock.advance(max([10] + [job.delay / 1000 + 1 for job in added]))
        for job in added:
            if job.opts.get("attempts", 1) >= 1:
                try:
                    await job.wait_until_finished(timeout=5)
                except minibull.JobFailedError:
                    pass
    states = {job_id: [] for job_id in ids}
    for state in minibull.STATES:
        for job in await queue.get_jobs(state):
            states.setdefault(job.id, []).append(state)
    assert all(len(found) == 1 for found in states.values()), states
    await queue.obliterate(force=True)


@pytest.fixture
def tls_redis(tmp_path):
    """A private redis-server that speaks only TLS (self-signed certificate) and wants a
    password; yields its port and the certificate's path."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificate")
    cert, key = tmp_path / "redis.crt", tmp_path / "redis.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server", "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
            "--save", "", "--appendonly", "no", "--requirepass", "s3cret-tls",
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port)
    yield port, cert
    process.kill()
    process.wait()


async def test_a_rediss_url_works_verified_and_the_password_stays_hidden(tls_redis, caplog):
    port, cert = tls_redis
    url = f"rediss://:s3cret-tls@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    async with minibull.Queue("q", url) as queue:
        worker = minibull.Worker("q", lambda job: job.data * 2, url)
        async with worker:
            job = await queue.add("double", 21)
            assert await job.wait_until_finished(timeout=10) == 42
        assert issubclass(queue.redis.connection_pool.connection_class, SSLConnection)
        shown = repr(queue) + repr(worker) + repr(job) + caplog.text + redact(url)
        assert "s3cret" not in shown
    # The certificate is checked: without the CA that signed it, no connection.
    with pytest.raises(RedisConnectionError):  # redis-py < 5.1 does not say why
        async with minibull.Queue("q", f"rediss://:s3cret-tls@127.0.0.1:{port}/0") as q:
            await q.add("double", 1)
    # And the server speaks nothing but TLS.
    with pytest.raises(Exception) as plain:
        async with minibull.Queue("q", f"redis://:s3cret-tls@127.0.0.1:{port}/0") as q:
            await q.add("double", 1)
    assert "s3cret" not in str(plain.value)


# -- the Lua sandbox of the embedded and shared fakeredis servers (S1) -------------------

LUA_PROBES = [f"return type({name})" for name in embedded.UNSAFE_LUA_GLOBALS]


async def assert_lua_is_sandboxed(client) -> None:
    """No unsafe global, no Python attribute, no metatable; the scripts' own tools work."""
    for probe in LUA_PROBES:
        assert await client.eval(probe, 0) == "nil", probe
    for escape in ("return tostring(redis.call.__globals__)", "return cjson.null.__class__"):
        with pytest.raises(ResponseError, match="cannot reach Python attributes"):
            await client.eval(escape, 0)
    assert await client.eval("return tostring(getmetatable(redis.call))", 0) == "false"
    script = (
        "redis.call('SET', KEYS[1], cjson.encode({n = tonumber(ARGV[1])})) "
        "local ok = redis.pcall('INCR', KEYS[1]) "
        "return {cjson.decode(redis.call('GET', KEYS[1])).n, tostring(ok.err ~= nil), "
        "string.format('%03d', 7), table.concat({'a', 'b'}), math.max(1, 2)}"
    )
    key = f"test-sandbox-{uuid.uuid4().hex}"
    try:
        assert await client.eval(script, 1, key, 41) == [41, "true", "007", "ab", 2]
    finally:
        await client.delete(key)


async def test_the_embedded_servers_lua_has_no_python_os_or_io(monkeypatch):
    monkeypatch.setattr(embedded, "_server", None)  # a fresh embedded server
    client = embedded.embedded_client()
    try:
        await assert_lua_is_sandboxed(client)
    finally:
        await client.aclose()


async def test_the_sandbox_holds_without_the_fast_script_runner(monkeypatch):
    # The plain fakeredis connection (what a fakeredis with other internals gets).
    monkeypatch.setattr(embedded, "_server", None)
    monkeypatch.setattr(embedded, "fast_scripts_supported", False)
    client = embedded.embedded_client()
    try:
        assert not issubclass(client.connection_pool.connection_class, ScriptCachingConnection)
        await assert_lua_is_sandboxed(client)
    finally:
        await client.aclose()


async def test_shared_server_lua_is_sandboxed_over_tcp():
    with SharedServer() as url:
        client = Redis.from_url(url, decode_responses=True)
        try:
            await assert_lua_is_sandboxed(client)
        finally:
            await client.aclose()


@contextlib.contextmanager
def minibull_server(*args: str, env: dict[str, str] | None = None):
    """``minibull server`` in a child process on a free port; yields (port, process)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "minibull", "server", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        wait_for_port(port)
        yield port, process
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()
        process.stderr.close()


async def test_minibull_server_runs_lua_sandboxed():
    with minibull_server() as (port, _):
        client = Redis.from_url(f"redis://127.0.0.1:{port}/0", decode_responses=True)
        try:
            await assert_lua_is_sandboxed(client)
            with pytest.raises(ResponseError):
                await client.eval("return python.eval('6*7')", 0)
        finally:
            await client.aclose()


def test_minibull_server_off_loopback_needs_a_password():
    refused = cli("server", "--host", "0.0.0.0", "--port", str(free_port()))
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "not loopback" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize("protocol", [2, 3])
async def test_minibull_server_with_a_password_refuses_clients_without_it(protocol):
    secret = "s3cret#/@pw"
    env = {"MINIBULL_SERVER_PASSWORD": secret}
    with minibull_server(env=env) as (port, process):
        anonymous = Redis.from_url(f"redis://127.0.0.1:{port}/0", protocol=protocol)
        wrong = Redis.from_url(f"redis://:wrong@127.0.0.1:{port}/0", protocol=protocol)
        good = Redis.from_url(
            f"redis://:{quote(secret, safe='')}@127.0.0.1:{port}/0", protocol=protocol
        )
        try:
            for client in (anonymous, wrong):
                with pytest.raises(AuthenticationError):
                    await client.eval("return 1", 0)
            assert await good.eval("return 1", 0) == 1
            assert await good.eval("return type(os)", 0) == b"nil"
        finally:
            for client in (anonymous, wrong, good):
                await client.aclose()
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert f"127.0.0.1:{port}" in out and "s3cret" not in out


def test_minibull_server_on_a_port_in_use_says_so_in_one_line():
    with minibull_server() as (port, _):
        second = cli("server", "--port", str(port))
    assert second.returncode == 1
    assert second.stderr.strip().count("\n") == 0, second.stderr
    assert f"cannot serve on 127.0.0.1:{port}" in second.stderr
