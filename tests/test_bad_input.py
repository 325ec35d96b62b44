"""Bad input gets a clear error naming the argument, and nothing is written to Redis."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

import minibull
from minibull.backoff import normalize_backoff
from minibull.connection import connect


async def keys_under(prefix: str) -> list[str]:
    client = connect()
    try:
        return [key async for key in client.scan_iter(match=f"{prefix}:*")]
    finally:
        await client.aclose()


BAD_ADDS = [
    # (name, data, options, exception, words the message must contain)
    ("email", {"x": object()}, {}, TypeError, "data"),
    ("email", {"x": math.nan}, {}, ValueError, "data"),
    ("email", [math.inf], {}, ValueError, "data"),
    ("", {}, {}, ValueError, "name"),
    (42, {}, {}, TypeError, "name"),
    ("email", {}, {"attempts": 0}, ValueError, "attempts"),
    ("email", {}, {"attempts": 1.5}, TypeError, "attempts"),
    ("email", {}, {"attempts": True}, TypeError, "attempts"),
    ("email", {}, {"delay": -1}, ValueError, "delay"),
    ("email", {}, {"delay": "soon"}, TypeError, "delay"),
    ("email", {}, {"delay": 9e15}, ValueError, "at most 5 years"),
    ("email", {}, {"priority": -1}, ValueError, "priority"),
    ("email", {}, {"priority": 2_097_152}, ValueError, "priority"),
    ("email", {}, {"job_id": ""}, ValueError, "job_id"),
    ("email", {}, {"job_id": "123"}, ValueError, "job_id"),
    ("email", {}, {"job_id": "a:b"}, ValueError, "job_id"),
    ("email", {}, {"job_id": 7}, TypeError, "job_id"),
    ("email", {}, {"backoff": {"type": "linear", "delay": 1}}, ValueError, "backoff type"),
    ("email", {}, {"backoff": {"type": "fixed", "delay": 1, "jitter": 1.5}}, ValueError, "jitter"),
    ("email", {}, {"backoff": {"type": "fixed", "delay": -1}}, ValueError, "backoff delay"),
    ("email", {}, {"backoff": [1, 2]}, TypeError, "backoff"),
    ("email", {}, {"remove_on_complete": -1}, ValueError, "remove_on_complete"),
    ("email", {}, {"remove_on_complete": "yes"}, TypeError, "remove_on_complete"),
    ("email", {}, {"remove_on_fail": {"size": 3}}, ValueError, "remove_on_fail"),
    ("email", {}, {"remove_on_fail": {"count": -2}}, ValueError, "remove_on_fail"),
    ("email", {}, {"lifo": "yes"}, TypeError, "lifo"),
    ("email", {}, {"timeout": 0}, ValueError, "timeout"),
    ("email", {}, {"timeout": "30"}, TypeError, "timeout"),
    ("email", {}, {"colour": "red"}, TypeError, "unknown job option"),
]


@pytest.mark.parametrize("name, data, options, error, words", BAD_ADDS)
async def test_bad_add_raises_and_writes_nothing(queue, prefix, name, data, options, error, words):
    with pytest.raises(error, match=words):
        await queue.add(name, data, **options)
    assert await keys_under(prefix) == []


async def test_one_bad_job_in_a_bulk_add_writes_none_of_them(queue, prefix):
    jobs = [{"name": "ok", "data": 1}, {"name": "bad", "data": 2, "attempts": 0}]
    with pytest.raises(ValueError, match=r"attempts"):
        await queue.add_bulk(jobs)
    assert await keys_under(prefix) == []


def test_worker_refuses_bad_arguments():
    with pytest.raises(TypeError, match="processor"):
        minibull.Worker("q", "not a function")
    with pytest.raises(ValueError, match="concurrency"):
        minibull.Worker("q", lambda job: None, concurrency=0)
    with pytest.raises(TypeError, match="concurrency"):
        minibull.Worker("q", lambda job: None, concurrency=2.5)
    with pytest.raises(ValueError, match="lock_duration"):
        minibull.Worker("q", lambda job: None, lock_duration=-1)
    with pytest.raises(TypeError, match="backoff_strategy"):
        minibull.Worker("q", lambda job: None, backoff_strategy=3)


def test_queue_and_clock_refuse_bad_arguments():
    with pytest.raises(ValueError, match="queue name"):
        minibull.Queue("")
    with pytest.raises(TypeError, match="connection"):
        minibull.Queue("q", connection=6379)
    with pytest.raises(ValueError, match="timezone-aware"):
        from datetime import datetime

        minibull.VirtualClock(datetime(2026, 1, 1))


async def test_unknown_state_names_are_refused(queue):
    with pytest.raises(ValueError, match="unknown state 'done'"):
        await queue.get_job_counts("done")
    with pytest.raises(ValueError, match="state must be 'failed' or 'completed'"):
        await queue.retry_jobs("waiting")


def test_backoff_forms_are_stored_as_bullmq_does():
    assert normalize_backoff(5) == {"type": "fixed", "delay": 5000}
    assert normalize_backoff(timedelta(minutes=1)) == {"type": "fixed", "delay": 60000}
    assert normalize_backoff({"type": "exponential", "delay": 0.5, "jitter": 0.2}) == {
        "type": "exponential",
        "delay": 500,
        "jitter": 0.2,
    }
    assert normalize_backoff("linear") == {"type": "linear"}
    assert normalize_backoff(None) is None


async def test_stored_options_use_bullmq_names(queue):
    job = await queue.add(
        "email",
        {"to": "a"},
        job_id="welcome-a",
        attempts=3,
        backoff=2,
        delay=10,
        priority=4,
        remove_on_complete={"age": 3600, "count": 10},
        remove_on_fail=5,
    )
    raw = await queue.redis.hgetall(queue.keys.job(job.id))
    import json

    assert json.loads(raw["opts"]) == {
        "attempts": 3,
        "backoff": {"type": "fixed", "delay": 2000},
        "delay": 10000,
        "priority": 4,
        "jobId": "welcome-a",
        "removeOnComplete": {"age": 3600, "count": 10},
        "removeOnFail": 5,
    }
    assert raw["delay"] == "10000" and raw["priority"] == "4"
    assert json.loads(raw["data"]) == {"to": "a"}
