"""What a queue keeps in Redis as jobs finish: job hashes and their bytes, per setting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from .base import NotebookFigure

#: One measurement: (jobs run so far, job hashes in Redis, bytes in those hashes).
HistoryPoint = tuple[int, int, int]


def history_lines(points: Sequence[HistoryPoint]) -> tuple[list[int], list[int], list[float]]:
    """``points`` as three lines starting at the origin: jobs run, job hashes, KB.

    Raises ValueError when the jobs run do not grow (a line must go left to right)."""
    jobs = [0] + [point[0] for point in points]
    if any(later <= earlier for earlier, later in zip(jobs, jobs[1:], strict=False)):
        raise ValueError(f"points must be in order of jobs run, each > 0 (got {jobs[1:]})")
    hashes = [0] + [point[1] for point in points]
    kilobytes = [0.0] + [point[2] / 1024 for point in points]
    return jobs, hashes, kilobytes


def plot_history(
    measured: Mapping[str, Sequence[HistoryPoint]], *, title: str | None = None
) -> Figure:
    """Two panels, job hashes and KB of job hashes against jobs run, one line per setting
    (e.g. ``remove_on_complete`` values), from (jobs run, hashes, bytes) measurements."""
    if not measured:
        raise ValueError("measured is empty: nothing to draw")
    figure = NotebookFigure(figsize=(10, 3.5), layout="constrained")
    count_ax, bytes_ax = figure.subplots(1, 2)
    for label, points in measured.items():
        jobs, hashes, kilobytes = history_lines(points)
        count_ax.plot(jobs, hashes, marker="o", label=label, gid=f"hashes:{label}")
        bytes_ax.plot(jobs, kilobytes, marker="o", label=label, gid=f"kb:{label}")
    count_ax.set_ylabel("job hashes in Redis")
    bytes_ax.set_ylabel("KB in job hashes (names + values)")
    for ax in (count_ax, bytes_ax):
        ax.set_xlabel("jobs run")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    bytes_ax.legend(loc="upper left", fontsize=9)
    figure.suptitle(title or "What a queue keeps in Redis as jobs finish")
    return figure
