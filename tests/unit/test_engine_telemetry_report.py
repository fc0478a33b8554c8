"""The Engine API figures in telemetry and in the reports: the ``engine_calls`` and ``engine_blocks``
tables, the ``runs`` row's ``engine_json``, the HTML report's Engine API section and the terminal line,
from a synthetic run carrying ``EngineFigures``."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from pytest_gashammer.chain.engine import EngineCall
from pytest_gashammer.oracle.engine import EngineRun, engine_figures
from pytest_gashammer.report.html import render_report
from pytest_gashammer.report.terminal import engine_lines
from pytest_gashammer.results import EngineFigures, RunResult
from pytest_gashammer.telemetry.parquet import ParquetRunWriter, load
from pytest_gashammer.telemetry.schema import ENGINE_BLOCKS, ENGINE_CALLS
from tests.unit.test_engine_oracle import T0, healthy_run
from tests.unit.test_telemetry_parquet import store
from tests.unit.test_telemetry_synthetic import synthetic_report


def figures_with_a_refusal() -> EngineFigures:
    run = healthy_run(6)
    refused = EngineCall(
        "newPayload", 3, T0 + 6.5, 0.002, "SYNCING", block_number=7, block_hash="0x" + "07" * 32
    )
    return engine_figures(EngineRun([*run.calls, refused], run.builds, 3, pool=run.pool), time_origin=T0)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], RunResult]:
    """A run whose blocks the plugin built, and one on a devnet that builds its own."""
    directory = tmp_path_factory.mktemp("telemetry")
    built = synthetic_report(2_000, seed=3)
    built = dataclasses.replace(
        built, result=dataclasses.replace(built.result, engine=figures_with_a_refusal())
    )
    with ParquetRunWriter(directory) as writer:
        first = store(writer, built, nodeid="tests/test_engine.py::test_built")
        second = store(writer, synthetic_report(1_000, seed=4), nodeid="tests/test_engine.py::test_own")
    return directory, [first, second], built.result


def test_the_engine_tables_hold_every_call_and_block_of_the_run(
    stored: tuple[Path, list[str], RunResult],
) -> None:
    directory, (first, second), result = stored
    assert result.engine is not None
    tables = load(directory)
    assert tables.engine_calls.schema.equals(ENGINE_CALLS) and tables.engine_blocks.schema.equals(
        ENGINE_BLOCKS
    )
    assert (tables.engine_calls.num_rows, tables.engine_blocks.num_rows) == (25, 6)
    calls = tables.engine_calls.to_pylist()
    assert {row["run_id"] for row in calls} == {first}
    assert [row["status"] for row in calls if row["method"] == "newPayload"] == ["VALID"] * 6 + ["SYNCING"]
    assert calls[0]["t_s"] == pytest.approx(1.0) and calls[0]["with_attributes"] is True
    assert calls[1]["block_hash"] == bytes(31) + bytes([1]) and calls[1]["transactions"] == 2
    blocks = tables.engine_blocks.to_pylist()
    assert [row["number"] for row in blocks] == [1, 2, 3, 4, 5, 6]
    assert blocks[0]["build_s"] == pytest.approx(0.04) and blocks[0]["driver_cpu_s"] == pytest.approx(0.005)
    assert tables.for_run(second).engine_calls.num_rows == 0
    assert not list((directory / "engine_calls").glob(f"run={second}*"))


def test_the_runs_row_holds_the_whole_engine_figures_as_standard_json(
    stored: tuple[Path, list[str], RunResult],
) -> None:
    directory, (first, second), result = stored
    runs = {row["run_id"]: row for row in load(directory, tables=["runs"]).runs.to_pylist()}

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    stored_engine = json.loads(runs[first]["engine_json"], parse_constant=refuse)
    rebuilt = EngineFigures.from_dict(stored_engine)
    assert result.engine is not None
    assert (
        rebuilt.statuses
        == result.engine.statuses
        == {
            "forkchoiceUpdated": {"VALID": 12},
            "getPayload": {"OK": 6},
            "newPayload": {"VALID": 6, "SYNCING": 1},
        }
    )
    assert len(rebuilt.call_rows) == 25 and rebuilt.block_rows[2].number == 3
    assert runs[second]["engine_json"] is None


def test_the_html_report_has_an_engine_section_only_for_the_run_that_built_blocks(
    stored: tuple[Path, list[str], RunResult], tmp_path: Path
) -> None:
    directory, _, _ = stored
    page = render_report(directory, tmp_path / "report.html").read_text()
    section = re.search(r'<section id="run-1-engine">.*?</section>', page, re.S)
    assert section is not None
    html = section.group(0)
    assert "<th>version</th><td>V3</td>" in html and "6 (2.0 transactions each)" in html
    assert 'id="run-1-chart-engine-latency"' in html and 'id="run-1-chart-engine-build"' in html
    assert '<span class="failed">SYNCING</span>' in html
    assert len(re.findall(r'<tr class="engine-block">', html)) == 6
    assert 'id="run-2-engine"' not in page


def test_the_terminal_line_names_the_build_import_and_odd_answers() -> None:
    figures = dataclasses.asdict(figures_with_a_refusal())
    first, second = engine_lines(figures)
    assert first.startswith(
        "  engine     V3  6 blocks (2.0 tx each)  build p50 40 ms p99 40 ms  import p50 55 ms"
    )
    assert second == "  engine answers  newPayload SYNCING x1"
    assert engine_lines(None) == []
