"""The batch poster's faults on a real L1: what each one does is really on the SequencerInbox.

An anvil L1 with the real Nitro Bridge and SequencerInbox, an anvil L2 whose blocks the test mines
(with the transactions it sends), and a :class:`BatchPoster` encoding real Nitro batches. Every
check reads the L1 back as the L1 monitor does: the posting transaction's calldata (the 6-argument
``addSequencerL2BatchFromOrigin``), its batch data decoded with ``decode_batch``, and the
``SequencerBatchDelivered`` logs, compared with the L2's own blocks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_gashammer.chain.rpc import call
from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.devnet.nitro_contracts import find_nitro_contracts
from pytest_gashammer.fault import (
    DuplicateBatch,
    LateBatches,
    ReorderBatchTransactions,
    SkipBlocks,
    poster_fault,
)
from pytest_gashammer.l1.batch import decode_batch
from pytest_gashammer.l1.contracts import L1Deployment
from pytest_gashammer.l1.poster import BatchPoster, BatchRecord
from tests.acceptance.l1_setup import (
    BATCH_DELIVERED_TOPIC0,
    DEPLOYER_KEY,
    L1_CHAIN_ID,
    L2_CHAIN_ID,
    POSTER_KEY,
    anvil,
    deploy,
    encode_l2_blocks,
    fund,
    logs,
    needs_nitro_contracts,
    posted_batch,
    raw_transactions,
    read,
)

pytestmark = needs_nitro_contracts

SENDER = FastSigner("0x" + "d4" * 32, L2_CHAIN_ID)
FEES = {"maxFeePerGas": 10**11, "maxPriorityFeePerGas": 1, "chainId": L2_CHAIN_ID, "type": 2}


class L2:
    """The L2 anvil, mining only when the test says, with one funded sender."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.nonce = 0
        call(url, "anvil_setBalance", [SENDER.address, hex(10**21)])

    def mine(self, *tx_counts: int) -> list[int]:
        """One block per count, holding that many of the sender's transfers; their numbers."""
        numbers = []
        for count in tx_counts:
            for _ in range(count):
                transfer = SENDER.sign(
                    {"to": "0x" + "11" * 20, "value": 1, "gas": 21_000, "nonce": self.nonce, **FEES}
                )
                call(self.url, "eth_sendRawTransaction", [transfer.raw_hex])
                self.nonce += 1
            call(self.url, "evm_mine", [])
            block = self.block(int(call(self.url, "eth_blockNumber", []), 16))
            assert len(block["transactions"]) == count, "each block holds the transfers sent for it"
            numbers.append(int(block["number"], 16))
        return numbers

    def block(self, number: int) -> dict[str, Any]:
        return call(self.url, "eth_getBlockByNumber", [hex(number), True])

    def transactions(self, number: int) -> tuple[bytes, ...]:
        return raw_transactions(self.block(number))


@pytest.fixture(scope="module")
def nitro_package() -> Path:
    return find_nitro_contracts()


@pytest.fixture
def l1(tmp_path: Path) -> Iterator[str]:
    with anvil(tmp_path, L1_CHAIN_ID) as url:
        fund(url, DEPLOYER_KEY, POSTER_KEY)
        yield url


@pytest.fixture
def l2(tmp_path: Path) -> Iterator[L2]:
    with anvil(tmp_path, L2_CHAIN_ID, "--no-mining") as url:
        yield L2(url)


@pytest.fixture
def deployment(l1: str, nitro_package: Path) -> L1Deployment:
    return deploy(l1, nitro_package)


def poster_for(l1: str, l2: L2, deployment: L1Deployment, **options: Any) -> BatchPoster:
    return BatchPoster(
        l1, deployment.sequencer_inbox, POSTER_KEY, l2_rpc_url=l2.url, encode=encode_l2_blocks, **options
    )


def on_the_l1(l1: str, record: BatchRecord | None) -> tuple[list[tuple[bytes, ...]], int, int, bytes]:
    """What the L1 holds of a posted batch: the transactions of each block its data carries, its
    message counts and its data, read from the posting transaction's calldata."""
    assert record is not None, "a batch was posted"
    sequence, data, prev_count, new_count = posted_batch(l1, record.tx_hash)
    assert sequence == record.sequence_number
    return [block.transactions for block in decode_batch(data).blocks], prev_count, new_count, data


