"""Checking and shaping the options of ``Queue.add``, before anything touches Redis.

Everything here is pure: it returns the job as the ``addJob`` script expects it,
with ``opts`` in BullMQ's stored form (camelCase keys, milliseconds), or raises a
``ValueError``/``TypeError`` that names the argument.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from .backoff import normalize_backoff
from .clock import to_ms

#: BullMQ's upper bound for priorities (2^21 - 1); 0 means no priority.
MAX_PRIORITY = 2_097_151

#: The longest delay: delayed scores are due ms * 4096 in a double, exact up to 2^53,
#: so a due time must stay before about 2039; five years keeps every delay well inside.
MAX_DELAY_MS = 5 * 365 * 24 * 3600 * 1000

_INTEGER_LIKE = re.compile(r"^-?\d+$")


def encode_json(value: Any, name: str) -> str:
    """JSON text of ``value``, refusing what JSON cannot hold (including NaN and infinity)."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except TypeError as exc:
        raise TypeError(f"{name} must be JSON-serialisable: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{name} must be JSON-serialisable: {exc}") from None


def check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    """An int between ``low`` and ``high`` (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (got {type(value).__name__})")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound} (got {value})")
    return value


def check_job_id(job_id: Any) -> str:
    """A custom job id: a non-empty string, not integer-like (those are ours), without ':'."""
    if not isinstance(job_id, str):
        raise TypeError(f"job_id must be a string (got {type(job_id).__name__})")
    if not job_id:
        raise ValueError("job_id must not be empty")
    if _INTEGER_LIKE.match(job_id):
        raise ValueError(
            f"job_id must not be integer-like (got {job_id!r}): those ids are generated"
        )
    if ":" in job_id:
        raise ValueError(f"job_id must not contain ':' (got {job_id!r})")
    return job_id


def normalize_keep(value: Any, name: str) -> bool | int | dict[str, int]:
    """``remove_on_*``: True, False, a count to keep, or {"age": seconds, "count": n}."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return check_int(value, name, 0)
    if isinstance(value, dict):
        unknown = set(value) - {"age", "count"}
        if unknown or not value:
            raise ValueError(
                f"{name} takes the keys 'age' (seconds) and 'count' (got {sorted(value)})"
            )
        keep: dict[str, int] = {}
        if "age" in value:
            age = value["age"]
            if isinstance(age, timedelta):
                age = age.total_seconds()
            keep["age"] = to_ms(age, f"{name} age") // 1000
        if "count" in value:
            keep["count"] = check_int(value["count"], f"{name} count", 0)
        return keep
    raise TypeError(f"{name} must be True, False, a count, or a dict with 'age' and/or 'count'")


def keep_jobs(setting: bool | int | dict[str, int] | None) -> dict[str, int]:
    """What moveToFinished keeps: count -1 = all, 0 = none, n = newest n; age in seconds."""
    if setting is True:
        return {"count": 0}
    if setting is False or setting is None:
        return {"count": -1}
    if isinstance(setting, int):
        return {"count": setting}
    keep = {"count": setting.get("count", -1)}
    if "age" in setting:
        keep["age"] = setting["age"]
    return keep


def build_job(
    name: Any,
    data: Any,
    *,
    job_id: str | None = None,
    attempts: int = 1,
    backoff: Any = None,
    delay: float | timedelta = 0,
    priority: int = 0,
    lifo: bool = False,
    remove_on_complete: Any = False,
    remove_on_fail: Any = False,
    deduplication: Any = None,
    size_limit: int | None = None,
) -> dict[str, Any]:
    """Check every argument of ``Queue.add`` and return the job for the addJob script."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string (got {type(name).__name__})")
    if not name:
        raise ValueError("name must not be empty")
    data_json = encode_json(data, "data")
    if size_limit is not None:
        check_int(size_limit, "size_limit", 1)
        size = len(data_json.encode())
        if size > size_limit:
            raise ValueError(f"data is {size} bytes as JSON, over size_limit ({size_limit} bytes)")
    check_int(attempts, "attempts", 1)
    delay_ms = to_ms(delay, "delay")
    if delay_ms > MAX_DELAY_MS:
        raise ValueError(f"delay must be at most 5 years (got {delay!r} seconds)")
    check_int(priority, "priority", 0, MAX_PRIORITY)
    if not isinstance(lifo, bool):
        raise TypeError(f"lifo must be True or False (got {lifo!r})")
    custom_id = "" if job_id is None else check_job_id(job_id)
    opts: dict[str, Any] = {"attempts": attempts, "delay": delay_ms}
    stored_backoff = normalize_backoff(backoff)
    if stored_backoff is not None:
        opts["backoff"] = stored_backoff
    if priority:
        opts["priority"] = priority
    if lifo:
        opts["lifo"] = True
    if custom_id:
        opts["jobId"] = custom_id
    for option, value in (
        ("removeOnComplete", remove_on_complete),
        ("removeOnFail", remove_on_fail),
    ):
        argument = "remove_on_complete" if option == "removeOnComplete" else "remove_on_fail"
        keep = normalize_keep(value, argument)
        if keep is not False:
            opts[option] = keep
    dedup = check_deduplication(deduplication)
    if dedup is not None:
        opts["de"] = dedup
    if size_limit is not None:
        opts["sizeLimit"] = size_limit
    spec = {
        "id": custom_id,
        "name": name,
        "data": data_json,
        "opts": json.dumps(opts, separators=(",", ":")),
        "delay": delay_ms,
        "priority": priority,
        "lifo": lifo,
    }
    if dedup is not None:
        spec["dedupId"], spec["dedupTtl"] = dedup["id"], dedup.get("ttl", 0)
    return spec


def check_deduplication(value: Any) -> dict[str, Any] | None:
    """``deduplication={"id": "...", "ttl": seconds}`` as BullMQ's ``de`` option (ttl in ms)."""
    if value is None:
        return None
    if not isinstance(value, dict) or "id" not in value or set(value) - {"id", "ttl"}:
        raise ValueError('deduplication must be a dict {"id": str, "ttl": seconds (optional)}')
    dedup_id = value["id"]
    if not isinstance(dedup_id, str) or not dedup_id:
        raise ValueError(f"deduplication id must be a non-empty string (got {dedup_id!r})")
    stored: dict[str, Any] = {"id": dedup_id}
    if value.get("ttl") is not None:
        ttl = to_ms(value["ttl"], "deduplication ttl")
        if ttl <= 0:
            raise ValueError(
                "deduplication ttl must be > 0 seconds (or left out: until the job ends)"
            )
        stored["ttl"] = ttl
    return stored
