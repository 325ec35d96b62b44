"""Pictures of jobs in time: how a delayed job becomes due (the delayed set, the marker
and promotion), and when a scheduler's runs fall on the wall clock across a change of
time (cron with a time zone against a fixed interval)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .base import _legend_outside, _new_figure, format_ms

# -- a delayed job becomes due ---------------------------------------------------------

#: The rows of the promotion picture, top to bottom: who acts, and the keys they act on.
PROMOTION_LANES = ("producer", "delayed", "marker", "wait", "worker")


@dataclass(frozen=True)
class PromotionStep:
    """One step of a delayed job's way to a worker: at ``at`` (ms), ``actor`` acts on ``target``."""

    at: int
    actor: str
    target: str
    text: str


def promotion_steps(added_ms: int, due_ms: int) -> list[PromotionStep]:
    """The steps by which a job added at ``added_ms`` with a delay reaches an idle worker at
    ``due_ms``, as minibull and BullMQ do them (scripts addJob and moveToActive)."""
    if due_ms < added_ms:
        raise ValueError(f"due_ms must not be before added_ms ({due_ms} < {added_ms})")
    wait = format_ms(due_ms - added_ms)
    return [
        PromotionStep(added_ms, "worker", "marker", "idle: BZPOPMIN marker (blocks)"),
        PromotionStep(added_ms, "producer", "delayed", "addJob: ZADD delayed, score due×4096"),
        PromotionStep(added_ms, "producer", "marker", 'addJob: ZADD marker "1" at due'),
        PromotionStep(added_ms, "marker", "worker", "BZPOPMIN returns: wakes up"),
        PromotionStep(added_ms, "worker", "delayed", "moveToActive: nothing due yet"),
        PromotionStep(added_ms, "worker", "marker", f"BZPOPMIN, timeout {wait} (≤ 5 s a call)"),
        PromotionStep(due_ms, "marker", "worker", "timeout at the due time"),
        PromotionStep(due_ms, "worker", "delayed", "moveToActive: promote what is due"),
        PromotionStep(due_ms, "delayed", "wait", "ZREM delayed, LPUSH wait"),
        PromotionStep(due_ms, "wait", "worker", "same script: RPOPLPUSH wait → active"),
    ]


def plot_promotion(
    steps: Sequence[PromotionStep], *, when: str = "%H:%M", title: str | None = None
) -> Figure:
    """A sequence diagram: one column per lane, one arrow per step, in order from top to
    bottom; the time of each step (formatted with ``when``, UTC) is written on the left."""
    if not steps:
        raise ValueError("steps must hold at least one PromotionStep")
    lanes = list(PROMOTION_LANES)
    for step in steps:
        for lane in (step.actor, step.target):
            if lane not in lanes:
                raise ValueError(f"unknown lane {lane!r}: use one of {', '.join(lanes)}")
    figure, ax = _new_figure(10, 1.2 + 0.5 * len(steps))
    x = {lane: 2.0 * index for index, lane in enumerate(lanes)}
    gap = next((i for i, s in enumerate(steps) if s.at != steps[0].at), None)
    rows = [i + (0.8 if gap is not None and i >= gap else 0) for i in range(len(steps))]
    bottom = rows[-1] + 0.7
    for lane in lanes:
        ax.plot([x[lane], x[lane]], [-0.6, bottom], color="#cccccc", linewidth=1, zorder=0)
        ax.text(x[lane], -0.7, _lane_label(lane), ha="center", va="bottom", fontsize=9)
    for index, (step, y) in enumerate(zip(steps, rows, strict=True)):
        _draw_step(ax, index, step, y, (x[step.actor], x[step.target]), when)
    if gap is not None:
        _draw_gap(ax, rows[gap] - 0.9, x[lanes[-1]] + 0.2, steps[gap].at - steps[0].at)
    ax.set_xlim(-2.6, x[lanes[-1]] + 1.4)
    ax.set_ylim(bottom, -1.6)
    ax.set_axis_off()
    ax.set_title(title or "How a delayed job reaches a worker, with no polling")
    ax.text(-1.2, -0.7, "time (UTC)", ha="right", va="bottom", fontsize=9)
    return figure


def _draw_step(
    ax: Axes, index: int, step: PromotionStep, y: float, xs: tuple[float, float], when: str
) -> None:
    """One step: an arrow from its actor's lane to its target's, its text, its time."""
    actor, target = xs
    arrow = ax.annotate(
        "",
        xy=(target, y),
        xytext=(actor, y),
        arrowprops={"arrowstyle": "->", "color": "#d95f02", "lw": 1.5},
    )
    arrow.set_gid(f"step:{index}")
    label = ax.text((actor + target) / 2, y - 0.1, step.text, ha="center", va="bottom", fontsize=8)
    label.set_gid(f"text:{index}")
    stamp = datetime.fromtimestamp(step.at / 1000, tz=ZoneInfo("UTC")).strftime(when)
    ax.text(-1.2, y, stamp, ha="right", va="center", fontsize=8)


