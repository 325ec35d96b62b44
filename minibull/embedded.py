"""The embedded server: fakeredis in this process, with scripts compiled once.

fakeredis runs a script by compiling its source on every EVALSHA, then running a
full Lua garbage collection, and it checks the Lua globals before every
``redis.call`` inside the script. For a queue whose every step is a script, that
was most of a job's time. ``ScriptCachingSocket`` keeps fakeredis's
behaviour (same runtime, same ``redis.call``, same errors) but compiles each script
once, checks globals once per script, and leaves garbage collection to Lua.

If a future fakeredis changes the internals this leans on, ``fast_scripts_supported``
turns False and the embedded server runs fakeredis unchanged (only slower).

Every server made here runs Lua in a sandbox (``sandbox_lua``): fakeredis's runtime
comes from lupa with Python (``python.eval``), ``os`` and ``io`` reachable, so on a
TCP server anyone who can connect could run code as this user.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import fakeredis

log = logging.getLogger(__name__)

try:  # fakeredis internals the Lua sandbox uses (see sandbox_lua)
    from fakeredis._helpers import SimpleError as _ScriptError
    from fakeredis.commands_mixins import scripting_mixin as _scripting
except ImportError:  # pragma: no cover - depends on the fakeredis release
    _ScriptError, _scripting = AttributeError, None  # type: ignore[assignment,misc]

try:  # fakeredis internals of the fast path: checked here so a change only costs speed
    from fakeredis import _msgs as msgs
    from fakeredis._clients._async import FakeAsyncRedisConnection, FakeReader, FakeWriter
    from fakeredis._clients._sync import FakeRedisConnection
    from fakeredis._commands import COMMANDS_WITH_SUB
    from fakeredis._helpers import SimpleError, decode_command_bytes
    from fakeredis._socket import AsyncFakeSocket, FakeSocket

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
    # Bases for the class statements below, which are then never used.
    AsyncFakeSocket = FakeSocket = object  # type: ignore[assignment,misc]
    FakeAsyncRedisConnection = FakeRedisConnection = object  # type: ignore[assignment,misc]

#: Lua globals a script must not reach: Python, the OS, files, and loading code
#: (Redis's own Lua has none of them but loadstring, which scripts never need).
UNSAFE_LUA_GLOBALS = (
    "python", "os", "io", "debug", "require", "package", "module",
    "loadstring", "load", "dofile", "loadfile",
)  # fmt: skip

_NAMES = f"local names = {{{', '.join(repr(name) for name in UNSAFE_LUA_GLOBALS)}}}\n"

# Removes the unsafe globals and hides the metatable of Python objects.
_STRIP_SCRIPT = """
for _, name in ipairs(names) do rawset(_G, name, nil) end
local bridge = getmetatable(redis.call)  -- lupa's metatable of every Python object
if type(bridge) == 'table' then bridge.__metatable = false end
"""

# Lists what a script can still reach (empty: sandboxed). The pcalls try lupa's attribute
# access on the Python objects fakeredis hands to Lua: redis.call.__globals__ leads to os.
_PROBE_SCRIPT = """
local reachable = {}
for _, name in ipairs(names) do
  if rawget(_G, name) ~= nil then table.insert(reachable, name) end
end
if pcall(function() return redis.call.__globals__ end) then
  table.insert(reachable, 'redis.call.__globals__')
end
if pcall(function() return cjson.null.__class__ end) then
  table.insert(reachable, 'cjson.null.__class__')
end
return reachable
"""

_runtime_lock = threading.Lock()


def _refuse_attribute(obj: object, name: object, *value: object) -> None:
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    message = f"ERR Lua scripts cannot reach Python attributes (asked for {name!r})"
    # SimpleError: the script fails with this reply, as with a failing redis.call.
    raise _ScriptError(message)


class _RestrictedLua:
    """fakeredis's Lua module, but its LuaRuntime has no Python bridge."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def LuaRuntime(self, **kwargs: Any) -> Any:  # noqa: N802 - the name fakeredis calls
        return self._module.LuaRuntime(
            **kwargs,
            register_eval=False,
            register_builtins=False,
            attribute_handlers=(_refuse_attribute, _refuse_attribute),
        )


