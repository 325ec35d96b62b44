"""Worker: takes jobs from a queue and runs a processor on them.

The loop reads as the steps of the lesson: wait for a free slot, fetch the next
job (or block on the marker until there is one), run it in the background, and
record the outcome: completed, retried later, or failed. Two background tasks
keep it honest: one renews the locks of running jobs, one sweeps for jobs whose
worker died (stalled) and puts them back.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .backoff import backoff_delay, retry_rng
from .clock import Clock, Timer, to_ms
from .connection import blocking_limit
from .errors import JobNotFoundError, LockLostError, UnrecoverableError
from .job import Job
from .options import MAX_DELAY_MS, check_int, encode_json, keep_jobs
from .queue import Queue, repeat_from_hash
from .sandbox import make_pool, run_sandboxed
from .schedule import next_run
from .scripts import Take, Taken

logger = logging.getLogger("minibull.worker")

Processor = Callable[[Job], Any]
BackoffStrategy = Callable[[int, str, BaseException, Job], float | int | timedelta]

EVENTS = ("active", "completed", "failed", "progress", "stalled", "drained", "error")
_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
_STACKTRACE_LIMIT = 10


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
    ) -> None:
        if not callable(processor):
            raise TypeError(f"processor must be callable (got {type(processor).__name__})")
        if backoff_strategy is not None and not callable(backoff_strategy):
            raise TypeError("backoff_strategy must be callable")
        self.concurrency = check_int(concurrency, "concurrency", 1)
        self.lock_ms = to_ms(lock_duration, "lock_duration")
        self.stalled_interval_ms = to_ms(stalled_interval, "stalled_interval")
        if self.lock_ms < 2 or self.stalled_interval_ms < 1:
            raise ValueError("lock_duration and stalled_interval must be positive")
        self.max_stalled_count = check_int(max_stalled_count, "max_stalled_count", 0)
        self.drain_delay = to_ms(drain_delay, "drain_delay") / 1000 or 0.001
        self.limiter = check_limiter(limiter)
        if not isinstance(sandboxed, bool):
            raise TypeError("sandboxed must be True or False")
        self.sandboxed = sandboxed
        self._pool: ProcessPoolExecutor | None = None
        self.processor = processor
        self.backoff_strategy = backoff_strategy
        self.queue = Queue(name, connection, prefix=prefix, clock=clock)
        self.name = name
        self.clock: Clock = self.queue.clock
        self.id = uuid.uuid4().hex[:12]
        self._wakeup_key = self.queue.keys.worker_wakeup(self.id)
        self._listeners: dict[str, list[Callable[..., Any]]] = defaultdict(list)
        self._jobs: dict[str, tuple[Job, str, asyncio.Task[None]]] = {}
        self._tokens = 0
        self._state = "new"  # new -> running -> closing -> closed
        self._paused = False
        self._parked = False
        self._waiting_for_slot = False
        self._slot_holders: set[asyncio.Task[None]] = set()
        self._held_locks: dict[str, str] = {}
        self._strategy_errors: list[Exception] = []  # job id -> lock token, renewed while running
        self._waiting_task: asyncio.Task[Any] | None = None
        self._wakeup: asyncio.Event | None = None
        self._helpers_stop: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._closed: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"Worker({self.name!r}, concurrency={self.concurrency}, state={self._state!r})"

    # -- public control -------------------------------------------------------

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

    def _begin(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"a worker runs once (this one is {self._state})")
        self._state = "running"
        self._closed = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._helpers_stop = asyncio.Event()
        self._slots = asyncio.Semaphore(self.concurrency)
        if self.sandboxed:
            self._pool = make_pool(self.concurrency)
        self.clock.add_actor(self)

    async def _run_loop(self) -> None:
        helpers = [
            asyncio.create_task(self._renew_locks_while_running()),
            asyncio.create_task(self._check_stalled_while_running()),
        ]
        try:
            await self._main_loop()
        finally:
            self._state = "closing"
            await self._wait_for_running_jobs()  # their locks are still renewed meanwhile
            # The helpers stop at their next step; they are not cancelled, because a
            # cancellation that lands inside a Redis call can be swallowed by the client.
            assert self._helpers_stop is not None
            self._helpers_stop.set()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._forget_wakeup_key()
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self.clock.remove_actor(self)
            await self.queue.close()
            self._state = "closed"
            assert self._closed is not None
            self._closed.set()

    async def close(self, force: bool = False) -> None:
        """Stop taking jobs and wait for the running ones (``force``: cancel them)."""
        if self._state == "new":
            self._state = "closed"
            await self.queue.close()
            return
        if self._state == "running":
            self._state = "closing"
        self._wake()
        if force:
            for _job, _token, task in list(self._jobs.values()):
                task.cancel()
        assert self._closed is not None
        await self._closed.wait()
        if self._run_task is not None and self._run_task.done() and not self._run_task.cancelled():
            self._run_task.result()  # re-raise a crash of the loop, if any

    async def pause(self) -> None:
        """Stop this worker taking new jobs (its running jobs finish)."""
        self._paused = True
        self._wake()

    async def resume(self) -> None:
        """Let this worker take jobs again."""
        self._paused = False
        self._wake()

    # -- the loop -------------------------------------------------------------

    async def _main_loop(self) -> None:
        assert self._slots is not None
        while self._state == "running":
            self._waiting_for_slot = True
            try:
                await self._slots.acquire()
            finally:
                self._waiting_for_slot = False
            job = await self._next_job()
            if job is None:
                self._slots.release()
                continue
            self._start_job(job)

    async def _next_job(self) -> tuple[Job, str] | None:
        """The next job and its lock token, waiting for one if needed (None: closing)."""
        while self._state == "running":
            if self._paused:
                await self._wait_for_wakeup()
                continue
            take = self._take()
            try:
                taken = await self.queue.scripts.move_to_active(self.clock.now(), take)
            except Exception as exc:  # a lost connection, or a bug: report, pause, go on
                await self._lost_connection(exc)
                continue
            if taken.job_id is not None and taken.fields is not None:
                return self._read_job(taken.job_id, taken.fields), take.token
            if taken.limited_ms:
                pause = taken.limited_ms / 1000
                await self._wait_for_wakeup(lambda p=pause: asyncio.sleep(p), on_redis=False)
                continue
            await self._wait_for_work(taken.next_due or None)
        return None

    async def _wait_for_work(self, next_due: int | None) -> None:
        """Block on the marker until a job may be ready (or a delayed one falls due)."""
        if not self._jobs:
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
        except _CONNECTION_ERRORS as exc:
            await self._lost_connection(exc)
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
        self._parked = True
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
                self._waiting_task.result()
        finally:
            woken.cancel()
            self._parked = False
            self._waiting_task = None
            self._wakeup.clear()

    async def _end_blocking_wait(self, waiting: asyncio.Future[Any]) -> None:
        try:
            await self.queue.redis.zadd(self._wakeup_key, {"0": 0})
            await asyncio.wait_for(asyncio.shield(waiting), timeout=5)
        except (*_CONNECTION_ERRORS, asyncio.TimeoutError):
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def _read_job(self, job_id: str, raw: dict[str, str]) -> Job:
        """The job taken; a hash that cannot be read becomes a job that fails with the reason."""
        try:
            return Job.from_hash(job_id, raw, self.queue)
        except (ValueError, TypeError) as exc:
            job = Job(id=job_id, name=str(raw.get("name", "")), queue=self.queue)
            job.deferred_failure = f"the job's hash cannot be read: {exc}"
            return job

    def _take(self) -> Take:
        """A fresh lock token, with this worker's lock duration and rate limit."""
        self._tokens += 1
        return Take(f"{self.id}:{self._tokens}", self.lock_ms, self.id, self.limiter)

    def _start_job(self, taken: tuple[Job, str]) -> None:
        """Run a job in its own task, holding one slot; the task goes on with the next
        job it fetched when finishing this one, until there is none."""

        def release_slot(task: asyncio.Task[None]) -> None:
            assert self._slots is not None
            self._slot_holders.discard(task)
            self._slots.release()

        task = asyncio.create_task(self._run_jobs(*taken))
        self._slot_holders.add(task)
        task.add_done_callback(release_slot)

    async def _run_jobs(self, job: Job | None, token: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        while job is not None:
            job._on_progress = self._on_progress  # type: ignore[attr-defined]
            self._jobs[job.id] = (job, token, task)
            self._held_locks[job.id] = token
            try:
                following = await self._run_job(job, token)
            finally:
                self._jobs.pop(job.id, None)
                self._held_locks.pop(job.id, None)
            job, token = following if following else (None, "")

    def _fetch_next(self) -> Take | None:
        """Fetch the next job while finishing this one, unless closing or paused."""
        return self._take() if self._state == "running" and not self._paused else None

    async def _wait_for_running_jobs(self) -> None:
        tasks = [task for _job, _token, task in self._jobs.values()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- one job --------------------------------------------------------------

    async def _run_job(self, job: Job, token: str) -> tuple[Job, str] | None:
        """Run one job and record its outcome; returns the next job if one was fetched."""
        await self._emit("active", job)
        if job.scheduler_id:
            await self._plan_next_run(job)
        try:
            if job.deferred_failure:
                raise UnrecoverableError(job.deferred_failure)
            result = await self._call_processor(job)
            returnvalue = encode_json(result, "the processor's return value")
        except asyncio.CancelledError:
            raise  # force-closed: the job stays active and will be recovered as stalled
        except Exception as error:
            return await self._finish(self._record_failure, job, token, error)
        return await self._finish(self._record_completion, job, token, result, returnvalue)

    async def _plan_next_run(self, job: Job) -> None:
        """A scheduler's run was taken: add the job of its next run (as BullMQ's worker does)."""
        assert job.scheduler_id is not None
        taken = int(job.id.rsplit(":", 1)[-1]) if job.id.startswith("repeat:") else None
        try:
            raw = await self.queue.redis.hgetall(self.queue.keys.scheduler(job.scheduler_id))
            if not raw or taken is None:
                return
            now = self.clock.now()
            upcoming = next_run(repeat_from_hash(raw), now, previous=taken)
            await self.queue.scripts.update_job_scheduler(now, job.scheduler_id, taken, upcoming)
        except Exception as exc:  # the run itself goes on; the error is reported
            await self._emit("error", exc)

    async def _call_processor(self, job: Job) -> Any:
        if self._pool is not None:
            return await run_sandboxed(self._pool, self.processor, job)
        if inspect.iscoroutinefunction(self.processor):
            return await self.processor(job)
        result = await asyncio.to_thread(self.processor, job)
        if inspect.isawaitable(result):
            return await result
        return result

    async def _finish(
        self, record: Callable[..., Awaitable[tuple[Job, str] | None]], *args: Any
    ) -> tuple[Job, str] | None:
        """Record an outcome, retrying through lost connections; a lost lock, or a job
        removed while it ran (e.g. an obliterate), is reported as an error event.
        Returns the next job when recording it fetched one."""
        job = args[0]
        self._held_locks.pop(job.id, None)  # the outcome's script releases the lock
        delay = 0.05
        while True:
            try:
                return await record(*args)
            except (LockLostError, JobNotFoundError) as exc:  # removed while it ran
                await self._emit("error", exc)
                return None
            except _CONNECTION_ERRORS as exc:
                await self._emit("error", exc)
                if self._state == "closed":
                    return None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _following(self, taken: Taken, take: Take | None) -> tuple[Job, str] | None:
        if take is None or taken.job_id is None or taken.fields is None:
            return None
        return self._read_job(taken.job_id, taken.fields), take.token

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
        )
        job.attempts_made += 1
        job.returnvalue, job.finished_on = result, now
        await self._emit("completed", job, result)
        return self._following(taken, fetch)

    async def _record_failure(
        self, job: Job, token: str, error: BaseException
    ) -> tuple[Job, str] | None:
        reason = str(error) or type(error).__name__
        stack = "".join(traceback.format_exception(error)).rstrip()
        job.stacktrace = (job.stacktrace + [stack])[-_STACKTRACE_LIMIT:]
        fields = {"failedReason": reason, "stacktrace": encode_json(job.stacktrace, "stacktrace")}
        delay = self._retry_delay(job, error)
        if self._strategy_errors:
            await self._emit("error", self._strategy_errors.pop())
            self._strategy_errors.clear()
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
            )
            job.finished_on = now
            following = self._following(taken, fetch)
        elif delay == 0:
            lifo = bool(job.opts.get("lifo"))
            await scripts.retry_job(job.id, token, lifo=lifo, fields=fields, now=now)
        else:
            await scripts.move_to_delayed(now, job.id, token, delay, fields)
        job.attempts_made += 1
        job.failed_reason = reason
        await self._emit("failed", job, error)
        return following

    def _retry_delay(self, job: Job, error: BaseException) -> int | None:
        """Milliseconds until the next attempt, or None to fail the job for good."""
        if isinstance(error, UnrecoverableError) or job.attempts_made + 1 >= job.attempts:
            return None
        backoff = job.opts.get("backoff")
        attempt = job.attempts_made + 1
        delay = backoff_delay(backoff, attempt, retry_rng(self.queue.keys.job(job.id), attempt))
        if delay is not None:
            return delay
        kind = backoff.get("type") if isinstance(backoff, dict) else backoff
        if self.backoff_strategy is None:
            logger.warning(
                "job %s has backoff type %r but the worker has no backoff_strategy", job.id, kind
            )
            return None
        try:
            seconds = self.backoff_strategy(attempt, kind, error, job)
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds < 0:
                return None
            return min(to_ms(seconds, "the backoff_strategy's result"), MAX_DELAY_MS)
        except Exception as exc:  # a broken strategy fails the job, it does not strand it
            logger.warning("backoff_strategy failed for job %s: %s", job.id, exc)
            self._strategy_errors.append(exc)
            return None

    async def _on_progress(self, job: Job, value: Any) -> None:
        await self._emit("progress", job, value)

    # -- keeping locks and finding stalled jobs -------------------------------

    async def _renew_locks_while_running(self) -> None:
        """Renew the locks of running jobs, also while a closing worker finishes them."""
        while await self._helper_sleep(self.lock_ms / 2000):
            locks = dict(self._held_locks)
            try:
                lost = await self.queue.scripts.extend_locks(locks, self.lock_ms)
            except _CONNECTION_ERRORS as exc:
                await self._emit("error", exc)
                continue
            for job_id in lost:
                # A job whose outcome was being recorded meanwhile gave its lock up: not lost.
                if self._held_locks.get(job_id) == locks[job_id]:
                    await self._emit("error", LockLostError(f"lost the lock of job {job_id}"))

    async def _check_stalled_while_running(self) -> None:
        while self._state == "running":
            try:
                recovered = await self.queue.scripts.move_stalled_jobs_to_wait(
                    self.clock.now(), self.max_stalled_count, self.stalled_interval_ms
                )
            except _CONNECTION_ERRORS as exc:
                await self._emit("error", exc)
                recovered = []
            for job_id in recovered:
                await self._emit("stalled", job_id)
            await self._helper_sleep(self.stalled_interval_ms / 1000)

    async def _helper_sleep(self, seconds: float) -> bool:
        """Sleep (real time); return early, and False, once the helpers must stop."""
        assert self._helpers_stop is not None
        try:
            await asyncio.wait_for(self._helpers_stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        return not self._helpers_stop.is_set()

    # -- events and errors ----------------------------------------------------

    async def _emit(self, event: str, *args: Any) -> None:
        """Call the listeners of ``event``; a failing listener is reported on ``error``."""
        for callback in list(self._listeners.get(event, ())):
            try:
                result = callback(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                if event == "error":
                    logger.exception("an 'error' listener failed")
                else:
                    await self._emit("error", exc)
        if event == "error" and not self._listeners.get("error"):
            logger.warning("worker %s: %s", self.name, args[0] if args else "error")

    async def _forget_wakeup_key(self) -> None:
        try:
            await self.queue.redis.delete(self._wakeup_key)
        except _CONNECTION_ERRORS as exc:
            await self._emit("error", exc)

    async def _lost_connection(self, exc: BaseException) -> None:
        """Report an error of the loop and wait a little before trying again."""
        await self._emit("error", exc)
        await asyncio.sleep(min(self.drain_delay, 1.0))

    async def is_idle(self) -> bool:
        """For a virtual clock: True when nothing here can move until time advances.

        Running jobs count as idle only while they sleep on the clock (virtual work).
        """
        jobs_sleep = all(self.clock.is_sleeping(task) for task in self._slot_holders)
        if self._state != "running" or self._paused or not jobs_sleep:
            return jobs_sleep
        if self._waiting_for_slot:
            assert self._slots is not None
            return self._slots.locked()  # every slot holds a job sleeping on the clock
        if not self._parked:
            return False
        if self._wakeup is not None and self._wakeup.is_set():
            return False
        waiting = self._waiting_task
        if waiting is not None and waiting.done():
            return False
        return not await self.queue.has_ready_work()


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
