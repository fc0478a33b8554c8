"""Scenario files as pytest collectors: a file node, and one test item per named scenario.

A scenario's item is a :class:`pytest.Function` of :func:`run_scenario`, which asks for the
``hammer`` fixture like any marked test, and carries the ``gashammer`` marker with the scenario's
arguments. So a file's scenario has the marked function's fixtures, hive, telemetry, report, verdicts,
selection (``-m gashammer``, ``-k``) and exit code; the only difference is where its spec comes
from: the file, validated with the file's lines and columns (:mod:`pytest_gashammer.scenario.files`).
Collection is a pure function of the file, so xdist workers collect the same node ids.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import pytest

from pytest_gashammer.scenario.arguments import MARKER
from pytest_gashammer.scenario.files import FileScenario, ScenarioFileError, load_file


class _Hammer(Protocol):
    """What the ``hammer`` fixture gives (the hive's :class:`~pytest_gashammer.hive.hammer.Hammer`,
    a layer above this one)."""

    def run(self) -> Any: ...


def run_scenario(hammer: _Hammer) -> None:
    """A scenario file's test: run the scenario; a broken invariant or SLO fails the test."""
    __tracebackhide__ = True
    hammer.run()


class ScenarioFile(pytest.File):
    """A ``gashammer_*.yaml`` file: one :class:`ScenarioItem` per scenario, in the file's order."""

    def collect(self) -> list[ScenarioItem]:
        display = os.path.relpath(self.path, self.config.invocation_params.dir)
        try:
            scenarios = load_file(self.path, display)
        except ScenarioFileError as exc:
            raise self.CollectError(str(exc)) from None
        items = []
        for scenario in scenarios:
            item = ScenarioItem.from_parent(self, name=scenario.name, callobj=run_scenario, scenario=scenario)
            item.add_marker(getattr(pytest.mark, MARKER)(**scenario.arguments))
            items.append(item)
        return items


class ScenarioItem(pytest.Function):
    """One scenario of a file, run as a test function of the ``hammer`` fixture."""

    def __init__(self, *, scenario: FileScenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: The scenario: its spec, or the located error its test fails with at setup.
        self.scenario = scenario

    def reportinfo(self) -> tuple[os.PathLike[str] | str, int | None, str]:
        return self.path, self.scenario.mark.line - 1, f"scenario {self.name}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        # A broken invariant or SLO is the whole story: the scenario's line and the evidence, not a
        # traceback through the plugin's test function.
        if isinstance(excinfo.value, AssertionError) and not self.config.getoption("fulltrace", False):
            where = f"{self.scenario.display}:{self.scenario.mark.line}"
            return f"{excinfo.value}\nscenario {self.name}: {where}"
        return super().repr_failure(excinfo)
