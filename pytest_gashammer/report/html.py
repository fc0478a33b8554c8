"""The HTML report: one self-contained file per telemetry directory, readable offline.

Why one file: a report is passed around as a CI artifact, attached to tickets and opened years later.
Everything it shows is inside it: CSS inline, charts as inline SVG (see :mod:`~pytest_gashammer.report.charts`),
no script, no font, no image, no link to anything outside the page. It is rendered from the stored
Parquet (:func:`pytest_gashammer.telemetry.parquet.load`), so ``gashammer report DIR`` re-renders the
same page any time later, and the plugin renders it at the end of a session with
``--gashammer-report PATH.html``.

Per run: scenario and environment, verdicts with their evidence, key figures, the faults of its
timeline (when it had any: a table, and a band per fault on every chart over time), throughput and
latency over time, latency distributions, errors by kind, blocks, edges (with start skew), the
sequencer feed's facts, and what the L1 monitor saw (when the target has an L1: its figures, the
batch-posting lag and the batch sizes over the run, the first batches and assertions).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from pytest_gashammer.report import charts
from pytest_gashammer.report.terminal import FEED_FINDINGS
from pytest_gashammer.results import (
    COUNT_FIGURES,
    FIGURES,
    LATENCY_STATS,
    RECEIPTS_CHECKED,
    RECEIPTS_EXPECTED,
    RECEIPTS_VIA,
    CapacityFigures,
    EngineFigures,
    FaultImpact,
    L1Assertion,
    L1Batch,
    L1Figures,
    NetworkFigures,
    rate_figures,
    receipts_line,
)
from pytest_gashammer.scenario.units import format_gas_rate, format_seconds
from pytest_gashammer.telemetry.parquet import (
    TelemetryTables,
    fault_impacts,
    json_or,
    l1_assertions,
    l1_batches,
    load,
)
from pytest_gashammer.telemetry.schema import SCHEMA_VERSION
from pytest_gashammer.vocabulary import NETWORK_INVARIANT_NAMES

__all__ = [
    "CAPACITY_CHARTS",
    "CHARTS",
    "ENGINE_CHARTS",
    "L1_CHARTS",
    "REPORT_COLUMNS",
    "render_report",
    "report_html",
]

#: The ``transactions`` columns the report reads (the hashes and feed positions are left on disk).
REPORT_COLUMNS = (
    "run_id",
    "edge_id",
    "template",
    "gas_planned",
    "gas_used",
    "state",
    "error_kind",
    "phase",
    "scheduled_ns",
    "accepted_ns",
    "included_ns",
    "feed_arrival_ns",
)

#: The charts every run section carries, in page order: (id suffix, title).
CHARTS = (
    ("throughput-gas", "Gas per second"),
    ("throughput-tx", "Transactions per second"),
    ("latency-time", "Latency over time"),
    ("latency-histogram", "Latency distributions"),
    ("errors", "Errors by kind"),
    ("blocks", "Blocks"),
)

#: The charts of a run's L1 section, only for runs whose target has an L1: (id suffix, title).
L1_CHARTS = (
    ("l1-lag", "Batch-posting lag"),
    ("l1-sizes", "Batch sizes"),
)

#: The charts of a run's Engine API section, only for runs whose blocks the plugin built.
ENGINE_CHARTS = (
    ("engine-latency", "Engine API latency"),
    ("engine-build", "Build and import time per block"),
)

#: The chart of a capacity search's section, only on the search's own run.
CAPACITY_CHARTS = (("capacity-envelope", "Capacity envelope"),)

_FEED_EVENT_LIST = 50
_ENGINE_BLOCK_LIST = 50
#: The network's events listed per run (the latest); the telemetry's ``network_events`` has them all.
_NETWORK_EVENT_LIST = 200
_L1_BATCH_LIST = 50
_L1_ASSERTION_LIST = 20


def render_report(
    source: str | os.PathLike[str] | TelemetryTables,
    output_path: str | os.PathLike[str],
    *,
    run_ids: Iterable[str] | None = None,
    title: str | None = None,
    extra_sections: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write the report of ``source`` (a telemetry directory or loaded tables) to ``output_path``.

    The file is written next to its destination and renamed into place, so a reader never sees half
    a report. Returns the path written.
    """
    output = Path(output_path)
    page = report_html(source, run_ids=run_ids, title=title, extra_sections=extra_sections)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, output)
    return output


