"""Issue 16 next to BullMQ: changing a job (promote, changeDelay, updateData,
changePriority, promoteJobs), metrics and the list of workers.

Where both sides can make a change, the same steps run twice, minibull on queue ``a`` and
BullMQ on queue ``b``, and the structures they leave (wait list, prioritized scores, job
fields, events) must be the same. Where only one side can read, it reads what the other
wrote.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.interop.conftest import OpenPeer, wait_until
from tests.interop.peers import Peer

WORKER = {"drainDelay": 1, "lockDuration": 5000, "stalledInterval": 5000}


async def twins(open_peer: OpenPeer, bullmq_kind: str) -> tuple[Peer, Peer]:
    """minibull on queue ``a``, BullMQ on queue ``b``: the same steps on each."""
    return await open_peer("minibull", queue="a"), await open_peer(bullmq_kind, queue="b")


async def structures(reader: Peer, queue: str, since: int) -> dict[str, Any]:
    """What a queue holds, read straight from Redis with minibull's client: the wait list,
    prioritized (id, score), delayed ids, each job's priority/delay/data, and the events
    after entry ``since`` (name, job id, prev)."""
    redis = reader.queue.redis
    base = f"{reader.prefix}:{queue}:"
    jobs = {}
    for job_id in ("1", "2", "3", "4", "5"):
        fields = await redis.hmget(base + job_id, "priority", "delay", "data")
        jobs[job_id] = fields
    events = await redis.xrange(base + "events")
    return {
        "wait": await redis.lrange(base + "wait", 0, -1),
        "prioritized": await redis.zrange(base + "prioritized", 0, -1, withscores=True),
        "delayed": await redis.zrange(base + "delayed", 0, -1),
        "jobs": jobs,
        "events": [
            (fields["event"], fields.get("jobId"), fields.get("prev"))
            for _id, fields in events[since:]
        ],
    }


async def event_count(reader: Peer, queue: str) -> int:
    return await reader.queue.redis.xlen(f"{reader.prefix}:{queue}:events")


async def test_promote_and_change_priority_leave_what_bullmq_leaves(open_peer, bullmq_kind):
    minibull_side, bullmq_side = await twins(open_peer, bullmq_kind)
    for peer in (minibull_side, bullmq_side):
        await peer.add("p3", {"n": 1}, {"priority": 3})
        await peer.add("p3", {"n": 2}, {"priority": 3})
        await peer.add("plain", {"n": 3}, {})
        await peer.add("later", {"n": 4}, {"delay": 60_000})
        await peer.add("later-p2", {"n": 5}, {"delay": 60_000, "priority": 2})
    marks = {q: await event_count(minibull_side, q) for q in ("a", "b")}
    for peer in (minibull_side, bullmq_side):
        await peer.change_job("4", "promote")
        await peer.change_job("5", "promote")
        await peer.change_job("2", "changePriority", {"priority": 3, "lifo": True})
        await peer.change_job("3", "changePriority", {"priority": 1})
        await peer.change_job("1", "changePriority", {"priority": 0, "lifo": True})
    ours = await structures(minibull_side, "a", marks["a"])
    theirs = await structures(minibull_side, "b", marks["b"])
    assert ours == theirs
    assert ours["wait"] == ["4", "1"] and ours["delayed"] == []
    assert [job_id for job_id, _ in ours["prioritized"]] == ["3", "5", "2"]


async def test_a_promote_refused_on_either_side(open_peer, bullmq_kind):
    minibull_side = await open_peer("minibull")
    bullmq_side = await open_peer(bullmq_kind)
    job_id = await bullmq_side.add("now", {}, {})
    with pytest.raises(ValueError, match="not delayed"):
        await minibull_side.change_job(job_id, "promote")
    with pytest.raises(Exception, match="not in the delayed state|delayed"):
        await bullmq_side.change_job(job_id, "promote")
    assert await bullmq_side.get_job_state(job_id) == "waiting"


async def test_change_delay_leaves_what_bullmq_leaves(open_peer):
    minibull_side, bullmq_side = await twins(open_peer, "node")  # Python's BullMQ has none
    for peer in (minibull_side, bullmq_side):
        await peer.add("later", {}, {"delay": 60_000})
    marks = {q: await event_count(minibull_side, q) for q in ("a", "b")}
    before = int(time.time() * 1000)
    for peer in (minibull_side, bullmq_side):
        await peer.change_job("1", "changeDelay", 120_000)
    after = int(time.time() * 1000)
    redis = minibull_side.queue.redis
    for queue in ("a", "b"):
        base = f"{minibull_side.prefix}:{queue}:"
        assert await redis.hget(base + "1", "delay") == "120000"
        due = int(await redis.zscore(base + "delayed", "1")) // 0x1000
        assert before + 120_000 <= due <= after + 120_000
        (_id, fields), *_ = (await redis.xrange(base + "events"))[marks[queue] :]
        assert (fields["event"], fields["jobId"]) == ("delayed", "1")
        assert before + 120_000 <= int(fields["delay"]) <= after + 120_000


async def test_update_data_crosses(open_peer, bullmq_kind):
    minibull_side = await open_peer("minibull")
    bullmq_side = await open_peer(bullmq_kind)
    theirs = await bullmq_side.add("mail", {"to": "ada"}, {"delay": 60_000})
    ours = await minibull_side.add("mail", {"to": "ada"}, {"delay": 60_000})
    await minibull_side.change_job(theirs, "updateData", {"to": "grace"})
    await bullmq_side.change_job(ours, "updateData", {"to": "alan"})
    for peer in (minibull_side, bullmq_side):
        assert (await peer.get_job(theirs))["data"] == {"to": "grace"}
        assert (await peer.get_job(ours))["data"] == {"to": "alan"}


async def test_promote_jobs_leaves_what_bullmq_leaves(open_peer, bullmq_kind):
    # Plain jobs only: BullMQ's promoteJobs pushes a prioritized job to wait, minibull's
    # keeps its priority; and BullMQ leaves the old "delay" in the hash, minibull sets 0
    # as promote does (see minibull/lua/promoteJobs-7.lua).
    minibull_side, bullmq_side = await twins(open_peer, bullmq_kind)
    for peer in (minibull_side, bullmq_side):
        for n, delay in enumerate((90_000, 30_000, 60_000)):
            await peer.add("later", {"n": n}, {"delay": delay})
    marks = {q: await event_count(minibull_side, q) for q in ("a", "b")}
    for peer in (minibull_side, bullmq_side):
        await peer.promote_jobs()
    ours = await structures(minibull_side, "a", marks["a"])
    theirs = await structures(minibull_side, "b", marks["b"])
    delays = {job_id: fields[1] for job_id, fields in theirs["jobs"].items() if fields[0]}
    assert delays == {"1": "90000", "2": "30000", "3": "60000"}  # BullMQ's, left as they were
    for fields in theirs["jobs"].values():
        fields[1] = fields[1] and "0"
    assert ours == theirs
    assert ours["wait"] == ["1", "3", "2"]  # soonest due runs first (the right end)


async def test_each_side_lists_the_others_workers(open_peer):
    # Node only: BullMQ for Python 3.4 names its clients "<prefix>:<queue>[:w:<name>]",
    # without Node's base64, so it and minibull (which follows Node) do not see each other.
    minibull_side = await open_peer("minibull")
    bullmq_side = await open_peer("node")
    await minibull_side.start_worker(name="ours", **WORKER)
    await bullmq_side.start_worker(name="theirs", **WORKER)
    names = sorted(minibull_side.queue.keys.client_name(n) for n in ("ours", "theirs"))

    async def both_listed() -> bool:
        return await minibull_side.get_workers() == names == await bullmq_side.get_workers()

    await wait_until(both_listed, what="both workers listed by both sides")


async def test_metrics_are_read_by_both(open_peer):
    minibull_side = await open_peer("minibull")
    node = await open_peer("node")  # Python's BullMQ has no getMetrics
    await minibull_side.start_worker(metrics={"maxDataPoints": 10}, **WORKER)
    ids = [await node.add("job", {"n": n}, {}) for n in range(3)]
    await wait_until(lambda: len(minibull_side.runs) == 3, what="minibull ran 3 jobs")
    await wait_until(lambda: _all_completed(minibull_side, ids), what="3 jobs completed")
    ours = await minibull_side.get_metrics("completed")
    assert ours == await node.get_metrics("completed")
    assert ours["meta"]["count"] == 3
    await node.start_worker(metrics={"maxDataPoints": 10}, **WORKER)
    for wid in list(minibull_side.workers):
        await minibull_side.close_worker(wid)
    more = [await minibull_side.add("job", {"n": n}, {}) for n in range(2)]
    await wait_until(lambda: _all_completed(minibull_side, more), what="2 more completed")
    ours = await minibull_side.get_metrics("completed")
    assert ours == await node.get_metrics("completed")
    assert ours["meta"]["count"] == 5


async def _all_completed(peer: Peer, job_ids: list[str]) -> bool:
    return all([await peer.get_job_state(job_id) == "completed" for job_id in job_ids])
