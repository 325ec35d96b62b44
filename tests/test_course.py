"""The course as a whole: its notebooks cover every term of the lesson, and notebooks/README.md
lists every notebook.

Only committed notebooks count (plus notebook 10, the last one), so notebooks being written
in the same checkout cannot break these tests; a committed notebook that is half-saved on
disk is read from HEAD instead.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LAST = NOTEBOOKS / "10_minibull_and_bullmq.ipynb"

#: term -> (what the prose must say, what the code must do), both regexes (case-insensitive).
#: A notebook covers a term when one of its headings names it, or when its markdown
#: mentions it and one of its code cells uses it.
TERMS = {
    "producer": (r"\bproducers?\b", r"\.add(_bulk)?\("),
    "worker": (r"\bworkers?\b", r"\bWorker\("),
    "attempts": (r"\battempts\b", r"\battempts\s*="),
    "backoff": (r"\bbackoff\b", r"\bbackoff\s*="),
    "delay": (r"\bdelay(ed)?\b", r"\bdelay\s*="),
    "repeat": (r"\brepeat(able)?\b|\bjob schedulers?\b", r"\brepeat\s*=|upsert_job_scheduler\("),
    "concurrency": (r"\bconcurrency\b", r"\bconcurrency\s*="),
    "horizontal workers": (
        r"\bhorizontal\b|\b(two|three|several|many|more) workers\b|\bworker processes\b",
        r"start_workers\(|\[\s*Worker\([^\]]*\bfor\b",
    ),
    "failed set": (
        r"\bfailed (set|jobs)\b|dead-letter",
        r"keys\.failed|get_jobs\(\s*[\"']failed|retry_jobs\(|state\s*=\s*[\"']failed",
    ),
    "idempotency": (r"\bidempot", r"\bonce\(|\bjob_id\s*=|\bdeduplication\s*="),
}


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def course_notebooks() -> list[Path]:
    """The committed course notebooks (not solutions), and notebook 10; all on disk without git."""
    listed = _git("ls-files", "--", "notebooks/*.ipynb")
    if listed is None:
        paths = set(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    else:
        paths = {ROOT / line for line in listed.split()}
    paths = {path for path in paths if path.parent == NOTEBOOKS}
    return sorted(paths | {LAST})


def cells(path: Path) -> list[dict]:
    """A notebook's cells, from disk; from HEAD if the file on disk is being written."""
    try:
        return json.loads(path.read_text())["cells"]
    except (OSError, ValueError):
        committed = _git("show", f"HEAD:{path.relative_to(ROOT).as_posix()}")
        if committed is None:
            raise
        return json.loads(committed)["cells"]


def source(cell: dict) -> str:
    text = cell["source"]
    return text if isinstance(text, str) else "".join(text)


def covers(path: Path, term: str) -> str | None:
    """Where ``path`` covers ``term`` (a heading, or prose and code), or None."""
    prose, code = (re.compile(pattern, re.IGNORECASE) for pattern in TERMS[term])
    markdown = [source(c) for c in cells(path) if c["cell_type"] == "markdown"]
    headings = [line for text in markdown for line in text.splitlines() if line.startswith("#")]
    heading = next((line for line in headings if prose.search(line)), None)
    if heading:
        return heading.strip()
    mentioned = any(prose.search(text) for text in markdown)
    used = any(code.search(source(c)) for c in cells(path) if c["cell_type"] == "code")
    return "prose and code" if mentioned and used else None


def coverage(paths: list[Path]) -> dict[str, list[str]]:
    """term -> the notebooks that cover it."""
    return {term: [path.name for path in paths if covers(path, term)] for term in TERMS}


def test_notebook_10_is_there():
    assert LAST.exists(), f"{LAST.relative_to(ROOT)} is missing"


def test_the_notebooks_cover_every_term_of_the_lesson():
    paths = course_notebooks()
    missing = [term for term, where in coverage(paths).items() if not where]
    assert not missing, (
        f"no course notebook covers {missing}: give one of them a section (a heading naming the"
        f" term, or prose plus code that uses it). Looked in: {[p.name for p in paths]}"
    )


