"""Scenarios: marker arguments validated into a spec, compiled into a plain-data plan."""

from pytest_gashammer.scenario.arguments import ARGUMENTS, Argument
from pytest_gashammer.scenario.spec import (
    ACCEPTED,
    DEFAULTS,
    MARKER,
    Phase,
    ScenarioPlan,
    ScenarioSpec,
    compile_plan,
    default_seed,
    parse_spec,
)
from pytest_gashammer.scenario.units import format_gas_rate, format_seconds, parse_duration, parse_gas_rate

__all__ = [
    "ACCEPTED",
    "ARGUMENTS",
    "DEFAULTS",
    "MARKER",
    "Argument",
    "Phase",
    "ScenarioPlan",
    "ScenarioSpec",
    "compile_plan",
    "default_seed",
    "format_gas_rate",
    "format_seconds",
    "parse_duration",
    "parse_gas_rate",
    "parse_spec",
]
