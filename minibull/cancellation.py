"""Cancelling a running attempt: ``worker.cancel_job(job_id)`` and the ``timeout=`` job option.

A cancelled attempt fails: with the processor's own error if it raised one in response
(an ``UnrecoverableError`` stops the retries), else with ``JobCancelledError`` naming the
reason. Like any failure it is retried while ``attempts`` are left (as BullMQ's cancelled
jobs are). How a processor hears of it depends on how it runs:

- ``async def`` processors: their task is cancelled (``asyncio.CancelledError`` at the
  ``await`` they are in; clean up in ``finally``).
- Processors in a thread (plain ``def``): a thread cannot be stopped from outside. The
  worker stops waiting for it at once (the attempt fails, the slot is free, the lock is
  let go) and the thread should stop on its own: give the processor a second parameter
  and it gets a ``CancelSignal`` to check (``signal.cancelled``, ``raise_if_cancelled()``).
  What it returns afterwards is ignored.
- Sandboxed processors (a child process): the child is killed; one that takes a second
  parameter gets a ``CancelSignal`` in the child, set first, and ``sandbox.CANCEL_GRACE``
  (1 s) to stop on it (its ``reason`` stays None there).

Any processor with a second parameter gets the signal, so it can read ``signal.reason``.
The first of "the processor returned" and "the attempt was cancelled" to reach the worker's
event loop decides the outcome: an attempt is recorded once, whichever wins.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import Any

from .clock import Clock
from .errors import JobCancelledError


class CancelSignal:
    """Tells a processor its attempt was cancelled (``cancel_job``, or its ``timeout``);
    safe to read from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def __repr__(self) -> str:
        return f"CancelSignal(cancelled={self.cancelled}, reason={self.reason!r})"

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise ``JobCancelledError`` (with the reason) once the attempt was cancelled."""
        if self.cancelled:
            raise JobCancelledError(self.reason or "cancelled")

    def wait(self, timeout: float | None = None) -> bool:
        """Block (a thread) until cancelled or ``timeout`` seconds; True if cancelled."""
        return self._event.wait(timeout)

    def _set(self, reason: str) -> None:
        self.reason = reason
        self._event.set()


def wants_signal(processor: Callable[..., Any]) -> bool:
    """True when ``processor`` takes a second positional parameter (the ``CancelSignal``),
    as BullMQ passes its AbortSignal to a processor that declares one."""
    try:
        parameters = inspect.signature(processor).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: called with the job only
        return False
    positional = 0
    for parameter in parameters:
        if parameter.kind == parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


class Attempt:
    """One run of a processor that can be cancelled: the task running it, its signal, and
    where it is: taken (a cancel now fails it before the processor starts), running (a
    cancel stops it), or ended (a cancel does nothing)."""

    def __init__(self, job_id: str, task: asyncio.Task[Any]) -> None:
        self.job_id = job_id
        self.task = task
        self._signal: CancelSignal | None = None  # made when needed: most runs never are
        self.running = False
        self.ended = False
        self.task_cancelled = False  # task.cancel() was called (Python 3.11+ counts it)
        self._stop_timer: Callable[[], None] = lambda: None

    @property
    def signal(self) -> CancelSignal:
        """What the processor may be given, and what a cancel sets."""
        if self._signal is None:
            self._signal = CancelSignal()
        return self._signal

    @property
    def cancelled(self) -> bool:
        return self._signal is not None and self._signal.cancelled

    def cancel(self, reason: str) -> bool:
        """Cancel the attempt unless it has ended (True), else do nothing (False)."""
        if self.ended or self.cancelled:
            return False
        self.signal._set(reason)
        if self.running:
            self.task.cancel()
            self.task_cancelled = True
        return True

    def start(self, clock: Clock, now: int, timeout_ms: int | None) -> bool:
        """The processor starts now (False: it must not, the attempt was cancelled already);
        cancel it ``timeout_ms`` later on ``clock``, if given."""
        if self.cancelled:
            return False
        self.running = True
        if timeout_ms:
            reason = f"job {self.job_id} timed out after {timeout_ms / 1000:g} s (its timeout)"
            self._stop_timer = call_later(clock, now + timeout_ms, lambda: self.cancel(reason))
        return True

    def end(self) -> None:
        """The processor returned or raised: later cancels do nothing, the timer is dropped."""
        self.running, self.ended = False, True
        self._stop_timer()

    def outcome(self, error: BaseException | None) -> BaseException | None:
        """The error the attempt fails with: None if it was not cancelled and succeeded.
        A cancelled attempt fails, with the processor's own error unless that was the
        cancellation itself (or it returned as if nothing happened)."""
        if not self.cancelled:
            return error
        if error is None or isinstance(error, asyncio.CancelledError):
            return JobCancelledError(self.signal.reason or "cancelled")
        return error


def timeout_ms(opts: dict[str, Any]) -> int | None:
    """The job's ``timeout`` option in ms (``opts.timeout``), or None; a value another client
    wrote that is not a positive number is ignored, as BullMQ ignores the option."""
    value = opts.get("timeout")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 2**53:
        return int(value)
    return None


def call_later(clock: Clock, when: int, callback: Callable[[], Any]) -> Callable[[], None]:
    """Run ``callback`` when ``clock`` reaches ``when`` (epoch ms); returns a cancel function.
    A virtual clock fires it as time is advanced; real time uses the event loop's timer."""
    if clock.virtual:
        timer = clock.call_at(when, callback)
        return timer.cancel if timer is not None else (lambda: None)
    delay = max(0.0, (when - clock.now()) / 1000)
    handle = asyncio.get_running_loop().call_later(delay, callback)
    return handle.cancel
