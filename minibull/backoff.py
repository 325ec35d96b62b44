"""How long to wait before the next attempt: BullMQ's backoff formulas, as pure functions.

The worker schedules retries with :func:`backoff_delay`, and the plots in the
course call the same function, so a figure shows exactly what the worker does.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from typing import Any

from .clock import to_ms

BUILTIN_TYPES = ("fixed", "exponential")

#: The longest delay: delayed scores are due ms * 4096 in a double, exact up to 2^53,
#: so a due time must stay before about 2039; five years keeps every delay well inside.
#: Backoff delays are capped the same way, whatever the formula gives.
MAX_DELAY_MS = 5 * 365 * 24 * 3600 * 1000


def _delay_ms(value: Any, name: str) -> int:
    delay = to_ms(value, name)
    if delay > MAX_DELAY_MS:
        raise ValueError(f"{name} must be at most 5 years (got {value!r} seconds)")
    return delay


def normalize_backoff(backoff: Any) -> dict[str, Any] | None:
    """Turn the ``backoff=`` argument of ``Queue.add`` into BullMQ's stored form (delays in ms).

    ``5`` or ``timedelta(seconds=5)`` means fixed 5 s; a dict has ``type``
    (``fixed``, ``exponential`` or ``custom``), ``delay`` in seconds and an optional
    ``jitter`` between 0 and 1; a plain string names a custom type that the
    worker's ``backoff_strategy`` handles.
    """
    if backoff is None:
        return None
    if isinstance(backoff, (int, float, timedelta)) and not isinstance(backoff, bool):
        return {"type": "fixed", "delay": _delay_ms(backoff, "backoff")}
    if isinstance(backoff, str):
        if not backoff:
            raise ValueError("backoff type must be a non-empty string")
        return {"type": backoff}
    if not isinstance(backoff, dict):
        raise TypeError(
            "backoff must be seconds, a timedelta, a dict with 'type' and 'delay', "
            f"or a custom type name (got {type(backoff).__name__})"
        )
    unknown = set(backoff) - {"type", "delay", "jitter"}
    if unknown:
        raise ValueError(
            f"backoff has unknown keys {sorted(unknown)} (allowed: type, delay, jitter)"
        )
    kind = backoff.get("type")
    if kind not in (*BUILTIN_TYPES, "custom"):
        raise ValueError(
            f"backoff type must be 'fixed', 'exponential' or 'custom' (got {kind!r}); "
            "to use your own strategy pass its name as backoff='name' and give the "
            "Worker a backoff_strategy"
        )
    result: dict[str, Any] = {
        "type": kind,
        "delay": _delay_ms(backoff.get("delay", 0), "backoff delay"),
    }
    if "jitter" in backoff:
        jitter = backoff["jitter"]
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter <= 1:
            raise ValueError(f"backoff jitter must be a number between 0 and 1 (got {jitter!r})")
        result["jitter"] = jitter
    return result


def retry_rng(job_key: str, attempt: int) -> random.Random:
    """The random source for the jitter of one retry: seeded by the job and the attempt,
    so a run with jitter can be replayed (and plotted) exactly."""
    return random.Random(f"{job_key}:{attempt}")


def backoff_delay(
    backoff: dict[str, Any] | None, attempts_made: int, rng: random.Random | None = None
) -> int | None:
    """Milliseconds to wait after failed attempt number ``attempts_made`` (1 = the first run).

    Returns None for a type that is not built in (the worker asks its
    ``backoff_strategy``). Jitter follows BullMQ: a delay ``d`` with jitter ``j``
    becomes a random value between ``d * (1 - j)`` and ``d``. The result is at most
    ``MAX_DELAY_MS`` (5 years), also for options another client wrote.
    """
    if not backoff:
        return 0
    kind = backoff.get("type")
    delay = min(max(int(backoff.get("delay") or 0), 0), MAX_DELAY_MS)
    if kind == "fixed":
        base = delay
    elif kind == "exponential":
        # 2^48 ms is over 8,000 years: past that the exponent only makes huge integers.
        base = min(round(2 ** min(attempts_made - 1, 48) * delay), MAX_DELAY_MS)
    else:
        return None
    jitter = backoff.get("jitter") or 0
    if jitter > 0:
        draw = (rng or random).random()
        return math.floor(draw * base * jitter + base * (1 - jitter))
    return base


def backoff_schedule(backoff: Any, attempts: int, rng: random.Random | None = None) -> list[int]:
    """The waits (ms) between the runs of a job that fails every time: ``attempts - 1`` of them."""
    stored = normalize_backoff(backoff)
    waits = []
    for failed_attempt in range(1, attempts):
        wait = backoff_delay(stored, failed_attempt, rng)
        if wait is None:
            raise ValueError("backoff_schedule works for the built-in types only")
        waits.append(wait)
    return waits
