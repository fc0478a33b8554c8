"""Service-level objectives from the marker, checked against a run's result.

``slo={"inclusion_p99": "2s", "feed_p99": "500ms", "min_gas_ratio": 0.95, "max_error_rate": 0.001}``
turns into one verdict per objective, named ``slo.<objective>``, with the measured figure and the
bound as evidence. The objective names are declared in :mod:`pytest_gashammer.vocabulary`, and the
marker's ``slo=`` is validated with the other marker arguments (``scenario/arguments.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from pytest_gashammer.results import LatencyStats, RunResult, Verdict, VerdictStatus
from pytest_gashammer.scenario.units import format_seconds
from pytest_gashammer.vocabulary import (
    BATCH_LAG,
    ENGINE_OBJECTIVE_PREFIX,
    ENGINE_OBJECTIVES,
    FAULT_LOST,
    L1_LAG_OBJECTIVES,
    LATENCY_OBJECTIVES,
    MAX_ERROR_RATE,
    MAX_LOST,
    MIN_GAS_RATIO,
    RECOVERY_S,
    slo_verdict_name,
)


def evaluate_slos(result: RunResult, slos: Mapping[str, float]) -> list[Verdict]:
    """One verdict per objective, in the order given."""
    return [
        OBJECTIVE_CHECKS[name](slo_verdict_name(name), name, bound, result) for name, bound in slos.items()
    ]


def _within_bound(
    verdict_name: str,
    what: str,
    stats: LatencyStats,
    stat: str,
    bound: float,
    *,
    nothing: str,
    count_key: str = "samples",
) -> Verdict:
    """``what``'s ``stat`` (seconds) against ``bound``; inconclusive with ``nothing`` when none was measured."""
    measured = float(getattr(stats, stat))
    if stats.count == 0 or math.isnan(measured):
        return Verdict(verdict_name, "inconclusive", nothing)
    evidence: dict[str, Any] = {"measured_s": measured, "bound_s": bound, count_key: stats.count}
    status: VerdictStatus = "failed" if measured > bound else "passed"
    relation = ">" if measured > bound else "<="
    return Verdict(
        verdict_name,
        status,
        f"{what} {stat} {format_seconds(measured)} {relation} {format_seconds(bound)}",
        evidence,
    )


def _latency(verdict_name: str, objective: str, bound: float, result: RunResult) -> Verdict:
    kind, stat = objective.rsplit("_", 1)
    return _within_bound(
        verdict_name,
        kind,
        getattr(result.latency, kind),
        stat,
        bound,
        nothing=f"no {kind} latency was measured in this run",
    )


def _batch_lag(verdict_name: str, objective: str, bound: float, result: RunResult) -> Verdict:
    stat = objective.removeprefix(f"{BATCH_LAG}_")
    if result.l1 is None:
        return Verdict(verdict_name, "inconclusive", "the target has no L1, so no batch-posting lag")
    return _within_bound(
        verdict_name,
        "batch-posting lag",
        result.l1.batch_lag,
        stat,
        bound,
        nothing="no L2 block of the run was seen posted, so no batch-posting lag",
        count_key="blocks",
    )


def _engine_latency(verdict_name: str, objective: str, bound: float, result: RunResult) -> Verdict:
    kind, stat = objective.removeprefix(ENGINE_OBJECTIVE_PREFIX).rsplit("_", 1)
    label = kind.replace("_", " ")
    if result.engine is None:
        return Verdict(
            verdict_name,
            "inconclusive",
            "the plugin did not build the target's blocks, so no Engine API latency",
        )
    return _within_bound(
        verdict_name,
        f"Engine API {label}",
        getattr(result.engine, kind),
        stat,
        bound,
        nothing=f"no {label} was measured in this run",
    )


