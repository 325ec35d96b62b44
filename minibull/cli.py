"""The ``minibull`` command: run a worker process, look at a queue, retry failed jobs.

    minibull add emails welcome '{"to": "ada@example.com"}' --attempts 3
    minibull worker emails --processor myapp.jobs:send_email --concurrency 10
    minibull status emails
    minibull jobs emails --state failed
    minibull retry emails              # --reset-attempts: each job gets all its attempts again
    minibull server --port 6390        # a shared fakeredis server, nothing installed

Every command talks to ``--redis URL`` or ``MINIBULL_REDIS_URL`` (prefer the variable
when the URL holds a password: a command line is visible to every local user).
Exit codes: 0 done, 1 Redis unreachable (or the server's port unavailable), 2 bad
usage, 3 a worker forced to close (second signal), 4 a worker that stopped on an
error it cannot get past.

A worker prints one line per job started, completed or failed on stdout (``--quiet``: none;
``--log-format json``: one JSON object a line) and a summary every ``--summary-interval``
seconds; its own messages and log lines go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import re
import signal
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

from redis.connection import parse_url
from redis.exceptions import RedisError

from .connection import connect, redis_url
from .job import STATES, Job
from .queue import Queue
from .worker import Worker

EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_FORCED, EXIT_FAILED = 0, 1, 2, 3, 4

#: A second signal within this many seconds of the first is the same request: a signal
#: to the process group reaches a sandboxed worker's children too, and they pass it on.
SIGNAL_DEBOUNCE = 1.0

SERVER_PASSWORD_VAR = "MINIBULL_SERVER_PASSWORD"

logger = logging.getLogger("minibull.cli")


class CommandError(Exception):
    """A problem the operator can fix; printed without a traceback."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL with its password (if any) hidden, for messages and logs.

    Covers ``user:password@``, a password that holds ``/``, ``#`` or ``@`` without
    percent-encoding (everything up to the last ``@`` is the user part), and
    ``?password=``. A URL odd enough to fool this loses more than the password.
    """
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        rest = f"{userinfo}@{rest}"
    return _QUERY_PASSWORD.sub(r"\1***", f"{scheme}{sep}{rest}")


def url_secrets(url: str) -> list[str]:
    """The password texts in ``url`` (as written and decoded), longest first."""
    found: list[str] = []
    _, _, rest = url.partition("://")
    if "@" in rest:
        userinfo = rest.rpartition("@")[0]
        if ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
    found += [match[1] for match in re.finditer(r"[?&]password=([^&#]*)", url, re.IGNORECASE)]
    found += [unquote(text) for text in found]
    return sorted({text for text in found if text}, key=len, reverse=True)


def scrub(text: str, url: str | None) -> str:
    """``text`` (an error message, say) with the passwords of ``url`` hidden."""
    for secret in url_secrets(url) if url else []:
        text = text.replace(secret, "***")
    return text


_UNPRINTABLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def printable(text: object) -> str:
    """``text`` with control characters escaped (``\\x1b``, ``\\n``...), safe for a terminal."""
    return "".join(
        char.encode("unicode_escape", "backslashreplace").decode("ascii")
        if unicodedata.category(char) in _UNPRINTABLE
        else char
        for char in str(text)
    )


class PrintableFormatter(logging.Formatter):
    """Log lines whose message cannot move the cursor or fake another line."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = printable(record.message)
        return super().formatMessage(record)


def load_processor(path: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (the current directory is importable too, last:
    a stray ``redis.py`` there does not shadow the real package)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise CommandError(
            f"--processor must look like package.module:function (got {path!r})", EXIT_USAGE
        )
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
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
    try:
        parse_url(url)
    except ValueError:  # not redis-py's message: it may quote part of the password
        raise CommandError(
            f"cannot read the Redis URL {redact(url)}: check the port and database, and "
            "percent-encode '/', '#', '@' or ':' in a password (e.g. '#' as %23)",
            EXIT_USAGE,
        ) from None
    return url


async def check_reachable(url: str) -> None:
    client = connect(url)
    try:
        await asyncio.wait_for(client.ping(), 5)
    except (RedisError, OSError, asyncio.TimeoutError) as exc:
        raise CommandError(
            f"cannot reach Redis at {redact(url)}: {scrub(str(exc), url)}", EXIT_UNREACHABLE
        ) from exc
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
    log_stalled_jobs(worker)
    job_log = JobLog(args.log_format, args.quiet, args.summary_interval)
    job_log.attach(worker)
    signals = SignalCounter(worker, args.shutdown_timeout)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signals.on_signal)
    say(
        f"queue {args.queue!r} on {redact(url)}, processor {args.processor}, "
        f"concurrency {args.concurrency}, pid {os.getpid()}"
    )
    return await supervise(worker, signals, job_log, url)


