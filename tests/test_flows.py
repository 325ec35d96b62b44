"""Flows (issue 15): FlowProducer, parents in waiting-children, children's results and failure
policies, checked against a model of BullMQ's rules and with real workers."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minibull
from minibull.errors import ChildrenError
from minibull.flow import (
    MAX_FLOW_CHILDREN,
    MAX_FLOW_DEPTH,
    check_one_slot,
    flow_nodes,
)
from minibull.scripts import Take
from tests.conftest import START, delete_prefix, wait_for


def leaf(name: str, queue: str = "emails", **extra: Any) -> dict[str, Any]:
    return {"name": name, "queue_name": queue, "data": extra.pop("data", {}), **extra}


async def all_keys(redis: Any, prefix: str) -> list[str]:
    return sorted([key async for key in redis.scan_iter(match=f"{prefix}:*")])


@pytest.fixture
async def flows(prefix: str, clock: minibull.VirtualClock):
    producer = minibull.FlowProducer(prefix=prefix, clock=clock)
    yield producer
    await producer.close()


# -- the layout: one call writes the tree as BullMQ's ---------------------------------


async def test_a_flow_is_written_with_bullmqs_keys_and_fields(flows, prefix):
    tree = {
        "name": "report",
        "queue_name": "reports",
        "data": {"issue": 7},
        "children": [leaf("send", data={"to": "a"}), leaf("send", data={"to": "b"})],
    }
    node = await flows.add(tree)
    parent, children = node["job"], [child["job"] for child in node["children"]]
    assert [c["children"] for c in node["children"]] == [[], []]
    redis = flows.redis
    assert await parent.get_state() == "waiting-children"
    assert await redis.zrange(f"{prefix}:reports:waiting-children", 0, -1) == [parent.id]
    child_keys = {f"{prefix}:emails:{child.id}" for child in children}
    assert await redis.smembers(f"{prefix}:reports:{parent.id}:dependencies") == child_keys
    assert await redis.lrange(f"{prefix}:emails:wait", 0, -1) == [c.id for c in children][::-1]
    for child in children:
        raw = await redis.hgetall(f"{prefix}:emails:{child.id}")
        assert raw["parentKey"] == f"{prefix}:reports:{parent.id}"
        assert json.loads(raw["parent"]) == {"id": parent.id, "queueKey": f"{prefix}:reports"}
        assert child.parent_key == raw["parentKey"]
    events = [f["event"] for _, f in await redis.xrange(f"{prefix}:reports:events")]
    assert events == ["added", "waiting-children"]
    deps = await parent.get_dependencies()
    assert deps == {"processed": {}, "unprocessed": sorted(child_keys), "failed": [], "ignored": {}}


async def test_a_bad_node_anywhere_writes_nothing(flows, prefix):
    await flows.queue("emails").add("taken", {}, job_id="dup")
    before = await all_keys(flows.redis, prefix)
    tree = {"name": "p", "queue_name": "reports", "children": [leaf("a"), leaf("b", opts={})]}
    tree["children"][1]["opts"] = {"job_id": "dup"}
    with pytest.raises(ValueError, match=r"tree.children\[1\].*'dup'.*already exists"):
        await flows.add(tree)
    tree["children"][1]["opts"] = {"job_id": "wait"}  # reserved: names a queue key
    with pytest.raises(ValueError, match="reserved"):
        await flows.add(tree)
    with pytest.raises(ValueError, match="trees.1. has no 'queue_name'"):
        await flows.add_bulk([leaf("fine"), {"name": "x"}])
    assert await all_keys(flows.redis, prefix) == before


# -- bad input, checked before anything is written (pure) ------------------------------


def deep(levels: int) -> dict[str, Any]:
    tree = leaf("bottom")
    for level in range(levels):
        tree = {"name": f"level{level}", "queue_name": "q", "children": [tree]}
    return tree


@pytest.mark.parametrize(
    ("tree", "error", "message"),
    [
        ({"queue_name": "q"}, ValueError, r"node tree has no 'name'"),
        (
            {"name": "p", "queue_name": "q", "children": [{"name": "c"}]},
            ValueError,
            r"node tree.children\[0\] has no 'queue_name'",
        ),
        (
            {"name": "p", "queue_name": "q", "children": [leaf("c", prefix="other")]},
            ValueError,
            r"tree.children\[0\] \('c' on queue 'emails'\) has prefix 'other'",
        ),
        (deep(MAX_FLOW_DEPTH + 1), ValueError, r"deeper than MAX_FLOW_DEPTH"),
        (
            {"name": "p", "queue_name": "q", "children": [leaf("c")] * (MAX_FLOW_CHILDREN + 1)},
            ValueError,
            r"node tree \('p' on queue 'q'\) has more than MAX_FLOW_CHILDREN",
        ),
        ({"name": "p", "queue_name": "a:b"}, ValueError, r"node tree .* must not contain ':'"),
        (leaf("c", opts={"attempts": 0}), ValueError, r"node tree \('c'.*attempts"),
        (leaf("c", opts={"deduplication": {"id": "x"}}), ValueError, "cannot be used in a flow"),
        (leaf("c", opts={"colour": 1}), TypeError, r"node tree .*unknown job option"),
        (
            {
                "name": "p",
                "queue_name": "q",
                "children": [
                    leaf(
                        "c",
                        opts={"fail_parent_on_failure": True, "ignore_dependency_on_failure": True},
                    )
                ],
            },
            ValueError,
            "cannot be used together",
        ),
        ({"name": "p", "queue_name": "q", "kids": []}, TypeError, r"unknown key\(s\) \['kids'\]"),
        ("report", TypeError, "node tree must be a dict"),
    ],
)
async def test_bad_trees_are_refused_naming_the_node(flows, prefix, tree, error, message):
    with pytest.raises(error, match=message):
        await flows.add(tree)
    assert await all_keys(flows.redis, prefix) == []


async def test_a_cycle_is_refused(flows, prefix):
    tree: dict[str, Any] = {"name": "p", "queue_name": "q", "children": []}
    tree["children"].append({"name": "c", "queue_name": "q", "children": [tree]})
    with pytest.raises(ValueError, match=r"tree.children\[0\].children\[0\] is its own ancestor"):
        await flows.add(tree)
    assert await all_keys(flows.redis, prefix) == []


async def test_a_flow_of_more_than_max_flow_jobs_is_refused(flows, prefix, monkeypatch):
    monkeypatch.setattr(minibull.flow, "MAX_FLOW_JOBS", 3)
    with pytest.raises(ValueError, match=r"more than MAX_FLOW_JOBS \(3\) jobs"):
        await flows.add_bulk(
            [leaf("a"), leaf("b"), {"name": "p", "queue_name": "q", "children": [leaf("c")]}]
        )
    assert await all_keys(flows.redis, prefix) == []


def test_the_same_job_id_twice_on_one_queue_is_refused():
    tree = {
        "name": "p",
        "queue_name": "q",
        "children": [
            leaf("a", opts={"job_id": "x"}),
            leaf("b", queue="other", opts={"job_id": "x"}),
            leaf("c", opts={"job_id": "x"}),
        ],
    }
    with pytest.raises(ValueError, match=r"tree.children\[2\].*as node tree.children\[0\]"):
        flow_nodes([tree], "bull", ["tree"])


def test_flow_nodes_lists_parents_first_with_their_index():
    tree = {
        "name": "p",
        "queue_name": "q",
        "children": [{"name": "c", "queue_name": "r", "children": [leaf("g")]}, leaf("d")],
    }
    nodes = flow_nodes([tree], "bull", ["tree"])
    assert [(n["name"], n["parent"], n["children"], n["queueKey"]) for n in nodes] == [
        ("p", 0, 2, "bull:q"),
        ("c", 1, 1, "bull:r"),
        ("g", 2, 0, "bull:emails"),
        ("d", 1, 0, "bull:emails"),
    ]


def test_queues_in_different_cluster_slots_are_refused_naming_the_node():
    same = flow_nodes(
        [{"name": "p", "queue_name": "a", "children": [leaf("c", queue="b")]}], "{tag}", ["tree"]
    )
    check_one_slot(same)  # one hash tag: one slot
    split = flow_nodes(
        [{"name": "p", "queue_name": "a", "children": [leaf("c", queue="b")]}], "bull", ["tree"]
    )
    with pytest.raises(ValueError, match=r"node tree.children\[0\].*another Redis Cluster slot"):
        check_one_slot(split)


# -- the rules, against a model (hypothesis) -----------------------------------------------

POLICY_OPTIONS = {
    None: {},
    "fpof": {"fail_parent_on_failure": True},
    "idof": {"ignore_dependency_on_failure": True},
    "rdof": {"remove_dependency_on_failure": True},
}


def trees(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """A job with up to 3 children, nested at most ``depth`` levels below it."""
    children = st.just([]) if depth == 0 else st.lists(trees(depth - 1), max_size=3)
    return st.fixed_dictionaries(
        {
            "ok": st.booleans(),
            "policy": st.sampled_from(list(POLICY_OPTIONS)),
            "queue": st.sampled_from(["a", "b"]),
            "children": children,
        }
    )


TREES = trees(3)


def predict(node: dict[str, Any], path: str, states: dict[str, str]) -> str:
    """BullMQ's rules: a parent runs once no child is pending; a child that failed for good
    stays pending (no policy), fails the parent (fpof), or is let go (idof, rdof)."""
    doomed = blocked = False
    for index, child in enumerate(node["children"]):
        state = predict(child, f"{path}.{index}", states)
        doomed |= state == "failed" and child["policy"] == "fpof"
        blocked |= state == "waiting-children" or (state == "failed" and not child["policy"])
    if doomed:
        state = "failed"
    elif blocked:
        state = "waiting-children"
    else:
        state = "completed" if node["ok"] else "failed"
    states[path] = state
    return state


def as_flow(node: dict[str, Any], path: str) -> dict[str, Any]:
    return {
        "name": path,
        "queue_name": node["queue"],
        "data": {"ok": node["ok"]},
        "opts": POLICY_OPTIONS[node["policy"]],
        "children": [as_flow(c, f"{path}.{i}") for i, c in enumerate(node["children"])],
    }


async def run_flow_by_hand(tree: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Add the flow, then take and finish jobs through the scripts (as a worker does: a
    deferred failure fails, a refused completion fails) until no queue has a ready job."""
    prefix, clock = f"test-{uuid.uuid4().hex[:10]}", minibull.VirtualClock(START)
    producer = minibull.FlowProducer(prefix=prefix, clock=clock)
    try:
        root = await producer.add(as_flow(tree, "r"))
        tokens = iter(range(1, 10_000))
        while await take_and_finish(producer, clock, tokens):
            pass
        return await read_outcome(root)
    finally:
        await producer.close()
        await delete_prefix(prefix)


