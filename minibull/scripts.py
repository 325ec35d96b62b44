"""The Lua scripts of a queue: argument builders, and the thin calls that run them.

Every change of a job's state is one script in ``lua/``, run atomically by
Redis. The builders (``*_args``) are pure: they return the KEYS and ARGV a
script gets, so you can print them. ``Scripts`` runs them: it is the only
code in minibull that writes to Redis.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _escape
from pathlib import Path
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from .errors import ChildrenError, JobNotFoundError, LockLostError
from .keys import (
    FAMILIES_BY_PATTERN,
    FLOW_JOB_SUFFIXES,
    LIST_STATES,
    RESERVED_JOB_IDS,
    STATE_SUFFIX,
    QueueKeys,
)
from .lane import Lane, SyncLane

LUA_DIR = Path(__file__).parent / "lua"
_INCLUDE = re.compile(r'^-- @include "(\w+)"$', re.MULTILINE)

#: What the negative results of the scripts mean.
ERROR_CODES = {
    -1: "the job does not exist",
    -2: "the job's lock is missing (it expired; another worker may have the job now)",
    -3: "the job is not in the expected state",
    -6: "the job's lock is held by another worker",
    -4: "the job has children that have not finished (flows)",
    -5: "the parent job does not exist",
    -8: "the job is the next run of a job scheduler; remove the scheduler instead",
    -9: "a child of the job failed, and its fail_parent_on_failure fails the job (flows)",
    -11: "a job with this id already exists",
    -100: "the job id is reserved: it names a queue-level key",
}

Args = tuple[list[str], list[Any]]

#: What a manual rate limit writes into the limiter key: 2^53 - 1, BullMQ's
#: Number.MAX_SAFE_INTEGER (takeNextJob.lua holds every worker while it is there).
MANUAL_RATE_LIMIT = 2**53 - 1

_RESERVED_IDS = " ".join(sorted(RESERVED_JOB_IDS))
_PAGE = 1000  # ids read or keys deleted per Redis call (obliterate)


@dataclass(frozen=True)
class Take:
    """What a worker asks for when it takes a job: its lock and its rate limit."""

    token: str
    lock_ms: int
    worker_id: str = ""
    limiter: tuple[int, int] | None = None

    def argv(self) -> list[Any]:
        max_jobs, window_ms = self.limiter or (0, 0)
        return [self.token, self.lock_ms, self.worker_id or self.token, max_jobs, window_ms]


@dataclass(frozen=True)
class Taken:
    """moveToActive's answer: the job taken, or when to look again."""

    job_id: str | None = None
    fields: dict[str, str] | None = None
    next_due: int = 0  # ms: when the next delayed job is due (0: none)
    limited_ms: int = 0  # ms until the rate limit lets a job start

    @classmethod
    def from_reply(cls, reply: Any) -> Taken:
        """From the JSON text [job id, [field, value, ...]] of a job taken, or from
        {0, 0, next due, limited} when none was."""
        if isinstance(reply, str):
            job_id, flat = json.loads(reply)
            if isinstance(flat, dict):  # Lua's cjson writes an empty table as {}
                return cls(str(job_id), flat)
            return cls(str(job_id), dict(zip(flat[::2], flat[1::2], strict=True)))
        return cls(next_due=int(reply[2]), limited_ms=int(reply[3]))


def _script_path(name: str) -> Path:
    matches = sorted(LUA_DIR.glob(f"{name}-*.lua"))
    if len(matches) != 1:
        raise LookupError(f"expected one script named {name}-<keys>.lua in {LUA_DIR}")
    return matches[0]


