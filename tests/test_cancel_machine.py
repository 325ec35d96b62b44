"""Random sequences of add / advance time / cancel_job on a real Worker with ``timeout=`` jobs
(issue 16, items 2 and 7), checked against a model of when each attempt ends.

Every job runs at once (the worker has a slot for each), its processor sleeps ``work``
seconds on a virtual clock, and a failed attempt is retried at once while attempts are
left. The model says, at any moment, which jobs run, which finished, and how many attempts
each has made: a timeout cuts an attempt at ``timeout`` seconds (it wins a tie with the
work), a cancel cuts it now.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import minibull
from tests.conftest import START, delete_prefix

SLOTS = 50  # more than an example adds: every job starts when added


@dataclass
class ModelJob:
    work: int  # seconds an attempt takes
    timeout: int | None
    attempts: int
    started: int  # ms: when the current (or last) attempt started
    made: int = 0
    state: str = "active"

    def ends_at(self) -> tuple[int, str]:
        """When the running attempt ends, and how: timed out (wins a tie) or completed."""
        if self.timeout is not None and self.timeout <= self.work:
            return self.started + self.timeout * 1000, "timed out"
        return self.started + self.work * 1000, "completed"

    def fail(self, now: int) -> None:
        """An attempt failed: retried at once while attempts are left."""
        self.made += 1
        if self.made < self.attempts:
            self.started = now
        else:
            self.state = "failed"


class Model:
    def __init__(self, now: int) -> None:
        self.now = now
        self.jobs: dict[str, ModelJob] = {}

    def advance(self, ms: int) -> None:
        """Run every attempt end up to now + ms, in time order."""
        target = self.now + ms
        while True:
            running = [(job.ends_at(), job) for job in self.jobs.values() if job.state == "active"]
            due = [(when, how, job) for (when, how), job in running if when <= target]
            if not due:
                break
            when, how, job = min(due, key=lambda entry: entry[0])
            self.now = when
            if how == "completed":
                job.made, job.state = job.made + 1, "completed"
            else:
                job.fail(when)
        self.now = target


class CancelMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.prefix = f"test-{uuid.uuid4().hex[:10]}"
        self.clock = minibull.VirtualClock(START)
        self.model = Model(self.clock.now())
        self.loop = asyncio.new_event_loop()
        self.queue = minibull.Queue("q", prefix=self.prefix, clock=self.clock)
        self.worker = minibull.Worker(
            "q", self.process, prefix=self.prefix, clock=self.clock, concurrency=SLOTS
        )
        self.errors: list[BaseException] = []
        self.worker.on("error", self.errors.append)
        self.names = itertools.count(1)
        self.run(self.start())

    async def start(self) -> None:
        self.worker.start()
        await self.clock.settle()

    async def process(self, job: minibull.Job) -> str:
        await self.clock.sleep(job.data["work"])
        return "done"

    def run(self, coroutine):  # noqa: ANN001, ANN201
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        try:
            self.run(self.worker.close(force=True))
            self.run(self.queue.close())
            self.run(delete_prefix(self.prefix))
        finally:
            self.loop.close()

    @precondition(lambda self: len(self.model.jobs) < 12)
    @rule(
        work=st.integers(1, 4),
        timeout=st.none() | st.integers(1, 4),
        attempts=st.integers(1, 3),
    )
    def add(self, work: int, timeout: int | None, attempts: int) -> None:
        """Queue.add with a timeout (or none); the worker starts it at once."""
        job = self.run(self.queue.add("job", {"work": work}, timeout=timeout, attempts=attempts))
        self.run(self.clock.settle())
        self.model.jobs[job.id] = ModelJob(work, timeout, attempts, started=self.clock.now())

    @rule(seconds=st.sampled_from((1, 2)))
    def advance(self, seconds: int) -> None:
        """Time passes: attempts end, time out, and start again."""
        self.run(self.clock.advance(seconds))
        self.model.advance(seconds * 1000)

    @precondition(lambda self: self.model.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """Worker.cancel_job on any job: True and the attempt fails if it runs, else False."""
        job_id = data.draw(st.sampled_from(sorted(self.model.jobs)), label="job")
        job = self.model.jobs[job_id]
        assert self.worker.cancel_job(job_id, "by hand") == (job.state == "active")
        if job.state == "active":
            job.fail(self.clock.now())
        self.run(self.clock.settle())

    @invariant()
    def the_queue_agrees_with_the_model(self) -> None:
        self.run(self.check())

    async def check(self) -> None:
        running = {job_id for job_id, job in self.model.jobs.items() if job.state == "active"}
        assert set(self.worker._attempts) == running
        assert set(await self.queue.redis.lrange(self.queue.keys.active, 0, -1)) == running
        for job_id, want in self.model.jobs.items():
            job = await self.queue.get_job(job_id)
            assert await job.get_state() == want.state, job_id
            assert job.attempts_made == want.made, job_id
        assert self.errors == []


@pytest.mark.timeout(600)
def test_cancels_and_timeouts_agree_with_the_model() -> None:
    run_state_machine_as_test(
        CancelMachine,
        settings=settings(
            max_examples=50,
            stateful_step_count=20,
            deadline=None,
            derandomize=True,
            report_multiple_bugs=False,
            phases=[phase for phase in Phase if phase is not Phase.explain],
        ),
    )
