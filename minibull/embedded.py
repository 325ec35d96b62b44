"""The embedded server: fakeredis in this process, with scripts compiled once.

fakeredis runs a script by compiling its source on every EVALSHA, then running a
full Lua garbage collection, and it checks the Lua globals before every
``redis.call`` inside the script. For a queue whose every step is a script, that
was most of a job's time. ``ScriptCachingSocket`` keeps fakeredis's
behaviour (same runtime, same ``redis.call``, same errors) but compiles each script
once, checks globals once per script, and leaves garbage collection to Lua.

If a future fakeredis changes the internals this leans on, ``fast_scripts_supported``
turns False and the embedded server runs fakeredis unchanged (only slower).
"""

from __future__ import annotations

import hashlib
from typing import Any

import fakeredis
from fakeredis._clients._async import FakeAsyncRedisConnection, FakeReader, FakeWriter
from fakeredis._socket import AsyncFakeSocket

try:  # fakeredis internals: checked here so a change only costs speed
    from fakeredis import _msgs as msgs
    from fakeredis._commands import COMMANDS_WITH_SUB
    from fakeredis._helpers import SimpleError, decode_command_bytes
    from fakeredis.commands_mixins import scripting_mixin as _scripting

    _check_globals = _scripting._check_for_lua_globals
    _LuaError = _scripting.LUA_MODULE.LuaError
    fast_scripts_supported = all(
        hasattr(AsyncFakeSocket, name)
        for name in (
            "_get_server_runtime",
            "_lua_redis_call",
            "_convert_lua_result",
            "_convert_redis_result",
            "_name_to_func",
            "_run_command",
            "eval",
        )
    ) and all(
        hasattr(_scripting, name)
        for name in ("_convert_redis_arg", "_get_lua_bad_command_arg_msg", "_check_for_lua_globals")
    )
except (ImportError, AttributeError):  # pragma: no cover - depends on the fakeredis release
    fast_scripts_supported = False


class ScriptCachingSocket(AsyncFakeSocket):
    """An in-process connection's server side that keeps compiled scripts."""

    def eval(self, script: bytes, numkeys: int, *keys_and_args: bytes) -> Any:
        if numkeys > len(keys_and_args):
            raise SimpleError(msgs.TOO_MANY_KEYS_MSG)
        if numkeys < 0:
            raise SimpleError(msgs.NEGATIVE_KEYS_MSG)
        server: Any = self._server
        sha1 = hashlib.sha1(script).hexdigest().encode()
        server.script_cache[sha1] = script
        runtime = self._get_server_runtime(server)
        compiled: dict[bytes, Any] = server.__dict__.setdefault("_minibull_compiled", {})
        function = compiled.get(sha1)
        if function is None:
            try:
                function = compiled[sha1] = runtime.compile(script)
            except _LuaError:  # a script that does not compile: fakeredis's own error
                return super().eval(script, numkeys, *keys_and_args)

        server._lua_current_socket[0] = self
        self._script_resp = 2
        caller_fieldsets, self._fieldsets = self._fieldsets, {}
        server._lua_set_keys_argv(
            runtime.table_from(keys_and_args[:numkeys]),
            runtime.table_from(keys_and_args[numkeys:]),
        )
        try:
            result = function()
        except SimpleError as exc:  # from a redis.call, reported as fakeredis does
            message = exc.value
            if message == msgs.LUA_COMMAND_ARG_MSG:
                message = _scripting._get_lua_bad_command_arg_msg(server.server_type, self.version)
            elif self.version < (7,):
                message = msgs.SCRIPT_ERROR_MSG.format(sha1.decode(), message)
            raise SimpleError(message) from None
        except _LuaError as exc:
            raise SimpleError(msgs.SCRIPT_ERROR_MSG.format(sha1.decode(), exc)) from None
        finally:
            self._script_resp = None
            self._fieldsets = caller_fieldsets
        _check_globals(runtime, server._lua_expected_globals)
        return self._convert_lua_result(result, nested=False)

    def _lua_redis_call(
        self, lua_runtime: Any, expected_globals: set[Any], op: bytes, *args: Any
    ) -> Any:
        # As fakeredis's, without checking the Lua globals before every call: eval
        # checks them once after the script (Redis itself refuses at the assignment).
        command = decode_command_bytes(op)
        if command in COMMANDS_WITH_SUB and args:
            command += " " + decode_command_bytes(_scripting._convert_redis_arg(args[0]))
            args = args[1:]
        func, sig = self._name_to_func(command)
        if func is None:
            raise SimpleError(msgs.WRONG_ARGS_MSG7)
        result = self._run_command(
            func, sig, [_scripting._convert_redis_arg(a) for a in args], True
        )
        return self._convert_redis_result(lua_runtime, result)


class ScriptCachingConnection(FakeAsyncRedisConnection):
    """A fakeredis connection whose server side is a ScriptCachingSocket."""

    async def _connect(self) -> None:
        # As fakeredis's own _connect, with our socket class (a socket registers itself
        # with the server, so none is made only to be replaced).
        if not self._server.connected:
            raise self._connection_error_class(msgs.CONNECTION_ERROR_MSG)
        self._sock = ScriptCachingSocket(
            self._server,
            self.db,
            client_class=self._client_class,
            lua_modules=self._lua_modules,
            client_info=self._client_info,
        )
        self._reader = FakeReader(self._sock)
        self._writer = FakeWriter(self._sock)


_server: fakeredis.FakeServer | None = None


def embedded_server() -> fakeredis.FakeServer:
    """The process-wide in-process Redis server, created on first use."""
    global _server
    if _server is None:
        _server = fakeredis.FakeServer()
    return _server


def embedded_client(server: fakeredis.FakeServer | None = None) -> fakeredis.FakeAsyncRedis:
    """An async client of the embedded server (or of ``server``)."""
    kwargs: dict[str, Any] = {}
    if fast_scripts_supported:
        kwargs["connection_class"] = ScriptCachingConnection
    return fakeredis.FakeAsyncRedis(
        server=server or embedded_server(), decode_responses=True, **kwargs
    )
