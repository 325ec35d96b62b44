"""Run every benchmark, side by side with the peer libraries, and write the results.

    make bench                                  # the full run (10,000 jobs, 5 runs)
    make bench BENCH_ARGS=--quick               # 1,000 jobs, 2 runs, 3 libraries: ~2 minutes
    bench/.venv/bin/python bench/run.py --libs minibull,bullmq --scenarios drain_noop_c10

Each measurement runs in fresh processes (``bench/child.py``), one library at a
time (one add at a time: every library's child, and minibull's floors, take turns
in ``--rounds`` rounds, so a slow minute of the machine touches all alike), on one
Redis: by default a ``redis-server`` that this script starts on a free loopback
port and stops at the end, because ``INFO commandstats`` counts every client of a
server and a shared one is busy with other people's tests
(``--redis redis://127.0.0.1:6379/14`` uses an existing server instead; only
that database is ever flushed). Writes ``bench/results/results.json``,
``results.md``, the figures, and the README's section between the
``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench import chaos, report  # noqa: E402
from bench.adapters import LIBRARIES  # noqa: E402
from bench.child import FLOORS  # noqa: E402
from bench.probe import read_slots  # noqa: E402

PYTHON = sys.executable
RESULTS = ROOT / "bench" / "results"
LOGS = Path(tempfile.gettempdir()) / "minibull-bench-logs"

#: drain scenarios: (worker processes, concurrency per process)
DRAINS = {"c1": (1, 1), "c10": (1, 10), "2p": (2, 10)}
KINDS = ("noop", "io")
SCENARIOS = (
    "enqueue_single",
    "enqueue_bulk",
    *(f"drain_{kind}_{name}" for kind in KINDS for name in DRAINS),
)
#: commands the driver itself sends while a measurement runs (not the library's)
DRIVER_COMMANDS = {"info", "client|list", "flushdb", "select", "ping", "hello", "client|setinfo"}
#: the floors (``bench.child.FLOORS``) measured in the same rounds as each minibull producer
FLOOR_OF = {
    "minibull": ("async_floor", "async_addjob_floor"),
    "minibull_sync": ("sync_floor",),
}


# -- processes ---------------------------------------------------------------


class Child:
    """One ``python -m bench.child ...`` process: "ready", then "go", then maybe a result."""

    def __init__(self, args: list[str], log_name: str, env: dict[str, str]) -> None:
        LOGS.mkdir(exist_ok=True)
        self.log_path = LOGS / f"{log_name}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "bench.child", *args],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    def read_line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError(f"no answer in {timeout} s; see {self.log_path}")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the process ended; see {self.log_path}:\n{self.log_tail()}")
        return line.strip()

    def wait_ready(self, timeout: float = 60) -> None:
        line = self.read_line(timeout)
        if line != "ready":
            raise RuntimeError(f"expected 'ready', got {line!r}; see {self.log_path}")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def go(self) -> None:
        self.send("go")

    def start_block(self, jobs: int) -> None:
        """Ask a ``blocks`` child to time ``jobs`` more adds (``block_done`` waits for them)."""
        self.send(f"block {jobs}")

    def block_done(self, timeout: float) -> None:
        line = self.read_line(timeout)
        if line != "done":
            raise RuntimeError(f"expected 'done', got {line!r}; see {self.log_path}")

    def finish(self, timeout: float) -> dict[str, Any]:
        """A ``blocks`` child's result over all its blocks."""
        self.send("end")
        return self.result(timeout)

    def result(self, timeout: float) -> dict[str, Any]:
        return json.loads(self.read_line(timeout))

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (each library shuts down its own way, or just dies), then SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])


def child_env(lib: str = "", **extra: str) -> dict[str, str]:
    """A child's environment: every library but ``minibull_hiredis`` runs with hiredis
    hidden (``bench/pure_parser``), so all get redis-py's pure-Python parser."""
    env = {k: v for k, v in os.environ.items() if k != "MINIBULL_REDIS_URL"}
    paths = [str(ROOT)]
    if lib != "minibull_hiredis":
        paths.append(str(ROOT / "bench" / "pure_parser"))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return int(probe_socket.getsockname()[1])


