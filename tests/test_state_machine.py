"""Random sequences of add / take / finish / retry / remove / clean / promote / change_delay /
change_priority / defer / deduplicated adds (simple, keep_last_if_active) / the manual rate
limit and a rate-limited run put back ..., checked against a model.

``Model`` is BullMQ's job life cycle as plain Python, our PyTorch: it predicts which job a
worker gets next, where every job is, and how many attempts it has made. ``QueueMachine``
drives minibull's Lua scripts with the same steps and, after every step, reads each structure
of the queue straight from Redis and compares it with the model.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import minibull
from minibull.errors import JobNotFoundError, LockLostError
from minibull.keys import RESERVED_JOB_IDS
from minibull.options import build_job
from minibull.scripts import Take, Taken
from tests.conftest import START, delete_prefix

#: What the score of each sorted set says, and how to read it: prioritized scores are
#: priority * 2^32 + a counter, delayed ones due ms * 4096 + a sequence, finished ones ms.
SCORE_UNIT = {"prioritized": 2**32, "delayed": 0x1000, "completed": 1, "failed": 1}
CUSTOM_IDS = ("a", "b", "c")
DEDUP_IDS = ("x", "y")
#: How a worker can record the end of a run (Worker._record_completion and _record_failure).
OUTCOMES = ("completed", "failed", "retry now", "retry later", "deferred", "rate limited")
LOCK_MS = 60_000  # locks expire on real time: far longer than one example runs

JOBS = st.fixed_dictionaries(
    {
        "job_id": st.none() | st.sampled_from(CUSTOM_IDS),
        "dedup_id": st.none() | st.sampled_from(DEDUP_IDS),
        "keep_last_if_active": st.sampled_from((False, False, True)),
        "priority": st.sampled_from((0, 0, 1, 2)),
        "delay_ms": st.sampled_from((0, 0, 1, 3)),
        "lifo": st.booleans(),
    }
)


@dataclass
class ModelJob:
    data: int
    priority: int
    lifo: bool
    delay: int
    dedup_id: str | None = None
    keep: bool = False  # deduplication mode keep_last_if_active
    atm: int = 0
    ats: int = 0
    processed_on: int | None = None
    finished_on: int | None = None
    token: str | None = None


class Model:
    """What the scripts should do to a queue's jobs, as plain Python.

    The sorted sets map each id to its place in line: (priority, arrival) for prioritized,
    (due ms, arrival) for delayed, (finished ms, id) for completed and failed (Redis breaks
    equal scores by id).
    """

    def __init__(self) -> None:
        self.jobs: dict[str, ModelJob] = {}
        self.wait: list[str] = []  # as LRANGE shows it: new jobs on the left, the right runs next
        self.active: list[str] = []
        self.zsets: dict[str, dict[str, tuple[int, Any]]] = {state: {} for state in SCORE_UNIT}
        self.paused = False
        self.limited = False  # a manual rate limit holds every worker (Queue.rate_limit)
        self.dedup: dict[str, str] = {}  # deduplication id -> the job that holds it
        # deduplication id -> the add kept while its holder ran (id, data, options): dn:<id>
        self.kept: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self.scheduler_run: str | None = None  # the pending run of the one job scheduler
        self.last_id = 0
        self.arrivals = itertools.count()

    def state(self, job_id: str) -> str:
        """Where the job is, in get_job_state's words ("unknown" once it is gone)."""
        if job_id in self.wait:
            return "waiting"
        if job_id in self.active:
            return "active"
        return next((s for s, members in self.zsets.items() if job_id in members), "unknown")

    def in_order(self, state: str) -> list[str]:
        """A sorted set's members in ZRANGE order."""
        members = self.zsets[state]
        return sorted(members, key=members.__getitem__)

    def add(self, now: int, job_id: str | None, data: int, **opts: Any) -> tuple[str, bool]:
        """addJob: the job's id, and whether it was added (not a duplicate)."""
        if job_id in self.jobs:
            return job_id, False
        if opts.get("keep") and opts.get("dedup_id"):
            return self._add_keeping_last(now, job_id, data, opts)
        if opts.get("dedup_id") in self.dedup:
            self.last_id += job_id is None  # as in BullMQ, the ignored add still takes an id
            return self.dedup[opts["dedup_id"]], False
        self.last_id += 1
        return self._store(now, job_id or str(self.last_id), data, opts), True

    def _add_keeping_last(
        self, now: int, job_id: str | None, data: int, opts: dict[str, Any]
    ) -> tuple[str, bool]:
        """keep_last_if_active: the add takes an id first; while the holder runs, the add is
        kept (the latest one) for when it ends; while it waits, the add is dropped."""
        self.last_id += 1
        job_id = job_id or str(self.last_id)
        holder = self.dedup.get(opts["dedup_id"])
        if holder is None:
            return self._store(now, job_id, data, opts), True
        if holder in self.active:
            self.kept[opts["dedup_id"]] = (job_id, data, opts)
        return holder, False

    def _add_kept(self, job_id: str, now: int) -> None:
        """moveToFinished: the add kept for after this job is added now (a new id if a job
        took its id meanwhile)."""
        dedup_id = self.jobs[job_id].dedup_id
        if dedup_id not in self.kept:
            return
        kept_id, data, opts = self.kept.pop(dedup_id)
        self.last_id += 1
        self._store(now, str(self.last_id) if kept_id in self.jobs else kept_id, data, opts)

    def _store(self, now: int, job_id: str, data: int, opts: dict[str, Any]) -> str:
        self.jobs[job_id] = job = ModelJob(data, **opts)
        if job.dedup_id:
            self.dedup[job.dedup_id] = job_id
        if job.delay:
            self.zsets["delayed"][job_id] = (now + job.delay, next(self.arrivals))
        else:
            self._ready(job_id, job.lifo)
        return job_id

    def take(self, now: int, token: str) -> str | None:
        """moveToActive: promote the due delayed jobs; then wait's right end, else the best
        prioritized job; nothing while paused."""
        for job_id in self.in_order("delayed"):
            if self.zsets["delayed"][job_id][0] <= now:
                del self.zsets["delayed"][job_id]
                self.jobs[job_id].delay = 0
                self._ready(job_id, lifo=False)
        prioritized = self.in_order("prioritized")
        if self.limited or self.paused or not (self.wait or prioritized):
            return None
        if self.wait:
            job_id = self.wait.pop()
        else:
            job_id = prioritized[0]
            del self.zsets["prioritized"][job_id]
        self.active.insert(0, job_id)
        job = self.jobs[job_id]
        job.ats, job.processed_on, job.token = job.ats + 1, now, token
        return job_id

    def next_due(self) -> int:
        """When the next delayed job is due (0: none)."""
        return min(self.zsets["delayed"].values(), default=(0,))[0]

    def finish(self, job_id: str, now: int, target: str, keep: int) -> None:
        """moveToFinished: completed or failed, keeping the newest ``keep`` (-1: all)."""
        self._leave_active(job_id)
        self._free_dedup(job_id)
        self._add_kept(job_id, now)
        if keep == 0:
            del self.jobs[job_id]
            return
        self.zsets[target][job_id] = (now, job_id)
        self.jobs[job_id].finished_on = now
        if keep > 0:
            for old in self.in_order(target)[::-1][keep:]:
                self.remove(old)

    def retry(self, job_id: str, lifo: bool) -> None:
        """retryJob: back in line at once; counts the attempt."""
        self._leave_active(job_id)
        self._ready(job_id, lifo)

    def delay(self, job_id: str, now: int, delay: int) -> None:
        """moveToDelayed: back in line ``delay`` ms from now; counts the attempt."""
        self._leave_active(job_id)
        self.jobs[job_id].delay = delay
        self.zsets["delayed"][job_id] = (now + delay, next(self.arrivals))

    def requeue(self, job_id: str, state: str, reset_attempts: bool) -> None:
        """Job.retry / Queue.retry_jobs: a finished job back in line."""
        del self.zsets[state][job_id]
        job = self.jobs[job_id]
        job.processed_on = job.finished_on = None
        job.atm = 0 if reset_attempts else job.atm
        self._ready(job_id, job.lifo)

    def remove(self, job_id: str) -> None:
        """The job and its hash are gone, from whatever state it was in."""
        if job_id in self.wait:
            self.wait.remove(job_id)
        for members in self.zsets.values():
            members.pop(job_id, None)
        dedup_id = self.jobs[job_id].dedup_id
        if dedup_id and self.dedup.get(dedup_id) == job_id:
            self.kept.pop(dedup_id, None)  # the add kept for after it goes too
        self._free_dedup(job_id)
        del self.jobs[job_id]

    def drain(self, delayed: bool) -> int:
        """Every waiting and prioritized job (and delayed, if asked) is removed; a job
        scheduler's pending run stays."""
        doomed = [
            *self.wait,
            *self.zsets["prioritized"],
            *(self.zsets["delayed"] if delayed else ()),
        ]
        doomed = [job_id for job_id in doomed if job_id != self.scheduler_run]
        for job_id in doomed:
            self.remove(job_id)
        return len(doomed)

    def clean(self, state: str, limit: int) -> list[str]:
        """Queue.clean with no grace: oldest first, up to ``limit`` (0: all); running jobs
        (all hold a lock here) and the scheduler's pending run stay."""
        if state == "active":
            return []
        oldest_first = self.wait[::-1] if state == "waiting" else self.in_order(state)
        doomed = [job_id for job_id in oldest_first if job_id != self.scheduler_run]
        doomed = doomed[:limit] if limit else doomed
        for job_id in doomed:
            self.remove(job_id)
        return doomed

    def requeue_finished_before(self, state: str, until: int) -> list[str]:
        """Queue.retry_jobs started at ``until``: the jobs that finished by then, oldest first."""
        return [job_id for job_id in self.in_order(state) if self.zsets[state][job_id][0] <= until]

    def drop_running(self, job_id: str) -> None:
        """A running job whose hash is gone: finishing it takes it out of "active"."""
        del self.active[self.active.index(job_id)]
        del self.jobs[job_id]

    def promote(self, job_id: str) -> None:
        """promote: a delayed job in line now (LPUSH whatever its lifo, as BullMQ)."""
        del self.zsets["delayed"][job_id]
        self.jobs[job_id].delay = 0
        self._ready(job_id, lifo=False)

    def change_delay(self, job_id: str, now: int, delay: int) -> None:
        """changeDelay: the delayed job is due ``delay`` ms from now, last of that ms."""
        self.jobs[job_id].delay = delay
        self.zsets["delayed"][job_id] = (now + delay, next(self.arrivals))

    def change_priority(self, job_id: str, priority: int, lifo: bool) -> None:
        """changePriority: a waiting job moves to its new place in line; any job keeps the
        priority. With lifo, a prioritized job goes ahead of its equals (counter 0: ties
        between such jobs go by id, as Redis orders equal scores)."""
        waiting = job_id in self.wait or job_id in self.zsets["prioritized"]
        self.jobs[job_id].priority = priority
        if not waiting:
            return
        if job_id in self.wait:
            self.wait.remove(job_id)
        self.zsets["prioritized"].pop(job_id, None)
        if priority and lifo:
            self.zsets["prioritized"][job_id] = (priority, -1, job_id)
        else:
            self._ready(job_id, lifo)

    def put_back(self, job_id: str) -> None:
        """moveJobFromActiveToWait (a RateLimitError): the front of the line, no attempt
        counted; a prioritized job goes ahead of its equals (counter 0, as lifo does)."""
        self._leave_active(job_id)
        job = self.jobs[job_id]
        job.atm -= 1
        if job.priority:
            self.zsets["prioritized"][job_id] = (job.priority, -1, job_id)
        else:
            self.wait.append(job_id)

    def defer(self, job_id: str, now: int, delay: int) -> None:
        """moveToDelayed from the processor (Job.move_to_delayed): no attempt counted."""
        self.delay(job_id, now, delay)
        self.jobs[job_id].atm -= 1

    def _free_dedup(self, job_id: str) -> None:
        """A job that ends or goes away gives up its deduplication id (BullMQ, no TTL)."""
        dedup_id = self.jobs[job_id].dedup_id
        if dedup_id and self.dedup.get(dedup_id) == job_id:
            del self.dedup[dedup_id]

    def _leave_active(self, job_id: str) -> None:
        # LREM active -1: the occurrence nearest the right end.
        del self.active[len(self.active) - 1 - self.active[::-1].index(job_id)]
        job = self.jobs[job_id]
        job.atm, job.token = job.atm + 1, None

    def _ready(self, job_id: str, lifo: bool) -> None:
        priority = self.jobs[job_id].priority
        if priority:
            self.zsets["prioritized"][job_id] = (priority, next(self.arrivals))
        elif lifo:
            self.wait.append(job_id)
        else:
            self.wait.insert(0, job_id)


