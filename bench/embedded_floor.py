"""Where a job's time goes on the embedded default (issue #13, item 4): fakeredis's cost
per round trip and per ``redis.call`` inside a script, and how many of each one no-op job
makes end to end (``add`` one at a time, then a worker at concurrency 10).

    .venv/bin/python bench/embedded_floor.py [--jobs 2000]

Runs on a fresh in-process server (never a real Redis). Prints the µs of each fakeredis
step (medians of ``--rounds`` turns), the commands counted per job, the jobs/s measured,
and the floor those costs set: the sum of each command's count times its cost.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fakeredis  # noqa: E402

import minibull  # noqa: E402
from minibull import embedded  # noqa: E402

#: One script per measured step: the same command ten times (KEYS[1] a hash, KEYS[2] a stream).
INNER = {
    "HGET": "redis.call('HGET', KEYS[1], 'x')",
    "HSET (6 fields)": "redis.call('HSET', KEYS[1], 'name', 'a', 'data', 'b', 'opts', 'c', "
    "'timestamp', 1, 'delay', 0, 'priority', 0)",
    "XADD": "redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'event', 'waiting', "
    "'jobId', '1')",
}


async def step_costs(rounds: int, calls: int = 200) -> dict[str, float]:
    """µs of: PING, EVALSHA 'return 1', and each INNER command inside a script."""
    client = embedded.embedded_client(fakeredis.FakeServer())
    scripts = {"EVALSHA 'return 1'": "return 1"}
    scripts |= {name: f"for i = 1, 10 do {line} end return 1" for name, line in INNER.items()}
    shas = {name: await client.script_load(source) for name, source in scripts.items()}
    timings: dict[str, list[float]] = collections.defaultdict(list)
    clock = time.perf_counter
    for _ in range(rounds):
        started = clock()
        for _ in range(calls):
            await client.ping()
        timings["PING (a round trip)"].append((clock() - started) / calls * 1e6)
        for name, sha in shas.items():
            started = clock()
            for _ in range(calls):
                await client.evalsha(sha, 2, "h", "s")
            timings[name].append((clock() - started) / calls * 1e6)
    await client.aclose()
    costs = {name: statistics.median(values) for name, values in timings.items()}
    base = costs["EVALSHA 'return 1'"]
    for name in INNER:  # one inner call: (ten of them - the empty script) / 10
        costs[name] = (costs[name] - base) / 10
    return costs


async def end_to_end(jobs: int) -> tuple[float, collections.Counter[str], int]:
    """jobs/s of add one at a time then a worker at c10, the redis.calls made, round trips."""
    inner: collections.Counter[str] = collections.Counter()
    original = embedded._ScriptCaching._lua_redis_call

    def counting(self: Any, runtime: Any, expected: Any, op: bytes, *args: Any) -> Any:
        inner[op.decode().upper() if isinstance(op, bytes) else str(op).upper()] += 1
        return original(self, runtime, expected, op, *args)

    server = fakeredis.FakeServer()
    embedded.sandbox_lua(server)
    done = asyncio.Event()
    finished = 0

    async def noop(job: object) -> None:
        nonlocal finished
        finished += 1
        if finished == jobs:
            done.set()

    queue = minibull.Queue("floor", embedded.embedded_client(server))
    worker = minibull.Worker("floor", noop, embedded.embedded_client(server), concurrency=10)
    await queue.add("warm-up", {})
    commands = 0
    sent = queue.redis.connection_pool.connection_class.send_packed_command

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal commands
        commands += 1
        return await sent(self, *args, **kwargs)

    embedded._ScriptCaching._lua_redis_call = counting  # type: ignore[method-assign]
    embedded.ScriptCachingConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        for i in range(jobs - 1):
            await queue.add("job", {"i": i})
        worker.start()
        await done.wait()
        seconds = time.perf_counter() - started
    finally:
        embedded._ScriptCaching._lua_redis_call = original  # type: ignore[method-assign]
        del embedded.ScriptCachingConnection.send_packed_command
        await worker.close()
        await queue.close()
    return jobs / seconds, inner, commands


def report(
    costs: dict[str, float], rate: float, inner: collections.Counter[str], trips: int, jobs: int
) -> None:
    print("fakeredis, one step (µs, median):")
    for name, value in costs.items():
        print(f"  {name:<22} {value:7.1f}")
    print(
        f"end to end, {jobs} no-op jobs (add one at a time, then a worker at c10): "
        f"{rate:,.0f} jobs/s"
    )
    print(f"  round trips per job: {trips / jobs:.2f}")
    per_job = {name: count / jobs for name, count in inner.most_common()}
    print(
        "  redis.calls inside scripts per job: "
        + ", ".join(f"{n} {c:.2f}" for n, c in per_job.items())
    )
    typical = costs["HGET"]
    priced = {"HSET": costs["HSET (6 fields)"], "XADD": costs["XADD"]}
    inner_us = sum(count * priced.get(name, typical) for name, count in per_job.items())
    trip_us = trips / jobs * costs["EVALSHA 'return 1'"]
    floor = trip_us + inner_us
    print(
        f"  floor from these costs: {trip_us:.0f} µs of round trips + {inner_us:.0f} µs of "
        f"redis.calls (other commands priced as HGET) = {floor:.0f} µs per job, "
        f"{1e6 / floor:,.0f} jobs/s at most (2,000 jobs/s needs 500 µs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    costs = asyncio.run(step_costs(args.rounds))
    rate, inner, trips = asyncio.run(end_to_end(args.jobs))
    report(costs, rate, inner, trips, args.jobs)


if __name__ == "__main__":
    main()
