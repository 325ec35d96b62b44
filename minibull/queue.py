"""Queue: the producer's side. Add jobs, look at them, pause, clean up."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis

from .clock import Clock, SystemClock, to_ms
from .connection import blocking_limit, check_cluster_prefix, resolve
from .errors import JobFailedError, JobNotFoundError
from .job import FINISHED_STATES, STATES, Job, _loads
from .keys import FLOW_STATES, LIST_STATES, RESERVED_JOB_IDS, QueueKeys
from .options import (
    MAX_COUNT,
    MAX_DELAY_MS,
    MAX_PRIORITY,
    PLAIN_OPTS,
    PLAIN_OPTS_JSON,
    build_job,
    build_plain_job,
    check_int,
    check_size,
    check_text,
    encode_json,
)
from .schedule import check_repeat, next_run
from .scripts import Scripts

_ADD_OPTIONS = frozenset(
    {
        "job_id",
        "attempts",
        "backoff",
        "delay",
        "priority",
        "lifo",
        "remove_on_complete",
        "remove_on_fail",
        "deduplication",
        "size_limit",
        "timeout",
    }
)


#: At most this many jobs go into one addJob call of ``add_bulk`` ...
BULK_BATCH_JOBS = 1000
#: ... and about this many bytes of job text (data, options, name, id): one script call
#: holds Redis for as long as it runs (200,000 jobs in one call blocked it for 4 s).
BULK_BATCH_BYTES = 8 * 1024 * 1024
#: ``promote_jobs`` moves this many delayed jobs per script call (as BullMQ's promoteJobs).
PROMOTE_BATCH = 1000


def check_queue_name(name: Any) -> str:
    """A queue name: non-empty text without ':' (as BullMQ: "Queue name cannot contain :"),
    so that no queue's keys lie inside another's, e.g. ``emails`` and ``emails:high``."""
    check_text(name, "queue name")
    if ":" in name:
        raise ValueError(f"queue name must not contain ':' (got {name!r})")
    return name


def _check_states(states: tuple[str, ...] | list[str]) -> list[str]:
    """The states named (``FLOW_STATES`` too), or every state of ``STATES`` when none is."""
    for state in states:
        if state not in STATES and state not in FLOW_STATES:
            known = ", ".join((*STATES, *FLOW_STATES))
            raise ValueError(f"unknown state {state!r} (states: {known})")
    return list(states) or list(STATES)


# -- what Queue and SyncQueue share: pure steps around their Redis calls -------------


def build_one(name: Any, data: Any, options: dict[str, Any]) -> dict[str, Any]:
    """``add``'s arguments checked and built for the addJob script (``options.build_job``)."""
    if not options:
        return build_plain_job(name, data)  # speed only: build_job(name, data)
    unknown = options.keys() - _ADD_OPTIONS
    if unknown:
        raise TypeError(f"unknown job option(s) {sorted(unknown)}; known: {sorted(_ADD_OPTIONS)}")
    return build_job(name, data, **options)


def build_many(jobs: Any) -> list[dict[str, Any]]:
    """``add_bulk``'s list checked and built, every job before anything is written."""
    if not isinstance(jobs, list):
        raise TypeError(f"jobs must be a list of dicts (got {type(jobs).__name__})")
    return [_build_entry(index, entry) for index, entry in enumerate(jobs)]


def _build_entry(index: int, entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict) or "name" not in entry:
        raise TypeError(f"jobs[{index}] must be a dict with at least a 'name' (got {entry!r})")
    options = {key: value for key, value in entry.items() if key not in ("name", "data")}
    return build_one(entry["name"], entry.get("data"), options)


def job_as_added(job_id: str, spec: dict[str, Any], now: int, queue: Any = None) -> Job:
    """The Job an add created, from its built arguments (no read back)."""
    opts = spec["opts"]
    return Job(
        id=job_id,
        name=spec["name"],
        data=_loads(spec["data"]),
        # speed only: the options of a plain add are known, not decoded
        opts=dict(PLAIN_OPTS) if opts == PLAIN_OPTS_JSON else _loads(opts),
        timestamp=now,
        delay=spec["delay"],
        priority=spec["priority"],
        queue=queue,
    )


