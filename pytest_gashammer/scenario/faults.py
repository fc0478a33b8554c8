"""The marker's ``faults=[...]``: validated against the registry of fault kinds, then laid on the plan's timeline.

A fault is a plain dict: ``{"kind": "rpc.latency", "at": "sustain+3s", "duration": "2s", "ms": 100}``.
``at`` is seconds from the run's t=0 (``5``, ``"5s"``) or a phase name with an optional offset
(``"sustain"``, ``"sustain+3s"``); the kind's own parameters sit beside it, declared in
:data:`pytest_gashammer.fault.timeline.FAULT_KINDS`. Every problem is one line naming the fault
(``faults[1] rpc.latency``) and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_gashammer.errors import ConfigError, did_you_mean
from pytest_gashammer.fault.timeline import (
    FAULT_KINDS,
    MAX_FAULT_SECONDS,
    MAX_FAULTS,
    FaultKind,
    FaultParam,
    network_fault_nodes,
)
from pytest_gashammer.scenario.units import parse_duration
from pytest_gashammer.workload.rate import Phase

__all__ = ["check_fault_target", "faults_as_raw", "parse_faults", "place_faults"]

PHASE_NAMES = ("warmup", "ramp", "sustain", "cooldown")
_TIMING_KEYS = ("kind", "at", "duration")
_EXAMPLE = "e.g. {'kind': 'node.pause', 'at': '5s', 'duration': '2s'}"


def _kinds_hint() -> str:
    return ", ".join(FAULT_KINDS)


def _parse_at(value: Any, where: str) -> float | tuple[str, float]:
    if isinstance(value, str) and value.strip() and value.strip()[0].isalpha():
        text = value.strip().replace(" ", "")
        phase, _, offset = text.partition("+")
        if phase not in PHASE_NAMES:
            raise ConfigError(
                f"{where}: at={value!r} names no phase; use seconds ('5s') or one of "
                f"{', '.join(PHASE_NAMES)} with an offset ('sustain+3s')"
            )
        seconds = parse_duration(offset, what=f"{where} at offset") if offset else 0.0
        return (phase, seconds)
    return parse_duration(value, what=f"{where} at")


def _node_name(value: Any, what: str, help_text: str) -> str:
    if not isinstance(value, str) or not value.startswith("node") or not value[4:].isdigit():
        raise ConfigError(f"{what}={value!r} must be a node's name such as 'node2': {help_text}")
    return value


def _parse_groups(value: Any, what: str, help_text: str) -> list[list[str]]:
    def is_list(item: Any) -> bool:
        return isinstance(item, Sequence) and not isinstance(item, str | bytes)

    if not is_list(value) or not value or not all(is_list(group) and group for group in value):
        raise ConfigError(f"{what}={value!r} must be a list of non-empty lists of node names: {help_text}")
    groups = [[_node_name(name, what, help_text) for name in group] for group in value]
    seen: set[str] = set()
    for name in (name for group in groups for name in group):
        if name in seen:
            raise ConfigError(f"{what}: {name} is in two groups; a node is on one side of a partition")
        seen.add(name)
    return groups


def _parse_param(param: FaultParam, value: Any, where: str) -> Any:
    what = f"{where} {param.name}"
    if param.unit == "node":
        return _node_name(value, what, param.help)
    if param.unit == "groups":
        return _parse_groups(value, what, param.help)
    if param.unit == "choice":
        if not isinstance(value, str) or value not in param.choices:
            accepted = " or ".join(repr(choice) for choice in param.choices)
            raise ConfigError(f"{what}={value!r} must be {accepted}: {param.help}")
        return value
    if param.unit == "seconds":
        number = parse_duration(value, what=what)
    elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{what}={value!r} must be a number, {param.help}")
    else:
        number = value
    if param.unit == "integer" and not float(number).is_integer():
        raise ConfigError(f"{what}={value!r} must be an integer, {param.help}")
    if param.unit == "fraction" and not (param.low < number <= param.high):
        raise ConfigError(f"{what}={value!r} must be in (0, 1], {param.help}")
    if not (param.low <= number <= param.high):
        raise ConfigError(f"{what}={value!r} is out of range [{param.low:g}, {param.high:g}]: {param.help}")
    return int(number) if param.unit in ("integer", "bytes_per_sec") else float(number)


def _parse_one(index: int, raw: Any) -> dict[str, Any]:
    where = f"faults[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}={raw!r} must be a dict, {_EXAMPLE}")
    name = raw.get("kind")
    if not isinstance(name, str) or name not in FAULT_KINDS:
        hint = did_you_mean(name, FAULT_KINDS)
        raise ConfigError(f"{where}: unknown fault kind {name!r}{hint}; known: {_kinds_hint()}")
    kind: FaultKind = FAULT_KINDS[name]
    where = f"faults[{index}] {name}"
    known = {param.name for param in kind.params}
    unknown = sorted(set(raw) - known - set(_TIMING_KEYS))
    if unknown:
        accepted = ", ".join([*_TIMING_KEYS[1:], *(param.name for param in kind.params)])
        hint = did_you_mean(unknown[0], [*_TIMING_KEYS[1:], *known])
        raise ConfigError(f"{where}: unknown parameter {unknown[0]!r}{hint}; accepted: {accepted}")
    if "at" not in raw:
        raise ConfigError(f"{where} needs at=..., seconds from the run's start or a phase ('sustain+3s')")
    at = _parse_at(raw["at"], where)
    if "duration" in raw:
        duration = parse_duration(raw["duration"], what=f"{where} duration")
    elif kind.instant:
        duration = 0.0
    else:
        raise ConfigError(f"{where} needs duration=..., how long it stays active, e.g. '2s'")
    if duration <= 0 and not kind.instant:
        raise ConfigError(f"{where} duration={raw['duration']!r} must be longer than zero, e.g. '2s'")
    if duration > MAX_FAULT_SECONDS:
        raise ConfigError(f"{where} duration={raw['duration']!r} exceeds {MAX_FAULT_SECONDS:g} s; shorten it")
    params: dict[str, Any] = {}
    for param in kind.params:
        if param.name in raw:
            params[param.name] = _parse_param(param, raw[param.name], where)
        elif param.default is None:
            raise ConfigError(f"{where} needs {param.name}=..., {param.help}")
        else:
            params[param.name] = param.default
    if name == "net.disconnect" and params["a"] == params["b"]:
        raise ConfigError(f"{where}: a and b are both {params['a']}; a link joins two different nodes")
    return {"kind": name, "at": at, "duration": duration, "params": params}


def parse_faults(value: object, name: str = "faults") -> tuple[dict[str, Any], ...]:
    """Validate the marker's ``faults``: each a normalised dict (kind, at, duration, params)."""
    if value is None:
        return ()
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise ConfigError(f"{name}={value!r} must be a list of dicts, {_EXAMPLE}")
    if len(value) > MAX_FAULTS:
        raise ConfigError(f"{name}: {len(value)} faults; a run holds at most {MAX_FAULTS}")
    faults = tuple(_parse_one(index, raw) for index, raw in enumerate(value))
    total = sum(fault["duration"] for fault in faults)
    if total > MAX_FAULT_SECONDS:
        raise ConfigError(
            f"{name}: {total:g} s of faults in one run; the total is capped at {MAX_FAULT_SECONDS:g} s"
        )
    return faults


