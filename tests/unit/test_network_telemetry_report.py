"""The network of a multi-node run in telemetry and in the reports: the ``network_events`` table, the
``runs`` row's ``network_json``, the HTML report's Network section and the terminal line, from a
synthetic run carrying ``NetworkFigures``."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from pytest_gashammer.report.html import render_report
from pytest_gashammer.report.terminal import network_lines
from pytest_gashammer.results import NetworkEvent, NetworkFigures, NetworkNode, RunResult, Verdict
from pytest_gashammer.telemetry.parquet import ParquetRunWriter, load
from pytest_gashammer.telemetry.schema import NETWORK_EVENTS
from tests.unit.test_telemetry_parquet import store
from tests.unit.test_telemetry_synthetic import synthetic_report

HASH = "0x" + "ab" * 32


def figures(origin_s: float, events: int = 3) -> NetworkFigures:
    kinds = [("control", "partition", "node3", ""), ("live", "peer_dropped", "node0", "node3")]
    kinds += [("live", "head", f"node{i % 4}", "") for i in range(events - 2)]
    return NetworkFigures(
        nodes=[
            NetworkNode("node0", "http://127.0.0.1:1", 40, HASH, 0.0, False),
            NetworkNode("node3", "http://127.0.0.1:2", 31, "0x" + "cd" * 32, None, True, "still syncing"),
        ],
        first_block=5,
        last_block=40,
        heights_checked=36,
        receipts_checked=120,
        converge_bound_s=30.0,
        time_origin=origin_s,
        events=[
            NetworkEvent(origin_s + 0.5 * index, source, kind, node, peer, index if kind == "head" else None)
            for index, (source, kind, node, peer) in enumerate(kinds)
        ],
    )


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], RunResult]:
    """A run on four nodes (one left behind) with 250 network events, and a run on a single node."""
    directory = tmp_path_factory.mktemp("telemetry")
    on_network = synthetic_report(2_000, seed=3)
    origin_s = on_network.report.wall_origin_ns / 1e9
    verdict = Verdict(
        "network_converged", "failed", "1 of 2 nodes did not reach node0's head #40 within 30 s"
    )
    result = dataclasses.replace(
        on_network.result,
        network=figures(origin_s, events=250),
        verdicts=[*on_network.result.verdicts, verdict],
    )
    with ParquetRunWriter(directory) as writer:
        first = store(
            writer, dataclasses.replace(on_network, result=result), nodeid="tests/t.py::test_network"
        )
        second = store(writer, synthetic_report(1_000, seed=4), nodeid="tests/t.py::test_single")
    return directory, [first, second], result


def test_the_network_events_table_holds_every_event_on_the_run_clock(
    stored: tuple[Path, list[str], RunResult],
) -> None:
    directory, (first, second), _ = stored
    tables = load(directory)
    assert tables.network_events.schema.equals(NETWORK_EVENTS)
    rows = tables.network_events.to_pylist()
    assert len(rows) == 250 and {row["run_id"] for row in rows} == {first}
    assert rows[0] == {
        "run_id": first,
        "t_s": pytest.approx(0.0),
        "source": "control",
        "kind": "partition",
        "node": "node3",
        "peer": None,
        "number": None,
        "detail": None,
    }
    assert rows[1]["peer"] == "node3" and rows[2]["number"] == 2 and rows[2]["t_s"] == pytest.approx(1.0)
    assert tables.for_run(second).network_events.num_rows == 0
    assert not list((directory / "network_events").glob(f"run={second}*"))


def test_the_runs_row_holds_the_network_figures_as_json(stored: tuple[Path, list[str], RunResult]) -> None:
    directory, (first, second), result = stored
    runs = {row["run_id"]: row for row in load(directory, tables=["runs"]).runs.to_pylist()}
    rebuilt = NetworkFigures.from_dict(json.loads(runs[first]["network_json"]))
    assert rebuilt == result.network
    assert runs[second]["network_json"] is None
    assert RunResult.from_dict(result.to_dict()).network == result.network


def test_the_html_report_lists_the_nodes_the_network_verdicts_and_the_last_200_events(
    stored: tuple[Path, list[str], RunResult], tmp_path: Path
) -> None:
    directory, _, _ = stored
    page = render_report(directory, tmp_path / "report.html").read_text()
    section = re.search(r'<section id="run-1-network">.*?</section>', page, re.S)
    assert section is not None
    html = section.group(0)
    assert len(re.findall(r'<tr class="network-node">', html)) == 2
    assert "not within the bound" in html and "still syncing" in html
    assert "network_converged" in html and "did not reach node0&#39;s head #40" in html
    assert len(re.findall(r'<tr class="network-event">', html)) == 200
    assert "50 more in the telemetry" in html
    assert 'id="run-2-network"' not in page


def test_the_terminal_line_names_each_nodes_head_and_what_was_compared() -> None:
    (line,) = network_lines(dataclasses.asdict(figures(0.0)))
    assert line == (
        "  network    2 nodes: node0 #40 node3 #31 (behind) (syncing)  36 heights and 120 receipts compared  3 events"
    )
    assert network_lines(None) == []
