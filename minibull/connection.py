"""Where the Redis server is: a real one by URL, or the embedded in-process default.

With no URL and no ``MINIBULL_REDIS_URL`` in the environment, every Queue and
Worker of the process talks to one in-process fakeredis server, so a notebook
needs nothing installed and its producer and workers see the same data.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import redis
import redis.cluster
import redis.retry
from redis._parsers.encoders import Encoder
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.connection import PythonRespSerializer
from redis.exceptions import ConnectionError, TimeoutError
from redis.utils import HIREDIS_AVAILABLE

from .embedded import embedded_client, embedded_server, embedded_sync_client

if sys.version_info >= (3, 11):
    from asyncio import timeout as async_timeout
else:  # pragma: no cover - redis-py depends on async-timeout before 3.11.3
    from async_timeout import timeout as async_timeout

__all__ = [
    "blocking_limit",
    "named_client",
    "check_cluster_prefix",
    "connect",
    "connect_sync",
    "embedded_server",
    "on_reconnect",
    "redis_url",
    "resolve",
    "resolve_sync",
]

logger = logging.getLogger("minibull.connection")

ENV_VAR = "MINIBULL_REDIS_URL"

#: Seconds a write or a reply may take on our own connections (a hung server raises
#: TimeoutError); blocking calls stay well below it (``blocking_limit``).
SOCKET_TIMEOUT = 30.0

#: Errors after which a command is sent again on a new connection (twice at most).
RETRIED_ERRORS = (ConnectionError, TimeoutError, OSError)


def redis_url() -> str | None:
    """The URL of the real Redis to use, from ``MINIBULL_REDIS_URL`` (None: embedded)."""
    return os.environ.get(ENV_VAR) or None


def connect(url: str | None = None) -> Redis:
    """An async Redis client: for ``url``, else ``MINIBULL_REDIS_URL``, else the embedded server."""
    url = url or redis_url()
    if url:
        client = Redis.from_url(
            url,
            decode_responses=True,
            retry=_reconnect_retry(),
            # redis-py 5 retries a command (not only the connect) only for these errors;
            # redis-py 6+ retries for every error of the Retry: the same on both.
            retry_on_error=list(RETRIED_ERRORS),
            socket_timeout=SOCKET_TIMEOUT,
            socket_keepalive=True,
        )
        return _taskless_writes(client)  # speed only: the same timeout, see below
    return embedded_client()


def connect_sync(url: str | None = None) -> redis.Redis:
    """A synchronous Redis client (for ``SyncQueue``), on the same server as ``connect(url)``
    and with the same settings: decoded replies, socket timeout, retry on a new connection."""
    url = url or redis_url()
    if not url:
        return embedded_sync_client()
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        retry=redis.retry.Retry(_reconnect_backoff(), 2, supported_errors=RETRIED_ERRORS),
        retry_on_error=list(RETRIED_ERRORS),
        socket_timeout=SOCKET_TIMEOUT,  # a socket option here: it costs nothing per command
        socket_keepalive=True,
        # speed only: hiredis packs in C when installed; else our one-pass packer
        command_packer=None if HIREDIS_AVAILABLE else _FlatPacker(),
    )


class _TasklessWriteTimeout:
    """Speed only (skip it when learning): redis-py's async connection bounds each write
    with ``asyncio.wait_for``, which before Python 3.12 runs the write in a Task of its
    own: ~80 µs of a ~300 µs command on a 2-core machine. This bounds the same write by the
    same ``socket_timeout`` with ``asyncio.timeout`` (a timer, as redis-py uses for reads):
    a hung server still raises TimeoutError on every command, and no Task is made."""

    socket_timeout: float | None

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        limit = self.socket_timeout
        if not limit:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        # One command at a time per connection, so the swap is seen by this send only;
        # a connect or health check inside it stays bounded by the timer.
        self.socket_timeout = None
        try:
            async with async_timeout(limit):
                await super().send_packed_command(command, check_health)  # type: ignore[misc]
        except asyncio.TimeoutError:  # our timer (redis-py raises its own TimeoutError)
            await self.disconnect(nowait=True)  # type: ignore[attr-defined]
            raise TimeoutError("Timeout writing to socket") from None
        finally:
            self.socket_timeout = limit


def pack_flat(args: tuple[Any, ...], encoder: Any, cutoff: int) -> list[bytes] | None:
    """Speed only (skip it when learning): a command in Redis's wire format (RESP), in one
    pass, as redis-py's ``pack_command`` makes it: ``*<n>``, then ``$<len>`` and the bytes
    of each argument. redis-py's own (without hiredis) joins a growing buffer once per
    argument and asks its encoder four questions per argument: ~2.5x slower for the 31
    arguments of a worker's moveToFinished. None (redis-py packs it then) for a command
    name with a space ("SCRIPT LOAD") and for any argument over ``cutoff`` bytes, which
    redis-py sends as a chunk of its own."""
    first = args[0]
    if type(first) is not str or " " in first:
        return None
    encoding, errors = encoder.encoding, encoder.encoding_errors
    pieces = [b"*%d\r\n" % len(args)]
    for arg in args:
        kind = type(arg)
        if kind is str:
            data = arg.encode(encoding, errors)
        elif kind is int:
            data = b"%d" % arg
        elif kind is bytes:
            data = arg
        elif kind is float or kind is bool:
            data = encoder.encode(arg)  # a bool raises redis-py's DataError, as it would
        else:  # bytearray, memoryview ...: redis-py packs or refuses them (versions differ)
            return None
        if len(data) > cutoff or type(data) is not bytes:
            return None
        pieces.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return [b"".join(pieces)]


class _OnePassPacking:
    """Speed only: our async connections pack commands with ``pack_flat``."""

    encoder: Any
    _buffer_cutoff: int

    def pack_command(self, *args: Any) -> list[bytes]:
        packed = pack_flat(args, self.encoder, self._buffer_cutoff)
        return packed if packed is not None else super().pack_command(*args)  # type: ignore[misc]


class _FlatPacker:
    """Speed only: ``connect_sync``'s connections pack commands with ``pack_flat`` (the
    encoder of a ``decode_responses=True`` client, redis-py's defaults)."""

    def __init__(self) -> None:
        self.encoder = Encoder("utf-8", "strict", True)
        self.cutoff = 6000  # redis-py's buffer cutoff
        self.fallback = PythonRespSerializer(self.cutoff, self.encoder.encode)

    def pack(self, *args: Any) -> list[bytes]:
        packed = pack_flat(args, self.encoder, self.cutoff)
        return packed if packed is not None else self.fallback.pack(*args)


