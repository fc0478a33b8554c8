"""The hive/edge protocol without a channel: named messages, report framing, sender ranges, shares."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import pytest

from pytest_gashammer.hive import protocol, timeouts
from pytest_gashammer.hive.controller import HiveController, _capacity_shares, _RunState, _sender_ranges
from pytest_gashammer.hive.worker import EdgeHost
from pytest_gashammer.telemetry.digest import LatencySketch
from pytest_gashammer.telemetry.records import EdgeReport, TxLog
from tests.unit.edge_reports import digest_of

CHUNK = protocol.CHUNK_BYTES
SAMPLE_BYTES = 8
ROWS_PER_CHUNK = CHUNK // SAMPLE_BYTES  # exact latency samples are the report's widest value: 8 bytes each


def report_with(rows: int, **fields: Any) -> EdgeReport:
    """A report whose digest holds ``rows`` exact inclusion-latency samples (one value of 8 bytes each)."""
    digest = digest_of(TxLog())
    digest.inclusion_latency = LatencySketch(exact_limit=10 * ROWS_PER_CHUNK)
    digest.inclusion_latency.add(np.arange(rows, dtype=np.float64) / 1000)
    return EdgeReport(
        edge_id="gw0", host="here", clock_origin_ns=5, wall_origin_ns=7, digest=digest, **fields
    )


def reassemble(frames: list[protocol.Message]) -> EdgeReport:
    assembler = protocol.ReportAssembler()
    for name, fields in frames[:-1]:
        assert name == protocol.BLOB
        assembler.add_chunk(fields["blob_id"], fields["index"], fields["count"], fields["data"])
    name, fields = frames[-1]
    assert name == protocol.REPORT
    return assembler.finish(fields["report"])


# ----------------------------------------------------------------------------------------------
# named messages


def test_a_message_is_its_name_and_its_declared_fields() -> None:
    assert protocol.message(protocol.GO, run_id="run1", origin_ns=12) == (
        "go",
        {"run_id": "run1", "origin_ns": 12},
    )
    assert protocol.message(protocol.SHUTDOWN) == ("shutdown", {})


def test_every_message_name_is_declared_once_for_one_direction() -> None:
    assert not set(protocol.HIVE_TO_EDGE) & set(protocol.EDGE_TO_HIVE)


def test_an_unknown_message_name_is_refused_naming_it() -> None:
    with pytest.raises(protocol.ProtocolError, match="unknown message 'launch'"):
        protocol.message("launch", run_id="run1")


def test_a_message_with_fields_other_than_declared_is_refused() -> None:
    with pytest.raises(protocol.ProtocolError, match=r"'stop' carries fields \['reason', 'run_id'\]"):
        protocol.message(protocol.STOP, run_id="run1", reason="enough")


def test_decode_accepts_only_the_receiving_sides_messages() -> None:
    raw = ("armed", {"run_id": "run1"})
    assert protocol.decode(raw, protocol.EDGE_TO_HIVE) == raw
    with pytest.raises(protocol.ProtocolError, match="unknown message 'armed'"):
        protocol.decode(raw, protocol.HIVE_TO_EDGE)
    with pytest.raises(protocol.ProtocolError, match=r"not a \(name, fields\) message"):
        protocol.decode(("armed", "run1"), protocol.EDGE_TO_HIVE)


def test_dispatch_calls_the_on_name_method_with_the_fields() -> None:
    calls = []

    class Side:
        def on_started(self, link: str, run_id: str, wall_ns: int) -> None:
            calls.append((link, run_id, wall_ns))

    protocol.dispatch(Side(), protocol.message(protocol.STARTED, run_id="run1", wall_ns=3), "gw0")
    assert calls == [("gw0", "run1", 3)]
    with pytest.raises(protocol.ProtocolError, match="Side has no handler for message 'armed'"):
        protocol.dispatch(Side(), protocol.message(protocol.ARMED, run_id="run1"), "gw0")


def test_the_trace_names_the_message_its_run_and_its_edge(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("pytest_gashammer.hive.test")
    with caplog.at_level(logging.DEBUG, logger="pytest_gashammer.hive.test"):
        protocol.trace(logger, "send", "gw3", protocol.message(protocol.ARMED, run_id="run7"))
    assert caplog.messages == ["send armed edge=gw3 run=run7"]


# ----------------------------------------------------------------------------------------------
# report framing


def test_a_small_report_travels_in_one_frame_and_comes_back_equal() -> None:
    report = report_with(10, stopped_early="fail-fast: receipt_status broke on 0x01", stop_kind="fail-fast")
    frames = list(protocol.report_frames("run1", report))
    assert [name for name, _ in frames] == [protocol.REPORT]
    back = reassemble(frames)
    assert back.digest.to_data() == report.digest.to_data()
    assert (back.stopped_early, back.stop_kind) == (report.stopped_early, "fail-fast")
    assert (back.edge_id, back.clock_origin_ns, back.wall_origin_ns) == ("gw0", 5, 7)


@pytest.mark.parametrize(
    ("rows", "chunk_sizes"),
    [(2 * ROWS_PER_CHUNK, [CHUNK, CHUNK]), (2 * ROWS_PER_CHUNK + 1, [CHUNK, CHUNK, SAMPLE_BYTES])],
)
def test_a_large_value_is_split_into_chunks_of_at_most_512_kib(rows: int, chunk_sizes: list[int]) -> None:
    report = report_with(rows)
    frames = list(protocol.report_frames("run1", report))
    blobs = [fields for name, fields in frames if name == protocol.BLOB]
    assert [len(fields["data"]) for fields in blobs] == chunk_sizes
    assert [fields["index"] for fields in blobs] == list(range(len(chunk_sizes)))
    assert {fields["count"] for fields in blobs} == {len(chunk_sizes)}
    assert frames[-1][0] == protocol.REPORT  # the chunks go first
    assert reassemble(frames).digest.to_data() == report.digest.to_data()


def test_split_and_join_move_only_large_bytes() -> None:
    small, large = b"x" * 10, b"y" * (CHUNK + 1)
    blobs: list[bytes] = []
    skeleton = protocol.split_blobs({"a": small, "b": [large, 3], "c": {"d": large}}, blobs)
    assert blobs == [large, large]
    assert skeleton["a"] == small
    assert protocol.join_blobs(skeleton, dict(enumerate(blobs))) == {
        "a": small,
        "b": [large, 3],
        "c": {"d": large},
    }


def test_a_report_missing_a_chunk_is_refused_naming_the_blob() -> None:
    frames = list(protocol.report_frames("run1", report_with(2 * ROWS_PER_CHUNK + 1)))
    del frames[1]
    with pytest.raises(ValueError, match="report blob 0: 2 of 3 chunks arrived"):
        reassemble(frames)


def test_a_report_whose_blob_never_arrived_is_refused() -> None:
    frames = list(protocol.report_frames("run1", report_with(2 * ROWS_PER_CHUNK)))
    with pytest.raises(KeyError):
        reassemble(frames[-1:])


# ----------------------------------------------------------------------------------------------
# capacity shares and sender ranges


def test_capacity_shares_follow_the_cores_and_add_up_to_one() -> None:
    assert _capacity_shares([2, 2]) == [0.5, 0.5]
    assert _capacity_shares([4, 2, 2]) == [0.5, 0.25, 0.25]
    assert sum(_capacity_shares([3, 5, 7])) == pytest.approx(1.0)


def test_the_remainder_of_the_senders_is_used() -> None:
    assert _sender_ranges(10, _capacity_shares([1, 1, 1])) == [(0, 4), (4, 3), (7, 3)]


def test_sender_ranges_follow_unequal_shares() -> None:
    assert _sender_ranges(8, [0.5, 0.25, 0.25]) == [(0, 4), (4, 2), (6, 2)]


def test_an_edge_with_a_tiny_share_still_gets_a_sender() -> None:
    assert _sender_ranges(3, [0.9, 0.05, 0.05]) == [(0, 1), (1, 1), (2, 1)]


@pytest.mark.parametrize("edges", [1, 2, 3, 7, 10, 16])
@pytest.mark.parametrize("total", [16, 17, 100])
def test_sender_ranges_are_disjoint_contiguous_and_never_exceed_the_funded_senders(
    edges: int, total: int
) -> None:
    ranges = _sender_ranges(total, _capacity_shares([1 + edge % 3 for edge in range(edges)]))
    assert len(ranges) == edges
    assert all(count >= 1 for _, count in ranges)
    assert [start for start, _ in ranges] == [
        sum(count for _, count in ranges[:index]) for index in range(edges)
    ]
    assert sum(count for _, count in ranges) == total


def test_more_edges_than_senders_is_refused() -> None:
    with pytest.raises(ValueError, match="8 sender"):
        _sender_ranges(8, _capacity_shares([1] * 10))


# ----------------------------------------------------------------------------------------------
# timeouts


def test_a_caller_waits_for_longer_than_any_edge_may_run() -> None:
    class Plan:
        sending_time = 60.0
        inclusion_timeout = 30.0
        slo: tuple[tuple[str, float], ...] = ()

    assert timeouts.edge_budget(Plan()) == timeouts.SETUP_BUDGET + 90.0 + timeouts.STOP_GRACE
    assert timeouts.answer_timeout(Plan()) > timeouts.edge_budget(Plan()) + timeouts.ARM_TIMEOUT
    assert timeouts.drain_budget(Plan()) < timeouts.edge_budget(Plan())


def test_the_wait_for_the_l1_follows_the_batch_lag_objective() -> None:
    assert timeouts.l1_post_wait(()) == timeouts.L1_POST_WAIT
    assert timeouts.l1_post_wait((("batch_lag_p99", 4.0),)) == 4.0 + timeouts.L1_POST_MARGIN
    both = (("batch_lag_p99", 4.0), ("batch_lag_max", 9.0), ("inclusion_p99", 60.0))
    assert timeouts.l1_post_wait(both) == 9.0 + timeouts.L1_POST_MARGIN


# ----------------------------------------------------------------------------------------------
# errors while handling a message


class FakeChannel:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.callback: Any = None

    def setcallback(self, callback: Any, endmarker: Any = None) -> None:
        self.callback = callback

    def send(self, message: Any) -> None:
        self.sent.append(message)

    def isclosed(self) -> bool:
        return False


@pytest.fixture
def controller() -> Any:
    hive = HiveController(lambda: None)
    yield hive
    hive.close()


def settle(controller: HiveController, condition: Any) -> None:
    deadline = time.monotonic() + 5
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_an_error_handling_a_runs_message_fails_that_run_with_the_error(controller: HiveController) -> None:
    channel = FakeChannel()
    controller.add_edge("gw0", channel)
    state = _RunState("run1", ["gw0"])
    controller._state = state
    channel.callback(("report", {"run_id": "run1", "report": {"not": "a report"}}))
    settle(controller, lambda: state.failed or state.error)
    assert "gw0" in state.failed  # a damaged report is the edge's failure, named
    channel.callback(("armed", {"run_id": "run1", "extra": 1}))
    settle(controller, lambda: state.error)
    assert state.error is not None
    assert "failed handling 'armed' from edge gw0" in state.error
    assert "ProtocolError" in state.error
    assert controller._settled(state, set())  # the run's waits end at once


def test_an_unknown_message_of_a_run_fails_that_run(controller: HiveController) -> None:
    channel = FakeChannel()
    controller.add_edge("gw0", channel)
    state = _RunState("run1", ["gw0"])
    controller._state = state
    channel.callback(("launch", {"run_id": "run1"}))
    settle(controller, lambda: state.error)
    assert state.error is not None and "unknown message 'launch'" in state.error


def test_an_error_outside_a_run_is_logged(
    controller: HiveController, caplog: pytest.LogCaptureFixture
) -> None:
    channel = FakeChannel()
    controller.add_edge("gw0", channel)
    with caplog.at_level(logging.ERROR, logger="pytest_gashammer.hive.controller"):
        channel.callback(("hello", {"information": {}}))
        settle(controller, lambda: caplog.records)
    assert [record.levelno for record in caplog.records] == [logging.ERROR]
    assert "failed handling 'hello' from edge gw0" in caplog.messages[0]


def test_the_edge_host_reports_a_message_it_cannot_handle_as_the_runs_failure() -> None:
    channel = FakeChannel()
    host = EdgeHost(channel, "gw0")
    host._handle(("go", {"run_id": "run1"}))
    ((name, fields),) = channel.sent
    assert (name, fields["run_id"]) == (protocol.FAILED, "run1")
    assert "edge gw0: handling 'go' failed: ProtocolError" in fields["message"]


def test_the_edge_host_handles_go_by_name() -> None:
    host = EdgeHost(FakeChannel(), "gw0")
    host._handle(protocol.message(protocol.GO, run_id="run1", origin_ns=1))
    assert isinstance(host._go["run1"], threading.Event) and host._go["run1"].is_set()
