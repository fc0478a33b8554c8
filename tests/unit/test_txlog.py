"""The columnar transaction log: bulk operations the hot path uses agree with row-by-row ones."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_gashammer.telemetry.records import (
    NOT_YET,
    STATUS_ACCEPTED,
    STATUS_INCLUDED,
    STATUS_SCHEDULED,
    STATUS_SENT,
    TxLog,
)

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