class _TasklessConnection(_OnePassPacking, _TasklessWriteTimeout, Connection):
    """A TCP connection whose writes are timed without a Task."""


class _TasklessSSLConnection(_OnePassPacking, _TasklessWriteTimeout, SSLConnection):
    """A TLS connection (rediss://) whose writes are timed without a Task."""


class _TasklessUnixConnection(_OnePassPacking, _TasklessWriteTimeout, UnixDomainSocketConnection):
    """A Unix-socket connection (unix://) whose writes are timed without a Task."""


#: The connection class redis-py picked for a URL's scheme -> ours for that scheme.
_TASKLESS: dict[type, type] = {
    Connection: _TasklessConnection,
    SSLConnection: _TasklessSSLConnection,
    UnixDomainSocketConnection: _TasklessUnixConnection,
}


def _taskless_writes(client: Redis) -> Redis:
    """``client``, its connections (none made yet) timing writes without a Task."""
    pool = client.connection_pool
    pool.connection_class = _TASKLESS.get(pool.connection_class, pool.connection_class)
    return client


def _reconnect_retry() -> Retry:
    """Retry a command on a fresh connection when the old one broke (e.g. Redis restarted).

    A command whose reply was lost may run twice: at-least-once, like the rest of
    the queue (give jobs a ``job_id`` to make a repeated add harmless). Each try that
    is retried is told to the listeners of ``on_reconnect``.
    """
    return ReportingRetry(_reconnect_backoff(), 2, supported_errors=RETRIED_ERRORS)


