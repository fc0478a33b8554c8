"""What a person sees in the terminal: a live progress line during runs, a summary per run after."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_gashammer.results import (
    COUNT_FIGURES,
    LATENCY_FIGURES,
    RECEIPTS_CHECKED,
    RECEIPTS_EXPECTED,
    RECEIPTS_VIA,
    rate_figures,
    receipts_line,
)
from pytest_gashammer.scenario.units import format_gas_rate, format_seconds

#: Runs shorter than this never print a progress line.
PROGRESS_AFTER = 3.0
#: The node's refusal messages a run summary quotes (the most frequent first).
SUMMARY_REJECTIONS = 3


class LiveProgress:
    """Writes ``elapsed, gas/s, tx/s, p99, errors`` while a run goes, through pytest's terminal.

    On a terminal the line is redrawn in place; in a log (CI) a line is added every few seconds.
    Output capture is suspended around each write, as pytest's own live logging does.
    """

    def __init__(self, terminal: Any, capture_manager: Any, *, interactive: bool) -> None:
        self._terminal = terminal
        self._capture = capture_manager
        self._interactive = interactive
        self._started = time.monotonic()
        self._last_write = 0.0
        self._last_included_gas = 0
        self._last_included = 0
        self._last_sample = self._started
        self._last_elapsed = 0.0
        self._plan: Any = None
        self._wrote = False

    def update(self, plan: Any, progress: Any) -> None:
        now = time.monotonic()
        # The counters are per run: a new run (a capacity search's next step, a test's next run)
        # starts them again, and a rate across the two would read as negative.
        restarted = plan is not self._plan or progress.elapsed < self._last_elapsed
        self._plan, self._last_elapsed = plan, progress.elapsed
        if restarted:
            self._sample(now, progress)
            return
        if now - self._started < PROGRESS_AFTER:
            self._sample(now, progress)
            return
        interval = 0.5 if self._interactive else 5.0
        if now - self._last_write < interval:
            return
        span = max(now - self._last_sample, 1e-6)
        gas_rate = (progress.included_gas - self._last_included_gas) / span
        tx_rate = (progress.included - self._last_included) / span
        self._sample(now, progress)
        self._last_write = now
        p99 = format_seconds(progress.recent_inclusion_p99)
        line = (
            f"gashammer {plan.name}: {progress.phase} {progress.elapsed:5.1f}/{plan.sending_time:.0f}s  "
            f"{format_gas_rate(gas_rate)} ({tx_rate:,.0f} tx/s) of {format_gas_rate(plan.target_gas_per_sec)}  "
            f"included {progress.included:,}/{progress.sent:,}  p99 {p99}  errors {progress.errors}"
        )
        if progress.edges > 1:
            line += f"  edges {progress.edges}"
        if progress.queued:
            line += f"  queued {progress.queued}"
        self._write(line)

    def _sample(self, now: float, progress: Any) -> None:
        self._last_sample = now
        self._last_included_gas = progress.included_gas
        self._last_included = progress.included

    def _write(self, line: str) -> None:
        with self._capture.global_and_fixture_disabled():
            if self._interactive:
                self._terminal.write(
                    "\r" + line.ljust(self._terminal._tw.fullwidth - 1)[: self._terminal._tw.fullwidth - 1]
                )
                self._terminal.flush()
            else:
                self._terminal.write_line(line)
        self._wrote = True

    def finish(self) -> None:
        if self._wrote and self._interactive:
            with self._capture.global_and_fixture_disabled():
                self._terminal.write("\r" + " " * (self._terminal._tw.fullwidth - 1) + "\r")
                self._terminal.flush()


def _rate_line(label: str, value: float, target: float) -> str:
    ratio = f"{value / target * 100:6.1f} %" if target else ""
    return f"  {label:<10} {format_gas_rate(value):>14}  {ratio}"


def _known(value: Any) -> float | None:
    """A fault's figure, ``None`` when it was not measured (``nan`` live, null once stored)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _gas(value: Any) -> str:
    number = _known(value)
    return "-" if number is None else format_gas_rate(number)


def _span(start: Any, end: Any) -> str:
    return f"{float(start):.1f}–{float(end):.1f} s"


