"""Worker: takes jobs from a queue and runs a processor on them.

The loop reads as the steps of the lesson: wait for a free slot, fetch the next
job (or block on the marker until there is one), run it in the background, and
record the outcome: completed, retried later, or failed. Two background tasks
keep it honest: one renews the locks of running jobs, one sweeps for jobs whose
worker died (stalled) and puts them back.

One failure policy for every long-lived task (the loop, each job's task, the lock
renewal, the stalled sweep): an exception is reported (a log line naming the task
and an ``error`` event), then the step is tried again after a back-off. A task ends
only when the worker closes. ``close()`` waits for every job fetched, up to a
deadline; jobs still running then are left to the stalled check.

What no process can catch: a processor calling ``os._exit()`` (or a segfault) ends
the worker's process at once; its jobs are recovered by the stalled check of
another worker. Use ``sandboxed=True`` for such code: a child that dies fails only
its own job.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import math
import threading
import traceback
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from .backoff import backoff_delay, retry_rng
from .cancellation import Attempt, timeout_ms, wants_signal
from .clock import Clock, Pace, Timer, to_ms
from .connection import (
    blocking_limit,
    forget_name,
    named_client,
    on_reconnect,
    reconnect_error,
)
from .errors import (
    ChildrenError,
    DelayedError,
    JobNotFoundError,
    LockLostError,
    RateLimitError,
    UnrecoverableError,
    WaitingChildrenError,
    WorkerError,
)
from .job import Job
from .locks import LockRenewal, StalledSweep, keep_running
from .options import MAX_DELAY_MS, check_int, check_text, encode_json, keep_jobs
from .queue import Queue, repeat_from_hash
from .sandbox import Sandbox
from .schedule import next_run
from .scripts import Take, Taken

logger = logging.getLogger("minibull.worker")

Processor = Callable[[Job], Any]
BackoffStrategy = Callable[[int, str, BaseException, Job], float | int | timedelta]

EVENTS = ("active", "completed", "failed", "progress", "stalled", "drained", "error")
_STACKTRACE_LIMIT = 10
#: Caps on what a failure stores (S4): characters of ``failedReason`` and of each stack trace.
REASON_LIMIT = 2_000
STACK_LIMIT = 8_000
#: How long ``close()`` waits for running jobs by default: a container's usual grace period.
CLOSE_TIMEOUT = 30.0


def clean_text(text: str, limit: int | None = None) -> str:
    """Text fit for Redis: lone surrogates (no UTF-8 form) become U+FFFD, and text longer
    than ``limit`` characters is cut, with a marker saying how much went."""
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}... [{len(text) - limit} more characters cut]"
    return text


@dataclass(frozen=True)
class Failure:
    """A failed attempt, as it is recorded: retried after ``delay`` ms, or failed for good."""

    error: BaseException
    reason: str  # failedReason
    stacks: list[str]  # the job's stack traces, this one last
    delay: int | None  # ms until the next attempt; None: the job fails for good
    strategy_error: Exception | None = None  # a backoff_strategy that raised (reported)


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: "completed" (with its result), "failed" (``failure``),
    "rate limited" (RateLimitError: back in line) or "moved" (the processor moved it)."""

    kind: str
    result: Any = None
    returnvalue: str = ""  # the result as JSON text, as it is stored
    failure: Failure | None = None


