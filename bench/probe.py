"""What a benchmark process reports about itself: jobs done, and its Redis round trips.

Every worker process (ours, or a library's own CLI worker that imports a job
module from ``bench.adapters``) keeps one small memory-mapped file,
``$BENCH_PROBE_DIR/<pid>.slot``, holding a few numbers: jobs finished, the wall
time of the last finish, round trips and commands sent, and the process's CPU time. Updating it is a
memory store, no system call, so counting costs the job well under a microsecond.
The driver reads the files while the run goes on and knows when the last job
is done without asking Redis anything.

Round trips and commands are counted by wrapping redis-py's connection classes
(sync and asyncio): every ``send_packed_command`` is one request sent and
waited for (a pipeline is one); commands are counted in ``send_command`` (one)
and ``pack_commands`` (a pipeline's). All peers
here talk to Redis through redis-py, so one wrapper counts them all the same way.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any

#: jobs done, last finish (epoch s), round trips, commands, process CPU seconds now and at
#: the first job's end (CPU per job leaves start-up out and is robust to a busy machine)
SLOT = struct.Struct("<qdqqdd")
ENV_DIR = "BENCH_PROBE_DIR"


class Traffic:
    """Round trips and commands sent by this process since the last ``reset``."""

    round_trips = 0
    commands = 0

    @classmethod
    def reset(cls) -> None:
        cls.round_trips = 0
        cls.commands = 0


def count_redis_traffic() -> None:
    """Wrap redis-py's connections (sync and asyncio) so they count what they send."""
    import redis.asyncio.connection as async_connection
    import redis.connection as sync_connection

    for cls in (sync_connection.AbstractConnection, async_connection.AbstractConnection):
        if getattr(cls, "_bench_counted", False):
            continue
        _wrap(cls)
        cls._bench_counted = True


def _wrap(cls: type) -> None:
    send, send_one, pack_many = cls.send_packed_command, cls.send_command, cls.pack_commands

    def send_command(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        Traffic.commands += 1
        return send_one(self, *args, **kwargs)

    def pack_commands(self, commands):  # type: ignore[no-untyped-def]
        commands = list(commands)
        Traffic.commands += len(commands)
        return pack_many(self, commands)

    def send_packed_command(self, command, check_health=True):  # type: ignore[no-untyped-def]
        Traffic.round_trips += 1
        return send(self, command, check_health)

    cls.send_command = send_command
    cls.pack_commands = pack_commands
    cls.send_packed_command = send_packed_command


class Slot:
    """This process's counters in ``<dir>/<pid>.slot`` (thread-safe: some peers use threads)."""

    def __init__(self, directory: str | Path) -> None:
        path = Path(directory) / f"{os.getpid()}.slot"
        with open(path, "wb") as file:
            file.write(b"\0" * SLOT.size)
        self._file = open(path, "r+b")  # noqa: SIM115 - kept open for the mmap's life
        self._map = mmap.mmap(self._file.fileno(), SLOT.size)
        self._lock = threading.Lock()
        self.jobs = 0
        self.first_cpu = 0.0

    def job_done(self) -> None:
        with self._lock:
            self.jobs += 1
            cpu = time.process_time()
            if self.jobs == 1:
                self.first_cpu = cpu
            SLOT.pack_into(
                self._map,
                0,
                self.jobs,
                time.time(),
                Traffic.round_trips,
                Traffic.commands,
                cpu,
                self.first_cpu,
            )


_slot: Slot | None = None


def job_done() -> None:
    """Called by every benchmark job when it ends (a no-op outside a benchmark worker)."""
    if _slot is not None:
        _slot.job_done()


def start_probe() -> None:
    """In a worker process: count Redis traffic and open this process's slot."""
    global _slot
    directory = os.environ.get(ENV_DIR)
    if directory and _slot is None:
        count_redis_traffic()
        _slot = Slot(directory)


def read_slots(directory: str | Path) -> list[tuple[Any, ...]]:
    """Every worker process's SLOT numbers, as the driver sees them."""
    found = []
    for path in Path(directory).glob("*.slot"):
        data = path.read_bytes()
        if len(data) == SLOT.size:
            found.append(SLOT.unpack(data))
    return found
