"""Feed faults on synthetic feed messages, and the feed checks catching what they break.

Messages are built with ``FeedMessage.for_block`` from seeded bytes, as the relay builds them, so the
faults and the correlator see exactly what a feed client would.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_hash.auto import keccak

from pytest_gashammer.fault import (
    DropAndRenumber,
    MessageFault,
    ReorderMessages,
    ReorderTransactions,
    SkipSequence,
    WrongBlockHash,
)
from pytest_gashammer.fault.feed_faults import with_transactions
from pytest_gashammer.feed import Correlator, FeedMessage, decode_broadcast, encode_broadcast
from pytest_gashammer.feed.client import FeedClient
from pytest_gashammer.feed.codec import l2_message_for
from pytest_gashammer.oracle.invariants import feed_matches_chain, feed_sequence
from tests.unit.edge_reports import Log, report_of

MS = 1_000_000


def block_hash(number: int) -> str:
    return "0x" + keccak(number.to_bytes(8, "big")).hex()


def txs_for(number: int, count: int) -> list[bytes]:
    rng = random.Random(number)
    return [b"\x02" + rng.randbytes(109) for _ in range(count)]


def message(number: int, count: int) -> FeedMessage:
    return FeedMessage.for_block(
        number, txs_for(number, count), block_hash=block_hash(number), timestamp=1_000
    )


def chain(counts: dict[int, int]) -> list[FeedMessage]:
    return [message(number, count) for number, count in counts.items()]


def numbers(messages: list[FeedMessage]) -> list[int]:
    return [m.sequence_number for m in messages]


def through(fault: Any, messages: list[FeedMessage], stream: int = 1) -> list[FeedMessage]:
    """Each message in its own frame, as a live feed sends them."""
    out: list[FeedMessage] = []
    for m in messages:
        out.extend(fault.on_messages(stream, [m]))
    return out


def correlate(delivered: list[FeedMessage], blocks: list[FeedMessage]) -> dict[str, Any]:
    """What the edge's correlator concludes when ``delivered`` arrive and the chain holds ``blocks``."""
    correlator = Correlator()
    row = 0
    for m in blocks:
        for tx_hash in m.tx_hashes:
            correlator.register(tx_hash, row, 0)
            row += 1
    for arrival, m in enumerate(delivered):
        correlator.on_message(m, arrival * MS)
    chain_blocks = [(m.sequence_number, block_hash(m.sequence_number), list(m.tx_hashes)) for m in blocks]
    return correlator.check_against_chain(chain_blocks).as_dict()


# ------------------------------------------------------------------------------------- choices


def test_a_message_fault_needs_exactly_one_choice() -> None:
    with pytest.raises(ValueError, match=r"^SkipSequence: give exactly one of nth=, every=, or sequence="):
        SkipSequence()
    with pytest.raises(ValueError, match=r"^SkipSequence: min_txs=-1 must be a non-negative integer"):
        SkipSequence(nth=1, min_txs=-1)
    with pytest.raises(ValueError, match=r"^ReorderTransactions: position=-1 must be a non-negative index"):
        ReorderTransactions(nth=1, position=-1)


def test_only_messages_with_enough_transactions_are_candidates() -> None:
    skip = SkipSequence(nth=2, min_txs=1)
    delivered = through(skip, chain({10: 0, 11: 3, 12: 0, 13: 2, 14: 1}))
    assert numbers(delivered) == [10, 11, 12, 14]
    assert skip.affected == [13]


def test_a_chosen_message_stays_chosen_on_every_connection() -> None:
    skip = SkipSequence(every=2)
    messages = chain({10: 1, 11: 1, 12: 1, 13: 1})
    assert numbers(through(skip, messages, stream=1)) == [10, 12]
    assert numbers(through(skip, messages, stream=2)) == [10, 12], "a reconnecting client gets the same lie"
    assert skip.affected == [11, 13]


def test_listed_sequence_numbers_and_disarming() -> None:
    skip = SkipSequence(sequence=[11, 13], armed=False)
    assert numbers(through(skip, chain({10: 0, 11: 0}))) == [10, 11]
    skip.arm()
    assert numbers(through(skip, chain({12: 0, 13: 0, 14: 0}))) == [12, 14]
    single = SkipSequence(sequence=12)
    assert numbers(through(single, chain({11: 0, 12: 0}))) == [11]


# ---------------------------------------------------------------------------------------- skip


