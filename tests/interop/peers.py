"""minibull, BullMQ for Node.js and BullMQ for Python behind one small interface.

A *peer* is one implementation attached to one queue (a Redis URL, a key prefix and
a queue name). Every peer speaks BullMQ's vocabulary, so one test can be run with
any of them as the producer, the worker, or the reader:

- options are BullMQ's job options, in milliseconds: ``{"attempts": 3, "backoff":
  {"type": "exponential", "delay": 50}, "delay": 300, "priority": 1, "jobId": "a"}``;
- ``get_job`` returns the same view from each: BullMQ's getter names, plus ``state``;
- every worker runs the shared processor (:func:`run_shared_processor`), whose
  behaviour is set by the job's data, so one worker serves every kind of job.

``MinibullPeer`` and ``PythonPeer`` run in the test's event loop; ``NodePeer`` is a
``node tests/interop/node/peer.cjs`` subprocess spoken to in JSON lines.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.metadata
import itertools
import json
import os
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import minibull

ROOT = Path(__file__).absolute().parents[2]
NODE_SCRIPT = ROOT / "tests" / "interop" / "node" / "peer.cjs"
#: Where .ci/run installs the npm package (gitignored, like all of .cache/).
NODE_CACHE = ROOT / ".cache" / "node-bullmq"
NODE_MODULES = NODE_CACHE / "node_modules"

#: The peer versions these tests are written against.
PYTHON_BULLMQ = "3.4."
NODE_BULLMQ = "6."

#: How to install the peers (also what .ci/run runs).
INSTALL_HINT = "install them with: bash -c 'source .ci/run; install_interop_peers'"


# -- can the peers run? ---------------------------------------------------------


def python_bullmq_problem() -> str | None:
    """Why BullMQ for Python cannot be used here, or None."""
    try:
        version = importlib.metadata.version("bullmq")
    except importlib.metadata.PackageNotFoundError:
        return f"the Python package bullmq {PYTHON_BULLMQ}x is not installed; {INSTALL_HINT}"
    if not version.startswith(PYTHON_BULLMQ):
        return f"bullmq {version} is installed, these tests need {PYTHON_BULLMQ}x"
    return None


def node_bullmq_version() -> str | None:
    package = NODE_MODULES / "bullmq" / "package.json"
    if not package.exists():
        return None
    return json.loads(package.read_text())["version"]


def node_bullmq_problem() -> str | None:
    """Why BullMQ for Node.js cannot be used here, or None."""
    if shutil.which("node") is None:
        return f"node is not on PATH (Node.js 20 runs the BullMQ peer); {INSTALL_HINT}"
    version = node_bullmq_version()
    if version is None:
        return f"the npm package bullmq is not installed in {NODE_MODULES}; {INSTALL_HINT}"
    if not version.startswith(NODE_BULLMQ):
        return f"npm bullmq {version} is installed, these tests need {NODE_BULLMQ}x"
    return None


# -- the shared processor ---------------------------------------------------------


class ProcessorError(Exception):
    """What the shared processor raises; BullMQ stores str(error) as failedReason."""


async def run_shared_processor(
    data: Any,
    attempts_made: int,
    stalled_counter: int,
    by: str,
    update_progress: Callable[[Any], Awaitable[Any]],
    log: Callable[[str], Awaitable[Any]],
    attempts_started: int = 0,
    rate_limited: Callable[[int], Awaitable[Any]] | None = None,
) -> dict[str, Any]:
    """The processor of every worker in these tests (peer.cjs has the same in JavaScript).

    The job's data says what a run does, in this order:
    ``{"log": "line"}``: add a line to the job's log;
    ``{"progress": [v, ...]}``: report each value as progress;
    ``{"hang": true}``: hang until the worker dies, unless the job was already recovered
    from a stall once; ``{"sleep_ms": n}``: take n ms; ``{"fail_times": n}``: raise
    ``boom <attemptsMade>`` while attemptsMade < n; ``{"rate_limit_ms": n}``: on the first
    run (attemptsStarted 1), hold the queue for n ms and put the job back (the manual rate
    limit: ``rate_limited(n)`` raises the side's RateLimitError). A run that succeeds returns
    ``{"by": <implementation>, "attemptsMade": <attempts made before this run>}``.
    """
    data = data if isinstance(data, dict) else {}
    if data.get("log"):
        await log(data["log"])
    for value in data.get("progress", []):
        await update_progress(value)
    if data.get("hang") and stalled_counter == 0:
        await asyncio.Event().wait()
    if data.get("sleep_ms"):
        await asyncio.sleep(data["sleep_ms"] / 1000)
    if data.get("rate_limit_ms") and attempts_started == 1:
        if rate_limited is None:
            raise ProcessorError("this side has no manual rate limit")
        await rate_limited(data["rate_limit_ms"])
    if attempts_made < data.get("fail_times", 0):
        raise ProcessorError(f"boom {attempts_made}")
    return {"by": by, "attemptsMade": attempts_made}


# -- one view of a job --------------------------------------------------------------


VIEW_FIELDS = (
    "id",
    "name",
    "data",
    "opts",
    "returnvalue",
    "attemptsMade",
    "attemptsStarted",
    "stalledCounter",
    "failedReason",
    "finishedOn",
    "processedOn",
    "timestamp",
    "delay",
    "priority",
    "progress",
    "stacktrace",
    "deferredFailure",
    "state",
)


def comparable(view: dict[str, Any] | None, opts_keys: set[str]) -> dict[str, Any] | None:
    """A job view with the differences that are only the reader's defaults taken out.

    ``opts`` keeps the keys that are stored in the hash (each reader adds its own
    defaults); an unset time is None (Python's port says 0); a stack trace counts
    its entries (each language formats its own).
    """
    if view is None:
        return None
    out = {name: view.get(name) for name in VIEW_FIELDS}
    out["opts"] = {
        key: value for key, value in (view.get("opts") or {}).items() if key in opts_keys
    }
    for name in ("finishedOn", "processedOn"):
        out[name] = out[name] or None
    out["stacktrace"] = len(out["stacktrace"] or [])
    return out


def minibull_view(job: minibull.Job | None, state: str) -> dict[str, Any] | None:
    """A minibull Job in BullMQ's getter names."""
    if job is None:
        return None
    return {
        "id": job.id,
        "name": job.name,
        "data": job.data,
        "opts": job.opts,
        "returnvalue": job.returnvalue,
        "attemptsMade": job.attempts_made,
        "attemptsStarted": job.attempts_started,
        "stalledCounter": job.stalled_counter,
        "failedReason": job.failed_reason,
        "finishedOn": job.finished_on,
        "processedOn": job.processed_on,
        "timestamp": job.timestamp,
        "delay": job.delay,
        "priority": job.priority,
        "progress": job.progress,
        "stacktrace": job.stacktrace,
        "deferredFailure": job.deferred_failure,
        "state": state,
    }


def minibull_options(opts: dict[str, Any]) -> dict[str, Any]:
    """BullMQ's job options (ms, camelCase) as ``minibull.Queue.add`` keywords (s, snake_case)."""
    out: dict[str, Any] = {}
    for key, value in opts.items():
        if key == "jobId":
            out["job_id"] = value
        elif key == "delay":
            out["delay"] = value / 1000
        elif key == "backoff":
            backoff = {"type": "fixed", "delay": value} if isinstance(value, int) else dict(value)
            backoff["delay"] = backoff.get("delay", 0) / 1000
            out["backoff"] = backoff
        elif key in ("attempts", "priority", "lifo"):
            out[key] = value
        elif key == "timeout":  # Bull 3's option, kept in opts; BullMQ ignores it
            out["timeout"] = value / 1000
        elif key == "deduplication":
            dedup = {"id": value["id"]}
            if "ttl" in value:
                dedup["ttl"] = value["ttl"] / 1000
            for mode in ("extend", "replace", "keepLastIfActive"):
                if mode in value:
                    dedup["keep_last_if_active" if mode == "keepLastIfActive" else mode] = value[
                        mode
                    ]
            out["deduplication"] = dedup
        elif key in ("removeOnComplete", "removeOnFail"):
            out["remove_on_complete" if key == "removeOnComplete" else "remove_on_fail"] = value
        else:
            raise ValueError(f"no minibull equivalent for job option {key!r}")
    return out


#: BullMQ's failure policies of a child, as minibull's flow options.
FLOW_POLICIES = {
    "failParentOnFailure": "fail_parent_on_failure",
    "continueParentOnFailure": "continue_parent_on_failure",
    "ignoreDependencyOnFailure": "ignore_dependency_on_failure",
    "removeDependencyOnFailure": "remove_dependency_on_failure",
}


def minibull_tree(tree: dict[str, Any]) -> dict[str, Any]:
    """BullMQ's FlowJob as a minibull flow tree (queue_name, options in seconds)."""
    opts = dict(tree.get("opts") or {})
    policies = {FLOW_POLICIES[key]: opts.pop(key) for key in list(opts) if key in FLOW_POLICIES}
    return {
        "name": tree["name"],
        "queue_name": tree["queueName"],
        "data": tree.get("data"),
        "opts": {**minibull_options(opts), **policies},
        "children": [minibull_tree(child) for child in tree.get("children") or []],
    }


def node_ids(node: Any) -> dict[str, Any]:
    """A JobNode (minibull's or BullMQ for Python's) as {"id", "children"}."""
    return {"id": node["job"].id, "children": [node_ids(c) for c in node.get("children") or []]}


def minibull_repeat(repeat: dict[str, Any]) -> dict[str, Any]:
    """BullMQ's repeat options (ms, camelCase) as minibull's ``repeat=`` (s, snake_case)."""
    out: dict[str, Any] = {}
    for key, value in repeat.items():
        if key == "every":
            out["every"] = value / 1000
        elif key in ("startDate", "endDate"):
            out["start_date" if key == "startDate" else "end_date"] = value / 1000
        elif key in ("pattern", "tz", "limit", "immediately"):
            out[key] = value
        else:
            raise ValueError(f"no minibull equivalent for repeat option {key!r}")
    return out


#: A job scheduler as BullMQ's ``getJobScheduler`` names it (JobSchedulerJson), these keys.
SCHEDULER_FIELDS = ("key", "name", "next", "iterationCount", "every", "pattern", "tz", "limit")


def scheduler_view(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """A BullMQ JobSchedulerJson cut to SCHEDULER_FIELDS plus the template's data (unset: None)."""
    if raw is None:
        return None
    view = {name: raw.get(name) for name in SCHEDULER_FIELDS}
    view["data"] = (raw.get("template") or {}).get("data")
    return view


# -- the interface ----------------------------------------------------------------


class Peer:
    """One implementation on one queue. Subclasses fill in the methods."""

    kind = "?"

    def __init__(self, url: str, prefix: str, queue: str) -> None:
        self.url, self.prefix, self.queue_name = url, prefix, queue
        #: (job id, attemptsMade) for every run of the shared processor by this peer's workers.
        self.runs: list[tuple[str, int]] = []
        #: event id -> [(event name, fields)] seen by that QueueEvents.
        self.events: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        #: Errors reported by this peer's workers.
        self.errors: list[str] = []
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.prefix}:{self.queue_name})"

    def runs_of(self, job_id: str) -> list[int]:
        return [made for run_id, made in self.runs if run_id == job_id]

    async def add(self, name: str, data: Any, opts: dict[str, Any] | None = None) -> str:
        raise NotImplementedError

    async def add_bulk(self, jobs: list[dict[str, Any]]) -> list[str]:
        raise NotImplementedError

    async def add_flow(self, tree: dict[str, Any]) -> dict[str, Any]:
        """Add a flow with this implementation's FlowProducer (issue 15). ``tree`` is BullMQ's
        FlowJob ({name, queueName, data, opts (ms), children}); returns its ids as
        ``{"id": ..., "children": [...]}``."""
        raise NotImplementedError

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    async def get_job_counts(self, *types: str) -> dict[str, int]:
        raise NotImplementedError

    async def get_job_state(self, job_id: str) -> str:
        raise NotImplementedError

    async def pause(self) -> None:
        raise NotImplementedError

    async def resume(self) -> None:
        raise NotImplementedError

    async def is_paused(self) -> bool:
        raise NotImplementedError

    async def set_global_concurrency(self, concurrency: int) -> None:
        """At most ``concurrency`` jobs of the queue active at once, over all workers."""
        raise NotImplementedError

    async def set_global_rate_limit(self, max_jobs: int, duration_ms: int) -> None:
        """At most ``max_jobs`` job starts per ``duration_ms``, over all workers."""
        raise NotImplementedError

    async def rate_limit(self, ms: int) -> None:
        """Hold every worker of the queue for ``ms`` (BullMQ's ``queue.rateLimit``)."""
        raise NotImplementedError

    async def upsert_job_scheduler(
        self,
        scheduler_id: str,
        repeat: dict[str, Any],
        name: str,
        data: Any,
        opts: dict[str, Any] | None = None,
    ) -> str | None:
        """Create or replace a job scheduler (BullMQ's repeat options, in ms); the id of the
        job of its next run."""
        raise NotImplementedError

    async def get_job_scheduler(self, scheduler_id: str) -> dict[str, Any] | None:
        """The scheduler as ``scheduler_view`` (BullMQ's names), or None."""
        raise NotImplementedError

    async def remove_job_scheduler(self, scheduler_id: str) -> None:
        raise NotImplementedError

    async def start_worker(self, **opts: Any) -> str:
        """Start a worker (BullMQ's option names, ms) running the shared processor."""
        raise NotImplementedError

    async def close_worker(self, wid: str, force: bool = False) -> None:
        raise NotImplementedError

    async def sweep_stalled(self, max_stalled_count: int, interval_ms: int) -> list[str]:
        """One run of this implementation's stalled-jobs sweep; the ids moved back to wait."""
        raise NotImplementedError

    async def start_events(self, last_event_id: str) -> str:
        """Start a QueueEvents reading after ``last_event_id``; its events land in ``events``."""
        raise NotImplementedError

    async def close_events(self, eid: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    # -- issue 16: changing jobs, metrics, workers (BullMQ's names and units) ----------

    async def change_job(self, job_id: str, call: str, arg: Any = None) -> None:
        """BullMQ's ``job.<call>(arg)``: promote(), changeDelay(ms), updateData(data) or
        changePriority({"priority", "lifo"}). NotImplementedError where the peer has none."""
        raise NotImplementedError

    async def promote_jobs(self) -> None:
        raise NotImplementedError

    async def get_metrics(self, kind: str) -> dict[str, Any]:
        """BullMQ's getMetrics(kind): {"meta": {count, prevTS, prevCount}, "data", "count"}."""
        raise NotImplementedError

    async def get_workers(self) -> list[str]:
        """The client names (``rawname``) of the queue's workers, sorted."""
        raise NotImplementedError


# -- minibull ------------------------------------------------------------------------


class MinibullPeer(Peer):
    kind = "minibull"

    def __init__(self, url: str, prefix: str, queue: str) -> None:
        super().__init__(url, prefix, queue)
        self.queue = minibull.Queue(queue, url, prefix=prefix)
        self.workers: dict[str, minibull.Worker] = {}
        self.queue_events: dict[str, tuple[minibull.QueueEvents, asyncio.Task[None]]] = {}
        self._sweeper: minibull.Worker | None = None
        self._swept: list[str] = []

    async def add(self, name: str, data: Any, opts: dict[str, Any] | None = None) -> str:
        return (await self.queue.add(name, data, **minibull_options(opts or {}))).id

    async def add_bulk(self, jobs: list[dict[str, Any]]) -> list[str]:
        specs = [
            {"name": job["name"], "data": job.get("data"), **minibull_options(job.get("opts", {}))}
            for job in jobs
        ]
        return [job.id for job in await self.queue.add_bulk(specs)]

    async def add_flow(self, tree: dict[str, Any]) -> dict[str, Any]:
        async with minibull.FlowProducer(self.url, prefix=self.prefix) as producer:
            return node_ids(await producer.add(minibull_tree(tree)))

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        job = await self.queue.get_job(job_id)
        state = await self.queue.get_job_state(job_id) if job else ""
        return minibull_view(job, state)

    async def get_job_counts(self, *types: str) -> dict[str, int]:
        return await self.queue.get_job_counts(*types)

    async def get_job_state(self, job_id: str) -> str:
        return await self.queue.get_job_state(job_id)

    async def pause(self) -> None:
        await self.queue.pause()

    async def resume(self) -> None:
        await self.queue.resume()

    async def is_paused(self) -> bool:
        return await self.queue.is_paused()

    async def set_global_concurrency(self, concurrency: int) -> None:
        await self.queue.set_global_concurrency(concurrency)

    async def set_global_rate_limit(self, max_jobs: int, duration_ms: int) -> None:
        await self.queue.set_global_rate_limit(max_jobs, duration_ms / 1000)

    async def rate_limit(self, ms: int) -> None:
        await self.queue.rate_limit(ms / 1000)

    async def _rate_limited(self, ms: int) -> None:
        await self.rate_limit(ms)
        raise minibull.RateLimitError()

    async def upsert_job_scheduler(
        self,
        scheduler_id: str,
        repeat: dict[str, Any],
        name: str,
        data: Any,
        opts: dict[str, Any] | None = None,
    ) -> str | None:
        job = await self.queue.upsert_job_scheduler(
            scheduler_id,
            minibull_repeat(repeat),
            name=name,
            data=data,
            opts=minibull_options(opts or {}),
        )
        return job.id if job else None

    async def get_job_scheduler(self, scheduler_id: str) -> dict[str, Any] | None:
        found = await self.queue.get_job_scheduler(scheduler_id)
        if found is None:
            return None
        raw = {**found, "key": found["id"], "iterationCount": found["iterations"]}
        return scheduler_view({**raw, "template": {"data": found["data"]}})

    async def remove_job_scheduler(self, scheduler_id: str) -> None:
        await self.queue.remove_job_scheduler(scheduler_id)

    async def start_worker(self, **opts: Any) -> str:
        async def process(job: minibull.Job) -> Any:
            self.runs.append((job.id, job.attempts_made))
            return await run_shared_processor(
                job.data,
                job.attempts_made,
                job.stalled_counter,
                self.kind,
                job.update_progress,
                job.log,
                job.attempts_started,
                self._rate_limited,
            )

        seconds = {"lockDuration": "lock_duration", "stalledInterval": "stalled_interval"}
        names = {"concurrency": "concurrency", "maxStalledCount": "max_stalled_count"}
        options: dict[str, Any] = {}
        for key, value in opts.items():
            if key in seconds:
                options[seconds[key]] = value / 1000
            elif key in names:
                options[names[key]] = value
            elif key == "drainDelay":  # seconds in BullMQ too
                options["drain_delay"] = value
            elif key == "limiter":
                options["limiter"] = {"max": value["max"], "duration": value["duration"] / 1000}
            elif key == "name":
                options["worker_name"] = value
            elif key == "metrics":
                options["metrics"] = {"max_data_points": value["maxDataPoints"]}
            else:
                raise ValueError(f"no minibull equivalent for worker option {key!r}")
        worker = minibull.Worker(self.queue_name, process, self.url, prefix=self.prefix, **options)
        worker.on("error", lambda error: self.errors.append(repr(error)))
        wid = f"w{next(self._ids)}"
        self.workers[wid] = worker
        worker.start()
        return wid

    async def close_worker(self, wid: str, force: bool = False) -> None:
        await self.workers.pop(wid).close(force=force)

    async def sweep_stalled(self, max_stalled_count: int, interval_ms: int) -> list[str]:
        """minibull has no public sweep call: a worker paused locally takes no jobs but still
        sweeps every ``interval_ms``. Returns the ids it has recovered so far."""
        if self._sweeper is None:
            self._sweeper = minibull.Worker(
                self.queue_name,
                lambda job: None,
                self.url,
                prefix=self.prefix,
                max_stalled_count=max_stalled_count,
                stalled_interval=interval_ms / 1000,
            )
            await self._sweeper.pause()
            self._sweeper.on("stalled", self._swept.append)
            self._sweeper.start()
        await asyncio.sleep(interval_ms / 1000 + 0.02)
        return list(self._swept)

    async def start_events(self, last_event_id: str) -> str:
        events = minibull.QueueEvents(
            self.queue_name, self.url, prefix=self.prefix, last_event_id=last_event_id, block=0.2
        )
        eid = f"e{next(self._ids)}"
        log = self.events[eid]

        def record(event: dict[str, Any]) -> None:
            fields = {k: v for k, v in event.items() if k not in ("event", "id")}
            log.append((event["event"], fields))

        events.on("*", record)
        self.queue_events[eid] = (events, await events.start())
        return eid

    async def close_events(self, eid: str) -> None:
        events, _task = self.queue_events.pop(eid)
        await events.close()

    async def close(self) -> None:
        workers = [*self.workers.values(), *([self._sweeper] if self._sweeper else [])]
        await asyncio.gather(*(w.close(force=True) for w in workers))
        for events, _task in self.queue_events.values():
            await events.close()
        self.workers.clear()
        self.queue_events.clear()
        await self.queue.close()

    async def change_job(self, job_id: str, call: str, arg: Any = None) -> None:
        job = await self.queue.get_job(job_id)
        assert job is not None, job_id
        if call == "promote":
            await job.promote()
        elif call == "changeDelay":
            await job.change_delay(arg / 1000)
        elif call == "updateData":
            await job.update_data(arg)
        elif call == "changePriority":
            await job.change_priority(arg["priority"], lifo=bool(arg.get("lifo")))
        else:
            raise ValueError(call)

    async def promote_jobs(self) -> None:
        await self.queue.promote_jobs()

    async def get_metrics(self, kind: str) -> dict[str, Any]:
        found = await self.queue.get_metrics(kind)
        meta = found["meta"]
        return {
            "meta": {
                "count": meta["count"],
                "prevTS": meta["prev_ts"],
                "prevCount": meta["prev_count"],
            },
            "data": found["data"],
            "count": found["count"],
        }

    async def get_workers(self) -> list[str]:
        return sorted(worker["rawname"] for worker in await self.queue.get_workers())


# -- BullMQ for Python ------------------------------------------------------------------


class PythonPeer(Peer):
    kind = "python"

    def __init__(self, url: str, prefix: str, queue: str) -> None:
        super().__init__(url, prefix, queue)
        import bullmq

        self.bullmq = bullmq
        self.base = {"connection": url, "prefix": prefix}
        self.queue = bullmq.Queue(queue, dict(self.base))
        self.workers: dict[str, Any] = {}
        self.queue_events: dict[str, Any] = {}

    async def add(self, name: str, data: Any, opts: dict[str, Any] | None = None) -> str:
        return (await self.queue.add(name, data, opts or {})).id

    async def add_bulk(self, jobs: list[dict[str, Any]]) -> list[str]:
        return [job.id for job in await self.queue.addBulk(jobs)]

    async def add_flow(self, tree: dict[str, Any]) -> dict[str, Any]:
        producer = self.bullmq.FlowProducer(dict(self.base))
        try:
            return node_ids(await producer.add(tree))
        finally:
            await producer.close()

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        job = await self.queue.getJob(job_id)
        if job is None:
            return None
        view = {name: getattr(job, name, None) for name in VIEW_FIELDS if name != "state"}
        view["state"] = await self.queue.getJobState(job_id)
        return view

    async def get_job_counts(self, *types: str) -> dict[str, int]:
        return await self.queue.getJobCounts(*types)

    async def get_job_state(self, job_id: str) -> str:
        return await self.queue.getJobState(job_id)

    async def pause(self) -> None:
        await self.queue.pause()

    async def resume(self) -> None:
        await self.queue.resume()

    async def is_paused(self) -> bool:
        return await self.queue.isPaused()

    async def set_global_concurrency(self, concurrency: int) -> None:
        await self.queue.setGlobalConcurrency(concurrency)

    async def set_global_rate_limit(self, max_jobs: int, duration_ms: int) -> None:
        await self.queue.setGlobalRateLimit(max_jobs, duration_ms)

    async def rate_limit(self, ms: int) -> None:
        await self.queue.rateLimit(ms)

    async def upsert_job_scheduler(
        self,
        scheduler_id: str,
        repeat: dict[str, Any],
        name: str,
        data: Any,
        opts: dict[str, Any] | None = None,
    ) -> str | None:
        job = await self.queue.upsertJobScheduler(scheduler_id, repeat, name, data, opts or {})
        return job.id if job else None

    async def get_job_scheduler(self, scheduler_id: str) -> dict[str, Any] | None:
        return scheduler_view(await self.queue.getJobScheduler(scheduler_id))

    async def remove_job_scheduler(self, scheduler_id: str) -> None:
        await self.queue.removeJobScheduler(scheduler_id)

    async def start_worker(self, **opts: Any) -> str:
        async def process(job: Any, token: str) -> Any:
            self.runs.append((job.id, job.attemptsMade))
            return await run_shared_processor(
                job.data,
                job.attemptsMade,
                job.stalledCounter,
                self.kind,
                job.updateProgress,
                job.log,
            )

        worker = self.bullmq.Worker(self.queue_name, process, {**self.base, **opts})
        worker.on("error", lambda error, *rest: self.errors.append(repr(error)))
        wid = f"w{next(self._ids)}"
        self.workers[wid] = worker
        return wid

    async def close_worker(self, wid: str, force: bool = False) -> None:
        await self.workers.pop(wid).close(force)

    async def sweep_stalled(self, max_stalled_count: int, interval_ms: int) -> list[str]:
        return list(await self.queue.scripts.moveStalledJobsToWait(max_stalled_count, interval_ms))

    async def start_events(self, last_event_id: str) -> str:
        eid = f"e{next(self._ids)}"
        log = self.events[eid]
        events = self.bullmq.QueueEvents(
            self.queue_name,
            {**self.base, "lastEventId": last_event_id, "blockingTimeout": 200, "autorun": False},
        )
        emit = events.emit

        def record(name: str, *args: Any, **kwargs: Any) -> None:
            if ":" not in name and name != "error":
                log.append((name, dict(args[0]) if args and isinstance(args[0], dict) else {}))
            emit(name, *args, **kwargs)

        events.emit = record
        self.queue_events[eid] = (events, asyncio.ensure_future(events.run()))
        return eid

    async def close_events(self, eid: str) -> None:
        events, task = self.queue_events.pop(eid)
        await events.close()
        await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        for worker in self.workers.values():
            await worker.close(True)
        for eid in list(self.queue_events):
            await self.close_events(eid)
        self.workers.clear()
        await self.queue.close()

    async def change_job(self, job_id: str, call: str, arg: Any = None) -> None:
        job = await self.queue.getJob(job_id)
        assert job is not None, job_id
        if call == "promote":
            await job.promote()
        elif call == "updateData":
            await job.updateData(arg)
        elif call == "changePriority":
            await job.changePriority(arg)
        else:  # BullMQ for Python 3.4 has no Job.changeDelay
            raise NotImplementedError(f"BullMQ for Python has no Job.{call}")

    async def promote_jobs(self) -> None:
        await self.queue.promoteJobs()

    async def get_workers(self) -> list[str]:
        return sorted(worker["rawname"] for worker in await self.queue.get_workers())


# -- BullMQ for Node.js ------------------------------------------------------------------


_spare_node: subprocess.Popen[bytes] | None = None


def _spawn_node() -> subprocess.Popen[bytes]:
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    pipe = subprocess.PIPE
    return subprocess.Popen(
        ["node", str(NODE_SCRIPT)], stdin=pipe, stdout=pipe, stderr=pipe, env=env
    )


def take_node_process() -> subprocess.Popen[bytes]:
    """A ``node peer.cjs`` that has loaded bullmq, and a new one started for next time:
    loading bullmq takes most of a second, and most interop tests start a Node peer."""
    global _spare_node
    process = _spare_node if _spare_node and _spare_node.poll() is None else _spawn_node()
    _spare_node = _spawn_node()
    return process


@atexit.register
def _stop_spare_node() -> None:
    if _spare_node is not None and _spare_node.poll() is None:
        _spare_node.kill()
        _spare_node.wait()
        for pipe in (_spare_node.stdin, _spare_node.stdout, _spare_node.stderr):
            if pipe is not None:
                pipe.close()


class NodePeer(Peer):
    """``node peer.cjs`` as a subprocess; every method is one JSON-lines request."""

    kind = "node"
    REPLY_TIMEOUT = 30.0

    def __init__(self, url: str, prefix: str, queue: str) -> None:
        super().__init__(url, prefix, queue)
        self.process: subprocess.Popen[bytes] | None = None
        self.version: str | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._stderr: list[str] = []
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> NodePeer:
        self.process = take_node_process()
        assert self.process.stdin and self.process.stdout and self.process.stderr
        loop = asyncio.get_running_loop()
        self._stdin, _ = await loop.connect_write_pipe(asyncio.Protocol, self.process.stdin)
        streams = []
        for pipe in (self.process.stdout, self.process.stderr):
            reader = asyncio.StreamReader(limit=2**24)
            await loop.connect_read_pipe(lambda r=reader: asyncio.StreamReaderProtocol(r), pipe)
            streams.append(reader)
        self._readers = [
            asyncio.create_task(self._read_stdout(streams[0])),
            asyncio.create_task(self._read_stderr(streams[1])),
        ]
        attach = {"url": self.url, "prefix": self.prefix, "queue": self.queue_name}
        self.version = await self.request("attach", **attach)
        return self

    def stderr(self) -> str:
        return "".join(self._stderr)[-4000:] or "(no stderr)"

    async def _read_stdout(self, stdout: asyncio.StreamReader) -> None:
        async for line in stdout:
            message = json.loads(line)
            if "id" in message:
                future = self._pending.pop(message["id"], None)
                if future is None or future.done():
                    continue
                if message["ok"]:
                    future.set_result(message["result"])
                else:
                    future.set_exception(RuntimeError(f"node peer: {message['error']}"))
            elif message["notice"] == "run":
                self.runs.append((message["jobId"], message["attemptsMade"]))
            elif message["notice"] == "event":
                # "drained" has no fields: its first argument is the entry id.
                fields = message["args"] if isinstance(message["args"], dict) else {}
                self.events[message["eid"]].append((message["event"], fields))
            elif message["notice"] == "error":
                self.errors.append(message["message"])
        await asyncio.sleep(0.05)  # let stderr catch up: it says why
        died = RuntimeError(f"the Node peer exited: {self.stderr()}")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(died)

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        async for line in stderr:
            self._stderr.append(line.decode(errors="replace"))

    async def request(self, cmd: str, **args: Any) -> Any:
        assert self._stdin is not None
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._stdin.write((json.dumps({"id": request_id, "cmd": cmd, **args}) + "\n").encode())
        try:
            return await asyncio.wait_for(future, self.REPLY_TIMEOUT)
        except asyncio.TimeoutError:
            raise RuntimeError(f"node peer: no reply to {cmd} ({self.stderr()})") from None

    async def add(self, name: str, data: Any, opts: dict[str, Any] | None = None) -> str:
        return await self.request("add", name=name, data=data, opts=opts or {})

    async def add_bulk(self, jobs: list[dict[str, Any]]) -> list[str]:
        return await self.request("addBulk", jobs=jobs)

    async def add_flow(self, tree: dict[str, Any]) -> dict[str, Any]:
        return await self.request("addFlow", tree=tree)

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        return await self.request("getJob", jobId=job_id)

    async def get_job_counts(self, *types: str) -> dict[str, int]:
        return await self.request("getJobCounts", types=list(types))

    async def get_job_state(self, job_id: str) -> str:
        return await self.request("getJobState", jobId=job_id)

    async def pause(self) -> None:
        await self.request("pause")

    async def resume(self) -> None:
        await self.request("resume")

    async def is_paused(self) -> bool:
        return await self.request("isPaused")

    async def set_global_concurrency(self, concurrency: int) -> None:
        await self.request("setGlobalConcurrency", concurrency=concurrency)

    async def set_global_rate_limit(self, max_jobs: int, duration_ms: int) -> None:
        await self.request("setGlobalRateLimit", max=max_jobs, duration=duration_ms)

    async def rate_limit(self, ms: int) -> None:
        await self.request("rateLimit", ms=ms)

    async def upsert_job_scheduler(
        self,
        scheduler_id: str,
        repeat: dict[str, Any],
        name: str,
        data: Any,
        opts: dict[str, Any] | None = None,
    ) -> str | None:
        return await self.request(
            "upsertJobScheduler",
            schedulerId=scheduler_id,
            repeat=repeat,
            name=name,
            data=data,
            opts=opts or {},
        )

    async def get_job_scheduler(self, scheduler_id: str) -> dict[str, Any] | None:
        return scheduler_view(await self.request("getJobScheduler", schedulerId=scheduler_id))

    async def remove_job_scheduler(self, scheduler_id: str) -> None:
        await self.request("removeJobScheduler", schedulerId=scheduler_id)

    async def start_worker(self, **opts: Any) -> str:
        wid = f"w{next(self._ids)}"
        await self.request("startWorker", wid=wid, opts=opts)
        return wid

    async def close_worker(self, wid: str, force: bool = False) -> None:
        await self.request("closeWorker", wid=wid, force=force)

    async def sweep_stalled(self, max_stalled_count: int, interval_ms: int) -> list[str]:
        return await self.request(
            "sweepStalled", maxStalledCount=max_stalled_count, stalledInterval=interval_ms
        )

    async def change_job(self, job_id: str, call: str, arg: Any = None) -> None:
        await self.request("changeJob", jobId=job_id, call=call, arg=arg)

    async def promote_jobs(self) -> None:
        await self.request("promoteJobs")

    async def get_metrics(self, kind: str) -> dict[str, Any]:
        return await self.request("getMetrics", type=kind)

    async def get_workers(self) -> list[str]:
        return sorted(await self.request("getWorkers"))

    async def start_events(self, last_event_id: str) -> str:
        eid = f"e{next(self._ids)}"
        await self.request("startEvents", eid=eid, lastEventId=last_event_id)
        return eid

    async def close_events(self, eid: str) -> None:
        await self.request("closeEvents", eid=eid)

    def kill(self) -> None:
        """SIGKILL: the process dies holding its locks, as after a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    async def close(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.request("shutdown"), 15)
        try:
            await asyncio.to_thread(self.process.wait, 5)
        except subprocess.TimeoutExpired:
            self.kill()
            await asyncio.to_thread(self.process.wait)
        if self._stdin is not None:
            self._stdin.close()
        await asyncio.gather(*self._readers, return_exceptions=True)


async def open_peer(kind: str, url: str, prefix: str, queue: str) -> Peer:
    """A started peer of ``kind``: ``minibull``, ``node`` or ``python``."""
    if kind == "minibull":
        return MinibullPeer(url, prefix, queue)
    if kind == "python":
        return PythonPeer(url, prefix, queue)
    if kind == "node":
        return await NodePeer(url, prefix, queue).start()
    raise ValueError(f"unknown peer kind {kind!r}")
