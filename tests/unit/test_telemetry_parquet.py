"""The Parquet writer and reader: counts, layout, bounded parts, and what survives an interrupted process."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pytest_gashammer.telemetry.parquet import (
    BackgroundWriter,
    ParquetRunWriter,
    RunInfo,
    TelemetryDirectoryError,
    load,
    new_run_id,
)
from pytest_gashammer.telemetry.schema import SCHEMAS
from pytest_gashammer.telemetry.stream import (
    ClockMap,
    TelemetryEvent,
    TransactionCursor,
    blocks_batch,
    events_batch,
    feed_events,
    to_ipc_frames,
)
from tests.unit.test_telemetry_synthetic import SyntheticRun, synthetic_report

REPO = Path(__file__).resolve().parents[2]


def batch_of(run: SyntheticRun, run_id: str) -> pa.RecordBatch:
    report = run.report
    batch = TransactionCursor(
        run.txs,
        run_id=run_id,
        edge_id=report.edge_id,
        clock=ClockMap.local(report.clock_origin_ns, report.wall_origin_ns),
        templates=report.templates,
        sender_addresses=report.sender_addresses,
        receipt_stride=run.receipt_stride,
        feed=run.feed_columns,
        phases=run.plan.phases,
    ).poll(final=True)
    assert batch is not None
    return batch


def store(writer: ParquetRunWriter, run: SyntheticRun, *, nodeid: str = "tests/t.py::test_x") -> str:
    """Everything a hive would write for one finished run, batches through IPC frames."""
    info = RunInfo.for_plan(run.plan, test_nodeid=nodeid, chain_id=412346, devnet_kind="embedded")
    writer.begin_run(info)
    clock = ClockMap.local(run.report.clock_origin_ns, run.report.wall_origin_ns)
    writer.set_run_origin(info.run_id, run.report.wall_origin_ns)
    writer.register_edge(info.run_id, run.report.edge_id, host=run.report.host, clock=clock, target_share=1.0)
    batch = batch_of(run, info.run_id)
    for start in range(0, batch.num_rows, 1_000):  # as an edge would stream it, a second at a time
        for frame in to_ipc_frames(batch.slice(start, 1_000)):
            writer.write_frame("transactions", frame)
    writer.write("blocks", blocks_batch(run.report.blocks, run_id=info.run_id, edge_id="e0", clock=clock))
    writer.write(
        "events", events_batch(info.run_id, feed_events(run.report.feed_events, edge_id="e0", clock=clock))
    )
    writer.end_run(info.run_id, result=run.result)
    return info.run_id


def test_row_counts_equal_the_input_and_the_layout_is_one_directory_per_table_and_run(tmp_path: Path) -> None:
    run = synthetic_report(12_000)
    with ParquetRunWriter(tmp_path, row_group_rows=2_000, part_rows=5_000) as writer:
        run_id = store(writer, run)
    tables = load(tmp_path)
    assert tables.transactions.num_rows == 12_000
    assert tables.blocks.num_rows == len(run.report.blocks)
    assert tables.runs.num_rows == 1 and tables.verdicts.num_rows == len(run.result.verdicts)
    assert tables.edges.to_pylist()[0] | {"wall_origin_unix_ns": 0} == {
        "run_id": run_id,
        "edge_id": "e0",
        "host": "synthetic-host",
        "sent": 12_000,
        "included": run.result.included,
        "target_share": 1.0,
        "start_skew_s": 0.0,
        "wall_origin_unix_ns": 0,
        "clock_offset_ns": 0,
    }
    parts = sorted((tmp_path / "transactions" / f"run={run_id}").iterdir())
    assert [p.name for p in parts] == ["part-00000.parquet", "part-00001.parquet"]
    for part in parts:  # parts and row groups stay near their bounds: memory is bounded by them
        metadata = pq.ParquetFile(part).metadata
        assert metadata.num_rows <= 5_000 + 2_000
        assert all(metadata.row_group(i).num_rows <= 2_000 + 1_000 for i in range(metadata.num_row_groups))
    for name in ("runs", "verdicts", "edges"):
        assert (tmp_path / name / f"run={run_id}" / f"{name}.parquet").is_file()
    assert not list(tmp_path.rglob("*.inprogress")) and not list(tmp_path.rglob("*.tmp"))
    # The stored counts agree with the RunResult that was computed from the same edge report.
    states = dict(zip(*_value_counts(tables.transactions.column("state")), strict=True))
    result = run.result
    assert states.get("included", 0) == result.included
    assert states.get("rejected", 0) == result.rejected
    assert states.get("lost", 0) == result.lost
    assert tables.transactions.column("sent_ns").null_count == 12_000 - result.sent
    row = tables.runs.to_pylist()[0]
    assert (row["sent"], row["included"], row["lost"], row["status"]) == (
        result.sent,
        result.included,
        result.lost,
        "finished",
    )
    assert row["latency_inclusion_p99"] == pytest.approx(result.latency.inclusion.p99)
    errors = tables.events.filter(pa.compute.equal(tables.events.column("kind").cast(pa.string()), "error"))
    assert {e["detail"]: e["value"] for e in errors.to_pylist()} == {
        k: float(v) for k, v in result.errors.items()
    }


def _value_counts(column: pa.ChunkedArray) -> tuple[list[str], list[int]]:
    counts = column.cast(pa.string()).value_counts()
    return counts.field("values").to_pylist(), counts.field("counts").to_pylist()


def test_published_parts_are_readable_while_the_run_goes_and_quiet_tables_publish_on_time(
    tmp_path: Path,
) -> None:
    now = [100.0]
    writer = ParquetRunWriter(
        tmp_path, row_group_rows=500, part_rows=10**9, part_seconds=5.0, clock=lambda: now[0]
    )
    info = RunInfo.for_plan(synthetic_report(10).plan, run_id="live-run")
    writer.begin_run(info)
    batch = batch_of(synthetic_report(3_000), "live-run")
    writer.write("transactions", batch.slice(0, 1_200))
    assert load(tmp_path).transactions.num_rows == 0  # nothing published yet
    assert load(tmp_path).runs.to_pylist()[0]["status"] == "running"
    now[0] += 5.0
    writer.tick()
    assert load(tmp_path).transactions.num_rows == 1_200
    writer.write("transactions", batch.slice(1_200, 300))
    now[0] += 4.9
    writer.tick()
    assert load(tmp_path).transactions.num_rows == 1_200
    writer.flush()
    assert load(tmp_path).transactions.num_rows == 1_500
    writer.close()
    tables = load(tmp_path)
    assert tables.runs.to_pylist()[0]["status"] == "interrupted"  # never ended: close says so
    assert writer.closed
    with pytest.raises(RuntimeError, match="closed"):
        writer.write("transactions", batch)


def test_many_runs_share_a_directory_and_each_can_be_read_alone(tmp_path: Path) -> None:
    with ParquetRunWriter(tmp_path) as writer:
        first = store(writer, synthetic_report(2_000, seed=1), nodeid="t.py::one")
        second = store(writer, synthetic_report(3_000, seed=2), nodeid="t.py::two")
    # A later session appends to the same directory.
    with ParquetRunWriter(tmp_path) as writer:
        third = store(writer, synthetic_report(1_000, seed=3), nodeid="t.py::three")
    tables = load(tmp_path)
    assert tables.run_ids() == [first, second, third]
    assert tables.transactions.num_rows == 6_000
    assert tables.for_run(second).transactions.num_rows == 3_000
    only = load(tmp_path, run_ids=[first], tables=["transactions"], columns={"transactions": ["state"]})
    assert only.transactions.num_rows == 2_000 and only.runs.num_rows == 0
    assert only.transactions.column("state").null_count == 0
    assert only.transactions.column("tx_hash").null_count == 2_000  # not read: nulls


def test_the_background_writer_keeps_order_and_publishes_quiet_tables(tmp_path: Path) -> None:
    run = synthetic_report(4_000)
    writer = ParquetRunWriter(tmp_path, part_seconds=0.2)
    background = BackgroundWriter(writer, max_pending=4, tick_seconds=0.05)
    info = RunInfo.for_plan(run.plan, run_id="queued")
    writer.begin_run(info)
    batch = batch_of(run, "queued")
    for frame in to_ipc_frames(batch, max_bytes=32 * 1024):  # more frames than the queue holds
        background.submit("transactions", frame)
    background.submit("transactions", pa.Table.from_batches([batch.slice(0, 10)]))
    background.submit("transactions", b"not an ipc frame")
    assert background.drain(timeout=30)
    deadline = time.monotonic() + 10
    while load(tmp_path).transactions.num_rows < 4_010 and time.monotonic() < deadline:
        time.sleep(0.05)  # published by the thread's tick, with nobody writing
    assert load(tmp_path).transactions.num_rows == 4_010
    assert len(background.failures) == 1 and "transactions" in background.failures[0]
    background.close()
    writer.end_run("queued", result=run.result)
    writer.close()
    assert load(tmp_path).runs.to_pylist()[0]["status"] == "finished"


def test_a_batch_holding_two_runs_goes_to_both_runs(tmp_path: Path) -> None:
    with ParquetRunWriter(tmp_path) as writer:
        for run_id in ("a", "b"):
            writer.begin_run(RunInfo.for_plan(synthetic_report(10).plan, run_id=run_id))
        events = [TelemetryEvent(1, "note", detail="x")]
        mixed = pa.concat_tables(
            [pa.Table.from_batches([events_batch(run_id, events)]) for run_id in ("a", "b", "a")]
        )
        writer.write("events", mixed)
        writer.add_event("a", "edge_lost", t_ns=5, edge_id="gw1", detail="node down")
        for run_id in ("a", "b"):
            writer.end_run(run_id, status="failed")
    events = load(tmp_path).events
    notes = events.filter(pa.compute.equal(events.column("kind").cast(pa.string()), "note"))
    assert sorted(notes.column("run_id").cast(pa.string()).to_pylist()) == ["a", "a", "b"]
    lost = events.filter(pa.compute.equal(events.column("kind").cast(pa.string()), "edge_lost")).to_pylist()
    assert lost[0]["edge_id"] == "gw1" and lost[0]["t_ns"] == 5


def test_events_stamped_before_the_run_origin_is_known_are_placed_once_it_is(tmp_path: Path) -> None:
    with ParquetRunWriter(tmp_path) as writer:
        info = RunInfo.for_plan(synthetic_report(10).plan, run_id="r", started_unix_ns=1_000)
        writer.begin_run(info)
        writer.register_edge("r", "gw0", host="h", joined_unix_ns=4_000)
        writer.set_run_origin("r", 10_000)
        writer.add_event("r", "note", unix_ns=12_500, detail="later")
        writer.end_run("r", status="failed", ended_unix_ns=20_000)
    events = {e["kind"]: e for e in load(tmp_path).events.to_pylist()}
    assert events["run_started"]["t_ns"] == -9_000
    assert events["edge_joined"]["t_ns"] == -6_000 and events["edge_joined"]["edge_id"] == "gw0"
    assert events["note"]["t_ns"] == 2_500
    assert events["run_finished"]["t_ns"] == 10_000
    assert load(tmp_path).runs.to_pylist()[0]["origin_unix_ns"] == 10_000


def test_run_ids_are_path_safe(tmp_path: Path) -> None:
    assert new_run_id() != new_run_id()
    with ParquetRunWriter(tmp_path) as writer, pytest.raises(ValueError, match="run id"):
        writer.begin_run(RunInfo.for_plan(synthetic_report(10).plan, run_id="../escape"))


def test_bad_directories_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(TelemetryDirectoryError, match="does not exist"):
        load(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(TelemetryDirectoryError, match="not a directory"):
        load(tmp_path / "file")
    with pytest.raises(TelemetryDirectoryError, match="holds no gashammer telemetry"):
        load(tmp_path)
    broken = tmp_path / "transactions" / "run=x"
    broken.mkdir(parents=True)
    (broken / "part-00000.parquet").write_bytes(b"PAR1 but not really")
    with pytest.raises(TelemetryDirectoryError, match="not a readable Parquet file") as caught:
        load(tmp_path)
    assert "\n" not in str(caught.value)
    (broken / "part-00000.parquet").unlink()
    foreign = SCHEMAS["events"].with_metadata({b"gashammer.schema_version": b"9.0"})
    pq.write_table(
        foreign.empty_table(), broken.parent.parent / "events.parquet"
    )  # ignored: not in a run dir
    (tmp_path / "events" / "run=x").mkdir(parents=True)
    pq.write_table(foreign.empty_table(), tmp_path / "events" / "run=x" / "part-00000.parquet")
    with pytest.raises(TelemetryDirectoryError, match="schema version 9.0"):
        load(tmp_path)


# -- interrupted processes ------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    from pytest_gashammer.telemetry.parquet import ParquetRunWriter, RunInfo
    from pytest_gashammer.telemetry.records import TxLog
    from pytest_gashammer.telemetry.stream import ClockMap, TransactionCursor

    directory, mode = sys.argv[1], sys.argv[2]
    log = TxLog()
    for row in range(2_500):
        log.append(0, row % 8, row // 8, 21_000, row * 1_000_000, row.to_bytes(32, "big"))
    plan = {"name": "cut-short", "seed": 1, "target_gas_per_sec": 1e6,
            "phases": [{"name": "sustain", "start": 0, "end": 10, "gas_from": 1e6, "gas_to": 1e6}]}
    writer = ParquetRunWriter(directory, row_group_rows=200, part_rows=1_000, part_seconds=3_600)
    writer.begin_run(RunInfo.for_plan(plan, run_id="cut-short"))
    cursor = TransactionCursor(log, run_id="cut-short", edge_id="e0", clock=ClockMap.local(0, 0),
                               templates=["transfer"])
    batch = cursor.poll(final=True)

    def run():
        for start in range(0, 2_500, 100):
            writer.write("transactions", batch.slice(start, 100))
        print("READY", flush=True)  # 2 parts published, 400 rows in an open part, 100 buffered
        for _ in range(1_200):
            time.sleep(0.05)

    if mode == "with":
        with writer:
            run()
    else:
        run()  # no close at all: the atexit hook publishes
    """
)


