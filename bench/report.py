"""From the runs to the product: medians, ratios to minibull, targets, tables, figures.

Everything here is pure over the results dict (``summarise`` makes it), so the
tables and figures can be redrawn from ``bench/results/results.json`` alone:
``bench/.venv/bin/python -m bench.report``.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

METRICS = (
    "rate",
    "p50_us",
    "p99_us",
    "round_trips",
    "server_commands",
    "client_commands",
    "of_ideal",
    "cpu_us",
    "server_cpu_us",
)
DRAIN_LABELS = {
    "c1": "1 process, concurrency 1",
    "c10": "1 process, concurrency 10",
    "2p": "2 processes, concurrency 10 each",
}
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
RELIABILITY_START, RELIABILITY_END = "<!-- reliability:start -->", "<!-- reliability:end -->"


# -- numbers ---------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def summarise(info: dict[str, Any], runs: list[dict[str, Any]], libs: list[str]) -> dict[str, Any]:
    """Medians (and min/max) over the runs, ratios to minibull, and the targets."""
    summary: dict[str, Any] = {}
    for lib in libs:
        scenarios: dict[str, list[dict[str, Any]]] = {}
        for run in runs:
            for scenario, result in run["libs"].get(lib, {}).items():
                if "error" not in result:
                    scenarios.setdefault(scenario, []).append(result)
        summary[lib] = {scenario: _entry(results) for scenario, results in scenarios.items()}
        errors = [
            r["libs"][lib][s]["error"]
            for r in runs
            for s in r["libs"].get(lib, {})
            if "error" in r["libs"][lib][s]
        ]
        if errors:
            summary[lib]["errors"] = errors
    raw = _spread_flat([run["raw"] for run in runs if "raw" in run])
    embedded_runs = [run["embedded"] for run in runs if "embedded" in run]
    embedded = {
        scenario: {
            metric: spread([r[scenario][metric] for r in embedded_runs])
            for metric in embedded_runs[0][scenario]
        }
        for scenario in (embedded_runs[0] if embedded_runs else {})
    }
    floors: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        for name, result in run.get("floors", {}).items():
            if "error" not in result:
                floors.setdefault(name, []).append(result)
    results = {"machine": info, "summary": summary, "raw": raw, "embedded": embedded, "runs": runs}
    results["floors"] = {name: _entry(found) for name, found in floors.items()}
    results["ratios"] = ratios(summary)
    results["targets"] = targets(results)
    return results


def _entry(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One library's (or floor's) results of one scenario over the runs."""
    entry: dict[str, Any] = {
        metric: spread([r[metric] for r in results])
        for metric in METRICS
        if all(metric in r for r in results)
    }
    names = sorted({name for r in results for name in r.get("commands", {})})
    entry["commands"] = {
        name: statistics.fmean(r.get("commands", {}).get(name, 0) for r in results)
        for name in names
    }
    entry["capped"] = sum(1 for r in results if r.get("capped"))
    for key in ("processes", "concurrency", "ideal", "jobs"):
        if key in results[0]:
            entry[key] = results[0][key]
    return entry


def _spread_flat(items: list[dict[str, float]]) -> dict[str, Any]:
    if not items:
        return {}
    return {key: spread([item[key] for item in items]) for key in items[0]}


def median(summary: dict[str, Any], lib: str, scenario: str, metric: str) -> float | None:
    try:
        return summary[lib][scenario][metric]["median"]
    except KeyError:
        return None


def floor_p50(results: dict[str, Any], name: str) -> float | None:
    """The median over the runs of a floor's pooled p50 (``async_floor``, ``sync_floor``)."""
    return results.get("floors", {}).get(name, {}).get("p50_us", {}).get("median")


def run_p50s(runs: list[dict[str, Any]], name: str) -> list[float | None]:
    """The pooled enqueue_single p50 of a library or a floor in each run (None: not there)."""
    found = []
    for run in runs:
        result = run["libs"].get(name, {}).get("enqueue_single") or run.get("floors", {}).get(name)
        found.append((result or {}).get("p50_us"))
    return found


def per_run(
    runs: list[dict[str, Any]], mine: str, theirs: str, difference: bool = False
) -> list[float]:
    """``mine`` ÷ ``theirs`` (or ``mine - theirs``) on the p50s of each run that has both:
    measured in the same rounds, so the machine's swings between runs cancel out."""
    pairs = zip(run_p50s(runs, mine), run_p50s(runs, theirs), strict=True)
    return [a - b if difference else a / b for a, b in pairs if a is not None and b is not None]


