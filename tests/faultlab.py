"""Tools of the Redis-fault suite (tests/test_redis_faults.py): a private redis-server, a
recording processor, one fault run with in-process workers, and the after-checks.

The method is the one of ../shared/reviews/faults.md section 2: a producer adds jobs one by
one and notes which adds were acknowledged; a fault hits the queue's Redis mid-run; then every
acknowledged job must complete, nothing may stay in ``active``, duplicates must stay within
the at-least-once bound, every worker must have reported the fault as an ``error`` event, and
the after-checks prove that each worker's lock renewal and the stalled sweep are still alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

import minibull
import minibull.connection

#: Worker settings of every fault run: short locks so that a lost lock shows within seconds.
WORKERS, CONCURRENCY = 2, 4
LOCK_S, STALLED_S = 2.0, 1.0
SETTINGS = {
    "workers": WORKERS,
    "concurrency": CONCURRENCY,
    "lock_duration": LOCK_S,
    "stalled_interval": STALLED_S,
    "max_stalled_count": 1,
}


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_server_version() -> tuple[int, ...]:
    """The version of the ``redis-server`` on PATH, e.g. (7, 0, 15)."""
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    if found is None:
        raise RuntimeError(f"cannot read the redis-server version from {out!r}")
    return tuple(int(part) for part in found.groups())


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the server gets SIGKILL if the test process dies (a timeout's hard exit)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class PrivateRedis:
    """A redis-server of the test's own: a free port, its data in ``folder``; ``kill()`` it."""

    def __init__(self, folder: Path, *options: str) -> None:
        self.folder, self.port, self.options = folder, free_port(), options
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def admin(self) -> Redis:
        """A client for fault commands: a long socket timeout (DEBUG SLEEP, a long EVAL)."""
        return Redis.from_url(self.url, decode_responses=True, socket_timeout=60)

    async def start(self) -> None:
        """Start the server (same port, folder and options each time) and wait for PING."""
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is needed (apt-get install -y redis-server)")
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.folder), "--save", "", *self.options]
        # Started from the event loop's thread: PR_SET_PDEATHSIG follows the parent thread.
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if os.name == "posix" else None,  # noqa: PLW1509
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                async with self.admin() as client:
                    if await client.ping():
                        return
            except (OSError, Exception):  # not listening yet, or still loading the AOF
                await asyncio.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within 15 s")

    async def shutdown(self) -> None:
        """``SHUTDOWN`` (the server writes its AOF and exits), then wait for the process."""
        async with self.admin() as client:
            try:
                await client.shutdown()
            except Exception:  # redis-py raises when the connection closes under it
                pass
        assert self.process is not None
        deadline = time.monotonic() + 15
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not exit after SHUTDOWN")
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the server (idempotent); used at the end of every test, even a failing one."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(10)


