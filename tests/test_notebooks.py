"""Notebook hygiene: one clean run stored, no installs, no machine paths, listed in the README."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(
    path
    for path in (ROOT / "notebooks").rglob("*.ipynb")
    if ".ipynb_checkpoints" not in path.parts and "tools" not in path.parts
)
COURSE = [path for path in NOTEBOOKS if path.parent == ROOT / "notebooks"]


def code_cells(path: Path) -> list[dict]:
    return [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]


def test_there_are_notebooks():
    assert (ROOT / "notebooks" / "00_quickstart.ipynb") in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_outputs_come_from_one_clean_run(path):
    counts = [cell.get("execution_count") for cell in code_cells(path)]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: {counts}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_installs_and_no_machine_paths(path):
    for cell in code_cells(path):
        source = "".join(cell["source"])
        assert not re.search(r"(^|\s)[!%]?(pip|conda) install", source), source
        outputs = json.dumps(cell.get("outputs", []))
        assert str(ROOT) not in outputs and str(Path.home()) + "/" not in outputs


def test_the_readme_lists_every_notebook_in_order():
    readme = (ROOT / "README.md").read_text()
    # The course list: one "- `notebooks/NN_name.ipynb` — ..." line per notebook (other
    # lines, such as `make lab`'s, may name a notebook too).
    listed = re.findall(r"^- `notebooks/(\d\d_[\w]+\.ipynb)`", readme, flags=re.MULTILINE)
    assert listed == [path.name for path in COURSE]
