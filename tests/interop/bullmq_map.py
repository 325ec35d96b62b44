"""The map of a queue in Redis: each key, job-hash field, meta field and event, with who
writes it and who reads it, for minibull and both BullMQs. It renders docs/bullmq-map.md.

Nothing in the tables is typed by hand except the meanings: ``observe`` watches Redis
(MONITOR) while one implementation runs ``SCENARIO`` alone on a queue of its own, and
records every key, hash field and event its scripts and clients touch. Fields a client
reads from HGETALL are found in its job decoder's source (``decoder_fields``). A name
that is observed but has no meaning here makes ``render`` fail: describe it first.
test_bullmq_map.py re-observes and checks the file, so the map cannot go stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import ConnectionPool

from tests.conftest import wait_for
from tests.interop import peers
from tests.interop.peers import Peer

IMPLEMENTATIONS = ("minibull", "node", "python")
DOC = peers.ROOT / "docs" / "bullmq-map.md"

# -- meanings (the only hand-written part) -------------------------------------------

#: Keys under ``<prefix>:<queue>:``; ``<id>`` is any job id.
KEYS = {
    "<id>": ("HASH", "the job (fields below)"),
    "<id>:lock": ("STRING", "the lock token of the worker running the job, with a TTL"),
    "<id>:logs": ("LIST", "the job's log lines"),
    "<id>:dependencies": ("SET", "flows: a parent's pending children (deleted with the job)"),
    "<id>:processed": ("HASH", "flows: a parent's completed children's results (deleted too)"),
    "<id>:failed": ("HASH", "flows: a parent's failed children (deleted too)"),
    "<id>:unsuccessful": ("ZSET", "flows: a parent's unsuccessful children (deleted too)"),
    "wait": ("LIST", "ready jobs: LPUSH in (RPUSH for lifo), RPOPLPUSH out at the right"),
    "active": ("LIST", "jobs a worker holds a lock on"),
    "prioritized": ("ZSET", "ready jobs with a priority; score priority * 2^32 + counter"),
    "pc": ("STRING", "the counter that keeps equal priorities first in, first out"),
    "delayed": ("ZSET", "jobs waiting for a time; score due ms * 4096 + sequence"),
    "marker": ("ZSET", 'wake-up for idle workers (BZPOPMIN): "0" at 0 = ready, "1" at due ms'),
    "completed": ("ZSET", "completed jobs; score finishedOn"),
    "failed": ("ZSET", "failed jobs; score finishedOn"),
    "stalled": ("SET", "active jobs suspected dead, checked on the next sweep"),
    "stalled-check": ("STRING", "held (with a TTL) by the worker that swept last"),
    "meta": ("HASH", "queue settings (fields below)"),
    "id": ("STRING", "the counter of job ids (advances for custom ids too)"),
    "events": ("STREAM", "the events (below), capped near opts.maxLenEvents"),
    "limiter": ("STRING", "jobs started in the current rate-limit window (with a TTL)"),
    "paused": ("LIST", "BullMQ v5's list of a paused queue's jobs; v6 only drains it"),
    "waiting-children": ("ZSET", "flows: parents waiting for their children; score when added"),
    "repeat": ("ZSET", "job schedulers by next run (ms)"),
    "repeat:<id>": ("HASH", "one job scheduler: its schedule and job template (fields below)"),
    "de:<id>": ("STRING", "the job that holds a deduplication id (TTL if one was given)"),
    "dn:<id>": ("HASH", "the add kept while a deduplication id's job runs (keepLastIfActive)"),
    "wakeup:<worker id>": ("ZSET", "minibull's own: ends one worker's BZPOPMIN, empty at rest"),
}

JOB_FIELDS = {
    "name": "the job's name",
    "data": "the job's data as JSON text",
    "opts": "the job options as JSON, BullMQ's camelCase names, times in ms",
    "timestamp": "when the job was added (ms)",
    "delay": "the current delay (ms); 0 once promoted",
    "priority": "the priority, 0 = none",
    "processedOn": "when the last run started (ms)",
    "finishedOn": "when it completed or failed (ms)",
    "returnvalue": "the processor's return value as JSON text",
    "failedReason": "the last failure's message",
    "stacktrace": "JSON list of the failures' stack traces",
    "progress": "the last progress value as JSON text",
    "atm": "attemptsMade: runs that ended (completed, failed or retried)",
    "ats": "attemptsStarted: runs begun",
    "stc": "stalledCounter: times recovered from a dead worker",
    "defa": "deferred failure: the reason a job must fail when next taken",
    "pb": "processedBy: the worker that took the job (see the differences)",
    "attemptsMade": "legacy name of atm, still read",
    "rjk": "the job scheduler that made the job",
    "mbf": "minibull's own: the token of the run that ended the job (and the job it fetched)",
    "deid": "the deduplication id",
    "parentKey": "the parent job's key (flows)",
    "parent": "the parent job as JSON (flows)",
    "flowAttachmentFailed": "Node's own (flows): a duplicated child could not join this parent; "
    "read and cleared once a flow is written",
    "id": "(decoders only: the id is not stored in the hash)",
}

META_FIELDS = {
    "paused": "set while the queue is paused",
    "concurrency": "global concurrency: jobs active at once over all workers",
    "max": "global rate limit: job starts per window",
    "duration": "global rate limit: the window (ms)",
    "opts.maxLenEvents": "the events stream's cap (default 10000; BullMQ writes it on first use)",
    "version": "the BullMQ version that created the queue (informative)",
}

SCHEDULER_FIELDS = {
    "name": "the name of the jobs it makes",
    "data": "their data as JSON text (BullMQ leaves out `{}`)",
    "opts": "their options as JSON (BullMQ leaves out `{}`)",
    "every": "the interval (ms), or",
    "pattern": "a cron pattern (six fields: seconds first)",
    "tz": "the time zone of the pattern",
    "limit": "at most this many runs",
    "startDate": "no run before (ms)",
    "endDate": "no run after (ms)",
    "offset": "`every`: the phase of the slots (first run mod every)",
    "ic": "iteration count: the jobs made so far, the pending one included",
}

EVENTS = {
    "added": "a job was added",
    "waiting": "a job became ready: added, promoted, retried at once or recovered",
    "delayed": "a job waits for a time (delay = the due time in ms)",
    "active": "a worker took a job",
    "progress": "a job reported progress (data is JSON)",
    "completed": "a job completed (returnvalue is JSON)",
    "failed": "a job failed for good",
    "retries-exhausted": "a failed job used up its attempts",
    "stalled": "a job's worker died; the job went back to wait",
    "duplicated": "an add with an existing job id was ignored",
    "deduplicated": "an add with a held deduplication id was ignored",
    "drained": "nothing left waiting or running",
    "paused": "the queue was paused",
    "resumed": "the queue was resumed",
    "removed": "a job was removed",
    "waiting-children": "flows: a parent waits for its children (added, or moved by its run)",
    "cleaned": "clean removed jobs",
}

# -- the scenario ---------------------------------------------------------------------

RETRY = {"attempts": 2, "backoff": {"type": "fixed", "delay": 20}}
SCENARIO_JOBS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("plain", {"log": "hello", "progress": [50]}, {}),
    ("retry-later", {"fail_times": 1}, RETRY),
    ("retry-now", {"fail_times": 1}, {"attempts": 2}),
    ("fails", {"fail_times": 9}, {}),
    ("delayed", {}, {"delay": 100}),
    ("prioritized", {}, {"priority": 2}),
    ("custom", {}, {"jobId": "custom-1"}),
    ("custom", {}, {"jobId": "custom-1"}),
    ("lifo", {}, {"lifo": True}),
    ("removed", {}, {"removeOnComplete": True}),
    ("deduplicated", {}, {"deduplication": {"id": "d1"}}),
    ("deduplicated", {}, {"deduplication": {"id": "d1"}}),
]
#: A job scheduler of the scenario: every second until two runs are done, then removed
#: (its next run is then surely still delayed, so every library emits `removed` for it).
SCHEDULER = ("sched", {"every": 1000}, "sched", {"n": 1})


def scenario_flows(queue: str) -> list[dict[str, Any]]:
    """Flows (issue 15) on the scenario's queue: a parent whose children all complete, and
    one whose failing children fail it (failParentOnFailure) or are ignored."""
    fails = {"fail_times": 9}
    return [
        {"name": "parent", "queueName": queue, "data": {}, "children": [
            {"name": "child", "queueName": queue, "data": {}},
            {"name": "ignored", "queueName": queue, "data": fails,
             "opts": {"ignoreDependencyOnFailure": True}}]},
        {"name": "parent", "queueName": queue, "data": {}, "children": [
            {"name": "doomed", "queueName": queue, "data": fails,
             "opts": {"failParentOnFailure": True}}]},
    ]  # fmt: skip


def _flow_ids(node: dict[str, Any]) -> list[str]:
    return [node["id"], *(i for child in node["children"] for i in _flow_ids(child))]


async def run_scenario(peer: Peer) -> None:
    """Every kind of job, pause and resume, limits, flows, and a stalled job; all by ``peer``
    alone."""
    await peer.start_events("0-0")
    ids = [await peer.add(name, data, opts) for name, data, opts in SCENARIO_JOBS]
    ids += await peer.add_bulk([{"name": "bulk", "data": {}, "opts": {}}] * 2)
    for flow in scenario_flows(peer.queue_name):
        ids += _flow_ids(await peer.add_flow(flow))
    await peer.pause()
    await peer.is_paused()
    await peer.resume()
    await peer.set_global_concurrency(100)
    await peer.set_global_rate_limit(1000, 1000)
    worker = await peer.start_worker(drainDelay=1, stalledInterval=300, lockDuration=500)
    await _finished(peer, ids)
    await peer.upsert_job_scheduler(*SCHEDULER)
    await wait_for(lambda: sum(run.startswith("repeat:") for run, _ in peer.runs) >= 2, 20)
    await peer.get_job_scheduler(SCHEDULER[0])
    await peer.remove_job_scheduler(SCHEDULER[0])
    await peer.get_job(ids[0])
    await peer.get_job_counts("waiting", "active", "completed", "failed", "delayed")
    # A job whose worker dies, recovered and failed by a worker that allows no stalls.
    hung = await peer.add("hangs", {"hang": True}, {})
    await wait_for(lambda: peer.runs_of(hung), 20)
    await peer.close_worker(worker, force=True)
    await peer.start_worker(drainDelay=1, stalledInterval=200, maxStalledCount=0)
    await _finished(peer, [hung])


async def _finished(peer: Peer, ids: list[str]) -> None:
    async def done() -> bool:
        states = [await peer.get_job_state(job_id) for job_id in set(ids)]
        return all(state in ("completed", "failed", "unknown") for state in states)

    await wait_for(done, 20)


# -- watching Redis ---------------------------------------------------------------------

WRITES = {
    "SET", "DEL", "UNLINK", "HSET", "HMSET", "HSETNX", "HINCRBY", "HDEL", "LPUSH", "RPUSH",
    "LREM", "LTRIM", "RPOPLPUSH", "LMOVE", "ZADD", "ZREM", "ZPOPMIN", "BZPOPMIN",
    "ZREMRANGEBYSCORE", "XADD", "XTRIM", "SADD", "SREM", "INCR", "INCRBY", "PEXPIRE", "EXPIRE",
    "RENAME", "LPOP", "RPOP",
}  # fmt: skip
READS = {
    "GET", "EXISTS", "HGET", "HMGET", "HGETALL", "HEXISTS", "HLEN", "LLEN", "LRANGE", "LPOS",
    "LINDEX", "ZCARD", "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZSCORE",
    "ZCOUNT", "ZRANK", "SMEMBERS", "SCARD", "SISMEMBER", "XREAD", "XRANGE", "XREVRANGE", "XLEN",
    "PTTL", "TTL", "TYPE", "RPOPLPUSH", "LMOVE", "ZPOPMIN", "BZPOPMIN", "INCR",
}  # fmt: skip
HASH_FIELD_WRITES = {"HSET", "HMSET", "HSETNX"}
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)")
_RUN_JOB = re.compile(r"repeat:[^:]+:\d+")
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b"}


def monitor_args(line: str) -> list[str]:
    """The arguments of one MONITOR line: ``123.4 [0 lua] "HSET" "k" "f" "v"``."""

    def unescape(match: re.Match[str]) -> str:
        code = match.group(1)
        if code.startswith("x") and len(code) == 3:
            return chr(int(code[1:], 16))
        return _SIMPLE_ESCAPES.get(code, code)

    body = line.split("] ", 1)[1] if "] " in line else line
    return [_ESCAPE.sub(unescape, arg) for arg in _ARG.findall(body)]


@dataclass
class Observed:
    """What one implementation touched: by key kind, hash field and event."""

    keys: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    job_fields: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    meta_fields: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    scheduler_fields: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    events: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def key_kind(rest: str) -> str:
    """``wait`` -> ``wait``; ``42`` or ``custom-1`` -> ``<id>``; ``42:lock`` -> ``<id>:lock``."""
    if rest in KEYS:
        return rest
    run = _RUN_JOB.match(rest)
    if run:  # the job of a scheduler's run: its id is repeat:<scheduler id>:<millis>
        return "<id>" + rest[run.end() :]
    head, _, tail = rest.partition(":")
    if head == "wakeup":
        return "wakeup:<worker id>"
    if tail and f"{head}:<id>" in KEYS:
        return f"{head}:<id>"
    return "<id>" if not tail else f"<id>:{tail}"


def record(observed: Observed, queue_prefix: str, args: list[str]) -> None:
    """Add one command (from MONITOR) to ``observed``."""
    if not args:
        return
    command = args[0].upper()
    keys = [(i, a) for i, a in enumerate(args) if a.startswith(queue_prefix)]
    for index, key in keys:
        kind = key_kind(key[len(queue_prefix) :])
        if command in WRITES:
            observed.keys[kind].add("W")
        if command in READS:
            observed.keys[kind].add("R")
        if index != 1:
            continue
        fields = {
            "<id>": observed.job_fields,
            "meta": observed.meta_fields,
            "repeat:<id>": observed.scheduler_fields,
        }.get(kind)
        if fields is not None:
            if command in HASH_FIELD_WRITES:
                for name in args[2::2]:
                    fields[name].add("W")
            elif command in ("HINCRBY", "HDEL"):
                for name in args[2:] if command == "HDEL" else args[2:3]:
                    fields[name].add("W")
            elif command in ("HGET", "HEXISTS", "HMGET"):
                for name in args[2:]:
                    fields[name].add("R")
            elif command == "HGETALL":
                fields["*"].add("R")
        if kind == "events" and command == "XADD":
            star = args.index("*")
            pairs = dict(zip(args[star + 1 :: 2], args[star + 2 :: 2], strict=False))
            observed.events[pairs.pop("event")].update(pairs)


async def observe(kind: str, url: str, prefix: str) -> Observed:
    """Run SCENARIO with ``kind`` alone on queue ``map-<kind>``, watching Redis."""
    queue = f"map-{kind}"
    queue_prefix = f"{prefix}:{queue}:"
    observed = Observed()
    pool = ConnectionPool.from_url(url, decode_responses=True)
    connection = pool.make_connection()
    await connection.connect()
    await connection.send_command("MONITOR")
    assert await connection.read_response() in ("OK", b"OK")

    async def watch() -> None:
        while True:
            line = await connection.read_response()
            if queue_prefix in line:
                record(observed, queue_prefix, monitor_args(line))

    watcher = asyncio.create_task(watch())
    peer = await peers.open_peer(kind, url, prefix, queue)
    try:
        await run_scenario(peer)
        await peer.close()
        await asyncio.sleep(0.2)  # the last lines of MONITOR
    finally:
        with contextlib.suppress(Exception):
            await peer.close()
        watcher.cancel()
        (outcome,) = await asyncio.gather(watcher, return_exceptions=True)
        await connection.disconnect()
        await pool.disconnect()
    if not isinstance(outcome, asyncio.CancelledError):
        raise RuntimeError(f"watching Redis failed: {outcome!r}")
    for name in decoder_fields(kind):
        if "*" in observed.job_fields:
            observed.job_fields[name].add("D")
    observed.job_fields.pop("*", None)
    observed.meta_fields.pop("*", None)
    observed.scheduler_fields.pop("*", None)
    return observed


def decoder_fields(kind: str) -> list[str]:
    """The hash fields a client's job reader takes from HGETALL, found in its source."""
    if kind == "minibull":
        import minibull.job

        body = _between(Path(minibull.job.__file__), "def from_hash", "\n    def ")
        return re.findall(r'raw\.get\("(\w+)"', body)
    if kind == "python":
        import bullmq.job

        body = _between(Path(bullmq.job.__file__), "def fromJSON", "\n    @staticmethod")
        return sorted(set(re.findall(r'rawData\.get\("(\w+)"', body)))
    backend = peers.NODE_MODULES / "bullmq/dist/cjs/classes/redis-queue-backend.js"
    body = _between(backend, "function rawToJobJson(", "\n}")
    return sorted(set(re.findall(r"raw\.(\w+)", body)))