def existing_ids(results: list[tuple[str, bool]]) -> list[str]:
    """The ids of an addJob reply that name a job already there (duplicate or dedup id)."""
    return [job_id for job_id, is_new in results if not is_new]


def jobs_as_added(
    specs: list[dict[str, Any]],
    results: list[tuple[str, bool]],
    raws: list[dict[str, str]],
    now: int,
    queue: Any = None,
) -> list[Job]:
    """The Jobs of one addJob call: new ones from the arguments, existing ones from their
    hashes ``raws`` (in the order of ``existing_ids``); one removed in between (it finished,
    with ``remove_on_complete``) carries the arguments and the existing id, as BullMQ's."""
    found = iter(raws)
    jobs = []
    for spec, (job_id, is_new) in zip(specs, results, strict=True):
        raw = None if is_new else next(found)
        if raw:
            jobs.append(Job.from_hash(job_id, raw, queue))
        else:
            jobs.append(job_as_added(job_id, spec, now, queue))
    return jobs


def ask_counts(pipe: Any, keys: QueueKeys, states: tuple[str, ...]) -> list[str]:
    """Queue on ``pipe`` (async or sync) the commands that count jobs in ``states`` (all when
    none are named); returns the states, in the order of the replies."""
    chosen = _check_states(states)
    for state in chosen:
        key = keys.state_key(state)
        pipe.llen(key) if state in LIST_STATES else pipe.zcard(key)
    return chosen


def job_hash_key(keys: QueueKeys, job_id: Any) -> str | None:
    """The hash of job ``job_id``, or None for an id that names a queue-level key ("meta")."""
    job_id = str(job_id)
    return None if job_id in RESERVED_JOB_IDS else keys.job(job_id)


