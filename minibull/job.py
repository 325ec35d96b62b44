"""A job: its data, its options and what happened to it, as stored in its Redis hash."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from .errors import JobNotFoundError


class JobQueue(Protocol):
    """What a Job needs from its queue: the ``Queue`` methods that act on one job by id."""

    async def get_job(self, job_id: str) -> Job | None: ...
    async def get_job_state(self, job_id: str) -> str: ...
    async def wait_for_job(self, job_id: str) -> Any: ...
    async def update_job_progress(self, job_id: str, value: Any) -> None: ...
    async def add_job_log(self, job_id: str, line: str, *, keep: int = 0) -> int: ...
    async def get_job_logs(self, job_id: str) -> list[str]: ...
    async def retry_job(
        self, job_id: str, state: str = ..., *, reset_attempts: bool = ...
    ) -> None: ...
    async def remove_job(self, job_id: str) -> None: ...
    async def promote_job(self, job_id: str) -> None: ...
    async def change_job_delay(self, job_id: str, delay: float | timedelta) -> int: ...
    async def update_job_data(
        self, job_id: str, data: Any, *, size_limit: int | None = ...
    ) -> Any: ...
    async def change_job_priority(self, job_id: str, priority: int, lifo: bool = ...) -> None: ...
    async def move_job_to_delayed(self, job_id: str, token: str | None, timestamp: int) -> int: ...
    async def get_children_values(self, job_id: str) -> dict[str, Any]: ...
    async def get_dependencies(self, job_id: str) -> dict[str, Any]: ...
    async def move_job_to_waiting_children(
        self, job_id: str, token: str | None, *, child: Job | None = None
    ) -> bool: ...


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
    parent_key: str | None = None  # a child of a flow: its parent's job key
    parent: dict[str, Any] | None = None  # ... and the parent's id, queue and policy
    token: str | None = None  # the lock token of the run a worker gave this job
    queue: JobQueue | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, name={self.name!r}, data={self.data!r})"

    @property
    def attempts(self) -> int:
        """How many runs the job may have in all (the ``attempts`` option)."""
        return int(self.opts.get("attempts") or 1)

    @classmethod
    def from_hash(cls, job_id: str, raw: dict[str, str], queue: JobQueue | None = None) -> Job:
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

    def _queue(self) -> JobQueue:
        if self.queue is None:
            raise RuntimeError("this Job is not attached to a Queue")
        return self.queue

    async def get_state(self) -> str:
        """Where the job is now: one of ``STATES``, or ``"unknown"``."""
        return await self._queue().get_job_state(self.id)

    async def update_progress(self, value: Any) -> None:
        """Store progress (a number or any JSON value) and emit a ``progress`` event."""
        await self._queue().update_job_progress(self.id, value)
        self.progress = value

    async def log(self, line: str, *, keep: int = 0) -> int:
        """Append a line to the job's log; returns the number of lines.

        ``keep``: keep only the newest ``keep`` lines (0: all), so a chatty job's log
        stays bounded."""
        return await self._queue().add_job_log(self.id, line, keep=keep)

    async def get_logs(self) -> list[str]:
        """The job's log lines, oldest first."""
        return await self._queue().get_job_logs(self.id)

    async def retry(self, state: str = "failed", *, reset_attempts: bool = False) -> None:
        """Run a finished job again (from ``failed`` by default)."""
        await self._queue().retry_job(self.id, state, reset_attempts=reset_attempts)

    async def remove(self) -> None:
        """Delete the job; refuses while a worker runs it."""
        await self._queue().remove_job(self.id)

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
        await self._queue().promote_job(self.id)
        self.delay = 0

    async def change_delay(self, delay: float | timedelta) -> None:
        """Run this delayed job ``delay`` seconds from now instead (ValueError if not delayed)."""
        self.delay = await self._queue().change_job_delay(self.id, delay)

    async def update_data(self, data: Any) -> None:
        """Replace the job's data, in any state (a running processor keeps what it read)."""
        size_limit = self.opts.get("sizeLimit")
        limit = size_limit if isinstance(size_limit, int) else None
        self.data = await self._queue().update_job_data(self.id, data, size_limit=limit)

    async def change_priority(self, priority: int, lifo: bool = False) -> None:
        """Give the job a new priority (1 runs first, 0: none); a waiting job moves to its
        new place in line, behind its equals (``lifo``: in front of them)."""
        await self._queue().change_job_priority(self.id, priority, lifo)
        self.priority = priority

    async def move_to_delayed(self, timestamp: int, token: str | None = None) -> None:
        """From inside the processor: wait in ``delayed`` until ``timestamp`` (epoch ms, by the
        queue's clock), counting no attempt; then raise ``DelayedError``. ``token``: the run's
        lock token (default: the one the worker gave this job)."""
        token = token if token is not None else self.token
        self.delay = await self._queue().move_job_to_delayed(self.id, token, timestamp)

    # -- flows (issue 15): a parent and its children -----------------------------------

    async def get_children_values(self) -> dict[str, Any]:
        """The return values of this job's completed children, by child job key
        (``bull:<queue>:<id>``), from its ``:processed`` hash."""
        return await self._queue().get_children_values(self.id)

    async def get_dependencies(self) -> dict[str, Any]:
        """This job's children by outcome, as BullMQ's getDependencies: ``processed``
        (key -> return value), ``unprocessed`` (keys still pending), ``failed`` (keys that
        failed the job, fail_parent_on_failure) and ``ignored`` (key -> reason, the
        children it went on without)."""
        return await self._queue().get_dependencies(self.id)

    async def move_to_waiting_children(
        self, token: str | None = None, *, child: Job | None = None
    ) -> bool:
        """From inside the processor: wait in ``waiting-children`` until the children
        (or only ``child``) finish, then raise ``WaitingChildrenError``; the job runs again
        after them. Returns False, moving nothing, when no child is pending: go on."""
        token = token if token is not None else self.token
        return await self._queue().move_job_to_waiting_children(self.id, token, child=child)