class Recorder:
    """The processor of the fault runs; it counts run starts and ends per job id in memory,
    so that a fault on Redis cannot touch the bookkeeping."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.ends: Counter[str] = Counter()
        self.ended_at: list[float] = []

    async def process(self, job: minibull.Job) -> None:
        """Run a job: sleep ``data["ms"]`` milliseconds (or ``data["s"]`` seconds)."""
        self.runs[job.id] += 1
        data = job.data if isinstance(job.data, dict) else {}
        await asyncio.sleep(data.get("s", data.get("ms", 0) / 1000))
        self.ends[job.id] += 1
        self.ended_at.append(time.monotonic())


@dataclasses.dataclass
class Outcome:
    """The figures of one fault run (what the README's Reliability section reports)."""

    fault: str
    settings: dict[str, Any]
    acked: int = 0
    refused: int = 0
    refusals: list[str] = dataclasses.field(default_factory=list)  # a few, as examples
    lost: list[str] = dataclasses.field(default_factory=list)  # acked, never completed
    stuck: int = 0  # in active after recovery
    failed: list[str] = dataclasses.field(default_factory=list)
    duplicate_runs: int = 0  # runs beyond the first, over every job
    duplicate_bound: int = 0  # see ``bounds``
    duplicate_adds: int = 0  # a job added twice for one producer call (a retried add)
    episodes: int = 1  # separate fault events (e.g. each CLIENT KILL)
    fault_s: float = 0.0
    resumed_s: float | None = None  # fault end -> first job completed after it
    drained_s: float | None = None  # fault end -> every acked job completed
    errors: list[list[str]] = dataclasses.field(default_factory=list)  # per worker
    long_job_runs: list[int] = dataclasses.field(default_factory=list)
    ghost_recovered_s: float | None = None
    workers_alive: bool = False

    def summary(self) -> dict[str, Any]:
        """The figures without the long lists, for a report line."""
        return {
            "fault": self.fault,
            "acked": self.acked,
            "refused": self.refused,
            "lost": len(self.lost),
            "stuck": self.stuck,
            "failed": len(self.failed),
            "duplicate_runs": self.duplicate_runs,
            "duplicate_bound": self.duplicate_bound,
            "duplicate_adds": self.duplicate_adds,
            "duplicate_adds_bound": 2 * self.episodes,
            "fault_s": round(self.fault_s, 1),
            "resumed_s": None if self.resumed_s is None else round(self.resumed_s, 2),
            "drained_s": None if self.drained_s is None else round(self.drained_s, 2),
            "error_events": [len(errors) for errors in self.errors],
            "long_job_runs": self.long_job_runs,
            "ghost_recovered_s": self.ghost_recovered_s,
            "workers_alive": self.workers_alive,
            "settings": self.settings,
        }


#: A fault: it runs while the producer adds, returns when the fault is over, and may set
#: ``outcome.episodes``.
Fault = Callable[[Outcome], Awaitable[None]]


async def run_fault(
    name: str,
    url: str,
    fault: Fault,
    *,
    fault_at: float = 1.5,
    produce_after: float = 1.0,
    drain_timeout: float = 45.0,
) -> Outcome:
    """Two workers drain a queue fed one add at a time; ``fault()`` runs ``fault_at`` s in
    (it returns when the fault is over). Then: wait until every acknowledged job completed,
    and run the after-checks. Every worker is closed at the end, whatever happened."""
    outcome = Outcome(name, dict(SETTINGS))
    recorder = Recorder()
    workers = [
        minibull.Worker(
            "q",
            recorder.process,
            url,
            concurrency=CONCURRENCY,
            lock_duration=LOCK_S,
            stalled_interval=STALLED_S,
        )
        for _ in range(WORKERS)
    ]
    for worker in workers:
        errors: list[str] = []
        outcome.errors.append(errors)
        worker.on("error", lambda exc, errors=errors: errors.append(f"{type(exc).__name__}: {exc}"))
    try:
        async with minibull.Queue("q", url) as queue:
            for worker in workers:
                worker.start()
            acked, added_n, fault_end = await _produce_through(
                queue, fault, fault_at, produce_after, outcome
            )
            await _wait_until_completed(queue, acked, drain_timeout, outcome)
            later = [t for t in recorder.ended_at if t >= fault_end]
            outcome.resumed_s = min(later) - fault_end if later else None
            outcome.drained_s = time.monotonic() - fault_end if not outcome.lost else None
            outcome.stuck = await _active_after(queue, timeout=15)
            outcome.failed = await queue.redis.zrange(queue.keys.failed, 0, -1)
            outcome.duplicate_runs = sum(count - 1 for count in recorder.runs.values())
            outcome.duplicate_bound = bounds(outcome.fault_s)
            outcome.duplicate_adds = sum(count - 1 for count in Counter(added_n.values()).values())
            await after_checks(queue, recorder, workers, outcome)
            outcome.workers_alive = all(
                w.running and w._run_task is not None and not w._run_task.done() for w in workers
            )
    finally:
        for worker in workers:
            try:
                await asyncio.wait_for(worker.close(force=True), 20)
            except Exception as exc:  # noqa: BLE001 - reported; the other workers still close
                outcome.errors[workers.index(worker)].append(f"close: {type(exc).__name__}: {exc}")
    print(f"\nfault run {outcome.summary()}")
    return outcome


async def _produce_through(
    queue: minibull.Queue, fault: Fault, fault_at: float, produce_after: float, outcome: Outcome
) -> tuple[set[str], dict[str, int], float]:
    """Add jobs one by one while the fault happens; the ids of the acknowledged adds, the
    producer's number ``n`` of every job in Redis (to count adds that happened twice), and
    when the fault ended (``time.monotonic()``)."""
    acked: set[str] = set()
    stop = asyncio.Event()

    async def produce() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                job = await queue.add("job", {"n": n, "ms": n % 20})
                acked.add(job.id)
            except Exception as exc:  # noqa: BLE001 - a refused add is a figure, not a failure
                outcome.refused += 1
                if len(outcome.refusals) < 3:
                    outcome.refusals.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.004)

    producer = asyncio.create_task(produce())
    try:
        await asyncio.sleep(fault_at)
        started = time.monotonic()
        await fault(outcome)
        fault_end = time.monotonic()
        outcome.fault_s = fault_end - started
        await asyncio.sleep(produce_after)
    finally:
        stop.set()
        await producer
    outcome.acked = len(acked)
    added_n = {}
    for job in await _all_jobs(queue):
        if isinstance(job.data, dict) and "n" in job.data:
            added_n[job.id] = job.data["n"]
    return acked, added_n, fault_end


