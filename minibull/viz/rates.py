"""Job starts over time: how a rate limiter spreads them, as histograms on one scale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from .base import NotebookFigure


def starts_per_bin(
    starts_ms: Sequence[float], bin_ms: int, until_ms: float | None = None
) -> list[int]:
    """How many starts fall in each ``bin_ms``-wide bin from 0 (bin i is [i*bin_ms, (i+1)*bin_ms)).

    The bins reach ``until_ms`` (default: the last start), so several series can share them.
    """
    if bin_ms <= 0:
        raise ValueError(f"bin_ms must be > 0 (got {bin_ms})")
    if any(start < 0 for start in starts_ms):
        raise ValueError("starts are ms after the first one: none may be negative")
    end = max([*starts_ms, until_ms or 0, 0])
    counts = [0] * (int(end // bin_ms) + 1)
    for start in starts_ms:
        counts[int(start // bin_ms)] += 1
    return counts


def plot_start_histogram(
    series: Mapping[str, Sequence[float]],
    *,
    bin_ms: int = 100,
    limits: Mapping[str, tuple[int, int]] | None = None,
    title: str | None = None,
) -> Figure:
    """One panel per series (label -> start times in ms after the first), on shared axes.

    ``limits`` maps a series' label to its limiter (max, duration_ms), noted in its panel.
    """
    if not series:
        raise ValueError("nothing to draw: series is empty")
    until = max(max(starts, default=0) for starts in series.values())
    figure = NotebookFigure(figsize=(5 * len(series), 3), layout="constrained")
    axes = figure.subplots(1, len(series), sharex=True, sharey=True, squeeze=False)[0]
    for ax, (label, starts) in zip(axes, series.items(), strict=True):
        counts = starts_per_bin(starts, bin_ms, until)
        lefts = [i * bin_ms for i in range(len(counts))]
        ax.bar(lefts, counts, width=bin_ms, align="edge", color="#7570b3", edgecolor="white")
        ax.set_title(f"{label} ({len(starts)} starts)", fontsize=10)
        ax.set_xlabel("ms after the first start")
        ax.grid(axis="y", alpha=0.3)
        if limits and label in limits:
            maximum, duration = limits[label]
            ax.text(
                0.98,
                0.95,
                f"limit: {maximum} per {duration} ms",
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=8,
            )
    axes[0].set_ylabel(f"jobs started per {bin_ms} ms")
    if title:
        figure.suptitle(title)
    return figure