def test_skipped_blocks_are_claimed_but_missing_from_the_batch_data(
    l1: str, l2: L2, deployment: L1Deployment
) -> None:
    poster = poster_for(l1, l2, deployment)
    l2.mine(1, 2)
    honest = on_the_l1(l1, poster.post_once())
    assert honest[:3] == ([l2.transactions(1), l2.transactions(2)], 1, 3)

    numbers = l2.mine(1, 2, 1, 1, 3, 1)  # blocks 3..8
    with poster_fault(poster, SkipBlocks(every=2)) as skip:
        carried, prev_count, new_count, _ = on_the_l1(l1, poster.post_once())
    assert numbers == [3, 4, 5, 6, 7, 8] and (prev_count, new_count) == (3, 9)  # six messages claimed
    assert skip.affected == [4, 6] and skip.effect == {"batches": 1, "blocks_skipped": 2}
    assert carried == [l2.transactions(number) for number in (3, 5, 7, 8)]  # four carried

    l2.mine(2, 1)  # switched off: honest again, from where the claims left off
    after = on_the_l1(l1, poster.post_once())
    assert after[:3] == ([l2.transactions(9), l2.transactions(10)], 9, 11)
    # No batch on the L1 holds the skipped blocks' transactions, though the inbox took every batch.
    everything = [tx for tx_hash in _posting_transactions(l1, deployment) for tx in _carried(l1, tx_hash)]
    assert not set(l2.transactions(4) + l2.transactions(6)) & set(everything)
    assert read(l1, deployment.bridge, "sequencerReportedSubMessageCount()", "uint256") == 11
    assert skip.affected == [4, 6] and not poster.failures()


def test_reordered_transactions_are_swapped_in_the_batch_data(
    l1: str, l2: L2, deployment: L1Deployment
) -> None:
    poster = poster_for(l1, l2, deployment)
    l2.mine(3, 1, 2)
    with poster_fault(poster, ReorderBatchTransactions(every=1)) as reorder:
        carried, prev_count, new_count, _ = on_the_l1(l1, poster.post_once())
    (a, b, c), (d,), (e, f) = (l2.transactions(number) for number in (1, 2, 3))
    assert (prev_count, new_count) == (1, 4)
    assert carried == [(b, a, c), (d,), (f, e)]  # the block of one transaction is not a candidate
    assert reorder.affected == [1, 3]
    block_one = [tx["hash"] for tx in l2.block(1)["transactions"]]
    assert reorder.events[0] == {"block": 1, "batch": 0, "swapped": block_one[:2]}
    l2.mine(2)
    reorder.disarm()  # switched off, still set: nothing new is chosen
    with poster_fault(poster, reorder):
        assert on_the_l1(l1, poster.post_once())[0] == [l2.transactions(4)]
    assert reorder.affected == [1, 3]


def test_a_batch_posted_twice_repeats_its_blocks_under_the_next_message_counts(
    l1: str, l2: L2, deployment: L1Deployment
) -> None:
    poster = poster_for(l1, l2, deployment)
    poster.fault = twice = DuplicateBatch(nth=1)
    l2.mine(1, 2, 1)
    original = poster.post_once()
    carried, prev_count, new_count, data = on_the_l1(l1, original)
    assert (prev_count, new_count) == (1, 4) and carried == [l2.transactions(n) for n in (1, 2, 3)]
    assert twice.affected == []  # chosen, not yet posted twice

    duplicate = poster.post_once()  # the next batch, with no new L2 block
    again, prev_again, new_again, data_again = on_the_l1(l1, duplicate)
    assert duplicate is not None and duplicate.duplicate_of == 0 and duplicate.sequence_number == 1
    assert data_again == data and again == carried  # the same blocks again...
    assert (prev_again, new_again) == (4, 7)  # ...as messages 4..6, where blocks 4..6 belong
    assert twice.affected == [1] and twice.events[0]["duplicate_of"] == 0

    poster.fault = None
    l2.mine(1, 1, 1, 2, 1)  # blocks 4..8: 4..6 had their messages taken by the duplicate
    following = on_the_l1(l1, poster.post_once())
    assert following[:3] == ([l2.transactions(7), l2.transactions(8)], 7, 9)
    # The inbox chained all three: contiguous sequence numbers, each beforeAcc the previous afterAcc.
    events = logs(l1, deployment.sequencer_inbox, BATCH_DELIVERED_TOPIC0, deployment.deployed_at_block)
    assert [int(event["topics"][1], 16) for event in events] == [0, 1, 2]
    assert all(
        later["topics"][2] == earlier["topics"][3] for earlier, later in zip(events, events[1:], strict=False)
    )
    everything = [tx for tx_hash in _posting_transactions(l1, deployment) for tx in _carried(l1, tx_hash)]
    assert not set(l2.transactions(4) + l2.transactions(5) + l2.transactions(6)) & set(everything)
    assert not poster.failures()


