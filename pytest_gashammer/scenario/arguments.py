"""The ``@pytest.mark.gashammer`` arguments, declared once: name, default, parser and help.

:data:`ARGUMENTS` drives everything that lists them: the defaults, the accepted names in errors
and in ``pytest --markers``, validation (:func:`pytest_gashammer.scenario.spec.parse_spec` is a
loop over this table), and the marker table in docs/user-guide.md, which
``tests/unit/test_marker_arguments.py`` holds equal to it.

A parser takes the value as the user wrote it and the argument's name, and returns the value
normalised (seconds, gas/s, tuples), or raises a one-line :class:`ConfigError` naming the argument
and the fix.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from pytest_gashammer import vocabulary
from pytest_gashammer.errors import ConfigError, did_you_mean
from pytest_gashammer.scenario.units import parse_duration, parse_gas_rate

MARKER = "gashammer"

ARRIVALS = ("constant", "poisson")

Parser = Callable[[Any, str], Any]
WorkloadEntry = tuple[str, float, dict[str, Any]]


def _as_given(value: Any) -> Any:
    return value


@dataclasses.dataclass(frozen=True)
class Argument:
    """One marker argument."""

    name: str
    #: The default, written as a user would write it in the marker.
    default: Any
    #: ``(value, name) -> normalised value``; raises :class:`ConfigError`.
    parse: Parser
    #: What the argument means, one line (the user guide's "meaning" column; Markdown).
    help: str
    #: The user guide's "default" column when the default value alone would not say it
    #: (``None`` meaning "required", "scaled to the rate", ...).
    shown_default: str | None = None
    #: The normalised value back in a form ``parse`` accepts, so a spec can be re-validated
    #: with overrides (``hammer.run(**overrides)``).
    to_raw: Callable[[Any], Any] = _as_given
    #: The JSON Schema of the value as a scenario file writes it (``gashammer schema``), built when
    #: asked: what an editor can check as you type. ``parse`` stays the judge of ranges and combinations.
    schema: Callable[[], dict[str, Any]] = dict


class ArgumentError(ConfigError):
    """A :class:`ConfigError` about one argument, which ``argument`` names: a scenario file points at
    the line that wrote it."""

    def __init__(self, message: str, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


def argument_schema(argument: Argument) -> dict[str, Any]:
    """The JSON Schema of ``argument``'s value, with its help as the description and its default."""
    fragment = {**argument.schema(), "description": argument.help}
    if argument.default is not None:
        fragment["default"] = (
            list(argument.default) if isinstance(argument.default, tuple) else argument.default
        )
    return fragment


def _fixed(fragment: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    return lambda: fragment


# What the scalar values of a scenario file may be: the parsers take numbers and strings with units.
GAS_RATE_SCHEMA: dict[str, Any] = {"type": ["number", "string"], "examples": ["2M", 2_000_000]}
DURATION_SCHEMA: dict[str, Any] = {"type": ["number", "string"], "examples": ["30s", "500ms", 2]}
_FLAG_SCHEMA = _fixed({"type": "boolean"})


def _optional_integer_schema(lowest: int) -> Callable[[], dict[str, Any]]:
    return _fixed({"type": ["integer", "null"], "minimum": lowest})


def _invariants_schema(nullable: bool) -> Callable[[], dict[str, Any]]:
    return _fixed(
        {
            "type": ["array", "null"] if nullable else "array",
            "items": {"enum": list(vocabulary.ALL_INVARIANT_NAMES)},
        }
    )


def _workload_schema() -> dict[str, Any]:
    from pytest_gashammer.workload.registry import BUILTIN, IMPORT_PATH_PATTERN

    share = {"type": "number", "exclusiveMinimum": 0}
    return {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"anyOf": [{"enum": sorted(BUILTIN)}, {"pattern": IMPORT_PATH_PATTERN}]},
        "additionalProperties": {
            "anyOf": [share, {"type": "object", "required": ["share"], "properties": {"share": share}}]
        },
    }


def _slo_schema() -> dict[str, Any]:
    bound = {"type": ["number", "string"]}
    return {
        "type": ["object", "null"],
        "properties": {name: bound for name in vocabulary.OBJECTIVES},
        "additionalProperties": False,
    }


def _faults_schema() -> dict[str, Any]:
    from pytest_gashammer.scenario.faults import faults_schema

    return faults_schema()


