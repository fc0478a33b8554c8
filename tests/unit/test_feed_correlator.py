"""The feed correlator on synthetic feed messages: latency math and the feed-vs-chain cross-checks.

Messages are built with ``FeedMessage.for_block`` (as a sequencer would) from real signed transactions
or seeded random bytes; the codec hashes them, so the correlator sees exactly what a feed client hands
it. Also covers the relay's pure helpers (how a block becomes messages, the resume header).
"""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Sequence

import pytest
from eth_account import Account
from eth_hash.auto import keccak

from pytest_gashammer.feed import (
    MAX_L2_MESSAGE_SIZE,
    Correlator,
    FeedMessage,
    decode_broadcast,
    encode_broadcast,
    messages_for_block,
)
from pytest_gashammer.feed.relay import parse_requested_sequence

DEV_KEY = "0xb6b15c8cb491557369f3c7d2c287b053eb229daa9c22138887752191c9520659"
MS = 1_000_000


def random_txs(count: int, seed: int = 1, size: int = 110) -> list[bytes]:
    rng = random.Random(seed)
    return [b"\x02" + rng.randbytes(size - 1) for _ in range(count)]


def block_hash(number: int) -> str:
    return "0x" + keccak(number.to_bytes(8, "big")).hex()


def tx_hash(raw: bytes) -> str:
    return "0x" + keccak(raw).hex()


def message(seq: int, txs: Sequence[bytes], hash_: str | None = None) -> FeedMessage:
    return FeedMessage.for_block(seq, txs, block_hash=hash_ or block_hash(seq), timestamp=1_700_000_000 + seq)


def registered(txs: Sequence[bytes], intended_ns: int = 0) -> Correlator:
    correlator = Correlator()
    for row, raw in enumerate(txs):
        correlator.register(keccak(raw), row, intended_ns + row * MS)
    return correlator


# ------------------------------------------------------------------------------------------- latency


def test_latency_is_arrival_minus_intended_per_row_with_real_signed_transactions() -> None:
    account = Account.from_key(DEV_KEY)
    signed = [
        account.sign_transaction(
            {
                "chainId": 412346,
                "nonce": nonce,
                "gas": 21_000,
                "to": "0x1111222233334444555566667777888899990000",
                "value": 1,
                "maxFeePerGas": 10**9,
                "maxPriorityFeePerGas": 10**8,
            }
        )
        for nonce in range(3)
    ]
    correlator = Correlator()
    for row, tx in enumerate(signed):
        correlator.register(bytes(tx.hash), row, 1_000 * MS + row * MS)  # intended 1000, 1001, 1002 ms
    correlator.on_message(message(7, [bytes(signed[0].raw_transaction)]), 1_250 * MS)
    correlator.on_message(message(8, [bytes(tx.raw_transaction) for tx in signed[1:]]), 1_500_500_000)

    assert correlator.feed_latency_ns(0) == 250 * MS
    assert correlator.feed_latency_ns(1) == 499_500_000  # sub-millisecond resolution is kept
    assert correlator.feed_latency_ns(2) == 498_500_000
    assert correlator.feed_latencies() == [0.25, 0.4995, 0.4985]
    assert list(correlator.sequence)[:3] == [7, 8, 8] and list(correlator.position)[:3] == [0, 0, 1]
    assert correlator.block_hashes == {7: block_hash(7), 8: block_hash(8)}
    assert correlator.message_arrival_ns == {7: 1_250 * MS, 8: 1_500_500_000}
    summary = correlator.summary()
    assert summary["matched"] == 3 and summary["unmatched"] == 0 and summary["messages"] == 2
    assert summary["latency_p50"] == 0.4985 and summary["latency_max"] == 0.4995
    assert summary["latency_count"] == 3


def test_unregistered_and_unseen_transactions_are_counted_not_matched() -> None:
    ours, theirs = random_txs(4, seed=1), random_txs(3, seed=2)
    correlator = registered(ours)
    correlator.on_message(message(1, [theirs[0], ours[0], theirs[1]]), 10 * MS)
    correlator.on_message(message(2, []), 20 * MS)
    summary = correlator.summary()
    assert summary["matched"] == 1 and summary["unmatched"] == 3
    assert summary["foreign_transactions"] == 2 and summary["feed_transactions"] == 3
    assert correlator.feed_latency_ns(1) is None and correlator.feed_latency_ns(10**6) is None
    assert correlator.position[0] == 1


def test_summary_without_matches_is_nan_not_an_error() -> None:
    summary = Correlator().summary()
    assert math.isnan(summary["latency_p99"]) and summary["latency_count"] == 0


