"""minibull's synchronous producer: ``SyncQueue.add`` / ``add_bulk`` (enqueue scenarios
only; its jobs are run by the async ``Worker``, measured as ``minibull``)."""

from __future__ import annotations

from minibull import SyncQueue

BULK = True
IN_PROCESS_CONCURRENCY = True
#: The scenarios this adapter takes part in (the others are minibull's own).
SCENARIOS = ("enqueue_single", "enqueue_bulk")


class Producer:
    def __init__(self, url: str | None, queue: str, kind: str) -> None:
        self.queue = SyncQueue(queue, url)

    def add_one(self, i: int) -> None:
        self.queue.add("job", {"i": i})

    def add_bulk(self, start: int, count: int) -> None:
        self.queue.add_bulk(
            [{"name": "job", "data": {"i": i}} for i in range(start, start + count)]
        )

    def close(self) -> None:
        self.queue.close()


def serve(*args: object) -> None:
    raise NotImplementedError("minibull_sync is a producer; its worker is minibull's")
