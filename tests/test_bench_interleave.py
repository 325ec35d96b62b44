"""One add at a time is measured interleaved (``bench/run.py::interleave``): every library's
child, and minibull's floors, take turns in rounds, so a machine whose speed swings from
minute to minute touches all of them alike. Fake children and a fake server stand in for the
processes and Redis here: no peer library, no network."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import bench.child
from bench import report
from bench.child import AsyncAddJobFloor, AsyncFloor, Pooled, SyncFloor, serve_blocks
from bench.run import ServerUsage, block_sizes, interleave


class FakeServer:
    """Stands in for Redis: calls by command, CPU seconds, and which child is working."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.cpu = 0.0
        self.busy: str | None = None
        self.log: list[tuple[Any, ...]] = []

    def snapshot(self) -> tuple[dict[str, int], float]:
        self.log.append(("snapshot", self.busy))
        return dict(self.calls), self.cpu


class FakeChild:
    """A ``blocks`` child: its block's commands reach the server before it says "done"."""

    def __init__(self, name: str, server: FakeServer, per_job: dict[str, int], cpu: float) -> None:
        self.name, self.server, self.per_job, self.cpu_per_job = name, server, per_job, cpu
        self.blocks: list[int] = []
        self.asked = 0

    def start_block(self, jobs: int) -> None:
        assert self.server.busy is None, f"{self.name} asked while {self.server.busy} works"
        self.server.busy = self.name
        self.asked = jobs
        self.server.log.append(("start", self.name, jobs))

    def block_done(self, timeout: float) -> None:
        assert self.server.busy == self.name
        for command, calls in self.per_job.items():
            self.server.calls[command] = self.server.calls.get(command, 0) + calls * self.asked
        self.server.cpu += self.cpu_per_job * self.asked
        self.blocks.append(self.asked)
        self.server.busy = None


class BrokenChild(FakeChild):
    """Dies in its ``dies_in``-th block (counting from 1)."""

    def __init__(self, *args: Any, dies_in: int) -> None:
        super().__init__(*args)
        self.dies_in = dies_in

    def block_done(self, timeout: float) -> None:
        if len(self.blocks) + 1 == self.dies_in:
            self.server.busy = None
            raise RuntimeError("the process ended")
        super().block_done(timeout)


MIXES = {
    "minibull": ({"evalsha": 1, "hset": 1, "xadd": 2}, 30e-6),
    "huey": ({"lpush": 1}, 10e-6),
    "async_floor": ({"evalsha": 1}, 5e-6),
}


def fake_children(server: FakeServer) -> dict[str, FakeChild]:
    return {name: FakeChild(name, server, *mix) for name, mix in MIXES.items()}


def starts(server: FakeServer) -> list[str]:
    return [entry[1] for entry in server.log if entry[0] == "start"]


# -- the rounds --------------------------------------------------------------


@pytest.mark.parametrize("jobs, rounds", [(10_000, 20), (1003, 20), (7, 7), (5, 1)])
def test_blocks_add_up_to_the_jobs_and_are_even(jobs, rounds):
    sizes = block_sizes(jobs, rounds)
    assert len(sizes) == rounds
    assert sum(sizes) == jobs
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("rounds", [0, 11])
def test_rounds_outside_one_to_jobs_are_refused(rounds):
    with pytest.raises(ValueError, match=f"between 1 and the jobs \\(10\\) \\(got {rounds}\\)"):
        block_sizes(10, rounds)


def test_every_child_times_one_block_per_round():
    server = FakeServer()
    children = fake_children(server)
    sizes = block_sizes(1003, 7)
    usage, errors = interleave(children, sizes, server.snapshot, timeout=1)
    assert errors == {}
    for child in children.values():
        assert child.blocks == sizes
        assert sum(child.blocks) == 1003
    assert set(usage) == set(children)


def test_the_order_rotates_so_nobody_is_always_first():
    server = FakeServer()
    children = fake_children(server)
    names = list(children)
    interleave(children, block_sizes(600, 6), server.snapshot, timeout=1)
    order = starts(server)
    rounds = [order[i : i + len(names)] for i in range(0, len(order), len(names))]
    for index, turns in enumerate(rounds):
        shift = index % len(names)
        assert turns == names[shift:] + names[:shift]
    assert {turns[0] for turns in rounds} == set(names)


def test_one_child_works_at_a_time_between_two_snapshots():
    server = FakeServer()
    interleave(fake_children(server), block_sizes(300, 3), server.snapshot, timeout=1)
    # FakeChild.start_block fails if another child is still busy; and no snapshot is taken
    # while a block runs: each block lies whole between the snapshot before and after it.
    assert [entry for entry in server.log if entry[0] == "snapshot" and entry[1]] == []
    kinds = [entry[0] for entry in server.log]
    assert kinds == ["snapshot", "start", "snapshot"] * (3 * len(MIXES))