@contextlib.contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    """The Redis to measure on: ``url``, or a private redis-server on a free loopback port."""
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH: install it, or pass --redis URL")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                break
            time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/14"
    finally:
        process.terminate()
        process.wait(10)


# -- one add at a time, interleaved -------------------------------------------

#: ``INFO commandstats`` calls by command, and the server's CPU seconds, at one moment
Snapshot = tuple[dict[str, int], float]


def block_sizes(jobs: int, rounds: int) -> list[int]:
    """``jobs`` split into ``rounds`` blocks, as even as can be."""
    if not 1 <= rounds <= jobs:
        raise ValueError(f"rounds must be between 1 and the jobs ({jobs}) (got {rounds})")
    base, extra = divmod(jobs, rounds)
    return [base + (index < extra) for index in range(rounds)]


@dataclass
class ServerUsage:
    """What Redis did during one producer's blocks: commands by name, CPU seconds."""

    commands: dict[str, int] = field(default_factory=dict)
    cpu: float = 0.0

    def add(self, before: Snapshot, after: Snapshot) -> None:
        for name, calls in Bench.command_delta(before[0], after[0]).items():
            self.commands[name] = self.commands.get(name, 0) + calls
        self.cpu += after[1] - before[1]

    def per_job(self, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` (a child's, over ``result["jobs"]`` adds) with the server's side."""
        jobs = result["jobs"]
        return {
            **result,
            "server_commands": sum(self.commands.values()) / jobs,
            "server_cpu_us": 1e6 * self.cpu / jobs,
            "commands": {name: calls / jobs for name, calls in self.commands.items()},
        }


def interleave(
    children: dict[str, Any], sizes: list[int], snapshot: Callable[[], Snapshot], timeout: float
) -> tuple[dict[str, ServerUsage], dict[str, str]]:
    """One round per size: each child in turn times a block of that many adds, alone (the
    next is asked only when it is done), the order rotated by one each round. Returns what
    Redis did in each child's blocks, and the children that failed (left out from then on)."""
    names = list(children)
    usage = {name: ServerUsage() for name in names}
    errors: dict[str, str] = {}
    for index, size in enumerate(sizes):
        turn = index % len(names) if names else 0
        for name in names[turn:] + names[:turn]:
            before = snapshot()
            try:
                children[name].start_block(size)
                children[name].block_done(timeout)
            except Exception as exc:  # one library failing must not lose the others' numbers
                errors[name] = str(exc)
                names.remove(name)
                continue
            usage[name].add(before, snapshot())
    return usage, errors


# -- one measurement -------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, url: str) -> None:
        self.args = args
        self.url = url
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.run_index = 0

    def flush(self) -> None:
        self.redis.flushdb()  # only the benchmark's own database

    def command_counts(self) -> dict[str, int]:
        stats = self.redis.info("commandstats")
        return {
            name.removeprefix("cmdstat_"): int(value["calls"])
            for name, value in stats.items()
            if name.removeprefix("cmdstat_") not in DRIVER_COMMANDS
        }

    def server_cpu(self) -> float:
        """Seconds of CPU the Redis server has used so far (user + system, all its threads)."""
        cpu = self.redis.info("cpu")
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    def snapshot(self) -> Snapshot:
        return self.command_counts(), self.server_cpu()

    @staticmethod
    def command_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
        delta = {name: calls - before.get(name, 0) for name, calls in after.items()}
        return {name: calls for name, calls in delta.items() if calls > 0}

    def queue_name(self, lib: str) -> str:
        return f"bench-{lib}"

    def log_name(self, *parts: object) -> str:
        return "-".join(str(part) for part in (f"run{self.run_index}", *parts))

    # enqueue one at a time: every producer in the same rounds

    def enqueue_single(self, libs: list[str]) -> dict[str, dict[str, Any]]:
        """Each library's adds (and minibull's floors) timed in --rounds blocks each, taking
        turns; the results by producer name, with Redis's commands and CPU of its blocks."""
        self.flush()
        producers = [*libs, *(floor for lib in libs for floor in FLOOR_OF.get(lib, ()))]
        children, results = self._start_blocks(producers)
        try:
            sizes = block_sizes(self.args.jobs, self.args.rounds)
            timeout = 60 + max(sizes) / 50
            usage, errors = interleave(children, sizes, self.snapshot, timeout)
            results.update({name: {"error": error} for name, error in errors.items()})
            for name, child in children.items():
                if name not in errors:
                    results[name] = self._finish(child, usage[name], timeout)
        finally:
            for child in children.values():
                child.stop()
        return {name: results[name] for name in producers}

    @staticmethod
    def _finish(child: Child, usage: ServerUsage, timeout: float) -> dict[str, Any]:
        try:
            return usage.per_job(child.finish(timeout))
        except Exception as exc:  # one library failing must not lose the others' numbers
            return {"error": str(exc)}

    def _start_blocks(self, producers: list[str]) -> tuple[dict[str, Child], dict[str, Any]]:
        """A ``blocks`` child per producer, all started at once and warmed up (200 adds)."""
        children = {
            name: Child(
                ["blocks", name, "--url", self.url, "--queue", self.queue_name(name)],
                self.log_name("enqueue", "single", name),
                child_env(name),
            )
            for name in producers
        }
        failed: dict[str, Any] = {}
        for name, child in list(children.items()):
            try:
                child.wait_ready(timeout=120)
            except Exception as exc:
                failed[name] = {"error": str(exc)}
                children.pop(name).stop()
        return children, failed

    # enqueue in bulk: one producer, one call per batch of --batch jobs

    def enqueue_bulk(self, lib: str) -> dict[str, Any]:
        self.flush()
        jobs = self.args.jobs
        child = Child(
            [
                "enqueue",
                lib,
                "--url",
                self.url,
                "--queue",
                self.queue_name(lib),
                "--jobs",
                str(jobs),
                "--mode",
                "bulk",
                "--batch",
                str(self.args.batch),
                "--warmup",
                "200",
                "--handshake",
            ],
            self.log_name("enqueue", "bulk", lib),
            child_env(lib),
        )
        usage = ServerUsage()
        try:
            child.wait_ready()
            before = self.snapshot()
            child.go()
            result = child.result(timeout=60 + jobs / 50)
            usage.add(before, self.snapshot())
        finally:
            child.stop()
        return usage.per_job({**result, "jobs": jobs})

    def fill(self, lib: str, kind: str, jobs: int) -> None:
        """Put ``jobs`` jobs in the queue with the library's fastest enqueue (not timed)."""
        child = Child(
            [
                "enqueue",
                lib,
                "--url",
                self.url,
                "--queue",
                self.queue_name(lib),
                "--kind",
                kind,
                "--jobs",
                str(jobs),
                "--mode",
                "fill",
                "--batch",
                str(self.args.batch),
            ],
            self.log_name("fill", kind, lib),
            child_env(lib),
        )
        try:
            child.result(timeout=120 + jobs / 20)
        finally:
            child.stop()

    # drain: the jobs are in the queue; time from "go" to the last job's end

    def drain(self, lib: str, kind: str, drain: str) -> dict[str, Any] | None:
        processes, concurrency = DRAINS[drain]
        adapter = __import__(f"bench.adapters.{lib}_bench", fromlist=["BULK"])
        if not adapter.IN_PROCESS_CONCURRENCY:
            if processes == 1 and concurrency > 1:
                return None  # rq: one job at a time per worker process
            concurrency = 1
        ideal = processes * concurrency * 100 if kind == "io" else None
        jobs = self.args.jobs
        if ideal:  # 10 ms jobs: enough for a few seconds at the ideal rate
            jobs = min(jobs, max(100, int(ideal * self.args.io_seconds)))
        self.flush()
        cli = lib in ("minibull", "minibull_hiredis") and processes > 1
        if cli:  # the CLI workers start on a paused queue; "go" resumes it
            self._minibull_pause(lib, True)
        if cli:
            self.fill(lib, kind, jobs)
        probe_dir = Path(tempfile.mkdtemp(prefix="minibull-bench-probe-"))
        env = child_env(lib, BENCH_PROBE_DIR=str(probe_dir))
        workers: list[Any] = []
        try:
            if cli:
                workers = self._start_minibull_cli(lib, kind, processes, concurrency, env)
            else:
                for index in range(processes):
                    workers.append(
                        Child(
                            [
                                "worker",
                                lib,
                                "--url",
                                self.url,
                                "--queue",
                                self.queue_name(lib),
                                "--kind",
                                kind,
                                "--concurrency",
                                str(concurrency),
                                # the first worker enqueues the jobs before it says "ready"
                                "--fill",
                                str(jobs if index == 0 else 0),
                                "--batch",
                                str(self.args.batch),
                            ],
                            self.log_name("worker", kind, drain, lib, index),
                            env,
                        )
                    )
                for worker in workers:
                    worker.wait_ready(timeout=120 + jobs / 20)
            before, cpu_before = self.command_counts(), self.server_cpu()
            started = time.time()
            if cli:
                self._minibull_pause(lib, False)
            else:
                for worker in workers:
                    worker.go()
            done, capped = self._wait_for_jobs(probe_dir, jobs, workers, started)
            delta = self.command_delta(before, self.command_counts())
            cpu = self.server_cpu() - cpu_before
        finally:
            self._stop(workers)
            shutil.rmtree(probe_dir, ignore_errors=True)
        finished = max((slot[1] for slot in done), default=time.time())
        count = sum(slot[0] for slot in done)
        seconds = max(finished - started, 1e-9)
        result = {
            "jobs": jobs,
            "done": count,
            "seconds": seconds,
            "rate": count / seconds,
            "round_trips": sum(slot[2] for slot in done) / max(count, 1),
            "client_commands": sum(slot[3] for slot in done) / max(count, 1),
            "server_commands": sum(delta.values()) / max(count, 1),
            # the Redis server's CPU per job: 1e6 / this is what one Redis core can carry
            "server_cpu_us": 1e6 * cpu / max(count, 1),
            # worker CPU per job in each process, from its first job's end to its last
            "cpu_us": 1e6
            * sum(slot[4] - slot[5] for slot in done)
            / max(sum(slot[0] - 1 for slot in done), 1),
            "commands": {name: calls / max(count, 1) for name, calls in delta.items()},
            "processes": processes,
            "concurrency": concurrency,
        }
        if ideal:
            result["ideal"] = ideal
            result["of_ideal"] = result["rate"] / ideal
        if capped:
            result["capped"] = True
        return result

    def _wait_for_jobs(
        self, probe_dir: Path, jobs: int, workers: list[Any], started: float
    ) -> tuple[list[tuple[Any, ...]], bool]:
        """Wait for the last job; a slow library is stopped after --max-seconds, and its rate
        is the jobs done by then over the time they took (it is in a steady state by then)."""
        deadline = started + self.args.max_seconds
        while True:
            slots = read_slots(probe_dir)
            if sum(slot[0] for slot in slots) >= jobs:
                return slots, False
            if time.time() > deadline:
                return slots, True
            for worker in workers:
                process = getattr(worker, "process", None)
                if process is not None and process.poll() is not None:
                    tail = worker.log_tail() if hasattr(worker, "log_tail") else worker.log()
                    raise RuntimeError(f"a worker process died:\n{tail}")
            time.sleep(0.02)

    def _stop(self, workers: list[Any]) -> None:
        from minibull.processes import WorkerProcess, stop_workers

        cli = [worker for worker in workers if isinstance(worker, WorkerProcess)]
        if cli:
            try:
                stop_workers(cli, timeout=15)
            except subprocess.TimeoutExpired:
                for worker in cli:
                    worker.kill()
        for worker in workers:
            if isinstance(worker, Child):
                worker.stop()

    def _minibull_pause(self, lib: str, paused: bool) -> None:
        from minibull import Queue

        async def toggle() -> None:
            async with Queue(self.queue_name(lib), self.url) as queue:
                await (queue.pause() if paused else queue.resume())

        asyncio.run(toggle())

    def _start_minibull_cli(
        self, lib: str, kind: str, processes: int, concurrency: int, env: dict[str, str]
    ) -> list[Any]:
        """``minibull worker`` processes through ``minibull.processes.start_workers``."""
        from minibull.processes import start_workers

        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)  # WorkerProcess passes our environment on
        cwd = os.getcwd()
        os.chdir(ROOT)  # the processor's module is imported from here
        try:
            workers = start_workers(
                processes,
                self.queue_name(lib),
                f"bench.adapters.minibull_bench:{kind}",
                url=self.url,
                concurrency=concurrency,
                args=("--quiet", "--summary-interval", "0"),  # no line per job: measure the queue
            )
        finally:
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(saved)
        # Ready: each worker said so, and is blocked on the (paused) queue's marker.
        deadline = time.time() + 60
        while time.time() < deadline:
            started = all("minibull worker: queue" in worker.log() for worker in workers)
            blocked = sum(
                1 for client in self.redis.client_list() if client.get("cmd") == "bzpopmin"
            )
            if started and blocked >= processes:
                return workers
            for worker in workers:
                if not worker.running:
                    raise RuntimeError(f"a minibull worker process died:\n{worker.log()}")
            time.sleep(0.05)
        raise TimeoutError("the minibull worker processes did not start")

    # references

    def raw(self) -> dict[str, Any]:
        self.flush()
        child = Child(
            ["raw", "--url", self.url, "--seconds", str(self.args.raw_seconds)],
            self.log_name("raw"),
            child_env(),
        )
        try:
            return child.result(timeout=60)
        finally:
            child.stop()

    def embedded(self) -> dict[str, Any]:
        child = Child(
            ["embedded", "--jobs", str(self.args.embedded_jobs), "--batch", str(self.args.batch)],
            self.log_name("embedded"),
            child_env(),
        )
        try:
            return child.result(timeout=600)
        finally:
            child.stop()


# -- the whole run -----------------------------------------------------------


def measure(bench: Bench, args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = []
    libs = args.libs
    for run in range(args.runs):
        bench.run_index = run
        print(f"run {run + 1}/{args.runs}", flush=True)
        results: dict[str, Any] = {"libs": {lib: {} for lib in libs}}
        if "raw" in args.scenarios:
            results["raw"] = bench.raw()
            print(f"  raw redis-py: {fmt_dict(results['raw'])}", flush=True)
        if "embedded" in args.scenarios and "minibull" in libs:
            results["embedded"] = bench.embedded()
            print(f"  minibull embedded: {fmt_dict(results['embedded'])}", flush=True)
        # Rotate the order each run, so no library always goes first (or last).
        order = libs[run % len(libs) :] + libs[: run % len(libs)]
        for scenario in SCENARIOS:
            if scenario not in args.scenarios:
                continue
            if scenario == "enqueue_single":
                results["floors"] = run_single(bench, order, results["libs"])
                continue
            for lib in order:
                result = run_one(bench, lib, scenario)
                if result is None:
                    continue
                results["libs"][lib][scenario] = result
                print(f"  {scenario:<16} {lib:<9} {fmt_result(result)}", flush=True)
        runs.append(results)
        if args.save_each_run:
            args.save_each_run(runs)
    return runs


def run_single(
    bench: Bench, libs: list[str], found: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """enqueue_single for all the libraries at once (interleaved): each library's result
    goes into ``found``; minibull's floors are returned."""
    libs = [lib for lib in libs if takes_part(lib, "enqueue_single")]
    try:
        results = bench.enqueue_single(libs)
    except Exception as exc:  # e.g. Redis gone: every producer of the step failed
        print(f"  enqueue_single   FAILED: {exc}", flush=True)
        results = {lib: {"error": str(exc)} for lib in libs}
    for name, result in results.items():
        print(f"  enqueue_single   {name:<11} {fmt_result(result)}", flush=True)
        if name in found:
            found[name]["enqueue_single"] = result
    return {name: result for name, result in results.items() if name in FLOORS}


def takes_part(lib: str, scenario: str) -> bool:
    adapter = __import__(f"bench.adapters.{lib}_bench", fromlist=["BULK"])
    return scenario in getattr(adapter, "SCENARIOS", (scenario,))


def run_one(bench: Bench, lib: str, scenario: str) -> dict[str, Any] | None:
    adapter = __import__(f"bench.adapters.{lib}_bench", fromlist=["BULK"])
    if not takes_part(lib, scenario):
        return None
    try:
        if scenario == "enqueue_bulk":
            return bench.enqueue_bulk(lib) if adapter.BULK else None
        _, kind, drain = scenario.split("_")
        return bench.drain(lib, kind, drain)
    except Exception as exc:  # one library failing must not lose the others' numbers
        print(f"  {scenario:<16} {lib:<9} FAILED: {exc}", flush=True)
        return {"error": str(exc)}


def fmt_result(result: dict[str, Any]) -> str:
    if "error" in result:
        return "error"
    parts = [f"{result['rate']:>9,.0f} jobs/s"]
    if "p50_us" in result and result.get("p50_us") is not None:
        parts.append(f"p50 {result['p50_us']:.0f} us p99 {result['p99_us']:.0f} us")
    if "of_ideal" in result:
        parts.append(f"{result['of_ideal']:.1%} of ideal")
    parts.append(f"{result['round_trips']:.2f} RT/job {result['server_commands']:.1f} cmds/job")
    if "cpu_us" in result:
        parts.append(f"CPU {result['cpu_us']:.0f} us/job")
    if result.get("capped"):
        parts.append(f"stopped after {result['done']:,} jobs")
    return ", ".join(parts)


def fmt_dict(values: dict[str, Any]) -> str:
    parts = []
    for name, value in values.items():
        if isinstance(value, dict) and "rate" not in value:  # e.g. {"us": ...}
            parts.extend(f"{name} {v:,.1f} {unit}" for unit, v in value.items())
        else:
            rate = value["rate"] if isinstance(value, dict) else value
            parts.append(f"{name} {rate:,.0f}/s")
    return ", ".join(parts)


def machine(url: str, args: argparse.Namespace) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    server = client.info("server")
    client.close()
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in ("minibull", *LIBRARIES, "redis", "hiredis", "fakeredis", "lupa"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "minibull"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "redis_server": server.get("redis_version"),
        "redis_where": "private redis-server on loopback" if not args.redis else args.redis,
        # every library's processes hide hiredis (bench/pure_parser) but minibull_hiredis's
        "redis_py_parser": "pure Python",
        "versions": versions,
        "minibull_commit": commit + (" (minibull/ has uncommitted changes)" if dirty else ""),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "jobs": args.jobs,
        "rounds": args.rounds,
        "runs": args.runs,
        "batch": args.batch,
        "io_seconds": args.io_seconds,
        "max_seconds": args.max_seconds,
        "embedded_jobs": args.embedded_jobs,
    }


def render(out: Path) -> dict[str, Any]:
    """The report of the runs saved in ``out/results.json``, made again by this report.py
    (a change to the report, not to the measures, needs no new 15-minute run)."""
    saved = json.loads((out / "results.json").read_text())
    results = report.summarise(saved["machine"], saved["runs"], list(saved["summary"]))
    if "chaos" in saved:
        results["chaos"] = saved["chaos"]
    write_results(results, out)
    return results


def write_results(results: dict[str, Any], out: Path) -> None:
    """``results.json``, ``results.md`` and the figures in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text(report.markdown(results))
    report.figures(results, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, help="runs of everything, for medians (default 5)")
    parser.add_argument("--jobs", type=int, help="jobs per measurement (default 10,000)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1,000 jobs, 2 runs, minibull (async and sync) + bullmq + huey (a try, not a result)",
    )
    parser.add_argument("--batch", type=int, default=1000, help="jobs per bulk enqueue call")
    parser.add_argument(
        "--rounds",
        type=int,
        default=20,
        help="enqueue_single: turns each library takes, jobs/rounds adds a turn "
        "(default 20; 5 with --quick)",
    )
    parser.add_argument(
        "--io-seconds",
        type=float,
        default=2.0,
        help="10 ms jobs: about this many seconds' worth at the ideal rate",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=4.0,
        help="stop a drain after this long (its rate: jobs done so far)",
    )
    parser.add_argument(
        "--redis",
        help="an existing Redis URL with a db of its own (default: start a private redis-server)",
    )
    parser.add_argument("--libs", help=f"comma-separated (default: {','.join(LIBRARIES)})")
    parser.add_argument("--scenarios", default=",".join(("raw", "embedded", *SCENARIOS, "chaos")))
    parser.add_argument(
        "--chaos-jobs", type=int, default=20_000, help="jobs of the random-kills chaos run"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    parser.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: write results.md, the figures and the README section again "
        "from --out's results.json (its runs, summarised by the current report.py)",
    )
    args = parser.parse_args(argv)
    if args.render:
        results = render(args.out)
        if not args.no_readme:
            report.update_readme(ROOT / "README.md", results)
        print(report.targets_text(results))
        return 0
    # --quick: 5 rounds of 200 adds (a block's first add, just woken, is slow: 1 in 200)
    quick = {"jobs": 1000, "runs": 2, "io_seconds": 0.5, "max_seconds": 3.0, "rounds": 5}
    for name, value in quick.items():
        if args.quick and getattr(args, name) == parser.get_default(name):
            setattr(args, name, value)
    args.jobs = args.jobs or 10_000
    args.runs = args.runs or 5
    args.embedded_jobs = min(args.jobs, 1000) if not args.quick else 500
    args.raw_seconds = 0.3 if args.quick else 1.0
    if args.quick and args.chaos_jobs == parser.get_default("chaos_jobs"):
        args.chaos_jobs = 2000
    if args.libs is None:
        args.libs = "minibull,minibull_sync,bullmq,huey" if args.quick else ",".join(LIBRARIES)
    args.libs = [lib for lib in args.libs.split(",") if lib]
    unknown = set(args.libs) - set(LIBRARIES)
    if unknown:
        parser.error(f"unknown libraries {sorted(unknown)}; known: {', '.join(LIBRARIES)}")
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    if not 1 <= args.rounds <= args.jobs:
        parser.error(f"--rounds must be between 1 and --jobs ({args.jobs}) (got {args.rounds})")
    if args.redis and "/0" == args.redis[-2:]:
        parser.error("use a database of its own (e.g. /14): the benchmark flushes it")

    # Stopped with SIGTERM: unwind, so the private redis-server and the children stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    with redis_server(args.redis) as url:
        info = machine(url, args)
        print(
            f"{info['cores']} cores, Redis {info['redis_server']} ({info['redis_where']}), "
            f"{args.jobs} jobs, {args.runs} runs; logs in {LOGS}",
            flush=True,
        )

        found_chaos: dict[str, Any] = {}

        def save(runs: list[dict[str, Any]]) -> dict[str, Any]:
            """Write the results so far (after every run: a stopped bench keeps its runs)."""
            info["minutes"] = round((time.time() - started) / 60, 1)
            info["runs"] = len(runs)
            results = report.summarise(info, runs, args.libs)
            if found_chaos:
                results["chaos"] = found_chaos
            write_results(results, args.out)
            return results

        args.save_each_run = save
        bench = Bench(args, url)
        runs = measure(bench, args)
        if "chaos" in args.scenarios and "minibull" in args.libs:
            print(
                f"chaos: {args.chaos_jobs:,} jobs, 4 worker processes, random SIGKILLs", flush=True
            )
            bench.flush()
            found_chaos.update(asyncio.run(chaos.run_all(url, free_port(), args.chaos_jobs)))
            for name, figures in found_chaos.items():
                print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()), flush=True)
        results = save(runs)
    if not args.no_readme:
        report.update_readme(ROOT / "README.md", results)
    print()
    print(report.targets_text(results))
    print(f"\nwrote {args.out}/results.json, results.md and figures ({info['minutes']} minutes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