def test_hashes_register_as_bytes_or_hex_in_any_case() -> None:
    txs = random_txs(3)
    correlator = Correlator()
    correlator.register(keccak(txs[0]), 0, 0)
    correlator.register(tx_hash(txs[1]).upper().replace("0X", "0x"), 1, 0)
    correlator.register(tx_hash(txs[2])[2:], 2, 0)
    correlator.register(keccak(txs[0]), 5, 0)  # same transaction again: the first row wins
    correlator.on_message(message(1, txs), 5)
    assert correlator.matched == 3 and correlator.register_conflicts == 1
    assert correlator.row_of(keccak(txs[0])) == 0 and correlator.row_of(tx_hash(txs[2])) == 2


def test_rows_far_beyond_the_initial_columns_grow_them() -> None:
    correlator = Correlator()
    tx = random_txs(1)[0]
    correlator.register(keccak(tx), 50_000, 7)
    correlator.on_message(message(3, [tx]), 10)
    assert correlator.feed_latency_ns(50_000) == 3 and len(correlator.arrival_ns) > 50_000


# ------------------------------------------------------------------------------------ cross-checks


def chain_of(messages: Sequence[FeedMessage]) -> list[tuple[int, str, list[str]]]:
    """The chain's view when every message is exactly one block (seq = block number)."""
    return [(m.sequence_number, m.block_hash or "", list(m.tx_hashes)) for m in messages]


def test_a_faithful_feed_passes_every_check() -> None:
    txs = random_txs(30)
    correlator = registered(txs)
    feed = [message(10, txs[:10]), message(11, []), message(12, txs[10:])]
    for number, item in enumerate(feed):
        correlator.on_message(item, number * MS)
    findings = correlator.check_against_chain(chain_of(feed))
    assert findings.ok, findings.problems()
    assert findings.included == 30 and findings.in_feed == 30
    assert findings.messages_checked == 3 and findings.blocks_checked == 3
    assert findings.problems() == []


def test_a_block_split_across_messages_still_matches_the_chain() -> None:
    txs = random_txs(50, size=200)
    pieces = messages_for_block(5, txs, block_hash=block_hash(5), timestamp=1, max_l2_bytes=2_000)
    assert len(pieces) > 1
    correlator = registered(txs)
    for piece in pieces:
        correlator.on_message(piece, 1)
    chain = [(5, block_hash(5), [tx_hash(tx) for tx in txs])]
    findings = correlator.check_against_chain(chain)
    assert findings.ok, findings.problems()
    assert findings.messages_checked == len(pieces)


def test_a_transaction_in_the_feed_twice_is_named() -> None:
    txs = random_txs(5)
    correlator = registered(txs)
    feed = [message(1, txs[:3]), message(2, [txs[1], txs[3], txs[4]])]
    for item in feed:
        correlator.on_message(item, 1)
    chain = [
        (1, block_hash(1), [tx_hash(t) for t in txs[:3]]),
        (2, block_hash(2), [tx_hash(t) for t in txs[3:]]),
    ]
    findings = correlator.check_against_chain(chain)
    assert findings.duplicated_in_feed == 1 and correlator.appearances[1] == 2
    assert findings.first_duplicated_in_feed[0] == {
        "tx_hash": tx_hash(txs[1]),
        "row": 1,
        "appearances": 2,
        "sequence": 1,
    }
    assert correlator.summary()["duplicate_rows"] == 1
    assert tx_hash(txs[1]) in findings.problems()[0]
    assert not findings.ok


def test_feed_order_different_from_block_order_is_named() -> None:
    a, b, c = random_txs(3)
    correlator = registered([a, b, c])
    correlator.on_message(message(4, [b, a, c]), 1)
    findings = correlator.check_against_chain([(4, block_hash(4), [tx_hash(a), tx_hash(b), tx_hash(c)])])
    assert findings.order_violations == 1
    first = findings.first_order_violations[0]
    assert (first["earlier_tx"], first["later_tx"]) == (tx_hash(a), tx_hash(b))
    assert (first["later_sequence"], first["later_position"]) == (4, 0)
    assert (first["earlier_sequence"], first["earlier_position"]) == (4, 1)
    assert "feed-order" in findings.problems()[0] and tx_hash(b) in findings.problems()[0]