async def _all_jobs(queue: minibull.Queue) -> list[minibull.Job]:
    jobs: list[minibull.Job] = []
    for state in minibull.STATES:
        jobs += await queue.get_jobs(state)
    return jobs


async def _wait_until_completed(
    queue: minibull.Queue, acked: set[str], timeout: float, outcome: Outcome
) -> None:
    """Until every acknowledged job is in ``completed`` (else: ``outcome.lost``)."""
    deadline = time.monotonic() + timeout
    while True:
        done = set(await queue.redis.zrange(queue.keys.completed, 0, -1))
        missing = sorted(acked - done, key=int)
        if not missing or time.monotonic() > deadline:
            outcome.lost = missing
            return
        await asyncio.sleep(0.1)


async def _active_after(queue: minibull.Queue, timeout: float) -> int:
    """Jobs still in ``active`` once nothing is left to run (waits up to ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while (count := await queue.redis.llen(queue.keys.active)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return count


async def make_ghost(queue: minibull.Queue, lock_ms: int) -> str:
    """A job left in ``active`` with a lock expiring in ``lock_ms``, as a SIGKILLed worker
    leaves it (added delayed, then moved by hand so that no live worker holds it)."""
    job = await queue.add("ghost", {"ms": 0}, delay=3600)
    keys = queue.keys
    async with queue.redis.pipeline(transaction=True) as pipe:
        pipe.zrem(keys.delayed, job.id)
        pipe.lpush(keys.active, job.id)
        pipe.set(keys.lock(job.id), "a-dead-worker:1", px=lock_ms)
        pipe.hset(keys.job(job.id), mapping={"ats": 1, "processedOn": int(time.time() * 1000)})
        await pipe.execute()
    return job.id


async def after_checks(
    queue: minibull.Queue, recorder: Recorder, workers: list[minibull.Worker], outcome: Outcome
) -> None:
    """Are lock renewal and the stalled sweep alive? One job per slot lasting 3 lock
    durations (so every worker holds some) must each run once; and a ghost job left in
    ``active`` must be put back by a live worker's stalled sweep and run."""
    slots = len(workers) * workers[0].concurrency
    long_jobs = await queue.add_bulk(
        [{"name": "long", "data": {"s": 3 * LOCK_S}} for _ in range(slots)]
    )
    ghost = await make_ghost(queue, lock_ms=1000)
    started = time.monotonic()
    deadline = started + 3 * LOCK_S + 40
    while time.monotonic() < deadline:
        if outcome.ghost_recovered_s is None and (
            recorder.runs[ghost] or await queue.redis.lpos(queue.keys.active, ghost) is None
        ):
            outcome.ghost_recovered_s = round(time.monotonic() - started, 1)
        done = set(await queue.redis.zrange(queue.keys.completed, 0, -1))
        if done >= {job.id for job in long_jobs} | {ghost}:
            break
        await asyncio.sleep(0.1)
    outcome.long_job_runs = [recorder.runs[job.id] for job in long_jobs]
    if recorder.runs[ghost] == 0:
        outcome.ghost_recovered_s = None