def _expand(source: str, seen: set[str]) -> str:
    """Replace each ``-- @include "name"`` line with ``includes/name.lua``, once per script."""

    def include(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in seen:
            return ""
        seen.add(name)
        return _expand((LUA_DIR / "includes" / f"{name}.lua").read_text(), seen)

    return _INCLUDE.sub(include, source)


@functools.cache
def script_source(name: str) -> str:
    """The full text of a script, includes expanded, as Redis receives it."""
    return _expand(_script_path(name).read_text(), set())


@functools.cache
def script_sha(name: str) -> str:
    """The SHA1 Redis knows a script by (``EVALSHA <sha>``)."""
    return hashlib.sha1(script_source(name).encode()).hexdigest()


@functools.cache
def script_key_count(name: str) -> int:
    """How many KEYS a script takes: the number in its file name (``moveToActive-8.lua``)."""
    return int(_script_path(name).stem.rsplit("-", 1)[1])


#: json.dumps with these separators, made once (json.dumps makes an encoder per call).
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def _json(value: Any) -> str:
    return _compact_json(value)


def _text(value: str) -> str:
    """``value`` with each lone surrogate (e.g. from ``"\\ud800"`` in JSON data) as U+FFFD:
    Redis takes UTF-8 only and Lua's cjson refuses the escape, so an error message quoting
    such data would otherwise fail the call that records it."""
    if value.isascii():  # speed only: the usual return value ("null", JSON) has nothing to mend
        return value
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _fields_json(fields: dict[str, str] | None) -> str:
    return _json({name: _text(value) for name, value in (fields or {}).items()})


#: Each script's KEYS, in order, by name: a key of ``QueueKeys`` (``wait``, ``meta``,
#: ``stalled-check`` for ``keys.stalled_check``...), or one the call names (``job``: a job's
#: hash; ``logs``: its logs; ``finished``: the completed or failed set; ``state``: any
#: state's list or set; ``record``: a side effect's record; ``metrics``, ``metrics-data``).
#: Each Lua header lists the same names (``KEYS[1] wait``); tests/test_script_keys.py
#: checks that they agree.
_WAITING = ("wait", "prioritized", "pc", "marker", "meta", "events")
_READY = ("wait", "active", "prioritized", "delayed", "pc", "marker", "meta", "events")
_SCHEDULER = ("repeat", "delayed", *_WAITING)
SCRIPT_KEYS: dict[str, tuple[str, ...]] = {
    "addFlow": ("id",),
    "addJob": ("wait", "prioritized", "delayed", "pc", "marker", "meta", "id", "events"),
    "addJobScheduler": _SCHEDULER,
    "addLog": ("job", "logs"),
    "changeDelay": ("delayed", "meta", "marker", "events"),
    "changePriority": ("wait", "prioritized", "pc", "marker", "meta"),
    "claimSideEffect": ("record",),
    "cleanJobsInSet": ("state", "meta", "events", "stalled", "repeat"),
    "drain": ("wait", "prioritized", "pc", "delayed", "repeat"),
    "extendLocks": ("stalled",),
    "extendSideEffect": ("record",),
    "getMetrics": ("metrics", "metrics-data"),
    "hasReadyWork": ("marker", "meta", "wait", "prioritized", "delayed", "active", "limiter"),
    "moveJobFromActiveToWait": (
        "active",
        "wait",
        "stalled",
        "meta",
        "limiter",
        "prioritized",
        "marker",
        "events",
    ),
    "moveJobsToWait": ("finished", *_WAITING),
    "moveStalledJobsToWait": (
        "stalled",
        "wait",
        "active",
        "stalled-check",
        "meta",
        "marker",
        "events",
    ),
    "moveToActive": (*_READY, "limiter"),
    "moveToDelayed": ("active", "delayed", "marker", "meta", "events", "stalled"),
    "moveToFinished": (*_READY, "stalled", "finished", "limiter"),
    "moveToWaitingChildren": ("active", "waiting-children", "stalled", "meta", "events"),
    "obliterate": ("active", "meta"),
    "pause": ("meta", "marker", "wait", "prioritized", "delayed", "events"),
    "promote": _SCHEDULER[1:],
    "promoteJobs": _SCHEDULER[1:],
    "removeJob": (
        "wait",
        "active",
        "prioritized",
        "delayed",
        "completed",
        "failed",
        "stalled",
        "meta",
        "events",
        "repeat",
        "waiting-children",
    ),
    "removeJobScheduler": _SCHEDULER,
    "reprocessJob": ("finished", *_WAITING),
    "retryJob": ("wait", "active", "prioritized", "pc", "marker", "meta", "events", "stalled"),
    "settleSideEffect": ("record",),
    "updateData": ("job",),
    "updateJobScheduler": _SCHEDULER,
    "updateProgress": ("job", "meta", "events"),
}


def script_keys(name: str, keys: QueueKeys | None, **named: str) -> list[str]:
    """Script ``name``'s KEYS for a queue: each named key from ``keys``, or from ``named``
    for the keys a call chooses (``job=keys.job(job_id)``, ``finished=keys.failed``)."""
    if not named and keys is not None:
        return list(_queue_script_keys(name, keys))
    return _named_keys(name, keys, named)


def _named_keys(name: str, keys: QueueKeys | None, named: dict[str, str]) -> list[str]:
    result = []
    for key_name in SCRIPT_KEYS[name]:
        attribute = key_name.replace("-", "_")
        result.append(named[attribute] if attribute in named else getattr(keys, attribute))
    return result


@functools.lru_cache(maxsize=1024)
def _queue_script_keys(name: str, keys: QueueKeys) -> tuple[str, ...]:
    """Speed only: a queue's KEYS for script ``name``, made once (a worker asks per job)."""
    return tuple(_named_keys(name, keys, {}))


# -- argument builders (pure) -------------------------------------------------


def add_job_args(keys: QueueKeys, now: int, jobs: list[dict[str, Any]]) -> Args:
    names, job_prefix, dedup_prefix = _add_job_names(keys)
    return list(names), [job_prefix, now, _jobs_json(jobs), dedup_prefix, _RESERVED_IDS]


#: The fields of a built job without deduplication (``options.build_job``), in order.
_JOB_FIELDS = ("id", "name", "data", "opts", "delay", "priority", "lifo")


def _jobs_json(jobs: list[dict[str, Any]]) -> str:
    """addJob's ARGV[3]: the jobs as a JSON array. Speed only (skip it when learning): one
    job without deduplication, the usual add, is written field by field with the C string
    escaper, 3x faster than the generic encoder for the same text."""
    if len(jobs) != 1 or tuple(jobs[0]) != _JOB_FIELDS:
        return _json(jobs)
    job = jobs[0]
    return (
        f'[{{"id":{_escape(job["id"])},"name":{_escape(job["name"])},'
        f'"data":{_escape(job["data"])},"opts":{_escape(job["opts"])},'
        f'"delay":{int(job["delay"])},"priority":{int(job["priority"])},'
        f'"lifo":{"true" if job["lifo"] else "false"}}}]'
    )


@functools.lru_cache(maxsize=256)
def _add_job_names(keys: QueueKeys) -> tuple[tuple[str, ...], str, str]:
    """addJob's KEYS and its two prefixes for a queue: made once (speed only, for add)."""
    return tuple(script_keys("addJob", keys)), keys.job_prefix, keys.deduplication_prefix


def _keep_text(keep: dict[str, int]) -> str:
    """moveToFinished's "<count>" or "<count>:<age>" (see ``options.keep_jobs``)."""
    if "age" in keep:
        return f"{int(keep['count'])}:{int(keep['age'])}"
    return str(int(keep["count"]))


def move_to_active_args(keys: QueueKeys, now: int, take: Take) -> Args:
    return script_keys("moveToActive", keys), [keys.job_prefix, now, *take.argv()]


def has_ready_work_args(keys: QueueKeys, now: int, limiter: tuple[int, int] | None) -> Args:
    """hasReadyWork's KEYS/ARGV: the time now and the worker's rate limit (0: none)."""
    return script_keys("hasReadyWork", keys), [now, limiter[0] if limiter else 0]


def move_to_finished_args(
    keys: QueueKeys,
    now: int,
    job_id: str,
    token: str,
    *,
    failed: bool,
    value: str,
    keep: dict[str, int],
    attempts: int,
    fields: dict[str, str] | None = None,
    fetch_next: Take | None = None,
    max_metrics: int = 0,
) -> Args:
    target = "failed" if failed else "completed"
    field = "failedReason" if failed else "returnvalue"
    fetch = ["1", *fetch_next.argv()] if fetch_next else ["0", "", 0, "", 0, 0]
    return (
        script_keys("moveToFinished", keys, finished=keys.key(target)),
        [
            keys.job_prefix,
            now,
            job_id,
            token,
            target,
            field,
            _text(value),
            _keep_text(keep),
            attempts,
            _fields_json(fields),
            keys.deduplication_prefix,
            *fetch,
            max_metrics or "",
        ],
    )


def retry_job_args(
    keys: QueueKeys,
    job_id: str,
    token: str,
    *,
    lifo: bool,
    fields: dict[str, str],
    now: int,
) -> Args:
    return (
        script_keys("retryJob", keys),
        [
            keys.job_prefix,
            job_id,
            token,
            "RPUSH" if lifo else "LPUSH",
            _fields_json(fields),
            now,
        ],
    )


def move_to_delayed_args(
    keys: QueueKeys, now: int, job_id: str, token: str, delay_ms: int, fields: dict[str, str]
) -> Args:
    return (
        script_keys("moveToDelayed", keys),
        [keys.job_prefix, now, job_id, token, delay_ms, _fields_json(fields)],
    )


def move_job_from_active_to_wait_args(keys: QueueKeys, job_id: str, token: str, now: int) -> Args:
    """A rate-limited run's job back to the front of the line, no attempt counted."""
    argv = [keys.job_prefix, job_id, token, now]
    return script_keys("moveJobFromActiveToWait", keys), argv


def extend_locks_args(keys: QueueKeys, locks: dict[str, str], lock_ms: int) -> Args:
    return script_keys("extendLocks", keys), [
        keys.job_prefix,
        lock_ms,
        _json(sorted(locks.items())),
    ]


def move_stalled_jobs_args(
    keys: QueueKeys, now: int, max_stalled_count: int, interval_ms: int
) -> Args:
    return (
        script_keys("moveStalledJobsToWait", keys),
        [keys.job_prefix, max_stalled_count, now, interval_ms, keys.scheduler_prefix],
    )


def pause_args(keys: QueueKeys, paused: bool) -> Args:
    return (
        script_keys("pause", keys),
        ["paused" if paused else "resumed"],
    )


def update_progress_args(keys: QueueKeys, job_id: str, progress_json: str) -> Args:
    return script_keys("updateProgress", keys, job=keys.job(job_id)), [job_id, progress_json]


def add_log_args(keys: QueueKeys, job_id: str, line: str, keep: int) -> Args:
    named = {"job": keys.job(job_id), "logs": keys.logs(job_id)}
    return script_keys("addLog", keys, **named), [line, keep]


def remove_job_args(keys: QueueKeys, job_id: str) -> Args:
    argv = [keys.job_prefix, job_id, keys.deduplication_prefix, _states_json("removeJob")]
    return script_keys("removeJob", keys), argv


@functools.cache
def _states_json(script: str) -> str:
    """The states a job can be in, for a script that looks in every one (removeJob), from
    ``STATE_SUFFIX`` and ``LIST_STATES``: [state, key suffix, "list" or "zset", the index
    (from 1) of its key among the script's KEYS]. Lua keeps no list of its own."""
    names = SCRIPT_KEYS[script]
    return _json(
        [
            [state, suffix, "list" if state in LIST_STATES else "zset", names.index(suffix) + 1]
            for state, suffix in STATE_SUFFIX.items()
        ]
    )


def add_flow_args(root: QueueKeys, now: int, nodes: list[dict[str, Any]]) -> Args:
    """addFlow's KEYS/ARGV: the nodes of a flow, parents first (``flow.flow_nodes``)."""
    return script_keys("addFlow", root), [now, _json(nodes), _RESERVED_IDS]


def move_to_waiting_children_args(
    keys: QueueKeys, job_id: str, token: str, now: int, child_key: str = ""
) -> Args:
    argv = [keys.job_prefix, job_id, token, now, child_key]
    return script_keys("moveToWaitingChildren", keys), argv


def reprocess_job_args(keys: QueueKeys, job_id: str, state: str, reset_attempts: bool) -> Args:
    finished = keys.key(state)
    argv = [keys.job_prefix, job_id, state, int(reset_attempts)]
    return script_keys("reprocessJob", keys, finished=finished), argv


def move_jobs_to_wait_args(
    keys: QueueKeys, state: str, count: int, reset_attempts: bool, until: int
) -> Args:
    argv = [keys.job_prefix, state, count, int(reset_attempts), until]
    return script_keys("moveJobsToWait", keys, finished=keys.key(state)), argv


def drain_args(keys: QueueKeys, delayed: bool) -> Args:
    return (
        script_keys("drain", keys),
        [keys.job_prefix, int(delayed), keys.deduplication_prefix],
    )


def clean_args(keys: QueueKeys, state: str, cutoff: int, limit: int) -> Args:
    kind = "list" if state in LIST_STATES else "zset"
    finished = state in ("completed", "failed")
    return (
        script_keys("cleanJobsInSet", keys, state=keys.state_key(state)),
        [keys.job_prefix, kind, cutoff, limit, int(finished), keys.deduplication_prefix],
    )


def obliterate_args(keys: QueueKeys, force: bool) -> Args:
    return script_keys("obliterate", keys), [int(force)]


def add_job_scheduler_args(
    keys: QueueKeys, now: int, scheduler_id: str, next_run: int, fields: dict[str, str]
) -> Args:
    return (
        script_keys("addJobScheduler", keys),
        [keys.job_prefix, now, scheduler_id, next_run, _json(fields), keys.scheduler_prefix],
    )


def update_job_scheduler_args(
    keys: QueueKeys, now: int, scheduler_id: str, taken: str, next_run: int | None
) -> Args:
    """updateJobScheduler's KEYS/ARGV: ``taken`` is the id of the run's job a worker took."""
    return (
        script_keys("updateJobScheduler", keys),
        [keys.job_prefix, now, scheduler_id, taken, next_run or 0, keys.scheduler_prefix],
    )


def remove_job_scheduler_args(keys: QueueKeys, scheduler_id: str) -> Args:
    argv = [keys.job_prefix, scheduler_id, keys.scheduler_prefix]
    return script_keys("removeJobScheduler", keys), argv


# -- replies (pure) -------------------------------------------------------------


def added_jobs(flat: list[Any]) -> list[tuple[str, bool]]:
    """addJob's reply as (job id, added) pairs; a reserved job id raises ValueError."""
    if flat and flat[0] == -100:
        raise ValueError(f"job_id {flat[1]!r} is reserved: {ERROR_CODES[-100]}")
    return [(str(flat[i]), bool(int(flat[i + 1]))) for i in range(0, len(flat), 2)]


def _checked(name: str, args: Args) -> Args:
    """``args`` after checking that script ``name`` takes that many keys."""
    expected = script_key_count(name)
    if len(args[0]) != expected:
        raise ValueError(f"{name} takes {expected} keys, got {len(args[0])}")
    return args


# -- the calls ----------------------------------------------------------------


def check(result: int, job_id: str, action: str) -> None:
    """Raise for a script's negative result: a missing job, or a lost lock."""
    if result == -1:
        raise JobNotFoundError(f"cannot {action} job {job_id}: {ERROR_CODES[-1]}")
    if result in (-4, -9):
        raise ChildrenError(f"cannot {action} job {job_id}: {ERROR_CODES[result]}")
    if result < 0:
        raise LockLostError(f"cannot {action} job {job_id}: {ERROR_CODES.get(result, result)}")


class Scripts:
    """Runs the scripts of one queue on one Redis client."""

    def __init__(self, redis: Redis, keys: QueueKeys) -> None:
        self.redis = redis
        self.keys = keys
        self.lane = Lane(redis)  # speed only: redis.evalsha without redis-py's layer

    async def run(self, name: str, args: Args) -> Any:
        """Run script ``name`` with (KEYS, ARGV): EVALSHA, and SCRIPT LOAD first when Redis
        does not know it yet (first use, or a restarted server)."""
        script_keys, argv = _checked(name, args)
        call = ("EVALSHA", script_sha(name), len(script_keys), *script_keys, *argv)
        try:
            return await self.lane.execute(*call)
        except NoScriptError:
            await self.lane.script_load(script_source(name))
            return await self.lane.execute(*call)

    async def close(self) -> None:
        """Give back the connections held for script calls."""
        await self.lane.close()

    async def add_jobs(self, now: int, jobs: list[dict[str, Any]]) -> list[tuple[str, bool]]:
        """Add built jobs (``options.build_job``) in one addJob call: (id, added) each."""
        return added_jobs(await self.run("addJob", add_job_args(self.keys, now, jobs)))

    async def move_to_active(self, now: int, take: Take) -> Taken:
        """Take the next job for a worker, or learn when to look again."""
        reply = await self.run("moveToActive", move_to_active_args(self.keys, now, take))
        return Taken.from_reply(reply)

    async def has_ready_work(self, now: int, limiter: tuple[int, int] | None) -> bool:
        """Could a worker take a job now (see ``Queue.has_ready_work``)?"""
        return bool(await self.run("hasReadyWork", has_ready_work_args(self.keys, now, limiter)))

    async def move_to_finished(self, job_id: str, **kwargs: Any) -> Taken:
        """Finish a job; with ``fetch_next=Take(...)`` also take the next one, in one call."""
        failed = kwargs["failed"]
        reply = await self.run(
            "moveToFinished", move_to_finished_args(self.keys, job_id=job_id, **kwargs)
        )
        if isinstance(reply, str):  # finished, and the next job taken
            return Taken.from_reply(reply)
        check(int(reply[0]), job_id, "fail" if failed else "complete")
        return Taken.from_reply(reply[1:])

    async def retry_job(
        self,
        job_id: str,
        token: str,
        *,
        lifo: bool,
        fields: dict[str, str],
        now: int,
    ) -> None:
        args = retry_job_args(self.keys, job_id, token, lifo=lifo, fields=fields, now=now)
        result = await self.run("retryJob", args)
        check(result, job_id, "retry")

    async def move_to_delayed(
        self, now: int, job_id: str, token: str, delay_ms: int, fields: dict[str, str]
    ) -> None:
        result = await self.run(
            "moveToDelayed", move_to_delayed_args(self.keys, now, job_id, token, delay_ms, fields)
        )
        check(result, job_id, "delay")

    async def move_job_from_active_to_wait(self, job_id: str, token: str, now: int) -> int:
        """Put a rate-limited job back (no attempt used); returns the limit's ms left (0: none)."""
        args = move_job_from_active_to_wait_args(self.keys, job_id, token, now)
        result = int(await self.run("moveJobFromActiveToWait", args))
        check(result, job_id, "move back to wait")
        return result

    async def rate_limit(self, window_ms: int) -> None:
        """Hold every worker of the queue for ``window_ms`` (BullMQ's rateLimit): the
        limiter key set to ``MANUAL_RATE_LIMIT``, expiring with the window."""
        await self.redis.set(self.keys.limiter, MANUAL_RATE_LIMIT, px=window_ms)

    async def remove_rate_limit_key(self) -> bool:
        """Delete the limiter key (BullMQ's removeRateLimitKey); True if it was there."""
        return bool(await self.redis.delete(self.keys.limiter))

    async def extend_locks(self, locks: dict[str, str], lock_ms: int) -> list[str]:
        """Renew the locks (job id -> token); returns the ids whose lock was lost."""
        if not locks:
            return []
        return list(await self.run("extendLocks", extend_locks_args(self.keys, locks, lock_ms)))

    async def move_stalled_jobs_to_wait(
        self, now: int, max_stalled_count: int, interval_ms: int
    ) -> list[str]:
        args = move_stalled_jobs_args(self.keys, now, max_stalled_count, interval_ms)
        return list(await self.run("moveStalledJobsToWait", args))

    async def pause(self, paused: bool) -> None:
        await self.run("pause", pause_args(self.keys, paused))

    async def update_progress(self, job_id: str, progress_json: str) -> None:
        result = await self.run(
            "updateProgress", update_progress_args(self.keys, job_id, progress_json)
        )
        check(result, job_id, "update the progress of")

    async def add_log(self, job_id: str, line: str, keep: int = 0) -> int:
        result = await self.run("addLog", add_log_args(self.keys, job_id, line, keep))
        check(result, job_id, "log to")
        return int(result)

    async def remove_job(self, job_id: str) -> bool:
        """True if removed, False if a worker holds its lock. A scheduler's next run cannot be
        removed alone (RuntimeError): that would stop the scheduler for good."""
        result = await self.run("removeJob", remove_job_args(self.keys, job_id))
        if result == -8:
            raise RuntimeError(f"cannot remove job {job_id}: {ERROR_CODES[-8]}")
        check(result, job_id, "remove")
        return result == 1

    async def add_flow(self, now: int, nodes: list[dict[str, Any]]) -> list[str]:
        """Write a flow's nodes (parents first) in one addFlow call; returns their ids."""
        reply = await self.run("addFlow", add_flow_args(self.keys, now, nodes))
        if reply and reply[0] in (-100, -11, -5):
            node = nodes[int(reply[1]) - 1]
            what = f"node {node['path']}" + (f" (job_id {node['id']!r})" if node["id"] else "")
            raise ValueError(f"{what}: {ERROR_CODES[reply[0]]}; nothing was added")
        return [str(job_id) for job_id in reply]

    async def move_to_waiting_children(
        self, job_id: str, token: str, now: int, child_key: str = ""
    ) -> bool:
        """Park a running parent until its children finish: True if it moved, False if no
        child is pending (the processor goes on)."""
        args = move_to_waiting_children_args(self.keys, job_id, token, now, child_key)
        result = int(await self.run("moveToWaitingChildren", args))
        check(result, job_id, "move to waiting-children")
        return result == 0

    async def reprocess_job(self, job_id: str, state: str, reset_attempts: bool) -> None:
        result = await self.run(
            "reprocessJob", reprocess_job_args(self.keys, job_id, state, reset_attempts)
        )
        if result == -3:
            raise ValueError(f"job {job_id} is not {state}, so it cannot be retried from there")
        check(result, job_id, "retry")

    async def move_jobs_to_wait(
        self, state: str, count: int, reset_attempts: bool, until: int
    ) -> int:
        """Move up to ``count`` jobs that finished at or before ``until`` (ms) back to wait."""
        args = move_jobs_to_wait_args(self.keys, state, count, reset_attempts, until)
        return int(await self.run("moveJobsToWait", args))

    async def drain(self, delayed: bool) -> int:
        return int(await self.run("drain", drain_args(self.keys, delayed)))

    async def clean(self, state: str, cutoff: int, limit: int) -> list[str]:
        return list(await self.run("cleanJobsInSet", clean_args(self.keys, state, cutoff, limit)))

    async def obliterate(self, force: bool) -> None:
        """Pause the queue (refusing while jobs run, unless forced), then delete all its keys.

        By name, never by a ``bull:<queue>:*`` pattern, which would also match the keys of
        a queue named ``<queue>:<more>``: every job found in a state (its hash, lock, logs
        and deduplication id), every job scheduler, then the queue-level keys; last the
        families only a pattern finds (``de:``, ``idem:``, ``wakeup:``; see keys.py).
        """
        if await self.run("obliterate", obliterate_args(self.keys, force)) == -2:
            raise RuntimeError("cannot obliterate a queue with active jobs; pass force=True")
        async for job_ids in self._job_id_pages():
            await self._delete_jobs(job_ids)
        scheduler_ids = await self.redis.zrange(self.keys.repeat, 0, -1)
        for first in range(0, len(scheduler_ids), _PAGE):
            chunk = scheduler_ids[first : first + _PAGE]
            await self.redis.delete(*(self.keys.scheduler(sid) for sid in chunk))
        await self.redis.delete(*(self.keys.key(suffix) for suffix in sorted(RESERVED_JOB_IDS)))
        for family in FAMILIES_BY_PATTERN:
            await self._delete_matching(self.keys.key(family))

    async def _delete_matching(self, key_prefix: str) -> None:
        """Delete every key that starts with ``key_prefix`` (glob characters escaped)."""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", key_prefix) + "*"
        found = [key async for key in self.redis.scan_iter(match=pattern, count=_PAGE)]
        for first in range(0, len(found), _PAGE):
            await self.redis.delete(*found[first : first + _PAGE])

    async def _job_id_pages(self) -> AsyncIterator[list[str]]:
        """The ids in every state's list or zset (and the stalled set), a page at a time."""
        for suffix in ("wait", "active", "paused"):
            key, start = self.keys.key(suffix), 0
            while page := await self.redis.lrange(key, start, start + _PAGE - 1):
                yield page
                start += _PAGE
        for suffix in ("prioritized", "delayed", "completed", "failed", "waiting-children"):
            key, start = self.keys.key(suffix), 0
            while page := await self.redis.zrange(key, start, start + _PAGE - 1):
                yield page
                start += _PAGE
        stalled = [job_id async for job_id in self.redis.sscan_iter(self.keys.stalled)]
        for first in range(0, len(stalled), _PAGE):
            yield stalled[first : first + _PAGE]

    async def _delete_jobs(self, job_ids: list[str]) -> None:
        """Delete jobs' hashes, locks, logs and the deduplication ids they hold."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(self.keys.job(job_id), "deid")
            dedup_ids = await pipe.execute()
        doomed = [self.keys.deduplication(d) for d in dedup_ids if d is not None]
        for job_id in job_ids:
            doomed += [self.keys.job(job_id), self.keys.lock(job_id), self.keys.logs(job_id)]
            doomed += [f"{self.keys.job(job_id)}:{suffix}" for suffix in FLOW_JOB_SUFFIXES]
        await self.redis.delete(*doomed)

    async def add_job_scheduler(
        self, now: int, scheduler_id: str, next_run: int, fields: dict[str, str]
    ) -> tuple[str, bool]:
        args = add_job_scheduler_args(self.keys, now, scheduler_id, next_run, fields)
        job_id, added = await self.run("addJobScheduler", args)
        return str(job_id), bool(added)

    async def update_job_scheduler(
        self, now: int, scheduler_id: str, taken: str, next_run: int | None
    ) -> str | None:
        """Plan the run after ``taken`` (a job id) if that is still the scheduler's pending
        run; returns the new run's job id, or None."""
        args = update_job_scheduler_args(self.keys, now, scheduler_id, taken, next_run)
        return str(await self.run("updateJobScheduler", args)) or None

    async def remove_job_scheduler(self, scheduler_id: str) -> bool:
        args = remove_job_scheduler_args(self.keys, scheduler_id)
        return bool(await self.run("removeJobScheduler", args))

    async def claim_side_effect(self, record_key: str, token: str, lease_ms: int) -> list[str]:
        args = script_keys("claimSideEffect", self.keys, record=record_key), [token, lease_ms]
        return list(await self.run("claimSideEffect", args))

    async def settle_side_effect(
        self, record_key: str, token: str, *, done: bool, result: str = "null", ttl_ms: int = 0
    ) -> bool:
        argv = [token, "done" if done else "failed", result, ttl_ms]
        args = script_keys("settleSideEffect", self.keys, record=record_key), argv
        return bool(await self.run("settleSideEffect", args))

    async def forget_side_effect(self, record_key: str) -> None:
        await self.redis.delete(record_key)

    async def set_queue_limits(self, **fields: int | None) -> None:
        """Set (a number) or clear (None) meta fields: concurrency, max, duration."""
        to_set = {name: value for name, value in fields.items() if value is not None}
        to_clear = [name for name, value in fields.items() if value is None]
        if to_set:
            await self.redis.hset(self.keys.meta, mapping=to_set)
        if to_clear:
            await self.redis.hdel(self.keys.meta, *to_clear)

    # -- changing a job (issue 16): promote, change_delay, update_data, change_priority --

    async def promote(self, job_id: str) -> None:
        """Run a delayed job now; ValueError if it is not delayed."""
        result = await self.run("promote", promote_args(self.keys, job_id))
        _check_delayed(result, job_id, "promote")

    async def promote_jobs(self, count: int) -> int:
        """Run up to ``count`` delayed jobs now, soonest due first; returns how many moved."""
        return int(await self.run("promoteJobs", promote_jobs_args(self.keys, count)))

    async def change_delay(self, job_id: str, delay_ms: int, now: int) -> None:
        """A delayed job is due at ``now + delay_ms`` instead; ValueError if not delayed."""
        result = await self.run("changeDelay", change_delay_args(self.keys, job_id, delay_ms, now))
        _check_delayed(result, job_id, "change the delay of")

    async def update_data(self, job_id: str, data_json: str) -> None:
        result = await self.run("updateData", update_data_args(self.keys, job_id, data_json))
        check(result, job_id, "update the data of")

    async def change_priority(self, job_id: str, priority: int, lifo: bool) -> None:
        args = change_priority_args(self.keys, job_id, priority, lifo)
        check(await self.run("changePriority", args), job_id, "change the priority of")

    async def defer(self, now: int, job_id: str, token: str, delay_ms: int) -> None:
        """moveToDelayed for a processor that defers its own job: no attempt counted."""
        result = await self.run(
            "moveToDelayed", defer_args(self.keys, now, job_id, token, delay_ms)
        )
        check(result, job_id, "delay")

    async def get_metrics(self, kind: str, start: int, end: int) -> list[Any]:
        """getMetrics' reply: [[count, prevTS, prevCount], points, how many points]."""
        return list(await self.run("getMetrics", get_metrics_args(self.keys, kind, start, end)))


class SyncScripts:
    """Runs the producer's scripts on a synchronous client (``SyncQueue``): the same
    scripts, builders and reply parsing as ``Scripts``, without an event loop."""

    def __init__(self, redis: SyncRedis, keys: QueueKeys) -> None:
        self.redis = redis
        self.keys = keys
        self.lane = SyncLane(redis)  # speed only: redis.evalsha without redis-py's layer

    def run(self, name: str, args: Args) -> Any:
        """Run script ``name`` with (KEYS, ARGV), as ``Scripts.run`` does."""
        script_keys, argv = _checked(name, args)
        call = ("EVALSHA", script_sha(name), len(script_keys), *script_keys, *argv)
        try:
            return self.lane.execute(*call)
        except NoScriptError:
            self.lane.script_load(script_source(name))
            return self.lane.execute(*call)

    def close(self) -> None:
        """Give back the connections held for script calls."""
        self.lane.close()

    def add_jobs(self, now: int, jobs: list[dict[str, Any]]) -> list[tuple[str, bool]]:
        """Add built jobs (``options.build_job``) in one addJob call: (id, added) each."""
        return added_jobs(self.run("addJob", add_job_args(self.keys, now, jobs)))


def extend_side_effect_args(record_key: str, token: str, lease_ms: int) -> Args:
    """KEYS/ARGV of extendSideEffect: push the lease of this run's claim ``lease_ms`` on."""
    return script_keys("extendSideEffect", None, record=record_key), [token, lease_ms]


# -- changing a job (issue 16): builders (pure) ----------------------------------------


def promote_args(keys: QueueKeys, job_id: str) -> Args:
    return script_keys("promote", keys), [keys.job_prefix, job_id]


def promote_jobs_args(keys: QueueKeys, count: int) -> Args:
    return script_keys("promoteJobs", keys), [keys.job_prefix, count]


def change_delay_args(keys: QueueKeys, job_id: str, delay_ms: int, now: int) -> Args:
    return script_keys("changeDelay", keys), [
        keys.job_prefix,
        job_id,
        delay_ms,
        now,
    ]


def update_data_args(keys: QueueKeys, job_id: str, data_json: str) -> Args:
    return script_keys("updateData", keys, job=keys.job(job_id)), [data_json]


def change_priority_args(keys: QueueKeys, job_id: str, priority: int, lifo: bool) -> Args:
    return script_keys("changePriority", keys), [
        keys.job_prefix,
        job_id,
        priority,
        int(lifo),
    ]


def defer_args(keys: QueueKeys, now: int, job_id: str, token: str, delay_ms: int) -> Args:
    """moveToDelayed's arguments with ARGV[7] = "1": the processor defers its own job."""
    script_keys, argv = move_to_delayed_args(keys, now, job_id, token, delay_ms, {})
    return script_keys, [*argv, "1"]


def _check_delayed(result: int, job_id: str, action: str) -> None:
    """Raise for promote's or changeDelay's refusal: a missing job, or one not delayed."""
    if result == -3:
        raise ValueError(f"cannot {action} job {job_id}: it is not delayed")
    check(result, job_id, action)


def get_metrics_args(keys: QueueKeys, kind: str, start: int, end: int) -> Args:
    metrics = keys.metrics(kind)
    named = {"metrics": metrics, "metrics_data": metrics + ":data"}
    return script_keys("getMetrics", keys, **named), [start, end]