def _engine_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "block_interval": DURATION_SCHEMA,
        "version": {"enum": list(ENGINE_VERSIONS)},
        "withdrawals": {"type": "integer", "minimum": 0},
        "fee_recipient": {"type": "string", "pattern": "^0[xX][0-9a-fA-F]{40}$"},
    }
    return {
        "type": ["object", "null"],
        "properties": {key: {**properties[key], "description": ENGINE_KEYS[key]} for key in ENGINE_KEYS},
        "additionalProperties": False,
    }


def _network_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "send_to": {"type": "string", "pattern": "^(builder|spread|node[0-9]+)$"},
        "converge_within": DURATION_SCHEMA,
    }
    return {
        "type": ["object", "null"],
        "properties": {key: {**properties[key], "description": NETWORK_KEYS[key]} for key in NETWORK_KEYS},
        "additionalProperties": False,
    }


def _capacity_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "from": GAS_RATE_SCHEMA,
        "to": GAS_RATE_SCHEMA,
        "step": DURATION_SCHEMA,
        "max_step": DURATION_SCHEMA,
        "max_steps": {"type": "integer", "minimum": 2},
        "resolution": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "max_time": DURATION_SCHEMA,
    }
    return {
        "type": ["object", "null"],
        "required": ["from", "to"],
        "properties": {key: {**properties[key], "description": CAPACITY_KEYS[key]} for key in CAPACITY_KEYS},
        "additionalProperties": False,
    }


# ----------------------------------------------------------------------------------------------
# parsers


def _required_gas_rate(value: object, name: str) -> float:
    if value is None:
        raise ConfigError(f"needs {name}=..., a positive gas rate such as 2_000_000 or '2M' (required)")
    return parse_gas_rate(value, what=name)


def _duration(value: object, name: str) -> float:
    return parse_duration(value, what=name)


def _longer_than_zero(example: str = "") -> Parser:
    """A duration that must be longer than zero; ``example`` is appended to the error as the fix."""

    def parse(value: object, name: str) -> float:
        seconds = parse_duration(value, what=name)
        if seconds <= 0:
            raise ConfigError(f"{name}={value!r} must be longer than zero{example}")
        return seconds

    return parse


def _fraction(value: object, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (0 < value <= 1)
        or not math.isfinite(value)
    ):
        raise ConfigError(f"{name}={value!r} must be a number in (0, 1], e.g. {name}=0.1")
    return float(value)


def _share(value: object, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (0 <= value <= 1)
        or not math.isfinite(value)
    ):
        raise ConfigError(
            f"{name}={value!r} must be a share of the sent transactions in [0, 1], e.g. {name}=0.1 "
            "(1.0 allows any refusals but still fails a run with none accepted)"
        )
    return float(value)


def _integer(value: object, name: str, *, lowest: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ConfigError(f"{name}={value!r} must be an integer >= {lowest}; {hint}")
    return value


def _optional_integer(*, lowest: int, hint: str) -> Parser:
    """``None`` (the automatic choice) or an integer of at least ``lowest``; ``hint`` says what it is."""

    def parse(value: object, name: str) -> int | None:
        return None if value is None else _integer(value, name, lowest=lowest, hint=hint)

    return parse


def _receipts(value: object, name: str) -> int | None:
    if value == "all":
        return None  # every receipt
    return _integer(
        value,
        name,
        lowest=0,
        hint="how many receipts to check, spread evenly over the run (default 2000), 'all', or 0 for none",
    )


def _arrival(value: object, name: str) -> str:
    if value not in ARRIVALS:
        raise ConfigError(f"{name}={value!r} is not supported; use one of {', '.join(map(repr, ARRIVALS))}")
    return str(value)


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} must be True or False")
    return value


_WORKLOAD_HINT = (
    "a dict of template name or 'module:Class' to its gas share, or to {'share': x, <param>: value}, "
    "e.g. {'transfer': 0.5, 'storage': {'share': 0.5, 'slots': 8}}"
)


