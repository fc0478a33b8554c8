"""Every time limit of a run, in one place: the hives, the worker side and their tests read them here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

#: Funding, template setup and calibration, before the run's clock starts.
SETUP_BUDGET = 120.0
#: How long a stopped edge has to wrap up and report.
STOP_GRACE = 30.0
#: How long the hive waits for every edge to report armed.
ARM_TIMEOUT = 180.0
#: How long an armed edge waits for the hive's start signal.
ARM_TO_GO_TIMEOUT = 120.0
#: What the hive allows past the plan's sending and inclusion time before it stops the edges.
DRAIN_SLACK = 120.0
#: A run may wait behind others in the hive's queue: allow for a long queue, never forever.
QUEUE_ALLOWANCE = 1800.0
#: Edges send a heartbeat this often; silence for HEARTBEAT_TIMEOUT marks an edge lost.
HEARTBEAT_SECONDS = 0.5
HEARTBEAT_TIMEOUT = 5.0
#: How long a worker waits for the hive to hand it the session's devnet (it may start one first).
DEVNET_TIMEOUT = 180.0
#: Where the target has an L1: how long, after the edges are done, the hive waits for the run's last
#: L2 block to be posted, when the plan sets no batch-posting SLO ...
L1_POST_WAIT = 30.0
#: ... and what it allows past the plan's ``batch_lag_max`` (else ``batch_lag_p99``) when it does.
L1_POST_MARGIN = 5.0


class TimedPlan(Protocol):
    @property
    def sending_time(self) -> float: ...

    @property
    def inclusion_timeout(self) -> float: ...

    @property
    def slo(self) -> Iterable[tuple[str, float]]: ...


def l1_post_wait(slo: Iterable[tuple[str, float]]) -> float:
    """How long the hive waits for a run's last L2 block to be posted on the L1 (see L1_POST_WAIT)."""
    bounds = dict(slo)
    for objective in ("batch_lag_max", "batch_lag_p99"):
        if objective in bounds:
            return float(bounds[objective]) + L1_POST_MARGIN
    return L1_POST_WAIT


def edge_budget(plan: TimedPlan) -> float:
    """From an edge's start to its report: setup, sending, inclusion and a stop's grace."""
    return SETUP_BUDGET + plan.sending_time + plan.inclusion_timeout + STOP_GRACE


def drain_budget(plan: TimedPlan) -> float:
    """From the hive's start signal until it stops edges that have not reported."""
    return plan.sending_time + plan.inclusion_timeout + DRAIN_SLACK


def search_budget(plan: TimedPlan) -> float:
    """A capacity search (``capacity={...}``): its ``max_time``, plus one step that started just
    before it and took its whole budget; a plain run: ``edge_budget``."""
    capacity = dict(getattr(plan, "capacity", ()) or ())
    if not capacity or getattr(plan, "capacity_step", None) is not None:
        return edge_budget(plan)
    return float(capacity["max_time"]) + edge_budget(plan) + ARM_TIMEOUT + l1_post_wait(plan.slo)


def answer_timeout(plan: TimedPlan) -> float:
    """How long a caller waits for a distributed run's result: queue, setup, arming and the run (a
    capacity search: all of its steps)."""
    return search_budget(plan) + ARM_TIMEOUT + QUEUE_ALLOWANCE + l1_post_wait(plan.slo)