def _between(path: Path, start: str, end: str) -> str:
    source = path.read_text()
    if start not in source:
        raise LookupError(
            f"{start!r} is not in {path}: the job reader moved; update decoder_fields"
        )
    body = source[source.index(start) :]
    return body[: body.index(end, len(start))]


# -- the document -----------------------------------------------------------------------

HEADER = """\
# minibull and BullMQ: the map of a queue in Redis

Generated by `tests/interop/test_bullmq_map.py` (with `MINIBULL_WRITE_MAP=1`); the same test
fails when this file no longer matches what the three implementations do. It runs one
scenario (every kind of job, retries, pause and resume, global limits, a stalled job) with
each implementation alone on a queue, watches Redis with MONITOR, and lists what each
touched. Keys are under `<prefix>:<queue>:` (`bull:` by default).

**Legend.** W: written (a script or the client changes it). R: read by a script or a
command. D: decoded by the client's job reader from HGETALL (field tables only).
–: not touched in the scenario. Columns: minibull; BullMQ for Node.js ({node});
BullMQ for Python ({python}), the official port.
"""


@dataclass(frozen=True)
class Difference:
    """One item of the map's "Differences" list, and the interop tests that prove it.

    ``tests`` are ``"<module>::<test function>"`` in tests/interop/; a test that disappears,
    or is marked xfail or skip, fails tests/interop/test_differences_list.py (no Redis
    needed), and the proving test itself fails when the behaviour changes. Notebook 10
    renders this list from docs/bullmq-map.md.
    """

    title: str
    tests: tuple[str, ...]
    text: str

    def render(self) -> str:
        modules: dict[str, list[str]] = {}
        for test in self.tests:
            module, name = test.split("::")
            modules.setdefault(module, []).append(name)
        where = "; ".join(f"{module}: {', '.join(names)}" for module, names in modules.items())
        body = f"- **{self.title}** ({where}): {' '.join(self.text.split())}"
        return textwrap.fill(body, 92, subsequent_indent="  ", break_on_hyphens=False)