async def take_and_finish(producer: minibull.FlowProducer, clock: Any, tokens: Any) -> bool:
    took = False
    for name in ("a", "b"):
        scripts, now, token = producer.queue(name).scripts, clock.now(), f"t{next(tokens)}"
        taken = await scripts.move_to_active(now, Take(token, 60_000))
        if taken.job_id is None:
            continue
        took = True
        job = minibull.Job.from_hash(taken.job_id, taken.fields or {})
        common = {"now": now, "token": token, "keep": {"count": -1}, "attempts": 1}
        if not job.deferred_failure and job.data["ok"]:
            try:
                value = json.dumps(job.name)
                await scripts.move_to_finished(job.id, failed=False, value=value, **common)
                continue
            except ChildrenError:
                pass  # a parent with a child that failed it: the worker fails it
        await scripts.move_to_finished(job.id, failed=True, value="no", **common)
    return took


async def read_outcome(root: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    states: dict[str, str] = {}
    processed: dict[str, Any] = {}

    async def visit(node: dict[str, Any]) -> None:
        job = node["job"]
        states[job.name] = await job.get_state()
        if node["children"]:
            processed[job.name] = sorted((await job.get_children_values()).values())
        for child in node["children"]:
            await visit(child)

    await visit(root)
    return states, processed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=TREES)
