"""Every exercise check of notebooks 00-05 accepts its worked solution and rejects at
least two plausible wrong answers, each listed here with why it is wrong.

The checks are run inside the solutions notebook (the lesson's check cells are the same
code, asserted below): the notebook runs top to bottom; at each check cell the check runs
with the worked solution (must say ok), then with each wrong answer (must say "not yet"
or ✗, and not crash), then the solution cell runs again for the exercises after it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("0[0-5]_*.ipynb"))
CHECK = re.compile(r"async def (check_\w+)\(")
PASSED = re.compile(r"^(Exercise \d+: )?(ok\b|✓)")
FAILED = re.compile(r"^(Exercise \d+: )?(not yet|not answered|✗)")

# check name -> [(why the answer is wrong, the wrong answer's code)], two or more each.
WRONG: dict[str, list[tuple[str, str]]] = {
    # -- 00 ---------------------------------------------------------------------------
    "check_add_sms": [
        (
            "a backoff but no attempts: attempts defaults to 1, so the first failure is final",
            """
async def add_sms(queue, phone):
    return await queue.add(
        "send-sms", {"to": phone}, delay=timedelta(hours=2), backoff={"type": "fixed", "delay": 600}
    )
""",
        ),
        (
            "two attempts and no backoff: the retry runs at once, not 10 minutes later",
            """
async def add_sms(queue, phone):
    return await queue.add("send-sms", {"to": phone}, delay=timedelta(hours=2), attempts=2)
""",
        ),
        (
            "units: a number is seconds, so delay=2 sends after 2 s, the retry 10 s later",
            """
async def add_sms(queue, phone):
    return await queue.add(
        "send-sms", {"to": phone}, delay=2, attempts=2, backoff={"type": "fixed", "delay": 10}
    )
""",
        ),
    ],
    # -- 01 ---------------------------------------------------------------------------
    "check_signup_status": [
        (
            "forgets unknown ids: get_job returns None, and None has no get_state",
            """
async def signup_status(request):
    job = await queue.get_job(request["query"]["job"])
    return 200, {"job_id": job.id, "state": await job.get_state()}
""",
        ),
        (
            "answers what the 202 said instead of asking Redis: the state never changes",
            """
async def signup_status(request):
    job = await queue.get_job(request["query"]["job"])
    if job is None:
        return 404, {"error": "no such job"}
    return 200, {"job_id": job.id, "state": "waiting"}
""",
        ),
    ],
    "check_signup_queued_both": [
        (
            "two awaited queue.add calls: fast enough here, but two round trips, not one",
            """
async def signup_queued_both(request):
    email = request["json"]["email"]
    users[email] = {"email": email}
    first = await queue.add("welcome-email", {"to": email, "subject": "Welcome!"})
    second = await queue.add("newsletter", {"to": email})
    answer = {"email": email, "welcome_email": "queued", "newsletter": "queued"}
    return 202, {**answer, "job_ids": [first.id, second.id]}
""",
        ),
        (
            "queues the email but makes the newsletter call inline: the user waits for it",
            """
async def signup_queued_both(request):
    email = request["json"]["email"]
    users[email] = {"email": email}
    jobs = await queue.add_bulk(
        [{"name": "welcome-email", "data": {"to": email, "subject": "Welcome!"}}]
    )
    await subscribe_newsletter(email)
    answer = {"email": email, "welcome_email": "queued", "newsletter": "done"}
    return 202, {**answer, "job_ids": [job.id for job in jobs]}
""",
        ),
    ],
    "check_signup_threaded": [
        (
            "calls the blocking client on the loop: every signup waits for the others",
            """
async def signup_threaded(request):
    email = request["json"]["email"]
    users[email] = {"email": email}
    send_email_blocking(email, "Welcome!")
    return 201, {"email": email, "welcome_email": "sent"}
""",
        ),
        (
            "starts the thread and does not await it: answers 201 'sent' before the email is",
            """
async def signup_threaded(request):
    email = request["json"]["email"]
    users[email] = {"email": email}
    asyncio.get_running_loop().run_in_executor(None, send_email_blocking, email, "Welcome!")
    return 201, {"email": email, "welcome_email": "sent"}
""",
        ),
    ],
    # -- 02 (the solutions notebook's keys are nb02s:...) ------------------------------
    "check_fail_job": [
        (
            "records the failure but leaves the id in active: a stalled check would rerun it",
            """
async def fail_job(job_id, reason):
    now = clock.now()
    async with r.pipeline(transaction=True) as tx:
        tx.hset(f"nb02s:{job_id}", mapping={"failedReason": reason, "finishedOn": now})
        tx.zadd("nb02s:failed", {job_id: now})
        await tx.execute()
