"""Ready-made processors for demos: ``minibull worker q --processor minibull.examples:noop``."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from .job import Job


async def send_email(job: Job) -> dict[str, Any]:
    """Pretend to send an email: wait ``data["seconds"]`` (default 0.01), like slow I/O."""
    await asyncio.sleep(
        float(job.data.get("seconds", 0.01)) if isinstance(job.data, dict) else 0.01
    )
    to = job.data.get("to") if isinstance(job.data, dict) else None
    return {"sent_to": to}


async def whoami(job: Job) -> dict[str, int]:
    """Say which process ran the job (after ``data["seconds"]``, default 0)."""
    seconds = float(job.data.get("seconds", 0)) if isinstance(job.data, dict) else 0
    if seconds:
        await asyncio.sleep(seconds)
    return {"pid": os.getpid()}


def crunch(job: Job) -> dict[str, int]:
    """CPU-bound work for ``data["seconds"]``: counts loops, holds the CPU."""
    end = time.monotonic() + float(job.data.get("seconds", 1.0))
    loops = 0
    while time.monotonic() < end:
        loops += 1
    return {"loops": loops, "pid": os.getpid()}


async def noop(job: Job) -> None:
    """Do nothing: for measuring the queue itself."""
    return None