def parse_workload(value: object, name: str = "workload") -> tuple[WorkloadEntry, ...]:
    """Template name to normalised gas share and checked parameters, in the order written."""
    from pytest_gashammer.workload.registry import resolve_template

    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{name}={value!r} must be a non-empty dict, {_WORKLOAD_HINT}")
    entries: list[WorkloadEntry] = []
    for template_name, entry in value.items():
        if not isinstance(template_name, str):
            raise ConfigError(f"{name} key {template_name!r} must be a template name string, e.g. 'transfer'")
        where = f"{name}[{template_name!r}]"
        template = resolve_template(template_name)
        if isinstance(entry, Mapping):
            raw_params = dict(entry)
            if "share" not in raw_params:
                raise ConfigError(
                    f"{where} needs a 'share' (its part of the gas rate), e.g. {{'share': 1.0}}"
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
                f"{where} share {weight!r} must be a positive number (its part of the gas rate)"
            )
        entries.append((template_name, float(weight), template.check_params(raw_params, where=where)))
    total = sum(weight for _, weight, _ in entries)
    return tuple((template_name, weight / total, params) for template_name, weight, params in entries)


def _workload_as_raw(workload: tuple[WorkloadEntry, ...]) -> dict[str, Any]:
    return {name: {"share": share, **params} for name, share, params in workload}


def parse_slo(raw: object) -> dict[str, float]:
    """Validate ``slo=...``: latencies become seconds, ratios stay numbers. Raises ConfigError."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"slo={raw!r} must be a dict, e.g. slo={{'inclusion_p99': '2s', 'min_gas_ratio': 0.95}}"
        )
    parsed: dict[str, float] = {}
    for name, bound in raw.items():
        if name not in vocabulary.OBJECTIVES:
            raise ConfigError(
                f"slo: unknown objective {name!r}{did_you_mean(name, vocabulary.OBJECTIVES)}; accepted: {', '.join(vocabulary.OBJECTIVES)}"
            )
        if name in vocabulary.LATENCY_OBJECTIVES or name in vocabulary.DURATION_OBJECTIVES:
            parsed[name] = parse_duration(bound, what=f"slo[{name!r}]")
            continue
        if (
            isinstance(bound, bool)
            or not isinstance(bound, int | float)
            or not math.isfinite(bound)
            or bound < 0
        ):
            raise ConfigError(f"slo[{name!r}]={bound!r} must be a number of zero or more")
        if name == vocabulary.MIN_GAS_RATIO and bound > 10:
            raise ConfigError(
                f"slo[{vocabulary.MIN_GAS_RATIO!r}]={bound!r} is a ratio of included to target gas, e.g. 0.95"
            )
        parsed[name] = float(bound)
    return parsed


def _slo(value: object, name: str) -> tuple[tuple[str, float], ...]:
    return tuple(parse_slo(value).items())


def _slo_as_raw(slo: tuple[tuple[str, float], ...]) -> dict[str, float] | None:
    return dict(slo) or None


def parse_invariant_names(raw: object, name: str) -> tuple[str, ...] | None:
    """``None`` (every invariant) or a tuple of names from the vocabulary."""
    if raw is None:
        return None
    if isinstance(raw, str) or not isinstance(raw, list | tuple | set | frozenset):
        raise ConfigError(
            f"{name}={raw!r} must be a list of invariant names, e.g. {name}=[{vocabulary.INCLUSION!r}]"
        )
    for invariant in raw:
        if invariant not in vocabulary.ALL_INVARIANT_NAMES:
            raise ConfigError(
                f"{name}: unknown invariant {invariant!r}{did_you_mean(invariant, vocabulary.ALL_INVARIANT_NAMES)}; "
                f"accepted: {', '.join(vocabulary.ALL_INVARIANT_NAMES)}"
            )
    return tuple(raw)


def _skipped_invariant_names(raw: object, name: str) -> tuple[str, ...]:
    return parse_invariant_names(raw, name) or ()


def _faults(value: object, name: str) -> tuple[dict[str, Any], ...]:
    from pytest_gashammer.scenario.faults import parse_faults

    return parse_faults(value, name)


def _faults_as_raw(faults: tuple[dict[str, Any], ...]) -> list[dict[str, Any]] | None:
    from pytest_gashammer.scenario.faults import faults_as_raw

    return faults_as_raw(faults)


#: The marker's ``engine={...}`` keys, each with its one-line meaning (the consensus driver's settings
#: for the run, where the plugin builds the target's blocks over the Engine API).
ENGINE_KEYS: dict[str, str] = {
    "block_interval": "seconds between the blocks the driver builds, e.g. '2s'",
    "version": "the Engine API version, 1 to 4 (default: the highest the client serves)",
    "withdrawals": "withdrawals carried in each block's payload attributes (version 2 and later)",
    "fee_recipient": "the address paid the blocks' priority fees, '0x' and 40 hex digits",
}
ENGINE_VERSIONS = (1, 2, 3, 4)


def parse_engine(value: object, name: str = "engine") -> tuple[tuple[str, Any], ...]:
    """``engine={...}``: the consensus driver's settings for the run, normalised, in key order."""
    if value is None:
        return ()
    example = f"e.g. {name}={{'block_interval': '2s', 'version': 3, 'withdrawals': 4}}"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}={value!r} must be a dict of the driver's settings, {example}")
    settings: dict[str, Any] = {}
    for key, raw in value.items():
        where = f"{name}[{key!r}]"
        if key == "block_interval":
            seconds = parse_duration(raw, what=where)
            if not seconds > 0:
                raise ConfigError(f"{where}={raw!r} must be longer than zero, e.g. '1s'")
            settings[key] = seconds
        elif key == "version":
            if isinstance(raw, bool) or raw not in ENGINE_VERSIONS:
                raise ConfigError(f"{where}={raw!r} must be one of {', '.join(map(str, ENGINE_VERSIONS))}")
            settings[key] = int(raw)
        elif key == "withdrawals":
            settings[key] = _integer(raw, where, lowest=0, hint="withdrawals per block, e.g. 4")
        elif key == "fee_recipient":
            text = raw if isinstance(raw, str) else ""
            digits = text[2:] if text[:2].lower() == "0x" else ""
            if len(digits) != 40 or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise ConfigError(f"{where}={raw!r} must be an address: '0x' and 40 hex digits")
            settings[key] = "0x" + digits.lower()
        else:
            raise ConfigError(
                f"{name}: unknown key {key!r}{did_you_mean(key, ENGINE_KEYS)}; accepted: {', '.join(ENGINE_KEYS)}"
            )
    if settings.get("version") == 1 and settings.get("withdrawals"):
        raise ConfigError(f"{name}: withdrawals need Engine API version 2 or later, not version 1")
    return tuple((key, settings[key]) for key in ENGINE_KEYS if key in settings)