""",
        ),
        (
            "moves the id but writes no reason: the dead-letter queue cannot say why",
            """
async def fail_job(job_id, reason):
    now = clock.now()
    async with r.pipeline(transaction=True) as tx:
        tx.lrem(ACTIVE, 1, job_id)
        tx.hset(f"nb02s:{job_id}", "finishedOn", now)
        tx.zadd("nb02s:failed", {job_id: now})
        await tx.execute()
""",
        ),
    ],
    "check_requeue_orphans": [
        (
            "pushes the orphans on the left of wait: they run after the jobs already waiting",
            """
async def requeue_orphans():
    moved = 0
    while await r.lmove(ACTIVE, WAIT, "RIGHT", "LEFT") is not None:
        moved += 1
    return moved
""",
        ),
        (
            "moves only the first orphan",
            """
async def requeue_orphans():
    return 1 if await r.lmove(ACTIVE, WAIT, "RIGHT", "RIGHT") is not None else 0
""",
        ),
    ],
    "check_take_unless_paused": [
        (
            "takes the job without looking at the pause flag",
            '''
TAKE_UNLESS_PAUSED = """
return redis.call("RPOPLPUSH", KEYS[1], KEYS[2])
"""
''',
        ),
        (
            "checks the flag but never takes anything: returns false always",
            '''
TAKE_UNLESS_PAUSED = """
if redis.call("HEXISTS", KEYS[3], "paused") == 1 then
  return false
end
return false
"""
''',
        ),
    ],
    # -- 03 ---------------------------------------------------------------------------
    "check_make_processor": [
        (
            "handlers[job.name]: the job fails, but its reason is a bare KeyError, 'rotate'",
            """
def make_processor(handlers):
    async def process(job):
        return await handlers[job.name](job)

    return process
""",
        ),
        (
            "handlers.get and no check: an unknown job completes with None, lost silently",
            """
def make_processor(handlers):
    async def process(job):
        handler = handlers.get(job.name)
        return await handler(job) if handler else None

    return process
""",
        ),
    ],
    "check_make_thumbnails": [
        (
            "hard-codes the progress of a three-size job",
            """
async def make_thumbnails(job):
    thumbnails = [f"{size}px" for size in job.data["sizes"]]
    for value in (33, 67, 100):
        await job.update_progress(value)
    return thumbnails
""",
        ),
        (
            "reports the number of thumbnails done, not a percentage",
            """
async def make_thumbnails(job):
    thumbnails = []
    for size in job.data["sizes"]:
        thumbnails.append(f"{size}px")
        await job.update_progress(len(thumbnails))
    return thumbnails
""",
        ),
    ],
    "check_wait_for_all": [
        (
            "lets JobFailedError escape: one failure hides every other result",
            """
async def wait_for_all(jobs, timeout):
    return [(job.id, "completed", await job.wait_until_finished(timeout=timeout)) for job in jobs]
""",
        ),
        (
            "reports the exception's text instead of the job's failed_reason",
            """
async def wait_for_all(jobs, timeout):
    outcomes = []
    for job in jobs:
        try:
            outcomes.append((job.id, "completed", await job.wait_until_finished(timeout=timeout)))
        except JobFailedError as error:
            outcomes.append((job.id, "failed", str(error)))
    return outcomes
""",
        ),
    ],
    # -- 04 ---------------------------------------------------------------------------
    "check_exercise_1": [
        (
            "counts the retries, not the runs: one attempt short of the hour",
            'EMAIL_RETRY = {"attempts": 6, "backoff": {"type": "exponential", "delay": 60}}',
        ),
        (
            "a fixed minute: retries all hour long, 60 runs instead of a few",
            'EMAIL_RETRY = {"attempts": 61, "backoff": {"type": "fixed", "delay": 60}}',
        ),
    ],
    "check_exercise_2": [
        (
            "no ceiling: the waits keep doubling past 5 minutes",
            """
def capped_exponential(attempts_made, backoff_type, error, job):
    return 10 * 2 ** (attempts_made - 1)
""",
        ),
        (
            "off by one: the first wait is 20 s, not 10",
            """
def capped_exponential(attempts_made, backoff_type, error, job):
    return min(10 * 2**attempts_made, 5 * 60)
""",
        ),
    ],
    "check_exercise_3": [
        (
            "retries every failed job, also those a retry cannot fix",
            """
async def retry_matching(queue, text):
    jobs = await queue.get_jobs("failed")
    for job in jobs:
        await job.retry()
    return len(jobs)
""",
        ),
        (
            "matches the job's name instead of its failed_reason",
            """
async def retry_matching(queue, text):
    retried = 0
    for job in await queue.get_jobs("failed"):
        if text in job.name:
            await job.retry()
            retried += 1
    return retried
