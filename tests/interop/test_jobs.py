"""Jobs cross over: added by one implementation, run by another, read back by both.

Each kind of job (plain, retried with exponential backoff, failing, delayed,
prioritized, lifo, with a custom id, in bulk, with progress, removed when done) runs
three ways: minibull adds and BullMQ works, BullMQ adds and minibull works, and BullMQ
does both. The expectations are the same for all three, and the BullMQ-only run shows
they are what BullMQ itself does; so a job minibull worked on looks as if BullMQ had.
Both sides' getters (``getJob``, ``getJobState``, ``getJobCounts``) must agree field
by field.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.conftest import (
    OpenPeer,
    agreed_counts,
    agreed_view,
    wait_finished,
    wait_until,
)
from tests.interop.peers import Peer

#: Who adds the jobs, who works on them ("bullmq" = the Node or Python peer).
FLOWS = [("minibull", "bullmq"), ("bullmq", "minibull"), ("bullmq", "bullmq")]
WORKER = {"drainDelay": 1, "lockDuration": 5000, "stalledInterval": 5000}


@pytest.fixture(params=FLOWS, ids=lambda flow: "-adds-".join(flow) + "-works")
async def flow(request, open_peer: OpenPeer, bullmq_kind: str) -> tuple[Peer, Peer, Peer]:
    """(producer, worker side, the minibull reader) for one flow on queue ``q``."""
    producer_kind, consumer_kind = (
        bullmq_kind if side == "bullmq" else side for side in request.param
    )
    minibull_peer = await open_peer("minibull")
    bullmq_peer = await open_peer(bullmq_kind)
    sides = {"minibull": minibull_peer, bullmq_kind: bullmq_peer}
    return sides[producer_kind], sides[consumer_kind], minibull_peer


async def run(flow, jobs: list[tuple[str, Any, dict[str, Any]]], bulk: bool = False):
    """Add ``jobs`` (name, data, opts) on the producer and work them off; ids, views, counts."""
    producer, worker, minibull_peer = flow
    if bulk:
        ids = await producer.add_bulk(
            [{"name": name, "data": data, "opts": opts} for name, data, opts in jobs]
        )
    else:
        ids = [await producer.add(name, data, opts) for name, data, opts in jobs]
    await worker.start_worker(**WORKER)
    await wait_finished(minibull_peer, ids)
    readers = list({id(p): p for p in (producer, worker, minibull_peer)}.values())
    views = [await agreed_view(readers, job_id) for job_id in ids]
    counts = await agreed_counts(readers)
    return ids, views, counts, worker


async def test_plain_job(flow):
    (job_id,), (view,), counts, worker = await run(flow, [("plain", {"n": 1}, {})])
    assert view["state"] == "completed"
    assert view["returnvalue"] == {"by": worker.kind, "attemptsMade": 0}
    assert (view["attemptsMade"], view["attemptsStarted"], view["stalledCounter"]) == (1, 1, 0)
    assert view["failedReason"] is None and view["stacktrace"] == 0
    assert view["timestamp"] <= view["processedOn"] <= view["finishedOn"]
    assert view["data"] == {"n": 1} and view["name"] == "plain"
    assert counts["completed"] == 1 and sum(counts.values()) == 1
    assert worker.runs == [(job_id, 0)]


async def test_retries_with_exponential_backoff(flow):
    opts = {"attempts": 3, "backoff": {"type": "exponential", "delay": 50}}
    (job_id,), (view,), _, worker = await run(flow, [("flaky", {"fail_times": 2}, opts)])
    assert view["state"] == "completed"
    assert view["returnvalue"] == {"by": worker.kind, "attemptsMade": 2}
    assert (view["attemptsMade"], view["attemptsStarted"]) == (3, 3)
    # The last failure stays on the job, as in BullMQ; so do both stack traces.
    assert view["failedReason"] == "boom 1" and view["stacktrace"] == 2
    assert view["opts"]["backoff"] == {"type": "exponential", "delay": 50}
    # Waits of 50 ms, then 100 ms (2^(n-1) * delay).
    assert view["finishedOn"] - view["timestamp"] >= 150
    assert worker.runs_of(job_id) == [0, 1, 2]


async def test_failing_job(flow):
    opts = {"attempts": 2, "backoff": {"type": "fixed", "delay": 20}}
    (job_id,), (view,), counts, worker = await run(flow, [("doomed", {"fail_times": 9}, opts)])
    assert view["state"] == "failed"
    assert view["failedReason"] == "boom 1"
    assert (view["attemptsMade"], view["attemptsStarted"]) == (2, 2)
    assert view["returnvalue"] is None and view["stacktrace"] == 2
    assert view["finishedOn"] >= view["processedOn"]
    assert counts["failed"] == 1
    assert worker.runs_of(job_id) == [0, 1]


async def test_delayed_job(flow):
    (job_id,), (view,), _, worker = await run(flow, [("later", {}, {"delay": 300})])
    assert view["state"] == "completed"
    assert view["processedOn"] - view["timestamp"] >= 300
    assert view["delay"] == 0  # reset when the job is promoted, in both
    assert view["opts"]["delay"] == 300
    assert worker.runs_of(job_id) == [0]


async def test_custom_job_id_and_duplicate(flow):
    ids, (view, again), counts, worker = await run(
        flow,
        [("custom", {"v": 1}, {"jobId": "order-42"}), ("custom", {"v": 2}, {"jobId": "order-42"})],
    )
    assert ids == ["order-42", "order-42"]
    assert view == again and view["data"] == {"v": 1}  # the second add changed nothing
    assert view["opts"]["jobId"] == "order-42"
    assert counts["completed"] == 1
    assert worker.runs == [("order-42", 0)]
    queue = flow[2].queue
    events = [fields for _, fields in await queue.redis.xrange(queue.keys.events)]
    assert [f["jobId"] for f in events if f["event"] == "duplicated"] == ["order-42"]


async def test_progress(flow):
    data = {"progress": [50, {"step": "two", "of": 2}]}
    _, (view,), _, _ = await run(flow, [("progressing", data, {})])
    assert view["progress"] == {"step": "two", "of": 2}  # any JSON value, read back as JSON


async def test_remove_on_complete_and_on_fail(flow):
    producer, _, minibull_peer = flow
    jobs = [
        ("gone", {}, {"removeOnComplete": True}),
        ("kept", {}, {"removeOnComplete": 2}),
        ("kept", {}, {"removeOnComplete": 2}),
        ("kept", {}, {"removeOnComplete": 2}),
        ("failed-gone", {"fail_times": 1}, {"removeOnFail": True}),
        ("failed-kept", {"fail_times": 1}, {"removeOnFail": {"count": 5}}),
    ]
    ids = [await producer.add(name, data, opts) for name, data, opts in jobs]
    worker = flow[1]
    await worker.start_worker(**WORKER)
    await wait_until(lambda: len(worker.runs) == len(ids), what="every job ran")
    await wait_until(lambda: _counts_settled(minibull_peer), what="finished jobs were pruned")
    readers = list({id(p): p for p in flow}.values())
    gone = [ids[0], ids[1], ids[4]]  # removed at once; "kept" keeps the newest 2 of 3
    for job_id in gone:
        for reader in readers:
            assert await reader.get_job(job_id) is None, f"{reader.kind} still has {job_id}"
    for job_id in (ids[2], ids[3], ids[5]):
        await agreed_view(readers, job_id)
    counts = await agreed_counts(readers)
    assert (counts["completed"], counts["failed"]) == (2, 1)


async def _counts_settled(peer: Peer) -> bool:
    counts = await peer.get_job_counts("completed", "failed", "active", "waiting")
    return counts == {"completed": 2, "failed": 1, "active": 0, "waiting": 0}


async def test_priorities(flow):
    jobs = [
        ("p3", {}, {"priority": 3}),
        ("p1", {}, {"priority": 1}),
        ("p2a", {}, {"priority": 2}),
        ("p2b", {}, {"priority": 2}),
        ("plain", {}, {}),
    ]
    ids, views, counts, worker = await run(flow, jobs)
    by_name = dict(zip([name for name, _, _ in jobs], ids, strict=True))
    # A plain waiting job runs before any prioritized one; then lowest first, ties FIFO.
    order = ["plain", "p1", "p2a", "p2b", "p3"]
    assert [job_id for job_id, _ in worker.runs] == [by_name[name] for name in order]
    assert [view["priority"] for view in views] == [3, 1, 2, 2, 0]
    assert counts["completed"] == 5


async def test_lifo(flow):
    jobs = [("a", {}, {}), ("b", {}, {}), ("last-in", {}, {"lifo": True})]
    ids, _, _, worker = await run(flow, jobs)
    assert [job_id for job_id, _ in worker.runs] == [ids[2], ids[0], ids[1]]


async def test_bulk(flow):
    jobs = [(f"bulk-{i}", {"i": i}, {"attempts": 2}) for i in range(5)]
    jobs.append(("bulk-late", {"i": 5}, {"delay": 100}))
    jobs.append(("bulk-urgent", {"i": 6}, {"priority": 1}))
    ids, views, counts, worker = await run(flow, jobs, bulk=True)
    assert len(set(ids)) == 7
    assert [view["data"]["i"] for view in views] == list(range(7))
    assert all(view["state"] == "completed" for view in views)
    plain = [job_id for job_id, _ in worker.runs][:5]
    assert plain == ids[:5]  # first in, first out
    assert sorted(job_id for job_id, _ in worker.runs) == sorted(ids)
    assert counts["completed"] == 7
