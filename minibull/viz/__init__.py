"""Pictures of a queue: backoff timelines, retry storms, job timelines, queue depth.

Optional: ``from minibull import viz`` needs matplotlib (``import minibull`` does not).
Each picture has two halves: a pure function that returns plain data (tested
exactly) and a ``plot_*`` function that draws it on a new ``Figure`` and returns
it, with no global state (no pyplot), so a notebook cell shows it and a script
saves it with ``fig.savefig(path)``.

One module per picture family: ``base`` (units, colours, the notebook figure),
``backoff`` (backoff timelines and retry storms), ``requests`` (when each request was
answered and its email delivered), ``schedule`` (a delayed job's promotion, a scheduler's
runs on the wall clock), ``source`` (short source excerpts), ``states`` (a job's life),
``timeline`` (job timelines from the events stream), ``depth`` (queue depth over a run),
``rates`` (job starts under a rate limit), ``marks`` (an incident or a crash, with its
moments marked), ``duplicates`` (duplicate requests and what each defence made of them),
``metrics`` (jobs finished per minute), ``flows`` (a flow's tree, and the timeline of its run),
``history`` (what a queue keeps in Redis as jobs finish).
"""

from .backoff import (
    BackoffPoints,
    RetryStorm,
    backoff_points,
    describe_backoff,
    plot_backoff_timeline,
    plot_retry_storm,
    simulate_retry_storm,
    storm_is_up,
)
from .base import OUTCOME_COLOURS, OUTCOME_LABELS, UNITS, NotebookFigure, format_ms, time_unit
from .depth import DepthSample, DepthSampler, Every, plot_queue_depth
from .duplicates import Request, plot_duplicates, requests_from_adds
from .flows import (
    STATE_COLOURS,
    TreeBox,
    flow_spans,
    plot_flow_timeline,
    plot_flow_tree,
    read_flow_tree,
    ready_marks,
    tree_layout,
)
from .history import HistoryPoint, history_lines, plot_history
from .marks import mark_positions, plot_crash_timeline, plot_incident
from .metrics import metrics_minutes, plot_metrics
from .rates import plot_start_histogram, starts_per_bin
from .requests import RequestTimes, plot_request_timeline, request_times
from .schedule import (
    PROMOTION_LANES,
    LocalRun,
    PromotionStep,
    local_runs,
    plot_promotion,
    plot_schedule_week,
    promotion_steps,
)
from .source import Excerpt, cut, excerpt
from .states import JOB_STATE_PLACES, JOB_TRANSITIONS, Transition, plot_job_states
from .timeline import Span, attempt_spans, job_spans, plot_job_timeline, read_events, timeline_rows

__all__ = [
    "STATE_COLOURS",
    "TreeBox",
    "flow_spans",
    "plot_flow_timeline",
    "plot_flow_tree",
    "read_flow_tree",
    "ready_marks",
    "tree_layout",
    "plot_job_states",
    "Transition",
    "JOB_TRANSITIONS",
    "JOB_STATE_PLACES",
    "excerpt",
    "cut",
    "Excerpt",
    "promotion_steps",
    "plot_schedule_week",
    "plot_promotion",
    "local_runs",
    "PromotionStep",
    "LocalRun",
    "PROMOTION_LANES",
    "OUTCOME_COLOURS",
    "OUTCOME_LABELS",
    "UNITS",
    "BackoffPoints",
    "DepthSample",
    "DepthSampler",
    "Every",
    "NotebookFigure",
    "RequestTimes",
    "Request",
    "RetryStorm",
    "Span",
    "attempt_spans",
    "backoff_points",
    "describe_backoff",
    "format_ms",
    "job_spans",
    "HistoryPoint",
    "history_lines",
    "plot_history",
    "metrics_minutes",
    "mark_positions",
    "plot_backoff_timeline",
    "plot_crash_timeline",
    "plot_duplicates",
    "plot_incident",
    "plot_job_timeline",
    "plot_metrics",
    "plot_queue_depth",
    "plot_request_timeline",
    "plot_retry_storm",
    "plot_start_histogram",
    "read_events",
    "request_times",
    "simulate_retry_storm",
    "storm_is_up",
    "requests_from_adds",
    "starts_per_bin",
    "time_unit",
    "timeline_rows",
]
