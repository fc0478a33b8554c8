"""What the L1 monitor saw, in telemetry and in the HTML report: the ``batches`` and ``assertions``
tables, the ``runs`` row's ``l1_json``, and the report's L1 section (figures, two charts, the first
batches and assertions), from a synthetic run carrying ``L1Figures``."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pytest_gashammer.report.html import CHARTS, L1_CHARTS, render_report, report_html
from pytest_gashammer.results import L1Assertion, L1Batch, L1Figures, LatencyStats, RunResult
from pytest_gashammer.telemetry.parquet import (
    ParquetRunWriter,
    RunInfo,
    assertion_rows,
    batch_rows,
    l1_assertions,
    l1_batches,
    load,
)
from pytest_gashammer.telemetry.schema import ASSERTIONS, BATCHES, SCHEMA_VERSION, schema_version_of
from tests.unit.test_telemetry_parquet import store
from tests.unit.test_telemetry_synthetic import SyntheticRun, synthetic_report

NAN = math.nan


def h(byte: int) -> str:
    return "0x" + f"{byte:02x}" * 32


def batches(count: int = 4) -> list[L1Batch]:
    """``count`` batches a second apart: one whose data could not be decoded (the third), one that
    carried none of the run's blocks (the last), the others three L2 blocks each."""
    rows = []
    for n in range(count):
        undecodable, outside = n == 2, n == count - 1
        rows.append(
            L1Batch(
                sequence_number=n,
                l1_block=100 + n,
                l1_tx=h(0x10 + n % 200),
                before_acc=h(n % 250),
                after_acc=h(n % 250 + 1),
                delayed_messages_read=0,
                data_bytes=1_000 + 100 * n,
                l1_gas=150_000 + 1_000 * n,
                first_l2_block=None if undecodable else 3 * n + 1,
                last_l2_block=None if undecodable else 3 * n + 3,
                l2_transactions=0 if undecodable else 40 + n,
                seen_at=1.0 + n,
                lag_max_s=NAN if undecodable or outside else 0.5 + 0.25 * n,
                decode_error="bad_brotli: the brotli stream is corrupt" if undecodable else None,
            )
        )
    return rows


def assertions() -> list[L1Assertion]:
    return [
        L1Assertion(h(0xA1), h(0xA0), 2, h(0xB1), 103, 2.5, confirmed_l1_block=106, confirmed_at=3.6),
        L1Assertion(h(0xA2), h(0xA1), 4, h(0xB2), 108, 4.5),  # not confirmed while watched
    ]


def figures(batch_rows_: list[L1Batch] | None = None) -> L1Figures:
    rows = batches() if batch_rows_ is None else batch_rows_
    return L1Figures(
        l1_rpc_url="http://127.0.0.1:30001",
        sequencer_inbox="0x" + "5e" * 20,
        rollup="0x" + "70" * 20,
        batches=len(rows),
        blocks_of_run=9,
        blocks_posted=6,
        batch_lag=LatencyStats(0.62, 0.9, 1.01, 1.02, 6),
        bytes_per_batch=1_150.0,
        l1_gas_per_batch=151_500.0,
        bytes_per_l2_tx=27.4,
        l1_gas_per_l2_tx=3_600.0,
        assertions=2,
        confirmations=1,
        assertion_lag=LatencyStats(1.5, 1.5, 1.5, 1.5, 2),
        confirmation_lag=LatencyStats(NAN, NAN, NAN, NAN, 0),  # none measured: stored as nulls
        batch_rows=rows,
        assertion_rows=assertions(),
        problems=["the L1 did not answer eth_getLogs for 3.0 s from 5.1 s"],
    )


def with_l1(run: SyntheticRun, l1: L1Figures | None) -> SyntheticRun:
    return dataclasses.replace(run, result=dataclasses.replace(run.result, l1=l1))


def plain(row: Any) -> dict[str, Any]:
    """A row's fields with ``nan`` as ``None``, so two rows compare equal field by field."""
    fields = dataclasses.asdict(row) if dataclasses.is_dataclass(row) else dict(row)
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in fields.items()}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], RunResult]:
    """A run with an L1, a run without, and a run cut short (no result)."""
    directory = tmp_path_factory.mktemp("telemetry")
    with_figures = with_l1(synthetic_report(6_000, seed=1), figures())
    with ParquetRunWriter(directory) as writer:
        first = store(writer, with_figures, nodeid="tests/test_l1.py::test_posting")
        second = store(writer, synthetic_report(3_000, seed=2), nodeid="tests/test_l1.py::test_none")
        writer.begin_run(
            RunInfo.for_plan(with_figures.plan, run_id="cut-short", test_nodeid="t.py::test_cut")
        )
    return directory, [first, second, "cut-short"], with_figures.result


# -- the tables ------------------------------------------------------------------------------------


