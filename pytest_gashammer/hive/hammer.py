"""The ``hammer`` fixture's object: runs the calling test's scenario through the hive."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from pytest_gashammer.errors import GashammerError
from pytest_gashammer.hive.base import Hive, ProgressSink
from pytest_gashammer.results import RunResult
from pytest_gashammer.scenario.spec import ScenarioSpec, compile_plan, parse_spec


class Hammer:
    """``hammer.run(**overrides)`` runs the test's ``@pytest.mark.gashammer`` scenario.

    Keyword overrides use the marker's argument names and are validated the same way. With
    ``check=True`` (the default) a failed invariant fails the test right there, through pytest's
    assertion machinery; ``check=False`` returns the result for the test to inspect.
    """

    def __init__(
        self,
        *,
        name: str,
        nodeid: str = "",
        spec: ScenarioSpec | None,
        hive: Hive,
        seed: int,
        duration_scale: float,
        progress_factory: Callable[[], ProgressSink | None],
        on_result: Callable[[RunResult], None],
        isolated_hive: Callable[[], Hive] | None = None,
        repeat: int = 1,
        on_runs: Callable[[list[RunResult]], None] | None = None,
    ) -> None:
        """``repeat``: how often each :meth:`run` runs its plan, back to back (``--gashammer-repeat``);
        ``on_runs`` sees the results of one :meth:`run` together, after ``on_result`` saw each, before
        any is checked (the regression gate compares them with their baseline)."""
        self.name = name
        self.nodeid = nodeid
        self.spec = spec
        self.hive = hive
        self.seed = seed
        self.duration_scale = duration_scale
        self._progress_factory = progress_factory
        self._on_result = on_result
        self._isolated_hive = isolated_hive
        self.repeat = repeat
        self._on_runs = on_runs
        self.results: list[RunResult] = []

    def plan(self, **overrides: Any) -> Any:
        """The compiled plan ``run(**overrides)`` would execute (plain data, for inspection)."""
        __tracebackhide__ = True
        try:
            spec = self.spec.replace(**overrides) if self.spec is not None else parse_spec(overrides)
            seed = spec.seed if spec.seed is not None else self.seed
            plan = compile_plan(spec, name=self.name, seed=seed, duration_scale=self.duration_scale)
            return dataclasses.replace(plan, nodeid=self.nodeid)
        except GashammerError as exc:
            error = f"hammer.run(): {exc}"
        # Failed outside the except block, so pytest prints the one line once, not chained.
        pytest.fail(error, pytrace=False)

    def run(self, *, check: bool = True, **overrides: Any) -> RunResult:
        """Run the plan (``repeat`` times, with ``--gashammer-repeat``) and return its (last) result."""
        __tracebackhide__ = True
        plan = self.plan(**overrides)
        results: list[RunResult] = []
        for _ in range(self.repeat):
            error: str | None = None
            try:
                hive = (
                    self._isolated_hive() if plan.isolated and self._isolated_hive is not None else self.hive
                )
                result = hive.run(plan, progress=self._progress_factory())
            except GashammerError as exc:
                error = str(exc)
            if error is not None:
                pytest.fail(error, pytrace=False)
            self.results.append(result)
            self._on_result(result)
            results.append(result)
        if self._on_runs is not None:
            self._on_runs(results)
        if check:
            for result in results:
                result.check()
        return results[-1]
