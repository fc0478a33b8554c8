"""The scenario a ``@pytest.mark.gashammer`` marker describes, validated, and the plain-data plan it compiles to.

A :class:`ScenarioSpec` holds what the user wrote, checked and normalised by the table of marker
arguments in ``scenario/arguments.py``: one field per argument. :func:`compile_plan`
turns it into a :class:`ScenarioPlan`: plain data (numbers, strings, lists) that can cross a
process boundary, so an edge in another process or on another machine can run it without
receiving pickled objects.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from pytest_gashammer.errors import ConfigError, did_you_mean
from pytest_gashammer.scenario.arguments import (
    ACCEPTED,
    ARGUMENTS,
    ARRIVALS,
    DEFAULTS,
    MARKER,
    ArgumentError,
    WorkloadEntry,
    parse_capacity,
)
from pytest_gashammer.workload.rate import Phase

__all__ = [
    "ACCEPTED",
    "ARRIVALS",
    "CARRIED_ARGUMENTS",
    "COMPILED_ARGUMENTS",
    "DEFAULTS",
    "MARKER",
    "Phase",
    "ScenarioPlan",
    "ScenarioSpec",
    "WorkloadEntry",
    "auto_senders",
    "capacity_step_plan",
    "compile_plan",
    "default_seed",
    "nominal_mean_gas",
    "parse_spec",
    "plan_phases",
    "planned_seconds",
]


@dataclasses.dataclass(frozen=True)
class ScenarioSpec:
    """A validated scenario: one field per marker argument (``arguments.ARGUMENTS``, same order),
    normalised to seconds, gas/s and plain values."""

    gas_per_sec: float
    duration: float
    warmup: float
    ramp: float
    cooldown: float
    warmup_rate: float
    workload: tuple[WorkloadEntry, ...]
    seed: int | None
    arrival: str
    senders: int | None
    inclusion_timeout: float
    max_block_gap: float
    receipts: int | None  # None means every receipt
    max_in_flight: int | None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    feed: bool = True
    isolated: bool = False
    slo: tuple[tuple[str, float], ...] = ()
    invariants: tuple[str, ...] | None = None
    skip_invariants: tuple[str, ...] = ()
    max_rejected_share: float = DEFAULTS["max_rejected_share"]
    fail_inconclusive: bool = False
    fail_fast: bool = False
    #: The marker's faults, normalised: ``kind``, ``at`` (seconds or ``(phase, offset)``),
    #: ``duration``, ``params`` (see ``scenario/faults.py``).
    faults: tuple[dict[str, Any], ...] = ()
    #: The consensus driver's settings for the run (``engine={...}``), as ``(key, value)`` pairs.
    engine: tuple[tuple[str, Any], ...] = ()
    #: Where the edges send on a multi-node devnet (``network={...}``), as ``(key, value)`` pairs.
    network: tuple[tuple[str, Any], ...] = ()
    #: The capacity search's settings (``capacity={...}``), every key filled, as ``(key, value)`` pairs.
    capacity: tuple[tuple[str, Any], ...] = ()

    def replace(self, **overrides: Any) -> ScenarioSpec:
        """A new spec with ``overrides`` applied, validated as strictly as the marker."""
        raw = self.as_raw()
        if self.capacity and "capacity" in overrides and "gas_per_sec" not in overrides:
            del raw["gas_per_sec"]  # a search's rate is its 'from': the new one's, not the marker's
        raw.update(overrides)
        return parse_spec(raw)

    def as_raw(self) -> dict[str, Any]:
        """The spec as marker arguments that ``parse_spec`` turns back into an equal spec."""
        return {argument.name: argument.to_raw(getattr(self, argument.name)) for argument in ARGUMENTS}


def parse_spec(raw: Mapping[str, Any]) -> ScenarioSpec:
    """Validate marker keyword arguments. Raises :class:`ArgumentError` naming the argument and the fix."""
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ArgumentError(
            f"unknown argument {unknown[0]!r}{did_you_mean(unknown[0], DEFAULTS)}; accepted: {', '.join(DEFAULTS)}",
            unknown[0],
        )
    values = {**DEFAULTS, **raw}
    capacity = raw.get("capacity")
    if capacity is not None:
        # A capacity search starts at ``from``: that is the plan's rate, so gas_per_sec may be left out.
        # Its own errors come first: a bad capacity= is what to fix, not the gas_per_sec it implies.
        start = dict(_parse_argument(parse_capacity, capacity, "capacity"))["from"]
        if values["gas_per_sec"] is None:
            values["gas_per_sec"] = start
        elif _rate_or_none(values["gas_per_sec"]) != start:
            raise ArgumentError(
                f"gas_per_sec={values['gas_per_sec']!r} and capacity['from']={dict(capacity)['from']!r} differ: "
                "a capacity search starts at 'from'; leave gas_per_sec out",
                "gas_per_sec",
            )
    spec = ScenarioSpec(
        **{
            argument.name: _parse_argument(argument.parse, values[argument.name], argument.name)
            for argument in ARGUMENTS
        }
    )
    if spec.faults:
        from pytest_gashammer.scenario.faults import place_faults

        # A fault past the run's end fails here, at collection.
        _parse_argument(lambda faults, _: place_faults(faults, plan_phases(spec)), spec.faults, "faults")
    return spec


def _parse_argument(parse: Callable[[Any, str], Any], value: Any, name: str) -> Any:
    """``parse(value, name)``, its error tagged with the argument it is about."""
    try:
        return parse(value, name)
    except ArgumentError:
        raise
    except ConfigError as exc:
        error = ArgumentError(str(exc), name)
    raise error


def _rate_or_none(value: object) -> float | None:
    from pytest_gashammer.scenario.units import parse_gas_rate

    try:
        return parse_gas_rate(value, what="gas_per_sec")
    except ConfigError:
        return None  # the argument's own parser says what is wrong with it


def default_seed(nodeid: str) -> int:
    """A stable seed per test id, so a test replays the same transactions run after run."""
    return zlib.crc32(nodeid.encode())


# ----------------------------------------------------------------------------------------------
# the plan


@dataclasses.dataclass(frozen=True)
class ScenarioPlan:
    """What an edge runs: plain data only. ``to_dict`` / ``from_dict`` round-trip through JSON."""

    name: str
    seed: int
    target_gas_per_sec: float
    phases: tuple[Phase, ...]
    arrival: str
    workload: tuple[WorkloadEntry, ...]
    senders: int
    inclusion_timeout: float
    receipts: int | None
    max_in_flight: int | None
    duration_scale: float = 1.0
    max_block_gap: float = 10.0
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    feed: bool = True
    isolated: bool = False
    nodeid: str = ""  # the pytest test that asked for the run, for telemetry and reports
    slo: tuple[tuple[str, float], ...] = ()
    invariants: tuple[str, ...] | None = None
    skip_invariants: tuple[str, ...] = ()
    max_rejected_share: float = DEFAULTS["max_rejected_share"]
    fail_inconclusive: bool = False
    fail_fast: bool = False
    #: The faults on the run clock: ``index``, ``kind``, ``start``, ``end`` (seconds), ``params``.
    faults: tuple[dict[str, Any], ...] = ()
    #: The consensus driver's settings for the run: ``(key, value)`` pairs of ``engine={...}``.
    engine: tuple[tuple[str, Any], ...] = ()
    #: Where the edges send on a multi-node devnet: ``(key, value)`` pairs of ``network={...}``.
    network: tuple[tuple[str, Any], ...] = ()
    #: The capacity search's settings (``capacity={...}``): ``(key, value)`` pairs, every key filled.
    #: A plan with them is a search; the hive runs it as steps (``capacity_step_plan``).
    capacity: tuple[tuple[str, Any], ...] = ()
    #: On one step of a capacity search: its index (0 first) and the search's telemetry run id.
    capacity_step: int | None = None
    capacity_search: str | None = None

    @property
    def sending_time(self) -> float:
        return self.phases[-1].end if self.phases else 0.0

    @property
    def sustain(self) -> Phase:
        return next(phase for phase in self.phases if phase.name == "sustain")

    def gas_rate_at(self, t: float) -> float:
        for phase in self.phases:
            if phase.start <= t < phase.end:
                if phase.length <= 0:
                    return phase.gas_to
                return phase.gas_from + (phase.gas_to - phase.gas_from) * (t - phase.start) / phase.length
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["phases"] = [dataclasses.asdict(phase) for phase in self.phases]
        data["workload"] = [list(entry) for entry in self.workload]
        data["slo"] = [list(entry) for entry in self.slo]
        data["invariants"] = None if self.invariants is None else list(self.invariants)
        data["skip_invariants"] = list(self.skip_invariants)
        data["faults"] = [dict(fault) for fault in self.faults]
        data["engine"] = [list(entry) for entry in self.engine]
        data["network"] = [list(entry) for entry in self.network]
        data["capacity"] = [list(entry) for entry in self.capacity]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioPlan:
        fields = dict(data)
        fields["phases"] = tuple(Phase(**phase) for phase in fields["phases"])
        fields["workload"] = tuple(
            (str(name), float(weight), dict(params)) for name, weight, params in fields["workload"]
        )
        fields["slo"] = tuple((str(name), float(bound)) for name, bound in fields.get("slo") or ())
        if fields.get("invariants") is not None:
            fields["invariants"] = tuple(fields["invariants"])
        fields["skip_invariants"] = tuple(fields.get("skip_invariants") or ())
        fields["faults"] = tuple(dict(fault) for fault in fields.get("faults") or ())
        fields["engine"] = tuple((str(key), value) for key, value in fields.get("engine") or ())
        fields["network"] = tuple((str(key), value) for key, value in fields.get("network") or ())
        fields["capacity"] = tuple((str(key), value) for key, value in fields.get("capacity") or ())
        return cls(**fields)

    @property
    def is_capacity_search(self) -> bool:
        """A whole capacity search (not one of its steps): the hive runs it step by step."""
        return bool(self.capacity) and self.capacity_step is None


#: Marker arguments the plan holds in another form: the rate and the phase lengths become
#: ``target_gas_per_sec`` and ``phases``, ``seed`` and ``senders`` are resolved to numbers, and
#: ``faults`` are placed on the run clock.
COMPILED_ARGUMENTS = frozenset(
    {"gas_per_sec", "duration", "warmup", "ramp", "cooldown", "warmup_rate", "seed", "senders", "faults"}
)
#: Marker arguments the plan carries as the spec holds them, each in a field of the same name.
CARRIED_ARGUMENTS = tuple(argument.name for argument in ARGUMENTS if argument.name not in COMPILED_ARGUMENTS)


def auto_senders(plan_gas_per_sec: float, mean_gas_per_tx: float) -> int:
    """Enough senders that each keeps a modest number of transactions in the pool at once.

    Pools cap pending transactions per sender (geth-style pools: 16 executable slots per account),
    so spreading ~40 tx/s per sender keeps every sender well under that at 250 ms blocks.
    """
    tx_per_sec = plan_gas_per_sec / max(mean_gas_per_tx, 1.0)
    return max(8, min(1024, math.ceil(tx_per_sec / 40)))


def nominal_mean_gas(workload: tuple[WorkloadEntry, ...]) -> float:
    """Mean gas per transaction when each template gets its gas share: ``1 / sum(share / gas)``."""
    from pytest_gashammer.workload.registry import resolve_template

    return 1.0 / sum(
        share / resolve_template(name).nominal_gas_for(params) for name, share, params in workload
    )


def plan_phases(spec: ScenarioSpec, duration_scale: float = 1.0) -> tuple[Phase, ...]:
    """The phases of ``spec`` laid out on a timeline starting at 0, every length scaled."""
    if not (duration_scale > 0 and math.isfinite(duration_scale)):
        raise ConfigError(
            f"--gashammer-duration-scale={duration_scale!r} must be a positive number, e.g. 0.1"
        )
    target = spec.gas_per_sec
    phases: list[Phase] = []
    clock = 0.0

    def add(phase_name: str, length: float, gas_from: float, gas_to: float) -> None:
        nonlocal clock
        if length > 0:
            phases.append(Phase(phase_name, clock, clock + length, gas_from, gas_to))
            clock += length

    add("warmup", spec.warmup * duration_scale, target * spec.warmup_rate, target * spec.warmup_rate)
    add("ramp", spec.ramp * duration_scale, target * spec.warmup_rate if spec.warmup else 0.0, target)
    # A capacity search's steps hold their rate for ``step`` seconds: its sustain phase.
    sustain = dict(spec.capacity)["step"] if spec.capacity else spec.duration
    add("sustain", max(sustain * duration_scale, 0.05), target, target)
    add("cooldown", spec.cooldown * duration_scale, target, 0.0)
    return tuple(phases)


def planned_seconds(spec: ScenarioSpec, duration_scale: float = 1.0) -> float:
    """How long a run of ``spec`` sends: the end of its last phase (what ``ScenarioPlan.sending_time`` says)."""
    phases = plan_phases(spec, duration_scale)
    return phases[-1].end if phases else 0.0


def compile_plan(spec: ScenarioSpec, *, name: str, seed: int, duration_scale: float = 1.0) -> ScenarioPlan:
    """Lay the phases out on a timeline starting at 0 and fix every value an edge needs."""
    phases = plan_phases(spec, duration_scale)
    target = spec.gas_per_sec
    # A capacity search's senders are enough for the highest rate it may offer (funded once, topped up).
    busiest = dict(spec.capacity)["to"] if spec.capacity else target
    senders = (
        spec.senders if spec.senders is not None else auto_senders(busiest, nominal_mean_gas(spec.workload))
    )
    carried = {field: getattr(spec, field) for field in CARRIED_ARGUMENTS}
    from pytest_gashammer.scenario.faults import place_faults

    return ScenarioPlan(
        **carried,
        faults=place_faults(spec.faults, phases, duration_scale),
        name=name,
        seed=seed,
        senders=senders,
        target_gas_per_sec=target,
        phases=phases,
        duration_scale=duration_scale,
    )


def capacity_step_plan(
    plan: ScenarioPlan,
    gas_per_sec: float,
    *,
    index: int,
    search: str | None,
    slo: Mapping[str, float],
    hold: float | None = None,
) -> ScenarioPlan:
    """Step ``index`` of the capacity search ``plan``: the same scenario offered at ``gas_per_sec``.

    Every phase's rate is a multiple of the target (warmup at ``warmup_rate`` x target, the ramp
    towards it), so scaling them by ``gas_per_sec / target`` lays the step out as the marker would with
    ``gas_per_sec`` given; faults stay where they were placed. ``slo`` are the objectives the step is
    judged by (the marker's, or the search's defaults). ``hold``: the sustain phase's length when the
    step is held longer than ``step`` (it was not steady yet); the phases after it move as much later.
    """
    scale = gas_per_sec / plan.target_gas_per_sec
    longer = 0.0 if hold is None else hold - plan.sustain.length
    phases = []
    for phase in plan.phases:
        phase = dataclasses.replace(phase, gas_from=phase.gas_from * scale, gas_to=phase.gas_to * scale)
        if phase.name == "sustain":
            phase = dataclasses.replace(phase, end=phase.end + longer)
        elif phase.start >= plan.sustain.end:
            phase = dataclasses.replace(phase, start=phase.start + longer, end=phase.end + longer)
        phases.append(phase)
    return dataclasses.replace(
        plan,
        target_gas_per_sec=gas_per_sec,
        phases=tuple(phases),
        slo=tuple(slo.items()),
        capacity_step=index,
        capacity_search=search,
    )
