"""One benchmark process, started by the driver (``bench/run.py``) for one measurement.

    python -m bench.child blocks  LIB --url U --queue Q --kind noop --warmup 200
    python -m bench.child enqueue LIB --url U --queue Q --kind noop --jobs N --mode bulk
    python -m bench.child worker  LIB --url U --queue Q --kind noop --concurrency 10
    python -m bench.child embedded --jobs N        (minibull on its in-process default)
    python -m bench.child raw --url U --seconds 1  (redis-py alone: the physical reference)

The protocol with the driver is line-based on the real stdout: "ready" when the
process has imported and built everything, then it waits for "go" on stdin, and
an enqueue prints one JSON line of results. ``blocks`` (one add at a time, interleaved
with the other libraries' children) instead answers "block N" with "done" once it has
timed N more adds, and "end" with the JSON line over all its blocks. Anything a
library prints goes to stderr (the driver keeps it in a log file).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import logging
import os
import statistics
import sys
import time
from typing import Any

from bench import probe

_protocol = sys.stdout


def _take_stdout() -> None:
    """Keep the real stdout for the protocol; everything else printed goes to stderr."""
    global _protocol
    _protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)


def say(line: str) -> None:
    _protocol.write(line + "\n")
    _protocol.flush()


def wait_for_go() -> None:
    say("ready")
    if sys.stdin.readline().strip() != "go":
        sys.exit(0)  # the driver gave up on this run
    probe.Traffic.reset()


def adapter(lib: str) -> Any:
    return importlib.import_module(f"bench.adapters.{lib}_bench")


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- one add at a time, in blocks ----------------------------------------------


class AsyncFloor:
    """Queue.add's floor (issue #13): an EVALSHA of ``return 1`` on ``connect(url)``, the
    client every Queue makes."""

    def __init__(self, client: Any, sha: str) -> None:
        self.client, self.sha = client, sha

    @classmethod
    async def open(cls, url: str, queue: str) -> AsyncFloor:
        from minibull.connection import connect

        client = connect(url)
        return cls(client, await client.script_load("return 1"))

    async def add_one(self, i: int) -> None:
        await self.client.evalsha(self.sha, 0)

    async def close(self) -> None:
        await self.client.aclose()


def _add_job_call(queue: str) -> tuple[str, list[str], list[Any]]:
    """The addJob script's source, KEYS and ARGV for one job of ``queue``, built once."""
    from minibull.keys import QueueKeys
    from minibull.options import build_job
    from minibull.scripts import add_job_args, script_source

    keys, argv = add_job_args(QueueKeys(queue, "bull"), 0, [build_job("job", {"i": 0})])
    return script_source("addJob"), keys, argv


class _AddJobCall:
    """A client, the addJob script's sha and one job's arguments, made once."""

    def __init__(self, client: Any, sha: str, keys: list[str], argv: list[Any]) -> None:
        self.client, self.sha, self.arguments = client, sha, (len(keys), *keys, *argv)


class AsyncAddJobFloor(_AddJobCall):
    """Not a target, the account of one: an EVALSHA of the addJob script with its arguments
    built once, on ``connect(url)``. ``Queue.add`` minus this is minibull's Python around
    the call; this minus ``AsyncFloor`` is what BullMQ's add costs in Redis and on the wire."""

    @classmethod
    async def open(cls, url: str, queue: str) -> AsyncAddJobFloor:
        from minibull.connection import connect

        client = connect(url)
        source, keys, argv = _add_job_call(queue)
        return cls(client, await client.script_load(source), keys, argv)

    async def add_one(self, i: int) -> None:
        await self.client.evalsha(self.sha, *self.arguments)

    async def close(self) -> None:
        await self.client.aclose()