def faults_schema() -> dict[str, Any]:
    """The JSON Schema of ``faults=[...]`` in a scenario file: the kinds and timing keys (each kind's own
    parameters and ranges are left to :func:`parse_faults`)."""
    when = {"type": ["number", "string"]}
    return {
        "type": ["array", "null"],
        "maxItems": MAX_FAULTS,
        "items": {
            "type": "object",
            "required": ["kind", "at"],
            "properties": {"kind": {"enum": list(FAULT_KINDS)}, "at": when, "duration": when},
        },
    }


def _at_as_raw(at: float | Sequence[Any]) -> Any:
    if isinstance(at, int | float):
        return at
    phase, offset = at
    return f"{phase}+{offset}s" if offset else str(phase)


def faults_as_raw(faults: tuple[dict[str, Any], ...]) -> list[dict[str, Any]] | None:
    """The normalised faults back as marker arguments ``parse_faults`` accepts."""
    if not faults:
        return None
    return [
        {
            "kind": fault["kind"],
            "at": _at_as_raw(fault["at"]),
            "duration": fault["duration"],
            **fault["params"],
        }
        for fault in faults
    ]


def place_faults(
    faults: Sequence[Mapping[str, Any]], phases: Sequence[Phase], duration_scale: float = 1.0
) -> tuple[dict[str, Any], ...]:
    """Each fault's ``start`` and ``end`` on the run clock; positions and lengths scale with the
    run (``--gashammer-duration-scale``). A fault that ends after the sending phases, or two node
    faults at once, is a ConfigError naming the fault."""
    sending_end = phases[-1].end if phases else 0.0
    placed: list[dict[str, Any]] = []
    for index, fault in enumerate(faults):
        where = f"faults[{index}] {fault['kind']}"
        at = fault["at"]
        if isinstance(at, int | float):
            start = float(at) * duration_scale
        else:
            phase_name, offset = at
            phase = next((phase for phase in phases if phase.name == phase_name), None)
            if phase is None:
                present = ", ".join(phase.name for phase in phases)
                raise ConfigError(
                    f"{where}: at={_at_as_raw(at)!r} names the {phase_name} phase, which this scenario does "
                    f"not have (its phases: {present}); give seconds or another phase"
                )
            start = phase.start + float(offset) * duration_scale
        end = start + float(fault["duration"]) * duration_scale
        if end > sending_end + 1e-9:
            raise ConfigError(
                f"{where} runs {start:g}-{end:g} s, past the end of the run at {sending_end:g} s; "
                "move it earlier, shorten it, or lengthen the run"
            )
        placed.append(
            {
                "index": index,
                "kind": fault["kind"],
                "start": round(start, 6),
                "end": round(end, 6),
                "params": dict(fault["params"]),
            }
        )
    # A node has one state at a time, and a heal restores every link: faults on the same path take turns.
    for path in ("node", "network"):
        on_path = sorted(
            (step for step in placed if FAULT_KINDS[step["kind"]].path == path),
            key=lambda step: step["start"],
        )
        for earlier, later in zip(on_path, on_path[1:], strict=False):
            if later["start"] < earlier["end"]:
                raise ConfigError(
                    f"faults[{later['index']}] {later['kind']} begins at {later['start']:g} s while "
                    f"faults[{earlier['index']}] {earlier['kind']} is still active; {path} faults take turns"
                )
    return tuple(placed)


