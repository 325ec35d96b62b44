"""Issue 16 next to BullMQ: the manual rate limit, and the ``timeout`` option BullMQ lacks.

The manual rate limit is BullMQ's limiter key set to 2^53 - 1 with a PX expiry; a
processor's RateLimitError puts its job back through moveJobFromActiveToWait. Cancelling
(``cancel_job``/``cancelJob``) is local to a worker on every side and writes nothing of its
own to Redis (a cancelled attempt is stored as any failure), so it has no test here.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.interop.conftest import OpenPeer, wait_finished, wait_until
from tests.interop.peers import Peer

# BullMQ's workers see a manual limit only with a limiter of their own (its max decides).
LIMITER = {"max": 1000, "duration": 1000}
WORKER = {"drainDelay": 1, "lockDuration": 5000, "stalledInterval": 5000}
SIDES = ("minibull", "bullmq")


async def events_of(reader: Peer, queue: str, job_id: str) -> list[tuple[str, Any]]:
    """(event, prev) of one job's entries in a queue's events stream."""
    entries = await reader.queue.redis.xrange(f"{reader.prefix}:{queue}:events")
    return [(f["event"], f.get("prev")) for _id, f in entries if f.get("jobId") == job_id]


async def test_a_rate_limited_run_leaves_what_bullmq_leaves(open_peer: OpenPeer):
    # Node only: BullMQ for Python 3.4 has no RateLimitError.
    ours = await open_peer("minibull", queue="a")
    theirs = await open_peer("node", queue="b")
    took = {}
    for peer in (ours, theirs):
        began = time.monotonic()
        limited = await peer.add("call", {"rate_limit_ms": 600}, {"attempts": 2})
        other = await peer.add("call", {}, {})
        await peer.start_worker(limiter=LIMITER, **WORKER)
        await wait_finished(peer, [limited, other])
        took[peer.kind] = time.monotonic() - began
    for peer in (ours, theirs):
        assert peer.runs == [("1", 0), ("1", 0), ("2", 0)], peer  # back at the front of wait
        assert took[peer.kind] >= 0.55, took
    views = {}
    for queue in ("a", "b"):
        redis, base = ours.queue.redis, f"{ours.prefix}:{queue}:"
        views[queue] = {
            "counters": await redis.hmget(base + "1", "atm", "ats"),
            "events": await events_of(ours, queue, "1"),
        }
    assert views["a"] == views["b"]
    assert views["a"]["counters"] == ["1", "2"]  # one attempt made, two started
    assert views["a"]["events"] == [
        ("added", None),
        ("waiting", None),
        ("active", "waiting"),
        ("waiting", "active"),
        ("active", "waiting"),
        ("completed", "active"),
    ]


@pytest.mark.parametrize("setter", SIDES)
async def test_a_manual_limit_set_by_either_side_holds_the_other(
    setter: str, open_peer: OpenPeer, bullmq_kind: str
):
    minibull_peer = await open_peer("minibull")
    peers = {"minibull": minibull_peer, "bullmq": await open_peer(bullmq_kind)}
    runner = "bullmq" if setter == "minibull" else "minibull"
    began_ms = int(time.time() * 1000)
    await peers[setter].rate_limit(800)
    job_id = await minibull_peer.add("held", {}, {})
    # minibull's worker needs no limiter to see the manual limit; BullMQ's do
    options = {"limiter": LIMITER} if runner == "bullmq" else {}
    await peers[runner].start_worker(**options, **WORKER)
    await wait_finished(minibull_peer, [job_id])
    started = (await minibull_peer.get_job(job_id))["processedOn"]
    assert started - began_ms >= 700, started - began_ms


async def test_a_timeout_is_stored_where_bullmq_ignores_it(open_peer: OpenPeer, bullmq_kind: str):
    minibull_peer = await open_peer("minibull")
    bullmq_peer = await open_peer(bullmq_kind)
    ours = await minibull_peer.add("slow", {"sleep_ms": 600}, {"timeout": 200})
    view = await bullmq_peer.get_job(ours)
    assert view["opts"]["timeout"] == 200  # BullMQ reads it back, and does nothing with it
    await bullmq_peer.start_worker(**WORKER)
    await wait_finished(minibull_peer, [ours])
    assert await minibull_peer.get_job_state(ours) == "completed"


async def test_minibull_honours_a_timeout_in_a_job_bullmq_added(open_peer: OpenPeer):
    # Node's add keeps an option it does not know in the stored opts (Bull 3's `timeout`).
    minibull_peer = await open_peer("minibull")
    node = await open_peer("node")
    theirs = await node.add("slow", {"sleep_ms": 2000}, {"timeout": 200})
    await minibull_peer.start_worker(**WORKER)
    await wait_until(
        lambda: _failed(minibull_peer, theirs), what="the job failed for its timeout", timeout=10
    )
    view = await node.get_job(theirs)
    assert view["failedReason"] == f"job {theirs} timed out after 0.2 s (its timeout)"
    assert view["attemptsMade"] == 1


async def _failed(peer: Peer, job_id: str) -> bool:
    return await peer.get_job_state(job_id) == "failed"