class Queue:
    """A named queue of jobs in Redis, with BullMQ's key layout.

    ``connection`` is a Redis URL or a ``redis.asyncio.Redis`` client; by default
    ``MINIBULL_REDIS_URL`` or the embedded in-process server. Creating a Queue
    touches nothing: Redis is used when you call a method.
    """

    def __init__(
        self,
        name: str,
        connection: str | Redis | None = None,
        *,
        prefix: str = "bull",
        clock: Clock | None = None,
    ) -> None:
        self.name = check_queue_name(name)
        self.prefix = check_text(prefix, "prefix")
        self.keys = QueueKeys(self.name, prefix)
        self.clock = clock or SystemClock()
        self.redis, self._owns_redis = resolve(connection)
        check_cluster_prefix(self.redis, prefix)
        self.scripts = Scripts(self.redis, self.keys)
        self._progress_listeners: list[Callable[[str, Any], Awaitable[None]]] = []

    def __repr__(self) -> str:
        return f"Queue({self.name!r}, prefix={self.prefix!r})"

    async def __aenter__(self) -> Queue:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the Redis client, if the queue created it."""
        await self.scripts.close()
        if self._owns_redis:
            await self.redis.aclose()

    # -- adding ---------------------------------------------------------------

    async def add(
        self, name: str, data: Any, *, repeat: dict[str, Any] | None = None, **options: Any
    ) -> Job:
        """Add a job; returns it. See ``add_bulk`` for many at once.

        Options: ``job_id``, ``attempts`` (runs in all, default 1), ``backoff``,
        ``delay`` (seconds, at most 5 years), ``priority`` (1 runs first, 0 = none),
        ``lifo``, ``remove_on_complete``, ``remove_on_fail``, ``deduplication`` and
        ``size_limit`` (bytes of data as JSON, as BullMQ's sizeLimit; without it,
        ``DEFAULT_SIZE_LIMIT``, 16 MiB), ``timeout`` (seconds on the worker's clock an
        attempt may run before it is cancelled and fails; stored as ``opts.timeout`` in
        ms, which BullMQ ignores). ``data`` may nest at most ``MAX_DATA_DEPTH``
        (100) levels. A second add with the same ``job_id`` (or deduplication id)
        returns the existing job, read back from Redis; if that job was removed in
        between (it finished, with ``remove_on_complete``), the Job returned carries
        your arguments and the existing id, as BullMQ's ``add`` always does.
        At-least-once: an add whose reply was lost (a broken connection) is sent
        again, so with an automatic id the job may be added twice; a ``job_id``
        makes the repeat harmless.
        ``repeat={"pattern": "0 8 * * *", "tz": ...}`` or ``{"every": seconds}``
        makes a job scheduler (its id: ``job_id``, else the name; adding it again
        replaces it) and returns the job of its first run; a schedule that has
        already ended (``end_date`` before its next run) raises ``ValueError``.
        Bad input raises ``ValueError``/``TypeError`` naming the argument, and
        nothing is written.
        """
        if repeat is not None:
            scheduler_id = options.pop("job_id", None) or name
            job = await self.upsert_job_scheduler(
                scheduler_id, repeat, name=name, data=data, opts=options
            )
            if job is None:
                raise ValueError(
                    "repeat: the schedule has already ended (end_date is before its next "
                    "run), so no job was added; upsert_job_scheduler returns None instead"
                )
            return job
        # One job, one addJob call: add_bulk's steps without its lists and batches.
        spec = build_one(name, data, options)
        now = self.clock.now()
        results = await self.scripts.add_jobs(now, [spec])
        if results[0][1]:  # added: the Job is what we sent (the usual case, no read back)
            return job_as_added(results[0][0], spec, now, self)
        (job,) = await self._jobs_as_added([spec], results, now)
        return job

    async def add_bulk(self, jobs: list[dict[str, Any]]) -> list[Job]:
        """Add many jobs: ``[{"name": ..., "data": ..., **options}, ...]``, as ``add`` does.

        Every job is checked before anything is written: one bad job raises and adds
        none. The jobs then go to Redis in batches of up to ``BULK_BATCH_JOBS`` (1,000)
        jobs, one script call each, so a huge list never holds Redis for long. Each
        batch is atomic, the whole list is not: if Redis fails half-way, the first
        batches stay added.
        """
        built = build_many(jobs)
        added: list[Job] = []
        for batch in _batches(built):
            now = self.clock.now()
            results = await self.scripts.add_jobs(now, batch)
            added.extend(await self._jobs_as_added(batch, results, now))
        return added

    async def _jobs_as_added(
        self, specs: list[dict[str, Any]], results: list[tuple[str, bool]], now: int
    ) -> list[Job]:
        """The Jobs of one batch: existing ones read back, all in one round trip."""
        existing = existing_ids(results)
        raws: list[dict[str, str]] = []
        if existing:
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id in existing:
                    pipe.hgetall(self.keys.job(job_id))
                raws = await pipe.execute()
        return jobs_as_added(specs, results, raws, now, self)

    # -- looking --------------------------------------------------------------

    async def get_job(self, job_id: str) -> Job | None:
        """The job with this id, or None."""
        key = job_hash_key(self.keys, job_id)
        raw = await self.redis.hgetall(key) if key else None
        return Job.from_hash(str(job_id), raw, self) if raw else None

    async def get_job_state(self, job_id: str) -> str:
        """Which state holds the job: one of ``STATES``, ``"waiting-children"`` (a parent of
        a flow), or ``"unknown"``."""
        states = (*STATES, *FLOW_STATES)
        async with self.redis.pipeline(transaction=False) as pipe:
            for state in states:
                key = self.keys.state_key(state)
                if state in LIST_STATES:
                    pipe.lpos(key, job_id)
                else:
                    pipe.zscore(key, job_id)
            found = await pipe.execute()
        for state, where in zip(states, found, strict=True):
            if where is not None:
                return state
        return "unknown"

    async def get_job_counts(self, *states: str) -> dict[str, int]:
        """How many jobs are in each state (all states when none are named)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            chosen = ask_counts(pipe, self.keys, states)
            counts = await pipe.execute()
        return dict(zip(chosen, map(int, counts), strict=True))

    async def get_jobs(
        self,
        states: str | list[str] | None = None,
        start: int = 0,
        end: int = -1,
        *,
        asc: bool = False,
    ) -> list[Job]:
        """Jobs in the given states, newest first (``asc=True``: oldest first)."""
        chosen = _check_states([states] if isinstance(states, str) else list(states or []))
        ids: list[str] = []
        for state in chosen:
            ids.extend(await self._job_ids(state, start, end, asc))
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id))
            raws = await pipe.execute() if ids else []
        return [
            Job.from_hash(job_id, raw, self) for job_id, raw in zip(ids, raws, strict=True) if raw
        ]

    async def _job_ids(self, state: str, start: int, end: int, asc: bool) -> list[str]:
        key = self.keys.state_key(state)
        if state in LIST_STATES:
            # Lists get new jobs on the left, so left to right is newest first.
            if asc:
                ids = await self.redis.lrange(key, -(end + 1) if end >= 0 else 0, -(start + 1))
                return list(reversed(ids))
            return list(await self.redis.lrange(key, start, end))
        # Sorted sets: completed/failed by finish time; delayed/prioritized by run order.
        newest_first = state in FINISHED_STATES
        if newest_first != asc:
            return list(await self.redis.zrevrange(key, start, end))
        return list(await self.redis.zrange(key, start, end))

    async def wait_for_job(self, job_id: str) -> Any:
        """Wait until a job finishes; return its value or raise ``JobFailedError``."""
        last_event = await self._last_event_id()
        while True:
            outcome = await self._finished_outcome(job_id)
            if outcome is not None:
                return _settle(job_id, *outcome)
            block_ms = int(blocking_limit(self.redis, 5.0) * 1000)
            replies = await self.redis.xread(
                {self.keys.events: last_event}, block=block_ms, count=200
            )
            for _stream, entries in replies or []:
                for entry_id, fields in entries:
                    last_event = entry_id
                    if fields.get("jobId") == job_id and fields.get("event") in FINISHED_STATES:
                        return _settle(
                            job_id,
                            fields["event"],
                            fields.get("returnvalue"),
                            fields.get("failedReason"),
                        )

    async def _last_event_id(self) -> str:
        last = await self.redis.xrevrange(self.keys.events, count=1)
        return last[0][0] if last else "0-0"

    async def _finished_outcome(self, job_id: str) -> tuple[str, str | None, str | None] | None:
        raw = await self.redis.hmget(
            self.keys.job(job_id), "finishedOn", "returnvalue", "failedReason", "name"
        )
        finished_on, returnvalue, failed_reason, name = raw
        if name is None:
            # The job is gone: removed on completion? Look for how it ended.
            for _entry_id, fields in await self.redis.xrevrange(self.keys.events, count=10000):
                if fields.get("jobId") == job_id and fields.get("event") in FINISHED_STATES:
                    return fields["event"], fields.get("returnvalue"), fields.get("failedReason")
            raise JobNotFoundError(f"job {job_id} does not exist")
        if finished_on is None:
            return None
        state = (
            "failed"
            if await self.redis.zscore(self.keys.failed, job_id) is not None
            else "completed"
        )
        return state, returnvalue, failed_reason

    async def has_ready_work(self, limiter: tuple[int, int] | None = None) -> bool:
        """True when a worker could take a job now or a wake-up call is pending.

        A virtual clock asks this (through its workers) before moving time on. Jobs that
        wait behind the global concurrency cap or a rate limit (the queue's, else the
        worker's ``limiter``) are not ready: only a running job, or real time, frees them.
        """
        return await self.scripts.has_ready_work(self.clock.now(), limiter)

    # -- job schedulers (repeatable jobs) -----------------------------------

    async def upsert_job_scheduler(
        self,
        scheduler_id: str,
        repeat: dict[str, Any],
        *,
        name: str | None = None,
        data: Any = None,
        opts: dict[str, Any] | None = None,
    ) -> Job | None:
        """Create or replace a job scheduler: a job ``name`` with ``data`` on a schedule.

        ``repeat`` has ``pattern`` (cron, with optional ``tz``) or ``every``
        (seconds), and optionally ``limit``, ``start_date``, ``end_date`` and
        ``immediately``. ``opts`` are ``add`` options for every run (attempts,
        backoff, ...). Returns the job of the next run (None if the schedule is over).
        """
        check_text(scheduler_id, "scheduler_id")
        stored = check_repeat(repeat)
        options = dict(opts or {})
        for forbidden in ("job_id", "delay", "repeat", "deduplication"):
            if forbidden in options:
                raise ValueError(f"{forbidden!r} cannot be set for the jobs of a scheduler")
        template = build_one(name or scheduler_id, data, options)
        now = self.clock.now()
        first = next_run(stored, now)
        if first is None:  # as BullMQ: an ended schedule adds nothing and changes nothing
            return None
        if first - now > MAX_DELAY_MS:
            raise ValueError("repeat start_date must be at most 5 years ahead (as delay)")
        fields = {
            "name": template["name"],
            "data": template["data"],
            "opts": template["opts"],
            **{key: str(value) for key, value in stored.items() if key != "immediately"},
        }
        if "every" in stored:  # BullMQ's phase of the slots, read when it catches up
            fields["offset"] = str(first % stored["every"])
        job_id, _ = await self.scripts.add_job_scheduler(now, scheduler_id, first, fields)
        job = await self.get_job(job_id)
        if job is None:  # already run and removed (remove_on_complete): say what was added
            template["delay"] = max(first - now, 0)
            job = job_as_added(job_id, template, now, self)
        return job

    async def get_job_schedulers(self) -> list[dict[str, Any]]:
        """Every job scheduler, soonest first: id, name, next run (ms), schedule, runs so far."""
        ids = await self.redis.zrange(self.keys.repeat, 0, -1, withscores=True)
        schedulers = []
        for scheduler_id, next_millis in ids:
            found = await self.get_job_scheduler(scheduler_id, next_millis=int(next_millis))
            if found is not None:
                schedulers.append(found)
        return schedulers

    async def get_job_scheduler(
        self, scheduler_id: str, *, next_millis: int | None = None
    ) -> dict[str, Any] | None:
        """One job scheduler as a dict, or None."""
        raw = await self.redis.hgetall(self.keys.scheduler(scheduler_id))
        if not raw:
            return None
        if next_millis is None:
            score = await self.redis.zscore(self.keys.repeat, scheduler_id)
            next_millis = None if score is None else int(score)
        return scheduler_from_hash(scheduler_id, raw, next_millis)

    async def remove_job_scheduler(self, scheduler_id: str) -> bool:
        """Stop a scheduler and drop its pending run; True if it existed."""
        return await self.scripts.remove_job_scheduler(scheduler_id)

    # -- limits for every worker -----------------------------------------------

    async def set_global_concurrency(self, concurrency: int | None) -> None:
        """Cap the jobs of this queue running at once, over all workers (None: no cap)."""
        if concurrency is not None:
            check_int(concurrency, "concurrency", 1)
        await self.scripts.set_queue_limits(concurrency=concurrency)

    async def set_global_rate_limit(self, max_jobs: int | None, duration: float = 1.0) -> None:
        """At most ``max_jobs`` starts per ``duration`` seconds, over all workers (None: off)."""
        if max_jobs is None:
            await self.scripts.set_queue_limits(max=None, duration=None)
            return
        check_int(max_jobs, "max_jobs", 1)
        window = to_ms(duration, "duration")
        if window <= 0:
            raise ValueError("duration must be > 0 seconds")
        await self.scripts.set_queue_limits(max=max_jobs, duration=window)

    async def rate_limit(self, seconds: float | timedelta) -> None:
        """Hold every worker of the queue for ``seconds`` (real time), e.g. after an API
        answered 429 with Retry-After (BullMQ's ``rateLimit``; see ``RateLimitError``)."""
        await self.scripts.rate_limit(check_rate_limit_window(seconds))

    async def remove_rate_limit_key(self) -> bool:
        """End a rate limit now, manual or not (BullMQ's ``removeRateLimitKey``): the window's
        count starts again at 0. True if there was one."""
        return await self.scripts.remove_rate_limit_key()

    async def get_rate_limit_ttl(self) -> float:
        """Seconds until the limiter key expires: a manual limit or the current window (0: none)."""
        ttl = await self.redis.pttl(self.keys.limiter)
        return ttl / 1000 if ttl > 0 else 0.0

    async def get_global_limits(self) -> dict[str, float | int | None]:
        """The queue's caps: concurrency, max jobs per window and the window (seconds)."""
        concurrency, max_jobs, window = await self.redis.hmget(
            self.keys.meta, "concurrency", "max", "duration"
        )
        return {
            "concurrency": None if concurrency is None else int(concurrency),
            "max": None if max_jobs is None else int(max_jobs),
            "duration": None if window is None else int(window) / 1000,
        }

    # -- controlling ----------------------------------------------------------

    async def pause(self) -> None:
        """Stop every worker from taking jobs (running jobs finish)."""
        await self.scripts.pause(True)

    async def resume(self) -> None:
        """Let workers take jobs again."""
        await self.scripts.pause(False)

    async def is_paused(self) -> bool:
        return bool(await self.redis.hexists(self.keys.meta, "paused"))

    async def drain(self, delayed: bool = False) -> int:
        """Remove the jobs waiting to run (and delayed ones if ``delayed``); returns how many."""
        return await self.scripts.drain(delayed)

    async def clean(
        self, grace: float | timedelta, limit: int = 0, state: str = "completed"
    ) -> list[str]:
        """Remove up to ``limit`` (0: all) jobs in ``state`` older than ``grace`` seconds."""
        grace_ms = to_ms(grace, "grace")
        check_int(limit, "limit", 0)
        _check_states([state])
        return await self.scripts.clean(state, self.clock.now() - grace_ms, limit)

    async def obliterate(self, force: bool = False) -> None:
        """Delete the queue and all its jobs. Refuses while jobs run, unless ``force``."""
        await self.scripts.obliterate(force)

    async def retry_jobs(self, state: str = "failed", *, reset_attempts: bool = False) -> int:
        """Move every failed (or completed) job back to wait; returns how many."""
        if state not in FINISHED_STATES:
            raise ValueError(f"state must be 'failed' or 'completed' (got {state!r})")
        moved, until = 0, self.clock.now()  # jobs that finish again meanwhile stay (BullMQ)
        while batch := await self.scripts.move_jobs_to_wait(state, 1000, reset_attempts, until):
            moved += batch
        return moved

    # -- one job, by its id (what a Job's own methods call) -----------------------

    def on_progress(self, listener: Callable[[str, Any], Awaitable[None]]) -> None:
        """Call ``await listener(job_id, value)`` after each progress this Queue object
        stores (a Worker listens on its own queue, to emit ``progress`` for its jobs)."""
        self._progress_listeners.append(listener)

    async def update_job_progress(self, job_id: str, value: Any) -> None:
        """Store a job's progress (a number or any JSON value); emits ``progress``."""
        await self.scripts.update_progress(job_id, encode_json(value, "progress"))
        for listener in self._progress_listeners:
            await listener(job_id, value)

    async def add_job_log(self, job_id: str, line: str, *, keep: int = 0) -> int:
        """Append a line to a job's log; returns the number of lines (``keep``: keep only
        the newest ``keep`` lines, 0: all)."""
        if not isinstance(line, str):
            raise TypeError(f"line must be a string (got {type(line).__name__})")
        check_int(keep, "keep", 0)
        return await self.scripts.add_log(job_id, line, keep)

    async def get_job_logs(self, job_id: str) -> list[str]:
        """A job's log lines, oldest first."""
        return list(await self.redis.lrange(self.keys.logs(job_id), 0, -1))

    async def retry_job(
        self, job_id: str, state: str = "failed", *, reset_attempts: bool = False
    ) -> None:
        """Run a finished job again (from ``failed`` by default)."""
        if state not in FINISHED_STATES:
            raise ValueError(f"state must be 'failed' or 'completed' (got {state!r})")
        await self.scripts.reprocess_job(job_id, state, reset_attempts)

    async def remove_job(self, job_id: str) -> None:
        """Delete a job; refuses (RuntimeError) while a worker runs it."""
        if not await self.scripts.remove_job(job_id):
            raise RuntimeError(
                f"job {job_id} is running (locked by a worker); it cannot be removed"
            )

    async def promote_job(self, job_id: str) -> None:
        """Run a delayed job now (ValueError if it is not delayed)."""
        await self.scripts.promote(job_id)

    async def change_job_delay(self, job_id: str, delay: float | timedelta) -> int:
        """Run a delayed job ``delay`` seconds from now instead (ValueError if not delayed);
        returns the delay in ms."""
        delay_ms = to_ms(delay, "delay")
        if delay_ms > MAX_DELAY_MS:
            raise ValueError(f"delay must be at most 5 years (got {delay!r} seconds)")
        await self.scripts.change_delay(job_id, delay_ms, self.clock.now())
        return delay_ms

    async def update_job_data(
        self, job_id: str, data: Any, *, size_limit: int | None = None
    ) -> Any:
        """Replace a job's data, in any state; returns the data as stored (decoded)."""
        data_json = encode_json(data, "data")
        check_size(data_json, size_limit)
        await self.scripts.update_data(job_id, data_json)
        return json.loads(data_json)

    async def change_job_priority(self, job_id: str, priority: int, lifo: bool = False) -> None:
        """Give a job a new priority (1 runs first, 0: none); see ``Job.change_priority``."""
        check_int(priority, "priority", 0, MAX_PRIORITY)
        if not isinstance(lifo, bool):
            raise TypeError(f"lifo must be True or False (got {lifo!r})")
        await self.scripts.change_priority(job_id, priority, lifo)

    async def move_job_to_delayed(self, job_id: str, token: str | None, timestamp: int) -> int:
        """A running job (its lock ``token``) waits in ``delayed`` until ``timestamp`` (epoch
        ms, this queue's clock), counting no attempt; returns the delay in ms."""
        check_int(timestamp, "timestamp", 0)
        if not isinstance(token, str) or not token:
            raise ValueError("token must be the lock token of the run (the job is not running)")
        now = self.clock.now()
        delay_ms = min(max(timestamp - now, 0), MAX_DELAY_MS)
        await self.scripts.defer(now, job_id, token, delay_ms)
        return delay_ms

    async def get_children_values(self, job_id: str) -> dict[str, Any]:
        """A flow's parent: its completed children's return values, by child job key."""
        raw = await self.redis.hgetall(self.keys.processed(job_id))
        return {child: _loads(value) for child, value in sorted(raw.items())}

    async def get_dependencies(self, job_id: str) -> dict[str, Any]:
        """A flow's parent: its children by outcome (see ``Job.get_dependencies``)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.processed(job_id))
            pipe.smembers(self.keys.dependencies(job_id))
            pipe.zrange(self.keys.unsuccessful(job_id), 0, -1)
            pipe.hgetall(self.keys.failed_children(job_id))
            processed, pending, unsuccessful, ignored = await pipe.execute()
        return {
            "processed": {child: _loads(value) for child, value in sorted(processed.items())},
            "unprocessed": sorted(pending),
            "failed": list(unsuccessful),
            "ignored": dict(sorted(ignored.items())),
        }

    async def move_job_to_waiting_children(
        self, job_id: str, token: str | None, *, child: Job | None = None
    ) -> bool:
        """A running parent (its lock ``token``) waits in ``waiting-children`` for its
        children (or only ``child``); False, moving nothing, when none is pending."""
        if not isinstance(token, str) or not token:
            raise ValueError("token must be the lock token of the run (the job is not running)")
        child_key = ""
        if child is not None:
            if not isinstance(child, Job) or not isinstance(child.queue, Queue):
                raise TypeError("child must be a Job of a Queue (as FlowProducer.add returns)")
            child_key = child.queue.keys.job(child.id)
        return await self.scripts.move_to_waiting_children(
            job_id, token, self.clock.now(), child_key
        )

    # -- changing jobs (issue 16) -----------------------------------------------

    async def promote_jobs(self) -> int:
        """Run every delayed job now, soonest due first (their priorities kept); returns how
        many. A job delayed again meanwhile (a retry's backoff) may be promoted too."""
        moved = 0
        while True:
            batch = await self.scripts.promote_jobs(PROMOTE_BATCH)
            moved += batch
            if batch < PROMOTE_BATCH:
                return moved

    async def set_max_len_events(self, max_len: int) -> None:
        """Keep about ``max_len`` entries in the events stream (BullMQ's
        ``streams.events.maxLen``, meta's ``opts.maxLenEvents``; default 10,000), and trim it
        to that now. A Queue touches nothing when created, so this is a call of its own."""
        check_int(max_len, "max_len", 1, MAX_COUNT)
        await self.scripts.set_queue_limits(**{"opts.maxLenEvents": max_len})
        await self.redis.xtrim(self.keys.events, maxlen=max_len, approximate=True)

    async def get_metrics(self, kind: str, start: int = 0, end: int = -1) -> dict[str, Any]:
        """Jobs finished per minute, kept by workers made with ``metrics=`` (BullMQ's
        getMetrics): ``kind`` "completed" or "failed"; ``data`` the points ``start`` to ``end``
        (0: the newest minute, -1: the oldest), ``count`` how many points there are, ``meta``
        the running total and the total and time (ms) of the newest point."""
        if kind not in FINISHED_STATES:
            raise ValueError(f"kind must be 'completed' or 'failed' (got {kind!r})")
        check_int(start, "start", -MAX_COUNT, MAX_COUNT)
        check_int(end, "end", -MAX_COUNT, MAX_COUNT)
        (count, prev_ts, prev_count), data, points = await self.scripts.get_metrics(
            kind, start, end
        )
        return {
            "meta": {
                "count": int(count or 0),
                "prev_ts": int(prev_ts or 0),
                "prev_count": int(prev_count or 0),
            },
            "data": [int(point) for point in data],
            "count": int(points),
        }

    # -- who is working (issue 16) ------------------------------------------------

    async def get_workers(self) -> list[dict[str, str]]:
        """The workers of this queue connected now, from CLIENT LIST, as BullMQ's getWorkers:
        one dict of CLIENT LIST fields per worker, ``name`` the queue's and ``rawname`` the
        client name (``bull:<queue in base64>[:w:<worker name>]``). BullMQ's workers count too."""
        if not isinstance(self.redis, Redis):
            raise NotImplementedError("get_workers needs one Redis server (not a cluster)")
        unnamed = self.keys.client_name()
        workers = []
        for client in await self.redis.client_list():
            raw = client.get("name", "")
            if raw == unnamed or raw.startswith(unnamed + ":w:"):
                workers.append({**client, "name": self.name, "rawname": raw})
        return workers

    # -- deduplication modes (issue 16) ---------------------------------------------

    async def remove_deduplication_key(self, dedup_id: str) -> int:
        """Free a deduplication id now, whichever job holds it (BullMQ's
        ``removeDeduplicationKey``, a DEL of ``de:<id>``): the next add with it makes a job.
        An add kept by ``keep_last_if_active`` (``dn:<id>``) stays, as in BullMQ. Returns 1
        if the id was held, else 0."""
        check_text(dedup_id, "dedup_id")
        return int(await self.redis.delete(self.keys.deduplication(dedup_id)))


def _batches(specs: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Split built jobs into addJob calls of at most BULK_BATCH_JOBS jobs and, unless one
    job alone is bigger, about BULK_BATCH_BYTES of text."""
    batch: list[dict[str, Any]] = []
    size = 0
    for spec in specs:
        weight = len(spec["data"]) + len(spec["opts"]) + len(spec["name"]) + len(spec["id"])
        if batch and (len(batch) >= BULK_BATCH_JOBS or size + weight > BULK_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(spec)
        size += weight
    if batch:
        yield batch


def _settle(job_id: str, state: str, returnvalue: str | None, failed_reason: str | None) -> Any:
    if state == "failed":
        raise JobFailedError(job_id, failed_reason)
    return _loads(returnvalue)


def scheduler_from_hash(
    scheduler_id: str, raw: dict[str, str], next_millis: int | None
) -> dict[str, Any]:
    """A scheduler hash (BullMQ's fields) as a dict with numbers where numbers belong."""
    result: dict[str, Any] = {"id": scheduler_id, "name": raw.get("name"), "next": next_millis}
    for field in ("pattern", "tz"):
        if field in raw:
            result[field] = raw[field]
    for field in ("every", "limit", "startDate", "endDate", "offset"):
        if field in raw:
            result[field] = int(float(raw[field]))
    result["iterations"] = int(raw.get("ic", 0))
    result["data"] = _loads(raw.get("data"))
    result["opts"] = _loads(raw.get("opts"), {})
    return result


def repeat_from_hash(raw: dict[str, str]) -> dict[str, Any]:
    """The stored schedule of a scheduler hash, in the form ``schedule.next_run`` takes."""
    repeat: dict[str, Any] = {}
    if "pattern" in raw:
        repeat["pattern"] = raw["pattern"]
    for field in ("every", "limit", "startDate", "endDate"):
        if field in raw:
            repeat[field] = int(float(raw[field]))
    if "tz" in raw:
        repeat["tz"] = raw["tz"]
    return repeat


def check_rate_limit_window(seconds: float | timedelta) -> int:
    """``rate_limit``'s window in ms: more than 0, at most 5 years."""
    window = to_ms(seconds, "seconds")
    if window <= 0 or window > MAX_DELAY_MS:
        raise ValueError(f"seconds must be > 0 and at most 5 years (got {seconds!r})")
    return window