def _run_child(directory: Path, mode: str, sig: int) -> int:
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "the child never got ready"
        assert process.stdout.readline().strip() == b"READY"
        os.kill(process.pid, sig)
        return process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("mode", ["with", "atexit"])
def test_ctrl_c_mid_run_leaves_every_row_readable(tmp_path: Path, mode: str) -> None:
    code = _run_child(tmp_path, mode, signal.SIGINT)
    assert code in (-signal.SIGINT, 130, 1), code
    tables = load(tmp_path)
    assert tables.transactions.num_rows == 2_500
    assert tables.transactions.column("row").to_pylist() == list(range(2_500))
    assert tables.runs.to_pylist()[0]["status"] == "interrupted"
    assert tables.incomplete_files == []
    assert tables.events.num_rows > 0


def test_sigkill_mid_run_loses_only_the_unpublished_tail(tmp_path: Path) -> None:
    code = _run_child(tmp_path, "with", signal.SIGKILL)
    assert code == -signal.SIGKILL
    tables = load(tmp_path)
    assert tables.transactions.num_rows == 2_000  # the two published parts, intact
    assert tables.runs.to_pylist()[0]["status"] == "running"  # nobody could say otherwise
    assert {path.name for path in tables.incomplete_files} >= {"part-00002.parquet.inprogress"}
