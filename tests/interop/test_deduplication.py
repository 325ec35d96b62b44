"""Deduplication crosses over: a deduplication id taken by one side holds for the other.

BullMQ's ``deduplication: {id}`` option (stored as ``de`` in opts, the id in the job's
``deid`` field, the holder in ``<queue>:de:<id>``) makes a second add with the same id a
no-op while the first job is not finished; when it finishes, the id is free again.
"""

from __future__ import annotations

import pytest

from tests.interop.conftest import OpenPeer, wait_finished
from tests.interop.peers import MinibullPeer, Peer


@pytest.mark.parametrize(
    ("first", "second"),
    [("minibull", "bullmq"), ("bullmq", "minibull")],
    ids=["minibull-first", "bullmq-first"],
)
async def test_a_deduplication_id_holds_across_sides(
    first, second, open_peer: OpenPeer, bullmq_kind: str
):
    minibull_peer = await open_peer("minibull")
    assert isinstance(minibull_peer, MinibullPeer)
    peers: dict[str, Peer] = {"minibull": minibull_peer, "bullmq": await open_peer(bullmq_kind)}
    queue = minibull_peer.queue
    dedup = {"deduplication": {"id": "nightly-report"}}

    held = await peers[first].add("report", {"n": 1}, dedup)
    assert await queue.redis.get(queue.keys.key("de:nightly-report")) == held
    again = await peers[second].add("report", {"n": 2}, dedup)
    assert again == held, "the second add made a new job"
    assert (await queue.get_job_counts("waiting"))["waiting"] == 1
    for peer in peers.values():
        job = await peer.get_job(held)
        assert job["data"] == {"n": 1}
        # Stored as opts "de"; BullMQ's getters decode it to "deduplication", minibull's
        # Job.opts shows the stored name (a difference, pinned here).
        name = "de" if peer.kind == "minibull" else "deduplication"
        assert job["opts"][name] == {"id": "nightly-report"}, peer.kind
    assert (await queue.redis.hget(queue.keys.job(held), "deid")) == "nightly-report"

    await peers[second].start_worker(drainDelay=1)
    await wait_finished(minibull_peer, [held])
    assert await queue.redis.exists(queue.keys.key("de:nightly-report")) == 0, "id not freed"
    fresh = await peers[first].add("report", {"n": 3}, dedup)
    assert fresh != held
    await wait_finished(minibull_peer, [fresh])


@pytest.mark.parametrize("adder", ["minibull", "bullmq"])
async def test_the_deduplicated_event(adder, open_peer: OpenPeer, bullmq_kind: str):
    """BullMQ's ``deduplicated`` event names the job kept (``jobId``), the deduplication
    id, and the id the ignored add would have had (``deduplicatedJobId``); minibull's
    addJob emits the same fields (it once left out ``deduplicatedJobId``).
    """
    minibull_peer = await open_peer("minibull")
    assert isinstance(minibull_peer, MinibullPeer)
    peers: dict[str, Peer] = {"minibull": minibull_peer, "bullmq": await open_peer(bullmq_kind)}
    dedup = {"deduplication": {"id": "d"}}
    held = await peers[adder].add("x", {}, dedup)
    await peers[adder].add("x", {}, dedup)
    queue = minibull_peer.queue
    events = [
        f for _, f in await queue.redis.xrange(queue.keys.events) if f["event"] == "deduplicated"
    ]
    assert len(events) == 1
    assert events[0]["jobId"] == held and events[0]["deduplicationId"] == "d"
    assert "deduplicatedJobId" in events[0], f"{adder}'s deduplicated event: {events[0]}"
    assert events[0]["deduplicatedJobId"] == str(int(held) + 1)  # the id it would have had
