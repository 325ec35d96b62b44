"""Stalled jobs cross over: what a killed worker of one side leaves behind, the other recovers.

A worker is killed with SIGKILL in the middle of a job (it dies holding the job's
lock, as after a crash); a worker of the other implementation finds the job stalled
once the lock has expired, puts it back and runs it. And a job stalled more often
than allowed is marked by one side's sweep and failed by the other side's worker.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import pytest

from tests.interop.conftest import (
    OpenPeer,
    abandon,
    agreed_view,
    require_peer,
    wait_until,
)
from tests.interop.peers import ROOT, NodePeer, Peer

RESCUER = {"lockDuration": 1000, "stalledInterval": 300, "drainDelay": 1}
STALLED_TOO_OFTEN = "job stalled more than allowable limit"


class DoomedWorker:
    """A worker in another process, started to be killed: minibull, or BullMQ (Python/Node)."""

    def __init__(self, kind: str, url: str, prefix: str) -> None:
        self.kind, self.url, self.prefix = kind, url, prefix
        self.process: asyncio.subprocess.Process | None = None
        self.node: NodePeer | None = None

    async def start(self) -> None:
        if self.kind == "node":
            from tests.interop.doomed_worker import DOOMED_WORKER

            self.node = NodePeer(self.url, self.prefix, "q")
            await self.node.start()
            await self.node.start_worker(**DOOMED_WORKER)
            return
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.interop.doomed_worker",
            self.kind,
            self.url,
            self.prefix,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )

    async def wait_running(self, job_id: str) -> None:
        if self.node is not None:
            node = self.node
            await wait_until(lambda: node.runs_of(job_id), what=f"node runs job {job_id}")
            return
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), 15)
            if not line:
                raise AssertionError(f"the doomed {self.kind} worker exited early")
            if json.loads(line)["run"] == job_id:
                return

    async def kill(self) -> None:
        """SIGKILL: no cleanup, the lock stays until it expires."""
        if self.node is not None:
            self.node.kill()
            await self.node.close()
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
async def doomed(prefix: str) -> AsyncIterator:
    started: list[DoomedWorker] = []

    async def make(kind: str) -> DoomedWorker:
        worker = DoomedWorker(kind, require_peer(kind), prefix)
        started.append(worker)
        await worker.start()
        return worker

    yield make
    for worker in started:
        await worker.kill()


SIDES = [("bullmq", "minibull"), ("minibull", "bullmq")]


@pytest.mark.parametrize(
    ("killed", "rescuer"),
    SIDES,
    ids=["bullmq-dies-minibull-rescues", "minibull-dies-bullmq-rescues"],
)
async def test_a_killed_workers_job_is_recovered_by_the_other_side(
    killed, rescuer, doomed, open_peer: OpenPeer, bullmq_kind: str
):
    kinds = {"minibull": "minibull", "bullmq": bullmq_kind}
    minibull_peer = await open_peer("minibull")
    bullmq_peer = await open_peer(bullmq_kind)
    peers: dict[str, Peer] = {"minibull": minibull_peer, "bullmq": bullmq_peer}
    eid = await minibull_peer.start_events("0-0")

    victim = await doomed(kinds[killed])
    job_id = await peers[killed].add("fragile", {"hang": True}, {"attempts": 1})
    await victim.wait_running(job_id)
    await victim.kill()
    assert await minibull_peer.get_job_state(job_id) == "active"

    await peers[rescuer].start_worker(**RESCUER)
    await wait_until(
        lambda: _finished(minibull_peer, job_id),
        timeout=10,
        what="the stalled job finished",
    )
    view = await agreed_view([minibull_peer, bullmq_peer], job_id)
    assert view["state"] == "completed"
    assert view["returnvalue"] == {"by": kinds[rescuer], "attemptsMade": 0}
    # Started twice, stalled once; the stall is not an attempt made (BullMQ counts the same).
    assert (view["attemptsStarted"], view["attemptsMade"], view["stalledCounter"]) == (2, 1, 1)
    assert peers[rescuer].runs == [(job_id, 0)]
    stalled = [f for name, f in minibull_peer.events[eid] if name == "stalled"]
    assert [f["jobId"] for f in stalled] == [job_id]
    counts = await minibull_peer.get_job_counts()
    assert counts["active"] == 0 and counts["completed"] == 1
    redis = minibull_peer.queue.redis
    assert await redis.scard(minibull_peer.queue.keys.stalled) == 0


async def _finished(peer: Peer, job_id: str) -> bool:
    return await peer.get_job_state(job_id) in ("completed", "failed")


@pytest.mark.parametrize(
    ("sweeper", "picker"),
    SIDES,
    ids=["bullmq-sweeps-minibull-fails", "minibull-sweeps-bullmq-fails"],
)
async def test_a_job_stalled_too_often_is_failed_by_the_other_side(
    sweeper, picker, open_peer: OpenPeer, bullmq_kind: str
):
    minibull_peer = await open_peer("minibull")
    bullmq_peer = await open_peer(bullmq_kind)
    peers: dict[str, Peer] = {"minibull": minibull_peer, "bullmq": bullmq_peer}
    job_id = await peers[picker].add("fragile", {"hang": True}, {"attempts": 3})
    await abandon(minibull_peer, job_id)
    runs_before = len(peers[picker].runs)

    # The sweeper's own script, told a job may stall 0 times: first it suspects, then it acts.
    async def swept() -> bool:
        return job_id in await peers[sweeper].sweep_stalled(0, 1)

    await wait_until(swept, timeout=5, what=f"{sweeper}'s sweep moved the job")
    raw = await minibull_peer.queue.redis.hgetall(minibull_peer.queue.keys.job(job_id))
    assert raw["defa"] == STALLED_TOO_OFTEN and raw["stc"] == "1"
    assert await minibull_peer.get_job_state(job_id) == "waiting"

    await peers[picker].start_worker(drainDelay=1)
    await wait_until(lambda: _finished(minibull_peer, job_id), what="the job failed")
    view = await agreed_view([minibull_peer, bullmq_peer], job_id)
    assert view["state"] == "failed"
    assert view["failedReason"] == STALLED_TOO_OFTEN
    assert view["deferredFailure"] is None  # cleared when the job fails, on both sides
    assert view["attemptsMade"] == 1  # failed for good although attempts were left
    assert peers[picker].runs[runs_before:] == []  # the processor never ran
