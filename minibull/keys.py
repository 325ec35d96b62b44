"""Every Redis key of a queue, in one place (BullMQ's layout).

A queue named ``emails`` with the default prefix ``bull`` keeps its jobs under
``bull:emails:<job id>`` and its lists, sets and counters under
``bull:emails:<suffix>``, exactly as BullMQ does, so both can share a queue.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

#: Queue-level keys and their Redis types, in the order a learner meets them.
QUEUE_KEYS = {
    "wait": "LIST    jobs ready to run (LPUSH in, RPOPLPUSH out)",
    "active": "LIST    jobs a worker holds a lock on",
    "prioritized": "ZSET    ready jobs with a priority (score: priority * 2^32 + counter)",
    "pc": "STRING  counter that keeps equal priorities first-in first-out",
    "delayed": "ZSET    jobs waiting for a time (score: due ms * 4096 + sequence)",
    "marker": "ZSET    wake-up call that idle workers block on with BZPOPMIN",
    "completed": "ZSET    finished jobs (score: finishedOn)",
    "failed": "ZSET    failed jobs (score: finishedOn), the dead-letter queue",
    "stalled": "SET     active jobs suspected dead, checked on the next sweep",
    "stalled-check": "STRING  held while one worker sweeps for stalled jobs",
    "meta": "HASH    queue settings: paused, opts.maxLenEvents",
    "id": "STRING  counter for new job ids",
    "events": "STREAM  everything that happened, for QueueEvents",
    "limiter": "STRING  rate-limit counter",
    "repeat": "ZSET    job schedulers by next run time (hashes repeat:<id>)",
    "de:<id>": "STRING  the job that holds a deduplication id",
    "paused": "LIST    (BullMQ v5 only) jobs of a paused queue",
}

#: Keys only a feature writes (issue 16), kept apart from QUEUE_KEYS, which notebooks 02
#: and 10 print as they are: BullMQ's metrics, written by workers made with ``metrics=``.
FEATURE_KEYS = {
    "metrics:<completed|failed>": "HASH    jobs finished in all (count), and at the last point",
    "metrics:<completed|failed>:data": "LIST    jobs finished per minute, newest minute first",
    "dn:<id>": "HASH    the latest add kept while its deduplication id's job runs "
    "(keep_last_if_active), added when that job ends",
}


#: Keys of flows (issue 15), BullMQ's: a parent waits in ``waiting-children`` until its
#: ``<id>:dependencies`` set is empty; each finished child leaves its mark in one of the others.
FLOW_KEYS = {
    "waiting-children": "ZSET    parents waiting for their children (score: when they began to)",
    "<id>:dependencies": "SET     the keys of a parent's children not finished yet",
    "<id>:processed": "HASH    child key -> its return value (JSON), once it completed",
    "<id>:failed": "HASH    child key -> why it failed (ignore_dependency / continue_parent)",
    "<id>:unsuccessful": "ZSET    children that failed the parent (fail_parent_on_failure)",
}

#: The job-level suffixes of a flow, deleted with the job (BullMQ's removeJobKeys).
FLOW_JOB_SUFFIXES = ("dependencies", "processed", "failed", "unsuccessful")

#: Job ids a job may not have: a job's hash is ``<prefix>:<queue>:<id>``, so a job with one
#: of these ids would overwrite a queue-level key (``job_id="wait"`` turns the wait list into
#: a hash). Every suffix above without a ":" in it, plus BullMQ's others (queue-keys.ts).
#: ``options.check_job_id`` refuses them in Python and addJob in Lua (error -100).
RESERVED_JOB_IDS = frozenset(
    {suffix for suffix in QUEUE_KEYS if ":" not in suffix}
    | {"de", "waiting-children", "idem", "wakeup"}
)

#: Families of keys named ``<prefix>:<queue>:<family><name>`` (deduplication ids,
#: minibull's side-effect records and worker wake-ups), which ``obliterate`` finds by
#: pattern: a queue name has no ":", so only this queue's keys can match.
FAMILIES_BY_PATTERN = ("de:", "dn:", "idem:", "wakeup:", "metrics:")


@dataclass(frozen=True)
class QueueKeys:
    """The Redis key names of one queue."""

    queue: str
    prefix: str = "bull"

    def key(self, suffix: str) -> str:
        """A queue-level key, e.g. ``key("wait") == "bull:emails:wait"``."""
        return f"{self.prefix}:{self.queue}:{suffix}"

    @property
    def job_prefix(self) -> str:
        """What a job id is appended to: ``bull:emails:``."""
        return f"{self.prefix}:{self.queue}:"

    def job(self, job_id: str) -> str:
        """The hash of one job: ``bull:emails:42``."""
        return self.job_prefix + job_id

    def lock(self, job_id: str) -> str:
        """The lock a worker holds while it runs a job."""
        return self.job(job_id) + ":lock"

    def logs(self, job_id: str) -> str:
        """The list of log lines of a job."""
        return self.job(job_id) + ":logs"

    @property
    def queue_key(self) -> str:
        """The queue's name with its prefix, ``bull:emails``: BullMQ's ``queueKey``, which a
        child's ``parent`` field names its parent's queue by."""
        return f"{self.prefix}:{self.queue}"

    @property
    def waiting_children(self) -> str:
        """The zset of parents waiting for their children (flows)."""
        return self.key("waiting-children")

    def dependencies(self, job_id: str) -> str:
        """The set of a parent's unfinished children (their job keys)."""
        return self.job(job_id) + ":dependencies"

    def processed(self, job_id: str) -> str:
        """The hash of a parent's completed children: child key -> return value."""
        return self.job(job_id) + ":processed"

    def failed_children(self, job_id: str) -> str:
        """The hash of a parent's failed children it goes on without: child key -> reason."""
        return self.job(job_id) + ":failed"

    def unsuccessful(self, job_id: str) -> str:
        """The zset of a parent's children whose failure fails the parent."""
        return self.job(job_id) + ":unsuccessful"

    @property
    def wait(self) -> str:
        return self.key("wait")

    @property
    def active(self) -> str:
        return self.key("active")

    @property
    def prioritized(self) -> str:
        return self.key("prioritized")

    @property
    def pc(self) -> str:
        return self.key("pc")

    @property
    def delayed(self) -> str:
        return self.key("delayed")

    @property
    def marker(self) -> str:
        return self.key("marker")

    @property
    def completed(self) -> str:
        return self.key("completed")

    @property
    def failed(self) -> str:
        return self.key("failed")

    @property
    def stalled(self) -> str:
        return self.key("stalled")

    @property
    def stalled_check(self) -> str:
        return self.key("stalled-check")

    @property
    def meta(self) -> str:
        return self.key("meta")

    @property
    def id(self) -> str:
        return self.key("id")

    @property
    def events(self) -> str:
        return self.key("events")

    @property
    def limiter(self) -> str:
        return self.key("limiter")

    @property
    def repeat(self) -> str:
        """The zset of job schedulers, scored by their next run (ms)."""
        return self.key("repeat")

    @property
    def scheduler_prefix(self) -> str:
        return self.key("repeat:")

    def scheduler(self, scheduler_id: str) -> str:
        """The hash of one job scheduler: options and job template."""
        return self.scheduler_prefix + scheduler_id

    @property
    def deduplication_prefix(self) -> str:
        return self.key("de:")

    def deduplication(self, dedup_id: str) -> str:
        """Holds the id of the job that owns a deduplication id."""
        return self.deduplication_prefix + dedup_id

    def deduplication_next(self, dedup_id: str) -> str:
        """The add kept for later by ``keep_last_if_active`` while the id's job runs (BullMQ's
        ``dn:``; the scripts build it from the job prefix, as BullMQ's do)."""
        return self.key(f"dn:{dedup_id}")

    def idempotency(self, key: str) -> str:
        """minibull's own: the record of a side effect done once (see ``minibull.idempotency``)."""
        return self.key(f"idem:{key}")

    def worker_wakeup(self, worker_id: str) -> str:
        """A zset only one worker blocks on (beside the marker), so it can be woken
        without cancelling its blocking call. minibull's own; empty, so gone, most of the time."""
        return self.key(f"wakeup:{worker_id}")

    def metrics(self, kind: str) -> str:
        """Counts of finished jobs (``kind``: completed or failed), BullMQ's ``metrics:``
        hash; its per-minute points are in the list ``metrics(kind) + ":data"``."""
        return self.key(f"metrics:{kind}")

    def client_name(self, worker_name: str | None = None) -> str:
        """A worker's Redis client name (CLIENT SETNAME), as BullMQ: ``bull:<queue name in
        base64>``, then ``:w:<worker name>`` for a named worker. Not a key: ``Queue.get_workers``
        finds the workers of a queue by it in CLIENT LIST."""
        encoded = base64.b64encode(self.queue.encode()).decode()
        suffix = f":w:{worker_name}" if worker_name else ""
        return f"{self.prefix}:{encoded}{suffix}"

    def state_key(self, state: str) -> str:
        """The list or sorted set that holds jobs in ``state``."""
        return self.key(STATE_SUFFIX[state])


#: Job states (as ``Job.get_state`` reports them) and the key that holds each.
STATE_SUFFIX = {
    "waiting": "wait",
    "active": "active",
    "prioritized": "prioritized",
    "delayed": "delayed",
    "completed": "completed",
    "failed": "failed",
    "waiting-children": "waiting-children",
}

#: States a job of a flow can be in besides ``STATES``; counted or listed only when named
#: (``get_job_counts("waiting-children")``), so the usual counts stay as they were.
FLOW_STATES = ("waiting-children",)

#: The states kept in Redis lists; the others are sorted sets.
LIST_STATES = frozenset({"waiting", "active"})
