"""Exceptions a processor raises or a caller catches."""

from __future__ import annotations


class MinibullError(Exception):
    """Base class of minibull's own errors."""


class UnrecoverableError(MinibullError):
    """Raise in a processor to fail the job now, whatever attempts are left."""


class JobFailedError(MinibullError):
    """Raised by ``Job.wait_until_finished`` when the job ended in ``failed``."""

    def __init__(self, job_id: str, failed_reason: str | None) -> None:
        super().__init__(f"job {job_id} failed: {failed_reason}")
        self.job_id = job_id
        self.failed_reason = failed_reason


class LockLostError(MinibullError):
    """A worker finished a job whose lock it no longer held (the job may run again)."""


class JobNotFoundError(MinibullError, LookupError):
    """No job with that id exists (it may have been removed)."""


class WorkerError(MinibullError):
    """A worker stopped because it could no longer work; raised by ``run()`` and ``close()``."""


class DelayedError(MinibullError):
    """Raise in a processor right after ``await job.move_to_delayed(timestamp)``: the job
    waits in ``delayed`` until then, and the run counts as no attempt (BullMQ's DelayedError)."""


class ChildrenError(MinibullError):
    """A parent of a flow cannot complete: a child is still pending, or one failed it
    (``fail_parent_on_failure``). The worker fails the job with this reason."""


class WaitingChildrenError(MinibullError):
    """Raise in a processor right after ``await job.move_to_waiting_children()`` returned
    True: the job waits in ``waiting-children`` until its children finish, then runs again
    (BullMQ's WaitingChildrenError)."""


class RateLimitError(MinibullError):
    """Raise in a processor right after ``await worker.rate_limit(seconds)`` (say, a provider
    answered 429 with Retry-After): the job goes back to the front of the line, the run
    counts as no attempt, and every worker of the queue waits until the window ends
    (BullMQ's ``Worker.RateLimitError``)."""


class JobCancelledError(MinibullError):
    """What a cancelled attempt fails with (``worker.cancel_job``, or the job's ``timeout``),
    unless the processor raised an error of its own; it is retried while attempts are left.
    Also raised by ``CancelSignal.raise_if_cancelled`` in a processor that checks."""
