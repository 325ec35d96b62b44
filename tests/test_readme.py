"""Every command in the README works as pasted, in a fresh copy of the repo.

The copy holds the files git knows (tracked, or new and not ignored) as they are in the work
tree, and a link to this checkout's .venv (no new install: `make lab`/`make test` made it).
Shell blocks run in order, as a newcomer pastes them, against servers of their own (the
CLI block's `minibull server` moves to a free port); `make` lines are dry-run (`make -n`:
the targets exist and expand), since running them is what CI does; Windows blocks are read.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.prefix) / "bin"
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
MAKE_LINE = re.compile(r"^(?:[A-Z_]+=\S+ )*make [\w-]+")
TIMEOUT = 90


def readme_blocks(language: str) -> list[str]:
    """The README's fenced blocks in ``language``, in order, dedented."""
    text = (ROOT / "README.md").read_text()
    return [
        "\n".join(line[len(indent) :] for line in body.splitlines())
        for indent, lang, body in FENCE.findall(text)
        if lang == language
    ]


def shell_lines(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The repo's files, as a clone of this work tree would have them, with .venv linked."""
    target = tmp_path_factory.mktemp("clone")
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    (target / ".venv").symlink_to(VENV_BIN.parent)
    return target


def clean_env(clone: Path) -> dict[str, str]:
    """A newcomer's shell: .venv not active, no Redis URL; the clone's package comes first."""
    env = {k: v for k, v in os.environ.items() if k not in ("MINIBULL_REDIS_URL", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != VENV_BIN
    )
    env["PYTHONPATH"] = str(clone)
    return env


def run_shell(script: str, clone: Path) -> subprocess.CompletedProcess[str]:
    """``script`` in bash in the clone (stopping at the first failing command); every
    process it started is killed at the end, whatever happened."""
    process = subprocess.Popen(
        ["bash", "-c", "set -e -o pipefail\n" + script],
        cwd=clone,
        env=clean_env(clone),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=TIMEOUT)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


def test_the_readme_has_the_blocks_this_test_runs():
    blocks = readme_blocks("sh")
    assert shell_lines(blocks[0]) == [
        "make lab    # opens the course in JupyterLab, on the embedded default",
        "make test   # package tests + strict nbval over every notebook",
    ]
    assert any("minibull worker" in block for block in blocks)
    assert len(readme_blocks("python")) == 1 and len(readme_blocks("bat")) == 1


def test_make_lines_are_targets_that_expand(clone):
    lines = [line for block in readme_blocks("sh") for line in shell_lines(block)]
    make_lines = [line.split("#")[0].strip() for line in lines if MAKE_LINE.match(line)]
    assert len(make_lines) >= 4
    for line in make_lines:
        dry = run_shell(line.replace("make ", "make -n ", 1), clone)
        assert dry.returncode == 0, (line, dry.stdout)


def test_the_cli_block_works_as_pasted(clone):
    (block,) = [b for b in readme_blocks("sh") if "minibull worker" in b]
    port = str(free_port())
    result = run_shell(block.replace("6390", port), clone)
    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert f"fakeredis on redis://127.0.0.1:{port}/0" in out
    assert "added job 1 (welcome) to 'emails'" in out
    assert re.search(r"job 1 welcome: completed in [0-9.]+ s, attempt 1/3", out), out
    assert re.search(r"completed +1\n", out), out  # minibull status
    assert "1\twelcome\tattempts 1/3" in out  # minibull jobs --state completed
    assert "moved 0 failed job(s) of 'emails'" in out
    assert "minibull worker: closed" in out


def test_the_python_example_runs(clone):
    (block,) = readme_blocks("python")
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-c", block],
        cwd=clone,
        env=clean_env(clone),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["sending to ada@example.com", "{'sent': True}"]


def test_maintainer_commands_name_real_files(clone):
    lines = [line for block in readme_blocks("sh") for line in shell_lines(block)]
    scripts = [line for line in lines if "run_notebooks.py" in line]
    assert scripts, "the README shows how to store a notebook's outputs"
    assert not (clone / "notebooks" / "tools").exists()  # the learner's folder: notebooks only
    for line in scripts:  # running them executes notebooks: the lead's job, not a test's
        paths = [word for word in line.split() if word.endswith((".py", ".ipynb"))]
        assert all((clone / path).is_file() for path in paths), line
        script = next(path for path in paths if path.endswith(".py"))
        usage = run_shell(f".venv/bin/python {script} --help", clone)
        assert usage.returncode == 0 and "usage:" in usage.stdout, usage.stdout


def test_the_windows_route_installs_the_course_extra(clone):
    (block,) = readme_blocks("bat")
    lines = shell_lines(block)
    assert lines[0] == "python -m venv .venv" and lines[1] == ".venv\\Scripts\\activate"
    assert 'pip install -e ".[course]"' in lines
    assert "jupyter lab notebooks/00_quickstart.ipynb" in lines
    assert (clone / "notebooks" / "00_quickstart.ipynb").is_file()
