"""Widgets for notebooks: a live dashboard of a queue, and an explorer of backoff policies.

Optional: ``from minibull import widgets`` needs ipywidgets and matplotlib. Each
widget shows itself when it is the last expression of a cell, and also renders
as plain text and HTML (``to_text()``, ``to_html()``) where widgets do not
(nbval, GitHub's notebook view).
"""

from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from . import viz
from .job import STATES

if TYPE_CHECKING:
    from .queue import Queue


def _bundle(widget: w.Widget, text: str, html_text: str) -> dict[str, Any]:
    """The live widget where it can be shown (not once closed), else HTML, else text."""
    data = dict(widget._repr_mimebundle_() or {}) if widget.comm is not None else {}
    data["text/plain"] = text  # replaces the widget's repr, so stored outputs stay the same
    data["text/html"] = html_text
    return data


class QueueDashboard:
    """Counts per state, throughput and the latest failures of a queue, refreshed while
    workers run: ``QueueDashboard(queue).start()`` in a cell, ``await dashboard.close()``
    when done. Throughput counts jobs finished in the last ``window`` seconds of the
    queue's clock."""

    def __init__(
        self, queue: Queue, *, interval: float = 1.0, window: float = 10.0, failures: int = 5
    ) -> None:
        if interval <= 0 or window <= 0 or failures < 0:
            raise ValueError(
                f"interval and window must be > 0 and failures >= 0 "
                f"(got {interval!r}, {window!r}, {failures!r})"
            )
        self.queue = queue
        self.interval = interval
        self.window = window
        self.failure_count = failures
        self.counts: dict[str, int] = dict.fromkeys(STATES, 0)
        self.paused = False
        self.throughput = 0.0  # jobs finished per second of the queue's clock
        self.failures: list[dict[str, Any]] = []  # newest first: id, name, attempts, reason
        self.error: BaseException | None = None
        self.refreshes = 0
        self._finished: list[int] = []  # ts of the completed/failed events in the window
        self._last_event = "0-0"
        self._every = viz.Every(
            interval, self.refresh, name=f"dashboard of {queue!r}", on_error=self._show_error
        )
        self.widget = w.VBox([w.HTML(self.to_html())])

    def __repr__(self) -> str:
        return f"QueueDashboard({self.queue!r}, running={self.running})"

    @property
    def running(self) -> bool:
        """True while the background refresh runs."""
        return self._every.running

    async def refresh(self) -> None:
        """Read the queue once and redraw."""
        self.counts = await self.queue.get_job_counts()
        self.paused = await self.queue.is_paused()
        await self._read_finished_events()
        cutoff = self.queue.clock.now() - self.window * 1000
        self._finished = [ts for ts in self._finished if ts > cutoff]
        self.throughput = len(self._finished) / self.window
        failed = (
            await self.queue.get_jobs("failed", 0, self.failure_count - 1)
            if self.failure_count
            else []
        )
        self.failures = [
            {
                "id": job.id,
                "name": job.name,
                "attempts": job.attempts_made,
                "reason": job.failed_reason or "",
            }
            for job in failed
        ]
        self.refreshes += 1
        self.error = None
        self._redraw()

    async def _read_finished_events(self) -> None:
        for event in await viz.read_events(self.queue, self._last_event):
            self._last_event = event["id"]
            if event.get("event") in ("completed", "failed") and event.get("ts"):
                self._finished.append(int(float(event["ts"])))

    def _redraw(self) -> None:
        self.widget.children[0].value = self.to_html()

    def start(self) -> QueueDashboard:
        """Refresh every ``interval`` real seconds in the background; returns self."""
        self._every.start()
        return self

    def _show_error(self, exc: Exception) -> None:
        """A refresh failed (e.g. Redis went away): say so; the next refresh tries again."""
        self.error = exc
        self._redraw()

    async def stop(self) -> None:
        """Stop refreshing, waiting for the background task to end."""
        await self._every.stop()

    async def close(self) -> None:
        """Stop refreshing and close the widget."""
        await self.stop()
        _close_tree(self.widget)

    def to_text(self) -> str:
        """The dashboard as plain text."""
        lines = [f"queue {self.queue.name}" + (" (paused)" if self.paused else "")]
        lines.append("  ".join(f"{state} {self.counts.get(state, 0)}" for state in STATES))
        lines.append(f"throughput: {self.throughput:.3g} jobs/s over the last {self.window:g} s")
        if self.failures:
            lines.append("latest failures:")
            for failure in self.failures:
                lines.append(
                    f"  job {failure['id']} ({failure['name']}), "
                    f"{failure['attempts']} attempt(s): {failure['reason']}"
                )
        else:
            lines.append("no failed jobs")
        if self.error is not None:
            lines.append(f"refresh failed (retrying): {type(self.error).__name__}: {self.error}")
        return "\n".join(lines)

    def to_html(self) -> str:
        """The dashboard as an HTML fragment."""
        title = html.escape(self.queue.name) + (" <em>(paused)</em>" if self.paused else "")
        head = "".join(f"<th>{state}</th>" for state in STATES)
        cells = "".join(
            f"<td style='text-align:center'>{self.counts.get(state, 0)}</td>" for state in STATES
        )
        parts = [
            f"<b>queue {title}</b>",
            f"<table><tr>{head}</tr><tr>{cells}</tr></table>",
            f"<p>throughput: <b>{self.throughput:.3g}</b> jobs/s "
            f"over the last {self.window:g} s</p>",
        ]
        if self.failures:
            rows = "".join(
                f"<tr><td>{html.escape(f['id'])}</td><td>{html.escape(f['name'])}</td>"
                f"<td>{f['attempts']}</td><td>{html.escape(f['reason'])}</td></tr>"
                for f in self.failures
            )
            parts.append(
                "<table><tr><th>job</th><th>name</th><th>attempts</th><th>reason</th></tr>"
                f"{rows}</table>"
            )
        else:
            parts.append("<p>no failed jobs</p>")
        if self.error is not None:
            error = html.escape(f"{type(self.error).__name__}: {self.error}")
            parts.append(f"<p style='color:#d95f02'>refresh failed (retrying): {error}</p>")
        return "\n".join(parts)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return _bundle(self.widget, self.to_text(), self.to_html())


