"""The benchmark gives every library redis-py's pure-Python parser but minibull_hiredis
(``bench/run.py::child_env``, ``bench/pure_parser/sitecustomize.py``), so that the
libraries are compared alike and hiredis's effect is measured beside them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.run import child_env

PROBE = "import redis.utils; print(redis.utils.HIREDIS_AVAILABLE)"


@pytest.fixture
def installed(tmp_path) -> str:
    """A folder holding a stand-in ``hiredis`` package: as if it were installed."""
    (tmp_path / "hiredis").mkdir()
    (tmp_path / "hiredis" / "__init__.py").write_text('__version__ = "9.0.0"\n')
    return str(tmp_path)


def parser_seen(lib: str, installed: str) -> str:
    env = child_env(lib)
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], installed])
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("lib", ["minibull", "bullmq", "huey", "minibull_sync", ""])
def test_every_library_but_one_runs_without_hiredis(lib, installed):
    assert parser_seen(lib, installed) == "False"


def test_minibull_hiredis_runs_with_hiredis(installed):
    assert parser_seen("minibull_hiredis", installed) == "True"
