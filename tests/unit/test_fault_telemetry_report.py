"""Faults of a run's timeline in telemetry and reports: the ``faults`` table, the stored ``runs``
column, the HTML report's bands and table, and the terminal summary's lines."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pytest_gashammer.cli import main, summary_dict
from pytest_gashammer.report.charts import fault_bands
from pytest_gashammer.report.html import CHARTS, render_report, report_html
from pytest_gashammer.report.terminal import fault_lines, format_run_summary
from pytest_gashammer.results import FaultImpact, RunResult
from pytest_gashammer.telemetry.parquet import ParquetRunWriter, RunInfo, fault_impacts, fault_rows, load
from pytest_gashammer.telemetry.schema import FAULTS, SCHEMA_VERSION, schema_version_of
from tests.unit.test_telemetry_parquet import store
from tests.unit.test_telemetry_synthetic import SyntheticRun, synthetic_report

#: The charts with a run-clock time axis: each shades every fault. The others have no time axis.
TIME_CHARTS = ("throughput-gas", "throughput-tx", "latency-time", "blocks")

PAUSE_LINE = (
    "  fault node.pause #0 at 1.0–2.0 s: included 9.90 Mgas/s → 0 gas/s → 10.10 Mgas/s, "
    "p99 300 ms → 2.10 s → 400 ms, recovered after 1.20 s, 412 delayed, 0 lost"
)
LATENCY_LINE = (
    "  fault rpc.latency #1 at 3.5–4.5 s: included 9.90 Mgas/s → 5.00 Mgas/s → -, "
    "p99 300 ms → - → 400 ms, never recovered, 7 delayed, 2 lost"
)
UNAPPLIED_LINE = "  fault feed.drop #2 planned at 5.0–5.5 s: not applied, error: feed proxy unreachable"


def impacts() -> list[FaultImpact]:
    """Three faults of a 6 s synthetic run: one that recovered, one that never did (with windows
    the run did not cover), and one that could not be applied."""
    return [
        FaultImpact(
            index=0,
            kind="node.pause",
            params={},
            planned_at=1.0,
            planned_duration=1.0,
            started_at=1.0,
            ended_at=2.0,
            started_unix_ns=1_700_000_001_000_000_000,
            ended_unix_ns=1_700_000_002_000_000_000,
            included_gas_per_sec_before=9.9e6,
            included_gas_per_sec_during=0.0,
            included_gas_per_sec_after=10.1e6,
            inclusion_p99_before=0.3,
            inclusion_p99_during=2.1,
            inclusion_p99_after=0.4,
            recovered_after_s=1.2,
            delayed=412,
            lost=0,
            effect={"paused_s": 1.0},
        ),
        FaultImpact(
            index=1,
            kind="rpc.latency",
            params={"ms": 100},
            planned_at=3.5,
            planned_duration=1.0,
            started_at=3.5,
            ended_at=4.5,
            started_unix_ns=1_700_000_003_500_000_000,
            ended_unix_ns=1_700_000_004_500_000_000,
            included_gas_per_sec_before=9.9e6,
            included_gas_per_sec_during=5e6,
            inclusion_p99_before=0.3,
            inclusion_p99_after=0.4,
            recovered_after_s=None,
            delayed=7,
            lost=2,
            lost_examples=["0x" + "aa" * 32, "0x" + "bb" * 32],
            effect={"calls": 42, "delayed_ms": [100, 100]},
        ),
        FaultImpact(
            index=2,
            kind="feed.drop",
            params={"share": 0.5},
            planned_at=5.0,
            planned_duration=0.5,
            error="feed proxy unreachable",
        ),
    ]


def plain(impact: FaultImpact | dict[str, Any]) -> dict[str, Any]:
    """A fault's fields with ``nan`` as ``None``, so two faults compare equal field by field."""
    fields = dataclasses.asdict(impact) if isinstance(impact, FaultImpact) else dict(impact)
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in fields.items()}


def with_faults(run: SyntheticRun, faults: list[FaultImpact]) -> SyntheticRun:
    return dataclasses.replace(run, result=dataclasses.replace(run.result, faults=faults))


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], RunResult]:
    """A directory with a run with faults, a run without, and a run cut short (no result)."""
    directory = tmp_path_factory.mktemp("telemetry")
    faulted = with_faults(synthetic_report(6_000, seed=1), impacts())
    with ParquetRunWriter(directory) as writer:
        first = store(writer, faulted, nodeid="tests/test_faults.py::test_pause")
        second = store(writer, synthetic_report(3_000, seed=2), nodeid="tests/test_faults.py::test_none")
        writer.begin_run(RunInfo.for_plan(faulted.plan, run_id="cut-short", test_nodeid="t.py::test_cut"))
    return directory, [first, second, "cut-short"], faulted.result


# -- the faults table ------------------------------------------------------------------------------


