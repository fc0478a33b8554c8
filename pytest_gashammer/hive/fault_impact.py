"""Each fault's impact on a run: the edges' fault tallies and flows, read against when it was active.

The rules (docs/faults.md says them to users):

- Windows: ``before`` is the window of the fault's length (at least ``FAULT_WINDOW_MIN_S``) that
  ends at its begin; ``during`` runs from its begin to its end (an instant fault: one second);
  ``after`` the same length from there. Latencies are by intended send time, rates by inclusion time.
- Recovered: the first moment after the fault's end from which the backlog (transactions intended
  and not yet included, counting only those that were included in the end) stays at or below the
  highest it was before the fault for a whole second, and the gas included over the next
  :data:`RATE_WINDOW_S` reaches 95 % of the target (one block of slack: half a second of target gas).
  A fault that ends less than that before the plan stops sending is judged by the backlog alone; a
  backlog that drains only because the plan stopped sending is no recovery (``None``).
- Delayed: in flight while it was active and slower than the before window's p99.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pytest_gashammer.fault.timeline import FaultRecord
from pytest_gashammer.results import FaultImpact
from pytest_gashammer.scenario.spec import ScenarioPlan
from pytest_gashammer.telemetry.fault_tally import FLOW_SLOT_S, FaultTally, Flow, during_end
from pytest_gashammer.telemetry.records import EdgeReport

#: How long the included gas rate is measured over when deciding a recovery.
RATE_WINDOW_S = 4.0
#: The share of the target rate a recovered chain includes again.
RECOVERED_RATE_SHARE = 0.95
#: Gas slack for block boundaries, in seconds of target gas.
RATE_SLACK_S = 0.5
#: How long the backlog must stay drained to count.
DRAINED_FOR_S = 1.0


def fault_impacts(
    plan: ScenarioPlan, reports: Sequence[EdgeReport], records: Sequence[FaultRecord]
) -> list[FaultImpact]:
    """One :class:`FaultImpact` per fault the plan holds, in the marker's order."""
    if not plan.faults:
        return []
    flow = Flow()
    tallies: dict[int, FaultTally] = {}
    for report in reports:
        digest = report.digest
        flow.merge(digest.flow)
        for index, tally in enumerate(getattr(digest, "faults", ())):
            merged = tallies.get(index)
            if merged is None:
                tallies[index] = FaultTally.from_data(tally.to_data())
            else:
                merged.merge(tally)
    by_index = {record.index: record for record in records}
    times, backlog, included_gas = flow.series()
    observed_end = max(float(times[-1]) + FLOW_SLOT_S if times.size else 0.0, plan.sending_time)
    impacts = []
    for step in plan.faults:
        index = int(step["index"])
        record = by_index.get(index)
        tally = tallies.get(index) or FaultTally(step["start"], step["end"])
        started = record.started_at if record is not None and record.started_at is not None else None
        ended = record.ended_at if record is not None and record.ended_at is not None else None
        begin = started if started is not None else float(step["start"])
        finish = ended if ended is not None else float(step["end"])
        stop = during_end(begin, finish)
        window = max(stop - begin, tally.window)
        before_p99 = tally.before.stats().p99 if tally.before.count else math.nan
        impacts.append(
            FaultImpact(
                index=index,
                kind=str(step["kind"]),
                params=dict(step["params"]),
                planned_at=float(step["start"]),
                planned_duration=float(step["end"]) - float(step["start"]),
                started_at=started,
                ended_at=ended,
                started_unix_ns=record.started_unix_ns if record is not None else None,
                ended_unix_ns=record.ended_unix_ns if record is not None else None,
                included_gas_per_sec_before=_gas_rate(
                    times, included_gas, begin - window, begin, observed_end
                ),
                included_gas_per_sec_during=_gas_rate(times, included_gas, begin, stop, observed_end),
                included_gas_per_sec_after=_gas_rate(times, included_gas, stop, stop + window, observed_end),
                inclusion_p99_before=before_p99,
                inclusion_p99_during=tally.during.stats().p99 if tally.during.count else math.nan,
                inclusion_p99_after=tally.after.stats().p99 if tally.after.count else math.nan,
                recovered_after_s=(
                    None
                    if started is None
                    else _recovered_after(plan, times, backlog, included_gas, begin - window, begin, finish)
                ),
                delayed=tally.delayed_beyond(before_p99),
                lost=tally.lost,
                lost_examples=list(tally.lost_first.items),
                effect=dict(record.effect) if record is not None else {},
                error=(
                    record.error
                    if record is not None
                    else "the fault was never applied (the run ended first)"
                ),
            )
        )
    return impacts


def _gas_rate(times: np.ndarray, gas: np.ndarray, low: float, high: float, observed_end: float) -> float:
    """Included gas per second over ``[low, high)``; nan when the run did not cover it (before its
    start, after the later of its last inclusion and the plan's end). Slots without an inclusion
    count as zero gas: a chain that includes nothing has a rate of 0."""
    if high <= low or low < -1e-9 or high > observed_end + 1e-9:
        return math.nan
    # Whole slots inside the window; the same slots for the gas and for the time it covers.
    first = math.ceil(low / FLOW_SLOT_S - 1e-9)
    last = math.floor(high / FLOW_SLOT_S + 1e-9)
    if last <= first:
        return math.nan
    slots = np.round(times / FLOW_SLOT_S).astype(np.int64)
    chosen = (slots >= first) & (slots < last)
    return float(gas[chosen].sum()) / ((last - first) * FLOW_SLOT_S)


def _target_gas(plan: ScenarioPlan, low: float, high: float) -> float:
    """The plan's gas over ``[low, high)`` (a sum over quarter-second steps)."""
    steps = np.arange(low, high, FLOW_SLOT_S / 4)
    return float(sum(plan.gas_rate_at(float(t)) for t in steps)) * FLOW_SLOT_S / 4


def _recovered_after(
    plan: ScenarioPlan,
    times: np.ndarray,
    backlog: np.ndarray,
    included_gas: np.ndarray,
    before_low: float,
    begin: float,
    finish: float,
) -> float | None:
    if not times.size:
        return None
    before = (times >= before_low) & (times < begin)
    # The backlog's usual high: a block's worth of transactions just before each block.
    usual = float(backlog[before].max()) if before.any() else 0.0
    limit = usual * 1.1 + 1.0
    hold = max(1, round(DRAINED_FOR_S / FLOW_SLOT_S))
    candidates = np.flatnonzero(times + FLOW_SLOT_S >= finish)
    sending_end = plan.sending_time
    for position in candidates.tolist():
        at = float(times[position])
        tail = backlog[position : position + hold]
        if tail.size < hold and at + FLOW_SLOT_S * tail.size < sending_end:
            return None  # the run's flow ends before a whole second of drained backlog
        if (tail > limit).any():
            continue
        if at + RATE_WINDOW_S <= sending_end:
            window = (times >= at) & (times < at + RATE_WINDOW_S)
            target = _target_gas(plan, at, at + RATE_WINDOW_S)
            slack = RATE_SLACK_S * plan.gas_rate_at(at)
            if float(included_gas[window].sum()) < RECOVERED_RATE_SHARE * target - slack:
                continue
        elif finish + RATE_WINDOW_S <= sending_end:
            # The chain had the load long enough after the fault to show it kept up, and did not:
            # a backlog drained only once the plan stopped sending is no recovery.
            return None
        return max(0.0, at - finish)
    return None
