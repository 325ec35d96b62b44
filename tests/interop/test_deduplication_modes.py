"""Issue 16, item 4 next to BullMQ: the deduplication modes (extend, replace, keepLastIfActive).

The same steps run twice, minibull on queue ``a`` and BullMQ on queue ``b``; the keys they
leave (``de:<id>`` and its ttl, ``dn:<id>``, the delayed set, the job hashes) and their
events must be the same. Then each side's kept edit is run by the other side's worker.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.interop.conftest import OpenPeer, wait_finished, wait_until
from tests.interop.peers import Peer

WORKER = {"drainDelay": 1, "lockDuration": 5000, "stalledInterval": 5000}
#: Event fields compared (the stream's entry ids and timestamps differ).
EVENT_FIELDS = ("event", "jobId", "prev", "deduplicationId", "deduplicatedJobId", "name")
#: Worker-side events are left out: the workers' own timing differs between the sides.
ADD_EVENTS = {"added", "waiting", "delayed", "removed", "deduplicated", "completed"}


async def twins(open_peer: OpenPeer, bullmq_kind: str) -> tuple[Peer, Peer]:
    """minibull on queue ``a``, BullMQ on queue ``b``: the same steps on each."""
    return await open_peer("minibull", queue="a"), await open_peer(bullmq_kind, queue="b")


async def contents(reader: Peer, queue: str, dedup_id: str) -> dict[str, Any]:
    """What the queue holds for ``dedup_id``, read with minibull's client: the holder and
    its ttl (to 10 s), the kept edit, the delayed and wait ids, jobs 1-4 (name,
    data, options, deid), and the events of ADD_EVENTS."""
    redis = reader.queue.redis
    base = f"{reader.prefix}:{queue}:"
    ttl = await redis.pttl(base + "de:" + dedup_id)
    kept = await redis.hgetall(base + "dn:" + dedup_id)
    if kept:
        # Only "de": the other options' defaults differ as in every job (minibull stores
        # attempts 1 and delay 0, BullMQ attempts 0), a difference of add, not of the modes.
        kept["opts"] = json.loads(kept["opts"]).get("de")
        kept["data"] = json.loads(kept["data"])
    jobs = {}
    for job_id in ("1", "2", "3", "4"):
        name, data, opts, deid = await redis.hmget(base + job_id, "name", "data", "opts", "deid")
        jobs[job_id] = name and (name, json.loads(data), json.loads(opts).get("de"), deid)
    return {
        "holder": await redis.get(base + "de:" + dedup_id),
        "ttl_s": ttl if ttl < 0 else 10 * round(ttl / 10_000),  # the two sides run apart
        "kept": kept,
        "delayed": await redis.zrange(base + "delayed", 0, -1),
        "wait": await redis.lrange(base + "wait", 0, -1),
        "jobs": jobs,
        "events": [
            tuple(fields.get(name) for name in EVENT_FIELDS)
            for _id, fields in await redis.xrange(base + "events")
            if fields["event"] in ADD_EVENTS
        ],
    }


@pytest.mark.parametrize(
    ("dedup", "delayed", "ttl_s"),
    [
        ({"id": "s", "ttl": 60_000, "extend": True, "replace": True}, ["3"], 60),
        ({"id": "s", "ttl": 60_000, "replace": True}, ["3"], 30),
        ({"id": "s", "ttl": 60_000, "extend": True}, ["1"], 60),
        ({"id": "s", "replace": True, "keepLastIfActive": True}, ["3"], -1),
    ],
    ids=["debounce", "replace", "extend", "replace-keep-last"],
)
async def test_adds_in_a_mode_leave_what_bullmq_leaves(
    open_peer, bullmq_kind, dedup, delayed, ttl_s
):
    minibull_side, bullmq_side = await twins(open_peer, bullmq_kind)
    opts = {"delay": 60_000, "deduplication": dedup}
    for peer, queue in ((minibull_side, "a"), (bullmq_side, "b")):
        await peer.add("search", {"n": 0}, opts)
        # Half the window gone: extend starts it again, replace alone keeps its end.
        await minibull_side.queue.redis.pexpire(f"{peer.prefix}:{queue}:de:s", 30_000)
        for n in (1, 2):
            await peer.add("search", {"n": n}, opts)
    ours = await contents(minibull_side, "a", "s")
    theirs = await contents(minibull_side, "b", "s")
    assert ours == theirs
    assert (ours["delayed"], ours["ttl_s"]) == (delayed, ttl_s)


async def test_keep_last_if_active_leaves_what_bullmq_leaves(open_peer, bullmq_kind):
    """The edit made while the job runs is kept in ``dn:<id>`` and run after it, on both."""
    minibull_side, bullmq_side = await twins(open_peer, bullmq_kind)
    keep = {"deduplication": {"id": "doc", "keepLastIfActive": True}}
    during = {}
    for peer, queue in ((minibull_side, "a"), (bullmq_side, "b")):
        await peer.add("save", {"v": 1, "sleep_ms": 1500}, keep)
        await peer.start_worker(**WORKER)
        await wait_until(lambda p=peer: _is_active(p, "1"), what=f"{peer.kind} job 1 active")
        await peer.add("save", {"v": 2}, keep)
        await peer.add("save", {"v": 3}, keep)
        during[queue] = await contents(minibull_side, queue, "doc")
        await wait_finished(peer, ["1", "3"])
    assert during["a"] == during["b"]
    assert during["a"]["holder"] == "1" and during["a"]["ttl_s"] == -1
    assert during["a"]["kept"]["jid"] == "3" and during["a"]["kept"]["data"] == {"v": 3}
    after = {q: await contents(minibull_side, q, "doc") for q in ("a", "b")}
    assert after["a"] == after["b"]
    assert after["a"]["jobs"]["3"][1] == {"v": 3} and after["a"]["jobs"]["2"] is None
    assert after["a"]["holder"] is None and after["a"]["kept"] == {}


async def _is_active(peer: Peer, job_id: str) -> bool:
    return await peer.get_job_state(job_id) == "active"


@pytest.mark.parametrize(
    ("adder", "runner"),
    [("minibull", "bullmq"), ("bullmq", "minibull")],
    ids=["minibull-keeps", "bullmq-keeps"],
)
async def test_a_kept_edit_crosses(open_peer, bullmq_kind, adder, runner):
    """One side keeps the edit while the other side's worker runs the job; that worker
    adds it when the job ends."""
    minibull_side = await open_peer("minibull")
    peers: dict[str, Peer] = {"minibull": minibull_side, "bullmq": await open_peer(bullmq_kind)}
    keep = {"deduplication": {"id": "doc", "keepLastIfActive": True}}
    await peers[runner].add("save", {"v": 1, "sleep_ms": 1000}, keep)
    await peers[runner].start_worker(**WORKER)
    await wait_until(lambda: _is_active(peers[runner], "1"), what="job 1 active")
    assert await peers[adder].add("save", {"v": 2}, keep) == "1"
    await wait_finished(minibull_side, ["1", "2"])
    for peer in peers.values():
        job = await peer.get_job("2")
        assert job["data"] == {"v": 2} and job["returnvalue"]["by"] == peers[runner].kind


async def test_remove_deduplication_key_frees_bullmqs_id(open_peer, bullmq_kind):
    minibull_side = await open_peer("minibull")
    bullmq_side = await open_peer(bullmq_kind)
    dedup = {"deduplication": {"id": "d"}}
    assert await bullmq_side.add("x", {}, dedup) == "1"
    assert await bullmq_side.add("x", {}, dedup) == "1"
    assert await minibull_side.queue.remove_deduplication_key("d") == 1
    assert await bullmq_side.add("x", {}, dedup) == "3"


async def test_removing_bullmqs_debounced_job_frees_the_id_as_bullmq_does(open_peer, bullmq_kind):
    """minibull's Job.remove frees a held id whatever its ttl, as BullMQ's removal does:
    BullMQ's next add in the window makes a job."""
    minibull_side = await open_peer("minibull")
    bullmq_side = await open_peer(bullmq_kind)
    debounce = {"delay": 60_000, "deduplication": {"id": "s", "ttl": 60_000, "extend": True}}
    assert await bullmq_side.add("search", {"q": "a"}, debounce) == "1"
    await (await minibull_side.queue.get_job("1")).remove()
    assert await minibull_side.queue.redis.exists(minibull_side.queue.keys.deduplication("s")) == 0
    assert await bullmq_side.add("search", {"q": "b"}, debounce) == "2"
    assert (await bullmq_side.get_job("2"))["data"] == {"q": "b"}