def test_a_failed_child_is_left_out_and_the_others_finish():
    server = FakeServer()
    children = fake_children(server)
    children["huey"] = BrokenChild("huey", server, *MIXES["huey"], dies_in=3)
    sizes = block_sizes(500, 5)
    usage, errors = interleave(children, sizes, server.snapshot, timeout=1)
    assert errors == {"huey": "the process ended"}
    assert starts(server).count("huey") == 3  # asked no more after it died
    assert children["minibull"].blocks == children["async_floor"].blocks == sizes


# -- what Redis did, per producer --------------------------------------------


def test_each_blocks_commands_and_cpu_go_to_its_own_producer():
    server = FakeServer()
    children = fake_children(server)
    usage, _ = interleave(children, block_sizes(1000, 4), server.snapshot, timeout=1)
    assert usage["minibull"].commands == {"evalsha": 1000, "hset": 1000, "xadd": 2000}
    assert usage["huey"].commands == {"lpush": 1000}
    assert usage["async_floor"].commands == {"evalsha": 1000}
    assert usage["minibull"].cpu == pytest.approx(0.030)
    result = usage["minibull"].per_job({"jobs": 1000, "p50_us": 90.0})
    assert result["server_commands"] == pytest.approx(4.0)
    assert result["commands"] == {"evalsha": 1.0, "hset": 1.0, "xadd": 2.0}
    assert result["server_cpu_us"] == pytest.approx(30.0)
    assert result["p50_us"] == 90.0


def test_usage_adds_up_blocks_and_ignores_commands_that_did_not_move():
    usage = ServerUsage()
    usage.add(({"evalsha": 5, "get": 2}, 1.0), ({"evalsha": 7, "get": 2}, 1.5))
    usage.add(({"evalsha": 7, "get": 2}, 2.0), ({"evalsha": 8, "get": 2, "del": 1}, 2.25))
    assert usage.commands == {"evalsha": 3, "del": 1}
    assert usage.cpu == pytest.approx(0.75)


# -- the child: blocks pooled ---------------------------------------------------


def test_percentiles_are_over_all_blocks_pooled():
    pooled = Pooled()
    pooled.add([1e-6, 2e-6, 3e-6], seconds=0.5, cpu=0.1, traffic=(3, 0))
    pooled.add([10e-6, 20e-6, 30e-6, 40e-6, 50e-6], seconds=1.5, cpu=0.3, traffic=(5, 2))
    result = pooled.result()
    # pooled: 1 2 3 10 20 30 40 50 -> p50 20; the median of the blocks' p50s would be 16
    assert result["p50_us"] == pytest.approx(20)
    assert result["p99_us"] == pytest.approx(50)
    assert result["mean_us"] == pytest.approx(156 / 8)
    assert result["jobs"] == 8 and result["blocks"] == 2
    assert result["rate"] == pytest.approx(8 / 2.0)
    assert result["cpu_us"] == pytest.approx(0.4 / 8 * 1e6)
    assert result["round_trips"] == 1.0
    assert result["client_commands"] == 0.25


class CountingProducer:
    def __init__(self) -> None:
        self.added: list[int] = []

    def add_one(self, i: int) -> None:
        self.added.append(i)