class Worker:
    """Runs ``processor(job)`` for the jobs of queue ``name``; the constructor starts nothing.

    Use ``async with Worker(...)``, or ``worker.start()`` then ``await worker.close()``.
    Durations are seconds. Locks and the stalled sweep run on real time (they are
    Redis expiries); delays and backoff follow ``clock``.
    """

    def __init__(
        self,
        name: str,
        processor: Processor,
        connection: str | Redis | None = None,
        *,
        concurrency: int = 1,
        lock_duration: float | timedelta = 30,
        stalled_interval: float | timedelta = 30,
        max_stalled_count: int = 1,
        backoff_strategy: BackoffStrategy | None = None,
        prefix: str = "bull",
        clock: Clock | None = None,
        drain_delay: float = 5,
        limiter: dict[str, float] | None = None,
        sandboxed: bool = False,
        worker_name: str | None = None,
        metrics: dict[str, int] | None = None,
    ) -> None:
        self._wants_signal = check_processor(processor, backoff_strategy, sandboxed)
        self.processor = processor
        self.backoff_strategy = backoff_strategy
        self.sandboxed = sandboxed
        self.concurrency = check_int(concurrency, "concurrency", 1)
        self.lock_ms, self.stalled_interval_ms = check_lock_times(lock_duration, stalled_interval)
        self.max_stalled_count = check_int(max_stalled_count, "max_stalled_count", 0)
        self.drain_delay = to_ms(drain_delay, "drain_delay") / 1000 or 0.001
        self.limiter = check_limiter(limiter)
        self.worker_name, self.max_metrics = check_worker_name(worker_name), check_metrics(metrics)
        self.queue = Queue(name, connection, prefix=prefix, clock=clock)
        self.queue.on_progress(self._on_progress)
        self.name = name
        self.clock: Clock = self.queue.clock
        self.id = uuid.uuid4().hex[:12]
        self._init_client_name()
        self._wakeup_key = self.queue.keys.worker_wakeup(self.id)
        self._listeners: dict[str, list[Callable[..., Any]]] = defaultdict(list)
        self._init_guards()
        self._init_run_state()

    def _init_guards(self) -> None:
        """The two background guards against lost jobs (minibull/locks.py)."""
        self._locks = LockRenewal(self.queue.scripts, self.lock_ms, self._report)
        self._sweep = StalledSweep(
            self.queue.scripts,
            self.clock,
            (self.max_stalled_count, self.stalled_interval_ms),
            self._on_stalled,
            active=lambda: self._state == "running",
        )

    def _init_run_state(self) -> None:
        """What the worker tracks while it runs (the asyncio parts are made by ``_begin``)."""
        self._state = "new"  # new -> running -> closing -> closed
        self._paused = False
        self.waiting = ""  # what the loop waits for: "slot", "work", or "" (see is_idle)
        self._jobs: dict[str, tuple[Job, str, asyncio.Task[None]]] = {}
        self._attempts: dict[str, Attempt] = {}  # job id -> its running attempt
        self._tokens = 0
        self._slot_holders: set[asyncio.Task[None]] = set()
        self._left_to_stalled: set[asyncio.Task[None]] = set()  # holders that close() cancelled
        self._sandbox: Sandbox | None = None
        self._drained = False  # the last fetch found nothing ("drained" was emitted)
        self._deadline: float | None = None  # loop time when close() stops waiting for jobs
        self._forced = False  # close(force=True) was called
        self._deadline_moved: asyncio.Event | None = None
        self._closing: asyncio.Event | None = None  # set by close()
        self._waiting_task: asyncio.Task[Any] | None = None
        self._wakeup: asyncio.Event | None = None
        self._helpers_stop: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._closed: asyncio.Event | None = None
        self._stop_reconnect_reports: Callable[[], None] = lambda: None

    def __repr__(self) -> str:
        return f"Worker({self.name!r}, concurrency={self.concurrency}, state={self._state!r})"

    def on(self, event: str, callback: Callable[..., Any]) -> None:
        """Call ``callback`` on ``event`` (sync or async); see ``EVENTS``."""
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r} (events: {', '.join(EVENTS)})")
        self._listeners[event].append(callback)

    def start(self) -> asyncio.Task[None]:
        """Run the worker in the background on the running event loop."""
        if self._run_task is None:
            self._begin()
            self._run_task = asyncio.get_running_loop().create_task(self._run_loop())
        return self._run_task

    async def __aenter__(self) -> Worker:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def running(self) -> bool:
        return self._state == "running"

    async def run(self) -> None:
        """Take and run jobs until ``close()`` is called."""
        self._begin()
        await self._run_loop()

    async def close(self, force: bool = False, timeout: float | None = CLOSE_TIMEOUT) -> None:
        """Stop taking jobs and wait for the running ones, at most ``timeout`` seconds
        (None: no limit; ``force``: no wait). Jobs still running then are cancelled and
        left to the stalled check. Raises ``WorkerError`` if the worker had crashed."""
        if self._state == "new":
            self._state = "closed"
            await self.queue.close()
            return
        if self._state == "running":
            self._state = "closing"
        self._forced = self._forced or force
        self._set_deadline(0 if force else timeout)
        assert self._closing is not None
        self._closing.set()
        self._wake()
        assert self._closed is not None
        await self._closed.wait()
        if self._run_task is not None and self._run_task.done() and not self._run_task.cancelled():
            self._run_task.result()  # re-raise a crash of the loop (WorkerError), if any

    async def pause(self) -> None:
        """Stop this worker taking new jobs (its running jobs finish)."""
        self._paused = True
        self._wake()

    async def resume(self) -> None:
        """Let this worker take jobs again."""
        self._paused = False
        self._wake()

    def cancel_job(self, job_id: str, reason: str | None = None) -> bool:
        """Cancel the attempt this worker is running on job ``job_id``: True if it holds the
        job (running, or taken and about to start: then the processor never starts), False
        if not (or its outcome is being recorded). The attempt fails (retried while attempts
        are left); see ``minibull.cancellation`` for how a processor hears of it."""
        check_text(job_id, "job_id")
        if reason is not None:
            check_text(reason, "reason")
        attempt = self._attempts.get(job_id)
        if attempt is None:
            return False
        said = f"job {job_id} was cancelled" + (f": {reason}" if reason else "")
        return attempt.cancel(clean_text(said, REASON_LIMIT))

    def cancel_all_jobs(self, reason: str | None = None) -> int:
        """Cancel every attempt this worker is running; returns how many were cancelled."""
        if reason is not None:
            check_text(reason, "reason")
        return sum(self.cancel_job(job_id, reason) for job_id in list(self._attempts))

    async def rate_limit(self, seconds: float | timedelta) -> None:
        """Hold every worker of this queue for ``seconds`` (real time), then raise
        ``RateLimitError`` in the processor to put its job back (BullMQ's ``rateLimit``)."""
        await self.queue.rate_limit(seconds)

    # -- the story of a job: fetch it, run it, record how it ended -------------------

    async def _main_loop(self) -> None:
        """The worker's loop, until close(): take a free slot and the next job, and start
        the job in a task of its own (``_work``: run it, record how it ended)."""
        pace = Pace(cap=1.0)
        while self._state == "running":
            try:
                await self._take_a_slot_and_a_job()
                pace.reset()
            except Exception as exc:  # a Redis error or a bug: report, back off, go on
                await self._report("main loop", exc)
                await self._pause(pace.next())

    async def _take_a_slot_and_a_job(self) -> None:
        """Wait for a free slot, then for a job; the slot is given back if none came."""
        assert self._slots is not None
        if not await self._free_slot():
            return
        try:
            job = await self._next_job()
        except BaseException:
            self._slots.release()
            raise
        if job is None:
            self._slots.release()
        else:
            self._start_job(job)

    def _start_job(self, taken: tuple[Job, str]) -> None:
        """Run a job in its own task, holding one slot; the task goes on with the next
        job it fetched when finishing this one, until there is none."""

        def release_slot(task: asyncio.Task[None]) -> None:
            assert self._slots is not None
            self._slot_holders.discard(task)
            self._left_to_stalled.discard(task)
            self._slots.release()

        # Registered here, synchronously: close() waits for _slot_holders, so it also
        # sees a job fetched while it began, before the task has started (B3).
        task = asyncio.create_task(self._work(*taken))
        self._slot_holders.add(task)
        task.add_done_callback(release_slot)

    async def _work(self, job: Job | None, token: str) -> None:
        """One slot's work: run the job, record how it ended, and go on with the next job
        when recording fetched one (speed: one script call finishes a job and takes the next)."""
        task = asyncio.current_task()
        assert task is not None
        while job is not None:
            attempt = self._hold(job, token, task)
            try:
                await self._emit("active", job)
                if job.scheduler_id:
                    await self._plan_next_run(job)
                outcome = await self._run(job, attempt)
                following = await self._record(job, token, outcome)
            finally:
                self._let_go(job, attempt)
            job, token = following if following else (None, "")

    async def _run(self, job: Job, attempt: Attempt) -> Outcome:
        """Run the processor on the job, as one attempt, and say how it ended."""
        try:
            if job.deferred_failure:
                logger.warning(
                    "worker %s: job %s fails: %s", self.name, job.id, job.deferred_failure
                )
                raise UnrecoverableError(job.deferred_failure)
            result = await self._attempt(job, attempt)
            return Outcome("completed", result, encode_json(result, "the processor's return value"))
        except asyncio.CancelledError as error:
            if self._being_cancelled():
                raise  # force-closed: the job stays active and will be recovered as stalled
            return Outcome("failed", failure=self._failure(job, error))  # its own cancel
        except (DelayedError, WaitingChildrenError):
            return Outcome("moved")  # the processor moved its job (to delayed, or to wait
            # for its children: move_to_delayed, move_to_waiting_children)
        except RateLimitError:
            return Outcome("rate limited")  # the processor hit a limit (after rate_limit)
        except BaseException as error:  # also sys.exit() or KeyboardInterrupt in a processor
            return Outcome("failed", failure=self._failure(job, error))

    async def _record(self, job: Job, token: str, outcome: Outcome) -> tuple[Job, str] | None:
        """Write how the attempt ended to Redis; returns the next job if that fetched one."""
        if outcome.kind == "completed":
            return await self._finish(
                self._record_completion_or_children_error, job, token, outcome
            )
        if outcome.kind == "rate limited":  # back in line, no attempt used
            return await self._finish(self._record_rate_limited, job, token)
        if outcome.kind == "moved":
            return None
        assert outcome.failure is not None
        if outcome.failure.strategy_error is not None:
            await self._report("backoff_strategy", outcome.failure.strategy_error)
        return await self._finish(self._record_failure, job, token, outcome.failure)

    # -- fetching: a free slot, then the next job (or a wait for one) ----------------

    async def _free_slot(self) -> bool:
        """Wait for a free slot (True), or until close() is called (False)."""
        assert self._slots is not None and self._closing is not None
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns at once
            return True
        self.waiting = "slot"
        acquire = asyncio.ensure_future(self._slots.acquire())
        # Not waiting from the moment the slot is ours (a virtual clock asks in between).
        acquire.add_done_callback(lambda _: setattr(self, "waiting", ""))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({acquire, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.waiting = ""
            closing.cancel()
            if not acquire.done():
                acquire.cancel()
                await asyncio.gather(acquire, return_exceptions=True)
        return not acquire.cancelled()

    async def _next_job(self) -> tuple[Job, str] | None:
        """The next job and its lock token, waiting for one if needed (None: closing)."""
        while self._state == "running":
            if self._paused:
                await self._wait_for_wakeup()
                continue
            take = self._take()
            taken = await self.queue.scripts.move_to_active(self.clock.now(), take)
            if taken.job_id is not None and taken.fields is not None:
                self._drained = False
                return self._read_job(taken.job_id, taken.fields), take.token
            if taken.limited_ms:
                await self._pause(taken.limited_ms / 1000)
                continue
            await self._wait_for_work(taken.next_due or None)
        return None

    def _take(self) -> Take:
        """A fresh lock token, with this worker's lock duration and rate limit."""
        self._tokens += 1
        return Take(f"{self.id}:{self._tokens}", self.lock_ms, self.id, self.limiter)

    def _read_job(self, job_id: str, raw: dict[str, str]) -> Job:
        """The job taken; a hash that cannot be read becomes a job that fails with the reason."""
        try:
            return Job.from_hash(job_id, raw, self.queue)
        except Exception as exc:  # RecursionError too: the worker must go on
            job = Job(id=job_id, name=str(raw.get("name", "")), queue=self.queue)
            job.deferred_failure = f"the job's hash cannot be read: {exc}"
            return job

    async def _wait_for_work(self, next_due: int | None) -> None:
        """Block on the marker until a job may be ready (or a delayed one falls due)."""
        if not self._drained:  # once each time the queue runs dry, as BullMQ does
            self._drained = True
            await self._emit("drained")
        timer: Timer | None = None
        if next_due is not None:
            timer = self.clock.call_at(next_due, self._wake)
        timeout = self.clock.block_timeout(
            next_due, blocking_limit(self.queue.redis, self.drain_delay)
        )
        try:
            await self._wait_for_wakeup(
                lambda: self.queue.redis.bzpopmin(
                    [self.queue.keys.marker, self._wakeup_key], timeout
                )
            )
        finally:
            if timer is not None:
                timer.cancel()

    async def _wait_for_wakeup(
        self, blocking: Callable[[], Awaitable[Any]] | None = None, *, on_redis: bool = True
    ) -> None:
        """Wait for ``blocking()`` (a BZPOPMIN) or a local wake-up, whichever comes first.

        A wake-up that arrived while we were busy is not lost: it ends this wait at once.
        A blocking call is never cancelled (a cancelled BZPOPMIN can still pop a marker
        meant for someone else); a local wake-up ends it by writing to our own wake-up key.
        """
        assert self._wakeup is not None
        if self._wakeup.is_set() or self._state != "running":
            self._wakeup.clear()
            return
        self.waiting = "work"
        woken = asyncio.ensure_future(self._wakeup.wait())
        self._waiting_task = asyncio.ensure_future(blocking()) if blocking else None
        try:
            waiters = {woken, self._waiting_task} - {None}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if self._waiting_task is not None:
                if not self._waiting_task.done():
                    if on_redis:
                        await self._end_blocking_wait(self._waiting_task)
                    else:  # a plain sleep: safe to cancel
                        self._waiting_task.cancel()
                        await asyncio.gather(self._waiting_task, return_exceptions=True)
                        return
                # Never .result() a wait we cancelled ourselves: that would raise
                # CancelledError and end the loop (B4).
                if not self._waiting_task.cancelled():
                    self._waiting_task.result()  # a failed BZPOPMIN raises here
        finally:
            woken.cancel()
            self.waiting = ""
            self._waiting_task = None
            self._wakeup.clear()

    async def _end_blocking_wait(self, waiting: asyncio.Future[Any]) -> None:
        """End a blocked BZPOPMIN by writing to our wake-up key; if that fails (or the
        call does not return within 5 s), cancel it and report why."""
        try:
            await self.queue.redis.zadd(self._wakeup_key, {"0": 0})
            await asyncio.wait_for(asyncio.shield(waiting), timeout=5)
        except Exception as exc:
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            await self._report("wake-up", exc)

    async def _pause(self, seconds: float) -> None:
        """Sleep (real time), ended early by a local wake-up (close, pause, resume)."""
        await self._wait_for_wakeup(lambda: asyncio.sleep(seconds), on_redis=False)

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    # -- running: one attempt of the processor ---------------------------------------

    def _hold(self, job: Job, token: str, task: asyncio.Task[None]) -> Attempt:
        """A job starts here: its lock is renewed and ``cancel_job`` can find its attempt."""
        job.token = token  # for Job.move_to_delayed
        self._jobs[job.id] = (job, token, task)
        self._locks.held[job.id] = token
        attempt = self._attempts[job.id] = Attempt(job.id, task)
        return attempt

    def _let_go(self, job: Job, attempt: Attempt) -> None:
        self._jobs.pop(job.id, None)
        self._locks.held.pop(job.id, None)
        attempt.end()
        if self._attempts.get(job.id) is attempt:
            del self._attempts[job.id]

    async def _attempt(self, job: Job, attempt: Attempt) -> Any:
        """Run the processor as one attempt that ``cancel_job`` or the job's ``timeout``
        can stop (see ``minibull.cancellation``); raises what the attempt fails with."""
        task = asyncio.current_task()
        result, error = None, None
        if attempt.start(self.clock, self.clock.now(), timeout_ms(job.opts)):
            try:
                result = await self._call_processor(job, attempt)
            except BaseException as exc:  # decided below, with the cancellation
                error = exc
        attempt.end()
        if error is not None and self._being_cancelled():
            raise error  # a forced close: the job is left to the stalled check
        if attempt.task_cancelled and hasattr(task, "uncancel"):
            task.uncancel()  # Python 3.11+: this task goes on (it records the failure)
        failure = attempt.outcome(error)
        if failure is not None:
            raise failure
        return result

    async def _call_processor(self, job: Job, attempt: Attempt) -> Any:
        signal = attempt.signal if self._wants_signal else None
        if self._sandbox is not None:
            return await self._sandbox.run(self.processor, job, signal)
        args = (job, signal) if signal is not None else (job,)
        if inspect.iscoroutinefunction(self.processor):
            return await self.processor(*args)
        result = await run_in_daemon_thread(self.processor, *args)
        if inspect.isawaitable(result):
            return await result
        return result

    def _being_cancelled(self) -> bool:
        """True in a job's task that close() cancelled (not the processor's own cancelled await).

        Tracked by the worker, not with ``Task.cancelling()``, which Python 3.10 lacks."""
        return asyncio.current_task() in self._left_to_stalled

    # -- recording: completed, retried or failed (retried on Redis errors) -----------

    async def _finish(
        self, record: Callable[..., Awaitable[tuple[Job, str] | None]], *args: Any
    ) -> tuple[Job, str] | None:
        """Record an outcome; returns the next job when recording it fetched one.

        Any error is reported and retried with a back-off while the outcome can still
        count: until the job's lock has surely expired (nobody renews it now) or the
        close deadline; then the job is left to the stalled check. A lost lock, or a job
        removed while it ran (e.g. an obliterate), ends it at once."""
        job = args[0]
        self._locks.held.pop(job.id, None)  # the outcome's script releases the lock
        loop = asyncio.get_running_loop()
        give_up, pace = loop.time() + self.lock_ms / 1000, Pace()
        while True:
            try:
                return await record(*args)
            except (LockLostError, JobNotFoundError) as exc:  # removed while it ran
                await self._report(f"recording the outcome of job {job.id}", exc)
                return None
            except Exception as exc:
                await self._report(f"recording the outcome of job {job.id}", exc)
                pause = pace.next()
                if loop.time() + pause > give_up or self._past_deadline():
                    logger.warning(
                        "worker %s: gave up recording the outcome of job %s: left to the "
                        "stalled check, which puts it back once its lock expires",
                        self.name,
                        job.id,
                    )
                    return None
                await asyncio.sleep(pause)

    async def _record_completion(
        self, job: Job, token: str, result: Any, returnvalue: str
    ) -> tuple[Job, str] | None:
        now, fetch = self.clock.now(), self._fetch_next()
        taken = await self.queue.scripts.move_to_finished(
            job.id,
            now=now,
            token=token,
            failed=False,
            value=returnvalue,
            keep=keep_jobs(job.opts.get("removeOnComplete")),
            attempts=job.attempts,
            fetch_next=fetch,
            max_metrics=self.max_metrics,
        )
        job.attempts_made += 1
        job.returnvalue, job.finished_on = result, now
        await self._emit("completed", job, result)
        return self._following(taken, fetch)

    async def _record_completion_or_children_error(
        self, job: Job, token: str, outcome: Outcome
    ) -> tuple[Job, str] | None:
        """Flows: a parent with children pending, or failed by a child, cannot complete
        (ChildrenError): it fails instead, as BullMQ's worker does."""
        try:
            return await self._record_completion(job, token, outcome.result, outcome.returnvalue)
        except ChildrenError as error:
            return await self._record_failure(job, token, self._failure(job, error))

    async def _record_rate_limited(self, job: Job, token: str) -> None:
        """Put the job back at the front of the line, no attempt used (BullMQ's
        moveJobFromActiveToWait); moveToActive then holds every worker until the window ends."""
        await self.queue.scripts.move_job_from_active_to_wait(job.id, token, self.clock.now())

    def _failure(self, job: Job, error: BaseException) -> Failure:
        """What a failure stores, worked out once (the recording may be retried): the
        error, its reason and the stack traces, capped and valid UTF-8, and the retry delay."""
        reason = str(error) or type(error).__name__
        if not isinstance(error, Exception):  # sys.exit(), KeyboardInterrupt ...
            reason = f"the processor raised {type(error).__name__}({reason})"
        stack = "".join(traceback.format_exception(error)).rstrip()
        stacks = [clean_text(str(s), STACK_LIMIT) for s in [*job.stacktrace, stack]]
        delay, strategy_error = self._retry_delay(job, error)
        return Failure(
            error,
            clean_text(reason, REASON_LIMIT),
            stacks[-_STACKTRACE_LIMIT:],
            delay,
            strategy_error,
        )

    def _retry_delay(self, job: Job, error: BaseException) -> tuple[int | None, Exception | None]:
        """Milliseconds until the next attempt, or None to fail the job for good; and the
        error of a ``backoff_strategy`` that failed (it fails the job, reported)."""
        if isinstance(error, UnrecoverableError) or job.attempts_made + 1 >= job.attempts:
            return None, None
        backoff = job.opts.get("backoff")
        attempt = job.attempts_made + 1
        delay = backoff_delay(backoff, attempt, retry_rng(self.queue.keys.job(job.id), attempt))
        if delay is not None:
            return delay, None
        kind = backoff.get("type") if isinstance(backoff, dict) else backoff
        if self.backoff_strategy is None:
            logger.warning(
                "job %s has backoff type %r but the worker has no backoff_strategy", job.id, kind
            )
            return None, None
        try:
            seconds = self.backoff_strategy(attempt, kind, error, job)
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds < 0:
                return None, None
            return min(to_ms(seconds, "the backoff_strategy's result"), MAX_DELAY_MS), None
        except Exception as exc:  # a broken strategy fails the job, it does not strand it
            logger.warning("backoff_strategy failed for job %s: %s", job.id, exc)
            return None, exc

    async def _record_failure(
        self, job: Job, token: str, failure: Failure
    ) -> tuple[Job, str] | None:
        """Retry the job (at once, or delayed by its backoff), or fail it for good."""
        reason, stacks, delay = failure.reason, failure.stacks, failure.delay
        fields = {"failedReason": reason, "stacktrace": encode_json(stacks, "stacktrace")}
        scripts, now = self.queue.scripts, self.clock.now()
        following = None
        if delay is None:
            fetch = self._fetch_next()
            taken = await scripts.move_to_finished(
                job.id,
                now=now,
                token=token,
                failed=True,
                value=reason,
                keep=keep_jobs(job.opts.get("removeOnFail")),
                attempts=job.attempts,
                fields={"stacktrace": fields["stacktrace"]},
                fetch_next=fetch,
                max_metrics=self.max_metrics,
            )
            job.finished_on = now
            following = self._following(taken, fetch)
        elif delay == 0:
            lifo = bool(job.opts.get("lifo"))
            await scripts.retry_job(job.id, token, lifo=lifo, fields=fields, now=now)
        else:
            await scripts.move_to_delayed(now, job.id, token, delay, fields)
        job.attempts_made += 1
        job.failed_reason, job.stacktrace = reason, stacks
        await self._emit("failed", job, failure.error)
        return following

    # -- speed only: fetch the next job in the script that records this one ----------

    def _fetch_next(self) -> Take | None:
        """Fetch the next job while finishing this one, unless closing or paused."""
        return self._take() if self._state == "running" and not self._paused else None

    def _following(self, taken: Taken, take: Take | None) -> tuple[Job, str] | None:
        if take is None or taken.job_id is None or taken.fields is None:
            return None
        return self._read_job(taken.job_id, taken.fields), take.token

    # -- job schedulers: a run taken plans the next one ------------------------------

    async def _plan_next_run(self, job: Job) -> None:
        """A scheduler's run was taken: add the job of its next run (as BullMQ's worker does).

        The next time follows the scheduler's pending run (its score in ``repeat``);
        updateJobScheduler plans it only if this job is that run. A Redis error is reported
        and retried (the job's lock is renewed meanwhile) for up to one lock duration; a
        scheduler left unplanned would never run again."""
        assert job.scheduler_id is not None
        give_up = asyncio.get_running_loop().time() + self.lock_ms / 1000
        pace = Pace()
        while True:
            try:
                pending, raw = await self._read_scheduler(job.scheduler_id)
                if pending is None or not raw:
                    return
                now = self.clock.now()
                upcoming = next_run(repeat_from_hash(raw), now, previous=pending)
                await self.queue.scripts.update_job_scheduler(
                    now, job.scheduler_id, job.id, upcoming
                )
                return
            except Exception as exc:  # the run itself goes on; the error is reported
                await self._report(f"planning the next run of scheduler {job.scheduler_id}", exc)
                retry = isinstance(exc, (RedisError, OSError))
                if (
                    not retry
                    or asyncio.get_running_loop().time() > give_up
                    or self._past_deadline()
                ):
                    logger.error(
                        "worker %s: scheduler %s was not advanced; it runs again only after "
                        "upsert_job_scheduler",
                        self.name,
                        job.scheduler_id,
                    )
                    return
                await asyncio.sleep(pace.next())

    async def _read_scheduler(self, scheduler_id: str) -> tuple[int | None, dict[str, str]]:
        """The time of a scheduler's pending run (ms; None: no such scheduler) and its hash,
        in one round trip."""
        async with self.queue.redis.pipeline(transaction=False) as pipe:
            pipe.zscore(self.queue.keys.repeat, scheduler_id)
            pipe.hgetall(self.queue.keys.scheduler(scheduler_id))
            score, raw = await pipe.execute()
        return (None if score is None else int(score)), raw

    # -- starting and closing --------------------------------------------------------

    def _begin(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"a worker runs once (this one is {self._state})")
        self._state = "running"
        self._closed = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._helpers_stop = asyncio.Event()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._deadline_moved = asyncio.Event()
        self._closing = asyncio.Event()
        if self.sandboxed:
            self._sandbox = Sandbox()
        self.clock.add_actor(self)
        self._stop_reconnect_reports = on_reconnect(self.queue.redis, self._report_reconnect)

    async def _run_loop(self) -> None:
        assert self._helpers_stop is not None
        stop, report = self._helpers_stop, self._report
        helpers = [
            asyncio.create_task(keep_running(task, step, cap, stop, report))
            for task, step, cap in (
                ("lock renewal", self._locks.step, self.lock_ms / 4000),
                ("stalled check", self._sweep.step, self.stalled_interval_ms / 1000),
                ("client name", self._keep_named, 30),
            )
        ]
        crash: BaseException | None = None
        try:
            await self._main_loop()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # only what the loop's own policy cannot handle
            crash = exc
        finally:
            helper_crashes = await self._shut_down(helpers)
        crash = crash or next(iter(helper_crashes), None)
        if isinstance(crash, (KeyboardInterrupt, SystemExit)):
            raise crash
        if crash is not None:
            logger.error("worker %s can no longer work: %r", self.name, crash)
            raise WorkerError(f"worker {self.name} can no longer work: {crash!r}") from crash

    async def _shut_down(self, helpers: list[asyncio.Task[None]]) -> list[BaseException]:
        """Wait for the jobs, stop the helpers, let go of Redis; returns how helpers crashed."""
        self._state = "closing"
        await self._wait_for_running_jobs()  # their locks are still renewed meanwhile
        # The helpers stop at their next step; they are not cancelled, because a
        # cancellation that lands inside a Redis call can be swallowed by the client.
        assert self._helpers_stop is not None
        self._helpers_stop.set()
        ended = await asyncio.gather(*helpers, return_exceptions=True)
        await self._forget_wakeup_key()
        await self._drop_name()
        if self._sandbox is not None:
            self._sandbox.shutdown()
        self.clock.remove_actor(self)
        self._stop_reconnect_reports()
        await self.queue.close()
        self._state = "closed"
        assert self._closed is not None
        self._closed.set()
        return [result for result in ended if isinstance(result, BaseException)]

    def _set_deadline(self, timeout: float | None) -> None:
        """Stop waiting for running jobs ``timeout`` seconds from now (kept if sooner)."""
        if timeout is not None and (isinstance(timeout, bool) or timeout < 0):
            raise ValueError(f"timeout must be None or >= 0 seconds (got {timeout!r})")
        now = asyncio.get_running_loop().time()
        deadline = math.inf if timeout is None else now + timeout
        if self._deadline is None or deadline < self._deadline:
            self._deadline = deadline
            assert self._deadline_moved is not None
            self._deadline_moved.set()

    def _past_deadline(self) -> bool:
        return self._deadline is not None and asyncio.get_running_loop().time() >= self._deadline

    async def _wait_for_running_jobs(self) -> None:
        """Wait for every job fetched (running or about to), until the close deadline."""
        if self._deadline is None:  # the loop ended without close(): the default wait
            self._set_deadline(CLOSE_TIMEOUT)
        assert self._deadline is not None and self._deadline_moved is not None
        loop = asyncio.get_running_loop()
        while self._slot_holders and not self._past_deadline():
            self._deadline_moved.clear()
            moved = asyncio.ensure_future(self._deadline_moved.wait())
            remaining = self._deadline - loop.time()
            await asyncio.wait(
                {*self._slot_holders, moved},
                timeout=None if math.isinf(remaining) else remaining,
                return_when=asyncio.FIRST_COMPLETED,
            )
            moved.cancel()
        if self._slot_holders:
            await self._leave_running_jobs()

    async def _leave_running_jobs(self) -> None:
        """At the close deadline: cancel the jobs still running; their locks expire and the
        stalled check puts them back in line (they run again, from the start)."""
        ids = sorted(job.id for job, _token, _task in self._jobs.values())
        # A forced close asked for this (INFO); a graceful one that ran out of time did not.
        logger.log(
            logging.INFO if self._forced else logging.WARNING,
            "worker %s: %d job(s) still running when close() stopped waiting (%s): left to the "
            "stalled check, which puts them back once their locks expire",
            self.name,
            len(self._slot_holders),
            "jobs " + ", ".join(ids) if ids else "just fetched",
        )
        holders = set(self._slot_holders)
        self._left_to_stalled |= holders
        for task in holders:
            task.cancel()
        await asyncio.wait(holders, timeout=1.0)

    # -- locks and stalled jobs: minibull/locks.py; events and errors ----------------

    async def _on_stalled(self, job_id: str) -> None:
        """The stalled sweep put a job back: logged, as each is a crash somewhere."""
        logger.warning(
            "worker %s: job %s stalled (its worker died or lost the lock): back in line",
            self.name,
            job_id,
        )
        await self._emit("stalled", job_id)

    async def _on_progress(self, job_id: str, value: Any) -> None:
        """The queue stored a job's progress: emit ``progress`` if this worker runs it."""
        running = self._jobs.get(job_id)
        if running is not None:
            await self._emit("progress", running[0], value)

    async def _emit(self, event: str, *args: Any) -> None:
        """Call the listeners of ``event``; a failing listener is reported on ``error``."""
        for callback in list(self._listeners.get(event, ())):
            try:
                result = callback(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                if event == "error":
                    logger.exception("worker %s: an 'error' listener failed", self.name)
                else:
                    await self._report(f"a {event!r} listener", exc)

    async def _report(self, task: str, exc: BaseException) -> None:
        """The failure policy's report: a log line naming the task, and an ``error`` event."""
        logger.warning("worker %s: %s failed: %s: %s", self.name, task, type(exc).__name__, exc)
        await self._emit("error", exc)

    async def _report_reconnect(self, error: Exception) -> None:
        """A try that redis-py retries on a new connection is a fault too: report it."""
        await self._report("a Redis command", reconnect_error(error))

    async def _forget_wakeup_key(self) -> None:
        try:
            await self.queue.redis.delete(self._wakeup_key)
        except Exception as exc:
            await self._report("deleting the wake-up key", exc)

    # -- a virtual clock asks whether the worker is idle -----------------------------

    async def is_idle(self) -> bool:
        """For a virtual clock: True when nothing here can move until time advances.

        Running jobs count as idle only while they sleep on the clock (virtual work); the
        loop, while it waits for a slot that only they can free, or for work (``waiting``)
        that no wake-up, finished Redis call or ready job is about to end.
        """
        jobs_sleep = all(self.clock.is_sleeping(task) for task in self._slot_holders)
        if self._state != "running" or self._paused or not jobs_sleep:
            return jobs_sleep
        if self.waiting == "slot":
            return len(self._slot_holders) >= self.concurrency  # all hold sleeping jobs
        if self.waiting != "work":
            return False
        if self._wakeup is not None and self._wakeup.is_set():
            return False
        waiting = self._waiting_task
        if waiting is not None and waiting.done():
            return False
        return not await self.queue.has_ready_work(self.limiter)

    # -- the worker's Redis client name (issue 16): Queue.get_workers finds it -------

    def _init_client_name(self) -> None:
        self.client_name = self.queue.keys.client_name(self.worker_name)
        self._named: Redis | None = None
        self._name_refused = False

    async def _keep_named(self) -> float:
        """Hold one connection named ``client_name`` while the worker runs, as BullMQ's
        blocking connection; a PING every 30 s reconnects it (and names it again) after a
        break, so the worker shows in ``Queue.get_workers`` again."""
        if self._named is None and not self._name_refused:
            self._named = named_client(self.queue.redis, self.client_name)
        if self._named is not None:
            try:
                await self._named.ping()
            except ResponseError as exc:  # CLIENT SETNAME refused: an ACL, a managed Redis
                logger.warning(
                    "worker %s: the server refused its client name (%s): get_workers will "
                    "not list it",
                    self.name,
                    exc,
                )
                named, self._named, self._name_refused = self._named, None, True
                await named.aclose()
                await named.connection_pool.disconnect()
        return 30.0

    async def _drop_name(self) -> None:
        named, self._named = self._named, None
        if named is not None:
            try:
                await forget_name(named)
            except Exception as exc:
                await self._report("clearing the client name", exc)


async def run_in_daemon_thread(function: Callable[..., Any], job: Job, *more: Any) -> Any:
    """``function(job)`` in a thread of its own, as a daemon: a processor that never
    returns cannot keep a closed worker's process alive (``asyncio.to_thread``'s
    threads are joined when the process exits)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def run() -> None:
        result, error = None, None
        try:
            result = context.run(function, job, *more)
        except BaseException as exc:  # SystemExit too: the job fails, the thread ends
            error = exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop has closed: nobody waits for this job any more
            pass

    threading.Thread(target=run, name=f"minibull job {job.id}", daemon=True).start()
    return await done


def check_processor(
    processor: Any, backoff_strategy: BackoffStrategy | None, sandboxed: bool
) -> bool:
    """Check the callables and ``sandboxed``; True if the processor takes a CancelSignal."""
    if not callable(processor):
        raise TypeError(f"processor must be callable (got {type(processor).__name__})")
    if backoff_strategy is not None and not callable(backoff_strategy):
        raise TypeError("backoff_strategy must be callable")
    if not isinstance(sandboxed, bool):
        raise TypeError("sandboxed must be True or False")
    return wants_signal(processor)


def check_lock_times(
    lock_duration: float | timedelta, stalled_interval: float | timedelta
) -> tuple[int, int]:
    """The lock duration and the stalled check's interval, in ms (both must be positive)."""
    lock_ms = to_ms(lock_duration, "lock_duration")
    stalled_interval_ms = to_ms(stalled_interval, "stalled_interval")
    if lock_ms < 2 or stalled_interval_ms < 1:
        raise ValueError("lock_duration and stalled_interval must be positive")
    return lock_ms, stalled_interval_ms


def check_limiter(limiter: dict[str, float] | None) -> tuple[int, int] | None:
    """``limiter={"max": 10, "duration": 1.0}``: at most max job starts per duration seconds."""
    if limiter is None:
        return None
    if not isinstance(limiter, dict) or set(limiter) != {"max", "duration"}:
        raise ValueError('limiter must be {"max": jobs, "duration": seconds}')
    max_jobs = check_int(limiter["max"], "limiter max", 1)
    window = to_ms(limiter["duration"], "limiter duration")
    if window <= 0:
        raise ValueError("limiter duration must be > 0 seconds")
    return max_jobs, window


#: ``Worker(metrics={"max_data_points": n})`` keeps at most a month of minutes: a finish after
#: a long quiet spell writes a 0 for each minute missed, in one script call.
MAX_DATA_POINTS = 60 * 24 * 31


def check_metrics(metrics: dict[str, int] | None) -> int:
    """``metrics={"max_data_points": n}``: keep n per-minute points (BullMQ's maxDataPoints);
    the result is n, or 0 for None (no metrics)."""
    if metrics is None:
        return 0
    if not isinstance(metrics, dict) or set(metrics) != {"max_data_points"}:
        raise ValueError(f'metrics must be {{"max_data_points": minutes}} (got {metrics!r})')
    return check_int(metrics["max_data_points"], "metrics max_data_points", 1, MAX_DATA_POINTS)


def check_worker_name(worker_name: str | None) -> str | None:
    """``worker_name``: None, or text CLIENT SETNAME takes (printable ASCII, no spaces)."""
    if worker_name is not None:
        check_text(worker_name, "worker_name")
        if not all("!" <= char <= "~" for char in worker_name):
            raise ValueError(
                f"worker_name must be printable ASCII without spaces (got {worker_name!r})"
            )
    return worker_name