def check_fault_target(
    faults: Sequence[Mapping[str, Any]],
    *,
    where: str,
    controlled: bool = True,
    node_supports: frozenset[str] | None = None,
    has_feed: bool | None = None,
    has_engine: bool | None = None,
    network_nodes: Sequence[str] | None = None,
) -> None:
    """Refuse faults the target cannot take, one line naming the fault and the fix.

    ``controlled``: the plugin started the node (node faults need that); ``node_supports``: the
    node operations it offers (None: not known yet, not checked); ``has_feed``: whether it has a
    sequencer feed (None: not known yet); ``has_engine``: whether the plugin builds its blocks over
    the Engine API with a consensus driver (engine faults need that; None: not known yet);
    ``network_nodes``: the names of a multi-node devnet's nodes (network faults need one; empty: a
    single node; None: not known yet).
    """
    for index, fault in enumerate(faults):
        name = str(fault["kind"])
        kind = FAULT_KINDS[name]
        label = f"faults[{fault.get('index', index)}] {name}"
        if kind.path == "node":
            if not controlled:
                raise ConfigError(
                    f"{label} needs a devnet the plugin started; {where} is not one: run on the embedded "
                    "devnet (drop --gashammer-rpc-url) or remove the fault"
                )
            if node_supports is not None and kind.node_operation not in node_supports:
                offered = ", ".join(sorted(node_supports)) or "none"
                raise ConfigError(
                    f"{label}: {where} cannot {kind.node_operation} its node (it offers: {offered}); "
                    "use the embedded devnet or remove the fault"
                )
        if kind.path == "network" and network_nodes is not None:
            if not network_nodes:
                raise ConfigError(
                    f"{label} needs a devnet of several nodes the plugin started; {where} has a single node: "
                    "run with --gashammer-devnet network, or remove the fault"
                )
            unknown = [
                node
                for node in network_fault_nodes(name, fault.get("params") or {})
                if node not in network_nodes
            ]
            if unknown:
                raise ConfigError(
                    f"{label} names {unknown[0]}, which {where} does not have; its nodes: {', '.join(network_nodes)}"
                )
        if kind.path == "engine" and has_engine is False:
            raise ConfigError(
                f"{label} needs a devnet whose blocks the plugin builds over the Engine API; {where} has "
                "no consensus driver: run with --gashammer-devnet ethereumjs or --gashammer-engine-url, "
                "or remove the fault"
            )
        if kind.path == "feed" and has_feed is False:
            raise ConfigError(
                f"{label} needs a sequencer feed; {where} has none: use the embedded devnet, pass "
                "--gashammer-feed-url for an external node, or remove the fault"
            )
