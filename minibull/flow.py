"""Flows: a parent job that runs once its children are done (BullMQ's FlowProducer).

A flow is a tree of jobs, written to Redis in one script call (all or nothing)::

    {"name": "report", "queue_name": "reports", "data": {...}, "opts": {...},
     "children": [{"name": "send", "queue_name": "emails", "data": {...}}, ...]}

The parent waits in ``waiting-children`` until every child has completed; each child's
return value lands in the parent's ``:processed`` hash (``job.get_children_values()``).
Children may be on other queues of the same prefix. ``opts`` are ``Queue.add``'s options,
plus one failure policy per child: ``fail_parent_on_failure``, ``continue_parent_on_failure``,
``ignore_dependency_on_failure`` or ``remove_dependency_on_failure`` (BullMQ's).
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from .clock import Clock, SystemClock
from .connection import check_cluster_prefix, resolve
from .job import Job
from .options import check_text
from .queue import Queue, build_one, check_queue_name, job_as_added

#: A flow may nest at most this many levels below its root ...
MAX_FLOW_DEPTH = 16
#: ... give one job at most this many children ...
MAX_FLOW_CHILDREN = 10_000
#: ... and hold at most this many jobs in all (one add, or one add_bulk): one script
#: call writes them all, and Redis serves nobody else meanwhile (a parent and 10,000
#: children: 0.6 s on a real Redis, 7 s on the embedded fakeredis, on a loaded 2-core machine).
MAX_FLOW_JOBS = 20_000

#: The failure policies of a child (options), as BullMQ stores them in the child's
#: ``parent`` field and ``opts``.
POLICIES = {
    "fail_parent_on_failure": "fpof",
    "continue_parent_on_failure": "cpof",
    "ignore_dependency_on_failure": "idof",
    "remove_dependency_on_failure": "rdof",
}

_NODE_KEYS = frozenset({"name", "queue_name", "data", "opts", "children", "prefix"})
_NOT_IN_FLOWS = ("deduplication", "repeat")

JobNode = dict[str, Any]


# -- the tree, checked and flattened (pure) -----------------------------------------


def flow_nodes(trees: list[Any], prefix: str, paths: list[str]) -> list[dict[str, Any]]:
    """Every node of ``trees``, checked and built for the addFlow script, parents before
    their children (each names its parent by 1-based index, 0 for a root). Raises
    ValueError/TypeError naming the node (``paths[i]`` names tree i) for a bad tree."""
    nodes: list[dict[str, Any]] = []
    for tree, path in zip(trees, paths, strict=True):
        _walk(tree, path, prefix, nodes, parent=0, depth=0, on_path=set())
    _check_unique_ids(nodes)
    return nodes


def _walk(
    tree: Any,
    path: str,
    prefix: str,
    nodes: list[dict[str, Any]],
    *,
    parent: int,
    depth: int,
    on_path: set[int],
) -> None:
    if id(tree) in on_path:
        raise ValueError(f"node {path} is its own ancestor: a flow must be a tree, not a cycle")
    node = _build_node(tree, path, prefix, parent)
    if depth > MAX_FLOW_DEPTH:
        raise ValueError(f"node {node['path']} is deeper than MAX_FLOW_DEPTH ({MAX_FLOW_DEPTH})")
    nodes.append(node)
    if len(nodes) > MAX_FLOW_JOBS:
        raise ValueError(f"the flow has more than MAX_FLOW_JOBS ({MAX_FLOW_JOBS}) jobs")
    index = len(nodes)
    for position, child in enumerate(node.pop("child_trees")):
        child_path = f"{path}.children[{position}]"
        _walk(
            child,
            child_path,
            prefix,
            nodes,
            parent=index,
            depth=depth + 1,
            on_path=on_path | {id(tree)},
        )


def _build_node(tree: Any, path: str, prefix: str, parent: int) -> dict[str, Any]:
    """One node as addFlow takes it (with its children's trees, taken out by ``_walk``)."""
    if not isinstance(tree, dict):
        raise TypeError(f"node {path} must be a dict (got {type(tree).__name__})")
    unknown = tree.keys() - _NODE_KEYS
    if unknown:
        raise TypeError(
            f"node {path}: unknown key(s) {sorted(unknown)}; known: {sorted(_NODE_KEYS)}"
        )
    for required in ("name", "queue_name"):
        if required not in tree:
            raise ValueError(f"node {path} has no {required!r}")
    named = f"{path} ({tree['name']!r} on queue {tree['queue_name']!r})"
    children = tree.get("children") or []
    if not isinstance(children, list):
        raise TypeError(f"node {named}: children must be a list")
    if len(children) > MAX_FLOW_CHILDREN:
        raise ValueError(
            f"node {named} has more than MAX_FLOW_CHILDREN ({MAX_FLOW_CHILDREN}) children"
        )
    if tree.get("prefix", prefix) != prefix:
        raise ValueError(
            f"node {named} has prefix {tree['prefix']!r}; every job of a flow "
            f"must use the FlowProducer's prefix {prefix!r}"
        )
    try:
        queue_name = check_queue_name(tree["queue_name"])
        spec, policy = _build_job(tree, parent)
    except (TypeError, ValueError) as error:
        raise type(error)(f"node {named}: {error}") from error
    return {
        "queueKey": f"{prefix}:{queue_name}",
        "queue_name": queue_name,
        "path": named,
        **spec,
        "parent": parent,
        "policy": policy,
        "children": len(children),
        "child_trees": children,
    }


def _build_job(tree: dict[str, Any], parent: int) -> tuple[dict[str, Any], str]:
    """The node's job as ``Queue.add`` builds it, and its failure policy ("" for none)."""
    opts = tree.get("opts") or {}
    if not isinstance(opts, dict):
        raise TypeError(f"opts must be a dict (got {type(opts).__name__})")
    opts = dict(opts)
    for option in _NOT_IN_FLOWS:
        if option in opts:
            raise ValueError(f"{option!r} cannot be used in a flow")
    chosen = [name for name in POLICIES if opts.pop(name, False)]
    if len(chosen) > 1:
        raise ValueError(f"these options cannot be used together: {', '.join(chosen)}")
    spec = build_one(tree["name"], tree.get("data"), opts)
    policy = POLICIES[chosen[0]] if chosen and parent else ""
    if policy:  # stored in opts as BullMQ stores it (its short name)
        stored = json.loads(spec["opts"])
        stored[policy] = True
        spec["opts"] = json.dumps(stored, separators=(",", ":"))
    return spec, policy


def _check_unique_ids(nodes: list[dict[str, Any]]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for node in nodes:
        if node["id"]:
            where = (node["queueKey"], node["id"])
            if where in seen:
                raise ValueError(
                    f"node {node['path']} has job_id {node['id']!r}, "
                    f"as node {seen[where]} on the same queue"
                )
            seen[where] = node["path"]


def check_one_slot(nodes: list[dict[str, Any]]) -> None:
    """On a Redis Cluster, one script may only touch keys of one slot: every queue of the
    flow must hash to the root's slot (one hash tag in the prefix, e.g. ``{bull}``)."""
    root_slot = key_slot(f"{nodes[0]['queueKey']}:id".encode())
    for node in nodes:
        if key_slot(f"{node['queueKey']}:id".encode()) != root_slot:
            raise ValueError(
                f"node {node['path']}: its queue's keys are in another Redis Cluster slot than "
                f"the root's; give the prefix a hash tag (e.g. '{{bull}}') so a flow is in one slot"
            )


def _parent_of(parent: Any) -> dict[str, str]:
    """A root's existing parent, a Job or BullMQ's ``{"id", "queue"}`` (queue: its queueKey)."""
    if isinstance(parent, Job) and parent.queue is not None:
        return {"parentId": parent.id, "parentQueueKey": parent.queue.keys.queue_key}
    if isinstance(parent, dict) and {"id", "queue"} <= parent.keys():
        return {
            "parentId": check_text(str(parent["id"]), "parent id"),
            "parentQueueKey": check_text(parent["queue"], "parent queue"),
        }
    raise TypeError("parent must be a Job (of a Queue) or {'id': ..., 'queue': 'bull:<queue>'}")


# -- the producer ---------------------------------------------------------------------


class FlowProducer:
    """Adds flows: trees of jobs where a parent runs once its children are done.

    ``connection`` as ``Queue``'s; creating a FlowProducer touches nothing."""

    def __init__(
        self,
        connection: str | Redis | None = None,
        *,
        prefix: str = "bull",
        clock: Clock | None = None,
    ) -> None:
        self.prefix = check_text(prefix, "prefix")
        self.clock = clock or SystemClock()
        self.redis, self._owns_redis = resolve(connection)
        check_cluster_prefix(self.redis, prefix)
        self._queues: dict[str, Queue] = {}

    def __repr__(self) -> str:
        return f"FlowProducer(prefix={self.prefix!r})"

    async def __aenter__(self) -> FlowProducer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the Redis client, if the producer created it."""
        if self._owns_redis:
            await self.redis.aclose()

    def queue(self, name: str) -> Queue:
        """The Queue (on this producer's connection) that the jobs of ``name`` belong to."""
        if name not in self._queues:
            self._queues[name] = Queue(name, self.redis, prefix=self.prefix, clock=self.clock)
        return self._queues[name]

    async def add(self, tree: dict[str, Any], *, parent: Any = None) -> JobNode:
        """Add a flow in one atomic call; returns ``{"job": Job, "children": [...]}``.

        ``parent``: an existing job the root becomes a child of (a processor that adds
        children to its own job, then calls ``job.move_to_waiting_children()``)."""
        extra = _parent_of(parent) if parent is not None else {}
        (node,) = await self._add([tree], ["tree"], extra)
        return node

    async def add_bulk(self, trees: list[dict[str, Any]]) -> list[JobNode]:
        """Add several flows in one atomic call (all or none); returns their JobNodes."""
        if not isinstance(trees, list):
            raise TypeError(f"trees must be a list of dicts (got {type(trees).__name__})")
        if not trees:
            return []
        return await self._add(trees, [f"trees[{i}]" for i in range(len(trees))], {})

    async def _add(
        self, trees: list[Any], paths: list[str], extra: dict[str, str]
    ) -> list[JobNode]:
        nodes = flow_nodes(trees, self.prefix, paths)
        nodes[0].update(extra)
        if isinstance(self.redis, RedisCluster):
            check_one_slot(nodes)
        now = self.clock.now()
        root_queue = self.queue(nodes[0]["queue_name"])
        sent = [{k: v for k, v in node.items() if k != "queue_name"} for node in nodes]
        ids = await root_queue.scripts.add_flow(now, sent)
        return self._job_nodes(nodes, ids, now)

    def _job_nodes(self, nodes: list[dict[str, Any]], ids: list[str], now: int) -> list[JobNode]:
        """The JobNodes of the added flows, from what was sent (no read back)."""
        made: list[JobNode] = []
        roots: list[JobNode] = []
        for node, job_id in zip(nodes, ids, strict=True):
            job = job_as_added(job_id, node, now, self.queue(node["queue_name"]))
            job_node: JobNode = {"job": job, "children": []}
            made.append(job_node)
            if node["parent"]:
                parent_job = made[node["parent"] - 1]["job"]
                job.parent = {"id": parent_job.id, "queueKey": parent_job.queue.keys.queue_key}
                made[node["parent"] - 1]["children"].append(job_node)
            else:
                roots.append(job_node)
            if "parentId" in node:
                job.parent = {"id": node["parentId"], "queueKey": node["parentQueueKey"]}
            if job.parent is not None:
                job.parent_key = f"{job.parent['queueKey']}:{job.parent['id']}"
                if node["policy"]:
                    job.parent[node["policy"]] = True
        return roots