def test_the_faults_table_round_trips_every_field(stored: tuple[Path, list[str], RunResult]) -> None:
    directory, (first, second, cut), result = stored
    tables = load(directory)
    assert tables.faults.schema.equals(FAULTS)
    assert tables.faults.num_rows == 3
    assert set(tables.faults.column("run_id").to_pylist()) == {first}
    assert [plain(impact) for impact in fault_impacts(tables.faults)] == [plain(i) for i in result.faults]
    # A run without faults (or without a result) leaves no file behind, only the faulted run has one.
    assert sorted(p.parent.name for p in (directory / "faults").glob("*/faults.parquet")) == [f"run={first}"]
    assert tables.for_run(second).faults.num_rows == 0 and tables.for_run(cut).faults.num_rows == 0
    assert load(directory, tables=["faults"]).faults.num_rows == 3
    file = directory / "faults" / f"run={first}" / "faults.parquet"
    assert schema_version_of(pq.read_schema(file)) == SCHEMA_VERSION


def test_unmeasured_figures_are_null_never_zero_or_nan(stored: tuple[Path, list[str], RunResult]) -> None:
    directory, _, _ = stored
    rows = {row["fault_index"]: row for row in load(directory).faults.to_pylist()}
    pause, latency, unapplied = rows[0], rows[1], rows[2]
    assert pause["included_gas_per_sec_during"] == 0.0  # measured: nothing was included
    assert latency["included_gas_per_sec_after"] is None and latency["inclusion_p99_during"] is None
    assert latency["recovered_after_s"] is None  # never recovered
    assert pause["recovered_after_s"] == 1.2
    assert unapplied["started_at_s"] is None and unapplied["ended_unix_ns"] is None
    assert unapplied["error"] == "feed proxy unreachable" and pause["error"] is None
    assert json.loads(latency["params_json"]) == {"ms": 100}
    assert json.loads(latency["effect_json"]) == {"calls": 42, "delayed_ms": [100, 100]}
    assert json.loads(latency["lost_examples_json"]) == ["0x" + "aa" * 32, "0x" + "bb" * 32]
    assert (latency["delayed"], latency["lost"]) == (7, 2)
    assert pause["started_unix_ns"] == 1_700_000_001_000_000_000


def test_the_runs_row_holds_the_faults_as_standard_json(stored: tuple[Path, list[str], RunResult]) -> None:
    directory, (first, _, _), result = stored
    row = load(directory, tables=["runs"]).for_run(first).runs.to_pylist()[0]

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    # Fields, not the dataclass's repr; no NaN, which DuckDB's JSON reader refuses.
    stored_faults = json.loads(row["faults_json"], parse_constant=refuse)
    assert stored_faults == [plain(impact) for impact in result.faults]


def test_a_run_cut_short_with_a_result_keeps_its_faults(tmp_path: Path) -> None:
    run = with_faults(synthetic_report(100), impacts()[:1])
    with ParquetRunWriter(tmp_path) as writer:
        writer.begin_run(RunInfo.for_plan(run.plan, run_id="partial"))
        writer.end_run("partial", result=run.result, status="interrupted")
    tables = load(tmp_path)
    assert tables.runs.to_pylist()[0]["status"] == "interrupted"
    assert [plain(i) for i in fault_impacts(tables.faults)] == [plain(impacts()[0])]


def test_fault_rows_follow_the_schema_column_for_column() -> None:
    rows = fault_rows("r", impacts())
    assert [list(row) for row in rows] == [FAULTS.names] * 3


# -- the HTML report -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(stored: tuple[Path, list[str], RunResult], tmp_path_factory: pytest.TempPathFactory) -> str:
    directory, _, _ = stored
    return render_report(directory, tmp_path_factory.mktemp("out") / "report.html").read_text()


def _figure(page: str, run: int, chart: str) -> str:
    found = re.search(rf'<figure class="chart" id="run-{run}-chart-{chart}".*?</figure>', page, re.S)
    assert found is not None, (run, chart)
    return found.group(0)


def test_every_time_chart_shades_and_labels_every_fault(page: str) -> None:
    for chart in TIME_CHARTS:
        figure = _figure(page, 1, chart)
        for impact in impacts():
            # The band (an SVG group holding its path) and its label, per fault.
            band = re.search(rf'<g id="run-1-chart-{chart}-fault-{impact.index}">\s*<path', figure)
            assert band is not None, (chart, impact.label)
            assert f'id="run-1-chart-{chart}-fault-{impact.index}-label"' in figure
            assert impact.label in figure
        assert "feed.drop #2 (not applied)" in figure
    for chart in ("latency-histogram", "errors"):  # no time axis, no bands
        assert "-fault-" not in _figure(page, 1, chart)
    assert {name for name, _ in CHARTS} >= set(TIME_CHARTS)


