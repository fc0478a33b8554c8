"""``GET /metrics``: the board in the Prometheus text format, through ``prometheus_client``.

A custom collector reads the board at scrape time, in a private ``CollectorRegistry`` per server
(a second server, or a test's, never sees another's series). The counters are the hive's figures:
live from the edges' heartbeats while a run goes on, then the run's final figures, which are its
``RunResult``'s. Metric names are declared once in :data:`METRICS` (docs/live-api.md lists them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from pytest_gashammer.serve.board import LiveBoard


class Metric(NamedTuple):
    name: str
    kind: str  # counter, gauge, histogram
    help: str
    source: str = ""  # the board's counter (board.COUNTERS) a counter reads


#: Every metric the live API exposes. Counters carry ``run`` and ``edge`` labels; the ``template``
#: kind are counters of finished runs with a ``template`` label too (and ``outcome``: sent,
#: accepted, rejected, included, for transactions).
METRICS = (
    Metric("gashammer_sent_transactions", "counter", "transactions sent to the node", "sent"),
    Metric("gashammer_accepted_transactions", "counter", "transactions the node accepted", "accepted"),
    Metric("gashammer_rejected_transactions", "counter", "transactions the node refused", "rejected"),
    Metric("gashammer_included_transactions", "counter", "transactions seen in a block", "included"),
    Metric(
        "gashammer_included_gas", "counter", "planned gas of the transactions seen in a block", "included_gas"
    ),
    Metric(
        "gashammer_template_transactions", "template", "transactions of finished runs by template and outcome"
    ),
    Metric(
        "gashammer_template_included_gas",
        "template",
        "included gas of finished runs by template",
        "included_gas",
    ),
    Metric(
        "gashammer_inclusion_latency_seconds", "histogram", "intended send to inclusion, of finished runs"
    ),
    Metric("gashammer_feed_latency_seconds", "histogram", "intended send to feed arrival, of finished runs"),
    Metric("gashammer_edges_up", "gauge", "edges registered with the hive and not lost"),
    Metric("gashammer_target_gas_per_second", "gauge", "the plan's gas rate at the run's latest second"),
    Metric("gashammer_included_gas_per_second", "gauge", "gas included over the run's latest second"),
    Metric("gashammer_recent_inclusion_p99_seconds", "gauge", "p99 inclusion latency of recent inclusions"),
    Metric("gashammer_run_info", "gauge", "1 per run the session has seen, labelled with its name and state"),
)
#: The outcomes ``gashammer_template_transactions`` counts.
OUTCOMES = ("sent", "accepted", "rejected", "included")
#: The board's histogram name for each histogram metric.
HISTOGRAMS = {"gashammer_inclusion_latency_seconds": "inclusion", "gashammer_feed_latency_seconds": "feed"}
#: Upper bounds (s) of the latency histograms' buckets (``+Inf`` is added).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)


class BoardCollector:
    """A ``prometheus_client`` collector that reads :class:`LiveBoard` at each scrape."""

    def __init__(self, board: LiveBoard) -> None:
        self.board = board

    def describe(self) -> list[Any]:
        return []  # unchecked collector: the series depend on the runs seen so far

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        runs, edges = self.board.snapshot()
        for metric in METRICS:
            if metric.kind == "counter":
                counter = CounterMetricFamily(metric.name, metric.help, labels=["run", "edge"])
                for run in runs:
                    for edge_id, counters in run.edges.items():
                        counter.add_metric([run.run_id, edge_id], counters.get(metric.source, 0))
                yield counter
            elif metric.kind == "template":
                outcomes = [metric.source] if metric.source else list(OUTCOMES)
                labels = ["run", "edge", "template"] + ([] if metric.source else ["outcome"])
                counter = CounterMetricFamily(metric.name, metric.help, labels=labels)
                for run in runs:
                    for edge_id, kinds in run.templates.items():
                        for template, counters in kinds.items():
                            for outcome in outcomes:
                                extra = [] if metric.source else [outcome]
                                counter.add_metric([run.run_id, edge_id, template, *extra], counters[outcome])
                yield counter
            elif metric.kind == "histogram":
                histogram = HistogramMetricFamily(metric.name, metric.help, labels=["run"])
                for run in runs:
                    kept = run.histograms.get(HISTOGRAMS[metric.name])
                    if kept is None:
                        continue
                    bounds, cumulative, total, count = kept
                    buckets = [
                        (_bound(bound), float(below)) for bound, below in zip(bounds, cumulative, strict=True)
                    ]
                    buckets.append(("+Inf", float(count)))
                    histogram.add_metric([run.run_id], buckets, total)
                yield histogram
        up = GaugeMetricFamily("gashammer_edges_up", _help("gashammer_edges_up"))
        up.add_metric([], sum(1 for edge in edges if edge.state == "up"))
        yield up
        gauges = {
            name: GaugeMetricFamily(name, _help(name), labels=["run"])
            for name in (
                "gashammer_target_gas_per_second",
                "gashammer_included_gas_per_second",
                "gashammer_recent_inclusion_p99_seconds",
            )
        }
        info = GaugeMetricFamily(
            "gashammer_run_info", _help("gashammer_run_info"), labels=["run", "name", "nodeid", "state"]
        )
        for run in runs:
            info.add_metric([run.run_id, run.name, run.nodeid, run.state], 1)
            if not run.seconds:
                continue
            latest = run.seconds[-1]
            running = run.state in ("running", "stopping")
            gauges["gashammer_target_gas_per_second"].add_metric(
                [run.run_id], latest["target_gas_per_sec"] if running else 0.0
            )
            gauges["gashammer_included_gas_per_second"].add_metric(
                [run.run_id], latest["included_gas_per_sec"] if running else 0.0
            )
            if latest["inclusion_p99"] is not None:
                gauges["gashammer_recent_inclusion_p99_seconds"].add_metric(
                    [run.run_id], latest["inclusion_p99"]
                )
        yield from gauges.values()
        yield info


def _help(name: str) -> str:
    return next(metric.help for metric in METRICS if metric.name == name)


def _bound(bound: float) -> str:
    return repr(float(bound))


def latency_histogram(sketches: list[Any]) -> tuple[list[float], list[int], float, int]:
    """Cumulative bucket counts over :data:`LATENCY_BUCKETS` of the edges' latency sketches
    (``telemetry/sketch.py``), merged: ``(bounds, counts at or below each, sum, count)``."""
    bounds = list(LATENCY_BUCKETS)
    cumulative = [0] * len(bounds)
    total = 0.0
    count = 0
    for sketch in sketches:
        below, summed = sketch.counts_at_or_below(bounds)
        cumulative = [a + b for a, b in zip(cumulative, below, strict=True)]
        total += summed
        count += sketch.count
    return bounds, cumulative, total, count


def registry_for(board: LiveBoard) -> Any:
    """A registry of the board's own: a server's scrape never shows another server's series."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(BoardCollector(board))
    return registry


def render(registry: Any) -> tuple[bytes, str]:
    """A scrape of ``registry``: the body and its content type."""
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry), CONTENT_TYPE_LATEST