def _draw_gap(ax: Axes, y: float, x: float, elapsed_ms: int) -> None:
    """A dotted line where time jumps between two steps, saying how much later."""
    ax.axhline(y, color="#999999", linestyle=":", linewidth=1)
    ax.text(x, y, f"{format_ms(elapsed_ms)} later", va="center", fontsize=8, color="#555555")


def _lane_label(lane: str) -> str:
    return {
        "producer": "producer\n(queue.add)",
        "delayed": "delayed\n(ZSET)",
        "marker": "marker\n(ZSET)",
        "wait": "wait\n(LIST)",
        "worker": "worker",
    }[lane]


# -- a scheduler's week on the wall clock ----------------------------------------------


@dataclass(frozen=True)
class LocalRun:
    """One run of a schedule, as a wall clock in ``tz`` shows it."""

    day: date
    hour: float  # local time of day, in hours (8.5 = 08:30)
    label: str  # "Sun 29 Mar 08:00 CEST"
    hours_since_last: float | None  # real hours since the previous run (None: the first)


def local_runs(runs_ms: Sequence[int], tz: str) -> list[LocalRun]:
    """Runs (epoch ms) on the wall clock of ``tz``: the day, the time of day, and the real
    hours since the previous run (23 across a change to summer time)."""
    zone = ZoneInfo(tz)
    result = []
    for index, ms in enumerate(runs_ms):
        local = datetime.fromtimestamp(ms / 1000, tz=zone)
        since = (ms - runs_ms[index - 1]) / 3_600_000 if index else None
        hour = local.hour + local.minute / 60 + local.second / 3600
        result.append(LocalRun(local.date(), hour, local.strftime("%a %d %b %H:%M %Z"), since))
    return result


def plot_schedule_week(
    schedules: Mapping[str, Sequence[LocalRun]],
    *,
    change: date | None = None,
    title: str | None = None,
) -> Figure:
    """The time of day of each run, one line per schedule, with the real hours between
    runs written where they are not 24; ``change`` marks the day the clocks change."""
    if not schedules:
        raise ValueError("schedules must name at least one schedule")
    figure, ax = _new_figure(10, 3.6)
    markers = ["o", "s", "^", "D"]
    days = sorted({run.day for runs in schedules.values() for run in runs})
    position = {day: index for index, day in enumerate(days)}
    hours = [run.hour for runs in schedules.values() for run in runs]
    for number, (name, runs) in enumerate(schedules.items()):
        _draw_schedule(ax, number, name, runs, position, markers[number % len(markers)])
    if change is not None and change in position:
        _draw_clock_change(ax, position[change], max(hours))
    ax.set_xticks(range(len(days)), [day.strftime("%a %d %b") for day in days], fontsize=8)
    ax.set_ylim(min(hours) - 0.75, max(hours) + 0.75)
    ax.set_ylabel("local time of day (h)")
    ax.set_xlabel("day (wall clock of the schedule's time zone)")
    ax.set_title(title or "When each run happens on the wall clock")
    ax.grid(alpha=0.3)
    _legend_outside(
        ax,
        [
            Line2D([], [], marker=markers[i % len(markers)], color=f"C{i}", label=name)
            for i, name in enumerate(schedules)
        ],
    )
    return figure


def _draw_schedule(
    ax: Axes, number: int, name: str, runs: Sequence[LocalRun], position: dict, marker: str
) -> None:
    """One schedule's runs as a line, with the hours since the previous run where not 24."""
    (line,) = ax.plot(
        [position[run.day] for run in runs], [run.hour for run in runs], marker=marker, label=name
    )
    line.set_gid(f"runs:{name}")
    for run in runs:
        if run.hours_since_last is not None and round(run.hours_since_last) != 24:
            ax.annotate(
                f"{run.hours_since_last:g} h after\nthe previous run",
                (position[run.day], run.hour),
                xytext=(8, -4 - 14 * number),
                textcoords="offset points",
                fontsize=8,
                va="top",
                color=line.get_color(),
            ).set_gid(f"gap:{name}:{run.day.isoformat()}")


def _draw_clock_change(ax: Axes, x: float, top: float) -> None:
    """A dashed line before the day the clocks go forward."""
    ax.axvline(x - 0.5, color="#d95f02", linestyle="--", linewidth=1)
    ax.text(
        x - 0.45,
        top + 0.55,
        "clocks go forward\n02:00 → 03:00",
        fontsize=8,
        color="#d95f02",
        va="top",
    )
