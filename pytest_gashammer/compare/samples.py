"""A stored run as the comparison needs it: its facts and its per-second samples, from Parquet.

Both sides of every comparison come from the store (the live gate reads the run it just finished
back), so ``gashammer compare`` on stored runs gives exactly the table the gate gave.

The samples are seconds of the sustain phase's transactions. Rates: their included gas and count per
whole second from the first of them in a block (receipt gas where fetched, planned gas otherwise;
nonce-gap fillers left out, as in ``RunResult``). Latencies: each one's latency from its intended send
time, in the second of the run clock it was intended, as a histogram per second (``stats.py``), and
all of them sorted for the exact quantile of the run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from pytest_gashammer.compare.stats import latency_histograms
from pytest_gashammer.compare.thresholds import METRICS
from pytest_gashammer.results import nearest_rank
from pytest_gashammer.telemetry.parquet import NULL_INT, int_column, label_column, load

_COLUMNS = ["template", "phase", "scheduled_ns", "accepted_ns", "included_ns", "gas_planned", "gas_used"]


@dataclasses.dataclass
class RunSamples:
    """One stored run: the facts that decide comparability and its per-second samples."""

    run_id: str
    row: dict[str, Any]
    plan: dict[str, Any]
    seconds: int
    rates: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    histograms: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    latencies: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def test_nodeid(self) -> str:
        return str(self.row.get("test_nodeid") or "")

    def value(self, metric: str) -> float:
        """The run's figure for ``metric``: the mean of its per-second rate, or its exact quantile."""
        spec = METRICS[metric]
        if spec.kind == "rate":
            samples = self.rates.get(spec.column)
            return float(samples.mean()) if samples is not None and samples.size else math.nan
        if spec.kind == "latency":
            ordered = self.latencies.get(spec.column)
            return nearest_rank(ordered, spec.quantile) if ordered is not None else math.nan
        return capacity_of(self.row)


def pool(runs: Sequence[RunSamples]) -> RunSamples:
    """Several runs of one scenario (repeats) as one: their seconds side by side, the facts of the first."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    pooled = RunSamples(first.run_id, first.row, first.plan, sum(run.seconds for run in runs))
    for name in first.rates:
        pooled.rates[name] = np.concatenate([run.rates[name] for run in runs])
    for name in first.histograms:
        pooled.histograms[name] = np.vstack([run.histograms[name] for run in runs])
        pooled.latencies[name] = np.sort(np.concatenate([run.latencies[name] for run in runs]))
    return pooled


def capacity_of(row: dict[str, Any]) -> float:
    """The capacity envelope's maximum of a stored run, ``nan`` for a run that searched none."""
    text = row.get("capacity_json")
    if not text:
        return math.nan
    try:
        value = json.loads(text).get("max_gas_per_sec")
    except (ValueError, AttributeError):
        return math.nan
    return float(value) if isinstance(value, int | float) else math.nan


def capacity_bounds(row: dict[str, Any]) -> tuple[float, float]:
    """Where a stored search puts its maximum: the 95 % interval of the maximum (``max_ci_low`` ..
    ``max_ci_high``; no high end when no step failed: the maximum is at least ``to``). A search
    whose first step already missed puts it below its first rate. ``(nan, nan)`` for a run that
    searched none."""
    text = row.get("capacity_json")
    try:
        found = json.loads(text) if text else None
    except ValueError:
        found = None
    if not isinstance(found, dict):
        return (math.nan, math.nan)
    if found.get("max_gas_per_sec") is None:
        steps = found.get("steps") or ()
        first = steps[0].get("offered_gas_per_sec") if steps and isinstance(steps[0], dict) else None
        return (0.0, float(first)) if isinstance(first, int | float) else (math.nan, math.nan)
    low = found.get("max_ci_low")
    high = found.get("max_ci_high")
    low = float(low) if isinstance(low, int | float) else float(found["max_gas_per_sec"])
    return (low, float(high) if isinstance(high, int | float) else math.inf)


def load_samples(directory: str | os.PathLike[str], run_id: str) -> RunSamples:
    """Read one stored run's ``runs`` row and transactions and reduce them to per-second samples."""
    tables = load(
        directory, run_ids=[run_id], tables=("runs", "transactions"), columns={"transactions": _COLUMNS}
    )
    rows = tables.runs.to_pylist()
    if not rows:
        raise KeyError(run_id)
    return samples_of(rows[0], tables.transactions)


def samples_of(row: dict[str, Any], transactions: pa.Table) -> RunSamples:
    """The samples of a ``runs`` ``row`` from its ``transactions`` (as :func:`load` returns them)."""
    plan = json.loads(row.get("plan_json") or "{}")
    sustain = next((p for p in plan.get("phases", ()) if p.get("name") == "sustain"), None)
    start, end = (float(sustain["start"]), float(sustain["end"])) if sustain else (0.0, 0.0)
    samples = RunSamples(str(row["run_id"]), row, plan, 0)

    template = label_column(transactions, "template")
    offered = template != "gap_filler"
    scheduled = int_column(transactions, "scheduled_ns")
    included = int_column(transactions, "included_ns")
    planned = int_column(transactions, "gas_planned").astype(np.float64)
    used = int_column(transactions, "gas_used")
    gas = np.where(used != NULL_INT, used.astype(np.float64), planned)

    # Rates: the gas of the sustain phase's transactions per second of the span over which they were
    # included, from the first of them in a block (as RunResult's included rate): a chain that keeps
    # up includes them over the sustain phase, one that falls behind over a longer span, at a lower
    # rate. Aligned on the first inclusion, a latency that only moves every inclusion later does not
    # read as a lower rate (a window fixed on the run clock would lose the first blocks to the warmup).
    in_sustain = offered & (label_column(transactions, "phase") == "sustain") & (scheduled != NULL_INT)
    in_block = in_sustain & (included != NULL_INT)
    if in_block.any():
        first_ns = int(included[in_block].min())
        span_s = (int(included[in_block].max()) - first_ns) / 1e9
        count = max(math.floor(span_s), 1)  # whole seconds: the partial last one would read as slow
        second = (included[in_block] - first_ns) // 1_000_000_000
        inside = second < count
        samples.rates["included_gas"] = np.bincount(
            second[inside], weights=gas[in_block][inside], minlength=count
        )[:count]
        samples.rates["included_tx"] = np.bincount(second[inside], minlength=count)[:count].astype(np.float64)
    else:
        samples.rates["included_gas"] = samples.rates["included_tx"] = np.zeros(0)
    samples.seconds = len(samples.rates["included_gas"])

    lat_first = math.floor(start)
    lat_count = max(math.ceil(end) - lat_first, 1)
    for column in {spec.column for spec in METRICS.values() if spec.kind == "latency"}:
        ends = int_column(transactions, column)
        mask = in_sustain & (ends != NULL_INT)
        latency = np.maximum(ends[mask] - scheduled[mask], 0) / 1e9
        where = np.clip(scheduled[mask] // 1_000_000_000 - lat_first, 0, lat_count - 1)
        samples.histograms[column] = latency_histograms(where, latency, lat_count)
        samples.latencies[column] = np.sort(latency)
    return samples