def test_random_flows_end_as_the_model_says(tree):
    predicted: dict[str, str] = {}
    predict(tree, "r", predicted)
    loop = asyncio.new_event_loop()
    try:
        states, processed = loop.run_until_complete(run_flow_by_hand(tree))
    finally:
        loop.close()
    assert states == predicted
    for path, values in processed.items():  # each completed child's value, in its parent
        node = tree
        for step in path.split(".")[1:]:
            node = node["children"][int(step)]
        done = [
            f"{path}.{i}"
            for i, _ in enumerate(node["children"])
            if predicted[f"{path}.{i}"] == "completed"
        ]
        assert values == sorted(done)


# -- with real workers ------------------------------------------------------------------


async def test_a_newsletter_fans_out_and_the_report_gets_every_result(flows, make_worker):
    async def send(job):
        return {"sent_to": job.data["to"]}

    async def report(job):
        return sorted(v["sent_to"] for v in (await job.get_children_values()).values())

    make_worker(send, name="emails", concurrency=4)
    make_worker(report, name="reports")
    node = await flows.add(
        {
            "name": "report",
            "queue_name": "reports",
            "children": [leaf("send", data={"to": f"user{i}"}) for i in range(20)],
        }
    )
    result = await node["job"].wait_until_finished(timeout=20)
    assert result == sorted(f"user{i}" for i in range(20))
    parent = await node["job"].refresh()
    deps = await parent.get_dependencies()
    assert deps["unprocessed"] == [] and len(deps["processed"]) == 20


