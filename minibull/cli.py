"""The ``minibull`` command: run a worker process, look at a queue, retry failed jobs.

    minibull worker emails --processor myapp.jobs:send_email --concurrency 10
    minibull status emails
    minibull jobs emails --state failed
    minibull retry emails
    minibull server --port 6390        # a shared fakeredis server, nothing installed

Every command talks to ``--redis URL`` or ``MINIBULL_REDIS_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import RedisError

from .connection import connect, redis_url
from .job import STATES
from .queue import Queue
from .worker import Worker

EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_FORCED = 0, 1, 2, 3


class CommandError(Exception):
    """A problem the operator can fix; printed without a traceback."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def redact(url: str) -> str:
    """The URL with its password (if any) hidden, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def load_processor(path: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (the current directory is importable too)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise CommandError(
            f"--processor must look like package.module:function (got {path!r})", EXIT_USAGE
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CommandError(f"cannot import module {module_name!r}: {exc}", EXIT_USAGE) from exc
    processor = getattr(module, attribute, None)
    if not callable(processor):
        raise CommandError(f"{module_name!r} has no function {attribute!r}", EXIT_USAGE)
    return processor


def server_url(args: argparse.Namespace) -> str:
    url = args.redis or redis_url()
    if not url:
        raise CommandError(
            "no Redis to talk to: the embedded server lives inside one process. Pass --redis URL, "
            "set MINIBULL_REDIS_URL, or start a shared one with `minibull server`.",
            EXIT_USAGE,
        )
    return url


async def check_reachable(url: str) -> None:
    client = connect(url)
    try:
        await asyncio.wait_for(client.ping(), 5)
    except (RedisError, OSError, asyncio.TimeoutError) as exc:
        raise CommandError(f"cannot reach Redis at {redact(url)}: {exc}", EXIT_UNREACHABLE) from exc
    finally:
        await client.aclose()


async def run_worker(args: argparse.Namespace) -> int:
    processor = load_processor(args.processor)
    url = server_url(args)
    await check_reachable(url)
    worker = Worker(
        args.queue,
        processor,
        url,
        concurrency=args.concurrency,
        prefix=args.prefix,
        lock_duration=args.lock_duration,
        stalled_interval=args.stalled_interval,
        max_stalled_count=args.max_stalled_count,
        sandboxed=args.sandboxed,
    )
    signals_seen = 0

    def on_signal() -> None:
        nonlocal signals_seen
        signals_seen += 1
        force = signals_seen > 1
        print(
            "minibull worker: "
            + (
                "forcing close"
                if force
                else "closing after the running jobs (signal again to force)"
            ),
            file=sys.stderr,
            flush=True,
        )
        asyncio.ensure_future(worker.close(force=force))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    print(
        f"minibull worker: queue {args.queue!r} on {redact(url)}, processor {args.processor}, "
        f"concurrency {args.concurrency}, pid {os.getpid()}",
        file=sys.stderr,
        flush=True,
    )
    await worker.run()
    print("minibull worker: closed", file=sys.stderr, flush=True)
    return EXIT_FORCED if signals_seen > 1 else EXIT_OK


async def show_status(args: argparse.Namespace) -> int:
    url = server_url(args)
    await check_reachable(url)
    async with Queue(args.queue, url, prefix=args.prefix) as queue:
        counts = await queue.get_job_counts()
        paused = await queue.is_paused()
    print(f"queue {args.queue!r}" + (" (paused)" if paused else ""))
    for state in STATES:
        print(f"  {state:<12}{counts[state]:>8}")
    return EXIT_OK


async def list_jobs(args: argparse.Namespace) -> int:
    url = server_url(args)
    await check_reachable(url)
    async with Queue(args.queue, url, prefix=args.prefix) as queue:
        jobs = await queue.get_jobs(args.state, 0, args.limit - 1)
    for job in jobs:
        reason = f"  {job.failed_reason}" if job.failed_reason else ""
        print(f"{job.id}\t{job.name}\tattempts {job.attempts_made}/{job.attempts}{reason}")
    if not jobs:
        print(f"no {args.state} jobs in {args.queue!r}")
    return EXIT_OK


async def retry_failed(args: argparse.Namespace) -> int:
    url = server_url(args)
    await check_reachable(url)
    async with Queue(args.queue, url, prefix=args.prefix) as queue:
        moved = await queue.retry_jobs(args.state)
    print(f"moved {moved} {args.state} job(s) of {args.queue!r} back to waiting")
    return EXIT_OK


def serve(args: argparse.Namespace) -> int:
    from .processes import SharedServer

    server = SharedServer(args.host, args.port)
    url = server.start()
    print(f"minibull server: fakeredis on {url} (Ctrl-C to stop)", flush=True)
    stop = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        asyncio.run(wait())
    finally:
        server.close()
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minibull", description="minibull job queue tools")
    commands = parser.add_subparsers(dest="command", required=True)

    def queue_command(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("queue", help="queue name")
        command.add_argument("--redis", help="Redis URL (default: MINIBULL_REDIS_URL)")
        command.add_argument("--prefix", default="bull", help="key prefix (default: bull)")
        return command

    worker = queue_command("worker", "run a worker process until SIGINT/SIGTERM")
    worker.add_argument("--processor", required=True, help="package.module:function")
    worker.add_argument("--concurrency", type=int, default=1)
    worker.add_argument("--lock-duration", type=float, default=30.0, help="seconds")
    worker.add_argument("--stalled-interval", type=float, default=30.0, help="seconds")
    worker.add_argument(
        "--max-stalled-count",
        type=int,
        default=1,
        help="times a job may be recovered from a dead worker before it fails (default: 1)",
    )
    worker.add_argument("--sandboxed", action="store_true", help="run jobs in child processes")
    queue_command("status", "job counts per state")
    jobs = queue_command("jobs", "list jobs in a state")
    jobs.add_argument("--state", default="failed", choices=STATES)
    jobs.add_argument("--limit", type=int, default=20)
    retry = queue_command("retry", "move failed (or completed) jobs back to waiting")
    retry.add_argument("--state", default="failed", choices=("failed", "completed"))
    server = commands.add_parser("server", help="a shared fakeredis server (nothing installed)")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=6390)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``minibull`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    runners = {
        "worker": run_worker,
        "status": show_status,
        "jobs": list_jobs,
        "retry": retry_failed,
    }
    try:
        if args.command == "server":
            return serve(args)
        return asyncio.run(runners[args.command](args))
    except CommandError as exc:
        print(f"minibull: {exc}", file=sys.stderr)
        return exc.code
    except ValueError as exc:  # a bad option value, e.g. --concurrency 0
        print(f"minibull: {exc}", file=sys.stderr)
        return EXIT_USAGE