def test_the_batches_and_assertions_tables_round_trip_every_field(
    stored: tuple[Path, list[str], RunResult],
) -> None:
    directory, (first, second, cut), result = stored
    assert result.l1 is not None
    tables = load(directory)
    assert tables.batches.schema.equals(BATCHES) and tables.assertions.schema.equals(ASSERTIONS)
    assert (tables.batches.num_rows, tables.assertions.num_rows) == (4, 2)
    assert set(tables.batches.column("run_id").to_pylist()) == {first}
    assert [plain(b) for b in l1_batches(tables.batches)] == [plain(b) for b in result.l1.batch_rows]
    assert l1_assertions(tables.assertions) == result.l1.assertion_rows
    # A run without an L1 (or without a result) leaves no file behind.
    for table in ("batches", "assertions"):
        files = sorted(p.parent.name for p in (directory / table).glob(f"*/{table}.parquet"))
        assert files == [f"run={first}"], table
        file = directory / table / f"run={first}" / f"{table}.parquet"
        assert schema_version_of(pq.read_schema(file)) == SCHEMA_VERSION
    assert tables.for_run(second).batches.num_rows == 0 and tables.for_run(cut).assertions.num_rows == 0


def test_hashes_are_raw_bytes_and_what_was_not_measured_is_null(
    stored: tuple[Path, list[str], RunResult],
) -> None:
    directory, _, _ = stored
    rows = {row["sequence_number"]: row for row in load(directory, tables=["batches"]).batches.to_pylist()}
    assert rows[0]["l1_tx"] == bytes([0x10]) * 32 and rows[1]["after_acc"] == bytes([0x02]) * 32
    assert rows[0]["lag_max_s"] == 0.5 and rows[0]["seen_at_s"] == 1.0
    undecodable, outside = rows[2], rows[3]
    assert undecodable["first_l2_block"] is None and undecodable["lag_max_s"] is None
    assert undecodable["decode_error"].startswith("bad_brotli")
    assert outside["lag_max_s"] is None and outside["decode_error"] is None and outside["last_l2_block"] == 12
    pending = load(directory, tables=["assertions"]).assertions.to_pylist()[1]
    assert pending["confirmed_l1_block"] is None and pending["confirmed_at_s"] is None
    assert pending["created_at_s"] == 4.5 and pending["parent_hash"] == bytes([0xA1]) * 32


def test_the_runs_row_holds_the_whole_l1_figures_as_standard_json(
    stored: tuple[Path, list[str], RunResult],
) -> None:
    directory, (first, second, _), result = stored
    runs = {row["run_id"]: row for row in load(directory, tables=["runs"]).runs.to_pylist()}

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    stored_l1 = json.loads(runs[first]["l1_json"], parse_constant=refuse)
    assert stored_l1["confirmation_lag"] == {"p50": None, "p90": None, "p99": None, "max": None, "count": 0}
    rebuilt = L1Figures.from_dict(stored_l1)
    assert result.l1 is not None
    assert [plain(b) for b in rebuilt.batch_rows] == [plain(b) for b in result.l1.batch_rows]
    assert rebuilt.problems == result.l1.problems and rebuilt.blocks_posted == 6
    assert runs[second]["l1_json"] is None


def test_a_run_cut_short_with_a_result_keeps_its_l1_rows(tmp_path: Path) -> None:
    run = with_l1(synthetic_report(100), figures())
    with ParquetRunWriter(tmp_path) as writer:
        writer.begin_run(RunInfo.for_plan(run.plan, run_id="partial"))
        writer.end_run("partial", result=run.result, status="interrupted")
    tables = load(tmp_path)
    assert tables.runs.to_pylist()[0]["status"] == "interrupted"
    assert (tables.batches.num_rows, tables.assertions.num_rows) == (4, 2)


def test_an_l1_that_saw_nothing_writes_no_rows(tmp_path: Path) -> None:
    empty = dataclasses.replace(figures([]), assertion_rows=[], assertions=0, confirmations=0)
    with ParquetRunWriter(tmp_path) as writer:
        store(writer, with_l1(synthetic_report(100), empty))
    assert not (tmp_path / "batches").exists() and not (tmp_path / "assertions").exists()
    assert json.loads(load(tmp_path).runs.to_pylist()[0]["l1_json"])["batches"] == 0


def test_the_rows_follow_the_schemas_column_for_column() -> None:
    assert [list(row) for row in batch_rows("r", batches())] == [BATCHES.names] * 4
    assert [list(row) for row in assertion_rows("r", assertions())] == [ASSERTIONS.names] * 2
    table = pa.Table.from_pylist(batch_rows("r", batches()), schema=BATCHES)
    assert [plain(b) for b in l1_batches(table)] == [plain(b) for b in batches()]


# -- the HTML report -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(stored: tuple[Path, list[str], RunResult], tmp_path_factory: pytest.TempPathFactory) -> str:
    directory, _, _ = stored
    return render_report(directory, tmp_path_factory.mktemp("out") / "report.html").read_text()


