"""Hooks a conftest.py or another plugin can implement to extend pytest-gashammer."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec
def pytest_gashammer_run_finished(item: pytest.Item, result: Any) -> None:
    """Called in the process that ran the test, after each ``hammer.run()``, before verdicts are enforced.

    ``result`` is the :class:`pytest_gashammer.RunResult`. Example: push key figures to a
    dashboard, or archive ``result.summary_dict()``.
    """


@pytest.hookspec
def pytest_gashammer_report_sections(config: pytest.Config, directory: Any) -> list[tuple[str, str]]:
    """Extra sections for the HTML report: return ``[(title, html), ...]``.

    ``directory`` holds the session's telemetry (read it with
    ``pytest_gashammer.telemetry.parquet.load``). Called in the controller once the runs are over;
    the HTML is inserted as given.
    """
    return []


@pytest.hookspec
def pytest_gashammer_summary_lines(
    config: pytest.Config, nodeid: str, run: dict[str, Any], lines: list[str]
) -> None:
    """Change the terminal summary of one run in place. ``run`` is ``RunResult.summary_dict()``.

    Called in the controller process, so it also sees runs from xdist workers.
    """