async def test_a_pipeline_runs_its_steps_in_order(flows, make_worker):
    order: list[str] = []

    async def step(job):
        order.append(job.name)
        before = list((await job.get_children_values()).values())
        return before[0] + [job.name] if before else [job.name]

    make_worker(step, name="images")
    pipeline = {
        "name": "upload",
        "queue_name": "images",
        "children": [
            {"name": "watermark", "queue_name": "images", "children": [leaf("resize", "images")]}
        ],
    }
    node = await flows.add(pipeline)
    assert await node["job"].wait_until_finished(timeout=10) == ["resize", "watermark", "upload"]
    assert order == ["resize", "watermark", "upload"]


async def test_a_child_retried_after_a_backoff_still_reports_to_its_parent(
    flows, make_worker, clock
):
    async def flaky(job):
        if job.attempts_made == 0:
            raise RuntimeError("smtp down")
        return "ok"

    make_worker(flaky, name="emails")
    make_worker(lambda job: "done", name="reports")
    node = await flows.add(
        {
            "name": "report",
            "queue_name": "reports",
            "children": [leaf("send", opts={"attempts": 2, "backoff": 30})],
        }
    )
    child = node["children"][0]["job"]
    await wait_for(lambda: child_state_is(child, "delayed"))
    assert await node["job"].get_state() == "waiting-children"
    await clock.advance(30)
    assert await node["job"].wait_until_finished(timeout=10) == "done"
    assert await node["job"].get_children_values() == {child.queue.keys.job(child.id): "ok"}


async def child_state_is(job: minibull.Job, state: str) -> bool:
    return await job.get_state() == state


async def test_a_delayed_prioritized_parent_waits_its_delay_after_the_children(
    flows, make_worker, clock
):
    make_worker(lambda job: "ok", name="emails")
    node = await flows.add(
        {
            "name": "report",
            "queue_name": "reports",
            "opts": {"delay": 60, "priority": 3},
            "children": [leaf("send", opts={"delay": 10})],
        }
    )
    parent = node["job"]
    await clock.advance(10)
    await wait_for(lambda: child_state_is(parent, "delayed"))
    score = await flows.redis.zscore(parent.queue.keys.delayed, parent.id)
    assert int(score) // 0x1000 >= START_MS + 10_000 + 60_000
    make_worker(lambda job: clock.now(), name="reports")
    await clock.advance(59)
    assert await parent.get_state() == "delayed"
    await clock.advance(1)
    assert await parent.wait_until_finished(timeout=10) >= START_MS + 70_000


START_MS = int(START.timestamp() * 1000)


async def test_a_stalled_child_is_recovered_and_the_parent_completes(flows, make_worker):
    started = asyncio.Event()

    async def hang(job):
        started.set()
        await asyncio.Event().wait()

    fast = {"lock_duration": 0.5, "stalled_interval": 0.2}
    crashing = make_worker(hang, name="emails", **fast)
    node = await flows.add({"name": "report", "queue_name": "reports", "children": [leaf("a")]})
    await started.wait()
    await crashing.close(force=True)
    make_worker(lambda job: "rescued", name="emails", **fast)
    make_worker(lambda job: "reported", name="reports")
    assert await node["job"].wait_until_finished(timeout=10) == "reported"
    assert list((await node["job"].get_children_values()).values()) == ["rescued"]


