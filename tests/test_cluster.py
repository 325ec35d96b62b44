"""A queue on a local 3-master Redis Cluster: one slot per queue through a hash-tag prefix."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time

import pytest
from redis.asyncio.cluster import RedisCluster

import minibull


def free_ports(count: int) -> list[int]:
    """Ports whose cluster bus port (port + 10000) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 < 65536 and port not in ports:
            try:
                with socket.socket() as bus:
                    bus.bind(("127.0.0.1", port + 10000))
                ports.append(port)
            except OSError:
                continue
    return ports


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        pytest.fail("redis-server and redis-cli are needed (apt-get install -y redis-server)")
    folder = tmp_path_factory.mktemp("cluster")
    ports = free_ports(3)
    processes = [
        subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=folder,
            stdout=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            _wait_for_port(port)
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while (
            b"cluster_state:ok"
            not in subprocess.run(
                ["redis-cli", "-p", str(ports[0]), "cluster", "info"], capture_output=True
            ).stdout
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not become ready")
            time.sleep(0.1)
        yield ports
    finally:
        for process in processes:
            process.kill()
            process.wait()


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"redis-server on {port} did not start")


def client(ports: list[int]) -> RedisCluster:
    return RedisCluster(host="127.0.0.1", port=ports[0], decode_responses=True)


async def test_a_prefix_without_hash_tag_is_refused(cluster):
    redis = client(cluster)
    try:
        with pytest.raises(ValueError, match="hash tag"):
            minibull.Queue("q", redis)
        with pytest.raises(ValueError, match="hash tag"):
            minibull.Worker("q", print, redis)
    finally:
        await redis.aclose()


async def test_core_behaviour_and_a_two_worker_drain_on_a_cluster(cluster):
    redis = client(cluster)
    prefix = "{cluster-test}"
    clock = minibull.VirtualClock(1_800_000_000)
    try:
        queue = minibull.Queue("q", redis, prefix=prefix, clock=clock)
        await queue.obliterate(force=True)
        seen: list[str] = []

        async def process(job):
            seen.append(job.id)
            if job.name == "flaky" and job.attempts_made == 0:
                raise RuntimeError("once")
            return job.data

        workers = [
            minibull.Worker("q", process, redis, prefix=prefix, clock=clock, concurrency=5)
            for _ in range(2)
        ]
        for worker in workers:
            worker.start()
        flaky = await queue.add("flaky", 1, attempts=2, backoff=60)
        later = await queue.add("later", 2, delay=3600)
        urgent = await queue.add("urgent", 3, priority=1)
        await queue.add_bulk([{"name": "bulk", "data": n} for n in range(300)])
        await clock.advance(7200)
        assert await flaky.wait_until_finished(timeout=20) == 1
        assert await later.wait_until_finished(timeout=20) == 2
        assert await urgent.wait_until_finished(timeout=20) == 3

        async def drained():
            return (await queue.get_job_counts("completed"))["completed"] == 303

        deadline = asyncio.get_running_loop().time() + 30
        while not await drained():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        for worker in workers:
            await worker.close()
        assert len(seen) == 304 and len(set(seen)) == 303  # flaky ran twice
        await queue.obliterate(force=True)
        assert [key async for key in redis.scan_iter(match="{cluster-test}*")] == []
    finally:
        await redis.aclose()


async def test_a_flow_over_two_queues_under_one_hash_tag_on_a_cluster(cluster):
    redis = client(cluster)
    prefix = "{flow-test}"
    try:
        with pytest.raises(ValueError, match="hash tag"):
            minibull.FlowProducer(redis)
        flows = minibull.FlowProducer(redis, prefix=prefix)
        for name in ("reports", "emails"):
            await flows.queue(name).obliterate(force=True)

        async def report(job):
            return len(await job.get_children_values())

        workers = [
            minibull.Worker("emails", lambda job: job.data, redis, prefix=prefix),
            minibull.Worker("reports", report, redis, prefix=prefix),
        ]
        for worker in workers:
            worker.start()
        node = await flows.add(
            {
                "name": "report",
                "queue_name": "reports",
                "children": [
                    {"name": "send", "queue_name": "emails", "data": n} for n in range(50)
                ],
            }
        )
        assert await node["job"].wait_until_finished(timeout=20) == 50
        for worker in workers:
            await worker.close()
        await node["job"].remove()
        for name in ("reports", "emails"):
            await flows.queue(name).obliterate(force=True)
        assert [key async for key in redis.scan_iter(match="{flow-test}*")] == []
    finally:
        await redis.aclose()