def _engine_as_raw(engine: tuple[tuple[str, Any], ...]) -> dict[str, Any] | None:
    return dict(engine) or None


#: The marker's ``network={...}`` keys, each with its one-line meaning (where a run on a devnet of
#: several nodes sends, and how long its nodes may take to agree afterwards).
NETWORK_KEYS: dict[str, str] = {
    "send_to": "'builder' (node0, the default), 'spread' (each sender to one node, round-robin over the "
    "nodes) or a node's name ('node2')",
    "converge_within": "how long after the load every node may take to hold the builder's head and stop "
    "syncing, e.g. '30s'",
}


def parse_network(value: object, name: str = "network") -> tuple[tuple[str, Any], ...]:
    """``network={...}``: where the edges send on a multi-node devnet, normalised, in key order.

    A node's name is checked against the devnet when the run starts (the devnet is not known here).
    """
    if value is None:
        return ()
    example = f"e.g. {name}={{'send_to': 'spread', 'converge_within': '30s'}}"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}={value!r} must be a dict, {example}")
    settings: dict[str, Any] = {}
    for key, raw in value.items():
        where = f"{name}[{key!r}]"
        if key == "send_to":
            choices = " or ".join(repr(choice) for choice in vocabulary.SEND_TO_CHOICES)
            if not isinstance(raw, str) or not (raw in vocabulary.SEND_TO_CHOICES or _is_node_name(raw)):
                raise ConfigError(f"{where}={raw!r} must be {choices} or a node's name such as 'node2'")
            settings[key] = raw
        elif key == "converge_within":
            seconds = parse_duration(raw, what=where)
            if not seconds > 0:
                raise ConfigError(f"{where}={raw!r} must be longer than zero, e.g. '30s'")
            settings[key] = seconds
        else:
            raise ConfigError(
                f"{name}: unknown key {key!r}{did_you_mean(key, NETWORK_KEYS)}; accepted: {', '.join(NETWORK_KEYS)}"
            )
    return tuple((key, settings[key]) for key in NETWORK_KEYS if key in settings)


def _is_node_name(text: str) -> bool:
    return text.startswith("node") and text[4:].isdigit()


def _network_as_raw(network: tuple[tuple[str, Any], ...]) -> dict[str, Any] | None:
    return dict(network) or None


