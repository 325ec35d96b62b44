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

from .backoff import MAX_DELAY_MS, normalize_backoff
from .clock import to_ms
from .keys import RESERVED_JOB_IDS

#: BullMQ's upper bound for priorities (2^21 - 1); 0 means no priority.
MAX_PRIORITY = 2_097_151

#: The largest count (attempts, kept jobs, repeat limit) that JavaScript (BullMQ) and
#: Lua (the scripts) hold exactly: 2^53 - 1, JavaScript's Number.MAX_SAFE_INTEGER.
MAX_COUNT = 2**53 - 1

#: How deep lists and dicts may nest in ``data`` (and any JSON minibull writes: return
#: values, progress). Every worker can decode this much whatever its own stack (Python
#: stops near 1,000 levels); .NET's System.Text.Json stops at 64, Ruby's JSON at 100.
MAX_DATA_DEPTH = 100

#: The cap on ``data`` as JSON when no ``size_limit`` is given: a job's data travels
#: through one script call and is copied into the job's hash; bigger payloads belong
#: elsewhere (pass a reference). ``size_limit`` may raise it up to ``MAX_SIZE_LIMIT``.
DEFAULT_SIZE_LIMIT = 16 * 1024 * 1024

#: Redis's largest string (``proto-max-bulk-len``, 512 MB).
MAX_SIZE_LIMIT = 512 * 1024 * 1024

_INTEGER_LIKE = re.compile(r"^-?\d+$")


#: json.dumps(value, allow_nan=False, separators=(",", ":")), its encoder made once (speed
#: only: json.dumps with arguments builds an encoder per call).
_strict_json = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def encode_json(value: Any, name: str) -> str:
    """JSON text of ``value``, refusing what JSON cannot hold (NaN, infinity), lone
    surrogates, and nesting deeper than ``MAX_DATA_DEPTH``."""
    try:
        text = _strict_json(value)
    except TypeError as exc:
        raise TypeError(f"{name} must be JSON-serialisable: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{name} must be JSON-serialisable: {exc}") from None
    except RecursionError:
        raise ValueError(_too_deep(name)) from None
    # Cheap tests on the text first: most values have few brackets and no surrogate escapes.
    if text.count("[") + text.count("{") > MAX_DATA_DEPTH or "\\ud" in text:
        _check_json_value(value, name)
    return text


def _too_deep(name: str) -> str:
    return (
        f"{name} must not nest lists and dicts more than {MAX_DATA_DEPTH} levels deep "
        "(MAX_DATA_DEPTH), so that every worker can decode it"
    )


def _check_json_value(value: Any, name: str) -> None:
    """Walk a value ``json.dumps`` accepted: refuse deep nesting and lone surrogates."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            check_unicode(item, name)
        elif isinstance(item, (list, tuple, dict)):
            if depth >= MAX_DATA_DEPTH:
                raise ValueError(_too_deep(name))
            if isinstance(item, dict):
                for key in item:
                    if isinstance(key, str):
                        check_unicode(key, name)
                item = item.values()
            pending.extend((inner, depth + 1) for inner in item)


def check_unicode(text: str, name: str) -> str:
    """Refuse text that has no UTF-8 form (a lone surrogate such as '\\ud800'): Redis, Lua's
    cjson and BullMQ's workers all need valid UTF-8."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{name} must be valid Unicode text: it holds a lone surrogate "
                f"(U+{ord(text[exc.start]):04X}) that has no UTF-8 form"
            ) from None
    return text


def check_text(value: Any, name: str) -> str:
    """A non-empty string with a UTF-8 form (a job name, id, deduplication id ...)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string (got {type(value).__name__})")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return check_unicode(value, name)


def check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    """An int between ``low`` and ``high`` (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (got {type(value).__name__})")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound} (got {value})")
    return value


def check_job_id(job_id: Any) -> str:
    """A custom job id: a non-empty string, not integer-like (those are ours), without ':',
    and not the name of a queue-level key (``keys.RESERVED_JOB_IDS``, e.g. "wait")."""
    check_text(job_id, "job_id")
    if _INTEGER_LIKE.match(job_id):
        raise ValueError(
            f"job_id must not be integer-like (got {job_id!r}): those ids are generated"
        )
    if ":" in job_id:
        raise ValueError(f"job_id must not contain ':' (got {job_id!r})")
    if job_id in RESERVED_JOB_IDS:
        raise ValueError(
            f"job_id must not be one of the queue's own key names (got {job_id!r}; "
            f"reserved: {', '.join(sorted(RESERVED_JOB_IDS))})"
        )
    return job_id


