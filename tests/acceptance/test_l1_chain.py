"""The devnet's L1: the real Nitro Bridge and SequencerInbox (and our rollup stand-in) on an anvil,
batches of a second anvil's L2 blocks posted with the 6-argument call, assertions made and confirmed.

Everything is read back the way the L1 monitor will read it: ``eth_getLogs`` for
``SequencerBatchDelivered`` and the assertion events, ``eth_call`` for ``batchCount()`` and
``latestConfirmed()``, the posting transaction's calldata.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.rpc import call
from pytest_gashammer.devnet.nitro_contracts import find_nitro_contracts
from pytest_gashammer.l1.abi import call_data, decode, encode, event_topic
from pytest_gashammer.l1.contracts import (
    ADD_BATCH,
    ARTIFACT_PATHS,
    ASSERTION_CONFIRMED,
    ASSERTION_CREATED,
    L1Deployment,
    stand_in_rollup_artifact,
)
from pytest_gashammer.l1.poster import BatchPoster
from pytest_gashammer.l1.sender import L1Error
from tests.acceptance.l1_setup import (
    BATCH_DELIVERED_TOPIC0,
    DEPLOYER_KEY,
    EMPTY_BROTLI_BATCH,
    L1_CHAIN_ID,
    L2_CHAIN_ID,
    POSTER_KEY,
    STRANGER_KEY,
    ZERO_HASH,
    address_of,
    anvil,
    deploy,
    fund,
    logs,
    needs_nitro_contracts,
    read,
)

pytestmark = needs_nitro_contracts


@pytest.fixture(scope="module")
def nitro_package() -> Path:
    return find_nitro_contracts()


@pytest.fixture
def l1(tmp_path: Path) -> Iterator[str]:
    with anvil(tmp_path, L1_CHAIN_ID) as url:
        fund(url, DEPLOYER_KEY, POSTER_KEY, STRANGER_KEY)
        yield url


@pytest.fixture
def l2(tmp_path: Path) -> Iterator[str]:
    with anvil(tmp_path, L2_CHAIN_ID, "--block-time", "0.1") as url:
        yield url


def state_hash(block_hash: str, send_root: str, position: int) -> bytes:
    """keccak256(abi.encode(AssertionState)) of a FINISHED state, as RollupLib hashes it."""
    global_state = ([bytes.fromhex(block_hash[2:]), bytes.fromhex(send_root[2:])], [position, 0])
    state = encode(["((bytes32[2],uint64[2]),uint8,bytes32)"], [(global_state, 1, bytes(32))])
    return keccak256(state)


def test_ten_batches_chain_on_the_real_inbox_and_assertions_confirm_in_order(
    l1: str, l2: str, nitro_package: Path
) -> None:
    deployment = deploy(l1, nitro_package, confirm_period_blocks=2)
    print(f"L1 deployment: {deployment.deploy_seconds:.3f} s, {deployment.deploy_gas} gas")
    assert deployment.deploy_seconds < 5, "the L1 must stay cheap enough to be on by default"
    seen_blocks: list[int] = []

    def encoder(blocks: list[dict[str, Any]]) -> bytes:
        seen_blocks.extend(int(block["number"], 16) for block in blocks)
        assert all(isinstance(block["transactions"], list) for block in blocks)
        return EMPTY_BROTLI_BATCH

    poster = BatchPoster(
        l1,
        deployment.sequencer_inbox,
        POSTER_KEY,
        l2_rpc_url=l2,
        encode=encoder,
        rollup=deployment.rollup,
        interval=0.15,
        assert_every=3,
        confirm_delay=0.2,
    )
    confirmed_seen = [read(l1, deployment.rollup, "latestConfirmed()", "bytes32")]
    poster.start()
    try:
        deadline = time.monotonic() + 15
        while (
            (len(poster.batches()) < 10 or len(confirmed_seen) < 2)
            and time.monotonic() < deadline
            and poster.running
        ):
            latest = read(l1, deployment.rollup, "latestConfirmed()", "bytes32")
            if latest != confirmed_seen[-1]:
                confirmed_seen.append(latest)
            time.sleep(0.05)
    finally:
        poster.stop()
    assert poster.error is None and not poster.failures(), poster.failures()
    batches = poster.batches()
    assert len(batches) >= 10

    # batchCount() and the SequencerBatchDelivered events: contiguous, accumulators chained.
    count = read(l1, deployment.sequencer_inbox, "batchCount()", "uint256")
    assert count == len(batches)
    events = logs(l1, deployment.sequencer_inbox, BATCH_DELIVERED_TOPIC0, deployment.deployed_at_block)
    assert [int(event["topics"][1], 16) for event in events] == list(range(count))
    assert events[0]["topics"][2] == ZERO_HASH
    for earlier, later in zip(events, events[1:], strict=False):
        assert later["topics"][2] == earlier["topics"][3], "beforeAcc must be the previous afterAcc"
    for index, (event, record) in enumerate(zip(events, batches, strict=True)):
        assert (event["topics"][2], event["topics"][3]) == (record.before_acc, record.after_acc)
        accumulator = read(l1, deployment.bridge, "sequencerInboxAccs(uint256)", "bytes32", index)
        assert "0x" + accumulator.hex() == record.after_acc
        delayed_acc, delayed_read, bounds, location = decode(
            ["bytes32", "uint256", "(uint64,uint64,uint64,uint64)", "uint8"], bytes.fromhex(event["data"][2:])
        )
        assert (delayed_read, location) == (0, 0), "no delayed messages read; data in the calldata (TxInput)"
        assert bounds[0] <= bounds[1] and bounds[2] <= int(event["blockNumber"], 16) <= bounds[3]
        assert record.l1_block == int(event["blockNumber"], 16) and record.tx_hash == event["transactionHash"]
        assert record.l1_gas > 0 and record.data_bytes == len(EMPTY_BROTLI_BATCH)

    # Every L2 block from 1 on, once, in order; the message counts follow the blocks.
    assert batches[0].first_block == 1 and seen_blocks == list(range(1, batches[-1].last_block + 1))
    for earlier, later in zip(batches, batches[1:], strict=False):
        assert later.first_block == earlier.last_block + 1 == later.prev_message_count
    assert (
        read(l1, deployment.bridge, "sequencerReportedSubMessageCount()", "uint256")
        == batches[-1].new_message_count
    )
    tx = call(l1, "eth_getTransactionByHash", [batches[3].tx_hash])
    batch = batches[3]
    expected = call_data(
        ADD_BATCH, 3, EMPTY_BROTLI_BATCH, 0, "0x" + "00" * 20, batch.first_block, batch.last_block + 1
    )
    assert tx["input"] == "0x" + expected.hex() and tx["from"] == address_of(POSTER_KEY)

    # Assertions: each extends the previous, hashed as RollupLib does, naming the L2 block of its batch.
    deadline = time.monotonic() + 10
    while any(record.confirmed_tx is None for record in poster.assertions()) and time.monotonic() < deadline:
        call(l1, "evm_mine", [])  # confirmPeriodBlocks pass on an L1 that mines only for transactions
        poster.settle_assertions()
        time.sleep(0.1)
    assertions = poster.assertions()
    assert len(assertions) >= 3
    created = logs(l1, deployment.rollup, "0x" + event_topic(ASSERTION_CREATED).hex())
    genesis = read(l1, deployment.rollup, "genesisAssertionHash()", "bytes32")
    assert created[0]["topics"][1] == "0x" + genesis.hex() == "0x" + confirmed_seen[0].hex()
    assert [event["topics"][1] for event in created[1:]] == [record.assertion_hash for record in assertions]
    parent = "0x" + genesis.hex()
    previous_position = 0
    for event, record in zip(created[1:], assertions, strict=True):
        assert event["topics"][2] == record.parent_hash == parent
        assert previous_position < record.inbox_position <= count
        covered = batches[record.inbox_position - 1]
        l2_block = call(l2, "eth_getBlockByNumber", [hex(covered.last_block), False])
        assert record.l2_block == covered.last_block and record.l2_block_hash == l2_block["hash"]
        words = bytes.fromhex(event["data"][2:])
        inbox_acc = words[-6 * 32 : -5 * 32]  # afterInboxBatchAcc, after the 21-word AssertionInputs
        assert "0x" + inbox_acc.hex() == covered.after_acc
        rehashed = keccak256(
            bytes.fromhex(parent[2:])
            + state_hash(l2_block["hash"], ZERO_HASH, record.inbox_position)
            + inbox_acc
        )
        assert "0x" + rehashed.hex() == record.assertion_hash
        parent, previous_position = record.assertion_hash, record.inbox_position

    # Confirmations: in creation order, and latestConfirmed() only ever moved forward along them.
    confirmed = logs(l1, deployment.rollup, "0x" + event_topic(ASSERTION_CONFIRMED).hex())
    assert [event["topics"][1] for event in confirmed] == [record.assertion_hash for record in assertions]
    assert all(record.confirmed_l1_block >= record.created_l1_block + 2 for record in assertions)
    final = read(l1, deployment.rollup, "latestConfirmed()", "bytes32")
    assert "0x" + final.hex() == assertions[-1].assertion_hash
    order = ["0x" + genesis.hex()] + [record.assertion_hash for record in assertions]
    seen = ["0x" + value.hex() for value in confirmed_seen]
    assert len(seen) >= 2, "latestConfirmed() moved while the poster ran"
    assert [order.index(value) for value in seen] == sorted(order.index(value) for value in seen)


def test_the_inbox_and_the_rollup_refuse_what_the_real_ones_refuse(
    l1: str, l2: str, nitro_package: Path
) -> None:
    deployment = deploy(l1, nitro_package, confirm_period_blocks=5)
    stranger = BatchPoster(
        l1, deployment.sequencer_inbox, STRANGER_KEY, l2_rpc_url=l2, encode=lambda blocks: EMPTY_BROTLI_BATCH
    )
    _wait_for_l2_block(l2, 1)
    with pytest.raises(L1Error, match=r"posting batch 0 .*NotBatchPoster\(\)"):
        stranger.post_once()
    flagless = BatchPoster(
        l1, deployment.sequencer_inbox, POSTER_KEY, l2_rpc_url=l2, encode=lambda blocks: b"\x02\x3b"
    )
    with pytest.raises(L1Error, match=r"InvalidHeaderFlag\(0x02"):
        flagless.post_once()
    poster = BatchPoster(
        l1,
        deployment.sequencer_inbox,
        POSTER_KEY,
        l2_rpc_url=l2,
        encode=lambda blocks: EMPTY_BROTLI_BATCH,
        rollup=deployment.rollup,
        assert_every=1,
        confirm_delay=0,
    )
    first = poster.post_once()
    assert first is not None and first.sequence_number == 0 and poster.assertions()
    # Only the validator asserts; an assertion may not read past the inbox nor confirm before its time.
    with pytest.raises(L1Error, match="NOT_VALIDATOR"):
        _rollup_call(
            l1, STRANGER_KEY, deployment, "createAssertion(uint64,bytes32,bytes32)", 1, bytes(32), bytes(32)
        )
    with pytest.raises(L1Error, match="INBOX_TOO_FAR|INBOX_PAST_END"):
        _rollup_call(
            l1, POSTER_KEY, deployment, "createAssertion(uint64,bytes32,bytes32)", 5, bytes(32), bytes(32)
        )
    pending = bytes.fromhex(poster.assertions()[0].assertion_hash[2:])
    with pytest.raises(L1Error, match="BEFORE_DEADLINE"):
        _rollup_call(l1, POSTER_KEY, deployment, "confirmAssertion(bytes32)", pending)
    # A poster started later picks up where the inbox stands: the next sequence number and L2 block.
    second = BatchPoster(
        l1, deployment.sequencer_inbox, POSTER_KEY, l2_rpc_url=l2, encode=lambda blocks: EMPTY_BROTLI_BATCH
    )
    _wait_for_l2_block(l2, first.last_block + 1)
    again = second.post_once()
    assert again is not None and again.sequence_number == 1 and again.first_block == first.last_block + 1


def _wait_for_l2_block(l2: str, number: int) -> None:
    deadline = time.monotonic() + 10
    while int(call(l2, "eth_blockNumber", []), 16) < number:
        assert time.monotonic() < deadline, f"the L2 did not reach block {number}"
        time.sleep(0.05)


def _rollup_call(l1: str, key: str, deployment: L1Deployment, signature: str, *arguments: Any) -> None:
    from pytest_gashammer.l1.sender import L1Account

    L1Account(l1, key).estimate_gas(deployment.rollup, call_data(signature, *arguments), what=signature)


def test_the_stand_in_emits_the_real_rollup_events(nitro_package: Path) -> None:
    real = json.loads((nitro_package / ARTIFACT_PATHS["RollupCore"]).read_text())["abi"]
    ours = stand_in_rollup_artifact().abi
    for name in ("AssertionCreated", "AssertionConfirmed", "latestConfirmed", "genesisAssertionHash"):
        assert [entry for entry in ours if entry.get("name") == name] == [
            entry for entry in real if entry.get("name") == name
        ], name


def test_deploying_on_an_l1_that_mines_every_second_takes_one_block(
    tmp_path: Path, nitro_package: Path
) -> None:
    with anvil(tmp_path, L1_CHAIN_ID, "--block-time", "1") as url:
        fund(url, DEPLOYER_KEY)
        start = int(call(url, "eth_blockNumber", []), 16)
        deployment = deploy(url, nitro_package)
        end = int(call(url, "eth_blockNumber", []), 16)
    print(f"L1 deployment at 1 s blocks: {deployment.deploy_seconds:.3f} s")
    assert start < deployment.deployed_at_block <= end <= start + 2, "nine transactions in one or two blocks"
    assert deployment.deploy_seconds < 3.5
