"""The batch poster's faults on synthetic blocks: what each one does to a batch's data, what it records
once the batch is on the L1, and that it chooses the same way when a batch is posted again.

The poster itself, on a real L1, is tests/acceptance/test_poster_faults.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pytest_gashammer import fault, vocabulary
from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.fault.poster_faults import (
    DuplicateBatch,
    LateBatches,
    PosterFault,
    ReorderBatchTransactions,
    SkipBlocks,
    poster_fault,
)
from pytest_gashammer.l1.batch import BatchBlock, decode_batch, encode_batch
from pytest_gashammer.l1.poster import BatchRecord

CHAIN_ID = 412346
SIGNER = FastSigner("0x" + "5a" * 32, CHAIN_ID)
TIMESTAMP = 1_700_000_000


def signed(nonce: int) -> bytes:
    fees = {"maxFeePerGas": 10**9, "maxPriorityFeePerGas": 1, "chainId": CHAIN_ID, "type": 2}
    return SIGNER.sign({"to": "0x" + "11" * 20, "value": 1, "gas": 21_000, "nonce": nonce, **fees}).raw


def chain(first: int, tx_counts: list[int]) -> tuple[list[dict[str, Any]], list[BatchBlock]]:
    """L2 blocks ``first..`` as the poster gets them (numbers and hashes; the transactions are what
    the encoder reads) and the batch blocks an honest encoder makes of them."""
    blocks, carried, nonce = [], [], first * 100
    for offset, count in enumerate(tx_counts):
        number = first + offset
        transactions = tuple(signed(nonce + index) for index in range(count))
        nonce += count
        blocks.append({"number": hex(number), "hash": "0x" + keccak256(number.to_bytes(8, "big")).hex()})
        carried.append(BatchBlock(TIMESTAMP + number, 17, transactions))
    return blocks, carried


def record(sequence: int, first: int, last: int, **changes: Any) -> BatchRecord:
    """The record of batch ``sequence`` of blocks ``first..last`` as the poster makes it on the L1."""
    fields: dict[str, Any] = {
        "sequence_number": sequence,
        "first_block": first,
        "last_block": last,
        "prev_message_count": first,
        "new_message_count": last + 1,
        "data_bytes": 100,
        "l1_gas": 150_000,
        "l1_block": 10 + sequence,
        "tx_hash": "0x" + "ab" * 32,
        "before_acc": "0x" + "00" * 32,
        "after_acc": "0x" + "01" * 32,
        "last_block_hash": "0x" + "02" * 32,
        "posted_at": 1.0,
    }
    fields.update(changes)
    return BatchRecord(**fields)


def post(poster_fault_: PosterFault, sequence: int, first: int, tx_counts: list[int]) -> tuple[bytes, bytes]:
    """What a poster does with one batch: the honest data, then the data the fault made of it (the
    honest data when it changed nothing), then ``posted``."""
    blocks, carried = chain(first, tx_counts)
    honest = encode_batch(carried)
    changed = poster_fault_.batch_data(sequence, blocks, honest)
    poster_fault_.posted(record(sequence, first, first + len(tx_counts) - 1))
    return honest, honest if changed is None else changed


# -- skipped blocks ----------------------------------------------------------------------------------


def test_skipped_blocks_leave_the_data_and_are_recorded_once_posted() -> None:
    skip = SkipBlocks(every=2)
    blocks, carried = chain(10, [1, 2, 1, 1, 3])
    honest = encode_batch(carried)
    data = skip.batch_data(0, blocks, honest)
    assert data is not None and skip.affected == []  # nothing is on the L1 yet
    # Candidates are every block but the batch's last: 10..13; every second one is left out.
    assert decode_batch(data).blocks == (carried[0], carried[2], carried[4])
    assert decode_batch(data).message_count == 3  # while the batch claims five messages
    skip.posted(record(0, 10, 14))
    assert skip.affected == [11, 13]
    assert skip.events == [{"block": 11, "batch": 0}, {"block": 13, "batch": 0}]
    assert skip.effect == {"batches": 1, "blocks_skipped": 2}


def test_a_batch_posted_again_after_a_failure_is_changed_the_same_way_and_recorded_once() -> None:
    skip = SkipBlocks(every=2)
    blocks, carried = chain(10, [1, 1, 1, 1])
    first_try = skip.batch_data(3, blocks, encode_batch(carried))  # then the L1 refused it
    more, more_carried = chain(10, [1, 1, 1, 1, 1, 1])  # the retry takes the blocks made since too
    second_try = skip.batch_data(3, more, encode_batch(more_carried))
    assert first_try is not None and second_try is not None
    assert decode_batch(first_try).blocks == (carried[0], carried[2], carried[3])
    assert decode_batch(second_try).blocks == (carried[0], carried[2], more_carried[4], more_carried[5])
    skip.posted(record(3, 10, 15))
    assert skip.affected == [11, 13]


def test_skip_needs_data_that_holds_the_blocks_and_a_switched_on_fault() -> None:
    skip = SkipBlocks(every=1)
    blocks, carried = chain(1, [1, 1, 1])
    # An encoder that writes no blocks (an empty brotli batch): nothing to leave out, nothing recorded.
    assert skip.batch_data(0, blocks, b"\x00\x3b") is None
    skip.posted(record(0, 1, 3))
    assert skip.affected == []
    off = SkipBlocks(every=1, armed=False)
    assert post(off, 0, 1, [1, 1, 1])[1] == encode_batch(carried)
    assert off.affected == []
    off.arm()
    post(off, 1, 4, [1, 1, 1])
    assert off.affected == [4, 5]  # the last block of a batch stays: every batch carries a block
    off.disarm()
    post(off, 2, 7, [1, 1, 1])
    assert off.affected == [4, 5]


def test_listed_blocks_and_a_count_cap_the_skips() -> None:
    listed = SkipBlocks(numbers=[2, 9])
    post(listed, 0, 1, [1, 1, 1])
    post(listed, 1, 4, [1] * 7)
    assert listed.affected == [2, 9]
    capped = SkipBlocks(every=1, count=2)
    post(capped, 0, 1, [1] * 6)
    assert capped.affected == [1, 2]


# -- reordered transactions --------------------------------------------------------------------------


def test_the_chosen_blocks_carry_their_first_two_transactions_swapped() -> None:
    reorder = ReorderBatchTransactions(every=1)
    honest, data = post(reorder, 4, 20, [3, 1, 2, 0])
    _, carried = chain(20, [3, 1, 2, 0])
    decoded = decode_batch(data)
    assert decoded.message_count == 4  # the same blocks
    a, b, c = carried[0].transactions
    assert decoded.blocks[0].transactions == (b, a, c)
    assert decoded.blocks[1] == carried[1]  # one transaction: not a candidate
    assert decoded.blocks[2].transactions == carried[2].transactions[::-1]
    assert decoded.blocks[3] == carried[3]
    assert reorder.affected == [20, 22]
    hash_of = lambda raw: "0x" + keccak256(raw).hex()  # noqa: E731
    assert reorder.events[0] == {"block": 20, "swapped": [hash_of(a), hash_of(b)], "batch": 4}
    assert reorder.effect == {"batches": 1, "blocks_reordered": 2}
    assert decode_batch(honest).blocks == tuple(carried)


def test_only_blocks_with_two_transactions_are_counted_as_candidates() -> None:
    reorder = ReorderBatchTransactions(nth=2)
    post(reorder, 0, 1, [2, 1, 1, 2, 2])
    assert reorder.affected == [4]
    untouched = ReorderBatchTransactions(every=1)
    honest, data = post(untouched, 0, 1, [1, 0, 1])
    assert data == honest and untouched.affected == []


# -- a batch posted twice ----------------------------------------------------------------------------


def test_the_chosen_batch_is_posted_again_and_the_duplicate_recorded() -> None:
    twice = DuplicateBatch(nth=2)
    assert not twice.post_again(record(0, 1, 3))
    assert twice.post_again(record(1, 4, 6))
    assert not twice.post_again(record(1, 4, 6))  # asked again: offered once
    assert twice.affected == []  # nothing posted twice yet
    twice.posted(record(1, 4, 6))
    duplicate = record(2, 4, 6, prev_message_count=7, new_message_count=10, duplicate_of=1)
    twice.posted(duplicate)
    assert twice.affected == [2]
    assert twice.events == [{"batch": 2, "duplicate_of": 1, "blocks": [4, 6], "messages": [7, 10]}]
    assert twice.effect == {"batches_duplicated": 1}
    assert not twice.post_again(record(3, 10, 12))  # nth=2 takes one


def test_duplicates_follow_every_and_listed_sequence_numbers_while_armed() -> None:
    every = DuplicateBatch(every=2, armed=False)
    assert not every.post_again(record(0, 1, 1))
    every.arm()
    assert [every.post_again(record(n, n + 1, n + 1)) for n in range(1, 6)] == [
        False,
        True,
        False,
        True,
        False,
    ]
    listed = DuplicateBatch(sequence=3)
    assert [listed.post_again(record(n, n + 1, n + 1)) for n in range(5)] == [
        False,
        False,
        False,
        True,
        False,
    ]


# -- late batches ------------------------------------------------------------------------------------


def test_late_batches_are_held_while_armed_up_to_the_count() -> None:
    late = LateBatches(delay=2.5, count=2)
    assert late.hold_seconds(0, []) == 2.5
    assert late.hold_seconds(0, []) == 2.5  # the same batch, retried after a failure: held again
    late.posted(record(0, 1, 4))
    assert late.hold_seconds(1, []) == 2.5
    late.posted(record(1, 5, 6))
    assert late.hold_seconds(2, []) == 0.0  # the count is spent
    late.posted(record(2, 7, 7))
    assert late.affected == [0, 1]
    assert late.events[0] == {"batch": 0, "blocks": [1, 4], "held_s": 2.5}
    assert late.effect == {"batches_held": 2, "held_s": 5.0}
    late.disarm()
    assert LateBatches(delay=1, armed=False).hold_seconds(0, []) == 0.0


@pytest.mark.parametrize("delay", [0, -1, float("inf"), float("nan"), "5s", True])
def test_a_late_poster_needs_a_positive_delay(delay: Any) -> None:
    with pytest.raises(ValueError, match=r"LateBatches: delay=.* must be a positive number of seconds"):
        LateBatches(delay=delay)


def test_a_choice_must_be_given_exactly_once() -> None:
    with pytest.raises(ValueError, match=r"SkipBlocks: give exactly one of nth=, every=, or numbers="):
        SkipBlocks()
    with pytest.raises(
        ValueError, match=r"DuplicateBatch: give exactly one .* or sequence= \(got nth, every\)"
    ):
        DuplicateBatch(nth=1, every=2)


# -- setting a fault on a poster ---------------------------------------------------------------------


@dataclasses.dataclass
class FakePoster:
    fault: Any = None


def test_a_fault_is_set_for_a_block_and_the_previous_one_comes_back() -> None:
    poster, late = FakePoster(), LateBatches(delay=1)
    with poster_fault(poster, late) as active:  # type: ignore[arg-type]
        assert poster.fault is active is late
    assert poster.fault is None
    earlier = SkipBlocks(every=3)
    poster.fault = earlier
    with pytest.raises(RuntimeError), poster_fault(poster, late):  # type: ignore[arg-type]
        raise RuntimeError("the test failed inside")
    assert poster.fault is earlier


def test_the_poster_faults_name_l1_invariants_and_the_batch_lag_objective() -> None:
    assert SkipBlocks.caught_by == (vocabulary.BLOCKS_POSTED, vocabulary.BATCH_CONTENTS)
    assert ReorderBatchTransactions.caught_by == (vocabulary.BATCH_CONTENTS,)
    assert DuplicateBatch.caught_by == (vocabulary.BATCH_CONTENTS,)
    assert LateBatches.caught_by == ("batch_lag_p99",)
    for name in ("SkipBlocks", "ReorderBatchTransactions", "DuplicateBatch", "LateBatches", "poster_fault"):
        assert name in fault.__all__
    assert repr(SkipBlocks(every=3)) == "<SkipBlocks armed, batches=0, blocks_skipped=0>"