class SyncFloor(_AddJobCall):
    """SyncQueue.add's floor (issue #13): a sync EVALSHA of the addJob script with its
    arguments built once, on ``connect_sync(url)`` (each call adds one more job)."""

    @classmethod
    def open(cls, url: str, queue: str) -> SyncFloor:
        from minibull.connection import connect_sync

        client = connect_sync(url)
        source, keys, argv = _add_job_call(queue)
        return cls(client, client.script_load(source), keys, argv)

    def add_one(self, i: int) -> None:
        self.client.evalsha(self.sha, *self.arguments)

    def close(self) -> None:
        self.client.close()


#: Producers measured beside the libraries in the single-add rounds, not libraries.
FLOORS = {
    "async_floor": AsyncFloor,
    "async_addjob_floor": AsyncAddJobFloor,
    "sync_floor": SyncFloor,
}


class Pooled:
    """Every timed block of one producer, pooled: percentiles over all the latencies,
    the rate over the blocks' summed time, costs per job."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.blocks = 0
        self.seconds = self.cpu = 0.0
        self.round_trips = self.commands = 0

    def add(self, latencies: list[float], seconds: float, cpu: float, traffic: tuple) -> None:
        self.latencies += latencies
        self.blocks += 1
        self.seconds += seconds
        self.cpu += cpu
        self.round_trips += traffic[0]
        self.commands += traffic[1]

    def result(self) -> dict[str, float]:
        jobs = len(self.latencies)
        return {
            "jobs": jobs,
            "blocks": self.blocks,
            "seconds": self.seconds,
            "rate": jobs / self.seconds,
            "p50_us": percentile(self.latencies, 0.50) * 1e6,
            "p99_us": percentile(self.latencies, 0.99) * 1e6,
            "mean_us": statistics.fmean(self.latencies) * 1e6,
            "round_trips": self.round_trips / jobs,
            "client_commands": self.commands / jobs,
            "cpu_us": self.cpu / jobs * 1e6,
        }


async def time_block(producer: Any, first: int, count: int, pooled: Pooled) -> None:
    """``count`` adds in a row, each timed, added to ``pooled``."""
    probe.Traffic.reset()
    latencies = []
    cpu = time.process_time()
    started = time.perf_counter()
    for i in range(first, first + count):
        t0 = time.perf_counter()
        await _maybe(producer.add_one(i))
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    pooled.add(latencies, seconds, cpu, (probe.Traffic.round_trips, probe.Traffic.commands))


async def serve_blocks(producer: Any, commands: Any) -> dict[str, float]:
    """Answer the driver's lines: "block N" times N more adds and says "done"; "end" (or
    the end of the input) returns the result over all the blocks."""
    pooled = Pooled()
    for line in commands:
        words = line.split()
        if words[:1] == ["block"]:
            await time_block(producer, len(pooled.latencies), int(words[1]), pooled)
            say("done")
        elif words[:1] == ["end"] or not words:
            break
        else:
            raise SystemExit(f"unknown command {line!r}: expected 'block N' or 'end'")
    return pooled.result()


async def blocks(args: argparse.Namespace) -> None:
    """One add at a time, in blocks the driver asks for (interleaved with other children)."""
    probe.count_redis_traffic()
    if args.lib in FLOORS:
        producer = await _maybe(FLOORS[args.lib].open(args.url, args.queue))
    else:
        producer = adapter(args.lib).Producer(args.url, args.queue, args.kind)
    for i in range(args.warmup):  # connect and load scripts outside the timed part
        await _maybe(producer.add_one(-1 - i))
    say("ready")
    result = await serve_blocks(producer, iter(sys.stdin.readline, ""))
    await _maybe(producer.close())
    say(json.dumps(result))


# -- enqueue -------------------------------------------------------------------


async def enqueue(args: argparse.Namespace) -> None:
    probe.count_redis_traffic()
    lib = adapter(args.lib)
    producer = lib.Producer(args.url, args.queue, args.kind)
    bulk = args.mode == "bulk" or (args.mode == "fill" and lib.BULK)
    if args.mode == "bulk" and not lib.BULK:
        raise SystemExit(f"{args.lib} has no bulk enqueue")
    if args.warmup:  # connect and load scripts outside the timed part
        await _maybe(producer.add_one(-1))
        for i in range(1, args.warmup):
            await _maybe(producer.add_one(-1 - i))
    if args.handshake:
        wait_for_go()
    probe.Traffic.reset()
    latencies: list[float] = []
    cpu = time.process_time()
    started = time.perf_counter()
    if bulk:
        for start in range(0, args.jobs, args.batch):
            t0 = time.perf_counter()
            await _maybe(producer.add_bulk(start, min(args.batch, args.jobs - start)))
            latencies.append(time.perf_counter() - t0)
    else:
        for i in range(args.jobs):
            t0 = time.perf_counter()
            await _maybe(producer.add_one(i))
            latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    traffic = (probe.Traffic.round_trips, probe.Traffic.commands)
    await _maybe(producer.close())
    say(
        json.dumps(
            {
                "seconds": seconds,
                "rate": args.jobs / seconds,
                "p50_us": percentile(latencies, 0.50) * 1e6,
                "p99_us": percentile(latencies, 0.99) * 1e6,
                "mean_us": statistics.fmean(latencies) * 1e6,
                "round_trips": traffic[0] / args.jobs,
                "client_commands": traffic[1] / args.jobs,
                "cpu_us": cpu / args.jobs * 1e6,
            }
        )
    )


# -- worker --------------------------------------------------------------------


async def fill(lib: Any, args: argparse.Namespace) -> None:
    """Enqueue the jobs a drain will run, with the library's fastest enqueue (not timed)."""
    producer = lib.Producer(args.url, args.queue, args.kind)
    if lib.BULK:
        for start in range(0, args.fill, args.batch):
            await _maybe(producer.add_bulk(start, min(args.batch, args.fill - start)))
    else:
        for i in range(args.fill):
            await _maybe(producer.add_one(i))
    await _maybe(producer.close())