class QueueMachine(RuleBasedStateMachine):
    """One queue on its own key prefix, stepped through the scripts and the model together."""

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.seen: list[str] = []  # every id ever added, removed ones too
        self.reported: dict[str, str] = {}  # the state get_job_state gave at the last check
        self.counter = itertools.count(1)
        self.prefix = f"test-{uuid.uuid4().hex[:10]}"
        self.clock = minibull.VirtualClock(START)
        # Hypothesis steps are synchronous: each machine runs its coroutines on a loop of its own.
        self.loop = asyncio.new_event_loop()
        self.queue = minibull.Queue("q", prefix=self.prefix, clock=self.clock)

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on this machine's event loop."""
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        try:
            self.run(self.queue.close())
            self.run(delete_prefix(self.prefix))
        finally:
            self.loop.close()

    def pick(self, data: st.DataObject, ids: Any) -> str:
        """Draw one of ``ids`` (in a stable order, so that examples replay)."""
        return data.draw(st.sampled_from(sorted(ids)), label="job")

    # -- the producer's side ----------------------------------------------------

    @initialize(jobs=st.lists(JOBS, max_size=6))
    def add_first(self, jobs: list[dict[str, Any]]) -> None:
        """Start with a few jobs (or none)."""
        self.add(jobs)

    @rule(jobs=st.lists(JOBS, min_size=1, max_size=3))
    def add(self, jobs: list[dict[str, Any]]) -> None:
        """Queue.add, one job at a time; the id it returns is the one the model predicts."""
        for spec in jobs:
            n, job_id, delay_ms = next(self.counter), spec["job_id"], spec["delay_ms"]
            options = {"priority": spec["priority"], "lifo": spec["lifo"]}
            dedup_id, keep = spec["dedup_id"], spec["keep_last_if_active"]
            dedup = {"deduplication": {"id": dedup_id}} if dedup_id else {}
            if dedup_id and keep:
                dedup["deduplication"]["keep_last_if_active"] = True
            job = self.run(
                self.queue.add(
                    "job", {"n": n}, job_id=job_id, delay=delay_ms / 1000, **options, **dedup
                )
            )
            expected, _ = self.model.add(
                self.clock.now(),
                job_id,
                n,
                delay=delay_ms,
                dedup_id=dedup_id,
                keep=bool(dedup_id and keep),
                **options,
            )
            # A duplicate (custom id, or deduplication id) returns the job that was there.
            assert (job.id, job.data) == (expected, {"n": self.model.jobs[expected].data})
            if expected not in self.seen:
                self.seen.append(expected)

    # Paused a third of the time rather than half: a paused queue hands out nothing.
    @rule(paused=st.sampled_from((True, False, False)))
    def pause_or_resume(self, paused: bool) -> None:
        """Queue.pause or Queue.resume (either may repeat)."""
        self.run(self.queue.pause() if paused else self.queue.resume())
        self.model.paused = paused

    @precondition(lambda self: self.model.zsets["completed"] or self.model.zsets["failed"])
    @rule(state=st.sampled_from(("failed", "completed")), reset=st.booleans())
    def retry_all(self, state: str, reset: bool) -> None:
        """Queue.retry_jobs: every job of a finished state back in line, oldest first."""
        oldest_first = self.model.in_order(state)
        assert self.run(self.queue.retry_jobs(state, reset_attempts=reset)) == len(oldest_first)
        for job_id in oldest_first:
            self.model.requeue(job_id, state, reset)

    @precondition(lambda self: self.model.zsets["completed"] or self.model.zsets["failed"])
    @rule(
        data=st.data(),
        state=st.sampled_from(("failed", "completed")),
        batch=st.sampled_from((1, 2)),
    )
    def retry_while_finishing(self, data: st.DataObject, state: str, batch: int) -> None:
        """Queue.retry_jobs in small batches while a worker finishes a job in between: the
        job finished after the call started stays where it is (the cut-off, BullMQ's)."""
        scripts, until = self.queue.scripts, self.clock.now()
        self.run(self.clock.advance(0.001))
        if self.model.active:
            self.settle(data, self.pick(data, self.model.active), state, fetch_next=False)
        moved = self.model.requeue_finished_before(state, until)
        total = 0
        while count := self.run(scripts.move_jobs_to_wait(state, batch, False, until)):
            total += count
        assert total == len(moved)
        for job_id in moved:
            self.model.requeue(job_id, state, reset_attempts=False)

    @rule(
        state=st.sampled_from(("waiting", "active", "prioritized", "delayed", "completed")),
        limit=st.sampled_from((0, 1, 2)),
    )
    def clean(self, state: str, limit: int) -> None:
        """Queue.clean with no grace period: the oldest first, up to ``limit``."""
        assert self.run(self.queue.clean(0, limit, state)) == self.model.clean(state, limit)

    @precondition(lambda self: self.model.scheduler_run is None)
    @rule()
    def add_scheduler(self) -> None:
        """A job scheduler whose first run is due now; nobody plans its next run here, so
        the run stays its pending run: remove refuses it, clean and drain skip it."""
        n = next(self.counter)
        job = self.run(self.queue.upsert_job_scheduler("tick", {"every": 3600}, data={"n": n}))
        self.model.jobs[job.id] = ModelJob(n, priority=0, lifo=False, delay=0)
        self.model._ready(job.id, lifo=False)
        self.model.scheduler_run = job.id
        self.seen.append(job.id)

    @rule(data=st.data())
    def add_reserved_id(self, data: st.DataObject) -> None:
        """A job id that names a queue key is refused, by Queue.add and by addJob itself."""
        job_id = data.draw(st.sampled_from(sorted(RESERVED_JOB_IDS)), label="reserved id")
        with pytest.raises(ValueError):
            self.run(self.queue.add("job", {}, job_id=job_id))
        spec = build_job("job", {})
        spec["id"] = job_id
        with pytest.raises(ValueError, match="is reserved"):
            self.run(self.queue.scripts.add_jobs(self.clock.now(), [spec]))

    # Draining an empty queue shows little, and a drain every few steps would keep it empty.
    @precondition(lambda self: len(self.model.wait) + len(self.model.zsets["prioritized"]) > 2)
    @rule(delayed=st.booleans())
    def drain(self, delayed: bool) -> None:
        """Queue.drain: the jobs waiting to run (and the delayed ones, if asked) are gone."""
        assert self.run(self.queue.drain(delayed)) == self.model.drain(delayed)

    @precondition(lambda self: self.seen)
    @rule(data=st.data(), call=st.sampled_from(("remove", "retry failed", "retry completed")))
    def job_call(self, data: st.DataObject, call: str) -> None:
        """Job.remove(), or Job.retry(state) of a finished job; refused for a job that is
        running (remove), not in that state (retry) or gone."""
        state = call.removeprefix("retry ")  # for a retry: "failed" or "completed"
        # For a retry, one of that state's jobs if it has any; else any job, to be refused.
        job_id = self.pick(data, self.model.zsets.get(state) or self.seen)
        job = self.job_or_stub(job_id)
        if job_id not in self.model.jobs:
            with pytest.raises(JobNotFoundError):
                self.run(job.remove() if call == "remove" else job.retry(state))
        elif call == "remove" and job_id in self.model.active:
            with pytest.raises(RuntimeError, match="is running"):
                self.run(job.remove())
        elif call == "remove" and job_id == self.model.scheduler_run:
            with pytest.raises(RuntimeError, match="next run of a job scheduler"):
                self.run(job.remove())
        elif call == "remove":
            self.run(job.remove())
            self.model.remove(job_id)
        elif self.model.state(job_id) != state:
            with pytest.raises(ValueError, match="cannot be retried"):
                self.run(job.retry(state))
        else:
            reset = data.draw(st.booleans(), label="reset attempts")
            self.run(job.retry(state, reset_attempts=reset))
            self.model.requeue(job_id, state, reset)

    def job_or_stub(self, job_id: str) -> minibull.Job:
        """The job as get_job reads it; a bare Job with that id once it is gone."""
        job = self.run(self.queue.get_job(job_id))
        assert (job is not None) == (job_id in self.model.jobs)
        return job or minibull.Job(job_id, "gone", queue=self.queue)

    # -- changing jobs (issue 16) -----------------------------------------------

    @precondition(lambda self: self.seen)
    @rule(
        data=st.data(),
        call=st.sampled_from(("promote", "change delay", "change priority")),
        delay_ms=st.sampled_from((0, 1, 3)),
        priority=st.sampled_from((0, 1, 2)),
        lifo=st.booleans(),
    )
    def change_job(
        self, data: st.DataObject, call: str, delay_ms: int, priority: int, lifo: bool
    ) -> None:
        """Job.promote or Job.change_delay on a delayed job, Job.change_priority on a waiting
        one, when there is one, else on any job: refused for a gone job, or (promote,
        change_delay) for one that is not delayed."""
        if call == "change priority":
            targets = [*self.model.wait, *self.model.zsets["prioritized"]]
        else:
            targets = list(self.model.zsets["delayed"])
        job_id = self.pick(data, targets or self.seen)
        job, now = self.job_or_stub(job_id), self.clock.now()
        if call == "change priority" and self.model.zsets["prioritized"]:
            # Often the priority of a job already in line, so that lifo has equals to pass.
            in_line = {place[0] for place in self.model.zsets["prioritized"].values()}
            priority = data.draw(st.sampled_from(sorted(in_line) + [priority]), label="priority")
        calls = {
            "promote": job.promote,
            "change delay": lambda: job.change_delay(delay_ms / 1000),
            "change priority": lambda: job.change_priority(priority, lifo=lifo),
        }
        if job_id not in self.model.jobs:
            with pytest.raises(JobNotFoundError):
                self.run(calls[call]())
        elif call != "change priority" and self.model.state(job_id) != "delayed":
            with pytest.raises(ValueError, match="it is not delayed"):
                self.run(calls[call]())
        else:
            self.run(calls[call]())
            if call == "promote":
                self.model.promote(job_id)
            elif call == "change delay":
                self.model.change_delay(job_id, now, delay_ms)
            else:
                self.model.change_priority(job_id, priority, lifo)

    # Limited a third of the time: a limited queue hands out nothing.
    @rule(limited=st.sampled_from((True, False, False)))
    def rate_limit(self, limited: bool) -> None:
        """Queue.rate_limit (a window far longer than an example runs), or
        Queue.remove_rate_limit_key."""
        if limited:
            self.run(self.queue.rate_limit(600))
        else:
            assert self.run(self.queue.remove_rate_limit_key()) == self.model.limited
        self.model.limited = limited

    @precondition(lambda self: self.model.zsets["delayed"])
    @rule()
    def promote_all(self) -> None:
        """Queue.promote_jobs: every delayed job in line now, soonest due first."""
        soonest_first = self.model.in_order("delayed")
        assert self.run(self.queue.promote_jobs()) == len(soonest_first)
        for job_id in soonest_first:
            self.model.promote(job_id)

    # -- the worker's side ------------------------------------------------------

    @rule(slots=st.integers(1, 3))
    def take(self, slots: int) -> None:
        """A worker with free ``slots`` asks for jobs (moveToActive)."""
        for _ in range(slots):
            self.take_one()

    @rule(after_ms=st.sampled_from((1, 3)))
    def take_later(self, after_ms: int) -> None:
        """Time passes on the virtual clock (delayed jobs fall due), then a worker asks."""
        self.run(self.clock.advance(after_ms / 1000))
        self.take_one()

    def take_one(self) -> None:
        """One moveToActive at the clock's now."""
        now, take = self.clock.now(), self.new_take()
        self.check_taken(self.run(self.queue.scripts.move_to_active(now, take)), take, now)

    def new_take(self) -> Take:
        """A worker's request for a job, with a lock token of its own."""
        return Take(token=f"token-{next(self.counter)}", lock_ms=LOCK_MS)

    def check_taken(self, taken: Taken, take: Take, now: int) -> None:
        """The job a worker got is the one the model predicts, or it says when to look again."""
        assert taken.job_id == self.model.take(now, take.token)
        assert (taken.limited_ms > 0) == (taken.job_id is None and self.model.limited)
        if taken.job_id is None:
            expected = 0 if self.model.paused or self.model.limited else self.model.next_due()
            assert taken.next_due == expected

    @precondition(lambda self: self.model.active)
    @rule(
        data=st.data(),
        outcome=st.sampled_from(OUTCOMES),
        holds_lock=st.sampled_from((True, True, True, False)),
    )
    def finish(self, data: st.DataObject, outcome: str, holds_lock: bool) -> None:
        """A worker records how a run ended, as Worker._record_completion/_failure do.
        Without the job's lock (any job, in any state) it is refused and nothing changes."""
        if holds_lock:
            self.settle(data, self.pick(data, self.model.active), outcome, fetch_next=False)
            return
        job_id = self.pick(data, self.seen)
        with pytest.raises(LockLostError if job_id in self.model.jobs else JobNotFoundError):
            self.record(data, job_id, "not-the-holder", outcome, fetch_next=False)

    @precondition(
        lambda self: any(self.model.jobs[job_id].dedup_id is None for job_id in self.model.active)
    )
    @rule(data=st.data(), outcome=st.sampled_from(OUTCOMES))
    def finish_a_deleted_job(self, data: st.DataObject, outcome: str) -> None:
        """Someone deletes a running job's hash; its worker's finish is refused, and the id
        leaves "active" with its lock (else the stalled sweep would bring it back empty).
        Only jobs without a deduplication id: that id is in the hash that is gone."""
        candidates = [j for j in self.model.active if self.model.jobs[j].dedup_id is None]
        job_id = self.pick(data, candidates)
        self.run(self.queue.redis.delete(self.queue.keys.job(job_id)))
        with pytest.raises(JobNotFoundError):
            self.record(data, job_id, self.model.jobs[job_id].token, outcome, fetch_next=False)
        self.model.drop_running(job_id)

    @precondition(lambda self: self.model.active)
    @rule(data=st.data(), outcome=st.sampled_from(("completed", "failed")))
    def finish_and_take_next(self, data: st.DataObject, outcome: str) -> None:
        """A worker's usual end of a run: moveToFinished also takes its next job."""
        self.settle(data, self.pick(data, self.model.active), outcome, fetch_next=True)

    def settle(self, data: st.DataObject, job_id: str, outcome: str, fetch_next: bool) -> None:
        """Record ``outcome`` for a running job as its worker, and expect what the model does."""
        now, token = self.clock.now(), self.model.jobs[job_id].token
        option, fetched = self.record(data, job_id, token, outcome, fetch_next)
        if outcome == "retry now":
            self.model.retry(job_id, lifo=option)
        elif outcome == "retry later":
            self.model.delay(job_id, now, delay=option)
        elif outcome == "deferred":
            self.model.defer(job_id, now, delay=option)
        elif outcome == "rate limited":
            assert (option > 0) == self.model.limited  # the limit's ms left, 0 if none
            self.model.put_back(job_id)
        else:
            self.model.finish(job_id, now, outcome, keep=option)
        if fetched is not None:
            self.check_taken(*fetched, now)

    def record(
        self, data: st.DataObject, job_id: str, token: str, outcome: str, fetch_next: bool
    ) -> tuple[Any, tuple[Taken, Take] | None]:
        """Run the script of ``outcome``. Returns its option (lifo, delay in ms or keep count)
        and, with ``fetch_next``, the job taken in the same call."""
        scripts, now = self.queue.scripts, self.clock.now()
        if outcome == "retry now":
            lifo = data.draw(st.booleans(), label="lifo")
            fields = {"failedReason": "x"}
            self.run(scripts.retry_job(job_id, token, lifo=lifo, fields=fields, now=now))
            return lifo, None
        if outcome == "retry later":
            delay = data.draw(st.sampled_from((0, 1, 3)), label="delay ms")
            self.run(scripts.move_to_delayed(now, job_id, token, delay, {"failedReason": "x"}))
            return delay, None
        if outcome == "deferred":  # Job.move_to_delayed: the processor defers its own job
            delay = data.draw(st.sampled_from((0, 1, 3)), label="delay ms")
            self.run(scripts.defer(now, job_id, token, delay))
            return delay, None
        if outcome == "rate limited":  # the processor raised RateLimitError
            return self.run(scripts.move_job_from_active_to_wait(job_id, token, now)), None
        keep = data.draw(st.sampled_from((-1, -1, -1, 0, 1, 2)), label="keep count")
        take = self.new_take() if fetch_next else None
        taken = self.run(
            scripts.move_to_finished(
                job_id,
                now=now,
                token=token,
                failed=outcome == "failed",
                value='"x"',
                keep={"count": keep},
                attempts=1,
                fetch_next=take,
            )
        )
        return keep, (taken, take) if take else None

    # -- what must hold after every step ----------------------------------------

    @invariant()
    def redis_agrees_with_the_model(self) -> None:
        """Every structure of the queue, read straight from Redis, is as the model says."""
        self.run(self.check())

    async def check(self) -> None:
        """The invariant: lists, sorted sets, job hashes, locks, counts and states."""
        model, keys = self.model, self.queue.keys
        # A job added by a script (keep_last_if_active's kept add, when its holder ended).
        self.seen.extend(job_id for job_id in model.jobs if job_id not in self.seen)
        async with self.queue.redis.pipeline(transaction=False) as pipe:
            pipe.lrange(keys.wait, 0, -1)
            pipe.lrange(keys.active, 0, -1)
            for state in SCORE_UNIT:
                pipe.zrange(keys.state_key(state), 0, -1, withscores=True)
            pipe.hexists(keys.meta, "paused")
            for dedup_id in DEDUP_IDS:
                pipe.get(keys.deduplication(dedup_id))
            for dedup_id in DEDUP_IDS:
                pipe.hmget(keys.deduplication_next(dedup_id), "jid", "data")
            for job_id in self.seen:
                pipe.hgetall(keys.job(job_id))
                pipe.get(keys.lock(job_id))
            replies = await pipe.execute()
        wait, active, *zsets, paused = replies[:7]
        holders = replies[7 : 7 + len(DEDUP_IDS)]
        kept = replies[7 + len(DEDUP_IDS) : 7 + 2 * len(DEDUP_IDS)]
        per_job = replies[7 + 2 * len(DEDUP_IDS) :]

        # Every job is in exactly one structure, and no list holds an id twice.
        members = [*wait, *active, *(job_id for zset in zsets for job_id, _ in zset)]
        for job_id in self.seen:
            assert members.count(job_id) == (job_id in model.jobs), (job_id, members)
        assert len(members) == len(model.jobs)

        # ... and in the place and order the model predicts.
        assert wait == model.wait
        assert active == model.active
        for (state, unit), zset in zip(SCORE_UNIT.items(), zsets, strict=True):
            got = [(job_id, int(score) // unit) for job_id, score in zset]
            order = model.in_order(state)
            assert got == [(job_id, model.zsets[state][job_id][0]) for job_id in order], state
        assert bool(paused) == model.paused
        assert dict(zip(DEDUP_IDS, holders, strict=True)) == {
            dedup_id: model.dedup.get(dedup_id) for dedup_id in DEDUP_IDS
        }
        assert dict(zip(DEDUP_IDS, kept, strict=True)) == {
            dedup_id: (
                [model.kept[dedup_id][0], f'{{"n":{model.kept[dedup_id][1]}}}']
                if dedup_id in model.kept
                else [None, None]
            )
            for dedup_id in DEDUP_IDS
        }

        for job_id, raw, lock in zip(self.seen, per_job[::2], per_job[1::2], strict=True):
            want = model.jobs.get(job_id)
            assert lock == (want and want.token), job_id
            if want is None:
                assert raw == {}, job_id
                continue
            job = minibull.Job.from_hash(job_id, raw)
            got = (job.data, job.priority, job.delay, job.attempts_made, job.attempts_started)
            assert got == ({"n": want.data}, want.priority, want.delay, want.atm, want.ats), job_id
            assert (job.processed_on, job.finished_on) == (want.processed_on, want.finished_on)

        counts = {state: 0 for state in minibull.STATES}
        for job_id in model.jobs:
            counts[model.state(job_id)] += 1
        assert await self.queue.get_job_counts() == counts
        # The structures were all checked above: ask get_job_state only where a state changed.
        for job_id in self.seen:
            state = model.state(job_id)
            if self.reported.get(job_id) != state:
                assert await self.queue.get_job_state(job_id) == state, job_id
                self.reported[job_id] = state


# Passing takes seconds; a failure may shrink for minutes (Hypothesis stops at five).
@pytest.mark.timeout(600)
def test_random_steps_keep_every_job_in_exactly_one_state() -> None:
    """add/take/finish/retry/pause/remove in any order agree with the model."""
    run_state_machine_as_test(
        QueueMachine,
        settings=settings(
            max_examples=80,
            stateful_step_count=40,
            deadline=None,
            derandomize=True,  # the same sequences in every CI run; raise max_examples to explore
            # One failure, shrunk fast: the explain phase traces every line (through fakeredis
            # and Lua too), which turns a seconds-long shrink into minutes.
            report_multiple_bugs=False,
            phases=[phase for phase in Phase if phase is not Phase.explain],
        ),
    )