def _min_gas_ratio(verdict_name: str, objective: str, bound: float, result: RunResult) -> Verdict:
    ratio = result.included_gas_per_sec / result.target_gas_per_sec if result.target_gas_per_sec else 0.0
    evidence = {
        "included_gas_per_sec": result.included_gas_per_sec,
        "target_gas_per_sec": result.target_gas_per_sec,
    }
    status: VerdictStatus = "failed" if ratio < bound else "passed"
    relation = "<" if ratio < bound else ">="
    return Verdict(verdict_name, status, f"included/target gas {ratio:.3f} {relation} {bound:g}", evidence)


def _max_error_rate(verdict_name: str, objective: str, bound: float, result: RunResult) -> Verdict:
    if result.sent == 0:
        return Verdict(verdict_name, "inconclusive", "nothing was sent")
    rate = result.rejected / result.sent
    evidence = {"rejected": result.rejected, "sent": result.sent, "errors": dict(result.errors)}
    status: VerdictStatus = "failed" if rate > bound else "passed"
    relation = ">" if rate > bound else "<="
    return Verdict(verdict_name, status, f"error rate {rate:.4f} {relation} {bound:g}", evidence)


def _max_lost(verdict_name: str, objective: str, bound: float, result: RunResult) -> Verdict:
    status: VerdictStatus = "failed" if result.lost > bound else "passed"
    relation = ">" if result.lost > bound else "<="
    return Verdict(verdict_name, status, f"{result.lost} lost {relation} {bound:g}", {"lost": result.lost})


def _recovery_s(verdict_name: str, objective: str, bound: float, result: RunResult) -> Verdict:
    if not result.faults:
        return Verdict(verdict_name, "inconclusive", "the run had no faults on its timeline (marker faults=)")
    slowest: list[tuple[str, float | None]] = []
    for impact in result.faults:
        slowest.append((impact.label, impact.recovered_after_s))
    evidence: dict[str, Any] = {"bound_s": bound, "recovered_after_s": dict(slowest)}
    never = [label for label, seconds in slowest if seconds is None]
    if never:
        return Verdict(
            verdict_name, "failed", f"never recovered before the run ended: {', '.join(never)}", evidence
        )
    label, worst = max(slowest, key=lambda item: item[1] or 0.0)
    assert worst is not None
    status: VerdictStatus = "failed" if worst > bound else "passed"
    relation = ">" if worst > bound else "<="
    return Verdict(
        verdict_name,
        status,
        f"slowest recovery {format_seconds(worst)} ({label}) {relation} {format_seconds(bound)}",
        evidence,
    )


def _fault_lost(verdict_name: str, objective: str, bound: float, result: RunResult) -> Verdict:
    if not result.faults:
        return Verdict(verdict_name, "inconclusive", "the run had no faults on its timeline (marker faults=)")
    lost = sum(impact.lost for impact in result.faults)
    evidence = {
        "lost": lost,
        "bound": bound,
        "by_fault": {impact.label: impact.lost for impact in result.faults},
        "examples": [tx for impact in result.faults for tx in impact.lost_examples][:10],
    }
    status: VerdictStatus = "failed" if lost > bound else "passed"
    relation = ">" if lost > bound else "<="
    return Verdict(verdict_name, status, f"{lost} lost during faults {relation} {bound:g}", evidence)


ObjectiveCheck = Callable[[str, str, float, RunResult], Verdict]

#: How each objective of the vocabulary is checked: ``(verdict name, objective, bound, result)``.
OBJECTIVE_CHECKS: dict[str, ObjectiveCheck] = {
    **dict.fromkeys(LATENCY_OBJECTIVES, _latency),
    MIN_GAS_RATIO: _min_gas_ratio,
    MAX_ERROR_RATE: _max_error_rate,
    MAX_LOST: _max_lost,
    FAULT_LOST: _fault_lost,
    RECOVERY_S: _recovery_s,
    **dict.fromkeys(L1_LAG_OBJECTIVES, _batch_lag),
    **dict.fromkeys(ENGINE_OBJECTIVES, _engine_latency),
}
