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

import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType

import fakeredis


class SharedServer:
    """fakeredis over TCP on loopback, for worker processes: ``with SharedServer() as url: ...``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._server: fakeredis.TcpFakeServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not started")
        host, port = self._server.server_address[:2]
        return f"redis://{host}:{port}/0"

    def start(self) -> str:
        """Start serving in a background thread; returns the URL."""
        if self._server is None:
            self._server = fakeredis.TcpFakeServer((self.host, self.port), server_type="redis")
            self._server.daemon_threads = True
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
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


class WorkerProcess:
    """``minibull worker`` in a child process; its output goes to ``log_path``."""

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
        self.command = [
            sys.executable,
            "-m",
            "minibull",
            "worker",
            queue,
            "--processor",
            processor,
            "--redis",
            url,
            "--concurrency",
            str(concurrency),
            "--prefix",
            prefix,
            *args,
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._stopping = False

    def start(self) -> WorkerProcess:
        handle, name = tempfile.mkstemp(prefix="minibull-worker-", suffix=".log")
        self.log_path = Path(name)
        with os.fdopen(handle, "wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM: finish the running jobs, then exit. Returns the exit code."""
        self.request_stop()
        assert self.process is not None
        return self.process.wait(timeout)

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
        return self.process.wait(timeout)

    def log(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

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
