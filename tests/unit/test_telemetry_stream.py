"""The edge-side stream: which rows a cursor emits and when, clocks, feed columns, IPC frames."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from pytest_gashammer.feed.correlator import Correlator
from pytest_gashammer.telemetry.records import (
    NOT_YET,
    STATUS_ACCEPTED,
    STATUS_INCLUDED,
    STATUS_REJECTED,
    STATUS_SENT,
    BlockRecord,
    TxLog,
)
from pytest_gashammer.telemetry.schema import BLOCKS, EVENTS, TRANSACTIONS
from pytest_gashammer.telemetry.stream import (
    DEFAULT_FRAME_BYTES,
    MAX_FRAME_BYTES,
    RUN_CLOCK_COLUMNS,
    BlockCursor,
    ClockMap,
    EdgeTelemetry,
    FeedEventCursor,
    TransactionCursor,
    estimate_offset_ns,
    from_ipc,
    plan_phase_events,
    rebase,
    to_ipc,
    to_ipc_frames,
)
from tests.unit.test_telemetry_synthetic import synthetic_report

S = 1_000_000_000
ORIGIN = 1_000 * S  # edge monotonic ns at plan t=0
WALL = 1_763_683_200 * S


def clock() -> ClockMap:
    return ClockMap.local(ORIGIN, WALL)


def cursor(log: TxLog, **options: object) -> TransactionCursor:
    settings: dict[str, object] = {
        "run_id": "run-1",
        "edge_id": "e0",
        "clock": clock(),
        "templates": ["transfer", "erc20"],
        "grace_s": 2.0,
    }
    settings.update(options)
    return TransactionCursor(log, **settings)  # type: ignore[arg-type]


def add(log: TxLog, count: int, *, at: int = ORIGIN, template: int = 0) -> list[int]:
    return [
        log.append(template, row % 4, row // 4, 21_000, at + row * 1_000_000, row.to_bytes(32, "big"))
        for row in range(len(log), len(log) + count)
    ]


def accept(log: TxLog, row: int, at: int) -> None:
    log.sent_ns[row] = at - 1_000_000
    log.accepted_ns[row] = at
    log.state[row] = STATUS_ACCEPTED


def include(log: TxLog, row: int, at: int, block: int = 7) -> None:
    log.included_ns[row] = at
    log.block_number[row] = block
    log.inclusions[row] = 1
    log.state[row] = STATUS_INCLUDED


def reject(log: TxLog, row: int, at: int, kind: str = "nonce_too_low") -> None:
    log.sent_ns[row] = at
    log.state[row] = STATUS_REJECTED
    log.error[row] = log.error_code(kind)


def rows_of(batch: pa.RecordBatch | None) -> list[int]:
    return [] if batch is None else batch.column("row").to_pylist()


# -- finality -------------------------------------------------------------------------------------


def test_an_included_row_is_held_for_the_grace_period_then_emitted_once() -> None:
    log = TxLog()
    (row,) = add(log, 1)
    accept(log, row, ORIGIN + S)
    include(log, row, ORIGIN + 2 * S)
    stream = cursor(log)
    assert stream.poll(now_ns=ORIGIN + 4 * S - 1) is None
    assert stream.open_rows == 1
    assert rows_of(stream.poll(now_ns=ORIGIN + 4 * S)) == [row]
    assert stream.poll(now_ns=ORIGIN + 100 * S) is None
    assert stream.poll(now_ns=ORIGIN + 100 * S, final=True) is None
    assert stream.emitted == 1


def test_a_late_feed_arrival_within_the_grace_period_makes_it_into_the_row() -> None:
    log = TxLog()
    correlator = Correlator()
    (row,) = add(log, 1)
    correlator.register(bytes(log.hashes[0:32]), row, log.intended_ns[row])
    accept(log, row, ORIGIN + S)
    include(log, row, ORIGIN + 2 * S)
    stream = cursor(log, feed=correlator)
    assert stream.poll(now_ns=ORIGIN + 3 * S) is None
    message = SimpleNamespace(sequence_number=7, block_hash=None, tx_hashes=("0x" + log.hashes[0:32].hex(),))
    correlator.on_message(message, ORIGIN + 3 * S)  # type: ignore[arg-type]  # the feed trails the block by a second
    batch = stream.poll(now_ns=ORIGIN + 4 * S)
    assert batch is not None
    assert batch.column("feed_arrival_ns").to_pylist() == [3 * S]
    assert batch.column("feed_sequence").to_pylist() == [7]
    assert batch.column("feed_appearances").to_pylist() == [1]


def test_sampled_rows_wait_for_their_receipt_and_unsampled_rows_do_not() -> None:
    log = TxLog()
    rows = add(log, 6)
    for row in rows:
        accept(log, row, ORIGIN + S)
        include(log, row, ORIGIN + 2 * S)
    stream = cursor(log, receipt_stride=3)  # rows 0 and 3 are on the receipt sample
    batch = stream.poll(now_ns=ORIGIN + 10 * S)
    assert rows_of(batch) == [1, 2, 4, 5]
    assert batch is not None and not any(batch.column("receipt_sampled").to_pylist())
    log.receipt_status[3] = 1
    log.gas_used[3] = 20_999
    batch = stream.poll(now_ns=ORIGIN + 11 * S)
    assert rows_of(batch) == [3]
    assert batch is not None
    assert batch.column("receipt_status").to_pylist() == [1]
    assert batch.column("gas_used").to_pylist() == [20_999]
    assert batch.column("receipt_sampled").to_pylist() == [True]
    batch = stream.poll(now_ns=ORIGIN + 12 * S, final=True)
    assert rows_of(batch) == [0]  # never got its receipt: emitted at the end, status null
    assert batch is not None and batch.column("receipt_status").to_pylist() == [None]


def test_receipt_wait_bounds_how_long_a_sampled_row_is_held() -> None:
    log = TxLog()
    (row,) = add(log, 1)
    accept(log, row, ORIGIN + S)
    include(log, row, ORIGIN + 2 * S)
    stream = cursor(log, receipt_stride=1, receipt_wait_s=5.0)
    assert stream.poll(now_ns=ORIGIN + 7 * S - 1) is None
    assert rows_of(stream.poll(now_ns=ORIGIN + 7 * S)) == [row]


def test_rejections_are_final_after_the_grace_period_but_transport_failures_wait_for_the_end() -> None:
    log = TxLog()
    refused, dropped, included_after_all = add(log, 3)
    reject(log, refused, ORIGIN + S, "nonce_too_low")
    reject(log, dropped, ORIGIN + S, "transport")
    reject(log, included_after_all, ORIGIN + S, "transport")
    stream = cursor(log)
    assert stream.poll(now_ns=ORIGIN + 2 * S) is None
    batch = stream.poll(now_ns=ORIGIN + 3 * S)
    assert rows_of(batch) == [refused]
    assert batch is not None
    assert batch.column("state").to_pylist() == ["rejected"]
    assert batch.column("error_kind").to_pylist() == ["nonce_too_low"]
    # The node had taken it after all: it shows up in a block.
    include(log, included_after_all, ORIGIN + 4 * S)
    batch = stream.poll(now_ns=ORIGIN + 10 * S)
    assert rows_of(batch) == [included_after_all]
    assert batch is not None and batch.column("state").to_pylist() == ["included"]
    batch = stream.poll(now_ns=ORIGIN + 10 * S, final=True)
    assert rows_of(batch) == [dropped]
    assert batch is not None and batch.column("state").to_pylist() == ["rejected"]


def test_a_row_included_before_the_node_answered_waits_for_the_answer() -> None:
    log = TxLog()
    (row,) = add(log, 1)
    log.sent_ns[row] = ORIGIN + S
    log.state[row] = STATUS_SENT
    include(log, row, ORIGIN + 2 * S)
    stream = cursor(log)
    assert stream.poll(now_ns=ORIGIN + 10 * S) is None
    log.accepted_ns[row] = ORIGIN + 3 * S
    batch = stream.poll(now_ns=ORIGIN + 10 * S)
    assert rows_of(batch) == [row]
    assert batch is not None and batch.column("accepted_ns").to_pylist() == [3 * S]


def test_final_names_what_never_finished_lost_or_pending() -> None:
    log = TxLog()
    accepted_only, sent_only, never_sent = add(log, 3)
    accept(log, accepted_only, ORIGIN + S)
    log.sent_ns[sent_only] = ORIGIN + S
    log.state[sent_only] = STATUS_SENT
    stream = cursor(log)
    assert stream.poll(now_ns=ORIGIN + 100 * S) is None
    batch = stream.poll(now_ns=ORIGIN + 100 * S, final=True)
    assert batch is not None
    assert batch.column("state").to_pylist() == ["lost", "pending", "pending"]
    assert batch.column("sent_ns").to_pylist() == [S - 1_000_000, S, None]
    assert stream.closed
    add(log, 1)
    assert stream.poll(final=True) is None  # closed: nothing more, ever


def test_every_row_is_emitted_exactly_once_when_rows_finalize_out_of_order() -> None:
    rng = random.Random(2024)
    log = TxLog()
    stream = cursor(log, receipt_stride=5)
    emitted: list[int] = []
    now = ORIGIN
    for _step in range(400):
        now += rng.randrange(10_000_000, 400_000_000)
        add(log, rng.randrange(0, 40), at=now)
        for _ in range(60):  # lifecycle events land on random rows, in any order
            if not len(log):
                break
            row = rng.randrange(len(log))
            roll = rng.random()
            if log.sent_ns[row] == NOT_YET:
                if roll < 0.05:
                    reject(log, row, now, rng.choice(["nonce_too_low", "transport", "txpool_full"]))
                else:
                    accept(log, row, now)
            elif log.state[row] == STATUS_ACCEPTED and roll < 0.7:
                include(log, row, now, block=row // 10)
            elif log.state[row] == STATUS_INCLUDED and log.receipt_status[row] == NOT_YET and roll < 0.5:
                log.receipt_status[row] = 1
        if rng.random() < 0.6:
            batch = stream.poll(now_ns=now)
            for got in rows_of(batch):
                # Emitted means final: included+answered+receipt-if-sampled+grace, or a rejection.
                assert log.state[got] in (STATUS_INCLUDED, STATUS_REJECTED)
                if log.state[got] == STATUS_INCLUDED:
                    assert log.included_ns[got] <= now - 2 * S
                    if got % 5 == 0:
                        assert log.receipt_status[got] != NOT_YET
            emitted += rows_of(batch)
    emitted += rows_of(stream.poll(now_ns=now, final=True))
    assert len(log) > 5_000
    assert sorted(emitted) == list(range(len(log)))
    assert len(emitted) == len(set(emitted)) == stream.emitted
    assert stream.open_rows == 0


def test_polling_never_leaves_the_log_locked_against_appends() -> None:
    # numpy views lock array.array and bytearray against resizing while they live: the cursor must
    # drop them before returning, or the edge's next append would raise BufferError.
    log = TxLog()
    correlator = Correlator()
    stream = cursor(log, feed=correlator, receipt_stride=2, sender_addresses=["0xa", "0xb", "0xc", "0xd"])
    for round_ in range(5):
        for row in add(log, 3000):
            correlator.register(bytes(log.hashes[row * 32 : row * 32 + 32]), row, log.intended_ns[row])
            accept(log, row, ORIGIN + round_ * S)
            include(log, row, ORIGIN + round_ * S)
            log.receipt_status[row] = 1
        assert stream.poll(now_ns=ORIGIN + (round_ + 3) * S) is not None
    assert stream.emitted == len(log) == 15_000


def test_columns_carry_templates_senders_phases_and_the_run_clock() -> None:
    log = TxLog()
    rows = add(log, 4, at=ORIGIN + 500_000_000)
    log.template[3] = -1  # a nonce-gap filler
    log.intended_ns[3] = ORIGIN + 50 * S  # after the last phase
    for row in rows:
        accept(log, row, ORIGIN + S)
        include(log, row, ORIGIN + 2 * S, block=42)
    phases = [{"name": "warmup", "start": 0.0, "end": 0.501}, {"name": "sustain", "start": 0.501, "end": 3.0}]
    shifted = ClockMap(ORIGIN, WALL, run_origin_unix_ns=WALL - 250_000_000, edge_offset_ns=1_000)
    stream = cursor(
        log,
        clock=shifted,
        sender_addresses=["0xa", "0xb", "0xc"],  # sender 3 has no address: null
        sender_offset=100,
        phases=phases,
    )
    batch = stream.poll(now_ns=ORIGIN + 100 * S)
    assert batch is not None
    assert batch.schema.equals(TRANSACTIONS, check_metadata=True)
    table = batch.to_pydict()
    assert table["template"] == ["transfer", "transfer", "transfer", "gap_filler"]
    assert table["sender_index"] == [100, 101, 102, 103]
    assert table["sender"] == ["0xa", "0xb", "0xc", None]
    assert table["phase"] == ["warmup", "sustain", "sustain", None]
    shift = 250_000_000 + 1_000
    assert shifted.shift_ns == shift - ORIGIN
    assert shifted.start_skew_ns == shift
    assert table["scheduled_ns"][0] == 500_000_000 + shift
    assert table["accepted_ns"] == [S + shift] * 4
    assert table["included_ns"] == [2 * S + shift] * 4
    assert table["block_number"] == [42] * 4
    assert table["tx_hash"][1] == (1).to_bytes(32, "big")
    assert table["run_id"] == ["run-1"] * 4 and table["edge_id"] == ["e0"] * 4


def test_feed_columns_are_the_same_from_a_live_correlator_and_from_its_shipped_columns() -> None:
    run = synthetic_report(3_000)
    log, columns = run.txs, run.feed_columns
    assert columns is not None
    live = Correlator()
    for name, typecode in (("arrival_ns", "q"), ("sequence", "q"), ("position", "l"), ("appearances", "b")):
        values = getattr(live, name)
        values.frombytes(columns[name])
        assert values.typecode == typecode
    common = {"receipt_stride": run.receipt_stride, "templates": run.report.templates}
    from_columns = cursor(log, feed=columns, **common).poll(final=True)
    from_live = cursor(log, feed=live, **common).poll(final=True)
    assert from_columns is not None and from_live is not None
    assert from_columns.equals(from_live)
    arrived = np.frombuffer(columns["arrival_ns"], dtype=np.int64) != NOT_YET
    assert from_columns.column("feed_arrival_ns").null_count == len(log) - int(arrived.sum())


def test_feed_columns_follow_a_correlator_that_forgot_its_first_rows() -> None:
    # A soak run's correlator holds rows base.. only: the cursor must read row r at r - base, live or
    # shipped, and rows already forgotten come out without feed facts rather than another row's.
    log = TxLog()
    rows = add(log, 6)
    correlator = Correlator()
    for row in rows:
        correlator.register(bytes(log.hashes[row * 32 : row * 32 + 32]), row, log.intended_ns[row])
        accept(log, row, ORIGIN + S)
        include(log, row, ORIGIN + S)
    message = SimpleNamespace(
        sequence_number=7, block_hash=None, tx_hashes=["0x" + row.to_bytes(32, "big").hex() for row in rows]
    )
    correlator.on_message(message, ORIGIN + 2 * S)  # type: ignore[arg-type]
    correlator.forget_before(2)
    for feed in (correlator, correlator.to_columns()):
        batch = cursor(log, feed=feed).poll(final=True)
        assert batch is not None
        table = batch.to_pydict()
        assert table["feed_position"] == [None, None, 2, 3, 4, 5]
        assert table["feed_sequence"] == [None, None, 7, 7, 7, 7]
        assert table["feed_appearances"] == [None, None, 1, 1, 1, 1]


# -- clocks ---------------------------------------------------------------------------------------


def test_clock_maps_align_edges_that_started_at_different_moments_on_different_clocks() -> None:
    run_origin = WALL
    # Edge A: same machine, started 3 ms after the run's t=0.
    a = ClockMap(clock_origin_ns=50 * S, wall_origin_ns=WALL + 3_000_000, run_origin_unix_ns=run_origin)
    # Edge B: another machine whose wall clock is 2 s behind the hive's, started 5 ms after t=0.
    b = ClockMap(
        clock_origin_ns=9 * S,
        wall_origin_ns=WALL - 2 * S + 5_000_000,
        run_origin_unix_ns=run_origin,
        edge_offset_ns=2 * S,
    )
    assert a.start_skew_ns == 3_000_000
    assert b.start_skew_ns == 5_000_000
    # The same instant, 1 s after t=0, read on each edge's monotonic clock, lands on the same run time.
    assert a.to_run(50 * S + S - 3_000_000) == b.to_run(9 * S + S - 5_000_000) == S


def test_offset_estimate_takes_the_middle_of_the_round_trip() -> None:
    # Hive stamps 100 and 140 (its clock); the edge answered 70 in between: it is 50 behind.
    assert estimate_offset_ns(100, 70, 140) == 50


# -- other tables and frames ----------------------------------------------------------------------


def test_block_and_feed_event_cursors_emit_what_was_appended_since_the_last_call() -> None:
    blocks: list[BlockRecord] = []
    events: list[tuple[str, int, str, int | None]] = []
    block_cursor = BlockCursor(blocks, run_id="r", edge_id="e0", clock=clock())
    event_cursor = FeedEventCursor(events, run_id="r", edge_id="e0", clock=clock())
    assert block_cursor.poll() is None and event_cursor.poll() is None
    blocks.append(BlockRecord(5, "0x" + "ab" * 32, "0x" + "cd" * 32, 1_700, 21_000, 10**9, 1, ORIGIN + S, 7))
    blocks.append(
        BlockRecord(6, "0x" + "ef" * 32, "0x" + "ab" * 32, 1_701, 0, 10**9, 0, ORIGIN + 2 * S, 2**70)
    )
    events.append(("reconnect", ORIGIN + S, "resumed", 12))
    batch = block_cursor.poll()
    assert batch is not None and batch.schema.equals(BLOCKS)
    assert batch.to_pydict()["observed_ns"] == [S, 2 * S]
    assert batch.to_pydict()["block_hash"][0] == bytes.fromhex("ab" * 32)
    assert batch.to_pydict()["base_fee"] == [7, None]  # beyond int64: not representable, null
    event_batch = event_cursor.poll()
    assert event_batch is not None and event_batch.schema.equals(EVENTS)
    assert event_batch.to_pylist()[0] | {"run_id": "r"} == {
        "run_id": "r",
        "t_ns": S,
        "kind": "feed_reconnect",
        "edge_id": "e0",
        "sequence": 12,
        "block_number": None,
        "tx_hash": None,
        "value": None,
        "detail": "resumed",
    }
    assert block_cursor.poll() is None and event_cursor.poll() is None


def test_planned_phases_become_phase_change_events() -> None:
    plan = {
        "phases": [
            {"name": "warmup", "start": 0.0, "end": 1.0, "gas_from": 1e5, "gas_to": 1e5},
            {"name": "sustain", "start": 1.0, "end": 3.5, "gas_from": 1e6, "gas_to": 1e6},
        ]
    }
    events = plan_phase_events(plan)
    assert [(e.t_ns, e.detail, e.value) for e in events] == [
        (0, "warmup", 1e5),
        (S, "sustain", 1e6),
        (3_500_000_000, "done", 0.0),
    ]


def test_ipc_frames_stay_well_under_a_megabyte_and_keep_every_row_in_order() -> None:
    run = synthetic_report(60_000)
    batch = cursor(
        run.txs,
        templates=run.report.templates,
        sender_addresses=run.report.sender_addresses,
        feed=run.feed_columns,
    ).poll(final=True)
    assert batch is not None and batch.nbytes > 4 * MAX_FRAME_BYTES
    frames = to_ipc_frames(batch)
    assert len(frames) > 4
    assert max(len(frame) for frame in frames) <= DEFAULT_FRAME_BYTES < MAX_FRAME_BYTES
    decoded = [from_ipc(frame) for frame in frames]
    assert sum(part.num_rows for part in decoded) == batch.num_rows
    assert pa.Table.from_batches(decoded).column("row").to_pylist() == list(range(batch.num_rows))
    assert pa.Table.from_batches(decoded).equals(pa.Table.from_batches([batch]))
    small = to_ipc_frames(batch, max_bytes=20_000)
    assert max(len(frame) for frame in small) <= 20_000
    assert sum(from_ipc(frame).num_rows for frame in small) == batch.num_rows


def test_one_frame_round_trips_exactly() -> None:
    run = synthetic_report(500)
    batch = cursor(run.txs, templates=run.report.templates).poll(final=True)
    assert batch is not None
    assert from_ipc(to_ipc(batch)).equals(batch)
    assert to_ipc_frames(batch.slice(0, 0)) == []


@pytest.mark.parametrize("rows", [0, 1, 1000])
def test_the_cursor_handles_logs_of_any_size(rows: int) -> None:
    log = TxLog()
    add(log, rows)
    stream = cursor(log, receipt_stride=3, feed=Correlator())
    assert stream.poll(now_ns=ORIGIN + 100 * S) is None
    batch = stream.poll(final=True)
    if rows == 0:
        assert batch is None and stream.closed
        return
    assert batch is not None and batch.num_rows == rows
    assert np.array_equal(np.asarray(batch.column("nonce")), np.arange(rows) // 4)


def test_edge_telemetry_polls_all_three_streams_as_small_frames() -> None:
    run = synthetic_report(5_000)
    report = run.report
    events: list[tuple[str, int, str, int | None]] = list(report.feed_events)
    duplicates: list[str] = []
    telemetry = EdgeTelemetry(
        run.txs,
        run_id="r",
        edge_id="e0",
        clock=ClockMap.local(report.clock_origin_ns, report.wall_origin_ns),
        blocks=report.blocks,
        feed_events=events,
        duplicates=duplicates,
        max_frame_bytes=64 * 1024,
        templates=report.templates,
        feed=run.feed_columns,
    )
    frames = telemetry.frames(now_ns=report.clock_origin_ns)  # nothing is past the grace period yet
    assert {table for table, _ in frames} == {"blocks", "events"}
    duplicates.append("0x" + "ab" * 32)  # the edge saw a transaction in a second block
    frames += telemetry.frames(now_ns=report.clock_origin_ns + 7 * S)
    frames += telemetry.frames(final=True)
    assert max(len(frame) for _, frame in frames) <= 64 * 1024
    rows = {table: sum(from_ipc(f).num_rows for t, f in frames if t == table) for table, _ in frames}
    assert rows == {"blocks": len(report.blocks), "events": len(events) + 1, "transactions": 5_000}
    noticed = [from_ipc(f).to_pylist() for t, f in frames if t == "events"][-1][0]
    assert noticed["kind"] == "duplicate_inclusion" and noticed["t_ns"] == 7 * S
    assert noticed["tx_hash"] == bytes.fromhex("ab" * 32) and noticed["edge_id"] == "e0"
    assert telemetry.frames(final=True) == []


def test_rebase_moves_every_run_clock_column_and_keeps_nulls() -> None:
    log = TxLog()
    accepted_row, pending_row = add(log, 2)
    accept(log, accepted_row, ORIGIN + S)
    batch = cursor(log).poll(final=True)
    assert batch is not None
    moved = rebase("transactions", batch, 5 * S)
    for name in RUN_CLOCK_COLUMNS["transactions"]:
        before, after = batch.column(name).to_pylist(), moved.column(name).to_pylist()
        assert after == [None if value is None else value + 5 * S for value in before]
    assert moved.column("nonce").equals(batch.column("nonce"))
    assert rebase("transactions", batch, 0) is batch
