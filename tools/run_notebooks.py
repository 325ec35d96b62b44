"""Execute notebooks in place, so their stored outputs are what `make test` checks.

    .venv/bin/python tools/run_notebooks.py                  # every notebook
    .venv/bin/python tools/run_notebooks.py notebooks/00_quickstart.ipynb

Each notebook runs top to bottom in a fresh python3 kernel (one clean Restart &
Run All), in its own folder, on the embedded Redis: MINIBULL_REDIS_URL is removed
from the environment, so stored outputs never depend on a server. A notebook is
written back only if every cell ran, execution counts are 1..N and no output
contains a path of this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TIMEOUT = 120  # seconds per cell
ENV_VAR = "MINIBULL_REDIS_URL"


def default_notebooks() -> list[Path]:
    """Every notebook under notebooks/, except Jupyter checkpoints."""
    return sorted(
        path
        for path in NOTEBOOKS.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in path.relative_to(NOTEBOOKS).parts
    )


def local_paths() -> list[str]:
    """Paths of this machine that must not leak into stored outputs (longest first)."""
    candidates = {
        str(NOTEBOOKS.parent),
        str(Path.home()),
        sys.prefix,
        sys.base_prefix,
        os.path.realpath(sys.executable),
    }
    return sorted((p for p in candidates if p not in ("", "/")), key=len, reverse=True)


def output_text(output: nbformat.NotebookNode) -> str:
    """Everything an output shows as text: stream text, text data, error fields."""
    parts = [output.get("text", ""), output.get("ename", ""), output.get("evalue", "")]
    parts += output.get("traceback", [])
    for value in output.get("data", {}).values():
        parts.append(value if isinstance(value, str) else str(value))
    return "\n".join(parts)


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """What is wrong with an executed notebook: counts out of order, leaked paths."""
    found = []
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code_cells]
    if counts != list(range(1, len(code_cells) + 1)):
        found.append(f"execution counts are {counts}, expected 1..{len(code_cells)}")
    paths = local_paths()
    for index, cell in enumerate(code_cells):
        for output in cell.outputs:
            text = output_text(output)
            leaked = next((path for path in paths if path in text), None)
            if leaked:
                found.append(f"code cell {index + 1}: an output contains the path {leaked}")
    return found


def run(path: Path) -> bool:
    """Execute one notebook and write it back; False (and nothing written) on failure."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,  # no wall-clock timestamps in cell metadata
    )
    started = time.perf_counter()
    try:
        client.execute()
    except Exception as exc:  # a failing cell: say which, keep the file as it was
        print(f"FAILED {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return False
    seconds = time.perf_counter() - started
    found = problems(nb)
    if found:
        print(f"NOT WRITTEN {path}:", *found, sep="\n  ", file=sys.stderr)
        return False
    nbformat.validate(nb)
    nbformat.write(nb, path)
    print(f"ok {path} ({seconds:.1f} s)")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook")
    parser.add_argument(
        "--real-redis",
        action="store_true",
        help=f"keep {ENV_VAR}: for notebook 10, whose stored outputs come from a real Redis",
    )
    args = parser.parse_args(argv)
    if args.real_redis:
        if not os.environ.get(ENV_VAR):
            print(f"--real-redis needs {ENV_VAR} set", file=sys.stderr)
            return 1
    elif os.environ.pop(ENV_VAR, None):
        print(f"note: {ENV_VAR} is ignored here; outputs come from the embedded Redis")
    paths = args.notebooks or default_notebooks()
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    results = [run(path.resolve()) for path in paths]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