def report_html(
    source: str | os.PathLike[str] | TelemetryTables,
    *,
    run_ids: Iterable[str] | None = None,
    title: str | None = None,
    extra_sections: Sequence[tuple[str, str]] = (),
) -> str:
    """The report as an HTML string (see :func:`render_report`).

    ``extra_sections`` are ``(title, html)`` pairs appended to the page (the
    ``pytest_gashammer_report_sections`` hook supplies them); their HTML is inserted as given.
    """
    import markupsafe

    if isinstance(source, TelemetryTables):
        summary = source
        directory = source.directory
    else:
        directory = Path(source)
        summary = load(directory, tables=("runs", "verdicts", "edges"))
    ids = list(run_ids) if run_ids is not None else summary.run_ids()
    views = []
    for index, run_id in enumerate(ids, start=1):
        if isinstance(source, TelemetryTables):
            tables = source.for_run(run_id)
        else:
            assert directory is not None
            tables = load(directory, run_ids=[run_id], columns={"transactions": REPORT_COLUMNS})
            tables.runs, tables.verdicts, tables.edges = (
                summary.for_run(run_id).runs,
                summary.for_run(run_id).verdicts,
                summary.for_run(run_id).edges,
            )
        if tables.runs.num_rows == 0:
            continue
        views.append(_run_view(index, tables))
    environment = _jinja()
    template = environment.get_template("report.html.j2")
    return template.render(
        title=title or "gashammer report",
        generated=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        source=str(directory) if directory is not None else "",
        schema_version=SCHEMA_VERSION,
        runs=views,
        chart_titles=dict(CHARTS + L1_CHARTS + ENGINE_CHARTS + CAPACITY_CHARTS),
        extra_sections=[(heading, markupsafe.Markup(body)) for heading, body in extra_sections],
    )