def worker(args: argparse.Namespace) -> None:
    probe.start_probe()
    lib = adapter(args.lib)
    if args.fill:
        asyncio.run(fill(lib, args))
    served = lib.serve(args.url, args.queue, args.concurrency, args.kind, wait_for_go)
    if inspect.isawaitable(served):
        asyncio.run(served)


# -- minibull on the embedded default ---------------------------------------


async def embedded(args: argparse.Namespace) -> None:
    """minibull with no Redis at all (fakeredis in this process), as on a learner's laptop."""
    from minibull import Queue, Worker

    n = args.jobs
    results: dict[str, Any] = {}

    async def add_single(queue: Queue, count: int) -> list[float]:
        latencies = []
        for i in range(count):
            t0 = time.perf_counter()
            await queue.add("job", {"i": i})
            latencies.append(time.perf_counter() - t0)
        return latencies

    async def add_bulk(queue: Queue, count: int) -> None:
        for start in range(0, count, args.batch):
            size = min(args.batch, count - start)
            await queue.add_bulk(
                [{"name": "job", "data": {"i": i}} for i in range(start, start + size)]
            )

    async def drain(name: str, count: int, concurrency: int) -> float:
        done = asyncio.Event()
        finished = 0

        async def noop(job: object) -> None:
            nonlocal finished
            finished += 1
            if finished == count:
                done.set()

        worker = Worker(name, noop, concurrency=concurrency)
        started = time.perf_counter()
        worker.start()
        await asyncio.wait_for(done.wait(), timeout=600)
        seconds = time.perf_counter() - started
        await worker.close()
        return seconds

    # fakeredis's cost of one command inside a script: 20 HGETs, minus an empty script.
    async with Queue("emb-probe") as queue:
        await queue.redis.hset("emb-probe-hash", "x", "1")
        empty = queue.redis.register_script("return 1")
        twenty = queue.redis.register_script(
            "for i = 1, 20 do redis.call('HGET', KEYS[1], 'x') end return 1"
        )
        timings = []
        for script in (empty, twenty):
            await script(keys=["emb-probe-hash"])
            t0 = time.perf_counter()
            for _ in range(500):
                await script(keys=["emb-probe-hash"])
            timings.append((time.perf_counter() - t0) / 500)
        results["script_command_us"] = {"us": (timings[1] - timings[0]) / 20 * 1e6}
        await queue.redis.delete("emb-probe-hash")
    async with Queue("emb-single") as queue:
        await add_single(queue, 50)  # warm-up: scripts loaded
        t0 = time.perf_counter()
        latencies = await add_single(queue, n)
        seconds = time.perf_counter() - t0
    results["enqueue_single"] = {
        "rate": n / seconds,
        "p50_us": percentile(latencies, 0.5) * 1e6,
        "p99_us": percentile(latencies, 0.99) * 1e6,
    }
    async with Queue("emb-bulk") as queue:
        await add_bulk(queue, 50)
        t0 = time.perf_counter()
        await add_bulk(queue, n)
        results["enqueue_bulk"] = {"rate": n / (time.perf_counter() - t0)}
    for concurrency in (1, 10):
        name = f"emb-drain-c{concurrency}"
        async with Queue(name) as queue:
            await add_bulk(queue, n)
        seconds = await drain(name, n, concurrency)
        results[f"drain_noop_c{concurrency}"] = {"rate": n / seconds}
    # End to end: add the jobs and run them all, as a notebook cell would.
    for mode in ("bulk", "single"):
        name = f"emb-e2e-{mode}"
        async with Queue(name) as queue:
            t0 = time.perf_counter()
            if mode == "bulk":
                await add_bulk(queue, n)
            else:
                await add_single(queue, n)
            seconds = await drain(name, n, 10)
            results[f"e2e_{mode}_c10"] = {"rate": n / (time.perf_counter() - t0)}
    say(json.dumps(results))


