"""Each run figure is declared once (``results.RUN_FIGURES``): RunResult, its summary, the stored
``runs`` schema and row, and the summary read back from storage all hold exactly those figures."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from pytest_gashammer.cli import summary_dict
from pytest_gashammer.results import FIGURES, LATENCY_STATS, RUN_FIGURES, Latency, RunResult
from pytest_gashammer.telemetry import parquet
from pytest_gashammer.telemetry.parquet import RunInfo
from pytest_gashammer.telemetry.schema import RUNS
from tests.unit.test_telemetry_synthetic import SyntheticRun, synthetic_report

#: ``runs`` columns that are the run's own facts, not figures of its result.
RUN_FACTS = {
    "run_id",
    "schema_version",
    "status",
    "test_nodeid",
    "plan_json",
    "plugin_version",
    "build_sha",
    "git_commit",
    "host",
    "started_at",
    "ended_at",
    "origin_unix_ns",
    "capacity_search",
    "capacity_step",
}
#: What a summary carries besides the figures: the verdicts (a table of their own) and the notes
#: the devnet added (picked out of ``notes``).
SUMMARY_EXTRAS = {"verdicts", "devnet_notes", "run_notes"}
#: RunResult fields that are no figure of the ``runs`` row: lists and tables of their own, a setting,
#: and the run's id (the row's key, not a figure of it).
NOT_FIGURES = {"latency", "verdicts", "edges", "timeline", "fail_inconclusive", "run_id"}


@pytest.fixture(scope="module")
def run() -> SyntheticRun:
    synthetic = synthetic_report(600)
    synthetic.result.notes.append("devnet: anvil stranded 1 transaction(s)")
    return synthetic


def stored_row(run: SyntheticRun) -> dict[str, Any]:
    info = RunInfo.for_plan(run.plan, run_id="r")
    return parquet._run_row(parquet._Run(info, status="finished", ended_unix_ns=2, result=run.result))


def figure_columns() -> list[str]:
    return [column for figure in RUN_FIGURES for column in figure.columns]


def test_the_runs_schema_is_the_run_facts_and_every_figure() -> None:
    columns = figure_columns()
    assert len(columns) == len(set(columns))
    assert set(RUNS.names) == RUN_FACTS | set(columns)
    # Figures not known at the start follow the run's facts, in declaration order.
    later = [column for figure in RUN_FIGURES if not figure.at_start for column in figure.columns]
    assert RUNS.names[-len(later) :] == later


def test_the_runs_row_fills_every_column(run: SyntheticRun) -> None:
    row = stored_row(run)
    assert set(row) == set(RUNS.names)
    for figure in RUN_FIGURES:
        if figure.kind in ("json", "str") and figure.value(run.result) is None:
            continue
        assert all(row[column] is not None for column in figure.columns), figure.name


def test_the_summary_holds_every_figure(run: SyntheticRun) -> None:
    summary = run.result.summary_dict()
    assert set(summary) == set(FIGURES) | SUMMARY_EXTRAS
    latency = summary["latency_inclusion"]
    assert set(latency) == set(LATENCY_STATS)


def test_every_figure_of_a_result_is_declared() -> None:
    fields = {field.name for field in dataclasses.fields(RunResult)} - NOT_FIGURES
    attributes = {(figure.attribute or figure.name).split(".")[0] for figure in RUN_FIGURES}
    # Every RunResult field is a figure (or is named above as none); "passed" is a property.
    assert fields <= attributes
    assert attributes - fields <= {"passed", "latency"}
    latencies = {figure.attribute for figure in RUN_FIGURES if figure.kind == "latency"}
    assert latencies == {f"latency.{field.name}" for field in dataclasses.fields(Latency)}


def test_a_stored_run_reads_back_as_the_live_summary(run: SyntheticRun) -> None:
    live = run.result.summary_dict()
    verdicts = [{"run_id": "r", **v, "evidence_json": "{}"} for v in live["verdicts"]]
    stored = summary_dict(stored_row(run), verdicts)
    assert set(stored) == set(live)
    for name, value in live.items():
        assert _same(stored[name], value), name


def _same(left: Any, right: Any) -> bool:
    if isinstance(right, float) and math.isnan(right):
        return isinstance(left, float) and math.isnan(left)
    if isinstance(right, dict) and isinstance(left, dict):
        return set(left) == set(right) and all(_same(left[key], right[key]) for key in right)
    if isinstance(right, float):
        return left == pytest.approx(right)
    return bool(left == right)
