"""minibull with hiredis (``pip install minibull[fast]``): redis-py parses replies in C.

The same adapter as ``minibull``'s; only this library's processes see the hiredis package
(every other process has ``bench/pure_parser`` on its path, which hides it)."""

from __future__ import annotations

from redis.utils import HIREDIS_AVAILABLE

from bench.adapters.minibull_bench import BULK, IN_PROCESS_CONCURRENCY, JOBS, Producer, serve

if not HIREDIS_AVAILABLE:
    raise RuntimeError("minibull_hiredis needs hiredis in the bench venv (make bench installs it)")

__all__ = ["BULK", "IN_PROCESS_CONCURRENCY", "JOBS", "Producer", "serve"]
