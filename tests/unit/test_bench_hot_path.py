"""The hot-path benchmark's row reading: the rows an edge streams, decoded, and the figures made of them.

An edge keeps no row once it is final, so the benchmark gives it a telemetry sink and reads the
``transactions`` frames it streams. These tests feed the benchmark frames made by the edge's own
cursor from a log whose every figure is worked out by hand, and run its ``run_edge`` against a
stand-in edge that streams only when the real one would (a sink on the runtime and a run id on
the assignment), without a node.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from pytest_gashammer.hive.aggregate import build_result
from pytest_gashammer.oracle.invariants import evaluate
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from pytest_gashammer.telemetry.records import NOT_YET, BlockRecord, EdgeReport
from pytest_gashammer.telemetry.schema import TRANSACTIONS
from pytest_gashammer.telemetry.stream import ClockMap, TransactionCursor, frames_to_columns, to_ipc_frames
from tests.unit.edge_reports import ALICE, BOB, Log, ns, report_of

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_hot_path.py"
_SPEC = importlib.util.spec_from_file_location("bench_hot_path", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_hot_path"] = bench  # dataclasses resolve their module through sys.modules
_SPEC.loader.exec_module(bench)

#: The plan the benchmark makes for a 2 Mgas/s run of 4 s (sustain 0 .. 4 s, no warmup).
RATE, SECONDS, SEED = 2e6, 4.0, 7
WALL_ORIGIN = 1_700_000_000_000_000_000  # report_of's wall origin: a whole second
BLOCK_SECONDS = {100: 0, 101: 1, 102: 1, 103: 2}  # block number: timestamp, seconds after WALL_ORIGIN


def run_log() -> Log:
    """Two senders' run, times in seconds after the plan's t=0 (see the figures in the tests)."""
    log = Log()
    add = log.add
    # Rows 0 and 1 go out in one request at 0.1 s; row 0 was due at 0.0 (lag 0.1).
    add(intended=0.0, sent=0.1, accepted=0.11, included=0.5, gas_used=21_000, sender=0, nonce=0)
    add(intended=0.1, sent=0.1, accepted=0.11, included=0.6, gas_used=21_000, sender=1, nonce=0)
    # No receipt checked: its gas is the planned 30,000.
    add(intended=1.0, sent=1.0, accepted=1.01, included=1.5, gas_planned=30_000, sender=0, nonce=1)
    add(intended=1.2, sent=1.3, accepted=1.31, included=1.7, gas_used=21_000, sender=1, nonce=1)
    # A nonce-gap filler: included, never counted as the workload's gas.
    add(intended=2.0, sent=2.0, accepted=2.01, included=2.5, gas_used=21_000, sender=0, nonce=2, template=-1)
    # Accepted, never seen in a block by the edge: mined after all (sender 0 reaches nonce 4) ...
    add(intended=2.5, sent=2.5, accepted=2.51, sender=0, nonce=3)
    # ... and lost on chain too (sender 1 stays at nonce 2).
    add(intended=3.0, sent=3.0, accepted=3.01, sender=1, nonce=2)
    add(intended=3.5, sent=3.6, rejected="nonce_too_low", sender=1, nonce=3)
    add(intended=3.9, sender=0, nonce=4)  # never sent
    for row, block in enumerate((100, 100, 101, 102, 103)):
        log.txs.block_number[row] = block
    return log


def edge_report(log: Log) -> EdgeReport:
    blocks = [
        BlockRecord(
            number=number,
            hash="0x" + f"{number:064x}",
            parent_hash="0x" + f"{number - 1:064x}",
            timestamp=WALL_ORIGIN // 10**9 + second,
            gas_used=21_000,
            gas_limit=10**9,
            tx_count=1,
            observed_ns=ns(second + 0.5),
        )
        for number, second in BLOCK_SECONDS.items()
    ]
    report = report_of(log, sustain=(0.0, SECONDS), inclusion_timeout=20.0, blocks=blocks)
    assert report.wall_origin_ns == WALL_ORIGIN
    return report


def streamed_frames(log: Log, report: EdgeReport) -> list[bytes]:
    """The ``transactions`` frames the edge would stream: a poll mid-run, then the final one."""
    cursor = TransactionCursor(
        log.txs,
        run_id="bench",
        edge_id=report.edge_id,
        clock=ClockMap.local(report.clock_origin_ns, report.wall_origin_ns),
        templates=report.templates,
        sender_addresses=report.sender_addresses,
    )
    frames = []
    for batch in (cursor.poll(now_ns=ns(4.0)), cursor.poll(final=True)):
        assert batch is not None
        frames += to_ipc_frames(batch, max_bytes=1)  # one row a frame: many frames, in any order
    assert len(frames) == len(log.txs)
    return frames


@pytest.fixture
def run_data() -> tuple[Log, EdgeReport, list[bytes]]:
    log = run_log()
    report = edge_report(log)
    return log, report, streamed_frames(log, report)


def bench_plan() -> Any:
    spec = {"gas_per_sec": RATE, "duration": SECONDS, "warmup": 0, "seed": SEED, "inclusion_timeout": 20.0}
    return compile_plan(parse_spec(spec), name="hot-path-test", seed=SEED)


def test_frames_decode_to_numpy_columns_with_nulls_as_not_yet(run_data: Any) -> None:
    log, report, frames = run_data
    columns = frames_to_columns(reversed(frames), TRANSACTIONS, sort_by="row")
    assert columns["row"].tolist() == list(range(9))
    assert columns["included_ns"].dtype == np.int64
    # Run clock: ns since the plan's t=0; what did not happen is NOT_YET, as in the TxLog.
    seconds = [0.5, 0.6, 1.5, 1.7, 2.5]
    assert columns["included_ns"].tolist()[:6] == [round(t * 1e9) for t in seconds] + [NOT_YET]
    assert columns["sent_ns"][8] == NOT_YET
    assert columns["gas_used"][2] == NOT_YET
    assert columns["template"].tolist() == ["transfer"] * 4 + ["gap_filler"] + ["transfer"] * 4
    assert columns["sender"].tolist() == [ALICE, BOB, ALICE, BOB, ALICE, ALICE, BOB, BOB, ALICE]
    assert columns["tx_hash"][3] == log.txs.hash_bytes(3)
    assert columns["receipt_sampled"].dtype == bool
    empty = frames_to_columns([], TRANSACTIONS, names=["row", "template"])
    assert empty["row"].dtype == np.int64 and empty["row"].size == 0 and empty["template"].size == 0


def test_rows_come_back_in_row_order_whatever_order_the_frames_came_in(run_data: Any) -> None:
    log, report, frames = run_data
    rows = bench.TxRows.from_frames(list(reversed(frames)), report)
    assert len(rows) == report.digest.rows == 9
    assert rows.nonce.tolist() == [0, 0, 1, 1, 2, 3, 2, 3, 4]
    assert rows.sender.tolist() == [0, 1, 0, 1, 0, 0, 1, 1, 0]
    assert rows.filler.tolist() == [False] * 4 + [True] + [False] * 4
    assert rows.gas.tolist()[:5] == [21_000, 21_000, 30_000, 21_000, 21_000]
    assert rows.scheduled_ns[3] == 12 * 10**8
    assert rows.accepted_ns[7] == NOT_YET  # rejected


def test_rows_that_are_missing_or_repeated_are_refused(run_data: Any) -> None:
    _, report, frames = run_data
    with pytest.raises(RuntimeError, match="streamed 8 rows .8 distinct. of the 9"):
        bench.TxRows.from_frames(frames[1:], report)
    with pytest.raises(RuntimeError, match="streamed 10 rows .9 distinct. of the 9"):
        bench.TxRows.from_frames([*frames, frames[4]], report)
    with pytest.raises(RuntimeError, match="streamed 0 rows"):
        bench.TxRows.from_frames([], report)


def test_per_second_gas_by_sighting_and_by_block_timestamp(run_data: Any) -> None:
    _, report, frames = run_data
    rows = bench.TxRows.from_frames(frames, report)
    # Buckets from 0.5 s: rows 0 and 1 (0.5, 0.6 s) in the first, rows 2 and 3 (1.5, 1.7 s) in the
    # second; the filler (2.5 s) is not counted.
    assert bench.per_second_gas(rows, 0.5, SECONDS) == [42_000, 51_000, 0, 0]
    # From 0.55 s: row 0 (0.5 s) falls before the window, row 2 (1.5 s) in its first second.
    assert bench.per_second_gas(rows, 0.55, 2.0) == [51_000, 21_000]
    # Whole chain seconds inside 0.5 .. 4.5 s: 1, 2, 3. Blocks 101 and 102 (rows 2, 3) are stamped
    # second 1; block 100 (second 0) is outside; block 103 at second 2 holds only the filler.
    assert bench.per_chain_second_gas(rows, report, 0.5, SECONDS) == [51_000, 0, 0]
    assert bench.per_chain_second_gas(rows, report, 0.0, 2.0) == [42_000, 51_000]


def test_analyse_reads_the_figures_from_the_rows(run_data: Any) -> None:
    _, report, frames = run_data
    plan = bench_plan()
    run = bench.EdgeRun(label="2M", plan=plan, report=report, rows=bench.TxRows.from_frames(frames, report))
    run.result = build_result(
        plan,
        [report],
        evaluate([report], plan.inclusion_timeout),
        chain_id=412346,
        devnet_kind="embedded",
        node_version="test",
        duration=6.0,
    )
    assert run.result.latency.inclusion.p50 == pytest.approx(0.5)
    bench.analyse(run, [4, 2], 3 * 10**9, 5 * 10**9)
    # Sent: rows 0-7, 7 x 21,000 + 30,000 gas, over max(last send 3.6 s, sustain 4 s).
    assert run.sent_gas_per_sec == pytest.approx(177_000 / 4.0)
    assert run.requests == 7  # rows 0 and 1 shared one request
    assert run.send_lag_p99 == pytest.approx(0.1)
    assert (run.mined_after_edge, run.chain_lost) == (1, 1)
    assert run.mean_gas == pytest.approx((4 * 21_000 + 30_000) / 5)
    # Mined 4 + 2 from nonce 0, more than the 5 the edge saw: the span ends when polling last saw
    # progress (3.0 s), and starts at the first send (0.1 s).
    assert run.mined == 6
    assert run.span_tx_per_sec == pytest.approx(6 / 2.9)
    # The window starts at the sustain's start plus the median inclusion latency (0.5 s); with too
    # few blocks to find their phase, the aligned buckets are the same.
    assert run.per_second_gas == [42_000, 51_000, 0, 0]
    assert run.per_second_gas_aligned == run.per_second_gas
    assert run.per_chain_second_gas == [51_000, 0, 0]


def test_settling_waits_for_what_the_digest_says_the_node_took(
    run_data: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, report, _ = run_data
    # The node took sender 0 up to nonce 3 and sender 1 up to nonce 2: polling ends at [4, 3].
    assert report.digest.highest_taken == {0: 3, 1: 2}
    answers = iter([["0x2", "0x1"], ["0x3", "0x3"], ["0x4", "0x3"], ["0x9", "0x9"]])
    asked: list[Any] = []

    def rpc_batch(url: str, calls: Any, timeout: float = 10.0) -> list[str]:
        asked.append(calls)
        return next(answers)

    monkeypatch.setattr(bench, "rpc_batch", rpc_batch)
    before = time.monotonic_ns() - report.clock_origin_ns
    latest, last_progress, poll_start = bench.settle_on_chain("http://127.0.0.1:1", report)
    after = time.monotonic_ns() - report.clock_origin_ns
    assert latest == [4, 3]
    assert len(asked) == 3
    assert asked[0] == [("eth_getTransactionCount", [who, "latest"]) for who in (ALICE, BOB)]
    assert last_progress is not None and before <= poll_start <= last_progress <= after  # run clock


class StandInEdge:
    """An :class:`EdgeRuntime` stand-in: sets up, then streams the prepared frames when the real edge
    would (a sink given and a telemetry run id on the assignment), and reports."""

    frames: list[bytes] = []
    report: EdgeReport | None = None
    seen: list[Any] = []

    def __init__(self, assignment: Any, *, start_gate: Any = None, telemetry_sink: Any = None) -> None:
        self.assignment, self.start_gate, self.sink = assignment, start_gate, telemetry_sink
        StandInEdge.seen.append(self)

    def start(self) -> None:
        self.start_gate()
        if self.sink is not None and self.assignment.telemetry_run_id:
            self.sink("blocks", b"not a transactions frame")
            for frame in self.frames:
                self.sink("transactions", frame)

    def join(self, timeout: float | None = None) -> bool:
        return True

    def stop(self, reason: str) -> None:
        raise AssertionError("the stand-in run ends by itself")

    def result(self) -> EdgeReport:
        assert self.report is not None
        return self.report


@pytest.fixture
def devnet(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A devnet that is never asked anything: the stand-in edge runs in its place, the pool is idle,
    and the chain shows every nonce the node took mined (sender 0 to 4, sender 1 to 3)."""
    monkeypatch.setattr(StandInEdge, "seen", [])
    monkeypatch.setattr(bench, "EdgeRuntime", StandInEdge)
    monkeypatch.setattr(bench, "wait_for_idle_pool", lambda url: None)
    monkeypatch.setattr(bench, "node_idle_share", lambda devnet: None)
    monkeypatch.setattr(bench, "rpc_batch", lambda url, calls, timeout=10.0: ["0x4", "0x3"])
    return SimpleNamespace(
        rpc_url="http://127.0.0.1:1",
        ws_url="ws://127.0.0.1:1",
        chain_id=412346,
        funder=SimpleNamespace(key="0x" + "11" * 32),
        pid=None,
        kind="embedded",
        node_version="test",
    )


