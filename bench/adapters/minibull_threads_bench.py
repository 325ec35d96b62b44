"""minibull running a plain function as the job: the ``Worker`` runs each call in a thread
of its own, as dramatiq and huey run theirs. 10 ms jobs only (``time.sleep``), the
like-for-like of the thread-based peers' 10 ms jobs; ``minibull`` itself runs the same
drains with an ``async def`` job (``asyncio.sleep``)."""

from __future__ import annotations

import time

from bench.adapters import IO_SECONDS
from bench.adapters.minibull_bench import BULK, IN_PROCESS_CONCURRENCY, Producer, serving
from bench.probe import job_done

#: The scenarios this adapter takes part in (the others are minibull's own).
SCENARIOS = ("drain_io_c1", "drain_io_c10", "drain_io_2p")


def io(job: object) -> None:
    time.sleep(IO_SECONDS)
    job_done()


JOBS = {"io": io}


serve = serving(JOBS)


__all__ = ["BULK", "IN_PROCESS_CONCURRENCY", "JOBS", "Producer", "SCENARIOS", "serve"]