#: The marker's ``capacity={...}`` keys, each with its one-line meaning (the capacity search: a
#: geometric ramp of the offered gas rate, then a bisection, one run per step; see docs/user-guide.md).
CAPACITY_KEYS: dict[str, str] = {
    "from": "the first offered gas rate, e.g. '1M'",
    "to": "the highest offered gas rate the search tries, e.g. '200M'",
    "step": "how long each step holds its rate (its sustain phase) before it is judged, e.g. '8s'",
    "max_step": "how long a step not yet steady may be held, at most (default 3 x step), e.g. '24s'",
    "max_steps": "the most steps (runs) the search takes, ramp and bisection together",
    "resolution": "the bisection stops once the first failing rate is within this share above the maximum",
    "max_time": "the longest the whole search may take; no step starts that would end past it",
}
#: What a key of ``capacity={...}`` the marker leaves out is (``from`` and ``to`` are required).
CAPACITY_DEFAULTS: dict[str, Any] = {"step": 8.0, "max_steps": 16, "resolution": 0.05, "max_time": 1800.0}
#: ``max_step`` when the marker leaves it out: this many times ``step``.
CAPACITY_MAX_STEP_FACTOR = 3.0
#: How much each ramp step multiplies the offered rate by.
CAPACITY_RAMP_FACTOR = 2.0


def parse_capacity(value: object, name: str = "capacity") -> tuple[tuple[str, Any], ...]:
    """``capacity={...}``: the capacity search's settings, normalised (gas/s, seconds), every key filled."""
    if value is None:
        return ()
    example = f"e.g. {name}={{'from': '1M', 'to': '200M', 'step': '8s'}}"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}={value!r} must be a dict of the search's settings, {example}")
    settings: dict[str, Any] = {}
    for key, raw in value.items():
        where = f"{name}[{key!r}]"
        if key in ("from", "to"):
            settings[key] = parse_gas_rate(raw, what=where)
        elif key in ("step", "max_step", "max_time"):
            seconds = parse_duration(raw, what=where)
            if key in ("step", "max_step") and seconds < 1.0:
                raise ConfigError(
                    f"{where}={raw!r} must be at least 1 s (a step is judged on per-second samples), e.g. '8s'"
                )
            if key == "max_time" and not seconds > 0:
                raise ConfigError(f"{where}={raw!r} must be longer than zero, e.g. '30m'")
            settings[key] = seconds
        elif key == "max_steps":
            settings[key] = _integer(raw, where, lowest=2, hint="the most runs the search takes, e.g. 16")
        elif key == "resolution":
            if (
                isinstance(raw, bool)
                or not isinstance(raw, int | float)
                or not (0 < raw < 1)
                or not math.isfinite(raw)
            ):
                raise ConfigError(f"{where}={raw!r} must be a share in (0, 1), e.g. 0.05 (5 %)")
            settings[key] = float(raw)
        else:
            raise ConfigError(
                f"{name}: unknown key {key!r}{did_you_mean(key, CAPACITY_KEYS)}; accepted: {', '.join(CAPACITY_KEYS)}"
            )
    for key in ("from", "to"):
        if key not in settings:
            meaning = CAPACITY_KEYS[key].split(", e.g.")[0]
            raise ConfigError(f"{name} needs {key!r}, {meaning}; {example}")
    if settings["to"] <= settings["from"]:
        raise ConfigError(
            f"{name}: 'to' ({raw_rate(settings['to'])}) must be above 'from' ({raw_rate(settings['from'])})"
        )
    filled = {**CAPACITY_DEFAULTS, **settings}
    filled.setdefault("max_step", CAPACITY_MAX_STEP_FACTOR * filled["step"])
    if filled["max_step"] < filled["step"]:
        raise ConfigError(
            f"{name}['max_step']={value['max_step']!r} is shorter than 'step' ({filled['step']:g}s): a step is "
            f"held at least 'step', e.g. 'max_step': '{CAPACITY_MAX_STEP_FACTOR * filled['step']:g}s'"
        )
    return tuple((key, filled[key]) for key in CAPACITY_KEYS)


def raw_rate(gas_per_sec: float) -> str:
    """A gas rate as the marker would write it: ``'2M'``, ``'500k'``, ``'1.5G'``."""
    for factor, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if gas_per_sec >= factor:
            return f"{gas_per_sec / factor:g}{unit}"
    return f"{gas_per_sec:g}"