@contextlib.contextmanager
def _restricted_runtimes() -> Iterator[None]:
    """While inside, a server that makes its Lua runtime gets a restricted one."""
    module = getattr(_scripting, "LUA_MODULE", None)
    with _runtime_lock:
        if module is None:  # pragma: no cover - a fakeredis without this internal
            yield
            return
        _scripting.LUA_MODULE = _RestrictedLua(module)
        try:
            yield
        finally:
            _scripting.LUA_MODULE = module


def sandbox_lua(server: fakeredis.FakeServer) -> list[str]:
    """Run ``server``'s scripts without Python, ``os``, ``io`` or code loading.

    Call it before the server runs its first script (its Lua runtime is made then).
    Returns what a script can still reach: empty when the sandbox holds.
    """
    client = fakeredis.FakeRedis(server=server)
    try:
        with _restricted_runtimes():
            client.eval(_NAMES + _STRIP_SCRIPT, 0)
        # Checked by another script: it holds only if later scripts share that runtime.
        reachable = client.eval(_NAMES + _PROBE_SCRIPT, 0)
    finally:
        client.close()
    return [name.decode() if isinstance(name, bytes) else str(name) for name in reachable]


class _ScriptCaching:
    """The server side of an in-process connection, keeping compiled scripts (a mixin on
    fakeredis's async or sync socket)."""

    _server: Any
    version: Any
    _script_resp: Any
    _fieldsets: Any
    _get_server_runtime: Any
    _convert_lua_result: Any
    _convert_redis_result: Any
    _name_to_func: Any
    _run_command: Any

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
                return super().eval(script, numkeys, *keys_and_args)  # type: ignore[misc]

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


class ScriptCachingSocket(_ScriptCaching, AsyncFakeSocket):
    """An async in-process connection's server side that keeps compiled scripts."""


class SyncScriptCachingSocket(_ScriptCaching, FakeSocket):
    """A sync in-process connection's server side (``SyncQueue``) that keeps compiled
    scripts: the same cache, on the same server, as the async clients'."""


class SyncScriptCachingConnection(FakeRedisConnection):
    """A sync fakeredis connection whose server side is a SyncScriptCachingSocket."""

    def _connect(self) -> Any:
        # As fakeredis's own _connect (sync), with our socket class.
        if not self._server.connected:
            raise self._connection_error_class(msgs.CONNECTION_ERROR_MSG)
        return SyncScriptCachingSocket(
            self._server,
            client_class=self._client_class,
            db=self.db,
            lua_modules=self._lua_modules,
            client_info=self._client_info,
        )


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
    """The process-wide in-process Redis server, created on first use (Lua sandboxed)."""
    global _server
    if _server is None:
        server = fakeredis.FakeServer()
        reachable = sandbox_lua(server)
        if reachable:  # pragma: no cover - depends on the fakeredis release
            # Only code in this process can reach this server: a warning, not a refusal.
            log.warning("the embedded server's Lua can still reach %s", ", ".join(reachable))
        _server = server
    return _server


def embedded_sync_client(server: fakeredis.FakeServer | None = None) -> fakeredis.FakeRedis:
    """A sync client of the embedded server (or of ``server``), for ``SyncQueue``."""
    kwargs: dict[str, Any] = {}
    if fast_scripts_supported:
        kwargs["connection_class"] = SyncScriptCachingConnection
    return fakeredis.FakeRedis(server=server or embedded_server(), decode_responses=True, **kwargs)


def embedded_client(server: fakeredis.FakeServer | None = None) -> fakeredis.FakeAsyncRedis:
    """An async client of the embedded server (or of ``server``)."""
    kwargs: dict[str, Any] = {}
    if fast_scripts_supported:
        kwargs["connection_class"] = ScriptCachingConnection
    return fakeredis.FakeAsyncRedis(
        server=server or embedded_server(), decode_responses=True, **kwargs
    )
