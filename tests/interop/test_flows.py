"""Flows (issue 15) across implementations, on a real Redis: a flow added by one side is run by
the other's workers, and a mixed fleet runs the children of one flow.

Every flow here has a parent on queue ``reports`` and children on queue ``emails`` (a
grandchild too), so the parent is moved on from another queue's script. The children's
return values land in the parent's ``:processed`` hash, whoever ran them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import minibull
from tests.interop.conftest import OpenPeer, wait_until

WORKER = {"concurrency": 2, "lockDuration": 5000, "stalledInterval": 5000, "drainDelay": 1}


def newsletter(children: int, child_opts: dict[str, Any] | None = None) -> dict[str, Any]:
    """A parent on "reports" with ``children`` jobs on "emails"; the first has a child too."""
    sends = [
        {
            "name": "send",
            "queueName": "emails",
            "data": {"to": i, "sleep_ms": 20},
            "opts": dict(child_opts or {}),
        }
        for i in range(children)
    ]
    sends[0]["children"] = [{"name": "render", "queueName": "emails", "data": {"to": "tpl"}}]
    return {"name": "report", "queueName": "reports", "data": {}, "children": sends}


def all_ids(node: dict[str, Any]) -> list[str]:
    return [node["id"], *(i for child in node["children"] for i in all_ids(child))]


async def processed(peer: Any, parent_id: str) -> dict[str, Any]:
    """The parent's ``:processed`` hash, read straight from Redis: child key -> value."""
    raw = await peer.queue.redis.hgetall(peer.queue.keys.processed(parent_id))
    return {key: json.loads(value) for key, value in raw.items()}


async def completed(queue: minibull.Queue, job_id: str) -> bool:
    return await queue.get_job_state(job_id) == "completed"


async def test_a_flow_added_by_minibull_is_completed_by_bullmq(
    open_peer: OpenPeer, bullmq_kind: str, prefix: str
):
    reports, emails = await open_peer("minibull", "reports"), await open_peer("minibull", "emails")
    bullmq_reports = await open_peer(bullmq_kind, "reports")
    bullmq_emails = await open_peer(bullmq_kind, "emails")
    flow = await reports.add_flow(newsletter(5))
    assert await reports.queue.get_job_state(flow["id"]) == "waiting-children"
    await bullmq_emails.start_worker(**WORKER)
    await bullmq_reports.start_worker(**WORKER)
    await wait_until(lambda: completed(reports.queue, flow["id"]), 30, "the parent completed")
    values = await processed(reports, flow["id"])
    child_keys = {emails.queue.keys.job(child["id"]) for child in flow["children"]}
    assert set(values) == child_keys
    assert {value["by"] for value in values.values()} == {bullmq_kind}
    grandchild = flow["children"][0]["children"][0]["id"]
    first = await emails.queue.get_job(flow["children"][0]["id"])
    assert await first.get_children_values() == {
        emails.queue.keys.job(grandchild): {"by": bullmq_kind, "attemptsMade": 0}
    }
    assert await reports.queue.redis.exists(reports.queue.keys.dependencies(flow["id"])) == 0


async def test_a_flow_added_by_bullmq_is_completed_by_minibull(
    open_peer: OpenPeer, bullmq_kind: str
):
    bullmq_reports = await open_peer(bullmq_kind, "reports")
    reports, emails = await open_peer("minibull", "reports"), await open_peer("minibull", "emails")
    flow = await bullmq_reports.add_flow(newsletter(5))
    assert await reports.queue.get_job_state(flow["id"]) == "waiting-children"
    child = await emails.queue.get_job(flow["children"][1]["id"])
    assert child.parent == {"id": flow["id"], "queueKey": reports.queue.keys.queue_key}
    assert child.parent_key == reports.queue.keys.job(flow["id"])
    await emails.start_worker(**WORKER)
    await reports.start_worker(**WORKER)
    await wait_until(lambda: completed(reports.queue, flow["id"]), 30, "the parent completed")
    values = await processed(reports, flow["id"])
    assert len(values) == 5 and {value["by"] for value in values.values()} == {"minibull"}
    assert await bullmq_reports.get_job_state(flow["id"]) == "completed"


async def test_a_mixed_fleet_runs_the_children_of_one_flow(open_peer: OpenPeer, bullmq_kind: str):
    reports, emails = await open_peer("minibull", "reports"), await open_peer("minibull", "emails")
    bullmq_emails = await open_peer(bullmq_kind, "emails")
    await emails.start_worker(**WORKER)
    await bullmq_emails.start_worker(**WORKER)
    await reports.start_worker(**WORKER)
    flow = await reports.add_flow(newsletter(40))
    await wait_until(lambda: completed(reports.queue, flow["id"]), 60, "the parent completed")
    values = await processed(reports, flow["id"])
    assert len(values) == 40
    assert {value["by"] for value in values.values()} == {"minibull", bullmq_kind}
    runs = [job_id for job_id, _ in emails.runs + bullmq_emails.runs]
    assert sorted(runs) == sorted(all_ids(flow)[1:])  # every child ran once, by either side


@pytest.mark.parametrize("adder", ["minibull", "bullmq"])
@pytest.mark.parametrize(
    ("policy", "parent_state"),
    [("failParentOnFailure", "failed"), ("ignoreDependencyOnFailure", "completed")],
)
async def test_a_failure_policy_is_read_by_the_other_side(
    open_peer: OpenPeer, bullmq_kind: str, adder: str, policy: str, parent_state: str
):
    """The child's policy, written by one side, is obeyed by the other's workers."""
    reports, emails = await open_peer("minibull", "reports"), await open_peer("minibull", "emails")
    bullmq_reports = await open_peer(bullmq_kind, "reports")
    bullmq_emails = await open_peer(bullmq_kind, "emails")
    tree = {
        "name": "report",
        "queueName": "reports",
        "data": {},
        "children": [
            {
                "name": "send",
                "queueName": "emails",
                "data": {"fail_times": 1},
                "opts": {policy: True},
            }
        ],
    }
    adding, running = (reports, [bullmq_emails, bullmq_reports])
    if adder == "bullmq":
        adding, running = (bullmq_reports, [emails, reports])
    flow = await adding.add_flow(tree)
    for peer in running:
        await peer.start_worker(**WORKER)

    async def parent_done() -> bool:
        return await reports.queue.get_job_state(flow["id"]) == parent_state

    await wait_until(parent_done, 30, f"the parent {parent_state}")
    child_key = emails.queue.keys.job(flow["children"][0]["id"])
    parent = await reports.queue.get_job(flow["id"])
    if parent_state == "failed":
        assert parent.failed_reason == f"child {child_key} failed"
        assert (await parent.get_dependencies())["failed"] == [child_key]
    else:
        assert (await parent.get_dependencies())["ignored"] == {child_key: "boom 0"}
