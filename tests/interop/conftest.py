"""Fixtures for the interop tests: minibull next to BullMQ for Node.js and for Python.

When they run:
- on the embedded fakeredis backend (no MINIBULL_REDIS_URL) they are skipped: a Node.js
  process cannot reach an in-process server, and BullMQ's scripts need a real Redis;
- on a real Redis (MINIBULL_REDIS_URL set) they must run: a missing peer is a failure
  that says how to install it, never a skip. ``.ci/run`` installs both peers before
  its real-Redis pass.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from minibull.connection import redis_url
from tests.conftest import wait_for
from tests.interop import peers
from tests.interop.peers import Peer, comparable

#: The states both sides count (BullMQ v6 has no "paused" state).
COUNTED_STATES = ("waiting", "active", "delayed", "prioritized", "completed", "failed")

#: The BullMQ implementations every two-sided test runs against.
BULLMQ_KINDS = ("node", "python")

NEEDS_REAL_REDIS = (
    "interop tests need a real Redis server (set MINIBULL_REDIS_URL): the BullMQ peers "
    "cannot reach the embedded in-process fakeredis"
)

PROBLEMS: dict[str, Callable[[], str | None]] = {
    "minibull": lambda: None,
    "node": peers.node_bullmq_problem,
    "python": peers.python_bullmq_problem,
}


def require_real_redis() -> str:
    """The real Redis URL, or skip the test (embedded backend)."""
    url = redis_url()
    if not url:
        pytest.skip(NEEDS_REAL_REDIS)
    return url


def require_peer(kind: str) -> str:
    """Skip on the embedded backend; on a real Redis, fail if the peer is missing."""
    url = require_real_redis()
    problem = PROBLEMS[kind]()
    if problem:
        pytest.fail(f"interop peer {kind!r} is missing: {problem}", pytrace=False)
    return url


@pytest.fixture(params=BULLMQ_KINDS)
def bullmq_kind(request: pytest.FixtureRequest) -> str:
    """Each BullMQ implementation in turn: ``node`` or ``python``."""
    return request.param


OpenPeer = Callable[..., Awaitable[Peer]]


@pytest.fixture
async def open_peer(prefix: str) -> AsyncIterator[OpenPeer]:
    """Factory: ``await open_peer(kind, queue="q")`` on this test's prefix; closed at the end."""
    opened: list[Peer] = []

    async def make(kind: str, queue: str = "q") -> Peer:
        url = require_peer(kind)
        peer = await peers.open_peer(kind, url, prefix, queue)
        opened.append(peer)
        return peer

    yield make
    for peer in reversed(opened):
        await peer.close()


async def wait_until(
    predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition"
) -> None:
    """``tests.conftest.wait_for``, failing with a message that says what was awaited."""
    try:
        await wait_for(predicate, timeout)
    except AssertionError:
        raise AssertionError(f"{what}: not met within {timeout} s") from None


async def wait_finished(peer: Peer, job_ids: list[str], timeout: float = 15.0) -> None:
    """Wait until every job is completed or failed (as ``peer`` sees it)."""

    async def done() -> bool:
        for job_id in job_ids:
            if await peer.get_job_state(job_id) not in ("completed", "failed"):
                return False
        return True

    await wait_until(done, timeout, f"jobs {job_ids} finished")


async def agreed_view(readers: list[Peer], job_id: str) -> dict[str, Any]:
    """The job as every reader decodes it; they must all agree."""
    minibull_reader = next(peer for peer in readers if peer.kind == "minibull")
    stored = await minibull_reader.queue.redis.hget(minibull_reader.queue.keys.job(job_id), "opts")
    opts_keys = set(json.loads(stored or "{}"))
    views = {peer.kind: comparable(await peer.get_job(job_id), opts_keys) for peer in readers}
    first = next(iter(views.values()))
    for kind, view in views.items():
        assert view == first, f"{kind} reads job {job_id} differently:\n{views}"
    assert first is not None, f"job {job_id} does not exist"
    return first


async def agreed_counts(readers: list[Peer]) -> dict[str, int]:
    """Job counts by state, as every reader counts them; they must all agree."""
    counts = {peer.kind: await peer.get_job_counts(*COUNTED_STATES) for peer in readers}
    first = next(iter(counts.values()))
    assert all(c == first for c in counts.values()), f"job counts differ: {counts}"
    return first


async def abandon(minibull_peer: Peer, job_id: str) -> None:
    """A minibull worker takes the job (its data says hang) and is force-closed mid-run: the
    job stays active with a 100 ms lock that nobody renews, as after a crash."""
    wid = await minibull_peer.start_worker(lockDuration=100, stalledInterval=50, drainDelay=1)
    await wait_until(lambda: minibull_peer.runs_of(job_id), what=f"job {job_id} started")
    await minibull_peer.close_worker(wid, force=True)
