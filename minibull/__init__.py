"""minibull: a small BullMQ-style job queue on Redis, for learning background jobs."""

from .backoff import backoff_delay, backoff_schedule
from .cancellation import CancelSignal
from .clock import SystemClock, VirtualClock
from .connection import connect
from .errors import (
    ChildrenError,
    DelayedError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    LockLostError,
    MinibullError,
    RateLimitError,
    UnrecoverableError,
    WaitingChildrenError,
)
from .events import QueueEvents
from .flow import FlowProducer
from .idempotency import SideEffectBusyError, once
from .job import STATES, Job
from .keys import QueueKeys
from .queue import Queue
from .sync_queue import SyncQueue
from .worker import Worker

__all__ = [
    "CancelSignal",
    "ChildrenError",
    "DelayedError",
    "FlowProducer",
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
    "WaitingChildrenError",
    "Worker",
    "backoff_delay",
    "backoff_schedule",
    "connect",
    "once",
]
