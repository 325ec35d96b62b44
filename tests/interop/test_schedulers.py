"""Job schedulers (repeatable jobs) cross over: created by one side, advanced by the other.

A scheduler is the id in the ``repeat`` zset, scored by its next run (ms), the hash
``repeat:<id>`` (name, data, opts, every or pattern, tz, limit, ..., ``ic`` = jobs made),
and one job per run, ``repeat:<id>:<millis>`` with ``rjk`` = the scheduler id. The
worker that *takes* a run's job adds the next one. Each test runs in real time (every
half second, or the cron pattern ``* * * * * *``) and checks what the other side's worker
did: which runs it took (their ids), that each ran once, the ``ic`` count, the zset
score and the pending job of the next run.

Found (see also docs/bullmq-map.md, whose "Job schedulers" item these tests prove):

- BullMQ -> minibull: minibull's worker advances a BullMQ scheduler run by run.
- minibull -> BullMQ: BullMQ's worker advances a scheduler from the *taken job's*
  ``opts.repeat`` (Node's ``upsertJobScheduler(job.repeatJobKey, job.opts.repeat, ...)``),
  which minibull's run jobs carry, as BullMQ's do (once they did not, and the scheduler
  stopped after its first run).
- Six-field cron patterns: all three read the first field as seconds (cron-parser, and
  croniter with ``second_at_beginning=True``), so ``*/2 * * * * *`` is every 2 s.
- ``offset``: both store the phase of an ``every`` schedule's slots in the hash, which
  BullMQ's worker aligns to when a late run makes it catch up.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.interop.conftest import OpenPeer, wait_until
from tests.interop.peers import MinibullPeer, Peer

SIDES = ["minibull", "bullmq"]
SCHEDULES: dict[str, dict[str, Any]] = {
    "every": {"every": 500},
    "cron": {"pattern": "* * * * * *"},  # every second, the same in both readings
}
WORKER = {"drainDelay": 1, "lockDuration": 5000, "stalledInterval": 5000}
RUNS = 3
SID = "tick"


async def both(open_peer: OpenPeer, bullmq_kind: str) -> tuple[MinibullPeer, dict[str, Peer]]:
    minibull_peer = await open_peer("minibull")
    assert isinstance(minibull_peer, MinibullPeer)
    return minibull_peer, {"minibull": minibull_peer, "bullmq": await open_peer(bullmq_kind)}


def millis(job_id: str) -> int:
    """The run time in a run's job id ``repeat:<scheduler id>:<millis>``."""
    assert job_id.startswith(f"repeat:{SID}:"), job_id
    return int(job_id.rsplit(":", 1)[1])


async def raw_hash(peer: MinibullPeer, rest: str) -> dict[str, str]:
    return await peer.queue.redis.hgetall(peer.queue.keys.key(rest))


async def scheduler_state(peer: MinibullPeer) -> tuple[int | None, dict[str, str], list[str]]:
    """(zset score, scheduler hash, ids of every run's job) as stored."""
    redis, keys = peer.queue.redis, peer.queue.keys
    score = await redis.zscore(keys.repeat, SID)
    jobs = [
        key.removeprefix(keys.key(""))
        async for key in redis.scan_iter(match=keys.key(f"repeat:{SID}:*"))
    ]
    jobs = sorted(job for job in jobs if job.count(":") == 2)  # not :lock, :logs
    return (None if score is None else int(score)), await raw_hash(peer, f"repeat:{SID}"), jobs