@pytest.mark.parametrize(
    ("policy", "parent_state", "record"),
    [
        (None, "waiting-children", "dependencies"),
        ("fail_parent_on_failure", "failed", "unsuccessful"),
        ("ignore_dependency_on_failure", "completed", "failed"),
        ("remove_dependency_on_failure", "completed", None),
    ],
)
async def test_each_failure_policy(flows, make_worker, prefix, policy, parent_state, record):
    async def send(job):
        if job.data["bad"]:
            raise RuntimeError("bounced")
        return "sent"

    ran: list[str] = []

    async def report(job):
        ran.append(job.id)
        return "reported"

    make_worker(send, name="emails")
    make_worker(report, name="reports")
    opts = {policy: True} if policy else {}
    node = await flows.add(
        {
            "name": "report",
            "queue_name": "reports",
            "children": [
                leaf("send", data={"bad": True}, opts=opts),
                leaf("send", data={"bad": False}),
            ],
        }
    )
    parent = node["job"]
    bad = node["children"][0]["job"]
    bad_key = bad.queue.keys.job(bad.id)
    await wait_for(lambda: child_state_is(bad, "failed"))
    await wait_for(lambda: child_state_is(parent, parent_state))
    redis, parent_key = flows.redis, parent.queue.keys.job(parent.id)
    if record == "dependencies":
        assert await redis.smembers(parent_key + ":dependencies") == {bad_key}
    elif record == "unsuccessful":
        assert await redis.zrange(parent_key + ":unsuccessful", 0, -1) == [bad_key]
        assert (await parent.refresh()).failed_reason == f"child {bad_key} failed"
    elif record == "failed":
        assert await redis.hgetall(parent_key + ":failed") == {bad_key: "bounced"}
    deps = await parent.get_dependencies()
    assert bad_key not in deps["processed"]
    assert ran == ([] if parent_state != "completed" else [parent.id])


async def test_continue_parent_on_failure_starts_the_parent_at_once(flows, make_worker, clock):
    seen: list[dict[str, Any]] = []

    async def report(job):
        deps = await job.get_dependencies()
        seen.append({"ignored": list(deps["ignored"].values()), "pending": deps["unprocessed"]})
        if await job.move_to_waiting_children():
            raise minibull.WaitingChildrenError()
        return "reported"

    def send(job):
        if job.data["bad"]:
            raise RuntimeError("bounced")
        return "sent"

    make_worker(send, name="emails")
    make_worker(report, name="reports")
    cpof = {"continue_parent_on_failure": True}
    node = await flows.add(
        {
            "name": "report",
            "queue_name": "reports",
            "children": [
                leaf("send", data={"bad": True}, opts=cpof),
                leaf("send", data={"bad": False}, opts={"delay": 3600}),
            ],
        }
    )
    late = node["children"][1]["job"]
    late_key = late.queue.keys.job(late.id)
    await wait_for(lambda: len(seen) == 1)
    assert seen == [{"ignored": ["bounced"], "pending": [late_key]}]  # ran before the other
    await clock.advance(3600)
    assert await node["job"].wait_until_finished(timeout=10) == "reported"
    assert seen[1] == {"ignored": ["bounced"], "pending": []}


async def test_a_failure_that_fails_the_parent_fails_the_grandparent_too(flows, make_worker):
    def work(job):
        if job.name == "bad":
            raise RuntimeError("no")
        return job.name

    for queue in ("a", "b"):
        make_worker(work, name=queue)
    fpof = {"fail_parent_on_failure": True}
    node = await flows.add(
        {
            "name": "top",
            "queue_name": "a",
            "children": [
                {
                    "name": "middle",
                    "queue_name": "b",
                    "opts": fpof,
                    "children": [leaf("bad", "a", opts=fpof)],
                }
            ],
        }
    )
    with pytest.raises(minibull.JobFailedError, match=r"child .*:b:\d+ failed"):
        await node["job"].wait_until_finished(timeout=10)


async def test_a_processor_adds_children_to_its_own_job_and_waits_for_them(flows, make_worker):
    runs: list[str] = []

    async def report(job):
        runs.append(job.id)
        values = await job.get_children_values()
        if values:
            return sorted(values.values())
        await flows.add_bulk([])  # nothing
        await flows.add(leaf("send", data={"to": "x"}), parent=job)
        await flows.add(leaf("send", data={"to": "y"}), parent=job)
        assert await job.move_to_waiting_children()
        raise minibull.WaitingChildrenError()

    make_worker(report, name="reports")
    make_worker(lambda job: job.data["to"], name="emails")
    parent = await flows.queue("reports").add("report", {})
    assert await parent.wait_until_finished(timeout=10) == ["x", "y"]
    assert runs == [parent.id, parent.id]


