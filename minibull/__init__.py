"""minibull: a small BullMQ-style job queue on Redis, for learning background jobs."""

from .backoff import backoff_delay, backoff_schedule
from .clock import SystemClock, VirtualClock
from .connection import connect
from .errors import (
    ChildrenError,
    DelayedError,
    JobFailedError,
    JobNotFoundError,
    LockLostError,
    MinibullError,
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
    "ChildrenError",
    "DelayedError",
    "FlowProducer",
    "Job",
    "JobFailedError",
    "JobNotFoundError",
    "LockLostError",
    "MinibullError",
    "Queue",
    "QueueEvents",
    "QueueKeys",
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