def _jinja() -> Any:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_gashammer.report", "templates"),
        autoescape=jinja2.select_autoescape(("html", "j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        gas_rate=lambda value: "-" if value is None else format_gas_rate(float(value)),
        seconds=lambda value: format_seconds(None if value is None else float(value)),
        count=lambda value: "-" if value is None else f"{int(value):,}",
        percent=lambda value: "-" if value is None or not math.isfinite(value) else f"{value:.1f} %",
        number=lambda value, digits=1: "-" if value is None else f"{float(value):,.{digits}f}",
    )
    return environment


def _utc(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, _dt.datetime):
        return value.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _first_row(table: pa.Table) -> dict[str, Any]:
    return table.slice(0, 1).to_pylist()[0]


def _run_view(index: int, tables: TelemetryTables) -> dict[str, Any]:
    run = _first_row(tables.runs)
    plan = json_or(run["plan_json"], {})
    anchor = f"run-{index}"
    started = time.perf_counter()
    aggregates = charts.aggregate_run(tables.transactions)
    errors = json_or(run.get("errors_json"), None) or aggregates.errors
    faults = fault_impacts(tables.faults)
    # Every chart with a time axis shades the faults; the histogram and the errors have none.
    bands = charts.fault_bands(faults)
    chart_svgs = {
        "throughput-gas": charts.throughput_gas_chart(
            aggregates, plan, f"{anchor}-chart-throughput-gas", bands
        ),
        "throughput-tx": charts.throughput_tx_chart(aggregates, plan, f"{anchor}-chart-throughput-tx", bands),
        "latency-time": charts.latency_over_time_chart(
            aggregates, plan, f"{anchor}-chart-latency-time", bands
        ),
        "latency-histogram": charts.latency_histogram_chart(aggregates, f"{anchor}-chart-latency-histogram"),
        "blocks": charts.blocks_chart(tables.blocks, plan, f"{anchor}-chart-blocks", bands),
    }
    if errors:
        chart_svgs["errors"] = charts.errors_chart(errors, f"{anchor}-chart-errors")
    l1 = _l1_view(run, tables)
    if l1 is not None and l1["figures"] is not None:
        batches = l1["all_batches"]
        chart_svgs["l1-lag"] = charts.l1_lag_chart(batches, plan, f"{anchor}-chart-l1-lag", bands)
        chart_svgs["l1-sizes"] = charts.l1_sizes_chart(batches, plan, f"{anchor}-chart-l1-sizes", bands)
    engine = _engine_view(run)
    if engine is not None and engine["figures"] is not None:
        figures = engine["figures"]
        chart_svgs["engine-latency"] = charts.engine_latency_chart(
            figures.call_rows, plan, f"{anchor}-chart-engine-latency", bands
        )
        chart_svgs["engine-build"] = charts.engine_build_chart(
            figures.block_rows, f"{anchor}-chart-engine-build"
        )
    capacity = _capacity_view(run)
    if capacity is not None and capacity["figures"] is not None:
        chart_svgs["capacity-envelope"] = charts.capacity_envelope_chart(
            capacity["figures"], f"{anchor}-chart-capacity-envelope"
        )
    target = float(run["target_gas_per_sec"] or 0.0)

    def share(value: float | None) -> float | None:
        return None if value is None or not target else value / target * 100

    rates: list[tuple[str, Any, float | None, Any]] = [("target", target, None, None)]
    for label, gas_rate, tx_rate in rate_figures():
        value = run.get(gas_rate.stored_as)
        rates.append((label, value, share(value), None if tx_rate is None else run.get(tx_rate.stored_as)))
    latency_rows = []
    for metric, (label, _) in charts.LATENCY_METRICS.items():
        figure = FIGURES[f"latency_{metric}"]
        latency_rows.append(
            {
                "label": label,
                "sustain": {
                    stat: run.get(column) for column, stat in zip(figure.columns, LATENCY_STATS, strict=True)
                },
                "all": aggregates.latency.get(metric),
            }
        )
    verdict_rows = []
    for verdict in tables.verdicts.to_pylist():
        evidence = json_or(verdict["evidence_json"], {})
        verdict_rows.append(
            {
                "name": verdict["name"],
                "status": verdict["status"],
                "summary": verdict["summary"],
                "evidence": json.dumps(evidence, indent=2, sort_keys=True, default=str) if evidence else "",
            }
        )
    feed = json_or(run.get("feed_json"), None)
    feed_events = [
        event for event in tables.events.sort_by("t_ns").to_pylist() if str(event["kind"]).startswith("feed_")
    ]
    feed_counts: dict[str, int] = {}
    for event in feed_events:
        feed_counts[event["kind"]] = feed_counts.get(event["kind"], 0) + 1
    phases = [
        {
            "name": phase["name"],
            "start": phase["start"],
            "end": phase["end"],
            "gas_from": phase["gas_from"],
            "gas_to": phase["gas_to"],
        }
        for phase in plan.get("phases") or ()
    ]
    workload = [
        {
            "name": entry[0],
            "share": entry[1],
            "params": json.dumps(entry[2], sort_keys=True) if entry[2] else "",
        }
        for entry in plan.get("workload") or ()
    ]
    scenario = [
        ("run id", run["run_id"]),
        ("test", run.get("test_nodeid") or "-"),
        ("status", run["status"]),
        ("seed", run["seed"]),
        ("target", format_gas_rate(target)),
        ("arrival", plan.get("arrival", "-")),
        ("senders", plan.get("senders", "-")),
        ("receipt sample", "all" if plan.get("receipts", 0) is None else plan.get("receipts", "-")),
        ("receipts", _receipts(run)),
        ("inclusion timeout", f"{plan['inclusion_timeout']:g} s" if "inclusion_timeout" in plan else "-"),
        ("duration scale", plan.get("duration_scale", "-")),
    ]
    environment = [
        ("chain id", run.get("chain_id") if run.get("chain_id") is not None else "-"),
        ("devnet", run.get("devnet_kind") or "-"),
        ("node", run.get("node_version") or "-"),
        ("pytest-gashammer", f"{run['plugin_version']} ({run.get('build_sha') or 'unknown'})"),
        ("git commit", run.get("git_commit") or "-"),
        ("host", run.get("host") or "-"),
        ("started", _utc(run.get("started_at"))),
        ("ended", _utc(run.get("ended_at"))),
        ("wall time", format_seconds(run.get("duration_s"))),
        ("schema version", run["schema_version"]),
    ]
    edges = []
    for edge in tables.edges.to_pylist():
        skew = edge.get("start_skew_s")
        edges.append(
            {
                **edge,
                "skew_ms": None if skew is None else skew * 1000,
                "offset_ms": None if edge.get("clock_offset_ns") is None else edge["clock_offset_ns"] / 1e6,
            }
        )
    blocks = tables.blocks
    block_facts = _block_facts(blocks)
    step = run.get("capacity_step")
    view = {
        "anchor": anchor,
        "index": index,
        "run": run,
        "title": run["scenario"] if step is None else f"{run['scenario']} (capacity step {step})",
        "passed": run.get("passed"),
        "status": run["status"],
        "scenario": scenario,
        "environment": environment,
        "phases": phases,
        "workload": workload,
        "rates": rates,
        "counts": [(figure.name, run.get(figure.stored_as)) for figure in COUNT_FIGURES],
        "states": aggregates.states,
        "latency_rows": latency_rows,
        "verdicts": verdict_rows,
        "charts": chart_svgs,
        "errors": sorted(errors.items(), key=lambda item: -item[1]),
        "rejections": json_or(run.get("rejections_json"), []),
        "edges": edges,
        "feed": _feed_view(feed),
        "feed_counts": sorted(feed_counts.items()),
        "feed_events": feed_events[:_FEED_EVENT_LIST],
        "feed_events_more": max(0, len(feed_events) - _FEED_EVENT_LIST),
        "templates": [{"name": name, "tx": tx, "gas": gas} for name, tx, gas in aggregates.templates],
        "rows": aggregates.rows,
        "bucket_s": aggregates.bucket_s,
        "notes": json_or(run.get("notes_json"), []),
        "stopped_early": run.get("stopped_early"),
        "blocks": block_facts,
        "faults": [_fault_view(impact) for impact in faults],
        "l1": l1,
        "engine": engine,
        "network": _network_view(run, verdict_rows),
        "capacity": capacity,
        "render_seconds": time.perf_counter() - started,
    }
    return view


def _measured(value: float | None) -> float | None:
    """A fault's rate or latency for the page: ``None`` ("-") for a window the run did not cover."""
    return None if value is None or not math.isfinite(value) else float(value)


def _pairs(values: Mapping[str, Any]) -> str:
    """``ms=100, calls=42``: a fault's parameters or effect, as short as the marker spelled them."""
    return ", ".join(
        f"{key}={value if isinstance(value, str | int | float | bool) else json.dumps(value, default=str)}"
        for key, value in values.items()
    )


def _fault_view(impact: FaultImpact) -> dict[str, Any]:
    """One row of a run's fault table."""
    applied = impact.started_at is not None
    if impact.recovered_after_s is not None:
        recovered = format_seconds(impact.recovered_after_s)
    else:
        recovered = "never" if applied else "-"
    return {
        "label": impact.label,
        "anchor": f"fault-{impact.index}",
        "params": _pairs(impact.params),
        "planned_at": impact.planned_at,
        "planned_duration": impact.planned_duration,
        "started_at": impact.started_at,
        "ended_at": impact.ended_at,
        "gas": [
            _measured(impact.included_gas_per_sec_before),
            _measured(impact.included_gas_per_sec_during),
            _measured(impact.included_gas_per_sec_after),
        ],
        "p99": [
            _measured(impact.inclusion_p99_before),
            _measured(impact.inclusion_p99_during),
            _measured(impact.inclusion_p99_after),
        ],
        "recovered": recovered,
        "recovered_never": applied and impact.recovered_after_s is None,
        "delayed": impact.delayed,
        "lost": impact.lost,
        "lost_examples": list(impact.lost_examples),
        "effect": _pairs(impact.effect),
        "error": impact.error,
    }


def _l1_view(run: Mapping[str, Any], tables: TelemetryTables) -> dict[str, Any] | None:
    """The run's L1 section: ``None`` without an L1. The figures come from the ``runs`` row's
    ``l1_json`` (the whole ``L1Figures``), the rows from the ``batches`` and ``assertions`` tables
    (from ``l1_json`` when the tables hold none, e.g. tables loaded without them)."""
    stored = json_or(run.get("l1_json"), None)
    if not stored:
        return None
    try:
        figures = L1Figures.from_dict(stored)
    except (TypeError, KeyError, ValueError) as exc:
        return {"figures": None, "error": f"the stored L1 figures could not be read ({exc})"}
    batches = l1_batches(tables.batches) or [_nan_lag(batch) for batch in figures.batch_rows]
    assertions = l1_assertions(tables.assertions) or list(figures.assertion_rows)
    posted_share = figures.blocks_posted / figures.blocks_of_run * 100 if figures.blocks_of_run else None
    return {
        "figures": figures,
        "error": None,
        "posted_share": posted_share,
        "lags": [
            ("batch-posting lag, per L2 block", figures.batch_lag),
            ("assertion lag, per batch", figures.assertion_lag),
            ("confirmation lag, per assertion", figures.confirmation_lag),
        ],
        "all_batches": batches,
        "batches": [_l1_batch_view(batch) for batch in batches[:_L1_BATCH_LIST]],
        "batches_more": max(0, len(batches) - _L1_BATCH_LIST),
        "assertions": [_l1_assertion_view(assertion) for assertion in assertions[:_L1_ASSERTION_LIST]],
        "assertions_more": max(0, len(assertions) - _L1_ASSERTION_LIST),
    }


def _engine_view(run: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run's Engine API section from the ``runs`` row's ``engine_json``: ``None`` when the plugin
    did not build the target's blocks."""
    stored = json_or(run.get("engine_json"), None)
    if not stored:
        return None
    try:
        figures = EngineFigures.from_dict(stored)
    except (TypeError, KeyError, ValueError) as exc:
        return {"figures": None, "error": f"the stored Engine API figures could not be read ({exc})"}
    return {
        "figures": figures,
        "error": None,
        "latencies": [
            ("forkchoiceUpdated", figures.forkchoice_updated),
            ("getPayload", figures.get_payload),
            ("newPayload", figures.new_payload),
            ("block build (fcU with attributes + getPayload)", figures.block_build),
            ("block import (newPayload + fcU)", figures.block_import),
        ],
        "statuses": [
            (method, status, count)
            for method, by_status in sorted(figures.statuses.items())
            for status, count in sorted(by_status.items())
        ],
        "blocks": figures.block_rows[-_ENGINE_BLOCK_LIST:],
        "blocks_more": max(0, len(figures.block_rows) - _ENGINE_BLOCK_LIST),
    }


def _network_view(run: Mapping[str, Any], verdicts: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The run's network section from the ``runs`` row's ``network_json``: each node's head, the
    network verdicts, the latest events; ``None`` on a single node."""
    stored = json_or(run.get("network_json"), None)
    if not stored:
        return None
    try:
        figures = NetworkFigures.from_dict(stored)
    except (TypeError, KeyError, ValueError) as exc:
        return {"figures": None, "error": f"the stored network figures could not be read ({exc})"}
    events = figures.events[-_NETWORK_EVENT_LIST:]
    return {
        "figures": figures,
        "error": None,
        "verdicts": [verdict for verdict in verdicts if verdict["name"] in NETWORK_INVARIANT_NAMES],
        "events": [{**event.as_dict(), "t": event.at - figures.time_origin} for event in events],
        "events_more": len(figures.events) - len(events),
    }


def _capacity_view(run: Mapping[str, Any]) -> dict[str, Any] | None:
    """A capacity search's section from its ``runs`` row's ``capacity_json``: ``None`` on any other run."""
    stored = json_or(run.get("capacity_json"), None)
    if not stored:
        return None
    try:
        figures = CapacityFigures.from_dict(stored)
    except (TypeError, KeyError, ValueError) as exc:
        return {"figures": None, "error": f"the stored capacity figures could not be read ({exc})"}
    steps = []
    for step in figures.steps:
        missed = [name for name, status in step.slos.items() if status != "passed"]
        steps.append(
            {
                **dataclasses.asdict(step),
                "inclusion_p50": _measured(step.inclusion_p50),
                "inclusion_p99": _measured(step.inclusion_p99),
                "ratio": step.included_gas_per_sec / step.offered_gas_per_sec * 100
                if step.offered_gas_per_sec
                else None,
                "slo_list": sorted(step.slos.items()),
                "missed": missed,
                "at_max": step.offered_gas_per_sec == figures.max_gas_per_sec,
            }
        )
    return {"figures": figures, "error": None, "steps": steps}


def _nan_lag(batch: L1Batch) -> L1Batch:
    """A batch read from ``l1_json``, where a lag not measured was stored as null: ``nan`` again."""
    return batch if batch.lag_max_s is not None else dataclasses.replace(batch, lag_max_s=math.nan)


def _l1_batch_view(batch: L1Batch) -> dict[str, Any]:
    if batch.first_l2_block is None:
        blocks = "-"
    elif batch.first_l2_block == batch.last_l2_block:
        blocks = str(batch.first_l2_block)
    else:
        blocks = f"{batch.first_l2_block}–{batch.last_l2_block}"
    return {**dataclasses.asdict(batch), "blocks": blocks, "lag": _measured(batch.lag_max_s)}


def _l1_assertion_view(assertion: L1Assertion) -> dict[str, Any]:
    return dataclasses.asdict(assertion)


def _receipts(run: dict[str, Any]) -> str:
    """Receipt coverage of a stored run, "checked X of Y via ..." ("-" for a run stored without it)."""
    checked, expected = run.get(RECEIPTS_CHECKED.stored_as), run.get(RECEIPTS_EXPECTED.stored_as)
    if checked is None or expected is None:
        return "-"
    return receipts_line(checked, expected, run.get(RECEIPTS_VIA.stored_as) or "")


def _block_facts(blocks: pa.Table) -> dict[str, Any]:
    if blocks.num_rows == 0:
        return {"count": 0}
    numbers = sorted(set(blocks.column("block_number").to_pylist()))
    timestamps = blocks.column("timestamp").to_pylist()
    gas = blocks.column("gas_used").to_pylist()
    limit = blocks.column("gas_limit").to_pylist()
    span = max(timestamps) - min(timestamps)
    return {
        "count": len(numbers),
        "first": numbers[0],
        "last": numbers[-1],
        "interval": span / max(len(numbers) - 1, 1),
        "mean_gas": sum(gas) / len(gas),
        "max_gas": max(gas),
        "gas_limit": max(limit),
    }


_FINDING_KEYS = ("included", "in_feed", *FEED_FINDINGS)
_STAT_KEYS = (
    "messages",
    "transactions",
    "connects",
    "reconnects",
    "connect_failures",
    "gap_count",
    "missing_messages",
    "out_of_order_count",
    "duplicate_count",
    "first_sequence",
    "last_sequence",
    "last_error",
)


def _feed_view(feed: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not feed:
        return []
    edges = []
    for edge_id, facts in (feed.get("edges") or {}).items():
        stats = facts.get("stats") or {}
        findings = facts.get("findings") or {}
        decode_errors = stats.get("decode_errors") or {}
        problems = sum(
            int(findings.get(key) or 0) for key in _FINDING_KEYS if key not in ("included", "in_feed")
        )
        edges.append(
            {
                "edge_id": edge_id,
                "stats": [(key.replace("_", " "), stats.get(key)) for key in _STAT_KEYS if key in stats],
                "decode_errors": sum(int(v) for v in decode_errors.values()),
                "findings": [
                    (key.replace("_", " "), findings.get(key)) for key in _FINDING_KEYS if key in findings
                ],
                "consistent": bool(findings) and problems == 0,
            }
        )
    return edges