def test_run_edge_gives_the_edge_a_sink_and_a_run_id_and_reads_its_rows(
    run_data: Any, devnet: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, report, frames = run_data
    monkeypatch.setattr(StandInEdge, "frames", frames)
    monkeypatch.setattr(StandInEdge, "report", report)
    run = bench.run_edge(devnet, RATE, SECONDS, SEED, 2, None)
    assert run.failure is None
    (edge,) = StandInEdge.seen
    assert edge.assignment.telemetry_run_id and edge.sink is not None
    assert run.rows is not None and len(run.rows) == 9
    assert run.requests == 7
    assert (run.mined_after_edge, run.chain_lost) == (2, 0)  # both unseen rows were mined
    assert run.sent_gas_per_sec == pytest.approx(177_000 / 4.0)
    assert run.per_second_gas == [42_000, 51_000, 0, 0]
    assert run.result is not None and run.result.sent == 8


def test_run_edge_says_so_when_the_edge_streamed_no_rows(
    run_data: Any, devnet: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, report, _ = run_data
    monkeypatch.setattr(StandInEdge, "frames", [])
    monkeypatch.setattr(StandInEdge, "report", report)
    run = bench.run_edge(devnet, RATE, SECONDS, SEED, 2, None)
    assert run.result is None and run.failure is not None
    assert "streamed 0 rows (0 distinct) of the 9" in run.failure