# -- the physical reference --------------------------------------------------


async def sleepers_asyncio(tasks: int, seconds: float, duration: float) -> float:
    """Sleeps per second done by ``tasks`` asyncio tasks, each sleeping in a loop."""
    done = 0
    deadline = time.perf_counter() + duration

    async def sleeper() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await asyncio.sleep(seconds)
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(sleeper() for _ in range(tasks)))
    return done / (time.perf_counter() - t0)


async def sleepers_with_a_round_trip(
    url: str, tasks: int, seconds: float, duration: float, redis_py: bool
) -> float:
    """Jobs per second of ``tasks`` asyncio tasks that each sleep ``seconds`` and then make
    one Redis round trip, in a loop: the least any asyncio worker does per job (it must
    record each job in Redis). ``redis_py``: an EVALSHA of ``return 1`` with redis.asyncio;
    else a PING written and read on a bare asyncio socket (no client library at all)."""
    import redis.asyncio

    done = 0
    deadline = time.perf_counter() + duration
    client = redis.asyncio.Redis.from_url(url, max_connections=tasks)
    sha = await client.script_load("return 1")
    address = client.connection_pool.connection_kwargs
    host, port = address.get("host", "127.0.0.1"), address.get("port", 6379)

    async def with_redis_py() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await asyncio.sleep(seconds)
            await client.evalsha(sha, 0)
            done += 1

    async def with_a_socket() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                await asyncio.sleep(seconds)
                writer.write(b"*1\r\n$4\r\nPING\r\n")
                await reader.readline()
                done += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*((with_redis_py if redis_py else with_a_socket)() for _ in range(tasks)))
    rate = done / (time.perf_counter() - t0)
    await client.aclose()
    return rate


