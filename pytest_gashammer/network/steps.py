"""Simulation steps: an action, an expectation per node, a trigger that says when to check.

As in go-ethereum's devp2p simulation (``Simulation.Run(Step{Action, Expect, Trigger})``):
:func:`run_step` runs the action once, then checks ``expect(node)`` for a node each time the
trigger yields that node, until every node met it or ``timeout`` passed. Triggers: ``"new_head"``
(a node whose head changed), a number of milliseconds or ``"250ms"`` (every node, at that
period), or any iterable of node names. Each node is also checked once right after the action.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pytest_gashammer.chain.rpc import RpcError, TransportError
from pytest_gashammer.errors import ConfigError
from pytest_gashammer.results import NetworkEvent

if TYPE_CHECKING:
    from pytest_gashammer.network.node import NetworkNode

NEW_HEAD = "new_head"
Expectation = Callable[["NetworkNode"], bool]


@dataclasses.dataclass(frozen=True)
class Step:
    """``action(network)`` runs once (None: nothing); ``expect(node) -> bool`` is the per-node
    check; ``trigger`` says when to check (module docstring); ``nodes`` limits the nodes that must
    meet it (default: every node running when the step starts)."""

    action: Callable[[Any], Any] | None = None  # called with the network
    expect: Expectation | None = None
    trigger: str | int | float | Iterable[str] = NEW_HEAD
    timeout: float = 60.0
    nodes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.expect is None or not callable(self.expect):
            raise ConfigError("Step(expect=...) takes a function of a node that returns True once it holds")
        if self.action is not None and not callable(self.action):
            raise ConfigError("Step(action=...) takes a function of the network, or None")
        if not isinstance(self.timeout, int | float) or not 0 < self.timeout < math.inf:
            raise ConfigError(f"Step(timeout=...) is a positive number of seconds, got {self.timeout!r}")
        _trigger_period(self.trigger)  # raises on a bad trigger


@dataclasses.dataclass
class NodeOutcome:
    """One node's part of a step: whether and when it met the expectation."""

    name: str
    met: bool = False
    met_at: float | None = None  # unix seconds
    elapsed: float | None = None  # seconds from the action's start
    checks: int = 0
    last_error: str = ""


@dataclasses.dataclass
class StepResult:
    """What a step did: per node (``nodes[name].met`` / ``.elapsed``), the events during it, and
    the time from the action to the last node that met the expectation."""

    nodes: dict[str, NodeOutcome]
    events: list[NetworkEvent]
    started_at: float
    action_seconds: float
    elapsed: float | None
    action_value: Any = None
    action_error: str = ""
    timed_out: bool = False

    @property
    def passed(self) -> bool:
        return not self.action_error and all(outcome.met for outcome in self.nodes.values())

    def table(self) -> str:
        """The per-node outcome, one line per node."""
        lines = [f"{'node':<8} {'met':<5} {'after':>9} {'checks':>6}  last error"]
        for outcome in self.nodes.values():
            after = f"{outcome.elapsed:.3f} s" if outcome.elapsed is not None else "-"
            lines.append(
                f"{outcome.name:<8} {'yes' if outcome.met else 'NO':<5} {after:>9} {outcome.checks:>6}  {outcome.last_error}"
            )
        return "\n".join(lines)

    def describe(self) -> str:
        if self.action_error:
            head = f"the step's action failed: {self.action_error}"
        elif self.passed:
            head = f"every node met the expectation within {self.elapsed:.3f} s"
        else:
            missing = [name for name, outcome in self.nodes.items() if not outcome.met]
            head = f"{', '.join(missing)} did not meet the expectation" + (
                " before the timeout" if self.timed_out else ""
            )
        return f"{head}\n{self.table()}\n({len(self.events)} network events during the step)"


class StepFailed(AssertionError):
    """A step whose expectation some node did not meet; ``.result`` holds the :class:`StepResult`."""

    def __init__(self, result: StepResult) -> None:
        super().__init__(result.describe())
        self.result = result


def _trigger_period(trigger: Any) -> float | None:
    """The period (s) of a timed trigger; None for ``"new_head"`` and iterables."""
    if trigger == NEW_HEAD:
        return None
    if isinstance(trigger, bool):
        raise ConfigError(
            f"Step(trigger={trigger!r}): use 'new_head', milliseconds (250 or '250ms') or node names"
        )
    if isinstance(trigger, int | float):
        if not 0 < trigger < math.inf:
            raise ConfigError(f"Step(trigger={trigger!r}): a period is a positive number of milliseconds")
        return float(trigger) / 1000.0
    if isinstance(trigger, str):
        text = trigger.strip().lower()
        if text.endswith("ms"):
            text = text[:-2]
        try:
            return _trigger_period(float(text))
        except ValueError:
            raise ConfigError(
                f"Step(trigger={trigger!r}) is not 'new_head', milliseconds (250 or '250ms') or node names"
            ) from None
    if isinstance(trigger, Iterable):
        return None
    raise ConfigError(
        f"Step(trigger={trigger!r}): use 'new_head', milliseconds (250 or '250ms') or node names"
    )


