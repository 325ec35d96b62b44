"""Input that could hurt a queue is refused up front, before anything is written.

Reserved job ids (B7), ':' in queue names (B8), text without a UTF-8 form, deep or huge
data, out-of-range numbers and schedules that never run: each gives a ValueError or
TypeError naming the argument, and the queue's keys are exactly as they were.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minibull
from minibull import options
from minibull.cli import main as cli_main
from minibull.keys import RESERVED_JOB_IDS
from minibull.options import MAX_COUNT, MAX_DATA_DEPTH, MAX_DELAY_MS
from minibull.queue import BULK_BATCH_BYTES, BULK_BATCH_JOBS, _batches

LONE = "\ud800"  # a lone surrogate: a Python str, but no UTF-8 form


async def snapshot(queue: minibull.Queue) -> dict[str, Any]:
    """Every key under the queue's prefix with its type and content."""
    redis = queue.redis
    found: dict[str, Any] = {}
    async for key in redis.scan_iter(match=f"{queue.prefix}:*", count=1000):
        kind = await redis.type(key)
        if kind == "hash":
            value: Any = await redis.hgetall(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            value = sorted(await redis.smembers(key))
        elif kind == "stream":
            value = await redis.xrange(key)
        else:
            value = await redis.get(key)
        found[key] = (kind, value)
    return found


@pytest.fixture
async def busy_queue(queue):
    """Queue ``q`` with a waiting job, a delayed job and queue settings in ``meta``."""
    await queue.add("first", {"n": 1})
    await queue.add("later", {"n": 2}, delay=60)
    await queue.set_global_concurrency(3)
    return queue


def nested(depth: int) -> Any:
    """A list nested ``depth`` levels deep: nested(1) == [0]."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


async def refused(queue, error, words, call) -> None:
    """``call()`` raises ``error`` matching ``words``, and no key of the queue changed."""
    before = await snapshot(queue)
    with pytest.raises(error, match=words):
        await call()
    assert await snapshot(queue) == before


# -- B7: job ids that name a queue key ------------------------------------------------------


@pytest.mark.parametrize("job_id", sorted(RESERVED_JOB_IDS))
async def test_reserved_job_ids_are_refused_and_change_nothing(busy_queue, job_id):
    # Before: "meta" came back as a duplicate of the queue's settings hash, "active" or
    # "completed" were stored and broke every worker, "wait" turned the wait list into a hash.
    await refused(busy_queue, ValueError, "job_id", lambda: busy_queue.add("x", {}, job_id=job_id))
    assert await busy_queue.get_global_limits() == {
        "concurrency": 3,
        "max": None,
        "duration": None,
    }


async def test_get_job_does_not_read_a_queue_key_as_a_job(busy_queue):
    # Before: get_job("meta") returned the queue's settings hash as Job(id='meta', name='').
    assert await busy_queue.get_job("meta") is None
    assert await busy_queue.get_job("wait") is None


async def test_a_reserved_id_late_in_a_bulk_add_writes_no_batch(busy_queue):
    jobs = [{"name": "j", "data": i} for i in range(BULK_BATCH_JOBS * 2)]
    jobs.append({"name": "j", "data": 0, "job_id": "wait"})
    await refused(busy_queue, ValueError, "job_id", lambda: busy_queue.add_bulk(jobs))


# -- B8: queue names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda name: minibull.Queue(name),
        lambda name: minibull.Worker(name, lambda job: None),
        lambda name: minibull.QueueEvents(name),
    ],
    ids=["Queue", "Worker", "QueueEvents"],
)
@pytest.mark.parametrize("name", ["emails:high", "a:", ":", "q" + LONE])
def test_queue_names_with_a_colon_or_no_utf8_form_are_refused(make, name):
    # Before: "emails:high" was accepted, and Queue("emails").obliterate() deleted its keys.
    with pytest.raises(ValueError, match="queue name"):
        make(name)


def test_the_cli_refuses_a_queue_name_with_a_colon(capsys, shared_redis_url):
    assert cli_main(["status", "emails:high", "--redis", shared_redis_url]) == 2
    assert "queue name must not contain ':'" in capsys.readouterr().err


def test_a_prefix_must_be_text():
    with pytest.raises(TypeError, match="prefix"):
        minibull.Queue("q", prefix=None)
    with pytest.raises(ValueError, match="prefix"):
        minibull.Queue("q", prefix="bull" + LONE)


async def test_obliterate_cannot_reach_a_sibling_queue(queue, prefix):
    # The B8 scenario: the sibling "q:sub" can no longer exist, so obliterate("q") is safe.
    with pytest.raises(ValueError, match="queue name"):
        minibull.Queue("q:sub", prefix=prefix)
    other = minibull.Queue("q-sub", prefix=prefix)
    await other.add("keep", {})
    await queue.add("go", {})
    await queue.obliterate()
    assert await other.get_job_counts("waiting") == {"waiting": 1}
    await other.close()


# -- text without a UTF-8 form ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name, data, opts, words",
    [
        (LONE, {}, {}, "name"),
        ("x", {}, {"job_id": "id" + LONE}, "job_id"),
        ("x", {"k": LONE}, {}, "data"),
        ("x", {LONE: 1}, {}, "data"),
        ("x", [[["deep" + LONE]]], {}, "data"),
        ("x", {}, {"deduplication": {"id": LONE}}, "deduplication id"),
        ("x", {}, {"repeat": {"pattern": "0 8 * * *", "tz": LONE}}, "repeat tz"),
        ("x", {}, {"repeat": {"pattern": LONE}}, "repeat pattern"),
        ("x", {}, {"repeat": {"every": 5}, "job_id": LONE}, "scheduler_id"),
        ("x", {"k": LONE}, {"repeat": {"every": 5}}, "data"),
    ],
)
async def test_lone_surrogates_are_refused_naming_the_argument(busy_queue, name, data, opts, words):
    # Before: Lua cjson's "invalid unicode escape code" (a ResponseError) for names and ids,
    # and data stored that made a retried job vanish (faults.md 3b).
    await refused(busy_queue, ValueError, words, lambda: busy_queue.add(name, data, **opts))


async def test_valid_unicode_round_trips(queue):
    data = {"emoji": "\U0001f600", "é": "ü", "nul": "\x00"}
    job = await queue.add("\U0001f600", data, job_id="id-\U0001f600")
    assert (await queue.get_job(job.id)).data == data


# -- deep and big data ------------------------------------------------------------------------


async def test_data_as_deep_as_max_data_depth_is_stored_and_read_back(queue, make_worker):
    deep = {"a": nested(MAX_DATA_DEPTH - 1)}
    job = await queue.add("deep", deep)
    assert (await queue.get_job(job.id)).data == deep
    make_worker(lambda job: job.data)  # the return value may be as deep as the data
    assert await job.wait_until_finished(timeout=5) == deep


@pytest.mark.parametrize("depth", [MAX_DATA_DEPTH + 1, 990, 5000])
async def test_deeper_data_is_refused_naming_the_limit(busy_queue, depth):
    # Before: up to ~980 levels were accepted (deeper than a worker can always read), and
    # beyond that Queue.add raised a bare RecursionError.
    await refused(
        busy_queue,
        ValueError,
        f"data must not nest .* {MAX_DATA_DEPTH} levels",
        lambda: busy_queue.add("deep", nested(depth)),
    )


async def test_deep_data_inside_a_wide_value_is_refused(busy_queue):
    wide = {f"k{i}": [i] for i in range(500)}  # many brackets, none deep
    await busy_queue.add("wide", wide)
    wide["k7"] = nested(MAX_DATA_DEPTH)
    await refused(busy_queue, ValueError, "data must not nest", lambda: busy_queue.add("w", wide))


def test_encode_json_applies_to_return_values_and_progress_too():
    with pytest.raises(ValueError, match="progress must not nest"):
        options.encode_json(nested(MAX_DATA_DEPTH + 1), "progress")
    with pytest.raises(ValueError, match="progress must be valid Unicode"):
        options.encode_json([LONE], "progress")
    assert options.encode_json(["\U0001f600"], "progress") == '["\\ud83d\\ude00"]'


async def test_data_over_the_default_size_limit_is_refused(busy_queue, monkeypatch):
    monkeypatch.setattr(options, "DEFAULT_SIZE_LIMIT", 1000)
    await refused(
        busy_queue,
        ValueError,
        "over the default limit of 1000 bytes.*size_limit",
        lambda: busy_queue.add("big", {"blob": "x" * 1000}),
    )
    job = await busy_queue.add("big", {"blob": "x" * 1000}, size_limit=2000)
    assert job.opts["sizeLimit"] == 2000
    await refused(
        busy_queue,
        ValueError,
        "size_limit must be between 1 and 536870912",
        lambda: busy_queue.add("big", {}, size_limit=2**30),
    )


def test_the_default_size_limit_is_16_mib():
    assert options.DEFAULT_SIZE_LIMIT == 16 * 1024 * 1024


# -- numbers out of range ---------------------------------------------------------------------

NOW_S = time.time()


@pytest.mark.parametrize(
    "opts, words",
    [
        ({"backoff": {"type": "exponential", "delay": 1e20}}, "backoff delay must be at most 5"),
        ({"backoff": 1e12}, "backoff must be at most 5 years"),
        ({"remove_on_complete": 2**70}, "remove_on_complete must be between 0 and"),
        ({"remove_on_fail": {"count": 2**70}}, "remove_on_fail count must be between 0 and"),
        ({"remove_on_complete": {"age": 1e300}}, "remove_on_complete age must be at most"),
        ({"attempts": 2**70}, "attempts must be between 1 and"),
        ({"repeat": {"every": 1e20}}, "repeat every must be at most 5 years"),
        ({"repeat": {"every": 60, "start_date": 1e30}}, "repeat start_date must be epoch"),
        ({"repeat": {"every": 60, "end_date": math.nan}}, "repeat end_date must be epoch"),
        ({"repeat": {"every": 60, "limit": 2**70}}, "repeat limit must be between 1 and"),
        ({"repeat": {"pattern": "0 0 31 2 *"}}, "repeat pattern '0 0 31 2 \\*' never fires"),
        ({"repeat": {"pattern": "0 0 30 2 *"}}, "never fires"),
    ],
)
async def test_out_of_range_options_are_refused(busy_queue, opts, words):
    # Before: accepted (the backoff and dates, then due in 10^15 days; a count that made
    # moveToFinished fail half-way), or CroniterBadDateError for a cron that never fires.
    await refused(busy_queue, ValueError, words, lambda: busy_queue.add("x", {}, **opts))


async def test_a_first_run_more_than_5_years_ahead_is_refused(busy_queue, clock):
    start = clock.now() / 1000 + 6 * 365 * 24 * 3600
    await refused(
        busy_queue,
        ValueError,
        "repeat start_date must be at most 5 years ahead",
        lambda: busy_queue.add("x", {}, repeat={"every": 60, "start_date": start}),
    )


async def test_the_largest_count_to_keep_works_to_the_end(queue, make_worker):
    # Before, 2**70 was accepted and moveToFinished failed after moving the job.
    events = []
    worker = make_worker(lambda job: "ok")
    worker.on("completed", lambda job, value: events.append(job.id))
    job = await queue.add("x", {}, remove_on_complete={"count": MAX_COUNT, "age": 10**9})
    assert await job.wait_until_finished(timeout=5) == "ok"
    other = await queue.add("y", {}, remove_on_fail=MAX_COUNT)
    assert await other.wait_until_finished(timeout=5) == "ok"
    assert events == [job.id, other.id]


# -- schedules that have ended --------------------------------------------------------------


async def test_adding_a_schedule_that_has_ended_is_a_clear_error(busy_queue, clock):
    # Before: a bare AssertionError (and None under python -O).
    ended = {"every": 60, "end_date": clock.now() / 1000 - 60}
    await refused(
        busy_queue,
        ValueError,
        "repeat: the schedule has already ended",
        lambda: busy_queue.add("r", {}, repeat=ended),
    )
    before = await snapshot(busy_queue)
    assert await busy_queue.upsert_job_scheduler("r", ended) is None  # as BullMQ: nothing
    assert await snapshot(busy_queue) == before


# -- add_bulk in batches ----------------------------------------------------------------------


async def test_add_bulk_sends_batches_of_bulk_batch_jobs(queue, monkeypatch):
    calls = []
    original = queue.scripts.add_jobs

    async def counting(now, jobs):
        calls.append(len(jobs))
        return await original(now, jobs)

    monkeypatch.setattr(queue.scripts, "add_jobs", counting)
    count = BULK_BATCH_JOBS * 2 + 500
    jobs = await queue.add_bulk([{"name": "j", "data": i} for i in range(count)])
    assert calls == [BULK_BATCH_JOBS, BULK_BATCH_JOBS, 500]
    assert [job.id for job in jobs] == [str(i) for i in range(1, count + 1)]
    assert [job.data for job in jobs] == list(range(count))
    assert await queue.get_job_counts("waiting") == {"waiting": count}


async def test_one_bad_job_late_in_a_bulk_writes_no_batch(busy_queue):
    jobs = [{"name": "j", "data": i} for i in range(BULK_BATCH_JOBS * 2)]
    jobs.append({"name": "j", "data": nested(MAX_DATA_DEPTH + 1)})
    await refused(busy_queue, ValueError, r"data", lambda: busy_queue.add_bulk(jobs))


def test_batches_are_bounded_by_bytes_as_well():
    def spec(size: int) -> dict[str, Any]:
        return {"data": "x" * size, "opts": "{}", "name": "j", "id": ""}

    third = BULK_BATCH_BYTES // 3
    sizes = [len(batch) for batch in _batches([spec(third)] * 7)]
    assert sizes == [2, 2, 2, 1]
    # A job bigger than a batch goes alone; small ones are counted by BULK_BATCH_JOBS.
    sizes = [len(b) for b in _batches([spec(BULK_BATCH_BYTES * 2), spec(1), spec(1)])]
    assert sizes == [1, 2]
    assert [len(b) for b in _batches([spec(1)] * (BULK_BATCH_JOBS + 1))] == [BULK_BATCH_JOBS, 1]


async def test_duplicates_in_a_bulk_are_read_back_in_one_round_trip(queue, monkeypatch):
    originals = await queue.add_bulk(
        [{"name": "j", "data": i, "job_id": f"job-{i}"} for i in range(5)]
    )

    async def no_single_reads(job_id):
        raise AssertionError("one get_job per duplicate")

    monkeypatch.setattr(queue, "get_job", no_single_reads)
    again = await queue.add_bulk(
        [{"name": "j", "data": -1, "job_id": f"job-{i}"} for i in range(5)]
    )
    assert [job.data for job in again] == [job.data for job in originals] == list(range(5))
    assert [job.timestamp for job in again] == [job.timestamp for job in originals]


async def test_a_duplicate_removed_before_it_is_read_back_returns_the_arguments(queue, monkeypatch):
    # The documented fallback (as BullMQ's add): the existing id, the caller's arguments.
    async def duplicate_of_a_removed_job(now, jobs):
        return [("gone", False) for _ in jobs]

    monkeypatch.setattr(queue.scripts, "add_jobs", duplicate_of_a_removed_job)
    job = await queue.add("x", {"v": 2}, job_id="gone")
    assert (job.id, job.name, job.data) == ("gone", "x", {"v": 2})


# -- property: whatever is refused leaves Redis as it was ------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.just(LONE),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)
texts = st.sampled_from(["ok", "wait", "meta", "a:b", LONE, "01", ""]) | st.text(max_size=6)
numbers = st.integers(min_value=-5, max_value=2**70) | st.floats(allow_nan=True) | st.none()
add_options = st.fixed_dictionaries(
    {},
    optional={
        "job_id": texts,
        "attempts": numbers,
        "delay": numbers,
        "priority": numbers,
        "backoff": numbers | st.fixed_dictionaries({"type": st.just("fixed"), "delay": numbers}),
        "remove_on_complete": numbers | st.booleans(),
        "deduplication": st.fixed_dictionaries({"id": texts}),
    },
)


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,  # the same examples in every CI run
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=texts,
    data=json_values | st.integers(1, 200).map(nested),
    opts=add_options,
)
async def test_an_add_either_stores_what_was_asked_or_changes_nothing(busy_queue, name, data, opts):
    before = await snapshot(busy_queue)
    try:
        job = await busy_queue.add(name, data, **opts)
    except (ValueError, TypeError) as exc:
        assert await snapshot(busy_queue) == before, exc
        assert any(argument in str(exc) for argument in ("name", "data", *opts)), exc
        return
    stored = await busy_queue.get_job(job.id)
    assert stored is not None
    # What comes back is what JSON makes of the data (tuples become lists, keys strings).
    assert json.dumps(stored.data, sort_keys=True) == json.dumps(
        json.loads(json.dumps(data)), sort_keys=True
    )
    await busy_queue.obliterate(force=True)
    await busy_queue.add("first", {"n": 1})
    await busy_queue.add("later", {"n": 2}, delay=60)
    await busy_queue.set_global_concurrency(3)


def test_the_delay_cap_is_five_years():
    assert MAX_DELAY_MS == 5 * 365 * 24 * 3600 * 1000