def test_the_check_fails_for_a_missing_term(tmp_path):
    """The coverage check can fail: a notebook with a single heading covers only that term."""
    notebook = tmp_path / "99_only_workers.ipynb"
    notebook.write_text(
        json.dumps({"cells": [{"cell_type": "markdown", "source": "## Workers", "metadata": {}}]})
    )
    found = coverage([notebook])
    assert found["worker"] == [notebook.name]
    assert [term for term, where in found.items() if not where] == [
        term for term in TERMS if term != "worker"
    ]


def test_the_notebooks_readme_lists_every_notebook():
    readme = (NOTEBOOKS / "README.md").read_text()
    listed = re.findall(r"`(\d\d_\w+\.ipynb)`", readme)
    missing = [path.name for path in course_notebooks() if path.name not in listed]
    assert not missing, f"notebooks/README.md does not list {missing}"
    numbered = list(dict.fromkeys(listed))
    assert numbered == sorted(numbered), f"notebooks/README.md lists them out of order: {numbered}"


@pytest.mark.parametrize("term", TERMS)
def test_each_term_is_matched_somewhere_in_its_words(term):
    """The patterns themselves: each term's own name is matched by its prose pattern."""
    assert re.search(TERMS[term][0], f"## {term}", re.IGNORECASE)


