"""Side effects that happen once, although a job may run more than once.

Retries and stalled-job recovery mean a processor can run twice (delivery is
at-least-once). Wrap each side effect that must not repeat (send the email,
charge the card) in ``once``: the first run claims the key in Redis
(``SET NX`` with a lease), does it, and records the result; a later run of the
same job finds the record and gets the stored result back without doing it again.

    async def process(job):
        receipt = await once(job, f"charge:{job.data['order']}", lambda: charge(job.data))
        await once(job, f"email:{job.data['order']}", lambda: send_receipt(receipt))

If a run dies between claiming and recording, the claim expires after ``lease``
seconds and a later run does the effect: a crash in that window can still
repeat it, which is as close to exactly-once as a side effect outside Redis gets.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from .clock import to_ms
from .errors import MinibullError
from .job import Job
from .options import encode_json

T = TypeVar("T")


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
    holds if the run that made it dies. The result must be JSON-serialisable.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"key must be a non-empty string (got {key!r})")
    queue = job._queue()
    record_key = queue.keys.idempotency(key)
    token = uuid.uuid4().hex
    claim = await queue.scripts.claim_side_effect(record_key, token, to_ms(lease, "lease"))
    if claim[0] == "done":
        return json.loads(claim[1])
    if claim[0] == "busy":
        raise SideEffectBusyError(f"side effect {key!r} is being done by another run")
    try:
        result = action()
        if inspect.isawaitable(result):
            result = await result
    except BaseException:
        await queue.scripts.settle_side_effect(record_key, token, done=False)
        raise
    text = encode_json(result, "the side effect's result")
    await queue.scripts.settle_side_effect(
        record_key, token, done=True, result=text, ttl_ms=to_ms(ttl, "ttl")
    )
    return result


async def forget(job: Job, key: str) -> None:
    """Drop the record of a side effect, so that it can happen again."""
    queue = job._queue()
    await queue.scripts.forget_side_effect(queue.keys.idempotency(key))


__all__ = ["SideEffectBusyError", "forget", "once"]
