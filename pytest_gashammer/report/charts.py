"""Per-second aggregates of a run's telemetry, and the report's charts as inline SVG.

Why aggregate first: a run has up to millions of transactions; a chart needs a few hundred points.
Everything here reduces Arrow columns with numpy (``bincount``, one sort per latency) to per-bucket
series, then draws those. Buckets are one second, widened for long runs so no chart has more than
``max_buckets`` points.

Why matplotlib, drawn to SVG on the machine that writes the report: the page then needs no
JavaScript and no external file, so it opens offline, in any browser, in a CI artifact viewer and in
print, and shows exactly what was computed here. matplotlib is imported inside the chart functions
(the report is rendered once, at the end of a session) and used without pyplot, inside an
``rc_context``, so it never touches a user's global matplotlib state or backend.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pytest_gashammer.results import FaultImpact, L1Batch, LatencyStats
from pytest_gashammer.telemetry.parquet import NULL_INT, int_column

__all__ = [
    "LATENCY_METRICS",
    "FaultBand",
    "RunAggregates",
    "aggregate_run",
    "blocks_chart",
    "capacity_envelope_chart",
    "errors_chart",
    "fault_bands",
    "l1_lag_chart",
    "l1_sizes_chart",
    "latency_histogram_chart",
    "latency_over_time_chart",
    "throughput_gas_chart",
    "throughput_tx_chart",
]

#: Latency metrics: name → (label, column whose time ends the interval). Each starts at ``scheduled_ns``.
LATENCY_METRICS: dict[str, tuple[str, str]] = {
    "accept": ("submit → accept", "accepted_ns"),
    "inclusion": ("submit → inclusion", "included_ns"),
    "feed": ("submit → feed", "feed_arrival_ns"),
}

_COLORS = {
    "offered": "#8c8c8c",
    "accepted": "#3a78c2",
    "included": "#2a9d5b",
    "target": "#222222",
    "accept": "#3a78c2",
    "inclusion": "#2a9d5b",
    "feed": "#e07b24",
    "error": "#c23a3a",
    "fault": "#d9534f",
    "l1": "#7b4fa8",
    "forkchoiceUpdated": "#3a78c2",
    "getPayload": "#e07b24",
    "newPayload": "#2a9d5b",
    "phase": ("#f3f0e6", "#e8eef6", "#eaf4ec", "#f6ebeb", "#efe9f5"),
}

_STYLE: dict[str, Any] = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#999999",
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.4,
    "path.simplify": True,
}


@dataclass
class RunAggregates:
    """A run's transactions reduced to per-bucket series; rates are per second."""

    bucket_s: float
    t: np.ndarray
    offered_gas: np.ndarray
    accepted_gas: np.ndarray
    included_gas: np.ndarray
    offered_tx: np.ndarray
    accepted_tx: np.ndarray
    included_tx: np.ndarray
    rejected_tx: np.ndarray
    latency_p50: dict[str, np.ndarray] = field(default_factory=dict)
    latency_p99: dict[str, np.ndarray] = field(default_factory=dict)
    #: Per metric, over every row that has it (all phases): the statistics a ``RunResult`` gives
    #: for the sustain phase, by the same nearest-rank rule.
    latency: dict[str, LatencyStats] = field(default_factory=dict)
    histograms: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    rows: int = 0
    states: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    templates: list[tuple[str, int, float]] = field(default_factory=list)

    @property
    def edges(self) -> np.ndarray:
        """Bucket boundaries: one more than buckets, for step charts."""
        return np.append(self.t, self.t[-1] + self.bucket_s) if self.t.size else np.zeros(1)


def _codes(table: pa.Table, name: str) -> tuple[np.ndarray, list[str]]:
    """A dictionary column as (int codes with -1 for null, dictionary values), one dictionary for all chunks."""
    column = table.column(name)
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    combined = column.unify_dictionaries().combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(combined, pa.ChunkedArray):  # an empty chunked array
        return np.empty(0, dtype=np.int64), []
    indices = combined.indices
    codes = np.asarray(pc.fill_null(indices, -1).to_numpy(), dtype=np.int64)
    return codes, [str(value) for value in combined.dictionary.to_pylist()]


