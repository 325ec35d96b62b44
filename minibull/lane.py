"""Speed only (skip it when learning): script calls sent on connections held by the caller.

redis-py's ``execute_command`` takes a connection from its pool under a lock, wraps the
call in its retry policy, records metrics and returns the connection: about 50 µs of
the ~120 µs that a trivial EVALSHA takes on loopback (``bench/results``). A ``Lane``
keeps the connections it has used and sends a command on a free one with the same two
calls redis-py makes underneath (``send_packed_command``, then ``read_response``), so the
socket timeouts, the packing and the decoding are the client's own. It keeps at most
half of the pool's ``max_connections`` (the client's own commands find the rest); a call
that finds none free goes through the client. A forked child forgets its parent's.

When it breaks: a Redis error reply (NOSCRIPT, a script's error) is raised as usual and
the connection stays; any other failure (a broken connection, a timeout, a cancelled
call) disconnects that connection and gives it back to the pool; a broken or timed out
call is told to the ``on_reconnect`` listeners, as redis-py's retry tells them, and sent
again through the client, whose retry policy takes over from there. At-least-once either
way: a call whose reply was lost may run twice, as with redis-py's own retry.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import redis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from .connection import tell_reconnect

#: Failures after which the call is sent again through the client (its retry policy).
RESENT_ERRORS = (ConnectionError, TimeoutError, OSError)


class Lane:
    """Direct calls on ``client``'s server, on connections taken from its pool and kept."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._idle: list[AbstractConnection] = []
        self._held: set[AbstractConnection] = set()
        self._taking = 0  # connections asked of the pool, not yet given
        self._pid = os.getpid()

    @property
    def usable(self) -> bool:
        """A plain client with a pool (not a cluster, not a single-connection client)."""
        return type(self.client).execute_command is Redis.execute_command and not getattr(
            self.client, "single_connection_client", False
        )

    async def execute(self, *args: Any) -> Any:
        """``client.execute_command(*args)`` for a command whose reply needs no parsing."""
        if not self.usable:
            return await self.client.execute_command(*args)
        if self._pid != os.getpid():
            self._forget_parents()
        if self._idle:
            connection = self._idle.pop()
        elif _may_keep(self.client.connection_pool, len(self._held) + self._taking):
            connection = await self._take()
        else:
            return await self.client.execute_command(*args)
        try:
            await connection.send_packed_command(connection.pack_command(*args), check_health=False)
            reply = await connection.read_response()
        except ResponseError:
            self._idle.append(connection)  # Redis answered: the connection is fine
            raise
        except RESENT_ERRORS as error:
            await self._give_back(connection)
            await tell_reconnect(self.client, error)  # as the client's retry would
            return await self.client.execute_command(*args)
        except BaseException:  # cancelled mid-call: a reply may still be on its way
            await self._give_back(connection)
            raise
        self._idle.append(connection)
        return reply

    async def script_load(self, source: str) -> None:
        """SCRIPT LOAD on a lane connection (a cluster client loads it on every node)."""
        if self.usable:
            await self.execute("SCRIPT", "LOAD", source)
        else:
            await self.client.script_load(source)

    async def close(self) -> None:
        """Give every connection held back to the pool (call before closing the client)."""
        if self._pid != os.getpid():
            self._forget_parents()
        for connection in list(self._held):
            await self._give_back(connection, disconnect=False)

    def _forget_parents(self) -> None:
        """In a forked child: the connections held are the parent's sockets; never use
        them (redis-py's pool makes new ones after a fork, as it does for its own)."""
        self._idle, self._held, self._pid = [], set(), os.getpid()

    async def _take(self) -> AbstractConnection:
        pool = self.client.connection_pool
        self._taking += 1
        try:
            if _needs_command_name(pool.get_connection):
                connection = await pool.get_connection("EVALSHA")  # redis-py < 5.3
            else:
                connection = await pool.get_connection()
        finally:
            self._taking -= 1
        self._held.add(connection)
        return connection

    async def _give_back(self, connection: AbstractConnection, *, disconnect: bool = True) -> None:
        self._held.discard(connection)
        if connection in self._idle:
            self._idle.remove(connection)
        if disconnect:
            await connection.disconnect(nowait=True)
        released = self.client.connection_pool.release(connection)
        if inspect.isawaitable(released):
            await released


class SyncLane:
    """``Lane`` for a synchronous client (``SyncQueue``): the same shortcut without an event
    loop. Safe across threads (a WSGI server's): a connection is taken with ``list.pop``
    and given back with ``list.append``, each atomic, so no two calls share one."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._idle: list[redis.connection.AbstractConnection] = []
        self._held: set[redis.connection.AbstractConnection] = set()
        self._pid = os.getpid()

    @property
    def usable(self) -> bool:
        """``Lane.usable``, for a synchronous client."""
        return type(self.client).execute_command is redis.Redis.execute_command and (
            getattr(self.client, "connection", None) is None
        )

    def execute(self, *args: Any) -> Any:
        """``client.execute_command(*args)`` for a command whose reply needs no parsing."""
        if not self.usable:
            return self.client.execute_command(*args)
        if self._pid != os.getpid():  # a forked child (a WSGI server's worker)
            self._forget_parents()
        try:
            connection = self._idle.pop()
        except IndexError:
            if not _may_keep(self.client.connection_pool, len(self._held)):
                return self.client.execute_command(*args)
            connection = self._take()
        try:
            connection.send_packed_command(connection.pack_command(*args), check_health=False)
            reply = connection.read_response()
        except ResponseError:
            self._idle.append(connection)
            raise
        except RESENT_ERRORS:
            self._give_back(connection)
            return self.client.execute_command(*args)  # its retry reconnects
        except BaseException:  # interrupted mid-call: a reply may still be on its way
            self._give_back(connection)
            raise
        self._idle.append(connection)
        return reply

    def script_load(self, source: str) -> None:
        """``Lane.script_load``, for a synchronous client."""
        if self.usable:
            self.execute("SCRIPT", "LOAD", source)
        else:
            self.client.script_load(source)

    def close(self) -> None:
        """Give every connection held back to the pool (call before closing the client)."""
        if self._pid != os.getpid():
            self._forget_parents()
        for connection in list(self._held):
            self._give_back(connection, disconnect=False)

    def _forget_parents(self) -> None:
        """``Lane._forget_parents``."""
        self._idle, self._held, self._pid = [], set(), os.getpid()

    def _take(self) -> redis.connection.AbstractConnection:
        pool = self.client.connection_pool
        if _needs_command_name(pool.get_connection):
            connection = pool.get_connection("EVALSHA")  # redis-py < 5.3
        else:
            connection = pool.get_connection()
        self._held.add(connection)
        return connection

    def _give_back(
        self, connection: redis.connection.AbstractConnection, *, disconnect: bool = True
    ) -> None:
        self._held.discard(connection)
        if connection in self._idle:
            self._idle.remove(connection)
        if disconnect:
            connection.disconnect()
        self.client.connection_pool.release(connection)


def _may_keep(pool: Any, held: int) -> bool:
    """Whether a lane holding ``held`` connections may take one more from ``pool``: at most
    half its ``max_connections``, so that the client's own commands always find one."""
    return held < int(getattr(pool, "max_connections", 0) or 0) // 2


def _needs_command_name(get_connection: Any) -> bool:
    """True where redis-py's ``get_connection`` still requires a command name (5.0-5.2)."""
    parameter = inspect.signature(get_connection).parameters.get("command_name")
    return parameter is not None and parameter.default is inspect.Parameter.empty
