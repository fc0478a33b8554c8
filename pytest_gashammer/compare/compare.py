"""Compare a run with its baseline run: comparability first, then each metric's change and verdict.

Verdicts read like criterion's: a change is *improved* or *regressed* only when its whole 95 %
interval excludes zero and lies beyond the noise threshold (:data:`NOISE_THRESHOLD`), else it is
*no change*. A threshold of ``--gashammer-compare-fail`` fails the run only when the whole interval
is past it, so a noisy rerun of the same build passes and a real regression fails.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_gashammer.compare.samples import RunSamples, capacity_bounds, capacity_of, pool
from pytest_gashammer.compare.stats import MIN_SECONDS, Change, quantile_change, rate_change
from pytest_gashammer.compare.thresholds import (
    CAPACITY_METRICS,
    DEFAULT_METRICS,
    METRICS,
    NOISE_THRESHOLD,
    Threshold,
)
from pytest_gashammer.results import Verdict

#: The verdict a comparison adds to a run (``RunResult.verdicts``).
REGRESSION = "regression"

#: Plan fields that may differ between comparable runs: who asked (the test's id and name) and the
#: seed (the same load, other transactions).
_FREE_PLAN_FIELDS = frozenset({"seed", "nodeid", "name"})


@dataclasses.dataclass(frozen=True)
class MetricChange:
    metric: str
    unit: str
    baseline: float
    now: float
    change: float
    low: float
    high: float
    verdict: str
    threshold: str | None = None
    failed: bool = False


@dataclasses.dataclass
class Comparison:
    """A run against its baseline run; ``difference`` says why they are not comparable (else None)."""

    test_nodeid: str
    baseline_name: str
    #: The baseline's runs compared (pooled when several: repeats), and the runs compared with them.
    baseline_runs: list[str]
    new_runs: list[str]
    difference: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    changes: list[MetricChange] = dataclasses.field(default_factory=list)

    @property
    def comparable(self) -> bool:
        return self.difference is None

    @property
    def failed(self) -> list[MetricChange]:
        return [change for change in self.changes if change.failed]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["comparable"] = self.comparable
        return _json_safe(data)

    def lines(self) -> list[str]:
        """The criterion-like table: metric, baseline, now, change with its 95 % interval, verdict."""
        against = f"baseline {self.baseline_name!r}" + (
            f" {_runs(self.baseline_runs)}" if self.baseline_runs else ""
        )
        head = [f"{self.test_nodeid}  {_runs(self.new_runs)}  vs {against}"]
        if not self.comparable:
            return [*head, f"  not comparable: {self.difference}"]
        head += [f"  note: {note}" for note in self.notes]
        table = [("metric", "baseline", "now", "change", "95% interval", "verdict")]
        for change in self.changes:
            verdict = change.verdict
            if change.failed:
                verdict += f" (past {change.threshold}: FAILED)"
            elif change.threshold:
                verdict += f" (threshold {change.threshold})"
            table.append(
                (
                    change.metric,
                    format_value(change.baseline, change.unit),
                    format_value(change.now, change.unit),
                    format_percent(change.change),
                    f"[{format_percent(change.low)}, {format_percent(change.high)}]",
                    verdict,
                )
            )
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        return head + [
            "  "
            + "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
            + "  "
            + row[5]
            for row in table
        ]


def _runs(run_ids: Sequence[str]) -> str:
    if len(run_ids) == 1:
        return f"run {run_ids[0]}"
    return f"{len(run_ids)} runs {run_ids[0]} .. {run_ids[-1]}"


def format_value(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "-"
    if unit == "gas/s":
        return f"{value / 1e6:.3g} Mgas/s"
    if unit == "s":
        return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"
    return f"{value:.3g} {unit}"


def format_percent(value: float) -> str:
    return f"{value * 100:+.1f}%" if math.isfinite(value) else "-"


def comparability(baseline: dict[str, Any], new: dict[str, Any]) -> str | None:
    """What makes two ``runs`` rows incomparable (the scenario the marker asked for, the devnet
    kind, the test itself), as one line; ``None`` when they may be compared."""
    if (baseline.get("test_nodeid") or "") != (new.get("test_nodeid") or ""):
        return f"another test: {baseline.get('test_nodeid')} vs {new.get('test_nodeid')}"
    if baseline.get("devnet_kind") != new.get("devnet_kind"):
        return f"devnet {baseline.get('devnet_kind')} in the baseline, {new.get('devnet_kind')} now"
    before = json.loads(baseline.get("plan_json") or "{}")
    after = json.loads(new.get("plan_json") or "{}")
    changed = sorted(
        key
        for key in set(before) | set(after) - _FREE_PLAN_FIELDS
        if key not in _FREE_PLAN_FIELDS and before.get(key) != after.get(key)
    )
    if changed:
        details = "; ".join(
            f"{key} {_short(before.get(key))} -> {_short(after.get(key))}" for key in changed[:3]
        )
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        return f"the scenario changed: {details}{more}"
    return None


def _short(value: Any) -> str:
    if (
        isinstance(value, list)
        and value
        and all(isinstance(p, dict) and {"name", "start", "end"} <= set(p) for p in value)
    ):
        # Phases: what a marker's durations became ("warmup 1s + sustain 3s").
        return " + ".join(f"{p['name']} {float(p['end']) - float(p['start']):g}s" for p in value)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= 60 else text[:57] + "..."


def _notes(baseline: dict[str, Any], new: dict[str, Any]) -> list[str]:
    notes = []
    for column, label in (("node_version", "node"), ("git_commit", "commit"), ("host", "host")):
        before, after = baseline.get(column), new.get(column)
        if before != after:
            shown = [
                (value or "unknown")[:12] if column == "git_commit" else value or "unknown"
                for value in (before, after)
            ]
            notes.append(f"{label} {shown[0]} -> {shown[1]}")
    return notes


def compare_runs(
    baselines: Sequence[RunSamples],
    news: Sequence[RunSamples],
    *,
    baseline_name: str,
    thresholds: Sequence[Threshold] = (),
    metrics: Sequence[str] | None = None,
) -> Comparison:
    """Compare the runs ``news`` with the runs ``baselines`` (each side's per-second samples pooled:
    repeats of one scenario): every metric of ``metrics`` (default: a load run's and those the
    thresholds name), unless the first runs of the two sides are not comparable."""
    comparison = Comparison(
        news[0].test_nodeid, baseline_name, [run.run_id for run in baselines], [run.run_id for run in news]
    )
    comparison.difference = comparability(baselines[0].row, news[0].row)
    if comparison.difference is not None:
        return comparison
    comparison.notes = _notes(baselines[0].row, news[0].row)
    if len(baselines) != len(news):
        comparison.notes.append(f"{len(baselines)} baseline run(s) against {len(news)} now, each side pooled")
    baseline, new = pool(baselines), pool(news)
    limits = {threshold.metric: threshold for threshold in thresholds}
    searches = bool(baseline.row.get("capacity_json")) and bool(new.row.get("capacity_json"))
    # A capacity search's row has no transactions of its own: what it found is its figure.
    names = list(metrics or (CAPACITY_METRICS if searches else DEFAULT_METRICS))
    names += [name for name in limits if name not in names]
    for name in names:
        spec = METRICS[name]
        if spec.kind == "capacity":
            before, after = capacity_of(baseline.row), capacity_of(new.row)
            change = capacity_change(baseline.row, new.row)
        elif spec.kind == "rate":
            before, after = baseline.value(name), new.value(name)
            change = rate_change(name, baseline.rates[spec.column], new.rates[spec.column])
        else:
            before, after = baseline.value(name), new.value(name)
            change = quantile_change(
                name,
                spec.quantile,
                baseline.histograms[spec.column],
                new.histograms[spec.column],
                (before, after),
            )
        threshold = limits.get(name)
        comparison.changes.append(
            MetricChange(
                metric=name,
                unit=spec.unit,
                baseline=before,
                now=after,
                change=change.change,
                low=change.low,
                high=change.high,
                verdict=verdict_of(change, spec.higher_is_better),
                threshold=str(threshold) if threshold else None,
                failed=bool(threshold and threshold.exceeded(change.low, change.high)),
            )
        )
    return comparison


def capacity_change(baseline: dict[str, Any], new: dict[str, Any]) -> Change:
    """The change of a capacity search's maximum, from two stored searches' rows.

    One figure per search, so no resampling: each search brackets its maximum (its 95 % interval,
    ``capacity_bounds``), and the change's interval runs from the new search's low end over the
    baseline's high end to its high end over the baseline's low end: the change whichever points of
    the two brackets the maxima really are. Two searches of one chain overlap, and pass any
    threshold; a chain whose whole bracket moved below the baseline's fails it. A search that found
    no maximum (its first step missed) has no figure but a bracket below its first rate: compared
    with a baseline above that, it regressed.
    """
    before, after = capacity_of(baseline), capacity_of(new)
    base_low, base_high = capacity_bounds(baseline)
    new_low, new_high = capacity_bounds(new)
    if math.isnan(base_low) or math.isnan(new_low):
        return Change(math.nan, math.nan, math.nan)
    ratio = after / before - 1 if before > 0 else math.nan
    low = new_low / base_high - 1 if math.isfinite(base_high) and base_high > 0 else -1.0
    high = new_high / base_low - 1 if base_low > 0 else math.inf
    return Change(ratio, low, high)


def verdict_of(change: Change, higher_is_better: bool) -> str:
    """``improved`` / ``regressed`` when the whole interval is past the noise threshold, else
    ``no change``; ``not measured`` without a figure, ``too few seconds`` without an interval."""
    if math.isnan(change.change) and math.isnan(change.low):
        return "not measured"
    if math.isnan(change.low) or math.isnan(change.high):
        return f"too few seconds (under {MIN_SECONDS})"
    if change.low > NOISE_THRESHOLD:
        return "improved" if higher_is_better else "regressed"
    if change.high < -NOISE_THRESHOLD:
        return "regressed" if higher_is_better else "improved"
    return "no change"


def regression_verdict(comparison: Comparison) -> Verdict:
    """The run's ``regression`` verdict: failed past a threshold, inconclusive when not comparable."""
    evidence: dict[str, Any] = {"comparison": comparison.lines()}
    if not comparison.comparable:
        return Verdict(REGRESSION, "inconclusive", f"not comparable: {comparison.difference}", evidence)
    failed = comparison.failed
    if failed:
        names = ", ".join(
            f"{c.metric} {format_percent(c.change)} [{format_percent(c.low)}, {format_percent(c.high)}] past {c.threshold}"
            for c in failed
        )
        return Verdict(
            REGRESSION,
            "failed",
            f"regressed against baseline {comparison.baseline_name!r}: {names}",
            evidence,
        )
    regressed = [c.metric for c in comparison.changes if c.verdict == "regressed"]
    summary = f"within the thresholds against baseline {comparison.baseline_name!r}"
    if regressed:
        summary += f" (regressed, under no threshold: {', '.join(regressed)})"
    return Verdict(REGRESSION, "passed", summary, evidence)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value