def fault_lines(faults: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per fault of the run: when it was active, the included gas rate and the inclusion
    p99 before → during → after, how long the run took to recover, delayed and lost transactions.

    ``faults`` are ``FaultImpact`` fields as plain data (``summary_dict()["faults"]``), live or read
    back from a stored run (where an unmeasured figure is null instead of ``nan``): both print alike.
    """
    lines = []
    windows = ("before", "during", "after")
    for fault in faults:
        label = f"{fault['kind']} #{fault['index']}"
        started, ended = _known(fault.get("started_at")), _known(fault.get("ended_at"))
        duration = float(fault["planned_duration"])
        if started is None:
            planned = float(fault["planned_at"])
            line = f"  fault {label} planned at {_span(planned, planned + duration)}: not applied"
        else:
            span = _span(started, ended if ended is not None else started + duration)
            if ended is None:
                span += " (never ended)"
            gas = " → ".join(_gas(fault.get(f"included_gas_per_sec_{window}")) for window in windows)
            p99 = " → ".join(
                format_seconds(_known(fault.get(f"inclusion_p99_{window}"))) for window in windows
            )
            recovered = _known(fault.get("recovered_after_s"))
            recovery = (
                "never recovered" if recovered is None else f"recovered after {format_seconds(recovered)}"
            )
            delayed, lost = int(fault.get("delayed") or 0), int(fault.get("lost") or 0)
            line = (
                f"  fault {label} at {span}: included {gas}, p99 {p99}, {recovery}, "
                f"{delayed:,} delayed, {lost:,} lost"
            )
        if fault.get("error"):
            line += f", error: {fault['error']}"
        lines.append(line)
    return lines


#: Every feed-versus-chain finding the summary names (``FeedChainFindings``' counts), in its order.
FEED_FINDINGS = (
    "missing_from_feed",
    "duplicated_in_feed",
    "feed_only",
    "order_violations",
    "hash_mismatches",
    "messages_spanning_blocks",
    "blocks_missing_from_feed",
)


def feed_versus_chain(findings: dict[str, Any]) -> str:
    """What the feed check found, in words: each finding with its count, "consistent" when there
    was none, "not checked" when the edge made no check."""
    if not findings:
        return "not checked"
    found = ", ".join(
        f"{key.replace('_', ' ')} {findings[key]}" for key in FEED_FINDINGS if findings.get(key)
    )
    return found or "consistent"


def _bytes(value: Any) -> str:
    number = _known(value)
    if number is None:
        return "-"
    return f"{number:,.0f} B" if number < 1000 else f"{number / 1000:,.1f} kB"


def _kgas(value: Any) -> str:
    number = _known(value)
    return "-" if number is None else f"{number / 1000:,.0f} kgas"


def l1_lines(l1: Mapping[str, Any] | None) -> list[str]:
    """What the L1 monitor saw, in one line (and one for its problems): batches, blocks posted, the
    batch-posting lag, cost per batch, assertions. ``l1`` is ``L1Figures`` as plain data
    (``summary_dict()["l1"]``), live or read back from a stored run."""
    if not l1:
        return []
    lag = l1.get("batch_lag") or {}
    if lag.get("count"):
        lag_words = (
            f"lag p50 {format_seconds(_known(lag.get('p50')))} p99 {format_seconds(_known(lag.get('p99')))} "
            f"max {format_seconds(_known(lag.get('max')))}"
        )
    else:
        lag_words = "no lag measured"
    lines = [
        f"  L1         {l1.get('batches', 0):,} batches, {l1.get('blocks_posted', 0):,} of "
        f"{l1.get('blocks_of_run', 0):,} blocks posted, {lag_words}, {_bytes(l1.get('bytes_per_batch'))} "
        f"and {_kgas(l1.get('l1_gas_per_batch'))} per batch, {l1.get('assertions', 0):,} assertions "
        f"({l1.get('confirmations', 0):,} confirmed)"
    ]
    problems = l1.get("problems") or []
    if problems:
        lines.append(f"  L1 problems {len(problems)}, first: {problems[0]}")
    return lines


def engine_lines(engine: Mapping[str, Any] | None) -> list[str]:
    """The Engine API calls of the plugin's consensus driver, in one line: blocks, the build and import
    times per block, newPayload's latency, statuses other than the expected. ``engine`` is
    ``EngineFigures`` as plain data (``summary_dict()["engine"]``)."""
    if not engine:
        return []

    def p50_p99(name: str) -> str:
        stats = engine.get(name) or {}
        if not stats.get("count"):
            return "-"
        return (
            f"p50 {format_seconds(_known(stats.get('p50')))} p99 {format_seconds(_known(stats.get('p99')))}"
        )

    unexpected = [
        f"{method} {status} x{count}"
        for method, by_status in (engine.get("statuses") or {}).items()
        for status, count in by_status.items()
        if status not in ("VALID", "OK")
    ]
    per_block = _known(engine.get("transactions_per_block"))
    cpu = _known(engine.get("driver_cpu_per_block_s"))
    line = (
        f"  engine     V{engine.get('version')}  {engine.get('blocks_built', 0):,} blocks"
        f" ({'-' if per_block is None else f'{per_block:,.1f}'} tx each)  build {p50_p99('block_build')}"
        f"  import {p50_p99('block_import')}  newPayload {p50_p99('new_payload')}"
    )
    if cpu is not None:
        line += f"  driver CPU {format_seconds(cpu)}/block"
    lines = [line]
    if unexpected:
        lines.append(f"  engine answers  {', '.join(unexpected)}")
    return lines


def network_lines(network: Mapping[str, Any] | None) -> list[str]:
    """The nodes of a multi-node devnet after the run, in one line: each one's head, how long the
    slowest took to reach the builder's, what was compared, the network's events. ``network`` is
    ``NetworkFigures`` as plain data (``summary_dict()["network"]``)."""
    if not network:
        return []
    nodes = network.get("nodes") or []
    heads = " ".join(
        f"{node['name']} #{'?' if node.get('head_number') is None else node['head_number']}"
        + ("" if node.get("converged_after_s") is not None else " (behind)")
        + (" (syncing)" if node.get("syncing") else "")
        for node in nodes
    )
    reached = [node["converged_after_s"] for node in nodes if node.get("converged_after_s") is not None]
    slowest = (
        f"  in sync after {format_seconds(max(reached))}" if len(reached) == len(nodes) and nodes else ""
    )
    events = len(network.get("events") or ()) + int(network.get("events_dropped") or 0)
    return [
        f"  network    {len(nodes)} nodes: {heads}{slowest}  {network.get('heights_checked', 0):,} heights and "
        f"{network.get('receipts_checked', 0):,} receipts compared  {events:,} events"
    ]


def capacity_lines(capacity: Mapping[str, Any] | None) -> list[str]:
    """A capacity search's summary: the maximum with its 95 % interval, the knee, and one line per
    step in the order they ran. ``capacity`` is ``CapacityFigures`` as plain data
    (``summary_dict()["capacity"]``), live or read back from a stored run."""
    if not capacity:
        return []
    highest = _known(capacity.get("max_gas_per_sec"))
    low, high = _known(capacity.get("max_ci_low")), _known(capacity.get("max_ci_high"))
    knee = _known(capacity.get("knee_gas_per_sec"))
    steps = capacity.get("steps") or []
    if highest is None:
        head = "no rate met the SLOs"
    else:
        interval = f"{_gas(low)} .. {'at least to' if high is None else _gas(high)}"
        head = f"max {_gas(highest)} (95 % {interval})"
    lines = [
        f"  capacity   {head}  knee {_gas(knee) if knee is not None else '-'}  {len(steps)} steps, "
        f"stopped on {capacity.get('stopped', '?')}"
    ]
    for step in steps:
        missed = [name for name, status in (step.get("slos") or {}).items() if status != "passed"]
        verdict = "met" if step.get("passed") else "missed " + ", ".join(missed)
        held = ""
        if step.get("steadiness"):
            # How the step stood when judged, and for how long it was held (over how many runs).
            runs = int(step.get("attempts") or 1)
            held = f"  {step['steadiness']} at {float(step.get('held') or 0):g} s" + (
                f" ({runs} runs)" if runs > 1 else ""
            )
        lines.append(
            f"    step {step.get('index')}: offered {_gas(step.get('offered_gas_per_sec'))}  included "
            f"{_gas(step.get('included_gas_per_sec'))}  p50 {format_seconds(_known(step.get('inclusion_p50')))}  "
            f"p99 {format_seconds(_known(step.get('inclusion_p99')))}{held}  {verdict}"
        )
    return lines


def format_run_summary(nodeid: str, run: dict[str, Any]) -> list[str]:
    """One screen (about fifteen lines) per run, from :meth:`RunResult.summary_dict`."""
    target = run["target_gas_per_sec"]
    lines = [
        f"{nodeid}  [{run['name']}] seed={run['seed']} chain={run['chain_id']} ({run['devnet_kind']}, {run['node_version']})",
        f"  target     {format_gas_rate(target):>14}",
    ]
    for label, gas_rate, tx_rate in rate_figures():
        line = _rate_line(label, run[gas_rate.name], target)
        if tx_rate is not None:
            line += f"   {run[tx_rate.name]:,.1f} tx/s"
        lines.append(line)
    lines.append("  counts     " + "  ".join(f"{f.short_label} {run[f.name]:,}" for f in COUNT_FIGURES))
    checked, expected, via = (run.get(f.name) for f in (RECEIPTS_CHECKED, RECEIPTS_EXPECTED, RECEIPTS_VIA))
    if checked is not None and expected is not None:
        lines.append(f"  receipts   {receipts_line(checked, expected, via or '')}")
    for figure in LATENCY_FIGURES:
        stats = run.get(figure.name)
        if stats is None:
            continue
        if stats["count"]:
            lines.append(
                f"  {figure.short_label:<10} p50 {format_seconds(stats['p50'])}  p90 {format_seconds(stats['p90'])}  "
                f"p99 {format_seconds(stats['p99'])}  max {format_seconds(stats['max'])}"
            )
    for edge_id, facts in ((run.get("feed") or {}).get("edges") or {}).items():
        stats, findings = facts.get("stats") or {}, facts.get("findings") or {}
        swapped = stats.get("out_of_order_count", 0)
        out_of_order = f"out of order {swapped}  " if swapped else ""
        lines.append(
            f"  feed [{edge_id}] messages {stats.get('messages', 0):,}  reconnects {stats.get('reconnects', 0)}  "
            f"gaps {stats.get('gap_count', 0)}  {out_of_order}duplicates {stats.get('duplicate_count', 0)}  "
            f"decode errors {sum((stats.get('decode_errors') or {}).values())}  "
            f"vs chain: {feed_versus_chain(findings)}"
        )
    if run["errors"]:
        errors = ", ".join(
            f"{kind}={count}" for kind, count in sorted(run["errors"].items(), key=lambda kv: -kv[1])
        )
        lines.append(f"  errors     {errors}")
    for index, entry in enumerate((run.get("rejections") or [])[:SUMMARY_REJECTIONS]):
        code = "no answer" if entry["code"] is None else f"code {entry['code']}"
        label = "rejections" if index == 0 else ""
        lines.append(f"  {label:<10} {entry['kind']} ({code}) x{entry['count']:,}: {entry['message']!r}")
    lines.extend(fault_lines(run.get("faults") or ()))
    lines.extend(l1_lines(run.get("l1")))
    lines.extend(engine_lines(run.get("engine")))
    lines.extend(network_lines(run.get("network")))
    lines.extend(capacity_lines(run.get("capacity")))
    verdicts = "  ".join(f"{v['name']}:{v['status']}" for v in run["verdicts"])
    lines.append(f"  verdicts   {verdicts}")
    # The regression gate's table (--gashammer-compare), as the plugin put it in the summary.
    lines.extend(f"  compare    {line}" for line in run.get("comparison") or ())
    if run.get("stopped_early"):
        lines.append(f"  stopped early: {run['stopped_early']}")
    lines.extend(f"  {note}" for note in run.get("run_notes") or ())
    lines.extend(f"  {note}" for note in run.get("devnet_notes") or ())
    return lines


class RunSummaries:
    """Collects run summaries from test reports (local or from xdist workers) and prints them at the end."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.runs: list[tuple[str, dict[str, Any]]] = []

    def pytest_runtest_logreport(self, report: Any) -> None:
        runs = getattr(report, "gashammer_runs", None)
        if runs and report.when == "call":
            self.runs.extend((report.nodeid, run) for run in runs)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.runs:
            return
        terminalreporter.write_sep("=", f"gashammer: {len(self.runs)} run(s)")
        for nodeid, run in self.runs:
            lines = format_run_summary(nodeid, run)
            self.config.hook.pytest_gashammer_summary_lines(
                config=self.config, nodeid=nodeid, run=run, lines=lines
            )
            failed = any(verdict["status"] == "failed" for verdict in run["verdicts"])
            for index, line in enumerate(lines):
                terminalreporter.write_line(line, red=failed and index == 0, green=not failed and index == 0)