async def wait_runs(worker: Peer, minibull_peer: MinibullPeer, count: int, timeout: float) -> None:
    async def enough() -> bool:
        return len(worker.runs) >= count

    try:
        await wait_until(enough, timeout, f"{count} runs by {worker.kind}")
    except AssertionError as error:
        score, stored, jobs = await scheduler_state(minibull_peer)
        raise AssertionError(
            f"{error}: runs {worker.runs}, worker errors {worker.errors[:2]}, "
            f"zset score {score}, hash {stored}, run jobs {jobs}"
        ) from None


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("creator", SIDES, ids=lambda side: f"{side}-creates")
async def test_the_other_sides_worker_advances_a_scheduler(
    creator: str, schedule: str, open_peer: OpenPeer, bullmq_kind: str
):
    """Runs 1..n are taken by the other side's worker; each makes the next, once."""
    minibull_peer, sides = await both(open_peer, bullmq_kind)
    worker = sides["bullmq" if creator == "minibull" else "minibull"]
    first = await sides[creator].upsert_job_scheduler(
        SID, SCHEDULES[schedule], "tick", {"n": 1}, {"attempts": 2}
    )
    assert first is not None
    start, step = millis(first), SCHEDULES[schedule].get("every", 1000)
    wid = await worker.start_worker(**WORKER)
    await wait_runs(worker, minibull_peer, RUNS, timeout=RUNS * step / 1000 + 1.5)
    await worker.close_worker(wid)
    assert worker.errors == []

    ran = [job_id for job_id, _ in worker.runs]
    times = [millis(job_id) for job_id in ran]
    assert len(set(ran)) == len(ran), f"a run ran twice: {ran}"
    assert times[0] == start and times == sorted(times)
    assert all((t - start) % step == 0 for t in times), times  # on the schedule's slots
    if worker.kind != "python":  # the Python port's worker may start a second late
        assert times == [start + step * k for k in range(len(times))], times

    score, stored, jobs = await scheduler_state(minibull_peer)
    assert score is not None and score > times[-1] and (score - start) % step == 0
    pending = f"repeat:{SID}:{score}"
    assert jobs == sorted([*ran, pending]), "no other run job, and none twice"
    assert int(stored["ic"]) == len(ran) + 1  # every run's job counts, the pending one too
    assert stored["name"] == "tick" and json.loads(stored["data"]) == {"n": 1}

    for job_id in ran:
        view = await minibull_peer.get_job(job_id)
        assert view is not None and view["state"] == "completed"
        assert view["returnvalue"] == {"by": worker.kind, "attemptsMade": 0}
        assert view["opts"]["attempts"] == 2  # the template's options carry over
        assert (await raw_hash(minibull_peer, job_id))["rjk"] == SID
    assert await minibull_peer.get_job_state(pending) in ("delayed", "waiting")
    assert (await raw_hash(minibull_peer, pending))["rjk"] == SID

    views = [await peer.get_job_scheduler(SID) for peer in sides.values()]
    assert views[0] == views[1], f"the sides read the scheduler differently: {views}"
    assert views[0] is not None
    assert (views[0]["next"], views[0]["iterationCount"]) == (score, len(ran) + 1)


@pytest.mark.parametrize("creator", SIDES, ids=lambda side: f"{side}-creates")
async def test_run_jobs_carry_the_repeat_options_bullmq_workers_read(
    creator: str, open_peer: OpenPeer, bullmq_kind: str
):
    """The root of the minibull -> BullMQ failure above, without waiting: BullMQ's worker
    reads ``opts.repeat`` (every or pattern, tz, limit, count) and ``opts.prevMillis`` of
    the run's job it takes; BullMQ writes them on every run's job."""
    minibull_peer, sides = await both(open_peer, bullmq_kind)
    first = await sides[creator].upsert_job_scheduler(
        SID, {"every": 60_000, "limit": 5}, "tick", {}, {"attempts": 2}
    )
    assert first is not None
    opts = json.loads((await raw_hash(minibull_peer, first))["opts"])
    assert opts.get("attempts") == 2
    assert opts.get("repeatJobKey") == SID, f"{creator}'s first run: opts {opts}"
    assert opts.get("repeat", {}).get("every") == 60_000, f"{creator}'s first run: opts {opts}"
    assert opts["repeat"].get("limit") == 5 and opts["repeat"].get("count") == 1