def ratios(summary: dict[str, Any]) -> dict[str, Any]:
    """peer / minibull, on medians, for every scenario and metric both have."""
    out: dict[str, Any] = {}
    for lib in summary:
        if lib == "minibull":
            continue
        out[lib] = {}
        for scenario in summary[lib]:
            if scenario == "errors":
                continue
            for metric in ("rate", "p50_us", "p99_us", "round_trips", "server_commands"):
                mine = median(summary, "minibull", scenario, metric)
                theirs = median(summary, lib, scenario, metric)
                if mine and theirs is not None:
                    out[lib].setdefault(scenario, {})[metric] = theirs / mine
    return out


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets for minibull, each checked against this run's medians."""
    summary = results["summary"]
    peers = [lib for lib in summary if not lib.startswith("minibull")]
    found: list[dict[str, Any]] = []

    def add(
        name: str,
        value: float | None,
        goal: float | None,
        higher: bool,
        unit: str,
        against: str,
        runs: dict[str, Any] | None = None,
    ) -> None:
        ok = None
        if value is not None and goal is not None:
            ok = value >= goal if higher else value <= goal
        found.append(
            {
                "target": name,
                "value": value,
                "goal": goal,
                "unit": unit,
                "against": against,
                "pass": ok,
                "per_run": runs,
            }
        )

    def ratios_per_run(mine: str, theirs: str) -> dict[str, Any]:
        return {"kind": "ratios", "values": per_run(results["runs"], mine, theirs)}

    def best_peer(scenario: str, metric: str, highest: bool) -> tuple[float | None, str]:
        values = [(median(summary, lib, scenario, metric), lib) for lib in peers]
        values = [(v, lib) for v, lib in values if v is not None]
        if not values:
            return None, "no peer measured"
        value, lib = max(values) if highest else min(values)
        return value, lib

    add(
        "single enqueue in one round trip",
        median(summary, "minibull", "enqueue_single", "round_trips"),
        1.0,
        False,
        "round trips",
        "1",
    )
    # p50s pooled over each run's rounds, then medians over the runs; the floors were
    # measured in the same rounds as the libraries (bench/run.py, Bench.enqueue_single).
    add_p50 = median(summary, "minibull", "enqueue_single", "p50_us")
    sync_p50 = median(summary, "minibull_sync", "enqueue_single", "p50_us")
    bullmq_p50 = median(summary, "bullmq", "enqueue_single", "p50_us")
    huey_p50 = median(summary, "huey", "enqueue_single", "p50_us")
    async_floor = floor_p50(results, "async_floor")
    sync_floor = floor_p50(results, "sync_floor")
    add(
        "Queue.add p50 at or below 0.9x bullmq's",
        add_p50,
        None if bullmq_p50 is None else 0.9 * bullmq_p50,
        False,
        "us",
        "0.9 x bullmq",
        ratios_per_run("minibull", "bullmq"),
    )
    add(
        "Queue.add p50 within 1.15x of its floor (EVALSHA 'return 1' on connect())",
        add_p50,
        None if async_floor is None else 1.15 * async_floor,
        False,
        "us",
        "1.15 x floor",
        ratios_per_run("minibull", "async_floor"),
    )
    add(
        "SyncQueue.add p50 within 25 us of its floor (sync EVALSHA of addJob, arguments ready)",
        sync_p50,
        None if sync_floor is None else sync_floor + 25,
        False,
        "us",
        "floor + 25",
        {
            "kind": "differences",
            "values": per_run(results["runs"], "minibull_sync", "sync_floor", difference=True),
        },
    )
    add(
        "SyncQueue.add p50 at most 1.5x huey's enqueue",
        sync_p50,
        None if huey_p50 is None else 1.5 * huey_p50,
        False,
        "us",
        "1.5 x huey",
        ratios_per_run("minibull_sync", "huey"),
    )
    add(
        "bulk enqueue at or above bullmq's",
        median(summary, "minibull", "enqueue_bulk", "rate"),
        median(summary, "bullmq", "enqueue_bulk", "rate"),
        True,
        "jobs/s",
        "bullmq",
    )
    add(
        "drain at concurrency 1 at or above huey's",
        median(summary, "minibull", "drain_noop_c1", "rate"),
        median(summary, "huey", "drain_noop_c1", "rate"),
        True,
        "jobs/s",
        "huey",
    )
    bullmq_c10 = median(summary, "bullmq", "drain_noop_c10", "rate")
    add(
        "drain at concurrency 10, one process, at least 3x bullmq's",
        median(summary, "minibull", "drain_noop_c10", "rate"),
        None if bullmq_c10 is None else 3 * bullmq_c10,
        True,
        "jobs/s",
        "3 x bullmq",
    )
    value, lib = best_peer("drain_noop_2p", "rate", highest=True)
    add(
        "drain with two processes at least the fastest peer's",
        median(summary, "minibull", "drain_noop_2p", "rate"),
        value,
        True,
        "jobs/s",
        lib,
    )
    # 10 ms jobs, both ways a minibull job can wait: an ``async def`` job awaiting
    # asyncio.sleep, and a plain function calling time.sleep, which the Worker runs in a
    # thread (minibull_threads), as the thread-based peers run theirs.
    for lib, style in (("minibull", "async def jobs"), ("minibull_threads", "plain-function jobs")):
        add(
            f"10 ms I/O jobs at concurrency 10 ({style}): 92% of the ideal 1,000/s or more",
            median(summary, lib, "drain_io_c10", "rate"),
            920.0,
            True,
            "jobs/s",
            "ideal",
        )
        add(
            f"10 ms I/O jobs at concurrency 10 ({style}) at or above dramatiq's",
            median(summary, lib, "drain_io_c10", "rate"),
            median(summary, "dramatiq", "drain_io_c10", "rate"),
            True,
            "jobs/s",
            "dramatiq",
        )
    for drain in ("c1", "c10"):
        add(
            f"at most 2 round trips per job on the worker side ({drain})",
            median(summary, "minibull", f"drain_noop_{drain}", "round_trips"),
            2.0,
            False,
            "round trips",
            "2",
        )
    e2e = results["embedded"].get("e2e_bulk_c10", {}).get("rate", {}).get("median")
    add(
        "embedded default: at least 2,000 no-op jobs/s end to end",
        e2e,
        2000.0,
        True,
        "jobs/s",
        "2,000",
    )
    return found


# -- text ------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(results: dict[str, Any], lib: str, scenario: str, metric: str = "rate") -> str:
    if lib == "minibull":
        return "1.00" if median(results["summary"], lib, scenario, metric) else "–"
    value = results["ratios"].get(lib, {}).get(scenario, {}).get(metric)
    return "–" if value is None else f"{value:.2f}"


def _libs(results: dict[str, Any]) -> list[str]:
    return list(results["summary"])


def per_run_text(target: dict[str, Any]) -> str:
    """A target's per-run spread: "ratios per run: 0.81, 0.84" or "differences per run:
    +12, +8 µs" ("" for targets without one, and for results from before it existed)."""
    found = target.get("per_run")
    if not found or not found["values"]:
        return ""
    if found["kind"] == "differences":
        return "differences per run: " + ", ".join(f"{v:+.0f}" for v in found["values"]) + " µs"
    return f"{found['kind']} per run: " + ", ".join(f"{v:.2f}" for v in found["values"])


