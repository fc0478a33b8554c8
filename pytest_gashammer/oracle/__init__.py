"""The oracle: invariants over what the edges saw, and SLOs over the result, turned into verdicts."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_gashammer.oracle.invariants import BASIC_INVARIANTS, INVARIANTS, evaluate
from pytest_gashammer.vocabulary import ACCEPTANCE

if TYPE_CHECKING:
    from pytest_gashammer.results import RunResult, Verdict
    from pytest_gashammer.scenario.spec import ScenarioPlan
    from pytest_gashammer.telemetry.records import EdgeReport

__all__ = ["BASIC_INVARIANTS", "INVARIANTS", "evaluate", "evaluate_plan", "finish_result"]


def evaluate_plan(plan: ScenarioPlan, reports: Sequence[EdgeReport]) -> list[Verdict]:
    """The invariants the plan asks for (``invariants=`` / ``skip_invariants=``) over ``reports``."""
    if not reports:
        return []
    return evaluate(
        reports,
        plan.inclusion_timeout,
        only=plan.invariants,
        skip=plan.skip_invariants,
        settings={ACCEPTANCE: {"max_rejected_share": plan.max_rejected_share}},
    )


def finish_result(plan: ScenarioPlan, result: RunResult) -> RunResult:
    """Add the plan's SLO verdicts and its inconclusive policy to a merged result."""
    from pytest_gashammer.oracle.slo import evaluate_slos

    verdicts = [*result.verdicts, *evaluate_slos(result, dict(plan.slo))]
    return dataclasses.replace(result, verdicts=verdicts, fail_inconclusive=plan.fail_inconclusive)