def test_a_skipped_message_takes_its_transactions_out_of_the_feed() -> None:
    blocks = chain({10: 2, 11: 3, 12: 2})
    skip = SkipSequence(sequence=11)
    delivered = through(skip, blocks)
    (event,) = skip.events
    assert event == {"sequence": 11, "block_hash": block_hash(11), "tx_hashes": list(blocks[1].tx_hashes)}
    findings = correlate(delivered, blocks)
    assert sorted(item["tx_hash"] for item in findings["first_missing_from_feed"]) == sorted(
        event["tx_hashes"]
    )
    assert findings["first_blocks_missing_from_feed"] == [11]
    assert findings["order_violations"] == findings["hash_mismatches"] == 0


def test_skipping_an_empty_message_breaks_the_sequence_alone() -> None:
    blocks = chain({10: 2, 11: 0, 12: 2})
    skip = SkipSequence(sequence=11)
    findings = correlate(through(skip, blocks), blocks)
    assert findings["missing_from_feed"] == findings["order_violations"] == findings["hash_mismatches"] == 0
    assert findings["first_blocks_missing_from_feed"] == [11], "the block no message names is still found"


# ------------------------------------------------------------------------------------- reorder


def test_a_chosen_message_is_delivered_after_the_next_one() -> None:
    blocks = chain({10: 1, 11: 1, 12: 1, 13: 1})
    swap = ReorderMessages(sequence=11)
    delivered = through(swap, blocks)
    assert numbers(delivered) == [10, 12, 11, 13]
    assert swap.events == [{"sequence": 11, "after": 12}]
    findings = correlate(delivered, blocks)
    assert findings["order_violations"] == findings["missing_from_feed"] == findings["hash_mismatches"] == 0


def test_a_swap_inside_one_frame_and_a_hold_across_frames() -> None:
    swap = ReorderMessages(every=3)
    assert numbers(swap.on_messages(1, chain({10: 0, 11: 0, 12: 0, 13: 0}))) == [10, 11, 13, 12]
    # 13 released 12, so it is not a candidate itself: 14, 15 and 16 are the next three.
    assert numbers(swap.on_messages(1, chain({14: 0, 15: 0, 16: 0}))) == [14, 15]  # 16 is held ...
    assert numbers(swap.on_messages(1, chain({17: 0}))) == [17, 16]  # ... until 17 is out
    assert swap.affected == [12, 16]


def test_a_message_held_when_its_connection_ends_is_forgotten() -> None:
    swap = ReorderMessages(sequence=11)
    assert numbers(through(swap, chain({10: 0, 11: 0}), stream=1)) == [10]
    swap.on_stream_closed(1)
    assert numbers(through(swap, chain({12: 0}), stream=1)) == [12]
    assert swap.affected == []
    assert numbers(through(swap, chain({11: 0, 12: 0}), stream=2)) == [12, 11]


def test_two_swapped_transactions_are_one_order_violation() -> None:
    blocks = chain({10: 3, 11: 4, 12: 3})
    swap = ReorderTransactions(sequence=11, position=1)
    delivered = through(swap, blocks)
    (event,) = swap.events
    original = blocks[1]
    assert event == {"sequence": 11, "swapped": [original.tx_hashes[1], original.tx_hashes[2]], "position": 1}
    changed = delivered[1]
    assert changed.transactions == (
        original.transactions[0],
        original.transactions[2],
        original.transactions[1],
        original.transactions[3],
    )
    assert changed.l2_msg == l2_message_for(changed.transactions)
    assert changed.block_hash == original.block_hash and changed.sequence_number == 11
    findings = correlate(delivered, blocks)
    assert findings["order_violations"] == 1
    (violation,) = findings["first_order_violations"]
    assert (violation["earlier_tx"], violation["later_tx"]) == tuple(event["swapped"])
    assert findings["missing_from_feed"] == findings["hash_mismatches"] == 0


def test_a_message_with_too_few_transactions_cannot_be_reordered() -> None:
    swap = ReorderTransactions(nth=1)
    assert swap.min_txs == 2
    delivered = through(swap, chain({10: 1, 11: 2}))
    assert delivered[0].transactions == tuple(txs_for(10, 1))
    assert swap.affected == [11]


def test_a_rewritten_message_survives_the_wire() -> None:
    original = message(11, 3)
    swapped = with_transactions(original, list(reversed(original.transactions)))
    (decoded,) = decode_broadcast(encode_broadcast([swapped])).messages
    assert decoded == swapped
    assert decoded.tx_hashes == tuple(reversed(original.tx_hashes))