def _reconnect_backoff() -> ExponentialBackoff:
    return ExponentialBackoff(cap=0.5, base=0.05)


#: What a reconnect listener gets: the error of the failed try (it may be async).
ReconnectListener = Callable[[Exception], "Awaitable[None] | None"]

#: Set while listeners run: a listener's own Redis call that is retried is not told again.
_telling: ContextVar[bool] = ContextVar("minibull_telling_reconnect", default=False)


class ReportingRetry(Retry):
    """redis-py's Retry that also tells its listeners about each failed try it retries.

    redis-py deep-copies a Retry into the client and into each connection: the copies
    share one list of listeners, so registering on the client covers every connection.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listeners: list[ReconnectListener] = []

    def __deepcopy__(self, memo: dict[int, Any]) -> ReportingRetry:
        twin = copy.copy(self)  # the same listeners list
        twin._backoff = copy.deepcopy(self._backoff, memo)
        return twin

    async def call_with_retry(self, do: Any, fail: Any, *args: Any, **kwargs: Any) -> Any:
        """redis-py's ``call_with_retry``; a failed try is told once ``fail`` accepted it
        and a retry follows (the last one is raised to the caller, who reports it)."""
        failures = 0

        async def fail_then_tell(error: Exception, *more: Any) -> None:
            nonlocal failures
            failures += 1
            await fail(error, *more)  # raises when redis-py does not retry this error
            if self._retries < 0 or failures <= self._retries:
                await self._tell(error)

        return await super().call_with_retry(do, fail_then_tell, *args, **kwargs)

    async def _tell(self, error: Exception) -> None:
        """Call every listener with ``error``; a listener that raises is logged, never raised."""
        if _telling.get():
            return
        telling = _telling.set(True)
        try:
            for listener in list(self.listeners):
                try:
                    result = listener(error)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception("a reconnect listener failed")
        finally:
            _telling.reset(telling)


def on_reconnect(client: Redis, listener: ReconnectListener) -> Callable[[], None]:
    """Call ``listener(error)`` each time ``client`` retries a try that failed with a
    connection error (it reconnects, then sends the command again); returns a function
    that stops it. Only clients made by ``connect()`` report; for others it does nothing."""
    retry = client.get_retry() if isinstance(client, Redis) else None
    if not isinstance(retry, ReportingRetry):
        return lambda: None
    retry.listeners.append(listener)

    def stop() -> None:
        if listener in retry.listeners:
            retry.listeners.remove(listener)

    return stop


async def tell_reconnect(client: Redis, error: Exception) -> None:
    """Tell ``client``'s ``on_reconnect`` listeners that a try failed with ``error`` and
    is sent again (for a call made around redis-py's retry: ``lane.Lane``)."""
    retry = client.get_retry()
    if isinstance(retry, ReportingRetry):
        await retry._tell(error)


def reconnect_error(error: Exception) -> ConnectionError:
    """The ``error`` event of a retried try: a ConnectionError saying what broke."""
    reported = ConnectionError(
        f"the Redis connection broke ({type(error).__name__}: {error}); redis-py "
        "reconnects and the command is sent again on a new connection"
    )
    reported.__cause__ = error
    return reported


def resolve(connection: str | Redis | RedisCluster | None) -> tuple[Redis, bool]:
    """A client for a ``connection=`` argument, and whether we created it (and must close it)."""
    if connection is None or isinstance(connection, str):
        return connect(connection), True
    if isinstance(connection, RedisCluster):
        if not connection.get_encoder().decode_responses:
            raise ValueError("create the RedisCluster client with decode_responses=True")
        return connection, False  # type: ignore[return-value]
    if not isinstance(connection, Redis):
        raise TypeError(
            "connection must be a redis URL string, a redis.asyncio.Redis client or a "
            f"redis.asyncio.cluster.RedisCluster (got {type(connection).__name__})"
        )
    if connection.get_encoder().decode_responses:
        return connection, False
    # minibull reads replies as text: make a client that decodes, on the same server.
    return Redis(connection_pool=_decoding_pool(connection.connection_pool)), True


def resolve_sync(
    connection: str | redis.Redis | redis.cluster.RedisCluster | None,
) -> tuple[redis.Redis, bool]:
    """``resolve`` for a synchronous client: a URL, None (as ``connect_sync``), a
    ``redis.Redis`` or a ``redis.cluster.RedisCluster``; and whether we must close it."""
    if connection is None or isinstance(connection, str):
        return connect_sync(connection), True
    if isinstance(connection, redis.cluster.RedisCluster):
        if not connection.get_encoder().decode_responses:
            raise ValueError("create the RedisCluster client with decode_responses=True")
        return connection, False  # type: ignore[return-value]
    if not isinstance(connection, redis.Redis):
        raise TypeError(
            "connection must be a redis URL string, a redis.Redis client or a "
            f"redis.cluster.RedisCluster (got {type(connection).__name__})"
        )
    if connection.get_encoder().decode_responses:
        return connection, False
    return redis.Redis(connection_pool=_decoding_pool(connection.connection_pool)), True


def _decoding_pool(pool: Any) -> Any:
    """A pool like ``pool`` (same class, server and limits) whose connections decode replies;
    an async pool or a sync one."""
    limits: dict[str, Any] = {"max_connections": pool.max_connections}
    if isinstance(pool, (BlockingConnectionPool, redis.BlockingConnectionPool)):
        limits["timeout"] = pool.timeout
    kwargs = {**pool.connection_kwargs, "decode_responses": True}
    return type(pool)(connection_class=pool.connection_class, **limits, **kwargs)


def blocking_limit(redis: Redis, wanted: float) -> float:
    """How long a blocking command (BZPOPMIN, XREAD BLOCK) may wait on this client:
    ``wanted``, cut to stay under the client's socket timeout (redis-py's default is 5 s)."""
    kwargs = (
        redis.get_connection_kwargs()
        if isinstance(redis, RedisCluster)
        else redis.connection_pool.connection_kwargs
    )
    socket_timeout = kwargs.get("socket_timeout")
    if socket_timeout:
        return max(0.001, min(wanted, socket_timeout * 0.8))
    return wanted


def check_cluster_prefix(client: Redis | redis.Redis, prefix: str) -> None:
    """On a Redis Cluster every key of a queue must live in one slot: the prefix needs a
    hash tag, as BullMQ documents (``prefix="{bull}"``)."""
    clusters = (RedisCluster, redis.cluster.RedisCluster)
    if isinstance(client, clusters) and not _has_hash_tag(prefix):
        raise ValueError(
            f"prefix {prefix!r} has no hash tag: on a Redis Cluster use e.g. prefix='{{bull}}' "
            "so that all keys of a queue are in one slot"
        )


def _has_hash_tag(prefix: str) -> bool:
    start = prefix.find("{")
    return start >= 0 and prefix.find("}", start + 2) > start


def named_client(client: Redis, name: str) -> Redis | None:
    """A client of its own on ``client``'s server, on one connection named ``name`` (CLIENT
    SETNAME, sent again by redis-py on every reconnect), so that CLIENT LIST shows who is
    there (``Queue.get_workers``). None on a cluster, whose nodes each list their own clients.
    Nothing connects until the first command; close it with ``forget_name``."""
    if not isinstance(client, Redis):
        return None
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "client_name": name}
    own_pool = ConnectionPool(connection_class=pool.connection_class, max_connections=1, **kwargs)
    return Redis(connection_pool=own_pool, single_connection_client=True)


async def forget_name(named: Redis) -> None:
    """Clear the name (a closed connection can linger in the embedded server's CLIENT LIST),
    then close ``named``."""
    try:
        await named.client_setname("")
    finally:
        await named.aclose()
        await named.connection_pool.disconnect()
