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
    FALLING_BEHIND,
    LOAD_BOUND_INVARIANTS,
    PAST_LIMIT,
    CapacitySearch,
    capacity_figures,
    judge_steadiness,
    judge_step,
    longer_hold,
    per_second_gas,
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
        hold, attempts = float(settings["step"]), 0
        while True:
            attempts += 1
            step_plan = capacity_step_plan(plan, rate, index=index, search=search_id, slo=slos, hold=hold)
            logger.info(
                "capacity step %d of %r: %s held %.0f s", index, plan.name, format_gas_rate(rate), hold
            )
            step_started = time.monotonic()
            result, run_id = run_step(step_plan)
            took = time.monotonic() - step_started
            longest_step = max(longest_step, took)
            sustain = step_plan.sustain
            included = per_second_included_gas(result, sustain.start, sustain.end)
            steadiness = judge_steadiness(
                included, per_second_gas(result, sustain.start, sustain.end, "offered_gas")
            )
            past = (result.stopped_early or "").startswith(PAST_LIMIT)
            if past or steadiness.state == FALLING_BEHIND:
                # Its backlog is still in the pool: the next step must not start behind it.
                wait_for_empty_pool(getattr(devnet, "rpc_url", None), float(plan.inclusion_timeout))
            longer = None if past else longer_hold(steadiness, hold, float(settings["max_step"]))
            # Held longer only when that attempt still ends within max_time.
            if longer is not None and time.monotonic() + took * longer / hold > deadline:
                longer = None
            logger.info(
                "capacity step %d: %s after %.0f s%s",
                index,
                "stopped early" if past else steadiness.describe(),
                hold,
                f"; held again for {longer:.0f} s" if longer is not None else "",
            )
            if longer is None:
                break
            hold = longer
        results[index] = result
        samples[index] = included
        step = judge_step(
            result,
            index,
            slos=slos,
            samples=included,
            run_id=run_id,
            steadiness=steadiness,
            held=hold,
            attempts=attempts,
        )
        logger.info(
            "capacity step %d: offered %s, included %s, p99 %.3f s, %s: %s",
            index,
            format_gas_rate(rate),
            format_gas_rate(step.included_gas_per_sec),
            step.inclusion_p99,
            step.steadiness,
            "met the SLOs" if step.passed else "did not meet the SLOs",
        )
        return step

    def record(result: RunResult | None, status: str | None = None) -> None:
        if telemetry is None or search_id is None:
            return
        # The search's row: the search's own plan (the marker's, offered at 'from'), whatever maximum
        # it found, so the gate compares two searches of one test by what they found; its target
        # and figures are those of the result it holds (the step at the maximum).
        telemetry.begin(
            plan,
            devnet,
            node_version=node_version,
            run_id=search_id,
            started_unix_ns=started_unix_ns,
            target_gas_per_sec=None if result is None else result.target_gas_per_sec,
        )
        telemetry.end(search_id, reports=[], shares=[], origin_unix_ns=None, result=result, status=status)

    try:
        steps = run_search(search, one_step)
    except BaseException:
        record(None, "failed")
        raise
    figures = capacity_figures(steps, samples, stopped=search.stopped, slos=slos, seed=plan.seed)
    result = search_result(plan, figures, results, duration=time.monotonic() - started)
    if search_id is not None:
        # The search's own row holds what it found (capacity_json): the gate compares that row.
        result = dataclasses.replace(result, run_id=search_id)
    record(result)
    return result


#: How often the pool is asked whether a step's backlog has drained.
POOL_POLL_INTERVAL = 0.25


def wait_for_empty_pool(rpc_url: str | None, timeout: float) -> bool:
    """Wait until the node's pool holds nothing (``txpool_status``), at most ``timeout`` seconds;
    ``True`` once it is empty. A step past the limit leaves its backlog in the pool when it ends,
    and the next step, at a lower rate, would otherwise be judged on the chain draining it. A node
    without ``txpool_status`` is not waited for."""
    if not rpc_url:
        return False
    from pytest_gashammer.chain.rpc import RpcError, TransportError, call

    deadline = time.monotonic() + timeout
    while True:
        try:
            status = call(rpc_url, "txpool_status", timeout=5.0)
        except (RpcError, TransportError) as exc:
            logger.debug("no txpool_status to wait on (%s); the next step starts now", exc)
            return False
        waiting = (
            sum(int(str(status.get(key, "0x0")), 16) for key in ("pending", "queued"))
            if isinstance(status, dict)
            else 0
        )
        if not waiting:
            return True
        if time.monotonic() > deadline:
            logger.info(
                "%d transaction(s) still pooled after %.0f s; the next step starts now", waiting, timeout
            )
            return False
        time.sleep(POOL_POLL_INTERVAL)


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