def bounds(fault_s: float) -> int:
    """The at-least-once bound on runs beyond the first: a job runs again only when its lock
    expired while it ran, so each slot can lose at most one lock per lock duration the
    fault lasted, plus one."""
    return WORKERS * CONCURRENCY * (1 + int(fault_s // LOCK_S))


def problems(outcome: Outcome, error: str | None) -> list[str]:
    """What the run broke of the suite's promises (empty: all kept); ``error`` is a regex
    that every worker's error events must match at least once (None: not checked)."""
    found = []
    if outcome.acked <= 100:
        found.append(f"too few acknowledged adds to mean anything ({outcome.acked})")
    if outcome.lost:
        found.append(f"{len(outcome.lost)} acknowledged jobs never completed: {outcome.lost[:10]}")
    if outcome.failed:
        found.append(f"failed jobs: {outcome.failed[:10]}")
    if outcome.stuck:
        found.append(f"{outcome.stuck} jobs stuck in active")
    if outcome.duplicate_runs > outcome.duplicate_bound:
        found.append(f"{outcome.duplicate_runs} duplicate runs > bound {outcome.duplicate_bound}")
    if outcome.duplicate_adds > 2 * outcome.episodes:
        found.append(f"{outcome.duplicate_adds} duplicate adds > bound {2 * outcome.episodes}")
    for number, errors in enumerate(outcome.errors if error else ()):
        if not any(re.search(error, text) for text in errors):  # type: ignore[arg-type]
            found.append(f"worker {number} reported no {error!r} error event: {errors[:3]}")
    slots = WORKERS * CONCURRENCY
    if outcome.long_job_runs != [1] * slots:
        found.append(f"jobs of 3 lock durations ran {outcome.long_job_runs} times (renewal dead)")
    if outcome.ghost_recovered_s is None:
        found.append("no live stalled sweep recovered the ghost job")
    if not outcome.workers_alive:
        found.append("a worker's loop ended")
    return found


# -- the faults ------------------------------------------------------------------------

Start = Callable[..., Awaitable[PrivateRedis]]


@contextlib.asynccontextmanager
async def private_servers(folder: Path) -> AsyncIterator[Start]:
    """``start(*options)`` starts a redis-server with its data under ``folder``; every
    server started is killed on leaving, whatever happened."""
    servers: list[PrivateRedis] = []

    async def start(*options: str) -> PrivateRedis:
        data = folder / f"redis-{len(servers)}"
        data.mkdir()
        server = PrivateRedis(data, *options)
        servers.append(server)
        await server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.kill()


async def restart_with_aof(start: Start) -> tuple[str, Fault]:
    """SHUTDOWN (the AOF is written before the server exits), 1 s down, start again on the
    same port and folder (the AOF is loaded)."""
    server = await start("--appendonly", "yes", "--appendfsync", "everysec")

    async def fault(outcome: Outcome) -> None:
        await server.shutdown()
        await asyncio.sleep(1)
        await server.start()

    return server.url, fault


async def client_kills(start: Start) -> tuple[str, Fault]:
    """``CLIENT KILL TYPE normal`` every 0.25 s for 3 s (SKIPME yes spares the admin)."""
    server = await start()

    async def fault(outcome: Outcome) -> None:
        outcome.episodes = 0
        async with server.admin() as admin:
            for _ in range(12):
                await admin.client_kill_filter(_type="normal")
                outcome.episodes += 1
                await asyncio.sleep(0.25)

    return server.url, fault


async def out_of_memory(start: Start) -> tuple[str, Fault]:
    """``maxmemory 1`` with ``noeviction`` for 3 s (every write refused with OOM), then 0."""
    server = await start("--maxmemory-policy", "noeviction")

    async def fault(outcome: Outcome) -> None:
        async with server.admin() as admin:
            await admin.config_set("maxmemory", 1)
            await asyncio.sleep(3)
            await admin.config_set("maxmemory", 0)

    return server.url, fault


async def debug_sleep(start: Start) -> tuple[str, Fault]:
    """``DEBUG SLEEP 5``, longer than the 1 s socket timeout the run gives minibull."""
    options = ("--enable-debug-command", "local") if redis_server_version() >= (7,) else ()
    server = await start(*options)

    async def fault(outcome: Outcome) -> None:
        async with server.admin() as admin:
            await admin.execute_command("DEBUG", "SLEEP", 5)

    return server.url, fault


async def read_only(start: Start) -> tuple[str, Fault]:
    """READONLY for 3 s: ``FAILOVER`` to a private replica (it waits until the replica has
    every write, so no data is lost) makes the queue's server a replica; ``REPLICAOF NO
    ONE`` makes it a primary again."""
    server = await start("--repl-diskless-sync-delay", "0")  # the replica syncs at once
    other = await start("--replicaof", "127.0.0.1", str(server.port))
    async with other.admin() as admin:
        await _until(
            lambda: _info(admin, "master_link_status", "up"), 15, "the replica never synced"
        )

    async def fault(outcome: Outcome) -> None:
        async with server.admin() as admin:
            await admin.execute_command("FAILOVER", "TIMEOUT", 10_000)
            await _until(lambda: _info(admin, "role", "slave"), 15, "FAILOVER did not happen")
            await asyncio.sleep(3)
            await admin.execute_command("REPLICAOF", "NO", "ONE")

    return server.url, fault


async def busy_script(start: Start) -> tuple[str, Fault]:
    """A 3 s Lua busy loop from another client; with ``lua-time-limit 300`` every other
    client gets BUSY after 0.3 s (5 s by default)."""
    server = await start("--lua-time-limit", "300")
    loop = (
        "local t0 = redis.call('TIME'); local start = t0[1] * 1000000 + t0[2]; "
        "while true do local t = redis.call('TIME'); "
        "if t[1] * 1000000 + t[2] - start > tonumber(ARGV[1]) * 1000 then return 1 end end"
    )

    async def fault(outcome: Outcome) -> None:
        async with server.admin() as admin:
            await admin.eval(loop, 0, 3000)

    return server.url, fault


async def _info(admin: Redis, field: str, wanted: str) -> bool:
    return str((await admin.info("replication")).get(field)) == wanted


async def _until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout} s")
        await asyncio.sleep(0.05)


@dataclasses.dataclass(frozen=True)
class FaultPlan:
    """One fault of the suite: its label, how to set it up, the regex its ``error`` events
    match, and the socket timeout of minibull's connections during the run."""

    label: str
    setup: Callable[[Start], Awaitable[tuple[str, Fault]]]
    error: str
    socket_timeout: float | None = None


FAULTS = {
    "restart": FaultPlan(
        "Redis restarted (SHUTDOWN, 1 s down, AOF everysec)", restart_with_aof, "Connection"
    ),
    "client_kill": FaultPlan(
        "CLIENT KILL TYPE normal, 12 times in 3 s", client_kills, "Connection"
    ),
    "oom": FaultPlan("OOM for 3 s (maxmemory 1, noeviction)", out_of_memory, "OutOfMemory|OOM"),
    "debug_sleep": FaultPlan(
        "DEBUG SLEEP 5 (socket timeout 1 s)", debug_sleep, "Timeout", socket_timeout=1.0
    ),
    "readonly": FaultPlan(
        "READONLY for 3 s (FAILOVER to a replica, then REPLICAOF NO ONE)",
        read_only,
        "ReadOnly|READONLY",
    ),
    "busy": FaultPlan("BUSY for 3 s (a Lua busy loop, lua-time-limit 300 ms)", busy_script, "BUSY"),
}


async def run_plan(key: str, start: Start) -> Outcome:
    """Set up fault ``key`` of ``FAULTS`` on private servers and run it."""
    plan = FAULTS[key]
    url, fault = await plan.setup(start)
    saved = minibull.connection.SOCKET_TIMEOUT
    if plan.socket_timeout is not None:  # read by connect() each time a client is made
        minibull.connection.SOCKET_TIMEOUT = plan.socket_timeout
    try:
        outcome = await run_fault(plan.label, url, fault)
    finally:
        minibull.connection.SOCKET_TIMEOUT = saved
    if plan.socket_timeout is not None:
        outcome.settings["socket_timeout"] = plan.socket_timeout
    return outcome
