"""The oracle: invariants over what the edges saw, and SLOs over the result, turned into verdicts."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_gashammer.oracle.invariants import BASIC_INVARIANTS, INVARIANTS, evaluate
from pytest_gashammer.vocabulary import ACCEPTANCE, INCLUSION

if TYPE_CHECKING:
    from pytest_gashammer.results import RunResult, Verdict
    from pytest_gashammer.scenario.spec import ScenarioPlan
    from pytest_gashammer.telemetry.records import EdgeReport

__all__ = ["BASIC_INVARIANTS", "INVARIANTS", "evaluate", "evaluate_plan", "finish_result", "name_faults"]


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


def name_faults(result: RunResult) -> RunResult:
    """Name the faults in the ``inclusion`` verdict: lost transactions a fault was active for.

    A transaction a restarted node forgot is lost like any other (the verdict fails); its evidence
    says which fault it was lost in, so the failure reads as the fault's, not as a mystery.
    """
    lost_in = {impact.label: impact for impact in result.faults if impact.lost}
    if not lost_in:
        return result
    verdicts = []
    for verdict in result.verdicts:
        if verdict.name == INCLUSION and verdict.status == "failed":
            evidence = dict(verdict.evidence)
            evidence["lost_during_faults"] = {
                label: {"lost": impact.lost, "examples": impact.lost_examples[:5]}
                for label, impact in lost_in.items()
            }
            during = ", ".join(f"{impact.lost} during {label}" for label, impact in lost_in.items())
            verdict = dataclasses.replace(verdict, summary=f"{verdict.summary} ({during})", evidence=evidence)
        verdicts.append(verdict)
    return dataclasses.replace(result, verdicts=verdicts)
