"""Telemetry of a real run: an edge against anvil streams its final rows to Parquet while it runs.

The edge's own telemetry sink gets the frames (about once a second, then the last ones after the
drain); they go through IPC bytes to a :class:`ParquetRunWriter`, as they would cross from an
xdist worker to the hive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime
from pytest_gashammer.hive.aggregate import build_result
from pytest_gashammer.oracle.invariants import evaluate
from pytest_gashammer.results import LatencyStats, RunResult
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from pytest_gashammer.telemetry.parquet import ParquetRunWriter, RunInfo, TelemetryTables, git_commit, load
from pytest_gashammer.telemetry.records import EdgeReport
from pytest_gashammer.telemetry.stream import ClockMap

pytestmark = pytest.mark.usefixtures("no_new_anvil")

REPO = Path(__file__).resolve().parents[2]


@dataclass
class StoredRun:
    run_id: str
    result: RunResult
    report: EdgeReport
    streamed_before_end: dict[str, int] = field(default_factory=dict)
    polls: int = 0


def run_and_store(
    directory: Path, monkeypatch: pytest.MonkeyPatch, spec: dict[str, Any], *, nodeid: str, seed: int = 4242
) -> StoredRun:
    """Run ``spec`` on a fresh embedded devnet with the edge's telemetry streamed into ``directory``."""
    plan = compile_plan(parse_spec(spec), name=nodeid.rsplit("::", 1)[-1], seed=seed)
    writer = ParquetRunWriter(directory)
    info = RunInfo.for_plan(plan, test_nodeid=nodeid, git_commit=git_commit(REPO))
    frames: list[tuple[str, bytes, int]] = []

    def sink(table: str, frame: bytes) -> None:  # on the edge's thread, as the edge sends them
        frames.append((table, frame, time.monotonic_ns()))

    with EmbeddedDevnet().start() as devnet:
        info.chain_id, info.devnet_kind, info.node_version = devnet.chain_id, devnet.kind, devnet.node_version
        writer.begin_run(info)
        assignment = EdgeAssignment(
            edge_id="local",
            plan=plan.to_dict(),
            rpc_url=devnet.rpc_url,
            ws_url=devnet.ws_url,
            chain_id=devnet.chain_id,
            funder_key=devnet.funder.key,
            sender_count=plan.senders,
            feed_url=devnet.feed_url,
            telemetry_run_id=info.run_id,
        )
        relay = devnet.feed_relay
        started = time.monotonic()
        report = EdgeRuntime(
            assignment, raw_tx_sink=relay.prime if relay is not None else None, telemetry_sink=sink
        ).run_blocking()
        # What reached the hive while the edge was still sending, and in how many polls (a second apart).
        streamed_before_end: dict[str, int] = {}
        polls = set()
        for table, _, at in frames:
            if at < report.sending_finished_ns:
                streamed_before_end[table] = streamed_before_end.get(table, 0) + 1
                polls.add((at - report.clock_origin_ns) // 1_000_000_000)
        writer.set_run_origin(info.run_id, report.wall_origin_ns)
        writer.register_edge(
            info.run_id,
            report.edge_id,
            host=report.host,
            clock=ClockMap.local(report.clock_origin_ns, report.wall_origin_ns),
            target_share=1.0,
        )
        for table, frame, _ in frames:
            writer.write_frame(table, frame)
        result = build_result(
            plan,
            [report],
            evaluate([report], plan.inclusion_timeout),
            chain_id=devnet.chain_id,
            devnet_kind=devnet.kind,
            node_version=devnet.node_version,
            duration=time.monotonic() - started,
        )
        writer.end_run(info.run_id, result=result)
        writer.close()
    return StoredRun(info.run_id, result, report, streamed_before_end, len(polls))


def _strings(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)


def _latency(table: pa.Table, end: str) -> LatencyStats:
    """The RunResult's latency rule, from stored rows: sustain phase, no gap fillers, nearest rank."""
    mask = pc.and_(
        pc.and_(pc.equal(table.column("phase").cast(pa.string()), "sustain"), pc.is_valid(table.column(end))),
        pc.not_equal(table.column("template").cast(pa.string()), "gap_filler"),
    )
    chosen = table.filter(mask)
    seconds = (
        np.asarray(chosen.column(end).to_numpy(), dtype=np.int64)
        - np.asarray(chosen.column("scheduled_ns").to_numpy(), dtype=np.int64)
    ) / 1e9
    return LatencyStats.of(seconds.tolist())


def test_streamed_parquet_agrees_with_the_run_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = run_and_store(
        tmp_path,
        monkeypatch,
        {"gas_per_sec": "3M", "duration": "4s", "warmup": "1s", "receipts": 150},
        nodeid="tests/acceptance/test_telemetry_from_a_real_run.py::test_streamed",
    )
    result, report = stored.result, stored.report
    tables: TelemetryTables = load(tmp_path)
    txs = tables.transactions

    # It streamed while the run went: rows and blocks reached the hive before the final poll.
    assert stored.polls >= 3
    assert stored.streamed_before_end.get("transactions", 0) > 0
    assert stored.streamed_before_end.get("blocks", 0) > 0

    # One row per transaction, exactly once, and the counts of the RunResult.
    assert txs.num_rows == report.digest.rows > 200
    assert sorted(txs.column("row").to_pylist()) == list(range(report.digest.rows))
    states = _strings(txs, "state")
    assert int((states == "included").sum()) == result.included
    assert int((states == "rejected").sum()) == result.rejected
    assert int((states == "lost").sum()) == result.lost
    assert txs.num_rows - txs.column("sent_ns").null_count == result.sent
    accepted = pc.or_(pc.is_valid(txs.column("accepted_ns")), pc.is_valid(txs.column("included_ns")))
    assert pc.sum(pc.cast(accepted, pa.int64())).as_py() == result.accepted
    assert tables.blocks.num_rows == result.blocks_observed == len(report.blocks)

    # Rows are emitted once final, so nothing about them changed after: each included row
    # carries its block, and each row on the receipt sample its receipt.
    included = txs.filter(pc.equal(txs.column("state").cast(pa.string()), "included"))
    assert included.column("block_number").null_count == 0
    assert included.column("included_ns").null_count == 0

    # Receipts: every sampled row that was included carries its receipt.
    sampled = txs.filter(txs.column("receipt_sampled"))
    assert sampled.num_rows == report.receipts_checked > 0
    assert sampled.column("receipt_status").null_count == 0
    assert set(sampled.column("receipt_status").to_pylist()) == {1}

    # Feed and latency columns tell the same story as the RunResult, to the nanosecond.
    assert report.feed_stats is not None
    matched = txs.num_rows - txs.column("feed_arrival_ns").null_count
    assert matched == report.digest.included > 0
    in_feed = txs.filter(pc.is_valid(txs.column("feed_arrival_ns")))
    assert in_feed.column("feed_sequence").to_pylist() == in_feed.column("block_number").to_pylist()
    assert set(_strings(in_feed, "state")) == {"included"}
    for name, end in (("accept", "accepted_ns"), ("inclusion", "included_ns"), ("feed", "feed_arrival_ns")):
        expected = getattr(result.latency, name)
        got = _latency(txs, end)
        assert got.count == expected.count, name
        assert got.p50 == pytest.approx(expected.p50, abs=1e-9), name
        assert got.p99 == pytest.approx(expected.p99, abs=1e-9), name
    # The run clock starts at the edge's t=0: the first arrival is one interval after it, and the
    # last within the plan's sending time.
    scheduled = txs.filter(pc.not_equal(txs.column("template").cast(pa.string()), "gap_filler"))
    assert 0 < pc.min(scheduled.column("scheduled_ns")).as_py() < 1_000_000_000
    assert pc.max(scheduled.column("scheduled_ns")).as_py() < 5_000_000_000

    # The run's row and the feed events.
    run = tables.runs.to_pylist()[0]
    assert (run["status"], run["sent"], run["included"], run["lost"]) == (
        "finished",
        result.sent,
        result.included,
        result.lost,
    )
    assert run["chain_id"] == 412346 and run["devnet_kind"] == "embedded"
    assert run["git_commit"] is not None
    kinds = set(_strings(tables.events, "kind"))
    assert {"phase_change", "run_started", "run_finished", "edge_joined", "verdict", "feed_connect"} <= kinds
    assert tables.verdicts.num_rows == len(result.verdicts)
    assert {v["name"]: v["status"] for v in tables.verdicts.to_pylist()} == {
        v.name: v.status for v in result.verdicts
    }