def test_the_bands_sit_where_the_faults_were_active() -> None:
    bands = fault_bands(impacts())
    assert [(b.label, b.start, b.end, b.applied) for b in bands] == [
        ("node.pause #0", 1.0, 2.0, True),
        ("rpc.latency #1", 3.5, 4.5, True),
        ("feed.drop #2 (not applied)", 5.0, 5.5, False),  # its planned span, outlined
    ]
    never_ended = dataclasses.replace(impacts()[0], ended_at=None)
    assert (fault_bands([never_ended])[0].start, fault_bands([never_ended])[0].end) == (1.0, 2.0)


def test_the_fault_table_shows_every_fault(page: str) -> None:
    section = re.search(r'<section id="run-1-faults">.*?</section>', page, re.S)
    assert section is not None
    text = section.group(0)
    rows = re.findall(r'<tr class="fault" id="run-1-fault-(\d)">(.*?)</tr>', text, re.S)
    assert [index for index, _ in rows] == ["0", "1", "2"]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for _, row in rows]
    pause, latency, unapplied = cells
    assert pause[:4] == ["node.pause #0", "<code>-</code>", "at 1.00 s for 1.00 s", "1.00&ndash;2.00 s"]
    assert pause[4:10] == ["9.90 Mgas/s", "0 gas/s", "10.10 Mgas/s", "300 ms", "2.10 s", "400 ms"]
    assert pause[10:13] == ["1.20 s", "412", "0"] and pause[13] == "paused_s=1.0"
    assert latency[1] == "<code>ms=100</code>"
    assert latency[6] == "-" and latency[8] == "-"  # windows the run did not cover
    assert "never" in latency[10] and latency[11] == "7"
    assert latency[12].startswith("2<details>") and "0x" + "aa" * 32 in latency[12]
    assert latency[13] == "calls=42, delayed_ms=[100, 100]"
    assert unapplied[3] == "not applied" and unapplied[10] == "-"
    assert "error: feed proxy unreachable" in text


def test_a_run_without_faults_has_no_fault_section_and_no_bands(page: str) -> None:
    run_two = re.search(r'<article class="run" id="run-2".*?</article>', page, re.S)
    assert run_two is not None
    assert 'id="run-2-faults"' not in run_two.group(0) and "Faults</h3>" not in run_two.group(0)
    assert "-fault-" not in run_two.group(0)
    run_one = re.search(r'<article class="run" id="run-1".*?</article>', page, re.S)
    assert run_one is not None and run_one.group(0).count("Faults</h3>") == 1


def test_loaded_tables_render_the_same_faults(stored: tuple[Path, list[str], RunResult]) -> None:
    directory, (first, second, _), _ = stored
    html = report_html(load(directory), run_ids=[first, second])
    assert 'id="run-1-faults"' in html and 'id="run-2-faults"' not in html
    assert 'id="run-1-chart-blocks-fault-1"' in html


# -- the terminal summary --------------------------------------------------------------------------


def test_one_terminal_line_per_fault() -> None:
    faults = [dataclasses.asdict(impact) for impact in impacts()]
    assert fault_lines(faults) == [PAUSE_LINE, LATENCY_LINE, UNAPPLIED_LINE]
    applied_with_error = dataclasses.replace(impacts()[0], error="resume failed: node gone")
    assert fault_lines([dataclasses.asdict(applied_with_error)]) == [
        PAUSE_LINE + ", error: resume failed: node gone"
    ]
    assert fault_lines([]) == []


def test_the_run_summary_lists_the_faults_before_the_verdicts(
    stored: tuple[Path, list[str], RunResult],
) -> None:
    _, _, result = stored
    lines = format_run_summary("t.py::test_pause", result.summary_dict())
    verdicts = next(i for i, line in enumerate(lines) if line.startswith("  verdicts"))
    assert lines[verdicts - 3 : verdicts] == [PAUSE_LINE, LATENCY_LINE, UNAPPLIED_LINE]
    without = format_run_summary("t.py::test_none", synthetic_report(500).result.summary_dict())
    assert not any("fault" in line for line in without)


def test_a_stored_run_prints_its_faults_as_the_live_run_did(
    stored: tuple[Path, list[str], RunResult], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, (first, _, _), result = stored
    assert main(["summary", str(directory), "--run", first]) == 0
    printed = capsys.readouterr().out.splitlines()
    live = format_run_summary("tests/test_faults.py::test_pause", result.summary_dict())
    assert printed[2:] == live[1:]
    assert PAUSE_LINE in printed and LATENCY_LINE in printed and UNAPPLIED_LINE in printed
    tables = load(directory, tables=("runs", "verdicts")).for_run(first)
    rebuilt = summary_dict(tables.runs.to_pylist()[0], tables.verdicts.to_pylist())
    assert [plain(f) for f in rebuilt["faults"]] == [plain(i) for i in result.faults]
