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

import atexit
import ctypes
import hmac
import ipaddress
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from asyncio import CancelledError
from collections.abc import Sequence
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
        """Start the process; it dies with this one (see ``run_child``) and ``stop_all`` stops it.

        Start it from the thread that will outlive it (a notebook's cells run on the main
        thread): on Linux the child is killed when the thread that started it ends.
        """
        # An anonymous file (already unlinked): nothing is left behind in /tmp.
        self._log = tempfile.TemporaryFile(prefix="minibull-worker-")
        # The same `minibull worker ...` command, through run_child, which ties the child's
        # life to ours: a restarted kernel or a crashed test leaves no orphan behind.
        launch = [sys.executable, "-c", _CHILD, str(os.getpid()), *self.command[3:]]
        self.process = subprocess.Popen(
            launch, stdout=self._log, stderr=subprocess.STDOUT, env=self.env
        )
        _started.add(self)
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
            # A stopped process (SIGSTOP, Ctrl-Z) would hold the SIGTERM until resumed.
            self.process.send_signal(signal.SIGCONT)

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
        if self.process is not None and self.process.poll() is not None:
            _started.discard(self)
            if self._log is not None:
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


#: Every WorkerProcess this Python process started that has not been seen to exit.
_started: set[WorkerProcess] = set()

#: What a child runs: ``minibull worker ...`` under ``run_child`` (argv: our pid, then the command).
_CHILD = "import sys; from minibull.processes import run_child; sys.exit(run_child(sys.argv[1:]))"

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def running_workers() -> list[WorkerProcess]:
    """The worker processes started here that are still running (stopped ones included)."""
    return [worker for worker in list(_started) if worker.running]


def stop_all(grace: float = 5.0) -> list[int]:
    """Stop every worker process started here: resume the stopped ones, SIGTERM, SIGKILL after
    ``grace`` seconds. Returns the pids it found running. Safe to call at any time (a notebook's
    reset cell, after an interrupt, at exit)."""
    workers = running_workers()
    for worker in workers:
        worker.request_stop()  # SIGTERM + SIGCONT
    deadline = time.monotonic() + grace
    for worker in workers:
        assert worker.process is not None
        try:
            worker.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()  # SIGKILL ends a stopped process too
            worker.process.wait()
        worker._close_log()
    return [worker.pid for worker in workers]


atexit.register(stop_all, 2.0)


def stop_all_on_interrupt() -> bool:
    """In IPython (Jupyter): after a cell is interrupted, ``stop_all()``. Returns whether it is on.

    An interrupted cell never reaches the line that stops its workers; this hook does. Once per
    kernel (calling it again changes nothing).
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is in the course extra
        return False
    shell = get_ipython()
    if shell is None:
        return False
    if _stop_after_interrupt not in shell.events.callbacks["post_run_cell"]:
        shell.events.register("post_run_cell", _stop_after_interrupt)
    return True


def _stop_after_interrupt(result: Any) -> None:
    if _interrupted(getattr(result, "error_in_exec", None)):
        stopped = stop_all(grace=2.0)
        if stopped:
            print(f"interrupted: stopped {len(stopped)} worker process(es) started by this kernel")


def _interrupted(error: BaseException | None) -> bool:
    """Whether a cell's error comes from an interrupt: KeyboardInterrupt, or CancelledError
    when it was awaiting at top level (ipykernel cancels the cell's task), possibly turned
    into another error on the way (``asyncio.timeout`` raises TimeoutError from it)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, (KeyboardInterrupt, CancelledError)):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def run_child(argv: Sequence[str]) -> int:
    """A worker process's entry point: ``argv`` is the parent's pid, then ``minibull``'s arguments.

    The child dies with its parent: on Linux the kernel sends it SIGKILL when the parent ends
    (``PR_SET_PDEATHSIG``, which reaches a stopped process too); elsewhere a thread checks the
    parent every second. So a killed or restarted Jupyter kernel leaves no worker behind.
    """
    parent = int(argv[0])
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before we could ask
        return 1
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    from .cli import main

    return main(list(argv[1:]))


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGKILL)