async def test_move_to_waiting_children_returns_false_when_nothing_is_pending(flows, make_worker):
    seen: list[bool] = []

    async def lonely(job):
        seen.append(await job.move_to_waiting_children())
        return "went on"

    make_worker(lonely, name="reports")
    job = await flows.queue("reports").add("report", {})
    assert await job.wait_until_finished(timeout=10) == "went on"
    assert seen == [False]


async def test_a_parent_that_returns_with_children_pending_fails(flows, make_worker):
    async def impatient(job):
        await flows.add(leaf("send"), parent=job)
        return "done already"  # without waiting for the child it just added

    make_worker(impatient, name="reports")
    job = await flows.queue("reports").add("report", {})
    with pytest.raises(minibull.JobFailedError, match="children that have not finished"):
        await job.wait_until_finished(timeout=10)


async def test_removing_a_parent_removes_its_children_on_every_queue(flows, prefix):
    node = await flows.add(
        {
            "name": "p",
            "queue_name": "reports",
            "children": [
                {"name": "c", "queue_name": "emails", "children": [leaf("g", "sms")]},
                leaf("d"),
            ],
        }
    )
    await node["job"].remove()
    assert [
        key
        for key in await all_keys(flows.redis, prefix)
        if not key.endswith((":id", ":events", ":marker"))
    ] == []


async def test_a_parent_with_a_running_child_is_not_removed(flows, prefix):
    node = await flows.add({"name": "p", "queue_name": "reports", "children": [leaf("c")]})
    taken = await flows.queue("emails").scripts.move_to_active(0, Take("t1", 60_000))
    assert taken.job_id == node["children"][0]["job"].id
    with pytest.raises(RuntimeError, match="running"):
        await node["job"].remove()
    assert await node["job"].get_state() == "waiting-children"


async def test_removing_the_last_pending_child_lets_the_parent_run(flows):
    node = await flows.add({"name": "p", "queue_name": "reports", "children": [leaf("c")]})
    await node["children"][0]["job"].remove()
    assert await node["job"].get_state() == "waiting"
    assert await flows.queue("emails").drain() == 0


async def test_draining_the_children_queue_frees_the_parent(flows):
    node = await flows.add(
        {"name": "p", "queue_name": "reports", "children": [leaf("c"), leaf("d")]}
    )
    assert await flows.queue("emails").drain() == 2
    assert await node["job"].get_state() == "waiting"


async def test_obliterate_leaves_no_flow_keys(flows, prefix):
    node = await flows.add({"name": "p", "queue_name": "q", "children": [leaf("c", "q")]})
    await flows.queue("q").scripts.move_to_active(0, Take("t1", 60_000))
    await flows.queue("q").obliterate(force=True)
    assert await node["job"].queue.get_job(node["job"].id) is None
    assert await all_keys(flows.redis, prefix) == []


async def test_add_bulk_writes_every_tree_or_none(flows, prefix):
    nodes = await flows.add_bulk(
        [
            {"name": "p1", "queue_name": "reports", "children": [leaf("c1")]},
            leaf("alone", "reports"),
        ]
    )
    assert [n["job"].name for n in nodes] == ["p1", "alone"]
    assert await nodes[0]["job"].get_state() == "waiting-children"
    assert await nodes[1]["job"].get_state() == "waiting"
    counts = await flows.queue("reports").get_job_counts("waiting-children", "waiting")
    assert counts == {"waiting-children": 1, "waiting": 1}


async def test_a_prioritized_parent_moves_to_prioritized_and_a_paused_queue_gets_no_marker(flows):
    reports = flows.queue("reports")
    await reports.pause()
    node = await flows.add(
        {
            "name": "report",
            "queue_name": "reports",
            "opts": {"priority": 2},
            "children": [leaf("c")],
        }
    )
    await reports.redis.delete(reports.keys.marker)
    emails = flows.queue("emails")
    taken = await emails.scripts.move_to_active(0, Take("t1", 60_000))
    common = {"now": 0, "token": "t1", "keep": {"count": -1}, "attempts": 1}
    await emails.scripts.move_to_finished(taken.job_id, failed=False, value='"ok"', **common)
    assert await node["job"].get_state() == "prioritized"
    assert await reports.redis.exists(reports.keys.marker) == 0  # paused: nobody woken
    events = [f for _, f in await reports.redis.xrange(reports.keys.events)]
    assert events[-1] == {"event": "waiting", "jobId": node["job"].id, "prev": "waiting-children"}
