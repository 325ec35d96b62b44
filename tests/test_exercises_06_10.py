"""Each exercise check of notebooks 06-11 accepts its worked solution and rejects plausible
wrong answers: a check that passes without the idea teaches nothing.

For each notebook, one kernel runs the worked solution top to bottom. At each check cell
it runs the check as it stands (the solution: ✓), then, for each wrong answer below,
runs the wrong answer and the check again (✗ expected), and puts the solution back.
Each wrong answer says why it is wrong: what a learner might believe when writing it.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager

from minibull.connection import redis_url

SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "solutions"

#: notebook -> exercise -> [(why it is wrong, the wrong answer's code)]
WRONG = {
    "06_concurrency_and_scaling": {
        1: [
            (
                "8 is the provider's number, but two workers with 8 each have 16 in flight",
                "CONCURRENCY = 8",
            ),
            ("safe but slow: 3 + 3 = 6 in flight, 700 ms instead of 500", "CONCURRENCY = 3"),
        ],
        2: [
            (
                "10 per 0.5 s: the limit of one team, not the company's 5",
                "async def limit_the_api(queue):\n    await queue.set_global_rate_limit(10, 0.5)",
            ),
            (
                "5 per second instead of per 0.5 s: too strict, the jobs take twice as long",
                "async def limit_the_api(queue):\n    await queue.set_global_rate_limit(5, 1.0)",
            ),
        ],
        3: [
            (
                "a plain def runs in a thread: the loop beats, but the job computes here",
                "def thumbnail_worker(queue_name):\n"
                "    return Worker(queue_name, minibull.examples.crunch, lock_duration=0.4)",
            ),
            (
                "sandboxed, but with a 30 s lock, not the 0.4 s asked for",
                "def thumbnail_worker(queue_name):\n    return Worker(queue_name,"
                " minibull.examples.crunch, lock_duration=30, sandboxed=True)",
            ),
        ],
        4: [
            (
                "the target divided by the concurrency: each slot does 4 uploads a second",
                "WORKERS = 20",
            ),
            (
                "rounded down: 4 processes have 80 in flight, 320 uploads a second",
                "WORKERS = 4",
            ),
        ],
    },
    "07_crashes_locks_and_stalled_jobs": {
        1: [
            ("fails at the second stall: 'above' is strict", "MAX_STALLED_COUNT = 1"),
            (
                "lets the third stall through too: four runs, and it completes",
                "MAX_STALLED_COUNT = 3",
            ),
        ],
        2: [
            (
                "every active job, the one still running included",
                "async def unlocked_active_jobs(queue):\n"
                "    return await queue.redis.lrange(queue.keys.active, 0, -1)",
            ),
            (
                "a crashed job has stalled, so look at stalled_counter: not before a sweep",
                "async def unlocked_active_jobs(queue):\n"
                "    return [j.id for j in await queue.get_jobs('active') if j.stalled_counter]",
            ),
        ],
        3: [
            (
                "one after the other: the free worker takes the waiting job while the other drains",
                "def shutdown(workers):\n    return [worker.stop() for worker in workers]",
            ),
            (
                "SIGKILL: quick, but the running jobs stall and run again",
                "def shutdown(workers):\n    return [worker.kill() for worker in workers]",
            ),
        ],
        4: [
            (
                "as long as one slice: the renewal due during the slice comes too late",
                "LOCK_DURATION = 0.4",
            ),
            (
                "BullMQ's default: safe, but a crashed worker's job waits 30 s",
                "LOCK_DURATION = 30",
            ),
        ],
    },
    "08_idempotency": {
        1: [
            (
                "no deduplication: three requests, three jobs",
                "async def request_thumbnail(queue, user):\n"
                "    return await queue.add('thumbnail', {'user': user})",
            ),
            (
                "a job id: it refuses the later request too, for as long as the job is kept",
                "async def request_thumbnail(queue, user):\n"
                "    return await queue.add('thumbnail', {'user': user}, job_id=f'thumb-{user}')",
            ),
        ],
        2: [
            (
                "no once: the retry charges and emails again",
                "async def charge_and_email(job):\n"
                "    order = job.data['order']\n"
                "    charge_id = await payments.charge(order, job.data['amount'])\n"
                "    await mailer.send(job.data['to'], f'receipt {order}: {charge_id}')\n"
                "    await save_receipt(job)\n"
                "    return charge_id",
            ),
            (
                "a memo in this process: lost with the process, unseen by another worker",
                "_done = {}\n"
                "async def charge_and_email(job):\n"
                "    order = job.data['order']\n"
                "    if ('charge', order) not in _done:\n"
                "        _done[('charge', order)] = await payments.charge(\n"
                "            order, job.data['amount'])\n"
                "    charge_id = _done[('charge', order)]\n"
                "    if ('mail', order) not in _done:\n"
                "        _done[('mail', order)] = await mailer.send(\n"
                "            job.data['to'], f'receipt {order}: {charge_id}')\n"
                "    await save_receipt(job)\n"
                "    return charge_id",
            ),
        ],
        3: [
            (
                "once alone: after the lease, the retry sends again",
                "async def send_welcome(job):\n"
                "    user = job.data['user']\n"
                "    return await minibull.once(\n"
                "        job, f'welcome:{user}', lambda: flaky_mailer.send(\n"
                "        f'{user}@example.com', f'welcome {user}'), lease=0.2)",
            ),
            (
                "a key per attempt: the provider sees a new request each time",
                "async def send_welcome(job):\n"
                "    user = job.data['user']\n"
                "    key = f'welcome:{user}:{job.attempts_made}'\n"
                "    return await minibull.once(job, key, lambda: flaky_mailer.send(\n"
                "        f'{user}@example.com', f'welcome {user}', idempotency_key=key),\n"
                "        lease=0.2)",
            ),
        ],
        4: [
            (
                "simple deduplication: the changes made during the refresh are dropped",
                "async def request_refresh(queue, product, price):\n"
                "    return await queue.add('refresh', {'product': product, 'price': price},\n"
                "        deduplication={'id': f'refresh-{product}'})",
            ),
            (
                "no deduplication: one refresh per change, four for one burst",
                "async def request_refresh(queue, product, price):\n"
                "    return await queue.add('refresh', {'product': product, 'price': price})",
            ),
            (
                "a job id per product: refuses every later change while the first job is kept",
                "async def request_refresh(queue, product, price):\n"
                "    return await queue.add('refresh', {'product': product, 'price': price},\n"
                "        job_id=f'refresh-{product}')",
            ),
        ],
    },
    "09_operating_in_production": {
        1: [
            ("a count alone keeps day-old jobs", 'KEEP_COMPLETED = {"count": 20}'),
            ("an age alone keeps all 30", 'KEEP_COMPLETED = {"age": 3600}'),
            ("two hours is not an hour", 'KEEP_COMPLETED = {"count": 20, "age": 7000}'),
        ],
        2: [
            (
                "retries every failure, the corrupt images too",
                "async def retry_where(queue, text):\n    return await queue.retry_jobs('failed')",
            ),
            (
                "counts the matches but moves nothing",
                "async def retry_where(queue, text):\n"
                "    return sum(text in (j.failed_reason or '')"
                " for j in await queue.get_jobs('failed'))",
            ),
        ],
        3: [
            (
                ">= 100: 100 waiting jobs are not a backlog yet",
                "async def alerts(queue):\n"
                "    counts = await queue.get_job_counts('waiting', 'failed')\n"
                "    found = ['backlog'] * (counts['waiting'] >= 100)\n"
                "    found += ['failures'] * (counts['failed'] > 0)\n"
                "    found += ['paused'] * await queue.is_paused()\n"
                "    return sorted(found)",
            ),
            (
                "forgets the paused queue",
                "async def alerts(queue):\n"
                "    counts = await queue.get_job_counts('waiting', 'failed')\n"
                "    found = ['backlog'] * (counts['waiting'] > 100)\n"
                "    return sorted(found + ['failures'] * (counts['failed'] > 0))",
            ),
        ],
        4: [
            (
                "the head of the list: get_jobs lists the newest first",
                "async def oldest_wait(queue):\n"
                "    jobs = await queue.get_jobs('waiting', 0, 0)\n"
                "    return (queue.clock.now() - jobs[0].timestamp) / 1000 if jobs else 0",
            ),
            (
                "every state: the delayed report is not waiting, it is not due yet",
                "async def oldest_wait(queue):\n"
                "    jobs = await queue.get_jobs()\n"
                "    oldest = min((job.timestamp for job in jobs), default=None)\n"
                "    return 0 if oldest is None else (queue.clock.now() - oldest) / 1000",
            ),
            (
                "milliseconds: the timestamps are in ms, the question in seconds",
                "async def oldest_wait(queue):\n"
                "    jobs = await queue.get_jobs('waiting', 0, 0, asc=True)\n"
                "    return queue.clock.now() - jobs[0].timestamp if jobs else 0",
            ),
        ],
    },
    "10_minibull_and_bullmq": {
        1: [
            (
                "lists only: the four sorted-set states come back unknown",
                "async def state_from_keys(redis, keys, job_id):\n"
                "    for state, key in [('waiting', keys.wait), ('active', keys.active)]:\n"
                "        if await redis.lpos(key, job_id) is not None:\n"
                "            return state\n"
                "    return 'unknown'",
            ),
            (
                "the job hash exists in every state: it cannot tell them apart",
                "async def state_from_keys(redis, keys, job_id):\n"
                "    return 'waiting' if await redis.exists(keys.job(job_id)) else 'unknown'",
            ),
        ],
        2: [
            (
                "BullMQ's milliseconds passed as minibull's seconds",
                "def from_bullmq_opts(opts):\n"
                "    names = {'jobId': 'job_id', 'removeOnComplete': 'remove_on_complete'}\n"
                "    return {names.get(k, k): v for k, v in opts.items()}",
            ),
            (
                "delays converted, but a number backoff left as milliseconds",
                "def from_bullmq_opts(opts):\n"
                "    names = {'jobId': 'job_id', 'removeOnComplete': 'remove_on_complete'}\n"
                "    out = {names.get(k, k): v for k, v in opts.items()}\n"
                "    if 'delay' in out:\n"
                "        out['delay'] = out['delay'] / 1000\n"
                "    return out",
            ),
        ],
        3: [
            (
                "no defaults: a hash without atm (never failed) raises KeyError",
                "def bullmq_view(fields):\n"
                "    return {'name': fields['name'], 'data': json.loads(fields['data']),\n"
                "            'attemptsMade': int(fields['atm']),\n"
                "            'attemptsStarted': int(fields['ats']),\n"
                "            'returnvalue': json.loads(fields['returnvalue']),\n"
                "            'failedReason': fields['failedReason'],\n"
                "            'finishedOn': int(fields['finishedOn'])}",
            ),
            (
                "strings left as strings: data and returnvalue are JSON",
                "def bullmq_view(fields):\n"
                "    return {'name': fields['name'], 'data': fields['data'],\n"
                "            'attemptsMade': int(fields.get('atm', 0)),\n"
                "            'attemptsStarted': int(fields.get('ats', 0)),\n"
                "            'returnvalue': fields.get('returnvalue'),\n"
                "            'failedReason': fields.get('failedReason'),\n"
                "            'finishedOn': int(fields['finishedOn']) if 'finishedOn' in fields"
                " else None}",
            ),
        ],
        4: [
            (
                "the score read as milliseconds: it is ms * 4096 plus a sequence",
                "async def due_times(redis, keys):\n"
                "    scored = await redis.zrange(keys.delayed, 0, -1, withscores=True)\n"
                "    return {job_id: int(score) for job_id, score in scored}",
            ),
            (
                "the score read as seconds since the epoch",
                "async def due_times(redis, keys):\n"
                "    scored = await redis.zrange(keys.delayed, 0, -1, withscores=True)\n"
                "    return {job_id: int(score / 1000) for job_id, score in scored}",
            ),
            (
                "the add time from the job hash: when the job was added, not when it is due",
                "async def due_times(redis, keys):\n"
                "    ids = await redis.zrange(keys.delayed, 0, -1)\n"
                "    return {i: int(await redis.hget(keys.job(i), 'timestamp')) for i in ids}",
            ),
        ],
    },
    "11_flows_fan_out_fan_in": {
        1: [
            (
                "no policy: a declined card leaves the shipment waiting for ever",
                "def order_flow(order):\n"
                "    data = {'order': order}\n"
                "    child = lambda name, q: {'name': name, 'queue_name': f'{EXERCISE}-{q}',"
                " 'data': data}\n"
                "    return {'name': 'ship', 'queue_name': f'{EXERCISE}-shipping', 'data': data,\n"
                "            'children': [child('charge', 'payments'), child('reserve', 'stock')]}",
            ),
            (
                "continue_parent_on_failure: the shipment goes on, and ships",
                "def order_flow(order):\n"
                "    data = {'order': order}\n"
                "    go_on = {'continue_parent_on_failure': True}\n"
                "    child = lambda name, q: {'name': name, 'queue_name': f'{EXERCISE}-{q}',"
                " 'data': data, 'opts': go_on}\n"
                "    return {'name': 'ship', 'queue_name': f'{EXERCISE}-shipping', 'data': data,\n"
                "            'children': [child('charge', 'payments'), child('reserve', 'stock')]}",
            ),
            (
                "upside down: the shipment as the child of the charge",
                "def order_flow(order):\n"
                "    data = {'order': order}\n"
                "    fail = {'fail_parent_on_failure': True}\n"
                "    return {'name': 'charge', 'queue_name': f'{EXERCISE}-payments',\n"
                "            'data': data,\n"
                "            'children': [{'name': 'ship', 'queue_name': f'{EXERCISE}-shipping',"
                " 'data': data, 'opts': fail}]}",
            ),
        ],
        2: [
            (
                "the results only: a failed child has no value, so failed is always 0",
                "async def newsletter_report(job):\n"
                "    statuses = [r['status'] for r in (await job.get_children_values()).values()]\n"
                "    return {'sent': statuses.count('sent'), 'bounced': statuses.count('bounced'),"
                " 'failed': 0}",
            ),
            (
                "every result counted as sent, the bounces too",
                "async def newsletter_report(job):\n"
                "    deps = await job.get_dependencies()\n"
                "    return {'sent': len(deps['processed']), 'bounced': 0,"
                " 'failed': len(deps['ignored'])}",
            ),
            (
                "failures looked for in 'failed' (fail_parent_on_failure's), not 'ignored'",
                "async def newsletter_report(job):\n"
                "    deps = await job.get_dependencies()\n"
                "    statuses = [r['status'] for r in deps['processed'].values()]\n"
                "    return {'sent': statuses.count('sent'), 'bounced': statuses.count('bounced'),"
                " 'failed': len(deps['failed'])}",
            ),
        ],
    },
}

CHECK = re.compile(r'^print\("Exercise (\d+):", await check_exercise_\d+\(\)\)', re.MULTILINE)


class Kernel:
    """A python3 kernel in notebooks/solutions/, and a way to run code and read stdout."""

    def __init__(self) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(SOLUTIONS), env=dict(os.environ))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 120) -> str:
        msg_id = self.kc.execute(code)
        text, error = [], None
        deadline = time.monotonic() + timeout
        while True:
            message = self.kc.get_iopub_msg(timeout=max(1, deadline - time.monotonic()))
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream" and content["name"] == "stdout":
                text.append(content["text"])
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content["execution_state"] == "idle":
                break
        assert error is None, f"{error}\nin:\n{code}"
        return "".join(text)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def verdict(output: str, exercise: int) -> str:
    line = next(line for line in output.splitlines() if line.startswith(f"Exercise {exercise}:"))
    return line.split(":", 1)[1].strip()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", sorted(WRONG))
def test_each_check_accepts_the_solution_and_rejects_wrong_answers(name):
    if sys.platform == "win32":
        pytest.skip("the worker processes of 06/07 need POSIX signals")
    cells = nbformat.read(SOLUTIONS / f"{name}.ipynb", as_version=4).cells
    code = [cell.source for cell in cells if cell.cell_type == "code"]
    checks = {int(m.group(1)): i for i, source in enumerate(code) if (m := CHECK.search(source))}
    assert sorted(checks) == sorted(WRONG[name]), f"{name}: checks {sorted(checks)}"
    report = []
    kernel = Kernel()
    try:
        answer_of = {}
        for index, source in enumerate(code):
            exercise = next((n for n, at in checks.items() if at == index), None)
            if exercise is None:
                kernel.run(source)
                answer_of[index] = source
                continue
            got = verdict(kernel.run(source), exercise)
            if not got.startswith("✓"):
                report.append(f"Exercise {exercise}: the solution gets {got!r}")
            answer = code[index - 1]  # the answer cell comes right before its check
            for why, wrong in WRONG[name][exercise]:
                kernel.run(textwrap.dedent(wrong))
                got = verdict(kernel.run(source), exercise)
                if not got.startswith("✗"):
                    report.append(f"Exercise {exercise}: accepts a wrong answer ({why}): {got!r}")
            kernel.run(answer)  # the solution again, for what follows
    finally:
        kernel.close()
    assert report == [], "\n".join(report)


def test_every_exercise_has_at_least_two_wrong_answers_with_a_reason():
    for name, exercises in WRONG.items():
        assert (SOLUTIONS / f"{name}.ipynb").exists(), name
        for exercise, wrongs in exercises.items():
            assert len(wrongs) >= 2, (name, exercise)
            assert all(why and code for why, code in wrongs), (name, exercise)


def test_the_verdict_is_read_from_the_checks_line():
    output = "some log line\nExercise 2: ✗ 3 jobs\n"
    assert verdict(output, 2) == "✗ 3 jobs"
    with pytest.raises(StopIteration):
        verdict(output, 1)


# Notebook 10's checks run on either backend (their queues are in this kernel); 06 and 07
# start worker processes on a SharedServer or on MINIBULL_REDIS_URL's Redis.
assert redis_url is not None