def test_a_late_poster_posts_each_batch_after_the_delay(l1: str, l2: L2, deployment: L1Deployment) -> None:
    """Blocks mined every 0.2 s, the poster's thread posting every 0.2 s; late for 3.5 s in the middle.
    Lag per batch: from the mining of its youngest block to the test first seeing it on the L1."""
    delay = 2.0
    poster = poster_for(l1, l2, deployment, interval=0.2)
    late = LateBatches(delay=delay)
    mined: dict[int, float] = {}
    seen: dict[int, float] = {}
    set_at = unset_at = None
    poster.start()
    try:
        started = time.monotonic()
        next_block = started
        while time.monotonic() - started < 12:
            now = time.monotonic()
            if now - started < 8 and now >= next_block:
                (number,) = l2.mine(0)
                mined[number] = time.monotonic()
                next_block += 0.2
            if set_at is None and now - started >= 1.5:
                poster.fault, set_at = late, time.monotonic()
            if unset_at is None and now - started >= 5.0:
                poster.fault, unset_at = None, time.monotonic()
            for event in logs(l1, deployment.sequencer_inbox, BATCH_DELIVERED_TOPIC0):
                seen.setdefault(int(event["topics"][1], 16), time.monotonic())
            if now - started > 8 and poster.batches() and poster.batches()[-1].last_block == max(mined):
                break
            time.sleep(0.02)
    finally:
        poster.stop()
    for event in logs(
        l1, deployment.sequencer_inbox, BATCH_DELIVERED_TOPIC0
    ):  # the last one, if posted since
        seen.setdefault(int(event["topics"][1], 16), time.monotonic())
    assert poster.error is None and not poster.failures(), poster.failures()
    assert set_at is not None and unset_at is not None

    lags = {}
    for record in poster.batches():
        _, prev_count, new_count, _ = on_the_l1(l1, record)
        youngest, oldest = mined[new_count - 1], mined[prev_count]
        lags[record.sequence_number] = (
            seen[record.sequence_number] - youngest,
            seen[record.sequence_number] - oldest,
        )
    assert len(late.affected) >= 2 and late.effect["batches_held"] == len(late.affected)
    for sequence in late.affected:  # even the block that came last was held the whole delay
        assert lags[sequence][0] >= delay - 0.05, (sequence, lags[sequence])
    before = [record.sequence_number for record in poster.batches() if seen[record.sequence_number] < set_at]
    assert before and all(lags[s][1] < delay for s in before), {s: lags[s] for s in before}
    last = poster.batches()[-1].sequence_number
    assert last not in late.affected and lags[last][1] < delay, lags[last]  # switched off: prompt again
    print(f"lag of the youngest block per batch: {[round(lags[s][0], 2) for s in sorted(lags)]}")


def _posting_transactions(l1: str, deployment: L1Deployment) -> list[str]:
    events = logs(l1, deployment.sequencer_inbox, BATCH_DELIVERED_TOPIC0, deployment.deployed_at_block)
    return [event["transactionHash"] for event in events]


def _carried(l1: str, tx_hash: str) -> list[bytes]:
    _, data, _, _ = posted_batch(l1, tx_hash)
    return [tx for block in decode_batch(data).blocks for tx in block.transactions]
