"""minibull: a small BullMQ-style job queue on Redis, for learning background jobs."""

from .backoff import backoff_delay, backoff_schedule
from .cancellation import CancelSignal
from .clock import SystemClock, VirtualClock
from .connection import connect
from .errors import (
    DelayedError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    LockLostError,
    MinibullError,
    RateLimitError,
    UnrecoverableError,
)
from .events import QueueEvents
from .idempotency import SideEffectBusyError, once
from .job import STATES, Job
from .keys import QueueKeys
from .queue import Queue
from .sync_queue import SyncQueue
from .worker import Worker

__all__ = [
    "CancelSignal",
    "DelayedError",
    "Job",
    "JobCancelledError",
    "JobFailedError",
    "JobNotFoundError",
    "LockLostError",
    "MinibullError",
    "Queue",
    "QueueEvents",
    "QueueKeys",
    "RateLimitError",
    "STATES",
    "SideEffectBusyError",
    "SyncQueue",
    "SystemClock",
    "UnrecoverableError",
    "VirtualClock",
    "Worker",
    "backoff_delay",
    "backoff_schedule",
    "connect",
    "once",
]
