"""The HTML report: every section and chart for each run, self-contained, and the numbers behind the charts."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pytest_gashammer.report.charts import aggregate_run
from pytest_gashammer.report.html import CHARTS, render_report, report_html
from pytest_gashammer.results import LatencyStats
from pytest_gashammer.telemetry.parquet import ParquetRunWriter, RunInfo, load
from pytest_gashammer.telemetry.schema import SCHEMAS
from tests.unit.test_telemetry_parquet import store
from tests.unit.test_telemetry_synthetic import synthetic_report

SECTIONS = (
    "environment",
    "verdicts",
    "figures",
    "throughput",
    "latency",
    "errors",
    "blocks",
    "edges",
    "feed",
)


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    directory = tmp_path_factory.mktemp("telemetry")
    with ParquetRunWriter(directory) as writer:
        finished = store(writer, synthetic_report(6_000, seed=1), nodeid="tests/test_load.py::test_one")
        second = store(
            writer, synthetic_report(3_000, seed=2, feed=False), nodeid="tests/test_load.py::test_two"
        )
        cut = RunInfo.for_plan(synthetic_report(10).plan, run_id="cut-short", test_nodeid="t.py::test_cut")
        writer.begin_run(cut)
    return directory, [finished, second, "cut-short"]


@pytest.fixture(scope="module")
def page(telemetry: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> str:
    directory, _ = telemetry
    output = render_report(directory, tmp_path_factory.mktemp("out") / "report.html", title="nightly load")
    return output.read_text()


def test_every_run_has_every_section_and_chart(page: str, telemetry: tuple[Path, list[str]]) -> None:
    _, run_ids = telemetry
    assert "<title>nightly load</title>" in page
    for index, run_id in enumerate(run_ids, start=1):
        assert f'id="run-{index}" data-run-id="{run_id}"' in page
        for section in SECTIONS:
            assert f'id="run-{index}-{section}"' in page, (run_id, section)
    for index in (1, 2):  # finished runs: every chart, each an inline SVG
        for name, _title in CHARTS:
            figure = re.search(
                rf'<figure class="chart" id="run-{index}-chart-{name}".*?</figure>', page, re.S
            )
            assert figure is not None, (index, name)
            assert "<svg" in figure.group(0) and "<path" in figure.group(0)


def test_the_page_is_self_contained(page: str) -> None:
    assert "<script" not in page.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!#)""", page), "no link may leave the page"
    assert "url(http" not in page and "@import" not in page
    assert "<?xml" not in page  # SVGs are inlined as elements, not documents
    ids = re.findall(r'(?<![\w:-])id="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "element ids (including inside SVGs) must be unique"


def test_the_page_shows_environment_verdicts_feed_and_errors(
    page: str, telemetry: tuple[Path, list[str]]
) -> None:
    assert "tests/test_load.py::test_one" in page
    assert "412346" in page and "embedded" in page
    assert "inclusion" in page and "never included" in page  # the failed verdict's summary
    assert "evidence" in page and "lost_count" in page
    assert "consistent with the chain" in page  # feed facts of run 1
    assert "This run did not follow a sequencer feed." in page  # run 2
    assert "feed_reconnect" in page and "feed_gap" in page
    for kind in ("txpool_full", "nonce_too_low", "insufficient_funds", "tracker_poll_timeout"):
        assert kind in page
    # What the node said, verbatim (and escaped).
    assert "What the node said" in page
    assert "<code>txpool full &lt;as the node says&gt;</code>" in page
    assert "No verdicts were recorded" in page  # the run that never ended
    assert "synthetic-host" in page


def test_the_page_shows_the_receipts_checked_not_the_setting(
    page: str, telemetry: tuple[Path, list[str]]
) -> None:
    directory, _ = telemetry
    runs = load(directory, tables=("runs",)).runs.to_pylist()
    finished = [run for run in runs if run["receipts_expected"] is not None]
    assert len(finished) == 2
    for run in finished:
        count = f"{run['receipts_checked']:,}"
        line = f"<th>receipts</th><td>checked {count} of {count} via eth_getBlockReceipts</td>"
        assert line in page
    assert "<th>receipt sample</th><td>2000</td>" in page
    assert "<th>receipts</th><td>-</td>" in page  # the run that never ended has no count


def test_rendering_from_loaded_tables_and_for_one_run(telemetry: tuple[Path, list[str]]) -> None:
    directory, run_ids = telemetry
    html = report_html(load(directory), run_ids=[run_ids[1]])
    assert f'data-run-id="{run_ids[1]}"' in html and f'data-run-id="{run_ids[0]}"' not in html


def test_a_directory_without_runs_renders_an_empty_report(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    html = report_html(tmp_path)
    assert "No runs in this telemetry." in html


# -- the numbers behind the charts ----------------------------------------------------------------


def _table(columns: dict[str, list[object]]) -> pa.Table:
    schema = SCHEMAS["transactions"]
    rows = len(next(iter(columns.values())))
    arrays = []
    for field in schema:
        if field.name in columns:
            values = pa.array(
                columns[field.name], type=pa.string() if pa.types.is_dictionary(field.type) else field.type
            )
            arrays.append(values.dictionary_encode() if pa.types.is_dictionary(field.type) else values)
        else:
            arrays.append(pa.nulls(rows, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def test_per_second_rates_use_the_right_clock_for_each_series() -> None:
    s = 1_000_000_000
    table = _table(
        {
            "template": ["transfer", "transfer", "erc20", "gap_filler"],
            "state": ["included", "included", "rejected", "included"],
            "gas_planned": [21_000, 21_000, 50_000, 21_000],
            "gas_used": [20_000, None, None, 21_000],
            "scheduled_ns": [0, s // 2, s + 1, 2 * s],
            "accepted_ns": [s // 4, s + 1, None, 2 * s + 1],
            "included_ns": [s + 2, 2 * s + 2, None, 2 * s + 3],
        }
    )
    aggregates = aggregate_run(table)
    assert aggregates.bucket_s == 1.0
    assert aggregates.t.tolist() == [0.0, 1.0, 2.0]
    assert aggregates.offered_tx.tolist() == [2, 1, 0]  # the gap filler is not offered load
    assert aggregates.offered_gas.tolist() == [42_000, 50_000, 0]
    assert aggregates.accepted_tx.tolist() == [1, 1, 1]
    assert aggregates.included_gas.tolist() == [0, 20_000, 21_000 + 21_000]  # receipt gas when known
    assert aggregates.rejected_tx.tolist() == [0, 1, 0]
    assert aggregates.states == {"included": 3, "rejected": 1}
    assert aggregates.latency["inclusion"].count == 2


def test_per_second_percentiles_are_nearest_rank_like_the_run_result() -> None:
    rng = np.random.default_rng(5)
    rows = 20_000
    scheduled = np.sort(rng.integers(0, 30 * 1_000_000_000, rows))
    latency = rng.lognormal(np.log(3e8), 0.8, rows).astype(np.int64)
    table = _table(
        {
            "template": ["transfer"] * rows,
            "state": ["included"] * rows,
            "gas_planned": [21_000] * rows,
            "scheduled_ns": scheduled.tolist(),
            "included_ns": (scheduled + latency).tolist(),
        }
    )
    aggregates = aggregate_run(table)
    second = scheduled // 1_000_000_000
    for bucket in (0, 7, 29):
        samples = (latency[second == bucket] / 1e9).tolist()
        expected = LatencyStats.of(samples)
        where = int(np.flatnonzero(aggregates.t == bucket)[0])
        assert aggregates.latency_p50["inclusion"][where] == pytest.approx(expected.p50)
        assert aggregates.latency_p99["inclusion"][where] == pytest.approx(expected.p99)
    overall = LatencyStats.of((latency / 1e9).tolist())
    assert aggregates.latency["inclusion"].p99 == pytest.approx(overall.p99)
    assert aggregates.latency["inclusion"].max == pytest.approx(overall.max)
    assert math.isnan(aggregates.latency["feed"].p50) and aggregates.latency["feed"].count == 0
    edges, counts = aggregates.histograms["inclusion"]
    assert counts.sum() == rows and len(edges) == len(counts) + 1


def test_long_runs_are_drawn_with_wider_buckets() -> None:
    s = 1_000_000_000
    table = _table(
        {
            "template": ["transfer"] * 3,
            "state": ["pending"] * 3,
            "gas_planned": [1, 1, 1],
            "scheduled_ns": [0, 1_800 * s, 7_200 * s],
        }
    )
    aggregates = aggregate_run(table, max_buckets=1_800)
    assert aggregates.bucket_s == 5.0 and len(aggregates.t) <= 1_800
    assert aggregates.offered_tx.sum() * aggregates.bucket_s == pytest.approx(3)