def _capacity_as_raw(capacity: tuple[tuple[str, Any], ...]) -> dict[str, Any] | None:
    return dict(capacity) or None


# ----------------------------------------------------------------------------------------------
# the table


ARGUMENTS: tuple[Argument, ...] = (
    Argument(
        "gas_per_sec",
        None,
        _required_gas_rate,
        'target gas rate: a number (`2_000_000`) or a string (`"2M"`, `"500k"`, `"1.5G"`)',
        shown_default="required",
        schema=_fixed(GAS_RATE_SCHEMA),
    ),
    Argument(
        "duration",
        "10s",
        _longer_than_zero(example="; e.g. duration='30s'"),
        'length of the sustain phase: seconds or `"500ms"`, `"30s"`, `"2m"`, `"1m30s"`',
        schema=_fixed(DURATION_SCHEMA),
    ),
    Argument(
        "warmup",
        "1s",
        _duration,
        "a phase at `warmup_rate` × target before the ramp; excluded from the rates",
        schema=_fixed(DURATION_SCHEMA),
    ),
    Argument(
        "ramp",
        "0s",
        _duration,
        "the rate climbs linearly from the warmup rate (or 0) to the target",
        schema=_fixed(DURATION_SCHEMA),
    ),
    Argument(
        "cooldown",
        "0s",
        _duration,
        "the rate falls linearly from the target to 0",
        schema=_fixed(DURATION_SCHEMA),
    ),
    Argument(
        "warmup_rate",
        0.1,
        _fraction,
        "fraction of the target used during warmup, in (0, 1]",
        schema=_fixed({"type": "number", "exclusiveMinimum": 0, "maximum": 1}),
    ),
    Argument(
        "workload",
        {"transfer": 1.0},
        parse_workload,
        'template name or `"module:Class"` → share of the **gas** rate, or `{"share": x, <param>: value}`; '
        "shares are normalised",
        to_raw=_workload_as_raw,
        schema=_workload_schema,
    ),
    Argument(
        "seed",
        None,
        _optional_integer(
            lowest=0, hint="an integer >= 0 (default: --gashammer-seed, else derived from the test id)"
        ),
        "integer ≥ 0; the same seed gives the same senders, nonces, recipients and calldata",
        shown_default="see below",
        schema=_optional_integer_schema(0),
    ),
    Argument(
        "arrival",
        "constant",
        _arrival,
        '`"constant"` spacing or seeded `"poisson"` arrivals',
        schema=_fixed({"enum": list(ARRIVALS)}),
    ),
    Argument(
        "senders",
        None,
        _optional_integer(
            lowest=1, hint="a positive number of sender accounts (default: scaled to the rate)"
        ),
        "number of sender accounts (about 40 tx/s per sender, at least 8)",
        shown_default="scaled to the rate",
        schema=_optional_integer_schema(1),
    ),
    Argument(
        "inclusion_timeout",
        "30s",
        _longer_than_zero(),
        "how long an accepted transaction may take to be included before it counts as lost",
        schema=_fixed(DURATION_SCHEMA),
    ),
    Argument(
        "max_block_gap",
        "10s",
        _longer_than_zero(example="; e.g. max_block_gap='30s' for a chain with 12 s slots"),
        "longest wait for a new block while transactions are outstanding before `block_production` fails",
        schema=_fixed(DURATION_SCHEMA),
    ),
    Argument(
        "receipts",
        2000,
        _receipts,
        'how many receipts to fetch and check, spread evenly over the run (`"all"`: every one; `0`: none). '
        "Each receipt costs the node about as much as accepting the transaction did",
        to_raw=lambda receipts: "all" if receipts is None else receipts,
        schema=_fixed({"anyOf": [{"type": "integer", "minimum": 0}, {"const": "all"}]}),
    ),
    Argument(
        "max_in_flight",
        None,
        _optional_integer(
            lowest=1, hint="a positive cap on accepted-but-not-included transactions (default: unbounded)"
        ),
        "pause sending while this many accepted transactions await inclusion",
        shown_default="unbounded",
        schema=_optional_integer_schema(1),
    ),
    Argument(
        "max_fee_per_gas",
        None,
        _optional_integer(
            lowest=0, hint="fee cap in wei (default: twice the base fee at setup plus the tip)"
        ),
        "fee cap in wei; auto is twice the base fee at setup plus the tip, then following the base fee (see below)",
        shown_default="auto",
        schema=_optional_integer_schema(0),
    ),
    Argument(
        "max_priority_fee_per_gas",
        None,
        _optional_integer(lowest=0, hint="tip in wei (default: the node's eth_maxPriorityFeePerGas, else 0)"),
        "tip in wei; auto is the node's `eth_maxPriorityFeePerGas`, else 0",
        shown_default="auto",
        schema=_optional_integer_schema(0),
    ),
    Argument("feed", True, _flag, "follow the devnet's sequencer feed when it has one", schema=_FLAG_SCHEMA),
    Argument(
        "isolated",
        False,
        _flag,
        "run on the calling process alone against a devnet of its own (parallel-safe under xdist)",
        schema=_FLAG_SCHEMA,
    ),
    Argument(
        "slo",
        None,
        _slo,
        'objectives, e.g. `{"inclusion_p99": "2s", "feed_p99": "500ms", "min_gas_ratio": 0.95, '
        '"max_error_rate": 0.001}` ([oracle.md](oracle.md))',
        shown_default="none",
        to_raw=_slo_as_raw,
        schema=_slo_schema,
    ),
    Argument(
        "invariants",
        None,
        parse_invariant_names,
        "invariant names to check ([oracle.md](oracle.md))",
        shown_default="all",
        schema=_invariants_schema(nullable=True),
    ),
    Argument(
        "skip_invariants",
        (),
        _skipped_invariant_names,
        "invariant names not to check",
        shown_default="none",
        schema=_invariants_schema(nullable=False),
    ),
    Argument(
        "max_rejected_share",
        0.1,
        _share,
        "the `acceptance` invariant fails when more than this share of the sent transactions is refused "
        "(and always when none is accepted or none is sent), in [0, 1]",
        schema=_fixed({"type": "number", "minimum": 0, "maximum": 1}),
    ),
    Argument(
        "fail_inconclusive", False, _flag, "fail the test on an inconclusive verdict too", schema=_FLAG_SCHEMA
    ),
    Argument(
        "fail_fast", False, _flag, "stop the run as soon as a hard invariant breaks", schema=_FLAG_SCHEMA
    ),
    Argument(
        "faults",
        None,
        _faults,
        'faults on the run\'s timeline, e.g. `[{"kind": "node.pause", "at": "5s", "duration": "2s"}]`; '
        '`at` in seconds or `"sustain+3s"` ([faults.md](faults.md))',
        shown_default="none",
        to_raw=_faults_as_raw,
        schema=_faults_schema,
    ),
    Argument(
        "engine",
        None,
        parse_engine,
        "the consensus driver's settings for the run, where the plugin builds the blocks over the Engine "
        'API: `{"block_interval": "2s", "version": 3, "withdrawals": 4, "fee_recipient": "0x..."}` '
        "([engine-api.md](engine-api.md))",
        shown_default="none",
        to_raw=_engine_as_raw,
        schema=_engine_schema,
    ),
    Argument(
        "network",
        None,
        parse_network,
        "on a devnet of several nodes: where the edges send and how long the nodes may take to agree "
        'after the load, `{"send_to": "spread", "converge_within": "30s"}`; `send_to` is `"builder"` '
        '(default), `"spread"` or a node (`"node2"`) ([network.md](network.md))',
        shown_default="none",
        to_raw=_network_as_raw,
        schema=_network_schema,
    ),
    Argument(
        "capacity",
        None,
        parse_capacity,
        "find the highest gas rate at which every SLO holds: "
        '`{"from": "1M", "to": "200M", "step": "8s", "max_step": "24s", "max_steps": 16, "resolution": 0.05, '
        '"max_time": "30m"}`; one run per step, each held until steady, a ramp then a bisection; '
        "`gas_per_sec` defaults to `from`, `duration` gives way "
        "to `step` (see [Capacity](#capacity))",
        shown_default="none",
        to_raw=_capacity_as_raw,
        schema=_capacity_schema,
    ),
)

#: Each argument's default, as the user would write it, in table order.
DEFAULTS: dict[str, Any] = {argument.name: argument.default for argument in ARGUMENTS}
#: Each argument's one-line help, in table order.
ACCEPTED: dict[str, str] = {argument.name: argument.help for argument in ARGUMENTS}