""",
        ),
    ],
    "check_exercise_4": [
        (
            "a count for an age: keeps the newest 4 failures, whatever their age",
            'KEEP = {"remove_on_complete": 20, "remove_on_fail": 4}',
        ),
        (
            "the age on the wrong option: keeps successes for 3 days, failures forever",
            'KEEP = {"remove_on_complete": {"age": timedelta(days=3)}, "remove_on_fail": 20}',
        ),
    ],
}
# 05's checks share their names with 04's: keyed by notebook, then check.
WRONG_05: dict[str, list[tuple[str, str]]] = {
    "check_exercise_1": [
        (
            "no job id: a second signup of the same user plans a second trial end",
            """
async def schedule_trial_end(queue, user):
    return await queue.add("trial-ended", {"user": user}, delay=timedelta(days=14))
""",
        ),
        (
            "a delay of 14 hours, not days",
            """
async def schedule_trial_end(queue, user):
    return await queue.add(
        "trial-ended", {"user": user}, delay=timedelta(hours=14), job_id=f"trial-{user}"
    )
""",
        ),
    ],
    "check_exercise_2": [
        (
            "no time zone: 09:00 UTC is 10:00 or 11:00 in Paris",
            'WEEKLY_REPORT = {"pattern": "0 9 * * 1"}',
        ),
        (
            "every 7 days from now: not on Mondays at 9, and off by an hour after a change",
            'WEEKLY_REPORT = {"every": timedelta(days=7)}',
        ),
    ],
    "check_exercise_3": [
        (
            "removes the reminder but sends whatever ZREM said: both pollers still send",
            """
async def poll_once_claiming(poller, sent):
    due = await redis.zrangebyscore(NAIVE_KEY, 0, clock.now())
    for user in due:
        await redis.zrem(NAIVE_KEY, user)
        await asyncio.sleep(0.05)
        sent.append((poller, user))
""",
        ),
        (
            "checks that the reminder is still there, then removes it: two steps, a race",
            """
async def poll_once_claiming(poller, sent):
    due = await redis.zrangebyscore(NAIVE_KEY, 0, clock.now())
    for user in due:
        if await redis.zscore(NAIVE_KEY, user) is not None:
            await asyncio.sleep(0.05)
            await redis.zrem(NAIVE_KEY, user)
            sent.append((poller, user))
""",
        ),
    ],
}


def check_cells(path: Path) -> dict[str, str]:
    cells = json.loads(path.read_text())["cells"]
    found = {}
    for cell in cells:
        source = "".join(cell["source"])
        match = CHECK.search(source)
        if cell["cell_type"] == "code" and match:
            found[match.group(1)] = source
    return found


def wrong_answers(lesson: Path) -> dict[str, list[tuple[str, str]]]:
    return WRONG_05 if lesson.name.startswith("05") else WRONG


def verdict(cell) -> str:
    text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
    return text.strip().splitlines()[-1] if text.strip() else ""


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name[:2])
def test_the_lessons_check_cells_are_the_solutions(lesson):
    solution = ROOT / "notebooks" / "solutions" / lesson.name
    ours, theirs = check_cells(lesson), check_cells(solution)
    assert sorted(ours) == sorted(theirs) and ours
    for name, source in ours.items():  # 02's solutions use their own keys, nb02s:...
        assert source.replace("nb02:", "nb02s:") == theirs[name], name
    assert set(ours) <= set(wrong_answers(lesson)), "every check needs its wrong answers"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name[:2])
def test_checks_pass_the_solution_and_reject_wrong_answers(lesson):
    solution = ROOT / "notebooks" / "solutions" / lesson.name
    nb = nbformat.read(solution, as_version=4)
    wrong = wrong_answers(lesson)
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(solution.parent)}},
    )
    results: dict[str, list[str]] = {}
    with client.setup_kernel():
        answer = None
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            client.execute_cell(cell, index)
            match = CHECK.search(cell.source)
            if not match:
                answer = (index, cell)  # the cell before a check is its answer
                continue
            name = match.group(1)
            results[name] = [verdict(cell)]
            for _why, code in wrong[name]:
                client.execute_cell(nbformat.v4.new_code_cell(code), index)
                client.execute_cell(cell, index)
                results[name].append(verdict(cell))
            assert answer is not None
            client.execute_cell(answer[1], answer[0])  # the solution again, for what follows
    assert set(results) == set(check_cells(lesson))
    for name, (with_solution, *with_wrong) in results.items():
        assert PASSED.match(with_solution), f"{name} rejects the solution: {with_solution}"
        for (why, _code), said in zip(wrong[name], with_wrong, strict=True):
            assert FAILED.match(said), f"{name} accepts a wrong answer ({why}): {said}"
