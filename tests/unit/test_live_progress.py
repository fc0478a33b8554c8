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


def test_a_new_run_starts_the_rate_again_instead_of_reading_negative(clock: Clock) -> None:
    log = Log()
    live = LiveProgress(log, Capture(), interactive=False)
    first, second = Plan(), Plan()
    clock.now += PROGRESS_AFTER + 1
    live.update(first, Progress(phase="sustain", elapsed=4.0, included=100, included_gas=2_100_000))
    clock.now += 6
    live.update(first, Progress(phase="sustain", elapsed=10.0, included=300, included_gas=6_300_000))
    # The next step: its counters start from zero, and the first update only samples them.
    clock.now += 6
    live.update(second, Progress(phase="setup", elapsed=0.0, included=0, included_gas=0))
    clock.now += 6
    live.update(second, Progress(phase="sustain", elapsed=5.0, included=120, included_gas=2_520_000))
    assert rates(log.lines) == ["700.00 kgas/s", "420.00 kgas/s"]


def test_the_same_plan_run_again_is_a_new_run_too(clock: Clock) -> None:
    log = Log()
    live = LiveProgress(log, Capture(), interactive=False)
    plan = Plan()
    clock.now += PROGRESS_AFTER + 1
    live.update(plan, Progress(phase="sustain", elapsed=8.0, included=400, included_gas=8_400_000))
    clock.now += 6
    live.update(plan, Progress(phase="warmup", elapsed=1.0, included=10, included_gas=210_000))
    clock.now += 6
    live.update(plan, Progress(phase="sustain", elapsed=7.0, included=130, included_gas=2_730_000))
    assert len(log.lines) == 1
    assert rates(log.lines) == ["420.00 kgas/s"]
    assert not any("-" in rate for rate in rates(log.lines))