def _section(page: str, run: int) -> str:
    found = re.search(rf'<section id="run-{run}-l1">.*?</section>', page, re.S)
    assert found is not None, run
    return found.group(0)


def _cells(html: str, row_class: str) -> list[list[str]]:
    rows = re.findall(rf'<tr class="{row_class}">(.*?)</tr>', html, re.S)
    return [[cell.strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows]


def test_the_l1_section_shows_the_figures(page: str) -> None:
    section = _section(page, 1)
    kv = dict(re.findall(r"<tr><th>([^<]+)</th><td>(.*?)</td></tr>", section, re.S))
    assert kv["L1"] == "<code>http://127.0.0.1:30001</code>"
    assert kv["batches"] == "4"
    assert kv["blocks posted"] == "6 of 9 L2 blocks of the run (66.7 %)"
    assert kv["assertions"] == "2, 1 confirmed"
    cost = _rows(section, "l1-cost")
    assert cost == [["data bytes", "1,150", "27.4"], ["L1 gas", "151,500", "3,600"]]
    lags = _rows(section, "l1-lags")
    assert lags[0] == ["batch-posting lag, per L2 block", "620 ms", "1.01 s", "1.02 s", "6"]
    assert lags[2] == ["confirmation lag, per assertion", "-", "-", "-", "0"]  # none measured
    assert "the L1 did not answer eth_getLogs for 3.0 s from 5.1 s" in section


def _rows(section: str, table_class: str) -> list[list[str]]:
    table = re.search(rf'<table class="{table_class}">(.*?)</table>', section, re.S)
    assert table is not None, table_class
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows if "<td" in row]


def test_the_l1_charts_and_the_batch_and_assertion_tables(page: str) -> None:
    section = _section(page, 1)
    for name, title in L1_CHARTS:
        figure = re.search(rf'<figure class="chart" id="run-1-chart-{name}".*?</figure>', section, re.S)
        assert figure is not None and "<svg" in figure.group(0) and "<path" in figure.group(0), name
        assert title in figure.group(0)
    rows = _cells(section, "l1-batch")
    assert [row[0] for row in rows] == ["0", "1", "2", "3"]
    assert rows[0][:8] == ["0", "100", "1.00 s", "1–3", "40", "1,000", "150,000", "500 ms"]
    assert rows[2][3] == "-" and "undecodable: bad_brotli" in rows[2][8]
    assert rows[3][7] == "-"  # carried none of the run's blocks
    assert f"<code>{h(0x10)}</code>" in rows[0][8]
    confirmed, pending = _cells(section, "l1-assertion")
    assert confirmed == [f"<code>{h(0xA1)}</code>", "2", "103", "2.50 s", "106", "3.60 s"]
    assert pending[4:] == ["-", "pending"]


def test_a_run_without_an_l1_has_no_l1_section_and_no_error(page: str) -> None:
    for run in (2, 3):
        article = re.search(rf'<article class="run" id="run-{run}".*?</article>', page, re.S)
        assert article is not None
        assert f'id="run-{run}-l1"' not in article.group(0) and "chart-l1-" not in article.group(0)
    assert page.count("<h3>L1</h3>") == 1
    assert {name for name, _ in CHARTS}.isdisjoint(name for name, _ in L1_CHARTS)


def test_loaded_tables_render_the_same_section_also_without_the_l1_tables(
    stored: tuple[Path, list[str], RunResult], page: str
) -> None:
    directory, (first, _, _), _ = stored
    html = report_html(load(directory), run_ids=[first])
    assert _cells(_section(html, 1), "l1-batch") == _cells(_section(page, 1), "l1-batch")
    # Tables loaded without batches and assertions: the rows come from l1_json.
    without = load(directory, tables=["runs", "verdicts", "edges", "transactions", "blocks", "events"])
    html = report_html(without, run_ids=[first])
    assert _cells(_section(html, 1), "l1-batch") == _cells(_section(page, 1), "l1-batch")
    assert len(_cells(_section(html, 1), "l1-assertion")) == 2


def test_long_runs_list_the_first_batches_and_say_how_many_more(tmp_path: Path) -> None:
    many = batches(130)
    with ParquetRunWriter(tmp_path) as writer:
        store(writer, with_l1(synthetic_report(500), figures(many)))
    section = _section(report_html(tmp_path), 1)
    assert len(_cells(section, "l1-batch")) == 50
    assert "80 more batches in the telemetry" in section


def test_unreadable_stored_l1_figures_are_one_line_not_an_error(
    stored: tuple[Path, list[str], RunResult],
) -> None:
    directory, (first, _, _), _ = stored
    tables = load(directory).for_run(first)
    index = tables.runs.schema.get_field_index("l1_json")
    tables.runs = tables.runs.set_column(index, "l1_json", pa.array(['{"batches": 4}']))
    section = _section(report_html(tables), 1)
    assert "the stored L1 figures could not be read" in section and "chart-l1-" not in section