DIFFERENCES = [
    Difference(
        "Event fields",
        ("test_events.py::test_both_queue_events_read_the_same_story",),
        """minibull adds `ts` (its clock's now, which may be virtual, so stream ids cannot date
        events), `worker` on active, and `prev` on a retry's delayed event (the lists above
        the events table are generated). BullMQ's QueueEvents pass them through; nothing
        reads them.""",
    ),
    Difference(
        "`pb`",
        ("test_differences.py::test_processed_by",),
        """minibull stores its worker id on every job it takes; Node stores the worker's
        `name` only if it has one; the Python port never.""",
    ),
    Difference(
        "Stalled events",
        ("test_differences.py::test_stalled_event_order",),
        """minibull emits `stalled` then `waiting`; BullMQ `waiting` then `stalled`, in the
        same script call.""",
    ),
    Difference(
        "Stalled jobs cross",
        (
            "test_stalled.py::test_a_killed_workers_job_is_recovered_by_the_other_side",
            "test_stalled.py::test_a_job_stalled_too_often_is_failed_by_the_other_side",
        ),
        """a job whose worker was killed mid-job (SIGKILL) is recovered by the other side's
        stalled sweep, in both directions, and ends with the same counters on both
        (attemptsStarted 2, attemptsMade 1, stalledCounter 1); a job stalled more than
        `maxStalledCount` times is failed by the other side.""",
    ),
    Difference(
        "Default attempts",
        ("test_differences.py::test_default_attempts",),
        """minibull stores `attempts: 1`, BullMQ `attempts: 0`; both mean one run.""",
    ),
    Difference(
        "Backoff jitter",
        ("test_differences.py::test_backoff_jitter",),
        """minibull and Node draw a wait in [d(1-j), d]; the Python port ignores `jitter`.""",
    ),
    Difference(
        "Delayed jobs on the Python port",
        ("test_differences.py::test_delayed_job_punctuality",),
        """its worker rounds blocking timeouts up to whole seconds, so delayed jobs and
        backoff retries start up to ~1 s late; minibull's and Node's start within
        milliseconds.""",
    ),
    Difference(
        "Rate limits and global concurrency",
        (
            "test_differences.py::test_worker_rate_limiter",
            "test_differences.py::test_global_limits_set_by_one_side_bind_the_other",
        ),
        """honoured by all three workers, whichever side set them (the Python port's worker
        limiter works in 3.4).""",
    ),
    Difference(
        "Private wake-up keys",
        ("test_differences.py::test_minibull_wakeup_keys_are_private_and_leave_nothing",),
        """minibull's worker also blocks on `wakeup:<worker id>`; it is empty at rest and
        gone after close, and BullMQ never touches it.""",
    ),
    Difference(
        "Writes BullMQ does and minibull does not",
        ("test_bullmq_map.py::test_the_map_in_docs_is_current",),
        """BullMQ's scripts create `meta` `opts.maxLenEvents` on first use (minibull only
        reads it), and trim the events stream in their own call (the tables above).""",
    ),
    Difference(
        "Deduplication",
        (
            "test_deduplication.py::test_a_deduplication_id_holds_across_sides",
            "test_deduplication.py::test_the_deduplicated_event",
        ),
        """an id held by one side holds for the other, and both emit the same `deduplicated`
        event (`jobId` kept, `deduplicationId`, and `deduplicatedJobId`, the id the
        ignored add would have had). minibull's `Job.opts` shows the stored `de`, BullMQ's
        getters decode it to `deduplication`.""",
    ),
    Difference(
        "Flows",
        (
            "test_flows.py::test_a_flow_added_by_minibull_is_completed_by_bullmq",
            "test_flows.py::test_a_flow_added_by_bullmq_is_completed_by_minibull",
            "test_flows.py::test_a_mixed_fleet_runs_the_children_of_one_flow",
            "test_flows.py::test_a_failure_policy_is_read_by_the_other_side",
        ),
        """a flow added by either side (parents in `waiting-children`, children's keys in
        `<id>:dependencies`, `parentKey` and `parent` on each child) is run by the other
        side's workers, alone or in a mixed fleet, with the results in `<id>:processed` and
        the failure policies (`fpof`, `idof`, ... in `parent`) obeyed. minibull writes a
        whole flow in one script call (BullMQ: one MULTI of several scripts) and refuses a
        flow whose custom job id exists, where BullMQ adopts the existing job; removing a
        parent's last pending child by clean or drain moves the parent on, where BullMQ's
        "hard" removal in those calls removes a parent on the same queue too.""",
    ),
    Difference(
        "Job schedulers",
        (
            "test_schedulers.py::test_the_other_sides_worker_advances_a_scheduler",
            "test_schedulers.py::test_run_jobs_carry_the_repeat_options_bullmq_workers_read",
            "test_schedulers.py::test_scheduler_hash_fields",
            "test_schedulers.py::test_a_mixed_fleet_runs_each_run_once",
            "test_schedulers.py::test_six_field_pattern",
        ),
        """a scheduler made by either side is advanced run by run by the other side's worker
        (every and cron): each run's job carries `opts.repeat`, which BullMQ's worker plans
        the next run from; both write the hash's `offset`; a mixed fleet runs each run
        once; and all three read a six-field cron pattern's first field as seconds. The job
        of a scheduler's run has the id `repeat:<scheduler id>:<millis>` (counted as `<id>`
        in these tables) and `rjk` = the scheduler id, in all three.""",
    ),
    Difference(
        "Manual rate limit",
        (
            "test_production_controls.py::test_a_rate_limited_run_leaves_what_bullmq_leaves",
            "test_production_controls.py::test_a_manual_limit_set_by_either_side_holds_the_other",
        ),
        """`rate_limit` (BullMQ's `rateLimit`) sets `limiter` to 2^53 - 1 with a PX expiry on
        every side, and holds the other side's workers; minibull's workers see it without a
        `limiter` of their own, BullMQ's only with one (its `max` decides). A processor's
        `RateLimitError` puts the job back at the front of `wait` (minibull's
        moveJobFromActiveToWait-8, BullMQ's -9: no `paused` list), with the same counters
        and events as Node's; BullMQ for Python 3.4 has no `RateLimitError`.""",
    ),
    Difference(
        "Timeouts and cancelling",
        (
            "test_production_controls.py::test_a_timeout_is_stored_where_bullmq_ignores_it",
            "test_production_controls.py::test_minibull_honours_a_timeout_in_a_job_bullmq_added",
        ),
        """BullMQ has no job timeout (its guide says to abort inside the processor).
        minibull's `timeout=` is stored as `opts.timeout` in ms (Bull 3's name), which
        BullMQ's workers read back and ignore, and which minibull's worker honours on a job
        either side added. Cancelling a running job (`cancel_job`, BullMQ's `cancelJob`) is
        local to a worker everywhere: nothing in Redis but the failure it ends in.""",
    ),
]

