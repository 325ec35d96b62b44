"""Events cross over: each side's QueueEvents reads what the other side's queue and worker emit.

The same jobs run twice, once on a minibull queue and worker, once on BullMQ's; a
minibull QueueEvents and a BullMQ QueueEvents follow the stream each time. Both
readers must see the same entries, and each job's events must be the sequence
BullMQ's scripts write, whichever side did the work.
"""

from __future__ import annotations

from typing import Any

from tests.interop.conftest import OpenPeer, wait_finished, wait_until
from tests.interop.peers import Peer

JOBS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("ok", {}, {}),
    ("retry-later", {"fail_times": 1}, {"attempts": 2, "backoff": {"type": "fixed", "delay": 50}}),
    ("retry-now", {"fail_times": 1}, {"attempts": 2}),
    ("fail", {"fail_times": 9}, {"attempts": 1}),
    ("late", {}, {"delay": 200}),
    ("progress", {"progress": [7, {"half": True}]}, {}),
]

#: Per job, the events BullMQ's scripts emit (addStandardJob, moveToActive, moveToDelayed,
#: retryJob, moveToFinished, promoteDelayedJobs), as (event, prev) pairs.
EXPECTED = {
    "ok": [("added", None), ("waiting", None), ("active", "waiting"), ("completed", "active")],
    "retry-later": [
        ("added", None),
        ("waiting", None),
        ("active", "waiting"),
        ("delayed", None),
        ("waiting", "delayed"),
        ("active", "waiting"),
        ("completed", "active"),
    ],
    "retry-now": [
        ("added", None),
        ("waiting", None),
        ("active", "waiting"),
        ("waiting", "active"),
        ("active", "waiting"),
        ("completed", "active"),
    ],
    "fail": [
        ("added", None),
        ("waiting", None),
        ("active", "waiting"),
        ("failed", "active"),
        ("retries-exhausted", None),
    ],
    "late": [
        ("added", None),
        ("delayed", None),
        ("waiting", "delayed"),
        ("active", "waiting"),
        ("completed", "active"),
    ],
}
EXPECTED["progress"] = [
    ("added", None),
    ("waiting", None),
    ("active", "waiting"),
    ("progress", None),
    ("progress", None),
    ("completed", "active"),
]
TERMINAL = {
    "progress": "completed",
    "ok": "completed",
    "retry-later": "completed",
    "retry-now": "completed",
    "fail": "retries-exhausted",
    "late": "completed",
}


#: Fields minibull's events carry beyond BullMQ's (all on purpose): "ts", the clock's now
#: (minibull's workers may run on a virtual clock, so stream ids cannot date them), "worker"
#: on active (which worker took the job), and "prev" on a retry's delayed.
MINIBULL_EXTRA_FIELDS = {
    "active": {"ts", "worker"},
    "completed": {"ts"},
    "failed": {"ts"},
    "delayed": {"prev", "ts"},
    "waiting": {"ts"},
}

Log = list[tuple[str, dict[str, Any]]]


def job_events(log: Log, job_id: str) -> list[tuple[str, Any]]:
    """The job's events as (name, prev); prev only where BullMQ writes one."""
    out = []
    for name, fields in log:
        if fields.get("jobId") == job_id:
            out.append((name, None if name == "delayed" else fields.get("prev")))
    return out


def fields_of(log: Log, job_id: str, event: str) -> dict[str, Any]:
    return next(f for name, f in log if name == event and f.get("jobId") == job_id)


def field_names(log: Log) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for name, fields in log:
        names.setdefault(name, set()).update(fields)
    return names


async def run_story(worker: Peer, readers: list[Peer]) -> tuple[dict[str, str], dict[str, Log]]:
    """Add JOBS on ``worker``'s queue and work them off there, every reader following."""
    logs = {peer.kind: peer.events[await peer.start_events("0-0")] for peer in readers}
    ids = {name: await worker.add(name, data, opts) for name, data, opts in JOBS}
    await worker.start_worker(drainDelay=1)
    await wait_finished(worker, list(ids.values()))
    for kind, log in logs.items():
        await wait_until(
            lambda log=log: all(
                any(n == TERMINAL[name] and f.get("jobId") == ids[name] for n, f in log)
                for name in ids
            ),
            what=f"{kind}'s QueueEvents saw every job end",
        )
    return ids, logs


async def test_both_queue_events_read_the_same_story(open_peer: OpenPeer, bullmq_kind: str):
    stories = {}
    for actor in ("minibull", bullmq_kind):
        queue = f"by-{actor}"
        readers = [await open_peer("minibull", queue), await open_peer(bullmq_kind, queue)]
        worker = readers[0] if actor == "minibull" else readers[1]
        stories[actor] = await run_story(worker, readers)

    for actor, (ids, logs) in stories.items():
        entries = {kind: [(n, f.get("jobId")) for n, f in log] for kind, log in logs.items()}
        assert entries["minibull"] == entries[bullmq_kind], f"readers disagree on {actor}'s queue"
        for kind, log in logs.items():
            where = f"{kind}'s QueueEvents on {actor}'s queue"
            for name, job_id in ids.items():
                assert job_events(log, job_id) == EXPECTED[name], f"{where}, job {name!r}"
            completed = fields_of(log, ids["ok"], "completed")["returnvalue"]
            assert completed == {"by": actor, "attemptsMade": 0}, where
            assert fields_of(log, ids["fail"], "failed")["failedReason"] == "boom 0", where
            assert str(fields_of(log, ids["fail"], "retries-exhausted")["attemptsMade"]) == "1"
            assert fields_of(log, ids["ok"], "added")["name"] == "ok", where
            progress = [f["data"] for n, f in log if n == "progress"]
            assert progress == [7, {"half": True}], where  # decoded from JSON by every reader

    # The delayed event holds the due time in ms, not the delay.
    for actor, (ids, logs) in stories.items():
        late = await (await open_peer("minibull", f"by-{actor}")).get_job(ids["late"])
        for log in logs.values():
            assert int(fields_of(log, ids["late"], "delayed")["delay"]) == late["timestamp"] + 200

    # minibull writes every field BullMQ writes, and a few more, named above.
    by_minibull = field_names(stories["minibull"][1]["minibull"])
    by_bullmq = field_names(stories[bullmq_kind][1]["minibull"])
    assert by_minibull.keys() == by_bullmq.keys()
    for event, fields in by_bullmq.items():
        assert fields <= by_minibull[event], (
            f"minibull's {event} lacks {fields - by_minibull[event]}"
        )
        extra = by_minibull[event] - fields
        assert extra == MINIBULL_EXTRA_FIELDS.get(event, set()), f"extra fields on {event}"
