"""BullMQ's hard-won guards in the Lua scripts: cut-offs, batches, missing hashes, reserved ids.

Each test drives the scripts (through ``Queue``/``Worker`` or ``queue.scripts`` directly) into
the situation a guard is for, and checks that the queue's structures stay consistent.
"""

from __future__ import annotations

import pytest

import minibull
from minibull.keys import RESERVED_JOB_IDS
from minibull.options import build_job


async def keys_under(queue: minibull.Queue) -> list[str]:
    """Every Redis key of the queue's prefix."""
    pattern = queue.keys.prefix + ":*"
    return sorted([key async for key in queue.redis.scan_iter(match=pattern, count=1000)])


# -- B7: a job id that names a queue key -------------------------------------------------


@pytest.mark.parametrize("job_id", ["wait", "meta", "events", "marker"])
async def test_add_job_refuses_a_reserved_id_and_writes_nothing(queue, job_id):
    # Straight to the script (the Python check in options comes first in Queue.add): a bulk
    # whose second job has a reserved id is refused as a whole.
    fine, reserved = build_job("fine", {}), build_job("bad", {})
    reserved["id"] = job_id
    with pytest.raises(ValueError, match=f"job_id '{job_id}' is reserved"):
        await queue.scripts.add_jobs(queue.clock.now(), [fine, reserved])
    assert await keys_under(queue) == []
    job = await queue.add("after", {})
    assert await queue.get_job_state(job.id) == "waiting"


def test_the_reserved_ids_are_the_queue_keys():
    assert {"wait", "active", "meta", "events", "marker", "id", "repeat"} <= RESERVED_JOB_IDS
    assert not any(":" in name for name in RESERVED_JOB_IDS)
