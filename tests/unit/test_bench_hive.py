"""The hive benchmark's ingest: an edge's rows as telemetry frames, then its report with their digest.

The edge side runs in another process from its source alone (``gateway.remote_exec`` of a
function), so these tests run that source as execnet would, compiled on its own, against a channel
that records what it sends; the hive side then receives those messages. One test runs the whole
ingest over a real popen gateway with a few hundred rows.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_gashammer.hive import protocol
from pytest_gashammer.telemetry.records import NOT_YET

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_hive.py"
_SPEC = importlib.util.spec_from_file_location("bench_hive", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_hive"] = bench  # dataclasses resolve their module through sys.modules
_SPEC.loader.exec_module(bench)

ROWS = 3_000  # a few telemetry frames of at most 256 KiB


class RecordingChannel:
    """The edge's end of the channel: records what it sends; the hive's one message is ``go``."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, item: Any) -> None:
        self.sent.append(item)

    def receive(self) -> Any:
        return "go"


def remote_edge() -> Any:
    """``edge_process`` as the remote side gets it: its source, compiled alone, without this
    module's globals or ``__future__`` import."""
    import execnet.gateway

    source = execnet.gateway._source_of_function(bench.edge_process)  # refuses any global it uses
    namespace: dict[str, Any] = {}
    exec(compile(textwrap.dedent(source), "<remote exec>", "exec"), namespace)
    return namespace["edge_process"]


@pytest.fixture(scope="module")
def sent() -> list[Any]:
    channel = RecordingChannel()
    remote_edge()(channel, rows=ROWS)
    assert channel.sent[0] == "ready"
    return channel.sent[1:]


def test_the_edge_sends_its_rows_as_telemetry_frames_then_its_report(sent: list[Any]) -> None:
    names = [protocol.decode(message, protocol.EDGE_TO_HIVE)[0] for message in sent]
    frames = names.count(protocol.TELEMETRY)
    assert frames > 1
    assert names[:frames] == [protocol.TELEMETRY] * frames
    assert names[-1] == protocol.REPORT and set(names[frames:-1]) <= {protocol.BLOB}
    assert {message[1]["table"] for message in sent[:frames]} == {"transactions"}


def test_the_hive_rebuilds_the_report_and_reads_every_row(sent: list[Any]) -> None:
    ingested = bench.receive_run(iter(sent).__next__)
    assert ingested.messages == len(sent)
    assert len(ingested.frames) == sum(message[0] == protocol.TELEMETRY for message in sent)
    assert ingested.largest == max(len(frame) for frame in ingested.frames)
    digest = ingested.report.digest
    assert digest.rows == digest.included == ROWS and digest.lost == digest.rejected == 0
    columns = bench.read_rows(ingested)
    row = np.arange(ROWS)
    assert np.array_equal(columns["row"], row)
    assert np.array_equal(columns["sender_index"], row % 64)
    assert np.array_equal(columns["nonce"], row // 64)
    assert np.array_equal(columns["included_ns"], row * 1_000_000 + 250_000_000)
    assert NOT_YET not in columns["included_ns"]


def test_frames_in_another_order_still_give_the_rows_in_order(sent: list[Any]) -> None:
    frames = [message for message in sent if message[0] == protocol.TELEMETRY]
    ingested = bench.receive_run(iter(frames[::-1] + sent[len(frames) :]).__next__)
    assert np.array_equal(bench.read_rows(ingested)["row"], np.arange(ROWS))


@pytest.mark.parametrize("change", ["drop", "repeat"])
def test_rows_missing_or_repeated_are_refused(sent: list[Any], change: str) -> None:
    first = sent[0]
    assert first[0] == protocol.TELEMETRY
    damaged = sent[1:] if change == "drop" else [first, *sent]
    ingested = bench.receive_run(iter(damaged).__next__)
    with pytest.raises(RuntimeError, match=f"of the {ROWS} the report's digest counts"):
        bench.read_rows(ingested)


def test_a_message_the_ingest_does_not_expect_is_refused(sent: list[Any]) -> None:
    stray = protocol.message(protocol.HEARTBEAT, progress={})
    with pytest.raises(RuntimeError, match="'heartbeat' during the ingest"):
        bench.receive_run(iter([stray, *sent]).__next__)


def test_the_ingest_over_a_popen_gateway(capsys: pytest.CaptureFixture[str]) -> None:
    bench.bench_ingest(500)
    out = capsys.readouterr().out
    assert out.startswith("ingest: 500 transaction rows in ")
    assert "1 of telemetry and 1 of the report" in out
    assert "every row checked present once" in out
