"""The live progress line: its rates are per run, never across two runs' counters."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator

import pytest

from pytest_gashammer.report import terminal
from pytest_gashammer.report.terminal import PROGRESS_AFTER, LiveProgress
from pytest_gashammer.telemetry.records import Progress


@dataclasses.dataclass
class Plan:
    name: str = "test_ceiling"
    sending_time: float = 10.0
    target_gas_per_sec: float = 2_000_000.0


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)


class Capture:
    @contextlib.contextmanager
    def global_and_fixture_disabled(self) -> Iterator[None]:
        yield


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(terminal.time, "monotonic", fake.monotonic)
    return fake


def rates(lines: list[str]) -> list[str]:
    return [re.search(r"\d+\.\d+/\d+s  (\S+ \S+)", line).group(1) for line in lines]  # type: ignore[union-attr]


def advance_and_update(
    live: LiveProgress, clock: Clock, plan: Plan, phase: str, elapsed: float, included: int
) -> None:
    """Six seconds later, the run reports `included` transfers of 21,000 gas each."""
    clock.now += 6
    live.update(
        plan, Progress(phase=phase, elapsed=elapsed, included=included, included_gas=included * 21_000)
    )


def test_a_new_run_starts_the_rate_again_instead_of_reading_negative(clock: Clock) -> None:
    log = Log()
    live = LiveProgress(log, Capture(), interactive=False)
    first, second = Plan(), Plan()
    clock.now += PROGRESS_AFTER - 5
    advance_and_update(live, clock, first, "sustain", 4.0, 100)
    advance_and_update(live, clock, first, "sustain", 10.0, 300)
    # The next step: its counters start from zero, and the first update only samples them.
    advance_and_update(live, clock, second, "setup", 0.0, 0)
    advance_and_update(live, clock, second, "sustain", 5.0, 120)
    assert rates(log.lines) == ["700.00 kgas/s", "420.00 kgas/s"]


def test_the_same_plan_run_again_is_a_new_run_too(clock: Clock) -> None:
    log = Log()
    live = LiveProgress(log, Capture(), interactive=False)
    plan = Plan()
    clock.now += PROGRESS_AFTER - 5
    advance_and_update(live, clock, plan, "sustain", 8.0, 400)
    advance_and_update(live, clock, plan, "warmup", 1.0, 10)
    advance_and_update(live, clock, plan, "sustain", 7.0, 130)
    assert len(log.lines) == 1
    assert rates(log.lines) == ["420.00 kgas/s"]
    assert not any("-" in rate for rate in rates(log.lines))
