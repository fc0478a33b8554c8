"""A capacity search, run by the hive as a sequence of ordinary runs, one per step.

Why in the hive, not in the ``hammer`` fixture: under xdist the controller's queue then runs the
whole search as one item, so no other test's run lands between two steps and disturbs the chain
being measured; and the search's own ``runs`` row (its figures, ``capacity_json``) is written by
the process that owns the telemetry. A worker's ``HiveClient`` sends the plan as for any run.

Each step is the marker's scenario at one offered rate (``scenario.spec.capacity_step_plan``),
run by ``run_step`` exactly as a plain run is (edges, verdicts, telemetry: each step is a run in the
Parquet store, ``capacity_search`` and ``capacity_step`` tie it to the search). The rates, the
judging and the figures come from :mod:`pytest_gashammer.oracle.capacity`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from pytest_gashammer.oracle.capacity import (
    DEFAULT_SLOS,
    LOAD_BOUND_INVARIANTS,
    CapacitySearch,
    capacity_figures,
    judge_step,
    per_second_included_gas,
    run_search,
)
from pytest_gashammer.results import CapacityFigures, CapacityStep, RunResult, Verdict
from pytest_gashammer.scenario.spec import ScenarioPlan, capacity_step_plan
from pytest_gashammer.scenario.units import format_gas_rate
from pytest_gashammer.vocabulary import SLO_VERDICT_PREFIX

logger = logging.getLogger(__name__)

#: The verdict a search's result carries first: passed when a maximum was found.
CAPACITY_VERDICT = "capacity"
#: What starts the search's note in its result.
CAPACITY_NOTE = "capacity: "
_WORST = {"failed": 2, "inconclusive": 1, "passed": 0}


def run_capacity(
    plan: ScenarioPlan,
    run_step: Callable[[ScenarioPlan], tuple[RunResult, str | None]],
    *,
    devnet: Any,
    node_version: str,
    telemetry: Any = None,
) -> RunResult:
    """Run the capacity search ``plan`` step by step with ``run_step`` (the hive's one-run path, which
    returns the step's result and its telemetry run id).

    Returns the result of the step at the maximum (the first step when none met the SLOs) with
    ``capacity`` set, its ``capacity`` verdict first, and the other invariants judged over every step.
    """
    settings = dict(plan.capacity)
    slos = dict(plan.slo) or dict(DEFAULT_SLOS)
    search = CapacitySearch(
        settings["from"],
        settings["to"],
        max_steps=int(settings["max_steps"]),
        resolution=float(settings["resolution"]),
    )
    started = time.monotonic()
    started_unix_ns = time.time_ns()
    deadline = started + float(settings["max_time"])
    search_id = None
    if telemetry is not None:
        from pytest_gashammer.telemetry.parquet import new_run_id

        # Named now, so every step's row names it; written once the steps ran, at the maximum's rate.
        search_id = new_run_id()
    results: dict[int, RunResult] = {}
    samples: dict[int, list[float]] = {}
    longest_step = 0.0

    def one_step(rate: float, index: int) -> CapacityStep | None:
        nonlocal longest_step
        # A step costs at least what the longest so far did; none starts that would end past max_time.
        if index and time.monotonic() + longest_step > deadline:
            search.end(f"max_time: the next step would end past {settings['max_time']:.0f} s")
            return None
        step_plan = capacity_step_plan(plan, rate, index=index, search=search_id, slo=slos)
        logger.info("capacity step %d of %r: %s", index, plan.name, format_gas_rate(rate))
        step_started = time.monotonic()
        result, run_id = run_step(step_plan)
        longest_step = max(longest_step, time.monotonic() - step_started)
        results[index] = result
        sustain = step_plan.sustain
        samples[index] = per_second_included_gas(result, sustain.start, sustain.end)
        step = judge_step(result, index, slos=slos, samples=samples[index], run_id=run_id)
        logger.info(
            "capacity step %d: offered %s, included %s, p99 %.3f s: %s",
            index,
            format_gas_rate(rate),
            format_gas_rate(step.included_gas_per_sec),
            step.inclusion_p99,
            "met the SLOs" if step.passed else "did not meet the SLOs",
        )
        return step

    def record(result: RunResult | None, status: str | None = None) -> None:
        if telemetry is None or search_id is None:
            return
        # The search's row: its plan at the rate of the result it holds (the step at the maximum).
        rate = result.target_gas_per_sec if result is not None else plan.target_gas_per_sec
        shown = capacity_step_plan(plan, rate, index=0, search=None, slo=slos)
        shown = dataclasses.replace(shown, capacity_step=None, slo=plan.slo)
        telemetry.begin(
            shown, devnet, node_version=node_version, run_id=search_id, started_unix_ns=started_unix_ns
        )
        telemetry.end(search_id, reports=[], shares=[], origin_unix_ns=None, result=result, status=status)

    try:
        steps = run_search(search, one_step)
    except BaseException:
        record(None, "failed")
        raise
    figures = capacity_figures(steps, samples, stopped=search.stopped, slos=slos, seed=plan.seed)
    result = search_result(plan, figures, results, duration=time.monotonic() - started)
    record(result)
    return result


def search_result(
    plan: ScenarioPlan, figures: CapacityFigures, results: dict[int, RunResult], *, duration: float
) -> RunResult:
    """The search's result: its step at the maximum (else its first step), with ``capacity`` set.

    Verdicts: ``capacity`` first (failed when not even the first step met the SLOs, with the fix);
    then each invariant over every step, at its worst status there (a failure names its step). The
    steps' SLO verdicts and the invariants overload breaks by design are in ``capacity.steps``.
    """
    by_rate = {step.offered_gas_per_sec: step.index for step in figures.steps}
    base_index = by_rate[figures.max_gas_per_sec] if figures.max_gas_per_sec is not None else 0
    base = results[base_index]
    verdicts = [capacity_verdict(figures), *_worst_verdicts(figures, results)]
    notes = list(dict.fromkeys(note for index in sorted(results) for note in results[index].notes))
    notes.append(CAPACITY_NOTE + describe(figures))
    return dataclasses.replace(
        base,
        name=plan.name,
        verdicts=verdicts,
        duration=duration,
        notes=notes,
        capacity=figures,
        fail_inconclusive=plan.fail_inconclusive,
    )


def capacity_verdict(figures: CapacityFigures) -> Verdict:
    evidence: dict[str, Any] = {
        "steps": [
            f"#{step.index} {format_gas_rate(step.offered_gas_per_sec)}: included "
            f"{format_gas_rate(step.included_gas_per_sec)}, p99 {step.inclusion_p99:.3f} s, "
            f"{'met' if step.passed else 'missed: ' + ', '.join(n for n, s in step.slos.items() if s != 'passed')}"
            for step in figures.steps
        ],
        "stopped": figures.stopped,
        "slos": figures.slos,
    }
    if figures.max_gas_per_sec is None:
        first = figures.steps[0] if figures.steps else None
        missed = ", ".join(n for n, s in first.slos.items() if s != "passed") if first else "no step ran"
        return Verdict(
            CAPACITY_VERDICT,
            "failed",
            f"not even the first rate met the SLOs ({missed}); lower capacity['from']",
            evidence,
        )
    return Verdict(CAPACITY_VERDICT, "passed", describe(figures), evidence)


def describe(figures: CapacityFigures) -> str:
    """One line: the maximum with its interval, the knee, the steps and why the search stopped."""
    if figures.max_gas_per_sec is None:
        head = "no rate met the SLOs"
    else:
        low = "?" if figures.max_ci_low is None else format_gas_rate(figures.max_ci_low)
        high = "≥ to" if figures.max_ci_high is None else format_gas_rate(figures.max_ci_high)
        head = f"max {format_gas_rate(figures.max_gas_per_sec)} (95 % interval {low} .. {high})"
    knee = "-" if figures.knee_gas_per_sec is None else format_gas_rate(figures.knee_gas_per_sec)
    return f"{head}, knee {knee}, {len(figures.steps)} step(s), stopped on {figures.stopped}"


def _worst_verdicts(figures: CapacityFigures, results: dict[int, RunResult]) -> list[Verdict]:
    """Every invariant (not an SLO, not one overload breaks by design) at its worst over the steps."""
    worst: dict[str, tuple[Verdict, int]] = {}
    for index in sorted(results):
        for verdict in results[index].verdicts:
            if verdict.name.startswith(SLO_VERDICT_PREFIX) or verdict.name in LOAD_BOUND_INVARIANTS:
                continue
            held = worst.get(verdict.name)
            if held is None or _WORST[verdict.status] > _WORST[held[0].status]:
                worst[verdict.name] = (verdict, index)
    rates = {step.index: step.offered_gas_per_sec for step in figures.steps}
    named = []
    for verdict, index in worst.values():
        if verdict.status != "passed":
            where = f"step #{index} ({format_gas_rate(rates.get(index, 0.0))})"
            verdict = dataclasses.replace(verdict, summary=f"{where}: {verdict.summary}")
        named.append(verdict)
    return named
