"""SyncQueue: the producer's side for synchronous code (a WSGI handler, a script, a shell).

The same scripts, argument builders and checks as ``Queue``, on a plain ``redis.Redis``:
no event loop and no thread. Workers stay async (``Worker``); they take these jobs as
any others.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.cluster

from .clock import Clock, SystemClock
from .connection import check_cluster_prefix, resolve_sync
from .job import Job
from .keys import QueueKeys
from .options import check_text
from .queue import (
    _batches,
    ask_counts,
    build_many,
    build_one,
    check_queue_name,
    existing_ids,
    job_as_added,
    job_hash_key,
    jobs_as_added,
)
from .scripts import SyncScripts


class SyncQueue:
    """A named queue for synchronous producers: ``add``, ``add_bulk``, ``get_job``,
    ``get_job_counts``, as ``Queue``'s but without ``await``.

    ``connection`` is a Redis URL or a ``redis.Redis`` client; by default
    ``MINIBULL_REDIS_URL`` or the embedded in-process server (the one every ``Queue``
    and ``Worker`` of the process uses). The Jobs it returns are data: their async
    methods (``get_state``, ``wait_until_finished`` ...) need a ``Queue``.
    """

    def __init__(
        self,
        name: str,
        connection: str | redis.Redis | redis.cluster.RedisCluster | None = None,
        *,
        prefix: str = "bull",
        clock: Clock | None = None,
    ) -> None:
        self.name = check_queue_name(name)
        self.prefix = check_text(prefix, "prefix")
        self.keys = QueueKeys(self.name, prefix)
        self.clock = clock or SystemClock()
        self.redis, self._owns_redis = resolve_sync(connection)
        check_cluster_prefix(self.redis, prefix)
        self.scripts = SyncScripts(self.redis, self.keys)

    def __repr__(self) -> str:
        return f"SyncQueue({self.name!r}, prefix={self.prefix!r})"

    def __enter__(self) -> SyncQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the Redis client, if the queue created it."""
        self.scripts.close()
        if self._owns_redis:
            self.redis.close()

    def add(self, name: str, data: Any, **options: Any) -> Job:
        """Add a job; returns it. The options, checks and at-least-once note of
        ``Queue.add``; a ``repeat`` schedule needs ``Queue.upsert_job_scheduler``."""
        if "repeat" in options:
            raise TypeError("SyncQueue.add takes no repeat; use Queue.upsert_job_scheduler")
        spec = build_one(name, data, options)
        now = self.clock.now()
        results = self.scripts.add_jobs(now, [spec])
        if results[0][1]:  # added: the Job is what we sent (the usual case, no read back)
            return job_as_added(results[0][0], spec, now)
        return self._jobs_as_added([spec], results, now)[0]

    def add_bulk(self, jobs: list[dict[str, Any]]) -> list[Job]:
        """Add many jobs, as ``Queue.add_bulk``: all checked first, then one addJob call per
        batch of up to ``BULK_BATCH_JOBS`` jobs (each batch atomic, the list not)."""
        built = build_many(jobs)
        added: list[Job] = []
        for batch in _batches(built):
            now = self.clock.now()
            results = self.scripts.add_jobs(now, batch)
            added.extend(self._jobs_as_added(batch, results, now))
        return added

    def _jobs_as_added(
        self, specs: list[dict[str, Any]], results: list[tuple[str, bool]], now: int
    ) -> list[Job]:
        existing = existing_ids(results)
        raws: list[dict[str, str]] = []
        if existing:
            with self.redis.pipeline(transaction=False) as pipe:
                for job_id in existing:
                    pipe.hgetall(self.keys.job(job_id))
                raws = pipe.execute()
        return jobs_as_added(specs, results, raws, now)

    def get_job(self, job_id: str) -> Job | None:
        """The job with this id, or None."""
        key = job_hash_key(self.keys, job_id)
        raw = self.redis.hgetall(key) if key else None
        return Job.from_hash(str(job_id), raw) if raw else None

    def get_job_counts(self, *states: str) -> dict[str, int]:
        """How many jobs are in each state (all states when none are named)."""
        with self.redis.pipeline(transaction=False) as pipe:
            chosen = ask_counts(pipe, self.keys, states)
            counts = pipe.execute()
        return dict(zip(chosen, map(int, counts), strict=True))
