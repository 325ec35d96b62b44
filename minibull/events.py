"""QueueEvents: follow what happens to a queue, from any process, through its events stream."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

from redis.asyncio import Redis

from .clock import Pace
from .connection import blocking_limit, on_reconnect, reconnect_error, resolve
from .keys import QueueKeys
from .queue import check_queue_name

logger = logging.getLogger("minibull.events")

#: Fields that hold JSON text, decoded for you (as BullMQ's QueueEvents does).
_JSON_FIELDS = {"completed": "returnvalue", "progress": "data"}


def decode_event(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """One stream entry as a dict: ``{"event": "completed", "jobId": "1", ..., "id": entry_id}``."""
    event = dict(fields)
    json_field = _JSON_FIELDS.get(event.get("event", ""))
    if json_field and json_field in event:
        try:
            event[json_field] = json.loads(event[json_field])
        except ValueError:
            pass
    event["id"] = entry_id
    return event


class QueueEvents:
    """The events of queue ``name``: ``async for event in events`` or ``events.on(name, callback)``.

    Starts after the newest event at the time you enter ``async with`` (or call
    ``start()``, or first iterate); ``last_event_id="0"`` replays the whole stream.
    One QueueEvents either delivers to listeners or is iterated, not both.

    It ends only when closed: a failed read (a lost connection, any Redis error) is
    reported, then retried after a back-off; a listener that raises is reported and
    the others still get the event. Reports are log lines and calls of the ``"error"``
    listeners with the exception (as BullMQ's QueueEvents emits ``error``).
    """

    def __init__(
        self,
        name: str,
        connection: str | Redis | None = None,
        *,
        prefix: str = "bull",
        last_event_id: str = "$",
        block: float = 1.0,
    ) -> None:
        self.name = check_queue_name(name)
        self.keys = QueueKeys(self.name, prefix)
        self.redis, self._owns_redis = resolve(connection)
        self.last_event_id = last_event_id
        self.block_ms = max(1, int(blocking_limit(self.redis, block) * 1000))
        self._listeners: dict[str, list[Callable[..., Any]]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._entered = False

    def on(self, event: str, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(event_dict)`` for each event named ``event`` (``"*"``: all;
        ``"error"``: ``callback(exception)`` for each failure reported).

        Inside ``async with`` (or after ``start()``) the events are delivered at once.
        """
        self._listeners[event].append(callback)
        if self._entered and self._task is None:
            self._task = asyncio.create_task(self.run())

    async def _resolve_start(self) -> None:
        if self.last_event_id == "$":
            newest = await self.redis.xrevrange(self.keys.events, count=1)
            self.last_event_id = newest[0][0] if newest else "0-0"

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        if self._task is not None:
            raise RuntimeError(
                "this QueueEvents delivers its events to listeners (on); "
                "iterate over another QueueEvents"
            )
        return self._follow()

    async def _follow(self) -> AsyncIterator[dict[str, Any]]:
        pace = Pace()
        stop_reconnect_reports = on_reconnect(self.redis, self._report_reconnect)
        try:
            while not self._closed:
                try:
                    await self._resolve_start()
                    replies = await self.redis.xread(
                        {self.keys.events: self.last_event_id}, block=self.block_ms, count=500
                    )
                except Exception as exc:  # reconnects on the next call, after a back-off
                    await self._report("reading the events stream", exc)
                    await asyncio.sleep(pace.next())
                    continue
                pace.reset()
                for _stream, entries in replies or []:
                    for entry_id, fields in entries:
                        self.last_event_id = entry_id
                        yield decode_event(entry_id, fields)
        finally:
            stop_reconnect_reports()

    async def run(self) -> None:
        """Call the listeners for every event until closed."""
        async for event in self._follow():
            name = event.get("event", "")
            for callback in self._listeners.get(name, []) + self._listeners.get("*", []):
                try:
                    result = callback(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    await self._report(f"a {name!r} listener", exc)

    async def _report(self, task: str, exc: BaseException) -> None:
        """A log line naming what failed, and the ``"error"`` listeners."""
        logger.warning("events of %s: %s failed: %s: %s", self.name, task, type(exc).__name__, exc)
        for callback in list(self._listeners.get("error", ())):
            try:
                result = callback(exc)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("events of %s: an 'error' listener failed", self.name)

    async def _report_reconnect(self, error: Exception) -> None:
        await self._report("reading the events stream", reconnect_error(error))

    async def start(self) -> asyncio.Task[None]:
        """Fix the starting point now, then deliver events to listeners in the background."""
        await self._resolve_start()
        if self._task is None:
            self._task = asyncio.create_task(self.run())
        return self._task

    async def __aenter__(self) -> QueueEvents:
        """Fix the starting point now (nothing added after this is missed)."""
        await self._resolve_start()
        self._entered = True
        if self._listeners:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop following and close the connection if we opened it."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._owns_redis:
            await self.redis.aclose()
