"""The marker arguments are declared once, in ``scenario/arguments.py``: the spec, the plan and the
user guide's marker table follow that table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_gashammer.errors import ConfigError
from pytest_gashammer.scenario.arguments import ACCEPTED, ARGUMENTS, DEFAULTS, Argument
from pytest_gashammer.scenario.spec import (
    CARRIED_ARGUMENTS,
    COMPILED_ARGUMENTS,
    ScenarioPlan,
    ScenarioSpec,
    compile_plan,
    parse_spec,
)

USER_GUIDE = Path(__file__).parents[2] / "docs" / "user-guide.md"
TABLE_START = "<!-- marker arguments: start -->"
TABLE_END = "<!-- marker arguments: end -->"


def shown_default(argument: Argument) -> str:
    if argument.shown_default is not None:
        return argument.shown_default
    if isinstance(argument.default, bool):
        return f"`{argument.default}`"
    return f"`{json.dumps(argument.default)}`"


def marker_table() -> str:
    """The user guide's marker table, rendered from ``ARGUMENTS``."""
    rows = ["| argument | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{a.name}` | {shown_default(a)} | {a.help} |" for a in ARGUMENTS]
    return "\n".join(rows)


def documented_table() -> str:
    text = USER_GUIDE.read_text(encoding="utf-8")
    assert TABLE_START in text and TABLE_END in text, f"{USER_GUIDE} lost its {TABLE_START!r} markers"
    return text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()


def test_the_user_guide_marker_table_is_the_argument_table() -> None:
    assert documented_table() == marker_table(), (
        "docs/user-guide.md's marker table differs from scenario/arguments.py; replace it with:\n\n"
        + marker_table()
    )


def test_names_are_unique_and_every_argument_has_help() -> None:
    names = [argument.name for argument in ARGUMENTS]
    assert len(names) == len(set(names))
    assert list(DEFAULTS) == list(ACCEPTED) == names
    for argument in ARGUMENTS:
        assert argument.help.strip() and "\n" not in argument.help and "|" not in argument.help, argument.name


def test_the_spec_has_one_field_per_argument_in_table_order() -> None:
    assert [field.name for field in dataclasses.fields(ScenarioSpec)] == [a.name for a in ARGUMENTS]


def test_every_argument_reaches_the_plan_carried_or_compiled() -> None:
    plan_fields = {field.name for field in dataclasses.fields(ScenarioPlan)}
    names = {argument.name for argument in ARGUMENTS}
    assert set(CARRIED_ARGUMENTS) | COMPILED_ARGUMENTS == names
    assert not set(CARRIED_ARGUMENTS) & COMPILED_ARGUMENTS
    assert set(CARRIED_ARGUMENTS) <= plan_fields
    assert {"target_gas_per_sec", "phases", "seed", "senders"} <= plan_fields


# Every argument away from its default, as a user could write it.
EVERYTHING_SET: dict[str, Any] = {
    "gas_per_sec": "3M",
    "duration": "20s",
    "warmup": "2s",
    "ramp": "3s",
    "cooldown": "4s",
    "warmup_rate": 0.2,
    "workload": {"transfer": 1, "storage": {"share": 1, "slots": 4}},
    "seed": 7,
    "arrival": "poisson",
    "senders": 9,
    "inclusion_timeout": "40s",
    "max_block_gap": "20s",
    "receipts": "all",
    "max_in_flight": 50,
    "max_fee_per_gas": 10**10,
    "max_priority_fee_per_gas": 0,
    "feed": False,
    "isolated": True,
    "slo": {"inclusion_p99": "2s", "min_gas_ratio": 0.9, "max_lost": 0},
    "invariants": ["inclusion", "gas_model"],
    "skip_invariants": ["gas_model"],
    "max_rejected_share": 0.5,
    "fail_inconclusive": True,
    "fail_fast": True,
    "faults": [
        {"kind": "node.pause", "at": "sustain+1s", "duration": "2s"},
        {"kind": "rpc.latency", "at": 12, "duration": "500ms", "ms": 100, "jitter_ms": 20},
    ],
    "engine": {"block_interval": "2s", "version": 3, "withdrawals": 4, "fee_recipient": "0x" + "Ab" * 20},
    "network": {"send_to": "spread", "converge_within": "45s"},
    "capacity": {
        "from": "3M",
        "to": "48M",
        "step": "5s",
        "max_steps": 9,
        "resolution": 0.1,
        "max_time": "10m",
    },
}


def test_the_example_sets_every_argument_away_from_its_default() -> None:
    assert list(EVERYTHING_SET) == [argument.name for argument in ARGUMENTS]
    defaults = parse_spec({"gas_per_sec": "1M"})
    spec = parse_spec(EVERYTHING_SET)
    for argument in ARGUMENTS:
        assert getattr(spec, argument.name) != getattr(defaults, argument.name), argument.name


def test_every_argument_survives_replace() -> None:
    spec = parse_spec(EVERYTHING_SET)
    assert spec.replace() == spec
    assert parse_spec(spec.as_raw()) == spec


def test_the_plan_carries_every_carried_argument_as_the_spec_holds_it() -> None:
    spec = parse_spec(EVERYTHING_SET)
    plan = compile_plan(spec, name="t", seed=3)
    for name in CARRIED_ARGUMENTS:
        assert getattr(plan, name) == getattr(spec, name), name
    assert (plan.target_gas_per_sec, plan.seed, plan.senders) == (3_000_000.0, 3, 9)


@pytest.mark.parametrize("argument", ARGUMENTS[1:], ids=lambda argument: argument.name)
def test_each_default_is_valid(argument: Argument) -> None:
    argument.parse(argument.default, argument.name)


def test_gas_per_sec_alone_has_no_default() -> None:
    assert ARGUMENTS[0].name == "gas_per_sec" and ARGUMENTS[0].default is None
    with pytest.raises(ConfigError, match=r"needs gas_per_sec=\.\.\., .*\(required\)$"):
        ARGUMENTS[0].parse(None, "gas_per_sec")
