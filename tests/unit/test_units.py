"""Durations and gas rates as users write them in markers and options."""

from __future__ import annotations

import math

import pytest

from pytest_gashammer.errors import ConfigError, GashammerError
from pytest_gashammer.scenario.units import format_gas_rate, format_seconds, parse_duration, parse_gas_rate

# ----------------------------------------------------------------------------------------------
# parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("2m", 120.0),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        ("1h", 3600.0),
        ("1h2m3s", 3723.0),
        ("1m 30s", 90.0),
        (" 30S ", 30.0),
        ("30", 30.0),
        ("0.25", 0.25),
        (30, 30.0),
        (2.5, 2.5),
        (0, 0.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration_accepts_the_documented_forms(value: object, seconds: float) -> None:
    assert parse_duration(value, what="duration") == pytest.approx(seconds)


def test_parse_duration_returns_a_float_for_integer_input() -> None:
    result = parse_duration(30, what="duration")
    assert isinstance(result, float)


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "-1s",
        -1,
        -0.5,
        True,
        False,
        None,
        "30 parsecs",
        "",
        "s",
        "1m30",
        "30s junk",
        [30],
        float("inf"),
        float("nan"),
        "inf",
        "nan",
        "-5",
    ],
)
def test_parse_duration_rejects_bad_values_naming_the_argument(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(value, what="warmup")
    message = str(info.value)
    assert message.startswith("warmup=")
    assert repr(value) in message
    assert "\n" not in message


@pytest.mark.parametrize("value", ["abc", True, None, "30 parsecs"])
def test_parse_duration_error_shows_an_accepted_form(value: object) -> None:
    with pytest.raises(ConfigError, match=r"'30s'"):
        parse_duration(value, what="duration")


@pytest.mark.parametrize("value", [-1, float("inf"), float("nan")])
def test_parse_duration_error_for_out_of_range_numbers_says_what_is_allowed(value: float) -> None:
    with pytest.raises(ConfigError, match=r"finite duration of zero or more seconds"):
        parse_duration(value, what="cooldown")


def test_config_error_is_a_gashammer_error() -> None:
    with pytest.raises(GashammerError):
        parse_duration("abc", what="duration")


# ----------------------------------------------------------------------------------------------
# parse_gas_rate


@pytest.mark.parametrize(
    ("value", "rate"),
    [
        ("20M", 20e6),
        ("20m", 20e6),
        ("500k", 500e3),
        ("500K", 500e3),
        ("1.5G", 1.5e9),
        ("2M gas/s", 2e6),
        ("2M gas", 2e6),
        (" 2 M ", 2e6),
        ("750", 750.0),
        (2_000_000, 2e6),
        (1.5e6, 1.5e6),
    ],
)
def test_parse_gas_rate_accepts_the_documented_forms(value: object, rate: float) -> None:
    assert parse_gas_rate(value, what="gas_per_sec") == pytest.approx(rate)


@pytest.mark.parametrize(
    "value",
    [
        0,
        -5,
        "0",
        "0M",
        "fast",
        "2 Mgas per minute",
        "-2M",
        "",
        True,
        False,
        None,
        float("nan"),
        float("inf"),
        [2_000_000],
    ],
)
def test_parse_gas_rate_rejects_bad_values_naming_the_argument(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_gas_rate(value, what="gas_per_sec")
    message = str(info.value)
    assert message.startswith("gas_per_sec=")
    assert repr(value) in message
    assert "2_000_000" in message  # an accepted form
    assert "\n" not in message


# ----------------------------------------------------------------------------------------------
# formatting


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (12_345_678, "12.35 Mgas/s"),
        (2_000_000, "2.00 Mgas/s"),
        (1_500_000_000, "1.50 Ggas/s"),
        (500_000, "500.00 kgas/s"),
        (1_000, "1.00 kgas/s"),
        (999, "999 gas/s"),
        (0, "0 gas/s"),
    ],
)
def test_format_gas_rate_picks_the_largest_fitting_unit(rate: float, text: str) -> None:
    assert format_gas_rate(rate) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (math.nan, "-"),
        (0.0, "0 ms"),
        (0.25, "250 ms"),
        (0.9994, "999 ms"),
        (1.0, "1.00 s"),
        (12.345, "12.35 s"),
    ],
)
def test_format_seconds(seconds: float | None, text: str) -> None:
    assert format_seconds(seconds) == text


def test_format_round_trips_through_parse_for_a_typical_rate() -> None:
    rendered = format_gas_rate(parse_gas_rate("20M", what="gas_per_sec"))
    assert rendered == "20.00 Mgas/s"