def aggregate_run(transactions: pa.Table, *, max_buckets: int = 1800) -> RunAggregates:
    """Reduce one run's ``transactions`` rows to per-bucket rates, latency percentiles and histograms.

    Offered load counts scheduled transactions by intended send time (gap fillers excluded, as in
    ``RunResult``); accepted by the node's answer time; included by inclusion time, weighted with the
    receipt's gas used when known. Latency percentiles are per bucket of *intended send* time, so a
    slow second shows where the load was offered, not where the backlog drained.
    """
    rows = transactions.num_rows
    scheduled = int_column(transactions, "scheduled_ns")
    accepted = int_column(transactions, "accepted_ns")
    included = int_column(transactions, "included_ns")
    gas_planned = int_column(transactions, "gas_planned").astype(np.float64)
    gas_used = int_column(transactions, "gas_used")
    template_codes, template_names = _codes(transactions, "template")
    state_codes, state_names = _codes(transactions, "state")
    error_codes, error_names = _codes(transactions, "error_kind")
    filler = template_names.index("gap_filler") if "gap_filler" in template_names else -2
    offered = template_codes != filler

    times = [values[values != NULL_INT] for values in (scheduled, accepted, included)]
    present = [values for values in times if values.size]
    if present:
        low = min(int(values.min()) for values in present)
        high = max(int(values.max()) for values in present)
    else:
        low = high = 0
    span_s = max((high - low) / 1e9, 1.0)
    bucket_s = float(max(1, math.ceil(span_s / max(max_buckets - 1, 1))))
    bucket_ns = int(bucket_s * 1e9)
    first = math.floor(low / bucket_ns)
    count = max(1, math.floor(high / bucket_ns) - first + 1)

    def bucket(values: np.ndarray) -> np.ndarray:
        return (values // bucket_ns - first).astype(np.int64)

    def per_second(mask: np.ndarray, at: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        chosen = bucket(at[mask])
        summed = np.bincount(chosen, weights=None if weights is None else weights[mask], minlength=count)
        return summed[:count].astype(np.float64) / bucket_s

    included_gas_weights = np.where(gas_used != NULL_INT, gas_used.astype(np.float64), gas_planned)
    accepted_mask = accepted != NULL_INT
    included_mask = included != NULL_INT
    rejected_mask = (
        state_codes == state_names.index("rejected")
        if "rejected" in state_names
        else np.zeros(rows, dtype=bool)
    )
    aggregates = RunAggregates(
        bucket_s=bucket_s,
        t=(np.arange(count, dtype=np.float64) + first) * bucket_s,
        offered_gas=per_second(offered, scheduled, gas_planned),
        accepted_gas=per_second(accepted_mask, accepted, gas_planned),
        included_gas=per_second(included_mask, included, included_gas_weights),
        offered_tx=per_second(offered, scheduled),
        accepted_tx=per_second(accepted_mask, accepted),
        included_tx=per_second(included_mask, included),
        rejected_tx=per_second(rejected_mask & (scheduled != NULL_INT), scheduled),
        rows=rows,
    )

    for metric, (_, column) in LATENCY_METRICS.items():
        ends = int_column(transactions, column)
        mask = (ends != NULL_INT) & offered
        latency_ns = np.maximum(ends[mask] - scheduled[mask], 0)
        where = bucket(scheduled[mask])
        p50, p99 = _bucket_percentiles(where, latency_ns, count)
        aggregates.latency_p50[metric] = p50 / 1e9
        aggregates.latency_p99[metric] = p99 / 1e9
        ordered = np.sort(latency_ns) / 1e9
        aggregates.latency[metric] = LatencyStats.of_sorted(ordered)
        if ordered.size:
            lowest = max(float(ordered[ordered > 0].min()) if (ordered > 0).any() else 1e-4, 1e-4)
            highest = max(float(ordered[-1]), lowest * 1.01)
            edges = np.geomspace(lowest, highest, 61)
            counts, _ = np.histogram(np.clip(ordered, lowest, highest), bins=edges)
            aggregates.histograms[metric] = (edges, counts)

    aggregates.states = _counts(state_codes, state_names)
    aggregates.errors = _counts(error_codes, error_names)
    gas_by_template = np.bincount(
        np.maximum(template_codes, 0),
        weights=included_gas_weights * included_mask,
        minlength=len(template_names),
    )
    tx_by_template = np.bincount(np.maximum(template_codes, 0), minlength=len(template_names))
    aggregates.templates = [
        (name, int(tx_by_template[index]), float(gas_by_template[index]))
        for index, name in enumerate(template_names)
        if tx_by_template[index]
    ]
    return aggregates


def _counts(codes: np.ndarray, names: Sequence[str]) -> dict[str, int]:
    valid = codes[codes >= 0]
    totals = np.bincount(valid, minlength=len(names)) if names else np.empty(0, dtype=np.int64)
    found = {name: int(totals[index]) for index, name in enumerate(names) if totals[index]}
    return dict(sorted(found.items(), key=lambda item: -item[1]))


def _bucket_percentiles(
    where: np.ndarray, values_ns: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-rank p50 and p99 of ``values_ns`` per bucket (NaN for empty buckets), with one sort.

    Bucket and value are packed into one int64 key (bucket in the high bits), so a single
    ``np.sort`` orders by bucket then value; values are capped at 2^40 ns (about 18 minutes).
    """
    p50 = np.full(count, np.nan)
    p99 = np.full(count, np.nan)
    if values_ns.size == 0:
        return p50, p99
    capped = np.minimum(values_ns, (1 << 40) - 1)
    keys = np.sort((where << 40) | capped)
    ordered = keys & ((1 << 40) - 1)
    sizes = np.bincount(where, minlength=count)[:count]
    starts = np.cumsum(sizes) - sizes
    filled = sizes > 0
    for quantile, out in ((0.50, p50), (0.99, p99)):
        rank = np.maximum(np.ceil(quantile * sizes[filled]).astype(np.int64), 1)
        out[filled] = ordered[starts[filled] + rank - 1].astype(np.float64)
    return p50, p99


# ---------------------------------------------------------------------------------------------
# drawing


def target_curve(plan: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    """The plan's target gas rate as a polyline over its phases (run clock seconds)."""
    xs: list[float] = []
    ys: list[float] = []
    for phase in plan.get("phases") or ():
        xs += [float(phase["start"]), float(phase["end"])]
        ys += [float(phase["gas_from"]), float(phase["gas_to"])]
    return xs, ys


def _with_style(draw: Callable[..., str]) -> Callable[..., str]:
    def wrapper(*args: Any, **kwargs: Any) -> str:
        import matplotlib

        with matplotlib.rc_context(cast(Any, _STYLE)):
            return draw(*args, **kwargs)

    wrapper.__name__ = draw.__name__
    wrapper.__doc__ = draw.__doc__
    return wrapper


def _figure(height: float = 3.0) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10.0, height), dpi=100, layout="constrained")
    return figure, figure.add_subplot()


_SVG_ROOT = re.compile(r"<svg\b[^>]*>", re.S)


def _svg(figure: Any, chart_id: str, label: str) -> str:
    """The figure as an inline ``<svg>`` element: no XML prolog, scalable, and every element id (and
    every reference to one) prefixed with ``chart_id``, since several charts share one HTML page and
    matplotlib numbers the ids of each figure from 1."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": chart_id}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = _ID.sub(lambda m: f'{m.group(1)}="{chart_id}-{m.group(2)}"', text)
    text = _URL_REF.sub(lambda m: f"url(#{chart_id}-{m.group(1)})", text)
    text = _HREF_REF.sub(lambda m: f'{m.group(1)}="#{chart_id}-{m.group(2)}"', text)
    root = _SVG_ROOT.match(text)
    assert root is not None
    tag = re.sub(r'\s(width|height)="[^"]*"', "", root.group(0))
    tag = tag.replace(
        "<svg",
        f'<svg class="chart-svg" role="img" aria-label="{_attribute(label)}" data-chart-id="{chart_id}"',
        1,
    )
    return tag + text[root.end() :]


_ID = re.compile(r'(?<![\w:-])(id)="([^"]+)"')
_URL_REF = re.compile(r"url\(#([^)]+)\)")
_HREF_REF = re.compile(r'((?:xlink:)?href)="#([^"]+)"')


def _attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _shade_phases(axes: Any, plan: Mapping[str, Any]) -> None:
    colors = _COLORS["phase"]
    for index, phase in enumerate(plan.get("phases") or ()):
        axes.axvspan(
            float(phase["start"]), float(phase["end"]), color=colors[index % len(colors)], zorder=0, lw=0
        )
        axes.text(
            (float(phase["start"]) + float(phase["end"])) / 2,
            1.0,
            str(phase["name"]),
            transform=axes.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=7,
            color="#777777",
        )


@dataclass(frozen=True)
class FaultBand:
    """Where a fault sits on a chart's time axis (run-clock seconds) and what it is called."""

    index: int
    label: str
    start: float
    end: float
    #: False for a fault that never began (its planned span is drawn, outlined, not filled).
    applied: bool = True


def fault_bands(faults: Sequence[FaultImpact]) -> list[FaultBand]:
    """The band of each fault: from when it began to when it ended; its planned span where the run
    never applied it, and its planned length from its begin where it never ended."""
    bands = []
    for impact in faults:
        began, ended = impact.started_at, impact.ended_at
        applied = began is not None and math.isfinite(began)
        start = float(began) if began is not None and applied else float(impact.planned_at)
        if applied and ended is not None and math.isfinite(ended):
            end = float(ended)
        else:
            end = start + float(impact.planned_duration)
        label = impact.label if applied else f"{impact.label} (not applied)"
        bands.append(FaultBand(impact.index, label, start, max(end, start), applied))
    return bands


def _shade_faults(axes: Any, bands: Sequence[FaultBand]) -> None:
    """A red band per fault, labelled inside the plot's top edge. Each band's SVG group gets the id
    ``fault-<index>`` (prefixed with the chart's id on the page), so the page can be checked and linked."""
    color = _COLORS["fault"]
    for band in bands:
        axes.axvspan(
            band.start,
            band.end,
            facecolor=color if band.applied else "none",
            edgecolor=color,
            alpha=0.16 if band.applied else 0.6,
            hatch=None if band.applied else "//",
            lw=0 if band.applied else 0.8,
            zorder=0.5,
            gid=f"fault-{band.index}",
        )
        axes.text(
            band.start,
            0.98,
            f" {band.label}",
            transform=axes.get_xaxis_transform(),
            ha="left",
            va="top",
            fontsize=7,
            color=color,
            gid=f"fault-{band.index}-label",
        )


def _rate_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    def label(value: float, _position: Any) -> str:
        for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= factor:
                return f"{value / factor:g}{prefix}"
        return f"{value:g}"

    return FuncFormatter(label)


def _legend(axes: Any) -> None:
    """Legend outside the plot, on the right, so it never hides a line."""
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _seconds_axis(axes: Any, aggregates: RunAggregates) -> None:
    axes.set_xlabel(
        "run time (s)" if aggregates.bucket_s == 1 else f"run time (s), {aggregates.bucket_s:g} s buckets"
    )
    axes.margins(x=0.01)


@_with_style
def throughput_gas_chart(
    aggregates: RunAggregates, plan: Mapping[str, Any], chart_id: str, faults: Sequence[FaultBand] = ()
) -> str:
    """Offered, accepted and included gas per second against the plan's target."""
    figure, axes = _figure()
    _shade_phases(axes, plan)
    _shade_faults(axes, faults)
    xs, ys = target_curve(plan)
    if xs:
        axes.plot(xs, ys, color=_COLORS["target"], ls="--", lw=1.2, label="target")
    edges = aggregates.edges
    axes.stairs(aggregates.offered_gas, edges, baseline=None, color=_COLORS["offered"], label="offered")
    axes.stairs(aggregates.accepted_gas, edges, baseline=None, color=_COLORS["accepted"], label="accepted")
    axes.stairs(aggregates.included_gas, edges, baseline=None, color=_COLORS["included"], label="included")
    axes.yaxis.set_major_formatter(_rate_formatter())
    axes.set_ylim(bottom=0)
    axes.set_ylabel("gas per second")
    _seconds_axis(axes, aggregates)
    _legend(axes)
    return _svg(figure, chart_id, "gas per second: offered, accepted, included and target")


@_with_style
def throughput_tx_chart(
    aggregates: RunAggregates, plan: Mapping[str, Any], chart_id: str, faults: Sequence[FaultBand] = ()
) -> str:
    """Offered, accepted, included and rejected transactions per second."""
    figure, axes = _figure()
    _shade_phases(axes, plan)
    _shade_faults(axes, faults)
    edges = aggregates.edges
    axes.stairs(aggregates.offered_tx, edges, baseline=None, color=_COLORS["offered"], label="offered")
    axes.stairs(aggregates.accepted_tx, edges, baseline=None, color=_COLORS["accepted"], label="accepted")
    axes.stairs(aggregates.included_tx, edges, baseline=None, color=_COLORS["included"], label="included")
    if aggregates.rejected_tx.any():
        axes.stairs(aggregates.rejected_tx, edges, baseline=None, color=_COLORS["error"], label="rejected")
    axes.yaxis.set_major_formatter(_rate_formatter())
    axes.set_ylim(bottom=0)
    axes.set_ylabel("transactions per second")
    _seconds_axis(axes, aggregates)
    _legend(axes)
    return _svg(figure, chart_id, "transactions per second: offered, accepted, included, rejected")


def _ms_axis(axes: Any, which: str) -> None:
    from matplotlib.ticker import FuncFormatter

    def label(value: float, _position: Any) -> str:
        if value >= 1:
            return f"{value:g} s"
        return f"{value * 1000:g} ms"

    (axes.yaxis if which == "y" else axes.xaxis).set_major_formatter(FuncFormatter(label))


@_with_style
def latency_over_time_chart(
    aggregates: RunAggregates, plan: Mapping[str, Any], chart_id: str, faults: Sequence[FaultBand] = ()
) -> str:
    """p50 (solid) and p99 (dashed) per bucket of intended send time, for each latency metric."""
    figure, axes = _figure(3.4)
    _shade_phases(axes, plan)
    _shade_faults(axes, faults)
    drawn = False
    for metric, (label, _) in LATENCY_METRICS.items():
        p50, p99 = aggregates.latency_p50.get(metric), aggregates.latency_p99.get(metric)
        if p50 is None or p99 is None or not np.isfinite(p50).any():
            continue
        color = _COLORS[metric]
        centers = aggregates.t + aggregates.bucket_s / 2
        axes.plot(centers, p50, color=color, label=f"{label} p50")
        axes.plot(centers, p99, color=color, ls="--", label=f"{label} p99")
        drawn = True
    if drawn:
        axes.set_yscale("log")
        _ms_axis(axes, "y")
        _legend(axes)
    else:
        axes.text(0.5, 0.5, "no latency measured", transform=axes.transAxes, ha="center", color="#777777")
    axes.set_ylabel("latency (log scale)")
    _seconds_axis(axes, aggregates)
    return _svg(figure, chart_id, "latency percentiles over time")


@_with_style
def latency_histogram_chart(aggregates: RunAggregates, chart_id: str) -> str:
    """Distribution of each latency metric over the whole run (log-spaced bins, share of samples)."""
    figure, axes = _figure(3.0)
    drawn = False
    for metric, (label, _) in LATENCY_METRICS.items():
        histogram = aggregates.histograms.get(metric)
        if histogram is None:
            continue
        edges, counts = histogram
        share = counts / max(int(counts.sum()), 1) * 100
        axes.stairs(share, edges, color=_COLORS[metric], label=f"{label} (n={int(counts.sum()):,})", lw=1.4)
        figures = aggregates.latency.get(metric)
        if figures is not None and math.isfinite(figures.p99):
            axes.axvline(figures.p99, color=_COLORS[metric], ls=":", lw=1)
        drawn = True
    if drawn:
        axes.set_xscale("log")
        _ms_axis(axes, "x")
        _legend(axes)
    else:
        axes.text(0.5, 0.5, "no latency measured", transform=axes.transAxes, ha="center", color="#777777")
    axes.set_xlabel("latency (log scale; dotted lines: p99)")
    axes.set_ylabel("% of transactions")
    axes.set_ylim(bottom=0)
    return _svg(figure, chart_id, "latency distributions")


@_with_style
def errors_chart(errors: Mapping[str, int], chart_id: str) -> str:
    """Errors by kind, largest first."""
    items = sorted(errors.items(), key=lambda item: -item[1])[:20]
    figure, axes = _figure(max(1.3, 0.3 * len(items) + 0.9))
    names = [name for name, _ in items][::-1]
    counts = [count for _, count in items][::-1]
    bars = axes.barh(names, counts, height=0.5, color=_COLORS["error"])
    axes.bar_label(bars, labels=[f"{count:,}" for count in counts], padding=3, fontsize=8)
    axes.set_xlabel("count")
    axes.grid(axis="y", visible=False)
    return _svg(figure, chart_id, "errors by kind")


@_with_style
def blocks_chart(
    blocks: pa.Table, plan: Mapping[str, Any], chart_id: str, faults: Sequence[FaultBand] = ()
) -> str:
    """Gas used per block (bars over time) and transactions per block, as the tracking edge saw them."""
    figure, axes = _figure(2.8)
    _shade_phases(axes, plan)
    _shade_faults(axes, faults)
    if blocks.num_rows:
        # Several edges may observe the same block: keep the first sighting of each number.
        numbers = int_column(blocks, "block_number")
        observed = int_column(blocks, "observed_ns")
        order = np.lexsort((observed, numbers))
        keep = order[np.concatenate(([True], numbers[order][1:] != numbers[order][:-1]))]
        at = observed[keep] / 1e9
        gas = int_column(blocks, "gas_used")[keep]
        txs = int_column(blocks, "tx_count")[keep]
        axes.vlines(at, 0, gas, color=_COLORS["included"], lw=1)
        axes.yaxis.set_major_formatter(_rate_formatter())
        axes.set_ylabel("gas per block")
        twin = axes.twinx()
        twin.plot(at, txs, ".", color=_COLORS["accepted"], ms=4)
        twin.set_ylabel("transactions per block", color=_COLORS["accepted"])
        twin.grid(False)
        twin.set_ylim(bottom=0)
    else:
        axes.text(0.5, 0.5, "no blocks observed", transform=axes.transAxes, ha="center", color="#777777")
    axes.set_ylim(bottom=0)
    axes.set_xlabel("run time (s)")
    axes.margins(x=0.01)
    return _svg(figure, chart_id, "gas and transactions per block")


def _seen_order(batches: Sequence[L1Batch]) -> list[L1Batch]:
    return sorted(batches, key=lambda batch: (batch.seen_at, batch.sequence_number))


def _nothing(axes: Any, text: str) -> None:
    axes.text(0.5, 0.5, text, transform=axes.transAxes, ha="center", color="#777777")


@_with_style
def l1_lag_chart(
    batches: Sequence[L1Batch], plan: Mapping[str, Any], chart_id: str, faults: Sequence[FaultBand] = ()
) -> str:
    """Each batch's longest batch-posting lag (its longest-waiting L2 block of the run), at the run time
    it was first seen on the L1. Batches that carried none of the run's blocks have no lag."""
    figure, axes = _figure(2.8)
    _shade_phases(axes, plan)
    _shade_faults(axes, faults)
    points = [
        (batch.seen_at, float(batch.lag_max_s))
        for batch in _seen_order(batches)
        if batch.lag_max_s is not None and math.isfinite(batch.lag_max_s)
    ]
    if points:
        xs, ys = zip(*points, strict=True)
        axes.plot(xs, ys, color=_COLORS["l1"], marker=".", ms=5, lw=1)
        _ms_axis(axes, "y")
    else:
        _nothing(axes, "no batch carried the run's blocks")
    axes.set_ylim(bottom=0)
    axes.set_ylabel("longest lag in the batch")
    axes.set_xlabel("run time (s) the batch was seen on the L1")
    axes.margins(x=0.01)
    return _svg(figure, chart_id, "batch-posting lag per batch over the run")


@_with_style
def l1_sizes_chart(
    batches: Sequence[L1Batch], plan: Mapping[str, Any], chart_id: str, faults: Sequence[FaultBand] = ()
) -> str:
    """Data bytes per batch (bars at the run time each was seen on the L1; red: data that could not be
    decoded) and the L1 gas of each posting (dots, right axis)."""
    figure, axes = _figure(2.8)
    _shade_phases(axes, plan)
    _shade_faults(axes, faults)
    ordered = _seen_order(batches)
    if ordered:
        at = [batch.seen_at for batch in ordered]
        colors = [_COLORS["error"] if batch.decode_error else _COLORS["l1"] for batch in ordered]
        axes.vlines(at, 0, [batch.data_bytes for batch in ordered], colors=colors, lw=1.5)
        axes.yaxis.set_major_formatter(_rate_formatter())
        twin = axes.twinx()
        twin.plot(at, [batch.l1_gas for batch in ordered], ".", color=_COLORS["accepted"], ms=4)
        twin.yaxis.set_major_formatter(_rate_formatter())
        twin.set_ylabel("L1 gas per batch", color=_COLORS["accepted"])
        twin.grid(False)
        twin.set_ylim(bottom=0)
    else:
        _nothing(axes, "no batch seen on the L1")
    axes.set_ylim(bottom=0)
    axes.set_ylabel("data bytes per batch")
    axes.set_xlabel("run time (s) the batch was seen on the L1")
    axes.margins(x=0.01)
    return _svg(figure, chart_id, "batch data bytes and L1 gas per batch")


#: The Engine API methods drawn, in the order a block's calls are made.
ENGINE_METHODS = ("forkchoiceUpdated", "getPayload", "newPayload")


@_with_style
def engine_latency_chart(
    calls: Sequence[Any], plan: Mapping[str, Any], chart_id: str, faults: Sequence[FaultBand] = ()
) -> str:
    """Each Engine API call's latency at the run time it was made, one colour per method; calls that
    failed or were not answered VALID/OK are drawn as red crosses."""
    figure, axes = _figure(2.8)
    _shade_phases(axes, plan)
    _shade_faults(axes, faults)
    drawn = False
    for method in ENGINE_METHODS:
        points = [
            (call.t, call.latency)
            for call in calls
            if call.method == method and call.status in ("VALID", "OK")
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, ".", color=_COLORS[method], ms=4, label=method)
            drawn = True
    odd = [(call.t, call.latency) for call in calls if call.status not in ("VALID", "OK")]
    if odd:
        xs, ys = zip(*odd, strict=True)
        axes.plot(xs, ys, "x", color=_COLORS["error"], ms=5, label="not VALID / failed")
        drawn = True
    if drawn:
        _ms_axis(axes, "y")
        axes.legend(loc="upper left", fontsize=7, frameon=False)
    else:
        _nothing(axes, "no Engine API call during the run")
    axes.set_ylim(bottom=0)
    axes.set_ylabel("call latency")
    axes.set_xlabel("run time (s)")
    axes.margins(x=0.01)
    return _svg(figure, chart_id, "Engine API call latency per method over the run")


@_with_style
def engine_build_chart(blocks: Sequence[Any], chart_id: str) -> str:
    """Per block the driver built, the client's build time (fcU with attributes + getPayload) and import
    time (newPayload + fcU) against the transactions in it."""
    figure, axes = _figure(2.8)
    if blocks:
        sizes = [block.transactions for block in blocks]
        axes.plot(
            sizes, [block.build_s for block in blocks], "o", color=_COLORS["getPayload"], ms=4, label="build"
        )
        axes.plot(
            sizes,
            [block.import_s for block in blocks],
            ".",
            color=_COLORS["newPayload"],
            ms=5,
            label="import",
        )
        _ms_axis(axes, "y")
        axes.legend(loc="upper left", fontsize=7, frameon=False)
    else:
        _nothing(axes, "no block built during the run")
    axes.set_ylim(bottom=0)
    axes.set_xlim(left=0)
    axes.set_ylabel("seconds per block")
    axes.set_xlabel("transactions in the block")
    return _svg(figure, chart_id, "build and import time per block against its size")


@_with_style
def capacity_envelope_chart(capacity: Any, chart_id: str) -> str:
    """A capacity search's envelope: included against offered gas per second (the diagonal is "every
    offered gas included"), and inclusion latency p50 / p99 against offered load with the SLO's p99
    bound; the maximum and the knee are marked on both. ``capacity`` is ``CapacityFigures``."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10.0, 3.4), dpi=100, layout="constrained")
    rates_axes, latency_axes = figure.subplots(1, 2)
    steps = sorted(capacity.steps, key=lambda step: step.offered_gas_per_sec)
    if not steps:
        _nothing(rates_axes, "no step ran")
        _nothing(latency_axes, "no step ran")
        return _svg(figure, chart_id, "capacity envelope: no step ran")
    offered = [step.offered_gas_per_sec for step in steps]
    top = max(offered) * 1.05
    rates_axes.plot([0, top], [0, top], color=_COLORS["offered"], ls=":", lw=1.0, label="included = offered")
    rates_axes.plot(
        offered, [step.included_gas_per_sec for step in steps], "-", color=_COLORS["included"], lw=1.0
    )
    for passed, marker, label in ((True, "o", "met every SLO"), (False, "x", "missed an SLO")):
        chosen = [step for step in steps if step.passed is passed]
        if chosen:
            rates_axes.plot(
                [step.offered_gas_per_sec for step in chosen],
                [step.included_gas_per_sec for step in chosen],
                marker,
                color=_COLORS["included"] if passed else _COLORS["error"],
                ms=5,
                label=label,
            )
    latency_axes.plot(
        offered, [step.inclusion_p50 for step in steps], "o-", color=_COLORS["inclusion"], ms=4, label="p50"
    )
    latency_axes.plot(
        offered,
        [step.inclusion_p99 for step in steps],
        "s--",
        color=_COLORS["inclusion"],
        ms=4,
        label="p99",
    )
    bound = (capacity.slos or {}).get("inclusion_p99")
    if bound is not None:
        latency_axes.axhline(bound, color=_COLORS["error"], ls=":", lw=1.2, label="p99 bound (SLO)")
    for axes in (rates_axes, latency_axes):
        if capacity.max_gas_per_sec is not None:
            axes.axvline(capacity.max_gas_per_sec, color=_COLORS["target"], lw=1.2, label="maximum")
            if capacity.max_ci_low is not None:
                high = capacity.max_ci_high if capacity.max_ci_high is not None else capacity.max_gas_per_sec
                axes.axvspan(capacity.max_ci_low, high, color=_COLORS["target"], alpha=0.08, lw=0)
        if capacity.knee_gas_per_sec is not None:
            axes.axvline(capacity.knee_gas_per_sec, color=_COLORS["feed"], ls="--", lw=1.2, label="knee")
        axes.xaxis.set_major_formatter(_rate_formatter())
        axes.set_xlabel("offered gas per second")
        axes.set_xlim(left=0, right=top)
        axes.set_ylim(bottom=0)
        axes.legend(loc="upper left", fontsize=7, frameon=False)
    rates_axes.yaxis.set_major_formatter(_rate_formatter())
    rates_axes.set_ylabel("included gas per second")
    _ms_axis(latency_axes, "y")
    latency_axes.set_ylabel("inclusion latency")
    return _svg(figure, chart_id, "capacity envelope: included gas and inclusion latency against offered gas")
