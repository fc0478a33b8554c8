"""The columnar transaction log: bulk operations the hot path uses agree with row-by-row ones."""

from __future__ import annotations

from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_gashammer.telemetry.records import (
    GIVEN_COLUMNS,
    NOT_YET,
    STATUS_ACCEPTED,
    STATUS_INCLUDED,
    STATUS_SCHEDULED,
    STATUS_SENT,
    TxLog,
)
from tests.unit.edge_reports import GAP_FILLER, Log

rows = st.lists(
    st.tuples(
        st.integers(-1, 5),
        st.integers(0, 2**31 - 1),
        st.integers(0, 2**63 - 1),
        st.integers(0, 2**40),
        st.integers(0, 2**62),
        st.binary(min_size=32, max_size=32),
    ),
    max_size=40,
)


def columns(log: TxLog) -> dict:
    data = log.to_columns()
    return {name: data[name] for name in data}


@settings(max_examples=100, deadline=None)
@given(first=rows, second=rows)
def test_extend_writes_the_same_columns_as_append(first: list, second: list) -> None:
    by_row, in_bulk = TxLog(), TxLog()
    for chunk in (first, second):
        for template, sender, nonce, gas, intended, tx_hash in chunk:
            by_row.append(template, sender, nonce, gas, intended, tx_hash)
        start = in_bulk.extend(
            [r[0] for r in chunk],
            [r[1] for r in chunk],
            [r[2] for r in chunk],
            [r[3] for r in chunk],
            [r[4] for r in chunk],
            b"".join(r[5] for r in chunk),
        )
        assert start == len(in_bulk) - len(chunk)
    assert columns(in_bulk) == columns(by_row)


def test_extend_refuses_columns_of_different_lengths() -> None:
    log = TxLog()
    try:
        log.extend([0, 0], [1], [2, 3], [21_000, 21_000], [5, 6], bytes(64))
    except ValueError as exc:
        assert "one value per transaction" in str(exc)
    else:
        raise AssertionError("uneven columns were accepted")
    assert len(log) == 0


def filled(count: int) -> TxLog:
    log = TxLog()
    log.extend(
        [0] * count,
        list(range(count)),
        list(range(count)),
        [21_000] * count,
        list(range(count)),
        b"".join(bytes([i]) * 32 for i in range(count)),
    )
    return log


def test_truncate_forgets_rows_in_every_column() -> None:
    log, reference = filled(10), filled(6)
    log.truncate(6)
    assert len(log) == 6
    assert columns(log) == columns(reference)


def test_mark_sent_and_accepted_touch_only_their_rows() -> None:
    log = filled(8)
    log.mark_sent(2, 4, 111)
    assert list(log.sent_ns) == [NOT_YET] * 2 + [111] * 4 + [NOT_YET] * 2
    assert list(log.state) == [STATUS_SCHEDULED] * 2 + [STATUS_SENT] * 4 + [STATUS_SCHEDULED] * 2
    assert log.mark_accepted(2, 4, 222) == 4
    assert list(log.accepted_ns) == [NOT_YET] * 2 + [222] * 4 + [NOT_YET] * 2
    assert list(log.state)[2:6] == [STATUS_ACCEPTED] * 4


def test_a_row_seen_in_a_block_before_its_answer_stays_included() -> None:
    log = filled(5)
    log.mark_sent(0, 5, 1)
    log.state[3] = STATUS_INCLUDED
    assert log.mark_accepted(0, 5, 2) == 4, "only rows not yet included wait for inclusion"
    assert list(log.state) == [STATUS_ACCEPTED] * 3 + [STATUS_INCLUDED, STATUS_ACCEPTED]
    assert list(log.accepted_ns) == [2] * 5


def test_gas_is_the_receipts_when_checked_else_the_plan() -> None:
    log = filled(2)
    log.gas_used[1] = 20_999
    assert [log.gas(0), log.gas(1)] == [21_000, 20_999]


def test_hash_bytes_and_tx_hash_name_the_same_row() -> None:
    log = filled(3)
    assert log.hash_bytes(2) == bytes([2]) * 32
    assert log.tx_hash(2) == "0x" + "02" * 32


