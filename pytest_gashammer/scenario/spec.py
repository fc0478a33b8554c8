"""The scenario a ``@pytest.mark.gashammer`` marker describes, validated, and the plain-data plan it compiles to.

A :class:`ScenarioSpec` holds what the user wrote, checked and normalised. :func:`compile_plan`
turns it into a :class:`ScenarioPlan`: plain data (numbers, strings, lists) that can cross a
process boundary, so an edge in another process or on another machine can run it without
receiving pickled objects.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Mapping
from typing import Any

from pytest_gashammer.errors import ConfigError
from pytest_gashammer.scenario.units import parse_duration, parse_gas_rate
from pytest_gashammer.workload.rate import Phase

MARKER = "gashammer"

ARRIVALS = ("constant", "poisson")

DEFAULTS: dict[str, Any] = {
    "gas_per_sec": None,
    "duration": "10s",
    "warmup": "1s",
    "ramp": "0s",
    "cooldown": "0s",
    "warmup_rate": 0.1,
    "workload": {"transfer": 1.0},
    "seed": None,
    "arrival": "constant",
    "senders": None,
    "inclusion_timeout": "30s",
    "receipts": 2000,
    "max_in_flight": None,
    "max_fee_per_gas": None,
    "max_priority_fee_per_gas": None,
    "feed": True,
    "isolated": False,
    "slo": None,
    "invariants": None,
    "skip_invariants": (),
    "fail_inconclusive": False,
    "fail_fast": False,
}

ACCEPTED = {
    "gas_per_sec": "a positive gas rate such as 2_000_000 or '2M' (required)",
    "duration": "the sustain phase length: seconds or a string like '30s', '2m'",
    "warmup": "a duration run at warmup_rate x the target before the ramp (default '1s')",
    "ramp": "a duration over which the rate climbs linearly to the target (default '0s')",
    "cooldown": "a duration over which the rate falls linearly to zero (default '0s')",
    "warmup_rate": "a fraction of the target in (0, 1] used during warmup (default 0.1)",
    "workload": (
        "a dict of template name or 'module:Class' to its gas share, or to {'share': x, <param>: value}, "
        "e.g. {'transfer': 0.5, 'storage': {'share': 0.5, 'slots': 8}}"
    ),
    "seed": "an integer >= 0 (default: --gashammer-seed, else derived from the test id)",
    "arrival": "'constant' or 'poisson'",
    "senders": "a positive number of sender accounts (default: scaled to the rate)",
    "inclusion_timeout": "how long an accepted transaction may take to be included (default '30s')",
    "receipts": "how many receipts to check, spread evenly over the run (default 2000), 'all', or 0 for none",
    "max_in_flight": "a positive cap on accepted-but-not-included transactions (default: unbounded)",
    "max_fee_per_gas": "fee cap in wei (default: twice the base fee at setup plus the tip)",
    "max_priority_fee_per_gas": "tip in wei (default: the node's eth_maxPriorityFeePerGas, else 0)",
    "feed": "True to follow the sequencer feed when the devnet has one (default), False to skip it",
    "isolated": "True to run on the calling process alone against a devnet of its own (parallel-safe)",
    "slo": "a dict of objectives, e.g. {'inclusion_p99': '2s', 'feed_p99': '500ms', 'min_gas_ratio': 0.95}",
    "invariants": "a list of the invariant names to check (default: all)",
    "skip_invariants": "a list of invariant names not to check",
    "fail_inconclusive": "True to fail the test when a verdict is inconclusive (default False)",
    "fail_fast": "True to stop the run as soon as a hard invariant breaks (what was collected is kept)",
}


@dataclasses.dataclass(frozen=True)
class ScenarioSpec:
    """A validated scenario: every field normalised to seconds, gas/s and plain values."""

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
    receipts: int | None  # None means every receipt
    max_in_flight: int | None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    feed: bool = True
    isolated: bool = False
    slo: tuple[tuple[str, float], ...] = ()
    invariants: tuple[str, ...] | None = None
    skip_invariants: tuple[str, ...] = ()
    fail_inconclusive: bool = False
    fail_fast: bool = False

    def replace(self, **overrides: Any) -> ScenarioSpec:
        """A new spec with ``overrides`` applied, validated as strictly as the marker."""
        raw = self.as_raw()
        raw.update(overrides)
        return parse_spec(raw)

    def as_raw(self) -> dict[str, Any]:
        raw = dataclasses.asdict(self)
        raw["workload"] = {name: {"share": share, **params} for name, share, params in self.workload}
        raw["receipts"] = "all" if self.receipts is None else self.receipts
        raw["slo"] = dict(self.slo) or None
        return raw


def _positive_int(value: object, *, what: str, allow_zero: bool = False) -> int:
    lowest = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ConfigError(f"{what}={value!r} must be an integer >= {lowest}; {ACCEPTED[what.split('=')[0]]}")
    return value


def parse_spec(raw: Mapping[str, Any]) -> ScenarioSpec:
    """Validate marker keyword arguments. Raises :class:`ConfigError` naming the argument and the fix."""
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown argument {unknown[0]!r} in @pytest.mark.{MARKER}; accepted: {', '.join(DEFAULTS)}"
        )
    values = {**DEFAULTS, **raw}
    if values["gas_per_sec"] is None:
        raise ConfigError(f"@pytest.mark.{MARKER} needs gas_per_sec=..., {ACCEPTED['gas_per_sec']}")
    gas_per_sec = parse_gas_rate(values["gas_per_sec"], what="gas_per_sec")
    duration = parse_duration(values["duration"], what="duration")
    if duration <= 0:
        raise ConfigError(f"duration={values['duration']!r} must be longer than zero; e.g. duration='30s'")
    warmup = parse_duration(values["warmup"], what="warmup")
    ramp = parse_duration(values["ramp"], what="ramp")
    cooldown = parse_duration(values["cooldown"], what="cooldown")
    inclusion_timeout = parse_duration(values["inclusion_timeout"], what="inclusion_timeout")
    if inclusion_timeout <= 0:
        raise ConfigError(f"inclusion_timeout={values['inclusion_timeout']!r} must be longer than zero")

    warmup_rate = values["warmup_rate"]
    if (
        isinstance(warmup_rate, bool)
        or not isinstance(warmup_rate, int | float)
        or not (0 < warmup_rate <= 1)
        or not math.isfinite(warmup_rate)
    ):
        raise ConfigError(f"warmup_rate={warmup_rate!r} must be a number in (0, 1], e.g. warmup_rate=0.1")

    workload = _parse_workload(values["workload"])

    seed = values["seed"]
    if seed is not None:
        seed = _positive_int(seed, what="seed", allow_zero=True)

    arrival = values["arrival"]
    if arrival not in ARRIVALS:
        raise ConfigError(
            f"arrival={arrival!r} is not supported; use one of {', '.join(map(repr, ARRIVALS))}"
        )

    senders = values["senders"]
    if senders is not None:
        senders = _positive_int(senders, what="senders")

    receipts_raw = values["receipts"]
    receipts: int | None
    if receipts_raw == "all":
        receipts = None
    else:
        receipts = _positive_int(receipts_raw, what="receipts", allow_zero=True)

    max_in_flight = values["max_in_flight"]
    if max_in_flight is not None:
        max_in_flight = _positive_int(max_in_flight, what="max_in_flight")

    fees = {}
    for fee_name in ("max_fee_per_gas", "max_priority_fee_per_gas"):
        fee = values[fee_name]
        fees[fee_name] = None if fee is None else _positive_int(fee, what=fee_name, allow_zero=True)

    for flag in ("feed", "isolated", "fail_inconclusive", "fail_fast"):
        if not isinstance(values[flag], bool):
            raise ConfigError(f"{flag}={values[flag]!r} must be True or False")

    return ScenarioSpec(
        **fees,
        feed=values["feed"],
        isolated=values["isolated"],
        fail_inconclusive=values["fail_inconclusive"],
        fail_fast=values["fail_fast"],
        slo=tuple(_parse_slo(values["slo"]).items()),
        invariants=_invariant_names(values["invariants"], "invariants"),
        skip_invariants=_invariant_names(values["skip_invariants"], "skip_invariants") or (),
        gas_per_sec=gas_per_sec,
        duration=duration,
        warmup=warmup,
        ramp=ramp,
        cooldown=cooldown,
        warmup_rate=float(warmup_rate),
        workload=workload,
        seed=seed,
        arrival=arrival,
        senders=senders,
        inclusion_timeout=inclusion_timeout,
        receipts=receipts,
        max_in_flight=max_in_flight,
    )


def _parse_slo(raw: object) -> dict[str, float]:
    from pytest_gashammer.oracle.slo import parse_slo

    return parse_slo(raw)


def _invariant_names(raw: object, what: str) -> tuple[str, ...] | None:
    from pytest_gashammer.oracle.invariants import INVARIANTS

    if raw is None:
        return None
    if isinstance(raw, str) or not isinstance(raw, list | tuple | set | frozenset):
        raise ConfigError(f"{what}={raw!r} must be a list of invariant names, e.g. {what}=['inclusion']")
    for name in raw:
        if name not in INVARIANTS:
            raise ConfigError(f"{what}: unknown invariant {name!r}; accepted: {', '.join(INVARIANTS)}")
    return tuple(raw)


WorkloadEntry = tuple[str, float, dict[str, Any]]


def _parse_workload(value: object) -> tuple[WorkloadEntry, ...]:
    from pytest_gashammer.workload.registry import resolve_template

    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"workload={value!r} must be a non-empty dict, {ACCEPTED['workload']}")
    entries: list[WorkloadEntry] = []
    for name, entry in value.items():
        if not isinstance(name, str):
            raise ConfigError(f"workload key {name!r} must be a template name string, e.g. 'transfer'")
        template = resolve_template(name)
        if isinstance(entry, Mapping):
            raw_params = dict(entry)
            if "share" not in raw_params:
                raise ConfigError(
                    f"workload[{name!r}] needs a 'share' (its part of the gas rate), e.g. {{'share': 1.0}}"
                )
            weight = raw_params.pop("share")
        else:
            weight, raw_params = entry, {}
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not (weight > 0)
            or not math.isfinite(weight)
        ):
            raise ConfigError(
                f"workload[{name!r}] share {weight!r} must be a positive number (its part of the gas rate)"
            )
        entries.append((name, float(weight), template.check_params(raw_params, where=f"workload[{name!r}]")))
    total = sum(weight for _, weight, _ in entries)
    return tuple((name, weight / total, params) for name, weight, params in entries)


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
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    feed: bool = True
    isolated: bool = False
    nodeid: str = ""  # the pytest test that asked for the run, for telemetry and reports
    slo: tuple[tuple[str, float], ...] = ()
    invariants: tuple[str, ...] | None = None
    skip_invariants: tuple[str, ...] = ()
    fail_inconclusive: bool = False
    fail_fast: bool = False

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
        return cls(**fields)


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


def compile_plan(spec: ScenarioSpec, *, name: str, seed: int, duration_scale: float = 1.0) -> ScenarioPlan:
    """Lay the phases out on a timeline starting at 0 and fix every value an edge needs."""
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
    add("sustain", max(spec.duration * duration_scale, 0.05), target, target)
    add("cooldown", spec.cooldown * duration_scale, target, 0.0)

    senders = (
        spec.senders if spec.senders is not None else auto_senders(target, nominal_mean_gas(spec.workload))
    )
    return ScenarioPlan(
        name=name,
        seed=seed,
        target_gas_per_sec=target,
        phases=tuple(phases),
        arrival=spec.arrival,
        workload=spec.workload,
        senders=senders,
        inclusion_timeout=spec.inclusion_timeout,
        receipts=spec.receipts,
        max_in_flight=spec.max_in_flight,
        duration_scale=duration_scale,
        max_fee_per_gas=spec.max_fee_per_gas,
        max_priority_fee_per_gas=spec.max_priority_fee_per_gas,
        feed=spec.feed,
        isolated=spec.isolated,
        slo=spec.slo,
        invariants=spec.invariants,
        skip_invariants=spec.skip_invariants,
        fail_inconclusive=spec.fail_inconclusive,
        fail_fast=spec.fail_fast,
    )
