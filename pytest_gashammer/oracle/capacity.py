"""The capacity search's logic, pure: which rate to offer next, how a step is judged, what was found.

The hive (``hive/capacity.py``) runs the steps; everything it decides with is here, so it can be
tested without a chain (a fake step runner stands in for the runs). The search:

1. **Ramp.** Offer ``from``, then twice the last rate (never above ``to``), while every step meets
   its SLOs. The first step that does not ends the ramp: the chain is past its limit, and no higher
   rate is tried.
2. **Bisection** between the highest rate that met every SLO and the lowest that did not, until the
   failing rate is within ``resolution`` above the passing one.

Each step holds its rate for ``step`` seconds, then is judged steady or not from its per-second
samples (:func:`judge_steadiness`); a step still settling is run again, held twice as long, up to
``max_step`` (:func:`longer_hold`), so a step is judged on a rate the chain holds, not on a transient.

It stops after ``max_steps`` steps in all, when ``to`` itself met the SLOs, when not even ``from``
did, or (the hive decides) when the next step would end past ``max_time``.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from collections.abc import Callable, Mapping, Sequence

from pytest_gashammer.results import CapacityFigures, CapacityStep, RunResult
from pytest_gashammer.scenario.arguments import CAPACITY_RAMP_FACTOR
from pytest_gashammer.vocabulary import (
    ACCEPTANCE,
    INCLUSION,
    MAX_LOST,
    MIN_GAS_RATIO,
    SLO_VERDICT_PREFIX,
)

__all__ = [
    "DEFAULT_SLOS",
    "LOAD_BOUND_INVARIANTS",
    "CapacitySearch",
    "Steadiness",
    "bootstrap_mean_interval",
    "capacity_figures",
    "find_knee",
    "judge_steadiness",
    "judge_step",
    "longer_hold",
    "past_limit",
    "per_second_gas",
    "per_second_included_gas",
    "run_search",
    "steady_included_gas",
]

#: The objectives a step is judged by when the marker's ``slo=`` names none: no lost transaction,
#: included / offered gas of at least 0.98, and inclusion p99 within 2 s.
DEFAULT_SLOS: dict[str, float] = {MAX_LOST: 0.0, MIN_GAS_RATIO: 0.98, "inclusion_p99": 2.0}

#: Invariants that load past the chain's limit breaks by design: transactions late past
#: ``inclusion_timeout`` or lost, and a pool that refuses what it cannot hold. In a search they count
#: against the step (its rate is past the limit), not against the test; every other invariant that
#: fails at any step fails the test, as in an ordinary run.
LOAD_BOUND_INVARIANTS: tuple[str, ...] = (INCLUSION, ACCEPTANCE)

#: A step's latency "climbs steeply" when its inclusion p99 is more than this many times the lowest
#: step's ...
KNEE_FACTOR = 2.0
#: ... and at least this many seconds above it (so a chain with millisecond latencies is not called
#: steep over a few milliseconds of noise).
KNEE_MIN_RISE_S = 0.25
#: Bootstrap resamples of a step's per-second samples for the interval of the maximum.
BOOTSTRAP_RESAMPLES = 2000


class CapacitySearch:
    """The ramp-then-bisection state machine: ``next_rate()``, run it, ``record(rate, passed)``, repeat.

    ``next_rate()`` is ``None`` once the search is over; ``stopped`` then says why.
    """

    def __init__(
        self,
        start: float,
        stop: float,
        *,
        max_steps: int,
        resolution: float,
        factor: float = CAPACITY_RAMP_FACTOR,
    ) -> None:
        if not (0 < start < stop):
            raise ValueError(f"a capacity search needs 0 < from < to, not {start!r}..{stop!r}")
        self.start, self.stop = start, stop
        self.max_steps, self.resolution, self.factor = max_steps, resolution, factor
        #: The highest rate that met every SLO, and the lowest that did not.
        self.highest_passed: float | None = None
        self.lowest_failed: float | None = None
        self.ramping = True
        self.steps = 0
        self.stopped = ""
        self._next: float | None = start

    def next_rate(self) -> float | None:
        if self._next is not None and self.steps >= self.max_steps:
            self._finish(f"max_steps: {self.max_steps} steps taken")
        return self._next

    def record(self, rate: float, passed: bool) -> None:
        """The step at ``rate`` met every SLO (``passed``) or not; decide the next rate."""
        self.steps += 1
        if passed:
            self.highest_passed = max(rate, self.highest_passed or rate)
        else:
            self.lowest_failed = min(rate, self.lowest_failed or rate)
        if self.ramping:
            if not passed:
                self.ramping = False  # past the limit: no higher rate is tried
                if self.highest_passed is None:
                    self._finish(f"the first step ({rate:,.0f} gas/s) did not meet the SLOs")
                    return
            elif rate >= self.stop:
                self._finish(f"the highest rate ('to', {self.stop:,.0f} gas/s) met the SLOs")
                return
            else:
                self._next = min(rate * self.factor, self.stop)
                return
        low, high = self.highest_passed, self.lowest_failed
        assert low is not None and high is not None
        if high <= low * (1 + self.resolution):
            self._finish(f"resolution: the first failing rate is within {self.resolution:.0%} of the maximum")
            return
        self._next = (low + high) / 2

    def _finish(self, why: str) -> None:
        self._next = None
        if not self.stopped:
            self.stopped = why

    def end(self, why: str) -> None:
        """End the search from outside (the time budget); the first reason given stands."""
        self._finish(why)


#: A step is clearly past the chain's limit, and stopped before its end, once the inclusion p99 of
#: the transactions included lately is more than this many times the step's ``inclusion_p99`` bound:
#: its own p99 cannot meet the bound any more, and holding the rate only grows the backlog to drain.
PAST_LIMIT_FACTOR = 2.0
#: What starts the reason a step stopped for being clearly past the limit (``RunResult.stopped_early``).
PAST_LIMIT = "capacity: clearly past the limit"


def past_limit(slo: Mapping[str, float], recent_inclusion_p99: float | None) -> str | None:
    """Why a running step should stop now (clearly past the limit), or ``None`` to go on.

    ``slo`` is the step's objectives, ``recent_inclusion_p99`` the running edges' recent figure (the
    progress heartbeat's). Without an ``inclusion_p99`` bound the step always runs to its end.
    """
    bound = slo.get("inclusion_p99")
    if bound is None or recent_inclusion_p99 is None:
        return None
    if recent_inclusion_p99 > PAST_LIMIT_FACTOR * bound:
        return (
            f"{PAST_LIMIT}: recent inclusion p99 {recent_inclusion_p99:.2f} s > "
            f"{PAST_LIMIT_FACTOR:g} x the {bound:g} s bound"
        )
    return None


#: How a step stood when it was judged (``CapacityStep.steadiness``), by :func:`judge_steadiness`,
#: or cut short by :func:`past_limit`.
STEADY = "steady"
SETTLING = "settling"
FALLING_BEHIND = "falling behind"
TOO_SHORT = "too short"
STOPPED_EARLY = "stopped early"

#: A step is steady when the mean included gas per second of its second half is within this share
#: of its first half's, and its backlog grew by no more than this share of what the second half
#: offered. A share, not a count of blocks: a chain that keeps up at 0.5 s blocks includes one
#: second's gas within a block or two of what it was offered, a few percent at the rates searched.
STEADY_TOLERANCE = 0.10
#: Whole seconds a step needs to be judged steady: one in each half.
STEADY_MIN_SECONDS = 2
#: A step not yet steady is held this many times longer on its next attempt (up to ``max_step``).
HOLD_FACTOR = 2.0


@dataclasses.dataclass(frozen=True)
class Steadiness:
    """Whether a step's rate had settled: ``state`` (:data:`STEADY`, :data:`SETTLING`,
    :data:`FALLING_BEHIND`, :data:`TOO_SHORT`), the mean included gas per second of its first and
    second halves, and how fast its backlog (offered minus included) grew over the second half, in
    gas per second (positive: the chain fell further behind)."""

    state: str
    first_half: float = math.nan
    second_half: float = math.nan
    backlog_growth: float = math.nan

    @property
    def steady(self) -> bool:
        return self.state == STEADY

    def describe(self) -> str:
        if self.state == TOO_SHORT or math.isnan(self.first_half):
            return self.state
        return (
            f"{self.state} (halves {self.first_half / 1e6:.3g} / {self.second_half / 1e6:.3g} Mgas/s, "
            f"backlog {self.backlog_growth / 1e6:+.3g} Mgas/s)"
        )


def judge_steadiness(
    included: Sequence[float], offered: Sequence[float], *, tolerance: float = STEADY_TOLERANCE
) -> Steadiness:
    """Whether a step's per-second samples show a steady rate (the same whole seconds of its sustain
    phase: ``included`` gas by the second it was included in, ``offered`` by the second it was due).

    Falling behind, first: over the second half the chain included less than it was offered, by
    more than ``tolerance`` of the offer, and over the whole step too; its backlog (and so its
    inclusion latency) grows without end, a rate past its limit however flat the included rate is.
    Else settling: the second half's mean included rate differs from the first half's by more than
    ``tolerance`` (still ramping up, or still draining what came before). Else steady. With an odd
    count the middle second is in neither half.

    A difference counts only when it is also more than twice its standard error, from the spread of
    the seconds within each half (:func:`_noise`; none with one-second halves): whole blocks land on
    either side of a second's edge, so a chain that keeps up at 0.5 s blocks can include 0.5, 1.0 and
    1.5 Mgas in three seconds of 1 Mgas/s offered. A saturated chain fills every second alike, so
    there the tolerance alone decides.
    """
    count = min(len(included), len(offered))
    if count < STEADY_MIN_SECONDS:
        return Steadiness(TOO_SHORT)
    half = count // 2
    early, late = list(included[:half]), list(included[count - half : count])
    first, second = sum(early) / half, sum(late) / half
    short = [o - i for o, i in zip(offered[:count], included[:count], strict=True)]
    offered_late = sum(offered[count - half : count]) / half
    growth = sum(short[count - half :]) / half
    behind_throughout = sum(included[:count]) < (1 - tolerance) * sum(offered[:count])
    if growth > max(tolerance * offered_late, 2 * _noise(short[count - half :])) and behind_throughout:
        state = FALLING_BEHIND
    elif abs(second - first) > max(tolerance * max(first, second), 2 * _noise(early, late)):
        state = SETTLING
    else:
        state = STEADY
    return Steadiness(state, first, second, growth)


def _noise(*groups: Sequence[float]) -> float:
    """The standard error of the difference of the ``groups``' means (one group: of its mean), from
    the variance of the seconds within each group; 0 when a group has a single second, no spread of
    its own to go by (the tolerance alone decides, and a step still settling is held longer, for
    more seconds)."""
    if any(len(group) < 2 for group in groups):
        return 0.0
    return math.sqrt(sum(statistics.variance(group) / len(group) for group in groups))


def longer_hold(steadiness: Steadiness, held: float, max_step: float) -> float | None:
    """How long to hold the step's next attempt (:data:`HOLD_FACTOR` times ``held``, at most
    ``max_step``), or ``None`` when it is judged as it is: steady, falling behind (past the limit
    either way: holding it longer only grows the backlog), or already held ``max_step``."""
    if steadiness.state not in (SETTLING, TOO_SHORT) or held >= max_step:
        return None
    return min(held * HOLD_FACTOR, max_step)


def judge_step(
    result: RunResult,
    index: int,
    *,
    slos: Mapping[str, float],
    samples: Sequence[float] = (),
    run_id: str | None = None,
    steadiness: Steadiness | None = None,
    held: float = 0.0,
    attempts: int = 1,
) -> CapacityStep:
    """One step's record from its result: its rates and latencies, and whether it met every SLO.

    The SLOs are evaluated here (``slo.evaluate_slos``) over the step's result, with its included
    rate taken from ``samples``, the step's per-second included gas (:func:`steady_included_gas`)
    when there are any. Why not the run's ``included_gas_per_sec``: that figure divides by the span
    from the first to the last block holding a sustain-phase transaction, less one block interval,
    which is right for a chain that keeps up; at saturation the N full blocks took N intervals, not
    N - 2, so on a step of a few seconds it overstates what a saturated chain included by up to two
    block intervals over the span (20 % on 4 s steps of 0.5 s blocks). Every second of a saturated
    step is full, so the per-second figure is the chain's ceiling, and the offered rate when it
    keeps up. An SLO verdict that is not ``passed`` (failed, or inconclusive: nothing measured)
    means the step did not meet it; ``inclusion`` or ``acceptance`` failed too; so did a step
    ``steadiness`` found falling behind (``steady`` failed: a growing backlog is past the limit). A
    step that never settled but kept up is judged by its SLOs over its longest hold, and says so.
    """
    from pytest_gashammer.oracle.slo import evaluate_slos

    steady = steady_included_gas(samples, result.included_gas_per_sec)
    judged = result if steady is None else dataclasses.replace(result, included_gas_per_sec=steady)
    statuses: dict[str, str] = {verdict.name: verdict.status for verdict in evaluate_slos(judged, slos)}
    for verdict in result.verdicts:
        if verdict.name in LOAD_BOUND_INVARIANTS:
            statuses[verdict.name] = verdict.status
    stopped = (result.stopped_early or "").startswith(PAST_LIMIT)
    if stopped:
        statuses["stopped_past_limit"] = "failed"  # cut short: it cannot have met the SLOs
    state = STOPPED_EARLY if stopped else steadiness.state if steadiness is not None else ""
    if state == FALLING_BEHIND:
        statuses["steady"] = "failed"
    elif state in (SETTLING, TOO_SHORT):
        statuses["steady"] = "inconclusive"  # judged by its SLOs, but on a rate that had not settled
    passed = all(
        status == "passed" if name.startswith(SLO_VERDICT_PREFIX) else status != "failed"
        for name, status in statuses.items()
    )
    inclusion = result.latency.inclusion
    return CapacityStep(
        index=index,
        offered_gas_per_sec=result.target_gas_per_sec,
        measured_offered=result.offered_gas_per_sec,
        included_gas_per_sec=judged.included_gas_per_sec,
        inclusion_p50=inclusion.p50,
        inclusion_p99=inclusion.p99,
        lost=result.lost,
        slos=statuses,
        passed=passed,
        duration=result.duration,
        run_id=run_id,
        steadiness=state,
        held=held,
        attempts=attempts,
    )


def steady_included_gas(samples: Sequence[float], run_rate: float | None = None) -> float | None:
    """A step's included rate from its per-second included gas (``None`` without samples).

    Their mean; but a block landing just outside the seconds taken (the first one left out, the
    last partial one) leaves the window a whole block short, which at 0.5 s blocks and five seconds
    is a tenth of the rate, on a chain that kept up. Such a window shows a short second among full
    ones, so the median second is taken when it is higher, up to ``run_rate``, the run's own
    included rate (over the span of the inclusions, which does not cut blocks at second edges). A
    saturated chain fills every second alike, and its median is its mean: its ceiling.
    """
    if not samples:
        return None
    mean = statistics.fmean(samples)
    if run_rate is None or not math.isfinite(run_rate):
        return mean
    return max(mean, min(statistics.median(samples), run_rate))


def find_knee(steps: Sequence[CapacityStep]) -> float | None:
    """The last offered rate before inclusion latency climbs steeply, ``None`` if it never did.

    Steps in order of rate; the baseline is the lowest-rate step's p99. The first step whose p99 is
    more than :data:`KNEE_FACTOR` times the baseline and :data:`KNEE_MIN_RISE_S` above it climbed
    steeply; the knee is the highest rate below it (``None`` when the first step already had).
    """
    measured = sorted(
        (step for step in steps if math.isfinite(step.inclusion_p99)), key=lambda s: s.offered_gas_per_sec
    )
    if len(measured) < 2:
        return None
    baseline = measured[0].inclusion_p99
    for before, step in zip(measured, measured[1:], strict=False):
        if step.inclusion_p99 > max(KNEE_FACTOR * baseline, baseline + KNEE_MIN_RISE_S):
            return before.offered_gas_per_sec
    return None


def per_second_included_gas(result: RunResult, start: float, end: float) -> list[float]:
    """The included gas of each whole second of the step's sustain phase (``start`` to ``end``, run
    clock), from the result's timeline, but its first: transactions sent in a second are included in
    the next blocks, so the first second of the phase still holds the warmup's rate. A second with
    nothing included counts as zero (a second without a block is part of the rate)."""
    return per_second_gas(result, start, end, "included_gas")


def per_second_gas(result: RunResult, start: float, end: float, field: str) -> list[float]:
    """``field`` (a timeline figure: ``included_gas``, ``offered_gas``) of each whole second of the
    sustain phase but its first, as :func:`per_second_included_gas` takes them."""
    by_second = {int(entry["second"]): float(entry.get(field, 0.0)) for entry in result.timeline}
    seconds = list(range(math.ceil(start), math.floor(end)))
    if len(seconds) > 1:
        seconds = seconds[1:]
    return [by_second.get(second, 0.0) for second in seconds]


def bootstrap_mean_interval(
    samples: Sequence[float], *, seed: int, resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95
) -> tuple[float, float] | None:
    """The percentile bootstrap interval of the mean of ``samples`` (``None`` for fewer than two).

    Seeded, so the same samples give the same interval run after run.
    """
    if len(samples) < 2:
        return None
    rng = random.Random(seed)
    n = len(samples)
    means = sorted(sum(rng.choices(samples, k=n)) / n for _ in range(resamples))
    tail = (1 - level) / 2
    low = means[max(0, math.floor(tail * resamples))]
    high = means[min(resamples - 1, math.ceil((1 - tail) * resamples) - 1)]
    return (low, high)


def capacity_figures(
    steps: Sequence[CapacityStep],
    samples: Mapping[int, Sequence[float]],
    *,
    stopped: str,
    slos: Mapping[str, float],
    seed: int = 0,
) -> CapacityFigures:
    """What the search found, from its steps and each step's per-second included gas (by step index).

    The interval of the maximum: the search brackets it between the maximum M and the lowest failing
    rate F. Each end is widened by the noise measured there: the low end is M minus the distance from
    the mean to the low end of the bootstrap interval of the M step's per-second included gas; the
    high end is F plus the distance from the mean to the high end of the F step's. Without samples an
    end is the bracket's own; without a failing step the high end is ``None``.
    """
    passed = [step for step in steps if step.passed]
    failed = [step for step in steps if not step.passed]
    best = max(passed, key=lambda s: s.offered_gas_per_sec) if passed else None
    first_failing = (
        min(
            (s for s in failed if best is None or s.offered_gas_per_sec > best.offered_gas_per_sec),
            key=lambda s: s.offered_gas_per_sec,
            default=None,
        )
        if failed
        else None
    )
    low = high = None
    if best is not None:
        low = best.offered_gas_per_sec - _spread(samples.get(best.index), seed, lower=True)
        low = max(0.0, low)
    if first_failing is not None:
        high = first_failing.offered_gas_per_sec + _spread(
            samples.get(first_failing.index), seed, lower=False
        )
    return CapacityFigures(
        max_gas_per_sec=None if best is None else best.offered_gas_per_sec,
        knee_gas_per_sec=find_knee(steps),
        max_ci_low=low,
        max_ci_high=high,
        steps=list(steps),
        stopped=stopped,
        slos=dict(slos),
        first_failing_gas_per_sec=None if first_failing is None else first_failing.offered_gas_per_sec,
    )


def _spread(samples: Sequence[float] | None, seed: int, *, lower: bool) -> float:
    """How far the bootstrap interval of the mean of ``samples`` reaches below (or above) the mean."""
    if not samples:
        return 0.0
    interval = bootstrap_mean_interval(samples, seed=seed)
    if interval is None:
        return 0.0
    mean = sum(samples) / len(samples)
    return max(0.0, mean - interval[0]) if lower else max(0.0, interval[1] - mean)


def run_search(
    search: CapacitySearch,
    run_step: Callable[[float, int], CapacityStep | None],
) -> list[CapacityStep]:
    """Drive ``search`` to its end: ``run_step(rate, index)`` runs one step and returns its record, or
    ``None`` when it could not start one (the time budget), which ends the search."""
    steps: list[CapacityStep] = []
    while (rate := search.next_rate()) is not None:
        step = run_step(rate, len(steps))
        if step is None:
            break
        steps.append(step)
        search.record(rate, step.passed)
    return steps