def test_order_across_messages_is_checked_too() -> None:
    a, b = random_txs(2)
    correlator = registered([a, b])
    correlator.on_message(message(1, [b]), 1)
    correlator.on_message(message(2, [a]), 2)
    chain = [(1, block_hash(1), [tx_hash(a)]), (2, block_hash(2), [tx_hash(b)])]
    findings = correlator.check_against_chain(chain)
    assert findings.order_violations == 1
    # Each message now holds the other block's transaction, so the hashes disagree as well.
    assert findings.hash_mismatches == 2


def test_a_block_hash_that_differs_from_the_chain_is_named() -> None:
    txs = random_txs(2)
    correlator = registered(txs)
    forged = "0x" + "ee" * 32
    correlator.on_message(message(20, txs, forged), 1)
    correlator.on_message(message(21, [], "0x" + "dd" * 32), 2)  # empty: placed by sequence number
    chain = [(20, block_hash(20), [tx_hash(t) for t in txs]), (21, block_hash(21), [])]
    findings = correlator.check_against_chain(chain)
    assert findings.hash_mismatches == 2 and findings.messages_checked == 2
    assert findings.first_hash_mismatches[0] == {
        "sequence": 20,
        "block": 20,
        "feed_hash": forged,
        "chain_hash": block_hash(20),
    }
    assert forged in findings.problems()[0] and block_hash(20) in findings.problems()[0]
    assert findings.blocks_missing_from_feed == 0  # a wrong hash is one finding, not two


def test_the_sequence_offset_places_messages_without_our_transactions() -> None:
    correlator = Correlator(sequence_offset=100)
    correlator.on_message(message(0, [], "0x" + "aa" * 32), 1)
    findings = correlator.check_against_chain([(100, block_hash(100), [])])
    assert findings.hash_mismatches == 1 and findings.first_hash_mismatches[0]["block"] == 100
    unplaced = Correlator().check_against_chain([(100, block_hash(100), [])])
    assert unplaced.messages_unverified == 0 and unplaced.messages_checked == 0


def split_feed(number: int, seq: int, txs: Sequence[bytes]) -> list[FeedMessage]:
    """Block ``number`` as the relay sends it under a 2,000-byte cap, from sequence number ``seq``."""
    return messages_for_block(seq, txs, block_hash=block_hash(number), timestamp=1, max_l2_bytes=2_000)


def test_after_a_split_block_sequence_numbers_stand_for_the_blocks_they_follow() -> None:
    """Issue #15: block 5 split into three messages (5, 6, 7); block 6's message is then sequence 8.
    An empty block's message with a wrong hash is still compared with its own block, not the one its
    bare number names; one naming a block after the chain's end is not compared with any."""
    txs = random_txs(24, size=200)
    pieces = split_feed(5, 5, txs)
    assert len(pieces) == 3
    correlator = registered(txs)
    for piece in pieces:
        correlator.on_message(piece, 1)
    correlator.on_message(message(8, [], "0x" + "ee" * 32), 2)  # block 6, empty, a wrong hash
    correlator.on_message(message(9, [], block_hash(7)), 3)
    correlator.on_message(message(10, [], block_hash(8)), 4)  # a block the check is not given
    assert correlator.continuations == [6, 7]
    assert [correlator.block_of(seq) for seq in range(4, 11)] == [4, 5, 5, 5, 6, 7, 8]
    chain = [(5, block_hash(5), [tx_hash(t) for t in txs]), (6, block_hash(6), []), (7, block_hash(7), [])]
    findings = correlator.check_against_chain(chain)
    assert findings.hash_mismatches == 1 and findings.first_hash_mismatches == [
        {"sequence": 8, "block": 6, "feed_hash": "0x" + "ee" * 32, "chain_hash": block_hash(6)}
    ]
    assert findings.messages_checked == 5 and findings.messages_unverified == 1
    assert findings.blocks_missing_from_feed == 0 and findings.missing_from_feed == 0


def test_a_number_is_not_held_against_a_block_another_message_names() -> None:
    """A feed numbered one lower from block 11 on: sequence 12 names block 13, which the check is not
    given. Its number stands for block 12, but the message for block 12 (sequence 11) names it: the
    numbering is off there, not a hash (that block 11 lost its message is blocks_missing_from_feed)."""
    correlator = Correlator()
    correlator.on_message(message(10, [], block_hash(10)), 1)
    correlator.on_message(message(11, [], block_hash(12)), 2)
    correlator.on_message(message(12, [], block_hash(13)), 3)
    findings = correlator.check_against_chain([(n, block_hash(n), []) for n in (10, 11, 12)])
    assert findings.hash_mismatches == 0 and findings.messages_unverified == 1
    assert findings.first_blocks_missing_from_feed == [11]


