"""A Job acts through public Queue methods only (issue #14 item 3): each of its methods
calls the ``JobQueue`` method of the same purpose, and nothing else of its queue."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

import minibull
from minibull.job import Job, JobQueue

from .test_bad_input import keys_under


class RecordingQueue:
    """Has exactly the methods of ``JobQueue`` (no scripts, redis or keys): records calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        if name not in _PROTOCOL_METHODS:
            raise AttributeError(f"a Job used {name!r}, which is not a JobQueue method")

        async def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return {"change_job_delay": 5000, "move_job_to_delayed": 0}.get(name)  # ms

        return record


_PROTOCOL_METHODS = {
    name for name, _ in inspect.getmembers(JobQueue, inspect.isfunction) if not name.startswith("_")
}

#: Each public Job method, how to call it, and the queue method it must use (with the args).
DELEGATION = [
    ("get_state", (), "get_job_state", ("7",)),
    ("update_progress", (50,), "update_job_progress", ("7", 50)),
    ("log", ("a line",), "add_job_log", ("7", "a line")),
    ("get_logs", (), "get_job_logs", ("7",)),
    ("retry", (), "retry_job", ("7", "failed")),
    ("remove", (), "remove_job", ("7",)),
    ("promote", (), "promote_job", ("7",)),
    ("change_delay", (5,), "change_job_delay", ("7", 5)),
    ("update_data", ({"to": "b"},), "update_job_data", ("7", {"to": "b"})),
    ("change_priority", (3,), "change_job_priority", ("7", 3, False)),
    ("move_to_delayed", (10_000,), "move_job_to_delayed", ("7", "token-1", 10_000)),
    ("wait_until_finished", (), "wait_for_job", ("7",)),
    ("get_children_values", (), "get_children_values", ("7",)),
    ("get_dependencies", (), "get_dependencies", ("7",)),
    ("move_to_waiting_children", (), "move_job_to_waiting_children", ("7", "token-1")),
]


@pytest.mark.parametrize("method, args, queue_method, queue_args", DELEGATION)
async def test_each_job_method_calls_its_public_queue_method(
    method, args, queue_method, queue_args
):
    queue = RecordingQueue()
    job = Job("7", "email", {"to": "a"}, token="token-1", queue=queue)  # type: ignore[arg-type]
    await getattr(job, method)(*args)
    assert [(name, called) for name, called, _ in queue.calls] == [(queue_method, queue_args)]


def test_every_public_job_method_is_in_the_table():
    methods = {
        name
        for name, member in inspect.getmembers(Job, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    assert methods - {"refresh"} == {method for method, *_ in DELEGATION}


def test_job_py_imports_nothing_from_queue_py():
    tree = ast.parse(Path(minibull.job.__file__).read_text())
    imported = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    ]
    assert not [module for module in imported if module.endswith("queue")]


def test_a_queue_is_a_job_queue():
    missing = [name for name in _PROTOCOL_METHODS if not hasattr(minibull.Queue, name)]
    assert missing == []


async def test_a_workers_progress_event_comes_from_its_queue(make_worker, queue):
    seen: list[tuple[str, Any]] = []

    async def processor(job: Job) -> None:
        await job.update_progress({"step": 1})

    worker = make_worker(processor, start=False)
    worker.on("progress", lambda job, value: seen.append((job.id, value)))
    job = await queue.add("email", {})
    worker.start()
    await job.wait_until_finished(10)
    assert seen == [(job.id, {"step": 1})]
    assert (await queue.get_job(job.id)).progress == {"step": 1}


BAD_CALLS = [
    ("add_job_log", ("1", 42), {}, TypeError, "line"),
    ("add_job_log", ("1", "a line"), {"keep": -1}, ValueError, "keep"),
    ("change_job_priority", ("1", -1), {}, ValueError, "priority"),
    ("change_job_priority", ("1", 1, "yes"), {}, TypeError, "lifo"),
    ("change_job_delay", ("1", -5), {}, ValueError, "delay"),
    ("update_job_data", ("1", {"x": object()}), {}, TypeError, "data"),
    ("update_job_progress", ("1", float("nan")), {}, ValueError, "progress"),
    ("move_job_to_delayed", ("1", None, 5), {}, ValueError, "token"),
    ("move_job_to_delayed", ("1", "t", -1), {}, ValueError, "timestamp"),
    ("retry_job", ("1", "active"), {}, ValueError, "state"),
]


@pytest.mark.parametrize("method, args, kwargs, error, words", BAD_CALLS)
async def test_bad_input_to_a_job_method_writes_nothing(
    queue, prefix, method, args, kwargs, error, words
):
    with pytest.raises(error, match=words):
        await getattr(queue, method)(*args, **kwargs)
    assert await keys_under(prefix) == []
