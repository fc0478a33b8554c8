"""Every time limit of a run, in one place: the hives, the worker side and their tests read them here."""

from __future__ import annotations

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


class TimedPlan(Protocol):
    @property
    def sending_time(self) -> float: ...

    @property
    def inclusion_timeout(self) -> float: ...


def edge_budget(plan: TimedPlan) -> float:
    """From an edge's start to its report: setup, sending, inclusion and a stop's grace."""
    return SETUP_BUDGET + plan.sending_time + plan.inclusion_timeout + STOP_GRACE


def drain_budget(plan: TimedPlan) -> float:
    """From the hive's start signal until it stops edges that have not reported."""
    return plan.sending_time + plan.inclusion_timeout + DRAIN_SLACK


def answer_timeout(plan: TimedPlan) -> float:
    """How long a caller waits for a distributed run's result: queue, setup, arming and the run."""
    return edge_budget(plan) + ARM_TIMEOUT + QUEUE_ALLOWANCE