NOTES = "\n".join(["## Differences, each pinned by a test", "", *(d.render() for d in DIFFERENCES)])


def _cell(marks: set[str] | None) -> str:
    return " ".join(m for m in "WRD" if marks and m in marks) or "–"


def _table(
    title: str, first: str, names: list[str], meaning: dict[str, Any], seen: dict[str, Any]
) -> list[str]:
    typed = not isinstance(next(iter(meaning.values())), str)
    head = f"| {first} | type |" if typed else f"| {first} |"
    lines = [f"## {title}", "", f"{head} minibull | Node | Python | meaning |"]
    lines.append("|---" * (6 if typed else 5) + "|")
    for name in names:
        cells = [_cell(seen[kind].get(name)) for kind in IMPLEMENTATIONS]
        if typed:
            redis_type, text = meaning[name]
            lines.append(f"| `{name}` | {redis_type} | {' | '.join(cells)} | {text} |")
        else:
            lines.append(f"| `{name}` | {' | '.join(cells)} | {meaning[name]} |")
    return [*lines, ""]


def _ordered(names: set[str], meaning: dict[str, Any], what: str) -> list[str]:
    unknown = sorted(names - set(meaning))
    if unknown:
        raise KeyError(f"observed {what} without a meaning in bullmq_map.py: {unknown}")
    return [name for name in meaning if name in names]