@pytest.mark.parametrize("creator", SIDES, ids=lambda side: f"{side}-creates")
async def test_scheduler_hash_fields(creator: str, open_peer: OpenPeer, bullmq_kind: str):
    """Both write the same hash, ``offset`` included: the phase of an ``every`` schedule's
    slots (first run mod every). minibull's worker needs none (previous + every keeps
    the phase), but BullMQ's, catching up after a late run, aligns the next slot to
    ``offset`` (0 if missing): without it, a minibull scheduler would move off its
    slots. BullMQ leaves out empty data; minibull keeps it, and its opts defaults."""
    minibull_peer, sides = await both(open_peer, bullmq_kind)
    first = await sides[creator].upsert_job_scheduler(
        SID, {"every": 60_000, "limit": 5}, "tick", {}, {"attempts": 2}
    )
    assert first is not None
    stored = await raw_hash(minibull_peer, f"repeat:{SID}")
    score = await minibull_peer.queue.redis.zscore(minibull_peer.queue.keys.repeat, SID)
    assert first == f"repeat:{SID}:{int(score)}"  # the first run is now, in both
    common = {"name": "tick", "every": "60000", "limit": "5", "ic": "1"}
    assert {key: stored.get(key) for key in common} == common
    assert json.loads(stored["opts"])["attempts"] == 2
    assert int(stored.get("offset", -1)) == int(score) % 60_000, f"{creator}: {stored}"
    extra = {"data"} if creator == "minibull" else set()
    assert set(stored) == {*common, "opts", "offset", *extra}
    views = [await peer.get_job_scheduler(SID) for peer in sides.values()]
    assert views[0] == views[1], f"the sides read the scheduler differently: {views}"


async def test_a_mixed_fleet_runs_each_run_once(open_peer: OpenPeer, bullmq_kind: str):
    """A BullMQ scheduler with workers on both sides: runs alternate between them as they
    come, each run once, and the chain goes on whichever side made the previous job."""
    minibull_peer, sides = await both(open_peer, bullmq_kind)
    first = await sides["bullmq"].upsert_job_scheduler(SID, {"every": 250}, "tick", {}, {})
    assert first is not None
    for peer in sides.values():
        await peer.start_worker(**WORKER)

    def total() -> int:
        return sum(len(peer.runs) for peer in sides.values())

    try:
        await wait_until(lambda: total() >= 6, timeout=3.0, what="6 runs in all")
    except AssertionError as error:
        score, stored, jobs = await scheduler_state(minibull_peer)
        runs = {peer.kind: peer.runs for peer in sides.values()}
        errors = {peer.kind: peer.errors[:2] for peer in sides.values()}
        raise AssertionError(
            f"{error}: runs {runs}, errors {errors}, zset {score}, hash {stored}, jobs {jobs}"
        ) from None
    assert {peer.kind: peer.errors for peer in sides.values()} == {
        peer.kind: [] for peer in sides.values()
    }
    ran = [job_id for peer in sides.values() for job_id, _ in peer.runs]
    assert len(set(ran)) == len(ran), f"a run ran twice: {ran}"
    assert all((millis(job_id) - millis(first)) % 250 == 0 for job_id in ran)


async def test_six_field_pattern(open_peer: OpenPeer, bullmq_kind: str):
    """``*/2 * * * * *``: seconds first, as cron-parser reads it: every 2 s. A minibull
    worker taking BullMQ's first run must plan the next one 2 s later (minibull's
    croniter reads the sixth field as seconds: every second of even minutes, a bug;
    by chance right only for a first run at :58 of an odd minute)."""
    minibull_peer, sides = await both(open_peer, bullmq_kind)
    first = await sides["bullmq"].upsert_job_scheduler(
        SID, {"pattern": "*/2 * * * * *"}, "tick", {}, {}
    )
    assert first is not None
    start = millis(first)
    assert start % 2000 == 0  # BullMQ: an even second
    await minibull_peer.start_worker(**WORKER)
    await wait_runs(minibull_peer, minibull_peer, 1, timeout=4.0)

    async def advanced() -> bool:
        return (await scheduler_state(minibull_peer))[0] != start

    await wait_until(advanced, 2.0, "the scheduler advanced")
    score, _, _ = await scheduler_state(minibull_peer)
    assert score == start + 2000, f"next run {score - start} ms after {start}, not 2000"
