"""Worker processes, and a Redis server they can share with nothing installed.

The embedded default lives inside one process, so worker *processes* need a
server they can all reach. ``SharedServer`` runs fakeredis's TCP server in a
thread of this process (a notebook's kernel, say): zero install, good for
demos. Its limits, honestly: every command runs in this process under the GIL,
so it is several times slower than a real Redis; a client killed while blocked
in BZPOPMIN leaves a server thread that can swallow one wake-up (other workers
then notice new jobs at their next poll, ``drain_delay`` later); nothing is
persisted. For more, run ``redis-server`` and set ``MINIBULL_REDIS_URL``.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import signal
import subprocess
import sys
import tempfile
import threading
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

import fakeredis
from fakeredis._clients._tcp_server import TCPFakeRequestHandler
from fakeredis._helpers import SimpleError
from fakeredis.model import AccessControlList

from .connection import ENV_VAR
from .embedded import sandbox_lua

#: The user of a connection that has not sent AUTH yet (a password-protected server).
UNAUTHENTICATED = "(unauthenticated)"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


class SharedServer:
    """fakeredis over TCP on loopback, for worker processes: ``with SharedServer() as url: ...``.

    Scripts run in a Lua sandbox (no Python, ``os``, ``io`` or code loading). Any other
    host than loopback needs a ``password``: every client must then AUTH first.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, password: str | None = None
    ) -> None:
        if password == "":
            raise ValueError("password must not be empty (leave it out for none)")
        if password is None and not is_loopback(host):
            raise ValueError(
                f"host {host!r} is not loopback: anyone who can reach it could use the server, "
                "so pass a password too (or serve on 127.0.0.1)"
            )
        self.host, self.port, self.password = host, port, password
        self._server: fakeredis.TcpFakeServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's URL, with the password if there is one (redact it before printing)."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        host, port = self._server.server_address[:2]
        if ":" in host:
            host = f"[{host}]"
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{host}:{port}/0"

    def start(self) -> str:
        """Start serving in a background thread; returns the URL.

        Raises OSError if the port cannot be bound (e.g. it is in use), and RuntimeError
        if this fakeredis's Lua cannot be sandboxed (then nothing is served).
        """
        if self._server is None:
            server = fakeredis.TcpFakeServer((self.host, self.port), server_type="redis")
            reachable = sandbox_lua(server.fake_server)
            if reachable:  # pragma: no cover - depends on the fakeredis release
                server.server_close()
                raise RuntimeError(
                    f"fakeredis {fakeredis.__version__}: Lua scripts could still reach "
                    f"{', '.join(reachable)}; not serving (use a real redis-server)"
                )
            if self.password is not None:
                _require_password(server, self.password)
            server.daemon_threads = True
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, daemon=True)
            self._thread.start()
        return self.url

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PasswordGate(AccessControlList):
    """fakeredis's ACL, plus what fakeredis leaves out: no command before a good AUTH."""

    def __init__(self, password: str) -> None:
        super().__init__()
        self._password = password.encode()

    def validate_command(self, username: bytes, client_info: Any, fields: list[bytes]) -> None:
        if username == UNAUTHENTICATED.encode() and fields:
            command = fields[0].lower()
            if command == b"hello":  # redis-py's RESP3 handshake: HELLO 3 AUTH user password
                self._hello_auth(client_info, fields)
            elif command not in (b"auth", b"quit"):  # AUTH itself checks requirepass
                raise SimpleError("NOAUTH Authentication required.")
        super().validate_command(username, client_info, fields)

    def _hello_auth(self, client_info: Any, fields: list[bytes]) -> None:
        words = [field.lower() for field in fields]
        if b"auth" not in words:
            raise SimpleError("NOAUTH HELLO must be called with the client already authenticated")
        at = words.index(b"auth")
        user, password = (fields[at + 1 : at + 3] + [b"", b""])[:2]
        if user != b"default" or not hmac.compare_digest(password, self._password):
            raise SimpleError("WRONGPASS invalid username-password pair or user is disabled.")
        client_info["user"] = "default"


class _LockedRequestHandler(TCPFakeRequestHandler):
    """A TCP client that starts unauthenticated (fakeredis starts every one as ``default``)."""

    def setup(self) -> None:
        super().setup()
        self.current_client.get_socket()._client_info["user"] = UNAUTHENTICATED


def _require_password(server: fakeredis.TcpFakeServer, password: str) -> None:
    server.fake_server.config[b"requirepass"] = password.encode()
    server.fake_server.acl = _PasswordGate(password)
    server.RequestHandlerClass = _LockedRequestHandler


class WorkerProcess:
    """``minibull worker`` in a child process (URL in its environment); ``log()`` is its output."""

    def __init__(
        self,
        queue: str,
        processor: str,
        *,
        url: str,
        concurrency: int = 1,
        prefix: str = "bull",
        args: tuple[str, ...] = (),
    ) -> None:
        # The URL goes through the environment: on the command line, every local user
        # could read its password with `ps`.
        self.env = {**os.environ, ENV_VAR: url}
        self.command = [
            sys.executable,
            "-m",
            "minibull",
            "worker",
            queue,
            "--processor",
            processor,
            "--concurrency",
            str(concurrency),
            "--prefix",
            prefix,
            *args,
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._output = ""  # the log's text, kept when the file is closed
        self._stopping = False

    def start(self) -> WorkerProcess:
        # An anonymous file (already unlinked): nothing is left behind in /tmp.
        self._log = tempfile.TemporaryFile(prefix="minibull-worker-")
        self.process = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, env=self.env
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        running = self.process is not None and self.process.poll() is None
        if not running:
            self._close_log()
        return running

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM: finish the running jobs, then exit. Returns the exit code."""
        self.request_stop()
        assert self.process is not None
        code = self.process.wait(timeout)
        self._close_log()
        return code

    def request_stop(self) -> None:
        """Send SIGTERM once (a second one would force the worker to close)."""
        if self.process is not None and self.process.poll() is None and not self._stopping:
            self._stopping = True
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> int:
        """SIGKILL: die at once, mid-job (its jobs stall and are recovered elsewhere)."""
        return self._signal(signal.SIGKILL, 10)

    def _signal(self, sig: signal.Signals, timeout: float) -> int:
        assert self.process is not None, "not started"
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self._close_log()
        return code

    def log(self) -> str:
        """What the process printed so far."""
        if self._log is None:
            return self._output
        # pread: the child writes through the same file offset, which must not move.
        fd = self._log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def _close_log(self) -> None:
        """Once the process has exited: keep its output and close the file (which frees it)."""
        if self._log is not None and self.process is not None and self.process.poll() is not None:
            self._output = self.log()
            self._log.close()
            self._log = None

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.running:
            self.stop()


def start_workers(
    count: int, queue: str, processor: str, *, url: str, **options: object
) -> list[WorkerProcess]:
    """Start ``count`` worker processes on ``queue``; stop them with ``stop_workers``."""
    return [WorkerProcess(queue, processor, url=url, **options).start() for _ in range(count)]  # type: ignore[arg-type]


def stop_workers(workers: list[WorkerProcess], timeout: float = 30) -> list[int]:
    """SIGTERM every worker, then wait for each; returns their exit codes."""
    for worker in workers:
        worker.request_stop()
    return [worker.stop(timeout) for worker in workers]
