"""A job: its data, its options and what happened to it, as stored in its Redis hash."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .clock import to_ms
from .errors import JobNotFoundError
from .options import MAX_DELAY_MS, MAX_PRIORITY, check_int, check_size, encode_json

if TYPE_CHECKING:
    from .queue import Queue

#: The states a job can be in, as ``get_state`` reports them.
STATES = ("waiting", "active", "prioritized", "delayed", "completed", "failed")
FINISHED_STATES = frozenset({"completed", "failed"})


def _loads(text: str | None, default: Any = None) -> Any:
    """JSON text decoded; text that is not JSON (or too deep to decode) is kept as it is."""
    return _decode(text, default)[0]


def _decode(text: str | None, default: Any = None) -> tuple[Any, str | None]:
    """(value, None), or (the text itself, why it could not be decoded as JSON)."""
    if text is None or text == "":
        return default, None
    try:
        return json.loads(text), None
    except RecursionError:  # written by another client: Python's parser gives up at ~1,000
        return text, "it is nested too deeply to decode"
    except ValueError:
        return text, None


def _parent(text: str | None) -> dict[str, Any] | None:
    """A child's ``parent`` field (BullMQ's JSON {id, queueKey, policy flags}), or None."""
    parent = _loads(text)
    return parent if isinstance(parent, dict) else None


def _int(text: str | None) -> int | None:
    return None if text is None or text == "" else int(float(text))


@dataclass(repr=False, eq=False)
class Job:
    """One unit of work. Times are epoch milliseconds, as in BullMQ."""

    id: str
    name: str
    data: Any = None
    opts: dict[str, Any] = field(default_factory=dict)
    attempts_made: int = 0
    attempts_started: int = 0
    stalled_counter: int = 0
    progress: Any = 0
    returnvalue: Any = None
    failed_reason: str | None = None
    stacktrace: list[str] = field(default_factory=list)
    timestamp: int = 0
    processed_on: int | None = None
    finished_on: int | None = None
    delay: int = 0
    priority: int = 0
    deferred_failure: str | None = None
    scheduler_id: str | None = None
    deduplication_id: str | None = None
    processed_by: str | None = None
    parent_key: str | None = None
    parent: dict[str, Any] | None = None
    queue: Queue | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, name={self.name!r}, data={self.data!r})"

    @property
    def attempts(self) -> int:
        """How many runs the job may have in all (the ``attempts`` option)."""
        return int(self.opts.get("attempts") or 1)

    @classmethod
    def from_hash(cls, job_id: str, raw: dict[str, str], queue: Queue | None = None) -> Job:
        """Decode a job hash (BullMQ's fields) into a Job.

        Data or opts that cannot be decoded (written by another client) never raise here:
        the text is kept and ``deferred_failure`` says why, so a worker fails the job."""
        data, data_problem = _decode(raw.get("data"), {})
        opts, opts_problem = _decode(raw.get("opts"), {})
        if not isinstance(opts, dict):
            opts, opts_problem = {}, opts_problem or "it is not a JSON object"
        stacktrace = _loads(raw.get("stacktrace"), [])
        problem = None
        if data_problem or opts_problem:
            field, why = ("data", data_problem) if data_problem else ("opts", opts_problem)
            problem = f"the job's {field} cannot be read: {why}"
        return cls(
            id=job_id,
            name=raw.get("name", ""),
            data=data,
            opts=opts,
            attempts_made=_int(raw.get("atm", raw.get("attemptsMade"))) or 0,
            attempts_started=_int(raw.get("ats")) or 0,
            stalled_counter=_int(raw.get("stc")) or 0,
            progress=_loads(raw.get("progress"), 0),
            returnvalue=_loads(raw.get("returnvalue")),
            failed_reason=raw.get("failedReason"),
            stacktrace=stacktrace if isinstance(stacktrace, list) else [],
            timestamp=_int(raw.get("timestamp")) or 0,
            processed_on=_int(raw.get("processedOn")),
            finished_on=_int(raw.get("finishedOn")),
            delay=_int(raw.get("delay")) or 0,
            priority=_int(raw.get("priority")) or 0,
            deferred_failure=raw.get("defa") or problem,
            scheduler_id=raw.get("rjk"),
            deduplication_id=raw.get("deid"),
            processed_by=raw.get("pb"),
            parent_key=raw.get("parentKey"),
            parent=_parent(raw.get("parent")),
            queue=queue,
        )

    def _queue(self) -> Queue:
        if self.queue is None:
            raise RuntimeError("this Job is not attached to a Queue")
        return self.queue

    async def get_state(self) -> str:
        """Where the job is now: one of ``STATES``, or ``"unknown"``."""
        return await self._queue().get_job_state(self.id)

    async def update_progress(self, value: Any) -> None:
        """Store progress (a number or any JSON value) and emit a ``progress`` event."""
        text = encode_json(value, "progress")
        await self._queue().scripts.update_progress(self.id, text)
        self.progress = value
        listener = getattr(self, "_on_progress", None)
        if listener is not None:
            await listener(self, value)

    async def log(self, line: str, *, keep: int = 0) -> int:
        """Append a line to the job's log; returns the number of lines.

        ``keep``: keep only the newest ``keep`` lines (0: all), so a chatty job's log
        stays bounded."""
        if not isinstance(line, str):
            raise TypeError(f"line must be a string (got {type(line).__name__})")
        check_int(keep, "keep", 0)
        return await self._queue().scripts.add_log(self.id, line, keep)

    async def get_logs(self) -> list[str]:
        """The job's log lines, oldest first."""
        queue = self._queue()
        return list(await queue.redis.lrange(queue.keys.logs(self.id), 0, -1))

    async def retry(self, state: str = "failed", *, reset_attempts: bool = False) -> None:
        """Run a finished job again (from ``failed`` by default)."""
        if state not in FINISHED_STATES:
            raise ValueError(f"state must be 'failed' or 'completed' (got {state!r})")
        await self._queue().scripts.reprocess_job(self.id, state, reset_attempts)

    async def remove(self) -> None:
        """Delete the job; refuses while a worker runs it."""
        if not await self._queue().scripts.remove_job(self.id):
            raise RuntimeError(
                f"job {self.id} is running (locked by a worker); it cannot be removed"
            )

    async def refresh(self) -> Job:
        """Re-read the job from Redis, updating this object."""
        fresh = await self._queue().get_job(self.id)
        if fresh is None:
            raise JobNotFoundError(f"job {self.id} no longer exists")
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))
        return self

    async def wait_until_finished(self, timeout: float | None = None) -> Any:
        """Wait until the job completes and return its value; raise JobFailedError if it fails.

        ``timeout`` is in real seconds (None: no limit); on timeout, ``TimeoutError`` (the
        builtin one on every Python: 3.10's ``asyncio.wait_for`` raises its own).
        """
        try:
            return await asyncio.wait_for(self._queue().wait_for_job(self.id), timeout)
        except asyncio.TimeoutError as error:
            raise TimeoutError(f"job {self.id} did not finish within {timeout} s") from error

    # -- changing a job (issue 16): BullMQ's promote, changeDelay, updateData, ... --------

    async def promote(self) -> None:
        """Run this delayed job now (ValueError if it is not delayed)."""
        await self._queue().scripts.promote(self.id)
        self.delay = 0

    async def change_delay(self, delay: float | timedelta) -> None:
        """Run this delayed job ``delay`` seconds from now instead (ValueError if not delayed)."""
        delay_ms = to_ms(delay, "delay")
        if delay_ms > MAX_DELAY_MS:
            raise ValueError(f"delay must be at most 5 years (got {delay!r} seconds)")
        queue = self._queue()
        await queue.scripts.change_delay(self.id, delay_ms, queue.clock.now())
        self.delay = delay_ms

    async def update_data(self, data: Any) -> None:
        """Replace the job's data, in any state (a running processor keeps what it read)."""
        data_json = encode_json(data, "data")
        size_limit = self.opts.get("sizeLimit")
        check_size(data_json, size_limit if isinstance(size_limit, int) else None)
        await self._queue().scripts.update_data(self.id, data_json)
        self.data = json.loads(data_json)

    async def change_priority(self, priority: int, lifo: bool = False) -> None:
        """Give the job a new priority (1 runs first, 0: none); a waiting job moves to its
        new place in line, behind its equals (``lifo``: in front of them)."""
        check_int(priority, "priority", 0, MAX_PRIORITY)
        if not isinstance(lifo, bool):
            raise TypeError(f"lifo must be True or False (got {lifo!r})")
        await self._queue().scripts.change_priority(self.id, priority, lifo)
        self.priority = priority

    async def move_to_delayed(self, timestamp: int, token: str | None = None) -> None:
        """From inside the processor: wait in ``delayed`` until ``timestamp`` (epoch ms, by the
        queue's clock), counting no attempt; then raise ``DelayedError``. ``token``: the run's
        lock token (default: the one the worker gave this job)."""
        check_int(timestamp, "timestamp", 0)
        token = token if token is not None else getattr(self, "token", None)
        if not isinstance(token, str) or not token:
            raise ValueError("token must be the lock token of the run (the job is not running)")
        queue = self._queue()
        now = queue.clock.now()
        delay_ms = min(max(timestamp - now, 0), MAX_DELAY_MS)
        await queue.scripts.defer(now, self.id, token, delay_ms)
        self.delay = delay_ms

    # -- flows (issue 15): a parent and its children -----------------------------------

    async def get_children_values(self) -> dict[str, Any]:
        """The return values of this job's completed children, by child job key
        (``bull:<queue>:<id>``), from its ``:processed`` hash."""
        queue = self._queue()
        raw = await queue.redis.hgetall(queue.keys.processed(self.id))
        return {child: _loads(value) for child, value in sorted(raw.items())}

    async def get_dependencies(self) -> dict[str, Any]:
        """This job's children by outcome, as BullMQ's getDependencies: ``processed``
        (key -> return value), ``unprocessed`` (keys still pending), ``failed`` (keys that
        failed the job, fail_parent_on_failure) and ``ignored`` (key -> reason, the
        children it went on without)."""
        queue, keys = self._queue(), self._queue().keys
        async with queue.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.processed(self.id))
            pipe.smembers(keys.dependencies(self.id))
            pipe.zrange(keys.unsuccessful(self.id), 0, -1)
            pipe.hgetall(keys.failed_children(self.id))
            processed, pending, unsuccessful, ignored = await pipe.execute()
        return {
            "processed": {child: _loads(value) for child, value in sorted(processed.items())},
            "unprocessed": sorted(pending),
            "failed": list(unsuccessful),
            "ignored": dict(sorted(ignored.items())),
        }

    async def move_to_waiting_children(
        self, token: str | None = None, *, child: Job | None = None
    ) -> bool:
        """From inside the processor: wait in ``waiting-children`` until the children
        (or only ``child``) finish, then raise ``WaitingChildrenError``; the job runs again
        after them. Returns False, moving nothing, when no child is pending: go on."""
        token = token if token is not None else getattr(self, "token", None)
        if not isinstance(token, str) or not token:
            raise ValueError("token must be the lock token of the run (the job is not running)")
        child_key = ""
        if child is not None:
            if not isinstance(child, Job) or child.queue is None:
                raise TypeError("child must be a Job of a Queue (as FlowProducer.add returns)")
            child_key = child.queue.keys.job(child.id)
        queue = self._queue()
        return await queue.scripts.move_to_waiting_children(
            self.id, token, queue.clock.now(), child_key
        )