def _close_tree(widget: w.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


class BackoffExplorer:
    """Sliders for a backoff policy, redrawing its timeline: ``BackoffExplorer()`` in a cell.

    With jitter, the same policy without jitter is drawn below it, for comparison.
    The numbers come from ``viz.backoff_points``, that is, the worker's own formulas.
    """

    def __init__(
        self,
        *,
        attempts: int = 5,
        delay: float = 1.0,
        jitter: float = 0.0,
        strategy: str = "exponential",
        seed: int = 0,
    ) -> None:
        self.seed = seed
        self.strategy = w.ToggleButtons(
            options=["fixed", "exponential"], value=strategy, description="strategy"
        )
        self.attempts = w.IntSlider(
            value=attempts, min=2, max=12, description="attempts", continuous_update=False
        )
        self.delay = w.FloatLogSlider(
            value=delay, base=10, min=-1, max=2, step=0.1, description="delay (s)",
            continuous_update=False,
        )  # fmt: skip
        self.jitter = w.FloatSlider(
            value=jitter, min=0, max=1, step=0.05, description="jitter", continuous_update=False
        )
        self.image = w.Image(format="png")
        self.summary = w.HTML()
        self.points: list[viz.BackoffPoints] = []
        self._controls = (self.strategy, self.attempts, self.delay, self.jitter)
        for control in self._controls:
            control.observe(self._on_change, names="value")
        self.widget = w.VBox([*self._controls, self.image, self.summary])
        self.redraw()

    def __repr__(self) -> str:
        return f"BackoffExplorer({self.backoff!r}, attempts={self.attempts.value})"

    @property
    def backoff(self) -> dict[str, Any]:
        """The policy the controls describe, as you would pass it to ``Queue.add``."""
        policy: dict[str, Any] = {"type": self.strategy.value, "delay": self.delay.value}
        if self.jitter.value:
            policy["jitter"] = self.jitter.value
        return policy

    def _on_change(self, _change: dict[str, Any]) -> None:
        self.redraw()

    def redraw(self) -> None:
        """Recompute the attempts and redraw the timeline."""
        attempts, policy = self.attempts.value, self.backoff
        self.points = [viz.backoff_points(policy, attempts, seed=self.seed)]
        if "jitter" in policy:
            plain = {key: value for key, value in policy.items() if key != "jitter"}
            self.points.append(viz.backoff_points(plain, attempts, seed=self.seed))
        buffer = io.BytesIO()
        viz.plot_backoff_timeline(self.points).savefig(buffer, format="png", dpi=80)
        self.image.value = buffer.getvalue()
        self.summary.value = self.to_html()

    def to_text(self) -> str:
        """The attempts and waits as plain text."""
        lines = []
        for points in self.points:
            waits = ", ".join(viz.format_ms(wait) for wait in points.waits) or "none"
            total = viz.format_ms(points.starts[-1])
            lines.append(f"{points.label}: waits {waits}; last attempt at {total}")
        return "\n".join(lines)

    def to_html(self) -> str:
        """The attempts and waits as an HTML fragment."""
        return "<br>".join(html.escape(line) for line in self.to_text().splitlines())

    def close(self) -> None:
        """Stop listening to the controls and close the widget (there is no background task)."""
        for control in self._controls:
            control.unobserve(self._on_change, names="value")
        _close_tree(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return _bundle(self.widget, self.to_text(), self.to_html())
