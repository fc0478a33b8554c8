"""Parsing of the human-friendly quantities used in markers and options: durations and gas rates."""

from __future__ import annotations

import math
import re

from pytest_gashammer.errors import ConfigError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*(?:gas(?:/s)?)?\s*$")
_RATE_UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_duration(value: object, *, what: str) -> float:
    """Seconds from a number or a string such as ``"500ms"``, ``"30s"``, ``"2m"`` or ``"1m30s"``."""
    if isinstance(value, bool):
        raise ConfigError(
            f"{what}={value!r} is not a duration; use seconds (30) or a string like '30s', '500ms', '2m'"
        )
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        seconds = 0.0
        position = 0
        for match in _DURATION_PART.finditer(text):
            if match.start() != position:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            position = match.end()
        if position != len(text) or not text:
            try:
                seconds = float(text)
            except ValueError:
                raise ConfigError(
                    f"{what}={value!r} is not a duration; use seconds (30) or a string like '30s', '500ms', '2m'"
                ) from None
    else:
        raise ConfigError(
            f"{what}={value!r} is not a duration; use seconds (30) or a string like '30s', '500ms', '2m'"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{what}={value!r} must be a finite duration of zero or more seconds")
    return seconds


def parse_gas_rate(value: object, *, what: str) -> float:
    """Gas per second from a number or a string such as ``"20M"``, ``"500k gas/s"``."""
    rate: float
    if isinstance(value, bool):
        raise ConfigError(f"{what}={value!r} is not a gas rate; use a positive number like 2_000_000 or '2M'")
    if isinstance(value, int | float):
        rate = float(value)
    elif isinstance(value, str):
        match = _RATE.match(value)
        if not match:
            raise ConfigError(
                f"{what}={value!r} is not a gas rate; use a positive number like 2_000_000 or '2M'"
            )
        rate = float(match.group(1)) * _RATE_UNITS[match.group(2).lower()]
    else:
        raise ConfigError(f"{what}={value!r} is not a gas rate; use a positive number like 2_000_000 or '2M'")
    if not math.isfinite(rate) or rate <= 0:
        raise ConfigError(f"{what}={value!r} must be a positive gas rate, e.g. {what}=2_000_000 (2 Mgas/s)")
    return rate


def format_gas_rate(gas_per_sec: float) -> str:
    """``12.3 Mgas/s`` style rendering for summaries."""
    for factor, unit in ((1e9, "Ggas/s"), (1e6, "Mgas/s"), (1e3, "kgas/s")):
        if abs(gas_per_sec) >= factor:
            return f"{gas_per_sec / factor:.2f} {unit}"
    return f"{gas_per_sec:.0f} gas/s"


def format_seconds(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"