async def supervise(worker: Worker, signals: SignalCounter, job_log: JobLog, url: str) -> int:
    """Run the worker until it is closed; the exit code says how it ended."""
    try:
        async with job_log.summaries():
            await worker.run()
            for closing in signals.closing:
                await closing  # a close that failed says why here
    except Exception as exc:
        say(f"stopped on an error: {type(exc).__name__}: {printable(scrub(str(exc), url))}")
        return EXIT_FAILED
    say("closed")
    return EXIT_FORCED if signals.forced else EXIT_OK


def say(message: str) -> None:
    """One line of the worker's own, on stderr."""
    print(f"minibull worker: {message}", file=sys.stderr, flush=True)


class SignalCounter:
    """SIGINT/SIGTERM: the first closes the worker gracefully, a second one forces it."""

    def __init__(self, worker: Worker, shutdown_timeout: float) -> None:
        self.worker = worker
        self.shutdown_timeout = shutdown_timeout
        self.forced = False
        self.closing: list[asyncio.Future[None]] = []
        self._first: float | None = None

    def on_signal(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._first is None:
            self._first = now
            say(
                "closing after the running jobs (at most "
                f"{self.shutdown_timeout:g} s; signal again to force)"
            )
            self._close(force=False)
        elif now - self._first >= SIGNAL_DEBOUNCE and not self.forced:
            self.forced = True
            say("forcing close")
            self._close(force=True)

    def _close(self, force: bool) -> None:
        options: dict[str, Any] = {"force": force}
        if not force:  # jobs still running at the deadline are left to the stalled check
            options["timeout"] = self.shutdown_timeout
        self.closing.append(asyncio.ensure_future(self.worker.close(**options)))


def log_stalled_jobs(worker: Worker) -> None:
    """Log stalled recoveries, and jobs failed for stalling too often."""

    def on_stalled(job_id: str, *_: Any) -> None:
        logger.warning(
            "job %s stalled (its worker stopped renewing its lock): back to waiting", job_id
        )

    def on_failed(job: Any, error: BaseException, *_: Any) -> None:
        if getattr(job, "deferred_failure", None):
            logger.warning(
                "job %s failed: %s (raise --max-stalled-count to allow more recoveries)",
                job.id,
                job.deferred_failure,
            )

    worker.on("stalled", on_stalled)
    worker.on("failed", on_failed)


class JobLog:
    """The worker's job lines on stdout: one per job started, completed or failed, and a
    summary every ``interval`` seconds (0: none); text for people, or JSON for machines.

    ``attempt`` is the run this is, counted as BullMQ's ``attemptsMade`` + 1, out of the
    job's ``attempts`` option; a job retried by hand keeps its count and can pass it.
    """

    def __init__(self, log_format: str = "text", quiet: bool = False, interval: float = 60):
        self.json = log_format == "json"
        self.quiet = quiet
        self.interval = interval
        self.started: dict[str, float] = {}
        self.counts: Counter[str] = Counter()

    def attach(self, worker: Worker) -> None:
        """Listen to the worker's job events."""
        worker.on("active", self.on_active)
        worker.on("completed", self.on_completed)
        worker.on("failed", self.on_failed)

    def on_active(self, job: Job) -> None:
        self.started[job.id] = time.monotonic()
        self.job_line("started", job, job.attempts_made + 1)

    def on_completed(self, job: Job, result: Any) -> None:
        self.counts["completed"] += 1
        self.job_line("completed", job, job.attempts_made, duration=self.duration(job))

    def on_failed(self, job: Job, error: BaseException) -> None:
        final = job.finished_on is not None  # set only when no attempt is left
        self.counts["failed" if final else "retried"] += 1
        duration = self.duration(job)
        reason = job.failed_reason or type(error).__name__
        self.job_line(
            "failed", job, job.attempts_made, duration=duration, reason=reason, retry=not final
        )

    def duration(self, job: Job) -> float | None:
        start = self.started.pop(job.id, None)
        return None if start is None else round(time.monotonic() - start, 3)

    def job_line(self, event: str, job: Job, attempt: int, **fields: Any) -> None:
        if self.quiet:
            return
        record = {
            "event": event,
            "job": job.id,
            "name": job.name,
            "attempt": attempt,
            "attempts": job.attempts,
            **fields,
        }
        self.write(record if self.json else describe_job_event(record))

    def summary(self) -> None:
        """One line: what happened since the last summary, and what runs now."""
        counts = {k: self.counts[k] for k in ("completed", "failed", "retried")}
        self.counts.clear()
        record = {
            "event": "summary",
            "seconds": self.interval,
            **counts,
            "running": len(self.started),
        }
        self.write(
            record
            if self.json
            else "summary, last {seconds:g} s: {completed} completed, "
            "{failed} failed, {retried} to retry; {running} running".format(**record)
        )

    def write(self, line: dict[str, Any] | str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(line, dict):
            text = json.dumps({"time": stamp, **line})  # ASCII: control characters escaped
        else:
            text = f"{stamp} {printable(line)}"
        print(text, flush=True)

    @asynccontextmanager
    async def summaries(self) -> AsyncIterator[None]:
        """Write a summary every ``interval`` seconds while the block runs."""

        async def every_interval() -> None:
            while True:
                await asyncio.sleep(self.interval)
                self.summary()

        task = asyncio.ensure_future(every_interval()) if self.interval > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()


def describe_job_event(record: dict[str, Any]) -> str:
    """A job event as one line of text: ``job 42 welcome: completed in 0.012 s, attempt 1/3``."""
    text = f"job {record['job']} {record['name']}: {record['event']}"
    if record.get("duration") is not None:
        text += f" in {record['duration']:.3f} s"
    text += f", attempt {record['attempt']}/{record['attempts']}"
    if record["attempt"] > record["attempts"]:
        text += " (past the option: retried by hand)"
    if record["event"] == "failed":
        text += ", will retry" if record["retry"] else ", no retry left"
        text += f": {record['reason']}"
    return text


async def add_job(args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.data)
    except ValueError as exc:
        raise CommandError(
            f'data must be JSON, e.g. \'{{"to": "ada"}}\' ({exc})', EXIT_USAGE
        ) from None
    url = server_url(args)
    await check_reachable(url)
    async with Queue(args.queue, url, prefix=args.prefix) as queue:
        job = await queue.add(args.name, data, attempts=args.attempts, delay=args.delay)
    print(f"added job {printable(job.id)} ({printable(args.name)}) to {args.queue!r}")
    return EXIT_OK


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
        reason = f"  {printable(job.failed_reason)}" if job.failed_reason else ""
        past = "*" if job.attempts_made > job.attempts else ""
        print(
            f"{printable(job.id)}\t{printable(job.name)}\t"
            f"attempts {job.attempts_made}/{job.attempts}{past}{reason}"
        )
    if not jobs:
        print(f"no {args.state} jobs in {args.queue!r}")
    elif any(job.attempts_made > job.attempts for job in jobs):
        print(PAST_THE_OPTION)
    return EXIT_OK


#: The footnote of ``minibull jobs`` when a job has run more times than its option allows.
PAST_THE_OPTION = (
    "* attempts made / the job's attempts option (BullMQ's attemptsMade / opts.attempts). "
    "`minibull retry` keeps the count, so each retry adds one run past the option; "
    "`minibull retry --reset-attempts` starts the count again at 0."
)


async def retry_failed(args: argparse.Namespace) -> int:
    url = server_url(args)
    await check_reachable(url)
    async with Queue(args.queue, url, prefix=args.prefix) as queue:
        moved = await queue.retry_jobs(args.state, reset_attempts=args.reset_attempts)
    kept = (
        "attempts made reset to 0: each gets all its attempts again"
        if args.reset_attempts
        else "attempts made kept: each gets one more run (--reset-attempts: all its attempts)"
    )
    print(f"moved {moved} {args.state} job(s) of {args.queue!r} back to waiting; {kept}")
    return EXIT_OK


def serve(args: argparse.Namespace) -> int:
    from .processes import SharedServer

    password = args.password or os.environ.get(SERVER_PASSWORD_VAR) or None
    server = SharedServer(args.host, args.port, password=password)
    try:
        url = server.start()
    except OSError as exc:
        raise CommandError(
            f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}", EXIT_UNREACHABLE
        ) from None
    print(f"minibull server: fakeredis on {redact(url)} (Ctrl-C to stop)", flush=True)
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


def at_least(minimum: float, kind: type = int) -> Callable[[str], Any]:
    """An argparse type: a number >= ``minimum``."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum:g} (got {text})")
        return value

    return parse


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    port = at_least(0)(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"must be <= 65535 (got {text})")
    return port


def add_worker_options(worker: argparse.ArgumentParser) -> None:
    """The options of ``minibull worker``."""
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
    worker.add_argument(
        "--shutdown-timeout",
        type=at_least(0, float),
        default=30.0,
        help="seconds a graceful close waits for running jobs; those still running are left "
        "to the stalled check (default: 30, a container's usual grace period)",
    )
    worker.add_argument(
        "--quiet", action="store_true", help="no line per job (summaries and errors only)"
    )
    worker.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="job and summary lines on stdout as text (default) or one JSON object a line",
    )
    worker.add_argument(
        "--summary-interval",
        type=at_least(0, float),
        default=60.0,
        help="seconds between summary lines (default: 60; 0: none)",
    )


def add_server_options(server: argparse.ArgumentParser) -> None:
    server.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1); any other needs a password",
    )
    server.add_argument("--port", type=port_number, default=6390, help="default: 6390")
    server.add_argument(
        "--password",
        help=f"clients must AUTH with it (or set {SERVER_PASSWORD_VAR}: a command line is "
        "visible to every local user)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minibull", description="minibull job queue tools")
    commands = parser.add_subparsers(dest="command", required=True)

    def queue_command(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("queue", help="queue name")
        command.add_argument("--redis", help="Redis URL (default: MINIBULL_REDIS_URL)")
        command.add_argument("--prefix", default="bull", help="key prefix (default: bull)")
        return command

    add_worker_options(queue_command("worker", "run a worker process until SIGINT/SIGTERM"))
    add = queue_command("add", "add a job (to try a worker from the shell)")
    add.add_argument("name", help="the job's name")
    add.add_argument("data", nargs="?", default="{}", help="its data, as JSON (default: {})")
    add.add_argument("--attempts", type=at_least(1), default=1, help="runs allowed (default: 1)")
    add.add_argument("--delay", type=at_least(0, float), default=0.0, help="seconds (default: 0)")
    queue_command("status", "job counts per state")
    jobs = queue_command("jobs", "list jobs in a state, with attempts made / attempts allowed")
    jobs.add_argument("--state", default="failed", choices=STATES)
    jobs.add_argument("--limit", type=at_least(1), default=20, help="at most this many jobs")
    retry = queue_command("retry", "move failed (or completed) jobs back to waiting")
    retry.add_argument("--state", default="failed", choices=("failed", "completed"))
    retry.add_argument(
        "--reset-attempts",
        action="store_true",
        help="set each job's attempts made to 0, so it gets all its attempts again "
        "(default: kept, so a job that used them all gets one more run)",
    )
    add_server_options(
        commands.add_parser("server", help="a shared fakeredis server (nothing installed)")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``minibull`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    runners = {
        "worker": run_worker,
        "add": add_job,
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
    except SystemExit as exc:  # sys.exit() in a processor: the worker cannot go on
        say(f"stopped: a processor called sys.exit({exc.code!r})")
        return EXIT_FAILED