# ----------------------------------------------------------------------------------------------
# TxLog columns


def test_txlog_round_trips_through_columns() -> None:
    log = Log()
    log.ok(1.0, nonce=2**40, sender=3)
    log.add(intended=2.0, sent=2.0, rejected="nonce_too_low", nonce=5, gas_planned=123_456, template=2)
    log.add(intended=3.0, sent=3.0, rejected="txpool_full", nonce=6, template=GAP_FILLER)
    log.add(intended=4.0, sent=4.0, rejected="nonce_too_low", nonce=7)
    log.add(intended=5.0)
    original = log.txs
    columns = original.to_columns()
    assert all(isinstance(columns[name], bytes) for name, *_ in TxLog.COLUMNS)
    again = TxLog.from_columns(columns)
    assert len(again) == len(original) == 5
    for name, *_ in TxLog.COLUMNS:
        assert list(getattr(again, name)) == list(getattr(original, name)), name
    assert [again.tx_hash(row) for row in range(5)] == [original.tx_hash(row) for row in range(5)]
    assert again.error_kinds == ["nonce_too_low", "txpool_full"]
    # The kind-to-code mapping survives, so new errors of a known kind reuse its code.
    assert again.error_code("txpool_full") == original.error_code("txpool_full")
    assert again.error_code("new_kind") == 2
    assert again.state[4] == STATUS_SCHEDULED and again.sent_ns[4] == NOT_YET


def test_txlog_tx_hash_is_the_row_hash_as_hex() -> None:
    log = TxLog()
    log.append(0, 0, 0, 21_000, 0, b"\x01" * 32)
    log.append(0, 0, 1, 21_000, 0, b"\xfe" * 32)
    assert log.tx_hash(0) == "0x" + "01" * 32
    assert log.tx_hash(1) == "0x" + "fe" * 32


def test_a_new_row_has_nothing_happened_yet() -> None:
    log = TxLog()
    row = log.append(1, 2, 3, 21_000, 99, b"\x00" * 32)
    assert (log.template[row], log.sender[row], log.nonce[row]) == (1, 2, 3)
    assert (log.gas_planned[row], log.intended_ns[row]) == (21_000, 99)
    untouched = ("sent_ns", "accepted_ns", "included_ns", "block_number", "receipt_status", "gas_used")
    for column in untouched:
        assert getattr(log, column)[row] == NOT_YET, column
    assert log.state[row] == STATUS_SCHEDULED
    assert log.inclusions[row] == 0


def test_the_declared_columns_are_the_logs_arrays() -> None:
    log = TxLog()
    declared = [column.name for column in TxLog.COLUMNS]
    arrays = [name for name, value in vars(log).items() if isinstance(value, array)]
    assert arrays == declared
    # The annotations that name the arrays for type checkers say the same.
    annotated = [name for name, kind in TxLog.__annotations__.items() if "array" in str(kind)]
    assert annotated == declared
    assert all(getattr(log, column.name).typecode == column.typecode for column in TxLog.COLUMNS)


def test_append_takes_the_given_columns_in_declaration_order() -> None:
    assert GIVEN_COLUMNS == ("template", "sender", "nonce", "gas_planned", "intended_ns")
    log = TxLog()
    log.append(1, 2, 3, 4, 5, bytes(32))
    assert [getattr(log, name)[0] for name in GIVEN_COLUMNS] == [1, 2, 3, 4, 5]
    for column in TxLog.COLUMNS:
        if column.initial is not None:
            assert getattr(log, column.name)[0] == column.initial, column.name


def test_every_column_is_stored_in_the_transactions_table() -> None:
    from pytest_gashammer.telemetry.schema import TRANSACTIONS

    stored = [stored.column for column in TxLog.COLUMNS for stored in column.stored]
    names = TRANSACTIONS.names
    # In the table's order, between the row's identity and the feed's columns.
    assert names[4 : 4 + len(stored)] == stored
    for column in TxLog.COLUMNS:
        for item in column.stored:
            assert TRANSACTIONS.field(item.column).nullable is not item.required, item.column
