"""Side effects that happen once, although a job may run more than once.

Retries and stalled-job recovery mean a processor can run twice (delivery is
at-least-once). Wrap each side effect that must not repeat (send the email,
charge the card) in ``once``: the first run claims the key in Redis
(``SET NX`` with a lease), does it, and records the result; a later run of the
same job finds the record and gets the stored result back without doing it again.

    async def process(job):
        receipt = await once(job, f"charge:{job.data['order']}", lambda: charge(job.data))
        await once(job, f"email:{job.data['order']}", lambda: send_receipt(receipt))

While the action runs, its claim's lease is renewed (every third of ``lease``), as
a job's lock is. If the action raises, the claim is dropped so a later run can try
again; if its outcome is unknown (cancelled, timed out, the process dying), the
claim is kept until its lease ends, so the retry that comes soon after does not
repeat an effect that may have happened. A run that dies between doing the effect
and recording it can still repeat it once the lease ends: that is as close to
exactly-once as a side effect outside Redis gets.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from .backoff import MAX_DELAY_MS
from .clock import to_ms
from .errors import MinibullError
from .job import Job
from .options import encode_json
from .queue import Queue
from .scripts import Scripts, extend_side_effect_args

T = TypeVar("T")

logger = logging.getLogger("minibull.idempotency")


class SideEffectBusyError(MinibullError):
    """Another run holds the claim on this side effect right now; try again later."""


async def once(
    job: Job,
    key: str,
    action: Callable[[], Awaitable[T] | T],
    *,
    ttl: float | timedelta = timedelta(days=7),
    lease: float | timedelta = 60,
) -> T:
    """Run ``action`` once for ``key`` in this job's queue; later calls return its result.

    ``ttl``: how long the record is kept (seconds); ``lease``: how long a claim
    holds if the run that made it dies (renewed while the action runs). The result
    must be JSON-serialisable.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"key must be a non-empty string (got {key!r})")
    ttl_ms, lease_ms = _check_ms(ttl, "ttl"), _check_ms(lease, "lease")
    queue = _queue_of(job)
    claim = Claim(queue.scripts, key, queue.keys.idempotency(key), lease_ms)
    reply = await queue.scripts.claim_side_effect(claim.record_key, claim.token, lease_ms)
    if reply[0] == "done":
        return json.loads(reply[1])
    if reply[0] == "busy":
        raise SideEffectBusyError(f"side effect {key!r} is being done by another run")
    result = await claim.run(action)
    await claim.record(result, ttl_ms)
    return result


def _check_ms(value: float | timedelta, name: str) -> int:
    """``value`` in ms, checked before anything is claimed: from 1 ms to 5 years."""
    ms = to_ms(value, name)
    if not 1 <= ms <= MAX_DELAY_MS:
        raise ValueError(f"{name} must be from 0.001 s to 5 years (got {value!r})")
    return ms


class Claim:
    """This run's claim on a side effect: renewed while the action runs, then settled."""

    def __init__(self, scripts: Scripts, key: str, record_key: str, lease_ms: int) -> None:
        self.scripts, self.key, self.record_key = scripts, key, record_key
        self.lease_ms = lease_ms
        self.token = uuid.uuid4().hex

    async def run(self, action: Callable[[], Awaitable[T] | T]) -> T:
        """Run ``action`` with the lease renewed; on failure, drop or keep the claim."""
        stop = asyncio.Event()
        renewal = asyncio.ensure_future(self._renew_until(stop))
        try:
            result = action()
            if inspect.isawaitable(result):
                result = await result
            return result
        except BaseException as exc:
            if _outcome_unknown(exc):
                logger.warning(
                    "side effect %r: outcome unknown (%s); its claim stays until the lease ends",
                    self.key,
                    type(exc).__name__,
                )
            else:  # the action said it failed: a later run may try again
                stop.set()
                await renewal
                await self.scripts.settle_side_effect(self.record_key, self.token, done=False)
            raise
        finally:
            stop.set()
            await renewal

    async def _renew_until(self, stop: asyncio.Event) -> None:
        """Every third of the lease, push its end further, until ``stop`` or the claim is lost."""
        interval = self.lease_ms / 3000
        while not await _wait(stop, interval):
            try:
                args = extend_side_effect_args(self.record_key, self.token, self.lease_ms)
                if not await self.scripts.run("extendSideEffect", args):
                    logger.warning("side effect %r: the claim was lost while it ran", self.key)
                    return
            except Exception as exc:  # e.g. Redis unreachable: try again at the next interval
                logger.warning("side effect %r: cannot renew its claim: %s", self.key, exc)

    async def record(self, result: Any, ttl_ms: int) -> None:
        """Record that the effect happened, with its result (or null, then TypeError)."""
        try:
            text, problem = encode_json(result, "the side effect's result"), None
        except (TypeError, ValueError) as exc:
            text, problem = "null", exc  # the effect happened: it must not run again
        if not await self._settle(text, ttl_ms):
            await self._record_after_expiry(text, ttl_ms)
        if problem is not None:
            raise TypeError(
                f"{problem} (side effect {self.key!r} is recorded as done with result None, "
                "so it will not run again)"
            ) from problem

    async def _settle(self, text: str, ttl_ms: int) -> bool:
        return await self.scripts.settle_side_effect(
            self.record_key, self.token, done=True, result=text, ttl_ms=ttl_ms
        )

    async def _record_after_expiry(self, text: str, ttl_ms: int) -> None:
        """The lease ended while the action ran: record it if nobody claimed it meanwhile."""
        reply = await self.scripts.claim_side_effect(self.record_key, self.token, self.lease_ms)
        if reply[0] == "claimed" and await self._settle(text, ttl_ms):
            logger.warning(
                "side effect %r: its claim expired while it ran; recorded now (no other run "
                "had claimed it)",
                self.key,
            )
            return
        other = "recorded it too" if reply[0] == "done" else "is doing it now"
        logger.warning(
            "side effect %r: its claim expired while it ran and another run %s: "
            "it may have happened twice (use a longer lease)",
            self.key,
            other,
        )


def _outcome_unknown(exc: BaseException) -> bool:
    """Cancelled, timed out or interrupted: the effect may or may not have happened."""
    return isinstance(exc, (TimeoutError, asyncio.TimeoutError)) or not isinstance(exc, Exception)


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True if it is set."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        pass
    return event.is_set()


def _queue_of(job: Job) -> Queue:
    """The Queue a job was read from (``once`` keeps its records in that queue's keys)."""
    if not isinstance(job.queue, Queue):
        raise RuntimeError("this Job is not attached to a Queue")
    return job.queue


async def forget(job: Job, key: str) -> None:
    """Drop the record of a side effect, so that it can happen again."""
    queue = _queue_of(job)
    await queue.scripts.forget_side_effect(queue.keys.idempotency(key))


__all__ = ["SideEffectBusyError", "forget", "once"]
