"""The ``gashammer`` command: report and summary from a stored directory, one-line errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_gashammer.cli import main, summary_dict
from pytest_gashammer.feed.correlator import FeedChainFindings
from pytest_gashammer.report.terminal import FEED_FINDINGS, feed_versus_chain, format_run_summary
from pytest_gashammer.results import DEVNET_NOTE
from pytest_gashammer.telemetry.parquet import ParquetRunWriter, RunInfo, load
from tests.unit.test_telemetry_parquet import store
from tests.unit.test_telemetry_synthetic import SyntheticRun, synthetic_report


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, SyntheticRun]:
    directory = tmp_path_factory.mktemp("telemetry")
    run = synthetic_report(4_000)
    run.result.notes.append(DEVNET_NOTE + "anvil stranded 2 transaction(s) of 0xab from nonce 5 ...")
    with ParquetRunWriter(directory) as writer:
        run_id = store(writer, run, nodeid="tests/test_load.py::test_transfers")
        writer.begin_run(RunInfo.for_plan(run.plan, run_id="never-ended", test_nodeid="t.py::test_cut"))
    return directory, run_id, run


def test_summary_prints_a_stored_run_exactly_as_pytest_printed_it(
    stored: tuple[Path, str, SyntheticRun], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, run_id, run = stored
    assert main(["summary", str(directory), "--run", run_id]) == 0
    printed = capsys.readouterr().out.splitlines()
    live = format_run_summary("tests/test_load.py::test_transfers", run.result.summary_dict())
    assert printed[0] == f"gashammer: 1 run(s) in {directory}"
    assert printed[1] == f"{live[0]}  run {run_id}"
    assert printed[2:] == live[1:]
    checked = f"{run.result.receipts_checked:,}"
    assert f"  receipts   checked {checked} of {checked} via eth_getBlockReceipts" in live
    # The node's refusals, verbatim, the most frequent first (at most three lines).
    quoted = [line for line in live if "<as the node says>" in line]
    assert 1 <= len(quoted) <= 3 and quoted[0].startswith("  rejections ")
    assert "(code -32000) x" in quoted[0]
    # What the devnet had to do during the run ends the summary, live and stored alike.
    assert printed[-1] == "  devnet: anvil stranded 2 transaction(s) of 0xab from nonce 5 ..."


def test_summary_of_a_run_without_result_says_so_and_counts_what_was_stored(
    stored: tuple[Path, str, SyntheticRun], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, _, _ = stored
    assert main(["summary", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "gashammer: 2 run(s)" in out
    assert "interrupted: no result was recorded for this run" in out
    assert "no transactions" in out


def test_summary_dict_round_trips_the_run_result(stored: tuple[Path, str, SyntheticRun]) -> None:
    directory, run_id, run = stored
    tables = load(directory, tables=("runs", "verdicts")).for_run(run_id)
    rebuilt = summary_dict(tables.runs.to_pylist()[0], tables.verdicts.to_pylist())
    original = run.result.summary_dict()
    for key in (
        "sent",
        "accepted",
        "rejected",
        "included",
        "lost",
        "errors",
        "rejections",
        "feed",
        "seed",
        "chain_id",
        "devnet_notes",
    ):
        assert rebuilt[key] == original[key], key
    assert rebuilt["latency_inclusion"] == pytest.approx(original["latency_inclusion"])
    assert rebuilt["verdicts"] == original["verdicts"]


def test_report_writes_the_html(stored: tuple[Path, str, SyntheticRun], tmp_path: Path) -> None:
    directory, run_id, _ = stored
    output = tmp_path / "nested" / "report.html"
    assert main(["report", str(directory), "-o", str(output), "--title", "stored"]) == 0
    html = output.read_text()
    assert "<title>stored</title>" in html and f'data-run-id="{run_id}"' in html
    assert 'data-run-id="never-ended"' in html


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["summary", "{missing}"], "does not exist"),
        (["report", "{missing}"], "does not exist"),
        (["summary", "{empty}"], "holds no gashammer telemetry"),
        (["report", "{file}"], "is not a directory"),
        (["summary", "{stored}", "--run", "nope"], "no run 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    arguments: list[str],
    message: str,
    stored: tuple[Path, str, SyntheticRun],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("not telemetry")
    paths = {
        "missing": tmp_path / "missing",
        "empty": tmp_path / "empty",
        "file": tmp_path / "file",
        "stored": stored[0],
    }
    assert main([argument.format(**paths) for argument in arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("gashammer: error: ")
    assert message in captured.err


def test_help_and_usage_errors() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    completed = subprocess.run(
        [sys.executable, "-m", "pytest_gashammer.cli", "report", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0
    assert "-o FILE, --output FILE" in completed.stdout and "--run RUN_ID" in completed.stdout


def test_the_feed_line_says_consistent_only_when_no_finding_of_any_kind_was_made() -> None:
    """Issue #15: a feed that left a block out still read "vs chain: consistent"."""
    clean = dict.fromkeys(FEED_FINDINGS, 0) | {"included": 5, "in_feed": 5}
    assert feed_versus_chain(clean) == "consistent"
    assert feed_versus_chain({}) == "not checked"
    for key in ("blocks_missing_from_feed", "feed_only", "messages_spanning_blocks"):
        assert feed_versus_chain(clean | {key: 2}) == f"{key.replace('_', ' ')} 2"
    both = feed_versus_chain(clean | {"hash_mismatches": 1, "blocks_missing_from_feed": 3})
    assert both == "hash mismatches 1, blocks missing from feed 3"
    # Every kind of problem the check can find is named: the counts of FeedChainFindings but the totals.
    totals = {"blocks_checked", "messages_checked", "messages_unverified", "included", "in_feed"}
    counts = {field.name for field in dataclasses.fields(FeedChainFindings) if field.type == "int"}
    assert set(FEED_FINDINGS) == counts - totals
