"""The metrics a comparison measures, and ``--gashammer-compare-fail``'s thresholds.

Imports nothing heavy: the plugin parses the option when pytest reads its command line.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Literal

from pytest_gashammer.errors import ConfigError

MetricKind = Literal["rate", "latency", "capacity"]


@dataclasses.dataclass(frozen=True)
class Metric:
    """One compared figure: how its per-second samples are reduced and which way is better.

    ``rate``: the mean of the per-second samples (``column`` is the per-second series).
    ``latency``: the ``quantile`` of the latencies of the transactions intended in the resampled
    seconds, measured from the intended send time to ``column`` (``included_ns``, ``accepted_ns``).
    """

    name: str
    kind: MetricKind
    unit: str
    higher_is_better: bool
    column: str = ""
    quantile: float = 0.0


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("included_gas_per_sec", "rate", "gas/s", True, "included_gas"),
        Metric("included_tx_per_sec", "rate", "tx/s", True, "included_tx"),
        Metric("inclusion_p50", "latency", "s", False, "included_ns", 0.50),
        Metric("inclusion_p99", "latency", "s", False, "included_ns", 0.99),
        Metric("accept_p99", "latency", "s", False, "accepted_ns", 0.99),
        # The capacity envelope's maximum (a capacity run's figure); compared where both runs have one.
        Metric("capacity", "capacity", "gas/s", True),
    )
}
#: What a comparison shows when no threshold names more: every metric a plain load run has.
DEFAULT_METRICS = (
    "included_gas_per_sec",
    "included_tx_per_sec",
    "inclusion_p50",
    "inclusion_p99",
    "accept_p99",
)

#: What a comparison of two capacity searches shows when no threshold names more.
CAPACITY_METRICS = ("capacity",)

#: A change whose whole 95 % interval lies within this fraction of zero is "no change", as criterion
#: calls a change inside its noise threshold: load runs on shared machines wobble by a few percent.
NOISE_THRESHOLD = 0.02

_TOKEN = re.compile(r"^\s*([A-Za-z0-9_]+)\s*:\s*([+-]?)\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$")


@dataclasses.dataclass(frozen=True)
class Threshold:
    """Fail when the whole 95 % interval of ``metric``'s relative change is beyond ``limit``.

    ``limit`` is signed the way the metric gets worse: ``-0.05`` for a rate (5 % lower fails),
    ``+0.10`` for a latency (10 % higher fails).
    """

    metric: str
    limit: float

    def exceeded(self, low: float, high: float) -> bool:
        if math.isnan(low) or math.isnan(high):
            return False
        return high < self.limit if self.limit < 0 else low > self.limit

    def __str__(self) -> str:
        return f"{self.metric}:{self.limit * 100:+g}%"


def parse_thresholds(text: str) -> tuple[Threshold, ...]:
    """``"included_gas_per_sec:-5%,inclusion_p99:+10%"`` → thresholds; a bad token raises
    :class:`~pytest_gashammer.errors.ConfigError` naming it and the fix. An unsigned percentage
    takes the direction in which the metric gets worse."""
    tokens = [token for token in text.split(",") if token.strip()]
    if not tokens:
        raise ConfigError(
            f"{text!r} names no threshold; use e.g. included_gas_per_sec:-5%,inclusion_p99:+10%"
        )
    thresholds: dict[str, Threshold] = {}
    for token in tokens:
        match = _TOKEN.match(token)
        name = token.split(":", 1)[0].strip()
        if name not in METRICS:
            raise ConfigError(f"{token.strip()!r}: unknown metric {name!r}; use one of {', '.join(METRICS)}")
        metric = METRICS[name]
        worse = "+" if not metric.higher_is_better else "-"
        if match is None:
            raise ConfigError(f"{token.strip()!r} is not METRIC:PERCENT; write it as {name}:{worse}5%")
        _, sign, number = match.groups()
        value = float(number) / 100
        if sign and sign != worse:
            direction = "higher" if metric.higher_is_better else "lower"
            raise ConfigError(
                f"{token.strip()!r}: {name} is better {direction}, so it regresses the other way; "
                f"write {name}:{worse}{number}%"
            )
        if value <= 0:
            raise ConfigError(f"{token.strip()!r} must be more than 0%, e.g. {name}:{worse}5%")
        if name in thresholds:
            raise ConfigError(f"{token.strip()!r}: {name} has a threshold already; give each metric once")
        thresholds[name] = Threshold(name, value if worse == "+" else -value)
    return tuple(thresholds.values())


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def baseline_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a baseline (a file name in the store), ``None`` when it can."""
    if _NAME.match(name):
        return None
    return (
        f"baseline name {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
        "(starting with a letter or digit), e.g. main"
    )
