"""A capacity search in telemetry and in the reports: the search's own ``runs`` row with
``capacity_json``, its steps tied to it by ``capacity_search`` and ``capacity_step``, the HTML
report's envelope chart and step table, and the terminal lines; over a fake chain of known capacity,
stored through the real recorder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_gashammer.hive.capacity import run_capacity
from pytest_gashammer.report.html import render_report
from pytest_gashammer.report.terminal import capacity_lines, format_run_summary
from pytest_gashammer.results import CapacityFigures, RunResult
from pytest_gashammer.scenario.spec import ScenarioPlan
from pytest_gashammer.telemetry.parquet import load
from pytest_gashammer.telemetry.recorder import TelemetryRecorder
from tests.unit.test_capacity import FakeDevnet, fake_chain_step, search_plan


class NamedDevnet(FakeDevnet):
    kind = "embedded"


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunResult]:
    directory = tmp_path_factory.mktemp("telemetry")
    recorder = TelemetryRecorder(directory)
    devnet = NamedDevnet()

    def run_step(plan: ScenarioPlan) -> tuple[RunResult, str | None]:
        run_id = recorder.begin(plan, devnet, node_version="fake 1")
        result = fake_chain_step(plan)
        recorder.end(run_id, reports=[], shares=[], origin_unix_ns=None, result=result)
        return result, run_id

    try:
        result = run_capacity(
            search_plan(max_steps=6), run_step, devnet=devnet, node_version="fake 1", telemetry=recorder
        )
    finally:
        recorder.close()
    return directory, result


def test_the_search_row_holds_its_figures_and_every_step_names_it(stored: tuple[Path, RunResult]) -> None:
    directory, result = stored
    assert result.capacity is not None
    runs = load(directory, tables=["runs"]).runs.to_pylist()
    searches = [row for row in runs if row["capacity_json"] is not None]
    assert len(searches) == 1
    search = searches[0]
    assert search["capacity_search"] is None and search["capacity_step"] is None
    figures = CapacityFigures.from_dict(json.loads(search["capacity_json"]))
    assert figures == result.capacity
    # Its row is the step at the maximum: its target, figures and verdicts, the capacity verdict first.
    assert search["target_gas_per_sec"] == figures.max_gas_per_sec == search["offered_gas_per_sec"]
    steps = sorted(
        (row for row in runs if row["capacity_search"] is not None), key=lambda r: r["capacity_step"]
    )
    assert [row["capacity_search"] for row in steps] == [search["run_id"]] * 6
    assert [row["capacity_step"] for row in steps] == list(range(6))
    assert [row["run_id"] for row in steps] == [step.run_id for step in figures.steps]
    assert [row["target_gas_per_sec"] for row in steps] == [s.offered_gas_per_sec for s in figures.steps]


def test_the_html_report_draws_the_envelope_and_lists_the_steps(
    stored: tuple[Path, RunResult], tmp_path: Path
) -> None:
    directory, result = stored
    assert result.capacity is not None
    page = render_report(directory, tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.count('data-chart="capacity-envelope"') == 1
    assert "capacity envelope: included gas and inclusion latency against offered gas" in page
    assert page.count('<tr class="capacity-step') == 6
    assert page.count("(capacity step ") == 12  # each step in the run list and in its heading
    assert "maximum</span>" in page and "stopped on max_steps" in page
    # How each step stood when judged: the fake chain past its ceiling falls behind at once.
    assert "<td>steady at 4 s</td>" in page and '<span class="failed">falling behind</span> at 4 s' in page
    assert "<script" not in page


def test_the_terminal_summary_says_the_maximum_and_every_step(stored: tuple[Path, RunResult]) -> None:
    _, result = stored
    summary = result.summary_dict()
    lines = capacity_lines(summary["capacity"])
    assert lines[0].startswith("  capacity   max ") and "95 % " in lines[0] and "6 steps" in lines[0]
    assert len(lines) == 7 and lines[1].startswith("    step 0: offered 1.00 Mgas/s")
    assert any("missed slo.min_gas_ratio" in line for line in lines)
    assert "  steady at 4 s  met" in lines[1]
    assert lines[0] in format_run_summary("t.py::test_capacity", summary)
    assert capacity_lines(None) == []


def test_gashammer_summary_prints_a_stored_search_as_it_was_live(stored: tuple[Path, RunResult]) -> None:
    from pytest_gashammer.cli import summary_dict

    directory, result = stored
    tables = load(directory, tables=["runs", "verdicts"])
    search = next(row for row in tables.runs.to_pylist() if row["capacity_json"] is not None)
    verdicts = tables.for_run(search["run_id"]).verdicts.to_pylist()
    assert capacity_lines(summary_dict(search, verdicts)["capacity"]) == capacity_lines(
        result.summary_dict()["capacity"]
    )
    assert [v["name"] for v in verdicts][0] == "capacity"


def test_a_run_ended_with_its_origin_stores_that_t0(tmp_path: Path) -> None:
    recorder = TelemetryRecorder(tmp_path)
    plan = search_plan(max_steps=2)
    try:
        first = recorder.begin(plan, NamedDevnet(), node_version="fake 1", started_unix_ns=1_000)
        recorder.end(first, reports=[], shares=[], origin_unix_ns=5_000)
        second = recorder.begin(plan, NamedDevnet(), node_version="fake 1", started_unix_ns=2_000)
        recorder.end(second, reports=[], shares=[], origin_unix_ns=None)
    finally:
        recorder.close()
    origins = {
        row["run_id"]: row["origin_unix_ns"] for row in load(tmp_path, tables=["runs"]).runs.to_pylist()
    }
    # Without an origin the run's begin stands in for t=0.
    assert origins == {first: 5_000, second: 2_000}
