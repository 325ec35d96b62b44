"""Pause and resume cross over: one side pauses the queue, the other side's worker obeys.

BullMQ v6 and minibull pause the same way: ``paused`` in the meta hash and no
marker, with the jobs left in ``wait``. Jobs added while paused wait (plain,
delayed and prioritized ones), the worker takes nothing, and after the resume
it runs them all.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.interop.conftest import OpenPeer, wait_finished
from tests.interop.peers import Peer


@pytest.mark.parametrize(
    ("pauser", "worker"),
    [("bullmq", "minibull"), ("minibull", "bullmq")],
    ids=["bullmq-pauses-minibull-works", "minibull-pauses-bullmq-works"],
)
async def test_pause_and_resume_are_honoured_by_the_other_side(
    pauser, worker, open_peer: OpenPeer, bullmq_kind: str
):
    minibull_peer = await open_peer("minibull")
    bullmq_peer = await open_peer(bullmq_kind)
    peers: dict[str, Peer] = {"minibull": minibull_peer, "bullmq": bullmq_peer}
    eid = await minibull_peer.start_events("0-0")
    await peers[worker].start_worker(drainDelay=1)
    first = await peers[pauser].add("before", {}, {})
    await wait_finished(minibull_peer, [first])

    await peers[pauser].pause()
    assert await minibull_peer.is_paused() and await bullmq_peer.is_paused()
    ids = [
        await peers[pauser].add("plain", {}, {}),
        await peers[worker].add("urgent", {}, {"priority": 1}),
        await peers[pauser].add("soon", {}, {"delay": 50}),
    ]
    await asyncio.sleep(1.2)  # longer than the worker's drain delay: it woke and looked
    assert [job_id for job_id, _ in peers[worker].runs] == [first], "ran a job while paused"
    for job_id in ids:
        assert await minibull_peer.get_job_state(job_id) in ("waiting", "prioritized", "delayed")
        assert await bullmq_peer.get_job_state(job_id) == await minibull_peer.get_job_state(job_id)

    await peers[pauser].resume()
    assert not await minibull_peer.is_paused() and not await bullmq_peer.is_paused()
    await wait_finished(minibull_peer, ids, timeout=10)
    assert sorted(job_id for job_id, _ in peers[worker].runs) == sorted([first, *ids])
    events = [name for name, _ in minibull_peer.events[eid]]
    assert events.count("paused") == 1 and events.count("resumed") == 1
    assert events.index("paused") < events.index("resumed")
