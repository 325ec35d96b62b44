"""When a job scheduler runs next: a cron pattern in a time zone, or every N seconds.

Pure functions, apart from Redis: the worker calls ``next_run`` to plan the next
iteration, and ``check_repeat`` refuses bad options before anything is written.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from .backoff import MAX_DELAY_MS
from .clock import to_ms
from .options import MAX_COUNT, check_int, check_text

_REPEAT_KEYS = {"pattern", "every", "tz", "limit", "start_date", "end_date", "immediately"}

#: The latest date a schedule may name: the end of year 9999, as for a ``datetime``.
MAX_EPOCH_MS = 253_402_300_799_999

#: Where ``check_repeat`` looks for a cron pattern's first time: a cron pattern repeats
#: at least every 400 years (the Gregorian cycle), so if it has any time, it has one
#: soon after any start.
_CRON_PROBE_START = datetime(2000, 1, 1)


def _epoch_ms(value: Any, name: str) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be a timezone-aware datetime")
        return int(value.timestamp() * 1000)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an aware datetime or epoch seconds (got {value!r})")
    if not 0 <= value <= MAX_EPOCH_MS / 1000:  # also refuses NaN
        raise ValueError(
            f"{name} must be epoch seconds between 0 and {MAX_EPOCH_MS // 1000} "
            f"(the end of year 9999) (got {value!r})"
        )
    return int(value * 1000)


def _check_pattern(pattern: Any) -> str:
    if not isinstance(pattern, str) or not croniter.is_valid(pattern, second_at_beginning=True):
        raise ValueError(f"repeat pattern is not a valid cron pattern: {pattern!r}")
    check_text(pattern, "repeat pattern")
    try:
        croniter(pattern, _CRON_PROBE_START, second_at_beginning=True).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(
            f"repeat pattern {pattern!r} never fires: no date matches it (e.g. 31 February)"
        ) from None
    return pattern


def check_repeat(repeat: Any) -> dict[str, Any]:
    """Validate ``repeat=`` options; return them in BullMQ's stored form (ms, camelCase)."""
    if not isinstance(repeat, dict):
        raise TypeError(f"repeat must be a dict with 'pattern' or 'every' (got {repeat!r})")
    unknown = set(repeat) - _REPEAT_KEYS
    if unknown:
        raise ValueError(
            f"repeat has unknown keys {sorted(unknown)} (allowed: {sorted(_REPEAT_KEYS)})"
        )
    if ("pattern" in repeat) == ("every" in repeat):
        raise ValueError("repeat needs exactly one of 'pattern' (cron) or 'every' (seconds)")
    stored: dict[str, Any] = {}
    if "pattern" in repeat:
        stored["pattern"] = _check_pattern(repeat["pattern"])
    else:
        every = to_ms(repeat["every"], "repeat every")
        if every <= 0:
            raise ValueError(f"repeat every must be > 0 seconds (got {repeat['every']!r})")
        if every > MAX_DELAY_MS:
            raise ValueError(f"repeat every must be at most 5 years (got {repeat['every']!r})")
        stored["every"] = every
    if "tz" in repeat:
        try:
            ZoneInfo(repeat["tz"])
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"repeat tz is not a known time zone: {repeat['tz']!r}") from None
        stored["tz"] = repeat["tz"]
    if "limit" in repeat:
        stored["limit"] = check_int(repeat["limit"], "repeat limit", 1, MAX_COUNT)
    for key, stored_key in (("start_date", "startDate"), ("end_date", "endDate")):
        if key in repeat:
            stored[stored_key] = _epoch_ms(repeat[key], f"repeat {key}")
    if stored.get("startDate", 0) > stored.get("endDate", float("inf")):
        raise ValueError("repeat start_date must be before end_date")
    immediately = repeat.get("immediately", False)
    if not isinstance(immediately, bool):
        raise TypeError("repeat immediately must be True or False")
    if immediately:
        stored["immediately"] = True
    return stored


def _next_cron(pattern: str, tz_name: str | None, after_ms: int) -> int:
    """The first cron time strictly after ``after_ms``, read on the wall clock of ``tz``.

    croniter walks naive wall-clock times (its aware arithmetic is wrong on DST
    days); zoneinfo then places them with the offset from before the change:
    - a time the spring change skips runs as late after the gap as it was into it:
      ``30 2 * * *`` in Paris on the last Sunday of March runs at 03:30 CEST (the
      instant 02:30 winter time would have been), not at 03:00;
    - a time the autumn change repeats runs once, at its first occurrence, so
      ``*/15 * * * *`` goes from 02:45 CEST to 03:00 CET and skips the repeated
      hour (Debian's cron runs such wildcard jobs through it; fixed times once).
    tests/test_schedulers.py checks both.
    """
    zone = ZoneInfo(tz_name) if tz_name else timezone.utc
    local = datetime.fromtimestamp(after_ms / 1000, zone).replace(tzinfo=None)
    walker = croniter(pattern, local, second_at_beginning=True)
    while True:
        candidate = walker.get_next(datetime).replace(tzinfo=zone)
        when = int(candidate.timestamp() * 1000)
        if when > after_ms:
            return when


def next_run(repeat: dict[str, Any], now: int, previous: int | None = None) -> int | None:
    """When to run next (epoch ms), given the stored options, the time now and the last run.

    ``previous`` is None for the first run. Returns None when the schedule has ended
    (past ``endDate``); the caller enforces ``limit``.
    """
    start = max(now, int(repeat.get("startDate", 0)))
    if previous is None:
        if repeat.get("immediately"):
            when = start
        elif "every" in repeat:
            when = start
        else:  # strictly after now (as cron-parser in BullMQ), or from start_date on
            after = start - 1 if start > now else now
            when = _next_cron(repeat["pattern"], repeat.get("tz"), after)
    elif "every" in repeat:
        every = int(repeat["every"])
        when = previous + every
        if when < now:  # missed runs while nobody was working: skip to the next slot
            when = previous + ((now - previous) // every + 1) * every
    else:
        when = _next_cron(repeat["pattern"], repeat.get("tz"), max(previous, now))
    end = repeat.get("endDate")
    if end is not None and when > int(end):
        return None
    return when


def describe(repeat: dict[str, Any]) -> str:
    """A short human description: ``cron '0 8 * * *' (Europe/Paris)`` or ``every 3600 s``."""
    if "pattern" in repeat:
        return f"cron {repeat['pattern']!r} ({repeat.get('tz', 'UTC')})"
    return f"every {int(repeat['every']) / 1000:g} s"


__all__ = ["check_repeat", "describe", "next_run"]