def test_a_continuation_is_seen_whichever_of_the_two_messages_comes_first() -> None:
    first, second = split_feed(3, 3, random_txs(20, size=200))[:2]
    correlator = Correlator()
    correlator.on_message(second, 1)
    correlator.on_message(message(5, [], block_hash(4)), 2)
    correlator.on_message(first, 3)  # late
    assert correlator.continuations == [4] and correlator.block_of(5) == 4


def test_calibration_measures_splits_made_before_the_first_message() -> None:
    """A relay that split blocks before the edge connected numbers block 40 as sequence 52: the edge
    measures it on a message whose hash it knows, and the check places the rest from there."""
    correlator = Correlator()
    correlator.on_message(message(51, [], block_hash(39)), 1)  # a block the edge never saw
    correlator.on_message(message(52, [], block_hash(40)), 2)
    correlator.on_message(message(53, [], "0x" + "ee" * 32), 3)  # block 41, a wrong hash
    uncalibrated = correlator.check_against_chain([(number, block_hash(number), []) for number in (40, 41)])
    assert uncalibrated.hash_mismatches == 0 and uncalibrated.messages_unverified == 2  # 51 → 51, 53 → 53
    correlator.calibrate(52, 40)
    assert correlator.sequence_offset == -12 and correlator.calibrated
    assert correlator.block_of(51) == 39 and correlator.block_of(53) == 41
    correlator.settle([(number, block_hash(number), []) for number in (40, 41)])
    findings = correlator.findings()
    assert findings.first_hash_mismatches == [
        {"sequence": 53, "block": 41, "feed_hash": "0x" + "ee" * 32, "chain_hash": block_hash(41)}
    ]
    assert findings.messages_unverified == 1  # sequence 51: block 39, before the blocks checked
    with pytest.raises(RuntimeError, match="before the first settle"):
        correlator.calibrate(52, 40)


def test_continuations_travel_with_the_columns() -> None:
    correlator = Correlator()
    for piece in split_feed(3, 3, random_txs(12, size=200)):  # two messages
        correlator.on_message(piece, 1)
    correlator.calibrate(3, 3)
    copy = Correlator.from_columns(pickle.loads(pickle.dumps(correlator.to_columns())))
    assert copy.continuations == correlator.continuations == [4]
    assert copy.calibrated and copy.block_of(5) == 4
    copy.on_message(message(6, [], block_hash(4)), 2)
    copy.on_message(message(7, [], block_hash(4)), 2)  # one more continuation, spotted in the copy
    assert copy.continuations == [4, 7]


def test_continuations_are_counted_in_bounded_memory() -> None:
    """Every block split in two for 2,000 blocks: the correlator keeps a window of them, not all."""
    correlator = Correlator()
    correlator.RETIRED_WINDOW = 16  # type: ignore[misc]
    for number in range(1, 2_001):
        for seq in (2 * number - 1, 2 * number):
            correlator.on_message(message(seq, [], block_hash(number)), seq)
        correlator.settle([(number, block_hash(number), [])])
        assert correlator.block_of(2 * number) == number == correlator.block_of(2 * number - 1)
    assert correlator.continuations_upto(4_000) == 2_000
    assert len(correlator.continuations) <= 3 * 16 and len(correlator._recent_hashes) <= 2 * 16 + 1
    findings = correlator.findings()
    assert findings.ok and findings.messages_checked == 4_000


def test_included_but_never_in_the_feed_and_feed_only_are_named() -> None:
    txs = random_txs(4)
    correlator = registered(txs)
    correlator.on_message(message(1, [txs[0], txs[3]]), 1)
    chain = [(1, block_hash(1), [tx_hash(txs[0]), tx_hash(txs[1])]), (2, block_hash(2), [tx_hash(txs[2])])]
    findings = correlator.check_against_chain(chain)
    assert findings.missing_from_feed == 2
    assert [item["tx_hash"] for item in findings.first_missing_from_feed] == [
        tx_hash(txs[1]),
        tx_hash(txs[2]),
    ]
    assert (
        findings.first_missing_from_feed[0]["block"] == 1
        and findings.first_missing_from_feed[0]["index"] == 1
    )
    assert findings.feed_only == 1 and findings.first_feed_only[0]["tx_hash"] == tx_hash(txs[3])
    assert findings.first_feed_only[0]["sequence"] == 1 and findings.first_feed_only[0]["position"] == 1
    lines = findings.problems()
    assert any("never appeared in the feed" in line and tx_hash(txs[1]) in line for line in lines)
    assert any("in none of the chain's blocks" in line for line in lines)