def render(observed: dict[str, Observed], versions: dict[str, str]) -> str:
    """docs/bullmq-map.md from what each implementation was seen to do."""
    keys = {kind: observed[kind].keys for kind in IMPLEMENTATIONS}
    jobs = {kind: observed[kind].job_fields for kind in IMPLEMENTATIONS}
    metas = {kind: observed[kind].meta_fields for kind in IMPLEMENTATIONS}
    out = [HEADER.format(**versions)]
    key_names = _ordered(set().union(*(k.keys() for k in keys.values())), KEYS, "keys")
    out += _table("Keys", "key", key_names, KEYS, keys)
    job_names = _ordered(set().union(*(j.keys() for j in jobs.values())), JOB_FIELDS, "fields")
    out += _table("Job-hash fields (`<id>`)", "field", job_names, JOB_FIELDS, jobs)
    meta_names = _ordered(set().union(*(m.keys() for m in metas.values())), META_FIELDS, "meta")
    out += _table("Meta-hash fields (`meta`)", "field", meta_names, META_FIELDS, metas)
    schedulers = {kind: observed[kind].scheduler_fields for kind in IMPLEMENTATIONS}
    names = set().union(*(f.keys() for f in schedulers.values()))
    scheduler_names = _ordered(names, SCHEDULER_FIELDS, "scheduler fields")
    out += _table(
        "Job-scheduler-hash fields (`repeat:<id>`)",
        "field",
        scheduler_names,
        SCHEDULER_FIELDS,
        schedulers,
    )

    events = {kind: observed[kind].events for kind in IMPLEMENTATIONS}
    names = _ordered(set().union(*(e.keys() for e in events.values())), EVENTS, "events")
    out += [
        "## Events (`events` stream)",
        "",
        "Who reads them: every implementation's QueueEvents reads every event (XREAD) and",
        "decodes `completed.returnvalue` and `progress.data` from JSON; minibull's",
        "`Job.wait_until_finished` also reads `completed` and `failed`. The cells list the",
        "fields each implementation writes (besides `event`).",
        "",
    ]
    out += _field_differences(events, names)
    out += [
        "",
        "| event | minibull | Node | Python | meaning |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        cells = []
        for kind in IMPLEMENTATIONS:
            fields = events[kind].get(name)
            ordered = sorted(fields or (), key=lambda f: (f != "jobId", f))
            if fields is None:
                cells.append("–")
            else:
                cells.append(", ".join(f"`{f}`" for f in ordered) or "(no fields)")
        out.append(f"| `{name}` | {' | '.join(cells)} | {EVENTS[name]} |")
    out += ["", NOTES]
    return "\n".join(out).rstrip() + "\n"


def _field_differences(events: dict[str, dict[str, set[str]]], names: list[str]) -> list[str]:
    """Which event fields only minibull writes, and which only BullMQ (both ports) writes."""
    only_minibull, only_bullmq = [], []
    for name in names:
        mine = events["minibull"].get(name)
        theirs = [events[kind].get(name) for kind in IMPLEMENTATIONS if kind != "minibull"]
        if mine is None or any(fields is None for fields in theirs):
            continue
        bullmq_fields = set().union(*theirs)
        if extra := sorted(mine - bullmq_fields):
            only_minibull.append(f"`{name}`: " + ", ".join(f"`{f}`" for f in extra))
        if missing := sorted(bullmq_fields - mine):
            only_bullmq.append(f"`{name}`: " + ", ".join(f"`{f}`" for f in missing))
    return [
        f"- Fields only minibull writes: {'; '.join(only_minibull) or 'none'}.",
        f"- Fields only BullMQ writes: {'; '.join(only_bullmq) or 'none'}.",
    ]


def versions() -> dict[str, str]:
    """Peer versions for the header, to the minor version (patch releases keep the map)."""
    import importlib.metadata

    python = importlib.metadata.version("bullmq")
    node = peers.node_bullmq_version() or "?"
    return {"node": ".".join(node.split(".")[:2]), "python": ".".join(python.split(".")[:2])}