def sleepers_threads(threads: int, seconds: float, duration: float) -> float:
    """Sleeps per second done by ``threads`` threads, each calling time.sleep in a loop."""
    import threading

    counts = [0] * threads
    deadline = time.perf_counter() + duration

    def sleeper(index: int) -> None:
        while time.perf_counter() < deadline:
            time.sleep(seconds)
            counts[index] += 1

    t0 = time.perf_counter()
    pool = [threading.Thread(target=sleeper, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.perf_counter() - t0)


def raw(args: argparse.Namespace) -> None:
    """redis-py alone on one connection: PING, a trivial EVALSHA, LPUSH+BRPOP pairs."""
    import redis
    import redis.asyncio

    key = "bench:raw"
    results: dict[str, float] = {}

    def timed(name: str, step: Any) -> None:
        count, deadline = 0, time.perf_counter() + args.seconds
        t0 = time.perf_counter()
        while time.perf_counter() < deadline:
            for _ in range(100):
                step()
            count += 100
        results[name] = count / (time.perf_counter() - t0)

    client = redis.Redis.from_url(args.url, single_connection_client=True)
    sha = client.script_load("return 1")
    timed("sync_ping", client.ping)
    timed("sync_evalsha", lambda: client.evalsha(sha, 0))
    timed("sync_lpush_brpop", lambda: (client.lpush(key, "x"), client.brpop([key], 1)))
    client.delete(key)
    client.close()

    async def async_part() -> None:
        aclient = redis.asyncio.Redis.from_url(args.url, single_connection_client=True)

        async def atimed(name: str, step: Any) -> None:
            count, deadline = 0, time.perf_counter() + args.seconds
            t0 = time.perf_counter()
            while time.perf_counter() < deadline:
                for _ in range(100):
                    await step()
                count += 100
            results[name] = count / (time.perf_counter() - t0)

        async def pair() -> None:
            await aclient.lpush(key, "x")
            await aclient.brpop([key], 1)

        await atimed("async_ping", aclient.ping)
        await atimed("async_evalsha", lambda: aclient.evalsha(sha, 0))
        await atimed("async_lpush_brpop", pair)
        await aclient.delete(key)
        await aclient.aclose()
        # No queue at all: what 10 ms jobs at concurrency 10 could reach on this machine.
        results["async_sleep_c10"] = await sleepers_asyncio(10, 0.01, 2 * args.seconds)
        # ... and with the one round trip per job that recording a job needs, at the least.
        for name, redis_py in (("async_sleep_ping_c10", False), ("async_sleep_evalsha_c10", True)):
            results[name] = await sleepers_with_a_round_trip(
                args.url, 10, 0.01, 2 * args.seconds, redis_py
            )

    asyncio.run(async_part())
    results["thread_sleep_c10"] = sleepers_threads(10, 0.01, 2 * args.seconds)
    say(json.dumps(results))


def main() -> None:
    _take_stdout()
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m bench.child")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("blocks", "enqueue", "worker"):
        command = commands.add_parser(name)
        command.add_argument("lib")
        command.add_argument("--url", required=True)
        command.add_argument("--queue", required=True)
        command.add_argument("--kind", default="noop", choices=("noop", "io"))
    enq = commands.choices["enqueue"]
    enq.add_argument("--jobs", type=int, required=True)
    enq.add_argument("--mode", default="bulk", choices=("bulk", "fill"))
    enq.add_argument("--batch", type=int, default=1000)
    enq.add_argument("--warmup", type=int, default=0)
    enq.add_argument("--handshake", action="store_true")
    commands.choices["blocks"].add_argument("--warmup", type=int, default=200)
    work = commands.choices["worker"]
    work.add_argument("--concurrency", type=int, default=1)
    work.add_argument("--fill", type=int, default=0, help="enqueue this many jobs first")
    work.add_argument("--batch", type=int, default=1000)
    emb = commands.add_parser("embedded")
    emb.add_argument("--jobs", type=int, required=True)
    emb.add_argument("--batch", type=int, default=1000)
    rawp = commands.add_parser("raw")
    rawp.add_argument("--url", required=True)
    rawp.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    if args.command == "blocks":
        asyncio.run(blocks(args))
    elif args.command == "enqueue":
        asyncio.run(enqueue(args))
    elif args.command == "worker":
        worker(args)
    elif args.command == "embedded":
        asyncio.run(embedded(args))
    else:
        raw(args)


if __name__ == "__main__":
    main()