def test_a_message_holding_two_blocks_and_a_skipped_block_are_named() -> None:
    txs = random_txs(4)
    correlator = registered(txs)
    correlator.on_message(message(1, txs[:2]), 1)
    correlator.on_message(message(3, txs[2:]), 2)
    chain = [
        (1, block_hash(1), [tx_hash(txs[0])]),
        (2, block_hash(2), [tx_hash(txs[1])]),
        (3, block_hash(3), [tx_hash(t) for t in txs[2:]]),
        (4, block_hash(4), []),
    ]
    findings = correlator.check_against_chain(chain)
    assert findings.messages_spanning_blocks == 1
    assert findings.first_messages_spanning_blocks == [{"sequence": 1, "blocks": [1, 2]}]
    assert findings.blocks_missing_from_feed == 1 and findings.first_blocks_missing_from_feed == [2]
    assert findings.hash_mismatches == 0  # block 4 lies after the feed's range: not counted missing


def test_findings_are_plain_data() -> None:
    txs = random_txs(2)
    correlator = registered(txs)
    correlator.on_message(message(1, txs[::-1]), 1)
    findings = correlator.check_against_chain([(1, block_hash(1), [tx_hash(t) for t in txs])])
    data = findings.as_dict()
    assert data["order_violations"] == 1 and pickle.loads(pickle.dumps(findings)) == findings


def test_columns_round_trip_across_a_process_boundary() -> None:
    txs = random_txs(6)
    correlator = registered(txs, intended_ns=5)
    correlator.on_message(message(9, txs[:4]), 100)
    correlator.on_message(message(10, [txs[0]]), 200)
    columns = pickle.loads(pickle.dumps(correlator.to_columns()))
    copy = Correlator.from_columns(columns)
    assert copy.feed_latencies() == correlator.feed_latencies()
    assert copy.summary() == correlator.summary()
    chain = [(9, block_hash(9), [tx_hash(t) for t in txs[:4]])]
    assert copy.check_against_chain(chain) == correlator.check_against_chain(chain)
    assert copy.row_of(keccak(txs[5])) == 5


# --------------------------------------------------------------------------------- relay helpers


def test_a_block_becomes_one_message_with_nitros_l2msg() -> None:
    txs = random_txs(3)
    (only,) = messages_for_block(42, txs, block_hash=block_hash(42), timestamp=9)
    assert only.sequence_number == 42 and only.transactions == tuple(txs) and only.l2_msg[0] == 3
    (single,) = messages_for_block(43, txs[:1], block_hash=block_hash(43), timestamp=9)
    assert single.l2_msg == b"\x04" + txs[0]
    (empty,) = messages_for_block(44, [], block_hash=block_hash(44), timestamp=9)
    assert empty.l2_msg == b"\x03" and empty.transactions == ()
    decoded = decode_broadcast(encode_broadcast([only, single, empty])).messages
    assert decoded == (only, single, empty)


def test_a_block_too_big_for_one_l2msg_is_split_in_order_under_the_cap() -> None:
    txs = random_txs(2_600, size=115)  # a 250 ms anvil block at ~10k transfers/s
    pieces = messages_for_block(7, txs, block_hash=block_hash(7), timestamp=1)
    assert len(pieces) == 2
    assert [p.sequence_number for p in pieces] == [7, 8]
    assert all(len(p.l2_msg) <= MAX_L2_MESSAGE_SIZE for p in pieces)
    assert [tx for p in pieces for tx in p.transactions] == txs
    assert {p.block_hash for p in pieces} == {block_hash(7)}
    for piece in pieces:  # each piece decodes with the codec's own cap
        assert decode_broadcast(encode_broadcast([piece])).messages[0].transactions == piece.transactions


def test_a_transaction_no_message_can_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        messages_for_block(1, [b"\x02" * 1_000], block_hash=block_hash(1), timestamp=1, max_l2_bytes=500)


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("0", 0), ("17", 17), (" 17 ", 17), ("0x11", 17), ("0X1f", 31)],
)
def test_requested_sequence_header_accepts_decimal_and_hex(header: str | None, expected: int | None) -> None:
    assert parse_requested_sequence(header) == expected


@pytest.mark.parametrize("header", ["", "-1", "1.5", "0x", "twelve", "0xzz", str(2**64), "١٢"])
def test_requested_sequence_header_rejects_junk(header: str) -> None:
    with pytest.raises(ValueError, match="Arbitrum-Requested-Sequence-Number"):
        parse_requested_sequence(header)