def normalize_keep(value: Any, name: str) -> bool | int | dict[str, int]:
    """``remove_on_*``: True, False, a count to keep, or {"age": seconds, "count": n}."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return check_int(value, name, 0, MAX_COUNT)
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
            age_ms = to_ms(age, f"{name} age")
            if age_ms > MAX_COUNT:  # moveToFinished computes now - age in a Lua number
                raise ValueError(f"{name} age must be at most {MAX_COUNT // 1000} seconds")
            keep["age"] = age_ms // 1000
        if "count" in value:
            keep["count"] = check_int(value["count"], f"{name} count", 0, MAX_COUNT)
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
    timeout: float | timedelta | None = None,
) -> dict[str, Any]:
    """Check every argument of ``Queue.add`` and return the job for the addJob script."""
    check_text(name, "name")
    data_json = encode_json(data, "data")
    check_size(data_json, size_limit)
    check_int(attempts, "attempts", 1, MAX_COUNT)
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
    if timeout is not None:
        opts["timeout"] = check_timeout(timeout)
    spec = {
        "id": custom_id,
        "name": name,
        "data": data_json,
        "opts": _compact_json(opts),
        "delay": delay_ms,
        "priority": priority,
        "lifo": lifo,
    }
    if dedup is not None:
        if set(dedup) & set(DEDUPLICATION_MODES.values()):
            spec["de"] = dedup  # the modes: addJob's includes/deduplicateJob
        else:
            spec["dedupId"], spec["dedupTtl"] = dedup["id"], dedup.get("ttl", 0)
    return spec


def check_timeout(timeout: float | timedelta) -> int:
    """``timeout=``: seconds (> 0, at most 5 years) an attempt may run, as ms for ``opts``
    (the name of Bull 3's option; BullMQ has none and ignores it)."""
    timeout_ms = to_ms(timeout, "timeout")
    if timeout_ms <= 0 or timeout_ms > MAX_DELAY_MS:
        raise ValueError(f"timeout must be > 0 seconds and at most 5 years (got {timeout!r})")
    return timeout_ms


#: The stored options of a job added with none (speed only: ``build_plain_job``).
PLAIN_OPTS = {"attempts": 1, "delay": 0}
PLAIN_OPTS_JSON = _compact_json(PLAIN_OPTS)


def build_plain_job(name: Any, data: Any) -> dict[str, Any]:
    """Speed only (skip it when learning): ``build_job(name, data)`` for a job with no
    options, the usual add, without walking the defaults of every option."""
    check_text(name, "name")
    data_json = encode_json(data, "data")
    check_size(data_json, None)
    return {
        "id": "",
        "name": name,
        "data": data_json,
        "opts": PLAIN_OPTS_JSON,
        "delay": 0,
        "priority": 0,
        "lifo": False,
    }


def check_size(data_json: str, size_limit: int | None) -> None:
    """Refuse data over ``size_limit`` bytes as JSON (by default ``DEFAULT_SIZE_LIMIT``)."""
    if size_limit is not None:
        check_int(size_limit, "size_limit", 1, MAX_SIZE_LIMIT)
    size = len(data_json)  # bytes: json.dumps escapes everything that is not ASCII
    if size_limit is not None and size > size_limit:
        raise ValueError(f"data is {size} bytes as JSON, over size_limit ({size_limit} bytes)")
    if size_limit is None and size > DEFAULT_SIZE_LIMIT:
        raise ValueError(
            f"data is {size} bytes as JSON, over the default limit of {DEFAULT_SIZE_LIMIT} bytes "
            f"({DEFAULT_SIZE_LIMIT / 2**20:g} MiB); store big payloads elsewhere and pass a "
            f"reference, or pass size_limit=<bytes> (at most {MAX_SIZE_LIMIT})"
        )


def check_deduplication(value: Any) -> dict[str, Any] | None:
    """``deduplication={"id": "...", "ttl": seconds}`` as BullMQ's ``de`` option (ttl in ms),
    with BullMQ's modes ``extend``, ``replace`` and ``keep_last_if_active`` (see
    ``check_deduplication_modes``)."""
    if value is None:
        return None
    allowed = {"id", "ttl", *DEDUPLICATION_MODES}
    if not isinstance(value, dict) or "id" not in value or set(value) - allowed:
        raise ValueError(
            'deduplication must be a dict {"id": str, "ttl": seconds (optional), "extend", '
            '"replace", "keep_last_if_active": bool (optional)}'
            + (f" (got {value!r})" if isinstance(value, dict) else f" (got {type(value).__name__})")
        )
    dedup_id = check_text(value["id"], "deduplication id")
    stored: dict[str, Any] = {"id": dedup_id}
    if value.get("ttl") is not None:
        ttl = to_ms(value["ttl"], "deduplication ttl")
        if ttl <= 0:
            raise ValueError(
                "deduplication ttl must be > 0 seconds (or left out: until the job ends)"
            )
        stored["ttl"] = ttl
    stored.update(check_deduplication_modes(value))
    return stored


#: The deduplication modes: Python keyword -> BullMQ's name in the stored ``de`` option.
DEDUPLICATION_MODES = {
    "extend": "extend",
    "replace": "replace",
    "keep_last_if_active": "keepLastIfActive",
}


def check_deduplication_modes(value: dict[str, Any]) -> dict[str, bool]:
    """BullMQ's deduplication modes, as stored (only those set to True):

    - ``extend`` (needs ``ttl``): an add within the ttl is dropped and starts the ttl again;
    - ``replace``: an add while the job holding the id is still delayed replaces it (with
      ``extend`` and a ``delay``: a debounce, the last add runs);
    - ``keep_last_if_active``: an add while that job runs is kept (the latest one) and
      added when it ends; the id is then held without ttl.
    """
    modes = {}
    for argument, stored in DEDUPLICATION_MODES.items():
        flag = value.get(argument, False)
        if not isinstance(flag, bool):
            raise TypeError(f"deduplication {argument} must be True or False (got {flag!r})")
        if flag:
            modes[stored] = True
    if modes.get("extend") and value.get("ttl") is None:
        raise ValueError(
            "deduplication extend needs a ttl (it restarts the ttl on each add); "
            'pass {"id": ..., "ttl": seconds, "extend": True}'
        )
    return modes