def run_step(network: Any, step: Step, *, check: bool = True) -> StepResult:
    """Run ``step`` on ``network`` (:meth:`~pytest_gashammer.network.network.Network.run`, which
    steps are a part of: this module does not import it back)."""
    names = (
        list(step.nodes) if step.nodes is not None else [node.name for node in network.nodes if node.running]
    )
    for name in names:
        network.node(name)
    outcomes = {name: NodeOutcome(name) for name in names}
    started_at = time.time()
    subscription = network.events()
    events: list[NetworkEvent] = []
    action_value: Any = None
    action_error = ""
    try:
        action_started = time.monotonic()
        if step.action is not None:
            try:
                action_value = step.action(network)
            except Exception as exc:  # the step reports it; the test decides
                action_error = f"{type(exc).__name__}: {exc}"
        action_done = time.monotonic()
        deadline = action_done + step.timeout
        timed_out = False
        if not action_error:

            def check_node(name: str) -> None:
                outcome = outcomes[name]
                if outcome.met:
                    return
                outcome.checks += 1
                try:
                    met = bool(step.expect(network.node(name)))  # type: ignore[misc]
                except (RpcError, TransportError, OSError) as exc:
                    outcome.last_error = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
                    return
                if met:
                    outcome.met, outcome.met_at = True, time.time()
                    outcome.elapsed = time.monotonic() - action_started

            for name in names:
                check_node(name)
            for name in _triggered(step.trigger, subscription, names, deadline, events):
                if name in outcomes:
                    check_node(name)
                if all(outcome.met for outcome in outcomes.values()):
                    break
            timed_out = not all(outcome.met for outcome in outcomes.values())
    finally:
        subscription.close()
    events.extend(subscription.iterate(timeout=0))
    met_times = [outcome.elapsed for outcome in outcomes.values() if outcome.elapsed is not None]
    result = StepResult(
        nodes=outcomes,
        events=sorted(events, key=lambda event: event.at),
        started_at=started_at,
        action_seconds=action_done - action_started,
        elapsed=max(met_times) if met_times and len(met_times) == len(outcomes) else None,
        action_value=action_value,
        action_error=action_error,
        timed_out=timed_out,
    )
    if check and not result.passed:
        raise StepFailed(result)
    return result


def _triggered(
    trigger: Any, subscription: Any, names: list[str], deadline: float, events: list[NetworkEvent]
) -> Iterator[str]:
    """The node names the trigger yields until ``deadline``; every event read goes into ``events``."""
    period = _trigger_period(trigger)
    if trigger == NEW_HEAD:
        while (left := deadline - time.monotonic()) > 0:
            event = subscription.get(timeout=min(left, 1.0))
            if event is None:
                continue
            events.append(event)
            if event.kind == "head":
                yield event.node
        return
    if period is not None:
        tick = time.monotonic()
        while True:
            tick += period
            while (left := min(tick, deadline) - time.monotonic()) > 0:
                event = subscription.get(timeout=left)
                if event is not None:
                    events.append(event)
            if time.monotonic() >= deadline:
                return
            yield from names
    for name in trigger:
        if time.monotonic() >= deadline:
            return
        yield str(name)


class expect:  # noqa: N801 - read as a namespace: expect.tx_included(hash)
    """Expectations for the common cases."""

    @staticmethod
    def tx_included(tx_hash: str) -> Expectation:
        """The node has a receipt for ``tx_hash``."""

        def included(node: NetworkNode) -> bool:
            return node.rpc("eth_getTransactionReceipt", tx_hash) is not None

        included.__name__ = f"tx_included({tx_hash[:12]}...)"
        return included

    @staticmethod
    def head_at_least(number: int) -> Expectation:
        """The node's head is at block ``number`` or later."""

        def at_least(node: NetworkNode) -> bool:
            return int(node.rpc("eth_blockNumber"), 16) >= number

        return at_least

    @staticmethod
    def same_head(reference: str = "node0") -> Expectation:
        """The node's head block is the one ``reference`` (the builder by default) has at that height
        or its head: same number and hash as the reference's block at the node's head number,
        and no more than one block behind the reference's head."""

        def same(node: NetworkNode) -> bool:
            head = node.head()
            if node.network is None:
                raise ConfigError(
                    f"{node.name} belongs to no network; expect.same_head compares nodes of one"
                )
            other = node.network.node(reference)
            theirs = other.rpc("eth_getBlockByNumber", head["number"], False)
            reference_head = int(other.rpc("eth_blockNumber"), 16)
            return (
                isinstance(theirs, dict)
                and theirs.get("hash") == head["hash"]
                and reference_head - int(head["number"], 16) <= 1
            )

        return same