# ---------------------------------------------------------------------------------- renumbering


def test_an_empty_block_left_out_and_the_rest_renumbered_is_a_block_without_a_message() -> None:
    """Issue #15: no gap, nothing missing, every hash right; only the feed-versus-chain mapping sees
    that block 12 has no message (and the numbers no longer stand for their blocks)."""
    blocks = chain({10: 2, 11: 1, 12: 0, 13: 2, 14: 0, 15: 1})
    drop = DropAndRenumber(nth=2)  # candidates: the empty blocks 12 and 14
    delivered = through(drop, blocks)
    assert drop.affected == [14] and drop.events == [{"sequence": 14, "block_hash": block_hash(14)}]
    assert numbers(delivered) == [10, 11, 12, 13, 14]
    assert (
        delivered[-1].block_hash == block_hash(15) and delivered[-1].transactions == blocks[-1].transactions
    )
    first = DropAndRenumber(nth=1)
    delivered = through(first, blocks)
    assert first.affected == [12] and numbers(delivered) == [10, 11, 12, 13, 14]
    assert numbers(through(first, blocks, stream=2)) == numbers(delivered), "the same lie on a reconnect"

    findings = correlate(delivered, blocks)
    assert findings["first_blocks_missing_from_feed"] == [12]
    assert findings["missing_from_feed"] == findings["hash_mismatches"] == findings["order_violations"] == 0
    client = FeedClient("ws://127.0.0.1:1", expected_chain_id=1, start_sequence=10)
    for arrival, m in enumerate(delivered):
        client._admit(m.sequence_number, arrival)
    stats = client.stats.as_dict()
    report = report_of(Log(), edge_id="e0", feed_stats=stats, feed_findings=findings)
    assert feed_sequence([report], 5.0).status == "passed"
    verdict = feed_matches_chain([report], 5.0)
    assert verdict.status == "failed"
    assert verdict.evidence["problems"] == [
        "e0: 1 chain block(s) without a feed message, no sequence number missing: the feed left blocks "
        "out and numbered the later messages on",
        "e0: block 12 has no feed message",
    ]


def test_a_skipped_message_is_a_gap_not_a_renumbering() -> None:
    blocks = chain({10: 2, 11: 0, 12: 2})
    delivered = through(SkipSequence(sequence=11), blocks)
    client = FeedClient("ws://127.0.0.1:1", expected_chain_id=1, start_sequence=10)
    for arrival, m in enumerate(delivered):
        client._admit(m.sequence_number, arrival)
    findings = correlate(delivered, blocks)
    report = report_of(Log(), edge_id="e0", feed_stats=client.stats.as_dict(), feed_findings=findings)
    assert findings["blocks_missing_from_feed"] == 1
    assert feed_matches_chain([report], 5.0).status == "passed", "the gap already says it"
    assert feed_sequence([report], 5.0).status == "failed"


def test_only_empty_messages_are_left_out() -> None:
    drop = DropAndRenumber(every=1)
    assert numbers(through(drop, chain({10: 1, 11: 0, 12: 3, 13: 0, 14: 1}))) == [10, 11, 12]
    assert drop.affected == [11, 13]


# ---------------------------------------------------------------------------------- block hash


def test_a_wrong_block_hash_is_one_mismatch_naming_both_hashes() -> None:
    blocks = chain({10: 2, 11: 2, 12: 2})
    wrong = WrongBlockHash(nth=2)
    delivered = through(wrong, blocks)
    (event,) = wrong.events
    assert event["sequence"] == 11 and event["block_hash"] == block_hash(11)
    assert delivered[1].block_hash == event["reported"] != block_hash(11)
    assert delivered[1].transactions == blocks[1].transactions
    findings = correlate(delivered, blocks)
    assert findings["first_hash_mismatches"] == [
        {"sequence": 11, "block": 11, "feed_hash": event["reported"], "chain_hash": block_hash(11)}
    ]
    assert findings["blocks_missing_from_feed"] == findings["missing_from_feed"] == 0
    again = WrongBlockHash(nth=2)
    assert through(again, blocks)[1].block_hash == event["reported"], "the wrong hash is deterministic"


def test_feed_faults_describe_themselves() -> None:
    assert repr(SkipSequence(nth=2)) == "<SkipSequence(nth=2) armed, 0 affected>"
    assert isinstance(WrongBlockHash(nth=1), MessageFault)
    assert ReorderTransactions.caught_by == ("feed_order",)
