"""Service-level objectives from the marker, checked against a run's result.

``slo={"inclusion_p99": "2s", "feed_p99": "500ms", "min_gas_ratio": 0.95, "max_error_rate": 0.001}``
turns into one verdict per objective, named ``slo.<objective>``, with the measured figure and the
bound as evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pytest_gashammer.errors import ConfigError
from pytest_gashammer.results import RunResult, Verdict, VerdictStatus
from pytest_gashammer.scenario.units import format_seconds, parse_duration

_LATENCIES = ("accept", "inclusion", "feed")
_STATS = ("p50", "p90", "p99", "max")
LATENCY_OBJECTIVES = tuple(f"{kind}_{stat}" for kind in _LATENCIES for stat in _STATS)
RATIO_OBJECTIVES = ("min_gas_ratio", "max_error_rate")
COUNT_OBJECTIVES = ("max_lost",)
OBJECTIVES = LATENCY_OBJECTIVES + RATIO_OBJECTIVES + COUNT_OBJECTIVES


def parse_slo(raw: object) -> dict[str, float]:
    """Validate ``slo=...``: latencies become seconds, ratios stay numbers. Raises ConfigError."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"slo={raw!r} must be a dict, e.g. slo={{'inclusion_p99': '2s', 'min_gas_ratio': 0.95}}"
        )
    parsed: dict[str, float] = {}
    for name, bound in raw.items():
        if name not in OBJECTIVES:
            raise ConfigError(f"slo: unknown objective {name!r}; accepted: {', '.join(OBJECTIVES)}")
        if name in LATENCY_OBJECTIVES:
            parsed[name] = parse_duration(bound, what=f"slo[{name!r}]")
            continue
        if (
            isinstance(bound, bool)
            or not isinstance(bound, int | float)
            or not math.isfinite(bound)
            or bound < 0
        ):
            raise ConfigError(f"slo[{name!r}]={bound!r} must be a number of zero or more")
        if name == "min_gas_ratio" and bound > 10:
            raise ConfigError(
                f"slo['min_gas_ratio']={bound!r} is a ratio of included to target gas, e.g. 0.95"
            )
        parsed[name] = float(bound)
    return parsed


def evaluate_slos(result: RunResult, slos: Mapping[str, float]) -> list[Verdict]:
    return [_check(name, bound, result) for name, bound in slos.items()]


def _check(name: str, bound: float, result: RunResult) -> Verdict:
    verdict_name = f"slo.{name}"
    if name in LATENCY_OBJECTIVES:
        kind, stat = name.rsplit("_", 1)
        stats = getattr(result.latency, kind)
        measured = float(getattr(stats, stat))
        if stats.count == 0 or math.isnan(measured):
            return Verdict(verdict_name, "inconclusive", f"no {kind} latency was measured in this run")
        evidence: dict[str, Any] = {"measured_s": measured, "bound_s": bound, "samples": stats.count}
        if measured > bound:
            return Verdict(
                verdict_name,
                "failed",
                f"{kind} {stat} {format_seconds(measured)} > {format_seconds(bound)}",
                evidence,
            )
        return Verdict(
            verdict_name,
            "passed",
            f"{kind} {stat} {format_seconds(measured)} <= {format_seconds(bound)}",
            evidence,
        )
    if name == "min_gas_ratio":
        ratio = result.included_gas_per_sec / result.target_gas_per_sec if result.target_gas_per_sec else 0.0
        evidence = {
            "included_gas_per_sec": result.included_gas_per_sec,
            "target_gas_per_sec": result.target_gas_per_sec,
        }
        status: VerdictStatus = "failed" if ratio < bound else "passed"
        relation = "<" if ratio < bound else ">="
        return Verdict(
            verdict_name, status, f"included/target gas {ratio:.3f} {relation} {bound:g}", evidence
        )
    if name == "max_error_rate":
        if result.sent == 0:
            return Verdict(verdict_name, "inconclusive", "nothing was sent")
        rate = result.rejected / result.sent
        evidence = {"rejected": result.rejected, "sent": result.sent, "errors": dict(result.errors)}
        status = "failed" if rate > bound else "passed"
        relation = ">" if rate > bound else "<="
        return Verdict(verdict_name, status, f"error rate {rate:.4f} {relation} {bound:g}", evidence)
    # max_lost
    status = "failed" if result.lost > bound else "passed"
    relation = ">" if result.lost > bound else "<="
    return Verdict(verdict_name, status, f"{result.lost} lost {relation} {bound:g}", {"lost": result.lost})