def targets_text(results: dict[str, Any]) -> str:
    lines = ["minibull's targets (medians of this run):"]
    for t in results["targets"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[t["pass"]]
        digits = 2 if t["unit"] == "round trips" else 0
        spread_text = per_run_text(t)
        lines.append(
            f"  {verdict}  {t['target']}: {_num(t['value'], digits)} {t['unit']}"
            f" (goal {_num(t['goal'], digits)}, {t['against']})"
            + (f"; {spread_text}" if spread_text else "")
        )
    return "\n".join(lines)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine_text(results: dict[str, Any]) -> str:
    m = results["machine"]
    v = m["versions"]
    peers = ", ".join(f"{lib} {v[lib]}" for lib in _libs(results) if lib != "minibull" and lib in v)
    return (
        f"{m['cores']} cores ({m['cpu']}), Python {m['python']}, Redis {m['redis_server']} "
        f"({m['redis_where']}), redis-py {v.get('redis', '?')} with the "
        f"{m['redis_py_parser']} parser (minibull_hiredis: hiredis, `pip install minibull[fast]`)"
        f". {m['jobs']:,} jobs per measurement, medians of "
        f"{m['runs']} runs ({m['date']}, {m['minutes']} minutes). minibull at "
        f"`{m['minibull_commit'].split()[0]}`"
        + (" with uncommitted changes" if "uncommitted" in m["minibull_commit"] else "")
        + f"; peers: {peers}."
    )


def enqueue_table(results: dict[str, Any]) -> str:
    s = results["summary"]
    rows = []
    for lib in _libs(results):
        rows.append(
            [
                lib,
                _num(median(s, lib, "enqueue_single", "rate")),
                _ratio(results, lib, "enqueue_single"),
                _num(median(s, lib, "enqueue_single", "p50_us")),
                _ratio(results, lib, "enqueue_single", "p50_us"),
                _num(median(s, lib, "enqueue_single", "p99_us")),
                _num(median(s, lib, "enqueue_single", "round_trips"), 1),
                _num(median(s, lib, "enqueue_single", "server_commands"), 1),
                _num(median(s, lib, "enqueue_single", "cpu_us")),
                _num(median(s, lib, "enqueue_single", "server_cpu_us"), 1),
                _num(median(s, lib, "enqueue_bulk", "rate")),
                _ratio(results, lib, "enqueue_bulk"),
                _num(median(s, lib, "enqueue_bulk", "server_commands"), 1),
            ]
        )
    return table(
        [
            "library",
            "one at a time, jobs/s",
            "÷ minibull",
            "p50 µs",
            "÷ minibull",
            "p99 µs",
            "round trips/job",
            "Redis cmds/job",
            "producer CPU µs/job",
            "Redis CPU µs/job",
            "bulk, jobs/s",
            "÷ minibull",
            "bulk cmds/job",
        ],
        rows,
    )


def drain_table(results: dict[str, Any], kind: str) -> str:
    s = results["summary"]
    rows = []
    for lib in _libs(results):
        row = [lib]
        for drain in ("c1", "c10", "2p"):
            scenario = f"drain_{kind}_{drain}"
            rate = median(s, lib, scenario, "rate")
            cell = _num(rate)
            if kind == "io" and rate is not None:
                cell += f" ({median(s, lib, scenario, 'of_ideal'):.0%})"
            if s.get(lib, {}).get(scenario, {}).get("capped"):
                cell += "*"
            row += [cell, _ratio(results, lib, scenario)]
        if kind == "noop":
            for drain in ("c1", "c10"):
                row.append(_num(median(s, lib, f"drain_noop_{drain}", "round_trips"), 2))
            row.append(_num(median(s, lib, "drain_noop_c10", "server_commands"), 1))
            row.append(_num(median(s, lib, "drain_noop_c10", "cpu_us")))
            row.append(_num(median(s, lib, "drain_noop_c10", "server_cpu_us"), 1))
        rows.append(row)
    header = ["library", "c1, jobs/s", "÷ mb", "c10, jobs/s", "÷ mb", "2 processes, jobs/s", "÷ mb"]
    if kind == "noop":
        header += [
            "worker round trips/job (c1)",
            "(c10)",
            "Redis cmds/job (c10)",
            "worker CPU µs/job (c10)",
            "Redis CPU µs/job (c10)",
        ]
    return table(header, rows)


def reference_text(results: dict[str, Any]) -> str:
    raw = results["raw"]
    if not raw:
        return ""
    names = {
        "sync_ping": "PING",
        "sync_evalsha": "EVALSHA (`return 1`)",
        "sync_lpush_brpop": "LPUSH+BRPOP pairs",
    }
    rows = []
    for key, label in names.items():
        sync = raw.get(key, {}).get("median")
        asynchronous = raw.get(key.replace("sync", "async"), {}).get("median")
        rows.append([label, _num(sync), _num(asynchronous)])
    text = table(["one connection", "redis-py, per second", "redis.asyncio, per second"], rows)
    s = results["summary"]
    pair = raw.get("sync_lpush_brpop", {}).get("median")
    ping = raw.get("sync_ping", {}).get("median")
    fractions = []
    for lib in _libs(results):
        enq = median(s, lib, "enqueue_single", "rate")
        c1 = median(s, lib, "drain_noop_c1", "rate")
        fractions.append(
            [
                lib,
                "–" if not (enq and ping) else f"{enq / ping:.0%}",
                "–" if not (c1 and pair) else f"{c1 / pair:.0%}",
            ]
        )
    return (
        text
        + "\n\nAs a fraction of that limit (one connection, one process):\n\n"
        + table(
            ["library", "enqueue one at a time ÷ PING rate", "drain c1 ÷ LPUSH+BRPOP pair rate"],
            fractions,
        )
    )


def embedded_table(results: dict[str, Any]) -> str:
    e = results["embedded"]
    labels = {
        "enqueue_single": "enqueue one at a time",
        "enqueue_bulk": "enqueue in bulk",
        "drain_noop_c1": "drain, concurrency 1",
        "drain_noop_c10": "drain, concurrency 10",
        "e2e_bulk_c10": "end to end: add_bulk, then a worker at concurrency 10",
        "e2e_single_c10": "end to end: add one at a time, then a worker at concurrency 10",
    }
    rows = []
    for key, label in labels.items():
        if key in e:
            extra = ""
            if "p50_us" in e[key]:
                extra = f" (p50 {e[key]['p50_us']['median']:,.0f} µs)"
            rows.append(
                [
                    label,
                    _num(e[key]["rate"]["median"]) + extra,
                    f"{_num(e[key]['rate']['min'])}–{_num(e[key]['rate']['max'])}",
                ]
            )
    return table(["minibull, embedded fakeredis (no server)", "jobs/s, median", "min–max"], rows)


def targets_table(results: dict[str, Any]) -> str:
    rows = []
    for t in results["targets"]:
        digits = 2 if t["unit"] == "round trips" else 0
        verdict = {True: "PASS", False: "**FAIL**", None: "n/a"}[t["pass"]]
        rows.append(
            [
                t["target"],
                f"{_num(t['value'], digits)} {t['unit']}",
                f"{_num(t['goal'], digits)} ({t['against']})",
                verdict,
                per_run_text(t),
            ]
        )
    return table(["target", "minibull", "goal", "", "each run (same rounds)"], rows)


def spread_table(results: dict[str, Any]) -> str:
    s = results["summary"]
    scenarios = [
        "enqueue_single",
        "enqueue_bulk",
        "drain_noop_c1",
        "drain_noop_c10",
        "drain_noop_2p",
        "drain_io_c10",
    ]
    rows = []
    for lib in _libs(results):
        row = [lib]
        for scenario in scenarios:
            entry = s.get(lib, {}).get(scenario, {}).get("rate")
            row.append("–" if entry is None else f"{_num(entry['min'])}–{_num(entry['max'])}")
        rows.append(row)
    return table(["jobs/s, min–max", *scenarios], rows)


def commands_text(results: dict[str, Any]) -> str:
    """What minibull's worker sends per job, by command (scripts' inner calls included)."""
    entry = results["summary"].get("minibull", {}).get("drain_noop_c10", {})
    commands = entry.get("commands", {})
    if not commands:
        return ""
    top = sorted(commands.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {calls:.2f}" for name, calls in top if calls >= 0.01)


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    parts = [
        "# minibull benchmarks",
        "",
        "Generated by `make bench` (`bench/run.py`); do not edit by hand.",
        "",
        machine_text(results),
        "",
        "Ratios are peer ÷ minibull on medians: above 1 a peer is faster in jobs/s, or slower "
        "in µs. Round trips are counted in each process by wrapping redis-py's connections; "
        "Redis commands per job come from `INFO commandstats` before and after (commands run "
        "inside Lua scripts count too), so they include the worker's background timers.",
        "",
        "## Targets",
        "",
        targets_table(results),
        "",
        "## Enqueue, one producer",
        "",
        enqueue_method_text(results),
        "",
        enqueue_table(results),
        "",
        "## Drain, no-op jobs",
        "",
        f"{m['jobs']:,} jobs enqueued first; the clock runs from the moment the (already started) "
        "worker processes are told to go until the last job has run. rq runs one job at a time "
        "per worker (no concurrency 10; its two-process figure is two single-job workers). "
        f"A drain still running after {m.get('max_seconds', 10):g} s is stopped there and "
        "its rate is the jobs done so far over the time they took (marked *).",
        "",
        drain_table(results, "noop"),
        "",
        "minibull's worker-side Redis commands per job at concurrency 10: "
        f"{commands_text(results)}.",
        "",
        "## Drain, 10 ms I/O jobs",
        "",
        "Each job sleeps 10 ms (`asyncio.sleep` or `time.sleep`); in brackets, the share of "
        "the ideal rate (slots × 100/s).",
        "",
        drain_table(results, "io"),
        "",
        sleep_floor_text(results),
        "",
        "## The physical limit: redis-py alone",
        "",
        reference_text(results),
        "",
        "## minibull on the embedded default",
        "",
        embedded_table(results),
        "",
        "## Reliability: the chaos runs",
        "",
        reliability_text(results),
        "",
        "## Spread over the runs",
        "",
        "The machine was shared with other work while this ran; the spread shows how much.",
        "",
        spread_table(results),
        "",
        "![throughput](throughput.png)",
        "![latency](latency.png)",
        "![commands per job](commands.png)",
        "",
    ]
    return "\n".join(parts)


def enqueue_method_text(results: dict[str, Any]) -> str:
    """How the enqueue figures were taken: one add at a time interleaved, bulk one by one."""
    m = results["machine"]
    bulk = (
        f"Bulk: calls of {m['batch']:,} jobs, one library after the other (libraries with a "
        "bulk call: minibull `add_bulk`, bullmq `addBulk`, rq `enqueue_many`)."
    )
    if "rounds" not in m:  # results from before the rounds
        return (
            f"One at a time: {m['jobs']:,} calls in a row, each timed, one library after the "
            "other. " + bulk
        )
    floors = ", ".join(
        f"{label} {_num(floor_p50(results, name))} µs"
        for name, label in (("async_floor", "`Queue.add`'s"), ("sync_floor", "`SyncQueue.add`'s"))
        if floor_p50(results, name) is not None
    )
    return (
        "One at a time, interleaved: every library's producer process starts at once and "
        "warms up with 200 untimed adds; then, in each of "
        f"{m['rounds']} rounds, the driver asks each in turn (the order rotated every round) "
        f"to time {m['jobs'] // m['rounds']:,} adds in a row while the others wait. Every "
        "library is so measured in the same seconds: this machine's speed swings by about a "
        "third from minute to minute (measured one library after the other, minibull ÷ "
        "bullmq's p50 came out 0.82, 1.05 and 0.80 in three runs). p50 and p99 are over all "
        f"{m['jobs']:,} adds of a run pooled, the rate over its rounds' summed time; Redis's "
        "commands and CPU are read before and after each turn and counted to that turn's "
        "library. Floors take their turns too (not libraries): `Queue.add`'s, an EVALSHA "
        "of `return 1` on `connect(url)`; `SyncQueue.add`'s, a sync EVALSHA of the addJob "
        "script with arguments built once on `connect_sync(url)`; and, to account for the "
        "first, the same addJob EVALSHA on `connect(url)`"
        + (f" (p50: {floors})" if floors else "")
        + ". The targets compare medians over the runs; beside them, the same comparison "
        "in each run. " + bulk
    )


def sleep_floor_text(results: dict[str, Any]) -> str:
    """What 10 ms jobs at concurrency 10 reach with no queue at all (raw measurements)."""
    raw = results.get("raw") or {}
    loop = raw.get("async_sleep_c10", {}).get("median")
    threads = raw.get("thread_sleep_c10", {}).get("median")
    if loop is None or threads is None:
        return "(No no-queue reference for 10 ms jobs in these results.)"
    text = (
        "With no queue at all, on the same machine: 10 asyncio tasks each sleeping 10 ms in "
        f"a loop reach {_num(loop)}/s ({loop / 1000:.0%} of the ideal), and 10 threads "
        f"calling `time.sleep` {_num(threads)}/s ({threads / 1000:.0%}): the event loop's "
        "timer wake-ups alone cost a few percent, before any queue does any work."
    )
    ping = raw.get("async_sleep_ping_c10", {}).get("median")
    evalsha = raw.get("async_sleep_evalsha_c10", {}).get("median")
    if ping is not None and evalsha is not None:
        text += (
            " The same asyncio tasks with one Redis round trip after each sleep (the least a "
            "worker does to record a job): a PING on a bare socket, no client library, "
            f"{_num(ping)}/s ({ping / 1000:.0%}); an EVALSHA of `return 1` with redis.asyncio "
            f"{_num(evalsha)}/s ({evalsha / 1000:.0%})."
        )
    return text


def misses_text(results: dict[str, Any]) -> str:
    """For each missed target, the measured floor that explains it (from this run)."""
    raw = results.get("raw") or {}
    failed = {t["target"] for t in results["targets"] if t["pass"] is False}
    lines = []
    s = results["summary"]
    if any(".add p50" in name for name in failed):
        evalsha = raw.get("async_evalsha", {}).get("median")
        best, best_lib = None, ""
        for lib in _libs(results):
            p50 = median(s, lib, "enqueue_single", "p50_us")
            if not lib.startswith("minibull") and p50 is not None and (best is None or p50 < best):
                best, best_lib = p50, lib
        ours = median(s, "minibull", "enqueue_single", "server_cpu_us")
        theirs = median(s, best_lib, "enqueue_single", "server_cpu_us")
        commands = median(s, best_lib, "enqueue_single", "server_commands")
        if evalsha and ours is not None and theirs is not None and commands is not None:
            lines.append(
                f"- Enqueue latency: {best_lib}'s add is one synchronous call of "
                f"{_num(commands)} Redis command(s) (Redis CPU {_num(theirs)} µs per job); "
                "minibull's is one asyncio EVALSHA of a script that assigns the id, checks "
                "for a duplicate and writes two events, as BullMQ's add does (Redis CPU "
                f"{_num(ours)} µs per job). A trivial EVALSHA alone takes {_num(1e6 / evalsha)} "
                "µs with redis.asyncio here."
            )
    floor = floor_p50(results, "async_floor")
    addjob = floor_p50(results, "async_addjob_floor")
    add_p50 = median(s, "minibull", "enqueue_single", "p50_us")
    if any("1.15x of its floor" in name for name in failed) and floor and addjob and add_p50:
        lines.append(
            f"- `Queue.add` against its floor: p50 {_num(add_p50)} µs; the same client running "
            f"the addJob script with its arguments built once, {_num(addjob)} µs; running "
            f"`return 1`, {_num(floor)} µs (all three in the same rounds). So minibull's "
            f"Python around the call costs {_num(add_p50 - addjob)} µs "
            f"({add_p50 / addjob:.2f}x the addJob call alone), and BullMQ's add itself, "
            f"its writes in Redis and its bytes on the wire, {_num(addjob - floor)} µs: "
            "1.15x of a trivial script would need an add that costs Redis almost nothing."
        )
    sync_p50 = median(s, "minibull_sync", "enqueue_single", "p50_us")
    huey_p50 = median(s, "huey", "enqueue_single", "p50_us")
    if any("huey's enqueue" in name for name in failed) and sync_p50 and huey_p50:
        sync_floor = floor_p50(results, "sync_floor")
        cpu = {lib: median(s, lib, "enqueue_single", "cpu_us") for lib in ("minibull_sync", "huey")}
        server = {
            lib: median(s, lib, "enqueue_single", "server_cpu_us")
            for lib in ("minibull_sync", "huey")
        }
        if sync_floor and None not in cpu.values() and None not in server.values():
            lines.append(
                f"- `SyncQueue.add` against huey's enqueue: {_num(sync_p50)} µs to "
                f"{_num(huey_p50)}. The producers' own CPU is close ({_num(cpu['minibull_sync'])}"
                f" and {_num(cpu['huey'])} µs per job), and `SyncQueue.add` is "
                + (
                    f"{_num(sync_p50 - sync_floor)} µs above"
                    if sync_p50 >= sync_floor
                    else f"{_num(sync_floor - sync_p50)} µs below"
                )
                + " a bare EVALSHA of the addJob script with "
                f"its arguments ready ({_num(sync_floor)} µs): the difference is what Redis "
                f"does, {_num(server['minibull_sync'])} µs of Redis CPU per job for BullMQ's add "
                f"(id, hash, two events, list, marker) against {_num(server['huey'])} µs for "
                "huey's one LPUSH."
            )
    if any("10 ms I/O" in name and "async def" in name for name in failed):
        loop = raw.get("async_sleep_c10", {}).get("median")
        threads = raw.get("thread_sleep_c10", {}).get("median")
        evalsha = raw.get("async_sleep_evalsha_c10", {}).get("median")
        ping = raw.get("async_sleep_ping_c10", {}).get("median")
        redis_us = median(s, "minibull", "drain_noop_c10", "server_cpu_us")
        worker_us = median(s, "minibull", "drain_noop_c10", "cpu_us")
        if loop and threads and evalsha and ping and redis_us is not None and worker_us is not None:
            floor = (
                "so 92% is out of reach here for an asyncio worker that records each job "
                "with a redis.asyncio round trip of its own"
                if evalsha < 920
                else f"so an asyncio worker on redis-py has {evalsha / 10 - 92:.1f} "
                "percentage points to spare"
            )
            lines.append(
                "- 10 ms `async def` jobs: 10 asyncio tasks that only sleep 10 ms reach "
                f"{loop / 1000:.0%} of the ideal on this machine, 10 threads "
                f"{threads / 1000:.0%}; asyncio tasks that make one round trip after each "
                f"sleep, and nothing else, {ping / 1000:.0%} with a bare socket and "
                f"{evalsha / 1000:.0%} with redis.asyncio ({floor}). asyncio wakes its timers "
                "in whole milliseconds (epoll's timeout), so the jobs of a slot-full end "
                "together and one event loop then finishes them one after the other: each "
                f"waits for the others' ({_num(redis_us)} µs of Redis CPU and "
                f"{_num(worker_us)} µs of worker CPU each, no-op drain above). A plain-function "
                "job (`time.sleep`, run in a thread: minibull_threads) wakes on time, as the "
                "thread-based peers' jobs do."
            )
    plain = median(s, "minibull_threads", "drain_io_c10", "rate")
    dramatiq = median(s, "dramatiq", "drain_io_c10", "rate")
    if any("plain-function jobs) at or above" in name for name in failed) and plain and dramatiq:
        ours_cpu = median(s, "minibull_threads", "drain_io_c10", "cpu_us")
        their_cpu = median(s, "dramatiq", "drain_io_c10", "cpu_us")
        lines.append(
            f"- 10 ms plain-function jobs: {_num(plain)} jobs/s to dramatiq's {_num(dramatiq)} "
            f"({plain / dramatiq:.1%} of it). minibull starts a daemon thread for each job "
            "(a job that never returns cannot hold up the process's exit) where dramatiq's "
            "threads are started once: worker CPU per job "
            f"{_num(ours_cpu)} µs to dramatiq's {_num(their_cpu)}."
        )
    if any("embedded" in name for name in failed):
        per_call = results["embedded"].get("script_command_us", {}).get("us", {}).get("median")
        run = median(s, "minibull", "drain_noop_c10", "server_commands")
        add = median(s, "minibull", "enqueue_bulk", "server_commands")
        if per_call and run and add:
            lines.append(
                f"- Embedded: fakeredis takes {_num(per_call, 1)} µs for even the cheapest "
                "command inside a script (an HGET; its XADD and ZADD take several times "
                f"that), and a job needs about {_num(add + run)} commands to be added and run "
                f"({_num(add, 1)} + {_num(run, 1)}, counted on the real Redis above: BullMQ's "
                "data model, events included). Those commands are most of an embedded job's "
                "time, even with each script compiled only once."
            )
    if not lines:
        return ""
    return "Where a target is missed, what the same run measured as the cause:\n\n" + "\n".join(
        lines
    )


def one_redis_text(results: dict[str, Any]) -> str:
    """How far one Redis server goes: its CPU per job, and so its ceiling in jobs/s."""
    s = results["summary"]
    us = median(s, "minibull", "drain_noop_c10", "server_cpu_us")
    add_us = median(s, "minibull", "enqueue_bulk", "server_cpu_us")
    if us is None:
        return "(No Redis CPU figures in these results.)"
    parts = [
        f"Redis itself spent {_num(us, 1)} µs of CPU per minibull job run (drain at "
        "concurrency 10, median; its network work included)"
    ]
    if add_us is not None:
        both = us + add_us
        parts.append(
            f" and {_num(add_us, 1)} µs per job added in bulk: one Redis server, which runs "
            "commands on one core, carries about "
            f"{_num(round(1e6 / both, -2))} jobs/s added and run "
            f"({_num(round(1e6 / us, -2))} jobs/s run) before the queue, not the workers, "
            "is the limit"
        )
    peers = [
        f"{lib} {_num(value, 1)} µs"
        for lib in _libs(results)
        if lib != "minibull"
        and (value := median(s, lib, "drain_noop_c10", "server_cpu_us")) is not None
    ]
    text = "".join(parts) + "."
    if peers:
        text += f" Redis CPU per job run for the peers, same drain: {', '.join(peers)}."
    return text


def reliability_text(results: dict[str, Any]) -> str:
    """The bench's chaos runs (bench/chaos.py), as sentences and tables, with the settings
    each run used."""
    chaos = results.get("chaos")
    if not chaos:
        return "(No chaos run in these results: `make bench` runs it, scenario `chaos`.)"
    parts = [kills_text(chaos)]
    if "redis_restart" in chaos:
        parts.append(restart_text(chaos["redis_restart"]))
    if chaos.get("redis_faults"):
        parts.append(faults_text(chaos["redis_faults"]))
    if chaos.get("measured_at"):
        where = "; ".join(f"{run} at {commit}" for run, commit in chaos["measured_at"].items())
        parts.append(f"Measured on the bench machine ({where}).")
    return "\n\n".join(parts)


def kills_text(chaos: dict[str, Any]) -> str:
    """The random-kills runs, one column per worker setting."""
    runs = [chaos[key] for key in ("random_kills", "random_kills_defaults") if key in chaos]
    first = runs[0]
    rows = [
        ["worker settings", *(_settings(run) for run in runs)],
        ["jobs", *(_num(run["jobs"]) for run in runs)],
        ["SIGKILLs", *(_num(run["kills"]) for run in runs)],
        ["completed", *(_num(run["completed"]) for run in runs)],
        ["failed (reason)", *(_failed(run) for run in runs)],
        ["lost (neither completed nor failed)", *(_num(run["lost"]) for run in runs)],
        ["stuck (active or stalled at the end)", *(_num(run["stuck"]) for run in runs)],
        [
            "duplicates: runs beyond the first (bound: kills × concurrency)",
            *(f"{_num(run['duplicates'])} ({_num(run['duplicate_bound'])})" for run in runs),
        ],
        ["seconds", *(f"{run['seconds']:g}" for run in runs)],
    ]
    header = ["", *(run.get("settings", "fast") for run in runs)]
    text = [
        f"Workers killed at random (`bench/chaos.py`): {first['processes']} `minibull worker` "
        f"processes × concurrency {first['concurrency']} drain the jobs "
        f"({first['job_ms']:g} ms each) while one of them is SIGKILLed every "
        f"{first.get('kill_every_s', '0.5-1')} s and replaced, until every job has completed "
        "or failed.",
        "",
        table(header, rows),
    ]
    defaults = chaos.get("random_kills_defaults")
    if defaults is not None:
        text += ["", _defaults_text(defaults)]
    return "\n".join(text)


def _settings(run: dict[str, Any]) -> str:
    if "lock_duration_s" not in run:
        return "(not recorded)"
    args = run["cli_args"]
    args = args.strip("()") if args.startswith("(") else f"`{args}`"
    return (
        f"lock {run['lock_duration_s']:g} s, stalled sweep every {run['stalled_interval_s']:g} s, "
        f"max stalled count {run['max_stalled_count']} ({args})"
    )


def _failed(run: dict[str, Any]) -> str:
    reasons = run.get("failed_reasons") or {}
    if not run["failed"]:
        return "0"
    return _num(run["failed"]) + " (" + "; ".join(f'"{r}": {n}' for r, n in reasons.items()) + ")"


def _defaults_text(run: dict[str, Any]) -> str:
    if run["failed"]:
        outcome = (
            f"**{_num(run['failed'])} of {_num(run['jobs'])} jobs failed** with "
            '"job stalled more than allowable limit": a job recovered from a killed worker '
            "runs next, and when a second kill catches it, BullMQ's rule "
            f"(`max_stalled_count={run['max_stalled_count']}`) fails it. They are visible in "
            "`failed` (`minibull retry` brings them back), never silently lost"
        )
    else:
        outcome = "no job failed in this run, but a job caught by two kills would fail"
    return (
        f"With the defaults, {outcome}. A killed worker's jobs also wait for their "
        f"{run['lock_duration_s']:g} s lock to expire and one or two stalled sweeps "
        f"(every {run['stalled_interval_s']:g} s) before they run again. If your workers may "
        "die repeatedly, raise `--max-stalled-count` and shorten the lock."
    )


def restart_text(restart: dict[str, Any]) -> str:
    verdict = (
        "every acknowledged job completed"
        if restart["lost"] == 0
        else f"**{restart['lost']} acknowledged jobs lost**"
    )
    settings = (
        f" (down {restart['outage_s']:g} s, AOF `{restart['aof']}`; one in-process worker, "
        f"concurrency {restart['concurrency']}, lock {restart['lock_duration_s']:g} s)"
        if "outage_s" in restart
        else ""
    )
    return (
        f"Redis restarted mid-run{settings}: a private redis-server with AOF, stopped and "
        f"started while a producer added {_num(restart['adds'])} jobs one by one: "
        f"{_num(restart['refused'])} adds were refused with a connection error during the "
        f"outage, {_num(restart['acknowledged'])} were acknowledged, and {verdict} "
        f"({_num(restart['completed'])})."
    )


def faults_text(faults: dict[str, Any]) -> str:
    """The Redis faults of tests/test_redis_faults.py, one row each."""
    settings = next(iter(faults.values()))["settings"]
    rows = []
    for run in faults.values():
        bound = f"{run['duplicate_runs']} ({run['duplicate_bound']})"
        checks = (
            "ok"
            if run["long_job_runs"] and set(run["long_job_runs"]) == {1}
            else f"long jobs ran {run['long_job_runs']}"
        )
        ghost = run["ghost_recovered_s"]
        checks += f"; ghost back in {ghost:g} s" if ghost is not None else "; **ghost never back**"
        rows.append(
            [
                run["fault"],
                f"{_num(run['acked'])} ({_num(run['refused'])})",
                _bold_if(run["lost"]),
                _bold_if(run["stuck"]),
                _bold_if(run["failed"]),
                bound,
                f"{run['duplicate_adds']} ({run['duplicate_adds_bound']})",
                "–" if run["resumed_s"] is None else f"{run['resumed_s']:g}",
                "–" if run["drained_s"] is None else f"{run['drained_s']:g}",
                " / ".join(str(n) for n in run["error_events"]),
                checks,
            ]
        )
    broken = [f"{run['fault']}: {'; '.join(run['problems'])}" for run in faults.values()]
    broken = [line for line in broken if not line.endswith(": ")]
    return "\n".join(
        [
            "Redis faults (`tests/test_redis_faults.py`, the same code; it runs in CI): each "
            "on a private redis-server, with "
            f"{settings['workers']} in-process workers × concurrency {settings['concurrency']}, "
            f"lock {settings['lock_duration']:g} s, stalled sweep every "
            f"{settings['stalled_interval']:g} s, max stalled count "
            f"{settings['max_stalled_count']}; a producer adds 0-19 ms jobs one by one and the "
            "fault starts 1.5 s in. Then every acknowledged job must complete, nothing may stay "
            "in `active`, and two after-checks run: one job per slot lasting 3 lock durations "
            "must run once (lock renewal alive) and a ghost job left in `active` as a SIGKILLed "
            "worker leaves it must be put back by a live stalled sweep.",
            "",
            table(
                [
                    "fault",
                    "adds acked (refused)",
                    "lost",
                    "stuck",
                    "failed",
                    "duplicate runs (bound)",
                    "duplicate adds (bound)",
                    "s to first job done after",
                    "s to all acked done after",
                    "error events per worker",
                    "after-checks",
                ],
                rows,
            ),
            "",
            "Duplicate runs are bounded by one per slot per lock duration the fault lasted, "
            "plus one; duplicate adds by two per fault event (the client re-sends a command "
            "whose reply was lost, twice at most)."
            + (" **Not kept in this run**: " + " | ".join(broken) + "." if broken else ""),
        ]
    )


def _bold_if(value: int) -> str:
    return f"**{value}**" if value else "0"


def readme_section(results: dict[str, Any]) -> str:
    s = results["summary"]
    rows = []
    for lib in _libs(results):
        rows.append(
            [
                lib,
                _num(median(s, lib, "enqueue_single", "p50_us")),
                _num(median(s, lib, "enqueue_bulk", "rate")),
                _num(median(s, lib, "drain_noop_c10", "rate"))
                + f" ({_ratio(results, lib, 'drain_noop_c10')})",
                _num(median(s, lib, "drain_noop_2p", "rate"))
                + f" ({_ratio(results, lib, 'drain_noop_2p')})",
                _num(median(s, lib, "drain_io_c10", "rate")),
                _num(median(s, lib, "drain_noop_c10", "round_trips"), 2),
            ]
        )
    summary_table = table(
        [
            "library",
            "enqueue p50 µs",
            "bulk enqueue jobs/s",
            "drain c10 jobs/s (÷ minibull)",
            "2 processes jobs/s (÷ minibull)",
            "10 ms jobs, c10, jobs/s",
            "worker round trips/job",
        ],
        rows,
    )
    e2e = results["embedded"].get("e2e_bulk_c10", {}).get("rate", {}).get("median")
    return "\n".join(
        [
            "",
            "`make bench` runs minibull and its peers side by side on one Redis and writes "
            "`bench/results/` (full tables in `bench/results/results.md`, numbers in "
            "`results.json`) and this section. " + machine_text(results),
            "",
            summary_table,
            "",
            f"On the embedded default (no server at all) minibull runs {_num(e2e)} no-op jobs/s "
            "end to end (add_bulk, then a worker at concurrency 10).",
            "",
            targets_table(results),
            "",
            misses_text(results),
            "",
            "### How far one Redis server goes",
            "",
            one_redis_text(results),
            "",
            "Past that: run workers on as many machines as you like (they share nothing but "
            "Redis, and the slowest part is usually the jobs, not the queue); give each busy "
            "queue its own Redis, or put queues on a Redis Cluster with a hash-tag prefix "
            '(`prefix="{bull}"` keeps every key of a queue in one slot; queues with different '
            "tags, e.g. `{emails}` and `{reports}`, spread over the cluster's masters). "
            "minibull checks the hash tag when it is given a `RedisCluster` client.",
            "",
            "| | |",
            "|---|---|",
            "| ![throughput](bench/results/throughput.png) "
            "| ![latency](bench/results/latency.png) |",
            "| ![commands per job](bench/results/commands.png) | |",
            "",
        ]
    )


def update_readme(path: Path, results: dict[str, Any]) -> None:
    """Rewrite the README between the bench markers and the reliability markers (adding
    the Performance and Reliability sections once)."""
    text = path.read_text()
    if START not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n## Performance\n\n{START}\n{END}\n"
    text = _replace_between(text, START, END, readme_section(results))
    path.write_text(text)
    update_reliability(path, results)


def update_reliability(path: Path, results: dict[str, Any]) -> None:
    """Rewrite only the README's Reliability section (between its markers) from the chaos
    figures of ``results`` (``python -m bench.chaos --update`` uses it alone)."""
    text = path.read_text()
    if RELIABILITY_START not in text or RELIABILITY_END not in text:
        text = text.replace(
            END, f"{END}\n\n## Reliability\n\n{RELIABILITY_START}\n{RELIABILITY_END}", 1
        )
    reliability = (
        reliability_text(results)
        + "\n\nThe same experiments run smaller in CI (`tests/test_chaos.py`, "
        "`tests/test_redis_faults.py`).\n"
    )
    if results.get("chaos"):
        text = _replace_between(text, RELIABILITY_START, RELIABILITY_END, reliability)
    path.write_text(text)


def _replace_between(text: str, start: str, end: str, body: str) -> str:
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    return pattern.sub(lambda _: f"{start}\n{body}{end}", text, count=1)


# -- figures -----------------------------------------------------------------


def figures(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = results["summary"]
    libs = _libs(results)
    palette = iter(["C0", "C1", "C2", "C4", "C5", "C6", "C7", "C8", "C9"])  # C3 is minibull's red
    colors = {lib: "#d62728" if lib == "minibull" else next(palette) for lib in libs}

    def bars(ax: Any, groups: list[tuple[str, str]], metric: str, title: str, ylabel: str) -> None:
        width = 0.8 / len(libs)
        for i, lib in enumerate(libs):
            xs, ys, low, high = [], [], [], []
            for g, (scenario, _label) in enumerate(groups):
                entry = s.get(lib, {}).get(scenario, {}).get(metric)
                if entry is None:
                    continue
                xs.append(g + (i - (len(libs) - 1) / 2) * width)
                ys.append(entry["median"])
                low.append(entry["median"] - entry["min"])
                high.append(entry["max"] - entry["median"])
            ax.bar(xs, ys, width, yerr=[low, high], label=lib, color=colors[lib], capsize=2)
        ax.set_xticks(range(len(groups)), [label for _s, label in groups])
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    bars(
        axes[0],
        [("enqueue_single", "one at a time"), ("enqueue_bulk", "bulk")],
        "rate",
        "Enqueue, one producer",
        "jobs/s",
    )
    bars(
        axes[1],
        [(f"drain_noop_{d}", d) for d in ("c1", "c10", "2p")],
        "rate",
        "Drain, no-op jobs",
        "jobs/s",
    )
    bars(
        axes[2],
        [(f"drain_io_{d}", d) for d in ("c1", "c10", "2p")],
        "of_ideal",
        "Drain, 10 ms jobs (share of ideal)",
        "of ideal",
    )
    axes[2].axhline(0.95, color="grey", linestyle="--", linewidth=1)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{results['machine']['cores']} cores, Redis {results['machine']['redis_server']}, "
        "medians with min–max"
    )
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.38
    p50 = [median(s, lib, "enqueue_single", "p50_us") or 0 for lib in libs]
    p99 = [median(s, lib, "enqueue_single", "p99_us") or 0 for lib in libs]
    xs = range(len(libs))
    ax.bar(
        [x - width / 2 for x in xs], p50, width, label="p50", color=[colors[lib] for lib in libs]
    )
    ax.bar([x + width / 2 for x in xs], p99, width, label="p99", color="lightgrey")
    ax.set_xticks(list(xs), libs)
    ax.set_ylabel("µs per enqueue call")
    ax.set_title("Latency of one enqueue call (the request path's cost)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    groups = [
        ("enqueue_single", "enqueue"),
        ("drain_noop_c1", "worker c1"),
        ("drain_noop_c10", "worker c10"),
    ]
    bars(axes[0], groups, "round_trips", "Round trips per job", "round trips")
    axes[0].axhline(2, color="grey", linestyle="--", linewidth=1)
    bars(
        axes[1], groups, "server_commands", "Redis commands per job (INFO commandstats)", "commands"
    )
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "commands.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    results_dir = Path(__file__).parent / "results"
    loaded = json.loads((results_dir / "results.json").read_text())
    (results_dir / "results.md").write_text(markdown(loaded))
    figures(loaded, results_dir)
    if "--readme" in sys.argv:
        update_readme(Path(__file__).parent.parent / "README.md", loaded)
