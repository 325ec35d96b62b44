"""One module per library: how to enqueue a job, and how to run a worker.

Every adapter module has the same names, so the child process (``bench.child``)
treats all libraries alike:

- ``BULK``: whether the library has a bulk enqueue; ``IN_PROCESS_CONCURRENCY``:
  whether one worker process can run several jobs at once.
- ``Producer(url, queue, kind)`` with ``add_one(i)``, ``add_bulk(start, count)``, ``close()``.
- ``SCENARIOS`` (optional): the only scenarios it takes part in (``minibull_sync``,
  ``minibull_threads``).
- ``serve(url, queue, concurrency, kind, go)``: build a worker, call ``go()`` (which
  blocks until the driver says start), then run jobs until the process is stopped.

Methods and ``serve`` are coroutines for asyncio libraries and plain functions for
the others. Jobs are ``noop`` (return at once) or ``io`` (sleep 10 ms: ``asyncio.sleep``
in asyncio libraries, ``time.sleep`` in thread-based ones) and call
``bench.probe.job_done()``.
"""

LIBRARIES = (
    "minibull",
    "minibull_hiredis",
    "minibull_sync",
    "minibull_threads",
    "bullmq",
    "rq",
    "arq",
    "saq",
    "huey",
    "dramatiq",
)
IO_SECONDS = 0.01