async def test_the_child_times_the_blocks_it_is_asked_for(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(bench.child, "say", said.append)
    producer = CountingProducer()
    result = await serve_blocks(producer, iter(["block 3\n", "block 2\n", "end\n", "block 9\n"]))
    assert said == ["done", "done"]
    assert producer.added == [0, 1, 2, 3, 4]  # numbered on across blocks; none after "end"
    assert result["jobs"] == 5 and result["blocks"] == 2


async def test_the_child_refuses_an_unknown_command(monkeypatch):
    monkeypatch.setattr(bench.child, "say", lambda line: None)
    with pytest.raises(SystemExit, match="unknown command 'go"):
        await serve_blocks(CountingProducer(), iter(["go\n"]))


async def test_the_floors_are_producers_the_child_can_time():
    # On the suite's backend (embedded fakeredis, or MINIBULL_REDIS_URL): what they send.
    from minibull.connection import connect, redis_url

    queue = f"floor-{uuid.uuid4().hex[:8]}"
    floor = await AsyncFloor.open(redis_url(), queue)
    assert [await floor.add_one(i) for i in range(3)] == [None] * 3
    await floor.close()
    sync_floor = SyncFloor.open(redis_url(), queue)
    for i in range(3):
        sync_floor.add_one(i)
    sync_floor.close()
    addjob_floor = await AsyncAddJobFloor.open(redis_url(), queue)
    for i in range(2):
        await addjob_floor.add_one(i)
    await addjob_floor.close()
    client = connect(redis_url())
    try:
        assert await client.get(f"bull:{queue}:id") == "5"  # five addJob calls, five jobs
        keys = [key async for key in client.scan_iter(match=f"bull:{queue}:*")]
        await client.delete(*keys)
    finally:
        await client.aclose()


# -- the report: targets on medians, and each run beside them -----------------------


def one_run(p50s: dict[str, float], floors: dict[str, Any]) -> dict[str, Any]:
    return {
        "libs": {lib: {"enqueue_single": {"p50_us": p50}} for lib, p50 in p50s.items()},
        "floors": floors,
    }


def test_enqueue_targets_show_each_runs_comparison_and_check_the_medians():
    runs = [
        one_run(
            {"minibull": 80, "minibull_sync": 60, "bullmq": 100, "huey": 50},
            {"async_floor": {"p50_us": 70}, "sync_floor": {"p50_us": 50}},
        ),
        one_run(
            {"minibull": 90, "minibull_sync": 70, "bullmq": 100, "huey": 40},
            {"async_floor": {"error": "gone"}, "sync_floor": {"p50_us": 60}},
        ),
        one_run(
            {"minibull": 120, "minibull_sync": 62, "bullmq": 140, "huey": 45},
            {"async_floor": {"p50_us": 100}, "sync_floor": {"p50_us": 49}},
        ),
    ]
    results = report.summarise({}, runs, ["minibull", "minibull_sync", "bullmq", "huey"])
    found = {t["against"]: t for t in results["targets"]}
    bullmq = found["0.9 x bullmq"]
    assert bullmq["value"] == 90 and bullmq["goal"] == pytest.approx(90)  # medians
    assert report.per_run_text(bullmq) == "ratios per run: 0.80, 0.90, 0.86"
    floor = found["1.15 x floor"]
    assert floor["goal"] == pytest.approx(1.15 * 85)  # the failed run's floor left out
    assert report.per_run_text(floor) == "ratios per run: 1.14, 1.20"
    assert report.per_run_text(found["floor + 25"]) == "differences per run: +10, +10, +13 µs"
    assert report.per_run_text(found["1.5 x huey"]) == "ratios per run: 1.20, 1.75, 1.38"
    assert report.per_run_text(found["1"]) == ""  # round trips: no per-run comparison
    assert "| ratios per run: 0.80, 0.90, 0.86 |" in report.targets_table(results)
    assert "; ratios per run: 1.14, 1.20" in report.targets_text(results)


def test_a_missed_floor_is_accounted_for_with_the_addjob_call_measured_beside_it():
    floors = {"async_floor": {"p50_us": 80}, "async_addjob_floor": {"p50_us": 150}}
    runs = [one_run({"minibull": 170, "bullmq": 200}, floors)]
    results = report.summarise({}, runs, ["minibull", "bullmq"])
    text = report.misses_text(results)
    assert "Python around the call costs 20 µs (1.13x the addJob call alone)" in text
    assert "its bytes on the wire, 70 µs" in text
    met = one_run({"minibull": 90, "bullmq": 200}, floors)
    assert "addJob" not in report.misses_text(report.summarise({}, [met], ["minibull", "bullmq"]))


def test_a_missed_huey_target_is_accounted_for_with_redis_and_producer_cpu():
    def lib(p50: float, cpu: float, server: float) -> dict[str, Any]:
        return {"enqueue_single": {"p50_us": p50, "cpu_us": cpu, "server_cpu_us": server}}

    run = {
        "libs": {"minibull_sync": lib(120, 63, 54), "huey": lib(68, 58, 17)},
        "floors": {"sync_floor": {"p50_us": 118}},
    }
    text = report.misses_text(report.summarise({}, [run], ["minibull_sync", "huey"]))
    assert "`SyncQueue.add` against huey's enqueue: 120 µs to 68" in text
    assert "(63 and 58 µs per job)" in text and "2 µs above a bare EVALSHA" in text
    assert "54 µs of Redis CPU per job" in text and "17 µs for huey's one LPUSH" in text
    run["libs"]["minibull_sync"] = lib(95, 63, 54)  # 1.40x: met, nothing to explain
    met = report.misses_text(report.summarise({}, [run], ["minibull_sync", "huey"]))
    assert "huey" not in met