def guide_table(text: str) -> tuple[list[list[str]], list[str]]:
    """The timings table of notebooks/INSTRUCTOR.md: its notebook rows and its total row."""
    rows = [
        [cell.strip().strip("*") for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| notebook")
    ]
    total = next(row for row in rows if row[0] == "total")
    return [row for row in rows if re.match(r"\d\d ", row[0])], total


def table_problems(rows: list[list[str]], total: list[str]) -> list[str]:
    """Where the guide's totals do not add up (each row, and the total row)."""
    problems = []
    number = lambda cell: int(cell.split()[0])  # noqa: E731 - "12 s", "40 min"
    for row in rows:
        if number(row[2]) + number(row[3]) != number(row[4]):
            problems.append(f"{row[0]}: {row[2]} + {row[3]} != {row[4]}")
    for column in (1, 2, 3, 4):
        if sum(number(row[column]) for row in rows) != number(total[column]):
            problems.append(f"column {column}: the rows do not add up to {total[column]}")
    return problems


def test_the_instructors_guide_covers_every_notebook_and_its_totals_add_up():
    rows, total = guide_table((NOTEBOOKS / "INSTRUCTOR.md").read_text())
    assert [row[0][:2] for row in rows] == [path.name[:2] for path in course_notebooks()]
    assert table_problems(rows, total) == []
    assert all(int(row[1].split()[0]) <= 15 for row in rows), "a notebook runs over 15 s"
    # A wrong total is caught.
    assert table_problems(rows, [*total[:2], "1 min", *total[3:]]) == [
        "column 2: the rows do not add up to 1 min"
    ]


#: Calls that delete a lesson's package queue (the one its workers hold jobs of).
DELETES_THE_LESSONS_QUEUE = re.compile(r"forget_everything\(|\.obliterate\(")


def check_functions(path: Path) -> dict[str, str]:
    """The ``check_*`` functions of a notebook's code cells: name -> source."""
    found = {}
    for cell in cells(path):
        text = source(cell)
        if cell["cell_type"] == "code":
            for match in re.finditer(r"async def (check_\w+)\(.*?(?=\n\S|\Z)", text, re.S):
                found[match[1]] = match[0]
    return found


def test_notebook_02s_checks_leave_the_lessons_queue_alone():
    """A learner who runs a check early (while §7's worker holds a job of the package queue)
    must not lose that job: 02's checks delete only the hand-made queue's keys (nb02:...)."""
    checks = check_functions(NOTEBOOKS / "02_a_queue_is_a_list.ipynb")
    assert len(checks) >= 3, "02's exercise checks were not found"
    deleting = sorted(
        name for name, text in checks.items() if DELETES_THE_LESSONS_QUEUE.search(text)
    )
    assert not deleting, f"these checks delete the lesson's package queue: {deleting}"


#: A check's message that hands over the answer: "expected <the values>".
SPOILER = re.compile(r"expected \{|expected \[|expected \w+ \{")


@pytest.mark.parametrize(
    "path", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name[:2]
)
def test_exercise_checks_do_not_print_the_expected_answer(path):
    """A wrong answer is told what is wrong, never shown the values that would pass."""
    spoiling = sorted(name for name, text in check_functions(path).items() if SPOILER.search(text))
    assert not spoiling, f"these checks print the expected answer: {spoiling}"


def check_cells_left_open(path: Path) -> list[int]:
    """The code cells of a notebook that define an exercise check and are not folded."""
    return [
        index
        for index, cell in enumerate(cells(path))
        if cell["cell_type"] == "code"
        and re.search(r"async def check_\w+\(", source(cell))
        and not cell.get("metadata", {}).get("jupyter", {}).get("source_hidden")
    ]


@pytest.mark.parametrize(
    "path", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name[:2]
)
def test_exercise_checks_are_folded(path):
    """A check hides its answer: its code is folded, so a learner tries before reading it."""
    assert check_functions(path), f"{path.name} has no exercise check"
    assert check_cells_left_open(path) == [], f"{path.name}: unfolded check cells"


#: A prompt that asks for a prediction before a cell runs, and a transfer exercise's heading.
PREDICT = re.compile(r"\*?predict (first|before)", re.IGNORECASE)
TRANSFER = re.compile(r"^### Exercise \d+ \(transfer\)", re.MULTILINE)


def active_learning(path: Path) -> tuple[int, int]:
    """How many predict-first prompts the lesson (before its exercises) has, and how many
    transfer exercises the notebook has."""
    markdown = [source(c) for c in cells(path) if c["cell_type"] == "markdown"]
    first_exercise = next(
        (i for i, text in enumerate(markdown) if re.search(r"^## Exercises?\b", text, re.M)),
        len(markdown),
    )
    lesson = "\n".join(markdown[:first_exercise]).split("## Exercise")[0]
    return len(PREDICT.findall(lesson)), len(TRANSFER.findall("\n".join(markdown)))


@pytest.mark.parametrize(
    "path", sorted(NOTEBOOKS.glob("0[6-9]_*.ipynb")) + [LAST], ids=lambda p: p.name[:2]
)
def test_part_two_asks_for_predictions_and_a_transfer(path):
    """Issue 18: each of 06-10 asks the reader to predict before a demo, and ends with a
    transfer exercise (the idea on a case the notebook did not show)."""
    predictions, transfers = active_learning(path)
    assert predictions >= 1, f"{path.name}: no predict-first prompt before the exercises"
    assert transfers >= 1, f"{path.name}: no exercise marked (transfer)"


def test_active_learning_counts_only_the_lesson_for_predictions(tmp_path):
    notebook = tmp_path / "99_x.ipynb"
    texts = [
        "## 1. A\n\nRun it.",
        "## Exercises",
        "### Exercise 1 (transfer): y\n\nPredict first: z",
    ]
    notebook.write_text(
        json.dumps(
            {"cells": [{"cell_type": "markdown", "source": t, "metadata": {}} for t in texts]}
        )
    )
    assert active_learning(notebook) == (0, 1)
    texts[0] += " *Predict first:* how many?"
    notebook.write_text(
        json.dumps(
            {"cells": [{"cell_type": "markdown", "source": t, "metadata": {}} for t in texts]}
        )
    )
    assert active_learning(notebook) == (1, 1)


def reading_time_problem(readme: str) -> str | None:
    """Where notebooks/README.md's learning-path table and its stated total disagree."""
    minutes = [int(m) for m in re.findall(r"^\| \d\d \|.*\| (\d+) min \|[^|]*\|$", readme, re.M)]
    stated = re.search(r"reading times add up to (\d+) h(?: (\d+) min)?", readme)
    if not minutes or stated is None:
        return "no reading times, or no stated total"
    total = int(stated[1]) * 60 + int(stated[2] or 0)
    return (
        None if total == sum(minutes) else f"rows add up to {sum(minutes)} min, text says {total}"
    )


def test_the_readmes_reading_times_add_up():
    assert reading_time_problem((NOTEBOOKS / "README.md").read_text()) is None
    wrong = "| 00 | `a.ipynb` | x | 10 min | — |\n| 01 | `b.ipynb` | y | 20 min | 00 |\n"
    assert reading_time_problem(wrong + "The reading times add up to 1 h;") == (
        "rows add up to 30 min, text says 60"
    )
    assert reading_time_problem(wrong + "The reading times add up to 0 h 30 min;") is None
