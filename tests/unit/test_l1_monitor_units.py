"""The L1 monitor's pieces without a node: the batch calls it decodes, the log ranges it steps
through, what it makes of a posting transaction, and its polling against a scripted JSON-RPC."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import brotli
import pytest
import rlp as pyrlp

from pytest_gashammer.chain.rpc import RpcError, TransportError
from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.l1 import monitor as monitor_module
from pytest_gashammer.l1.abi import call_data, encode, event_topic
from pytest_gashammer.l1.batch import BatchBlock, encode_batch
from pytest_gashammer.l1.contracts import (
    ADD_BATCH,
    ADD_BATCH_DELAY_PROOF,
    ADD_BATCH_FROM_BLOBS,
    ADD_BATCH_FROM_CONTRACT,
    SEQUENCER_BATCH_DATA,
    SEQUENCER_BATCH_DELIVERED,
)
from pytest_gashammer.l1.monitor import (
    READ_METHODS,
    L1Monitor,
    batch_from_log,
    decode_batch_call,
    l2_block_from_json,
    log_ranges,
    read_batch,
)
from pytest_gashammer.l1.observation import (
    LOCATION_BLOB,
    LOCATION_SEPARATE_EVENT,
    MALFORMED,
    UNREADABLE,
    BatchMessage,
    SeenBatch,
)

KEY = "0x" + "b2" * 32
INBOX = "0x" + "11" * 20
ZERO_ADDRESS = "0x" + "00" * 20
DELAY_PROOF = (b"\x01" * 32, (3, "0x" + "22" * 20, 7, 8, 9, 10, b"\x02" * 32))


def signed(nonce: int) -> Any:
    fields = {"nonce": nonce, "to": "0x" + "33" * 20, "value": 1, "gas": 21_000, "chainId": 412346}
    return FastSigner(KEY, 412346).sign({**fields, "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 0})


TXS = [signed(n) for n in range(4)]


# ----------------------------------------------------------------------------------------------
# batch calls


def test_the_six_argument_call_and_its_siblings_decode_to_the_same_fields() -> None:
    arguments = (7, b"\x00batch", 3, ZERO_ADDRESS, 12, 16)
    for signature, extra in (
        (ADD_BATCH, ()),
        (ADD_BATCH_FROM_CONTRACT, ()),
        (ADD_BATCH_DELAY_PROOF, (DELAY_PROOF,)),
    ):
        found = decode_batch_call(call_data(signature, *arguments, *extra))
        assert found.entry_point == signature.split("(")[0]
        assert (found.sequence_number, found.data, found.after_delayed_messages_read) == (7, b"\x00batch", 3)
        assert (found.prev_message_count, found.new_message_count) == (12, 16)


def test_a_blob_batch_call_has_message_counts_and_no_data() -> None:
    found = decode_batch_call(call_data(ADD_BATCH_FROM_BLOBS, 9, 0, ZERO_ADDRESS, 20, 25))
    assert (found.entry_point, found.data, found.prev_message_count, found.new_message_count) == (
        "addSequencerL2BatchFromBlobs",
        None,
        20,
        25,
    )


def test_calldata_that_is_no_batch_call_says_so_in_one_line() -> None:
    with pytest.raises(
        ValueError, match=r"^not decoded: selector 0xa9059cbb is not one of the SequencerInbox's"
    ):
        decode_batch_call(call_data("transfer(address,uint256)", ZERO_ADDRESS, 1))
    with pytest.raises(ValueError, match="no calldata"):
        decode_batch_call(b"")
    with pytest.raises(
        ValueError, match="^not decoded: the arguments of addSequencerL2BatchFromOrigin do not"
    ):
        decode_batch_call(call_data(ADD_BATCH, 1, b"", 0, ZERO_ADDRESS, 1, 2)[:40])


# ----------------------------------------------------------------------------------------------
# log ranges


def test_log_ranges_step_by_at_most_the_range_and_stop_at_the_limit() -> None:
    assert log_ranges(1, 5000, 2000, 8) == [(1, 2000), (2001, 4000), (4001, 5000)]
    assert log_ranges(1, 5000, 2000, 2) == [(1, 2000), (2001, 4000)]
    assert log_ranges(10, 10, 2000, 8) == [(10, 10)]
    assert log_ranges(11, 10, 2000, 8) == []
    assert log_ranges(0, 3, 1, 8) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    with pytest.raises(ValueError):
        log_ranges(0, 3, 0, 8)


# ----------------------------------------------------------------------------------------------
# a posting transaction


def seen(location: int = 0, sequence: int = 4) -> SeenBatch:
    return SeenBatch(
        sequence_number=sequence,
        before_acc="0x" + "aa" * 32,
        after_acc="0x" + "bb" * 32,
        delayed_acc="0x" + "00" * 32,
        delayed_messages_read=0,
        time_bounds=(0, 1, 2, 3),
        data_location=location,
        l1_block=50,
        log_index=0,
        l1_tx="0x" + "ee" * 32,
        seen_at=1.0,
    )


def posting(
    data: bytes, *, prev: int = 12, new: int = 14, to: str = INBOX, signature: str = ADD_BATCH
) -> dict[str, Any]:
    return {"to": to, "input": "0x" + call_data(signature, 4, data, 0, ZERO_ADDRESS, prev, new).hex()}


RECEIPT = {"gasUsed": hex(150_000), "logs": []}


def test_a_batch_in_calldata_maps_each_message_to_its_transactions() -> None:
    data = encode_batch([BatchBlock(1, 1, (TXS[0].raw, TXS[1].raw)), BatchBlock(2, 1, (TXS[2].raw,))])
    done = read_batch(seen(), posting(data), RECEIPT, sequencer_inbox=INBOX)
    assert (done.entry_point, done.prev_message_count, done.new_message_count) == (
        "addSequencerL2BatchFromOrigin",
        12,
        14,
    )
    assert (done.data_bytes, done.l1_gas, done.decode_error) == (len(data), 150_000, None)
    assert done.messages == (
        BatchMessage(12, (TXS[0].hash_hex, TXS[1].hash_hex)),
        BatchMessage(13, (TXS[2].hash_hex,)),
    )


def test_a_delayed_message_takes_its_place_without_transactions() -> None:
    block = encode_batch([BatchBlock(1, 1, (TXS[3].raw,))])
    segments = [b"\x02", *_segments(block)]
    data = b"\x00" + brotli.compress(b"".join(pyrlp.encode(segment) for segment in segments))
    done = read_batch(seen(), posting(data), RECEIPT, sequencer_inbox=INBOX)
    assert done.messages == (BatchMessage(12, None), BatchMessage(13, (TXS[3].hash_hex,)))


def _segments(data: bytes) -> list[bytes]:
    stream = brotli.decompress(data[1:])
    out, offset = [], 0
    while offset < len(stream):
        item, _, offset = pyrlp.codec.consume_item(stream, offset)
        out.append(item)
    return out


def test_a_batch_posted_through_a_contract_is_read_from_its_event() -> None:
    data = encode_batch([BatchBlock(1, 1, (TXS[0].raw,)), BatchBlock(2, 1, ())])
    event = {
        "address": INBOX.upper().replace("0X", "0x"),
        "topics": ["0x" + event_topic(SEQUENCER_BATCH_DATA).hex(), hex(4)],
        "data": "0x" + encode(["bytes"], [data]).hex(),
    }
    tx = posting(b"", signature=ADD_BATCH_FROM_CONTRACT)
    done = read_batch(seen(LOCATION_SEPARATE_EVENT), tx, {**RECEIPT, "logs": [event]}, sequencer_inbox=INBOX)
    assert done.messages == (BatchMessage(12, (TXS[0].hash_hex,)), BatchMessage(13, ()))
    missing = read_batch(seen(LOCATION_SEPARATE_EVENT), tx, RECEIPT, sequencer_inbox=INBOX)
    assert missing.decode_problem == UNREADABLE and "SequencerBatchData" in (missing.decode_error or "")


def test_what_the_monitor_cannot_read_is_unreadable_and_what_nitro_would_not_read_malformed() -> None:
    blob = {"to": INBOX, "input": "0x" + call_data(ADD_BATCH_FROM_BLOBS, 4, 0, ZERO_ADDRESS, 12, 14).hex()}
    done = read_batch(seen(LOCATION_BLOB), blob, RECEIPT, sequencer_inbox=INBOX)
    assert (done.decode_problem, done.prev_message_count, done.new_message_count, done.messages) == (
        UNREADABLE,
        12,
        14,
        None,
    )
    assert done.decode_error == "data in EIP-4844 blobs, which the monitor does not read"
    elsewhere = read_batch(seen(), posting(b"\x00", to="0x" + "44" * 20), RECEIPT, sequencer_inbox=INBOX)
    assert elsewhere.decode_problem == UNREADABLE and "not the SequencerInbox" in (
        elsewhere.decode_error or ""
    )
    das = read_batch(seen(), posting(b"\x80" + b"\x00" * 40), RECEIPT, sequencer_inbox=INBOX)
    assert das.decode_problem == UNREADABLE and (das.decode_error or "").startswith("unsupported_flag: ")
    corrupt = read_batch(seen(), posting(b"\x00\xff\xff\xff"), RECEIPT, sequencer_inbox=INBOX)
    assert corrupt.decode_problem == MALFORMED and corrupt.l1_gas == 150_000


def test_a_batch_delivered_log_decodes_every_field() -> None:
    data = encode(
        ["bytes32", "uint256", "(uint64,uint64,uint64,uint64)", "uint8"],
        [b"\x05" * 32, 3, (10, 20, 30, 40), 0],
    )
    log = {
        "topics": [
            "0x" + event_topic(SEQUENCER_BATCH_DELIVERED).hex(),
            hex(9),
            "0x" + "AA" * 32,
            "0x" + "bb" * 32,
        ],
        "data": "0x" + data.hex(),
        "blockNumber": hex(77),
        "logIndex": hex(2),
        "transactionHash": "0x" + "CC" * 32,
    }
    batch = batch_from_log(log, 4.5)
    assert (batch.sequence_number, batch.before_acc, batch.after_acc) == (
        9,
        "0x" + "aa" * 32,
        "0x" + "bb" * 32,
    )
    assert (batch.delayed_acc, batch.delayed_messages_read, batch.time_bounds) == (
        "0x" + "05" * 32,
        3,
        (10, 20, 30, 40),
    )
    assert (batch.l1_block, batch.log_index, batch.l1_tx, batch.seen_at) == (77, 2, "0x" + "cc" * 32, 4.5)


def test_an_l2_block_leaves_arbitrum_internal_transactions_out_of_what_a_batch_carries() -> None:
    block = {
        "number": "0x5",
        "hash": "0x" + "AB" * 32,
        "parentHash": "0x" + "cd" * 32,
        "transactions": [
            {"hash": "0x" + "01" * 32, "type": "0x6a"},
            {"hash": "0x" + "02" * 32, "type": "0x2"},
            {"hash": "0x" + "03" * 32, "type": "0x0"},
            {"hash": "0x" + "04" * 32, "type": "0x68"},
        ],
    }
    seen_block = l2_block_from_json(block, 2.0)
    assert seen_block.transactions == ("0x" + "02" * 32, "0x" + "03" * 32)
    assert (seen_block.internal_transactions, seen_block.hash, seen_block.number) == (2, "0x" + "ab" * 32, 5)


# ----------------------------------------------------------------------------------------------
# polling against a scripted node


class ScriptedChains:
    """Answers the monitor's calls: an L1 at ``l1_head`` whose eth_getLogs may refuse wide ranges,
    and an L2 at ``l2_head``; every call recorded."""

    def __init__(self, *, l1_head: int, l2_head: int = 0, widest: int | None = None) -> None:
        self.l1_head = l1_head
        self.l2_head = l2_head
        self.widest = widest
        self.log_queries: list[tuple[int, int]] = []
        self.failing: set[str] = set()

    def call(self, url: str, method: str, params: Sequence[Any] = (), *, timeout: float = 10.0) -> Any:
        if method in self.failing:
            raise TransportError(f"{method}: cannot reach {url} (refused)", reason="refused")
        if method == "eth_blockNumber":
            return hex(self.l1_head if url == "l1" else self.l2_head)
        if method == "eth_getLogs":
            first, last = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
            self.log_queries.append((first, last))
            if self.widest is not None and last - first + 1 > self.widest:
                raise RpcError(-32005, "query exceeds max block range")
            return []
        if method == "eth_call":
            return (
                "0x" + "00" * 31 + "05"
                if params[0]["data"] != "0x" + "e78cea92"
                else "0x" + "00" * 12 + "55" * 20
            )
        raise AssertionError(f"unexpected {method}")

    def call_batch(
        self, url: str, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float = 10.0
    ) -> list[Any]:
        return [self.call(url, method, params) for method, params in calls]


@pytest.fixture
def chains(monkeypatch: pytest.MonkeyPatch) -> ScriptedChains:
    scripted = ScriptedChains(l1_head=5000)
    monkeypatch.setattr(monitor_module, "call", scripted.call)
    monkeypatch.setattr(monitor_module, "call_batch", scripted.call_batch)
    return scripted


def test_the_monitor_reads_the_logs_in_bounded_ranges_a_few_per_poll(chains: ScriptedChains) -> None:
    watcher = L1Monitor("l1", INBOX, l2_rpc_url="l2", from_l1_block=1, from_l2_block=1, max_ranges_per_poll=2)
    watcher.poll()
    assert chains.log_queries == [(1, 2000), (2001, 4000)]
    assert watcher.observation().synced_to_l1_block == 4000
    watcher.poll()
    assert chains.log_queries[2:] == [(4001, 5000)]
    observation = watcher.observation()
    assert (observation.synced_to_l1_block, observation.l1_head, observation.problems) == (5000, 5000, ())
    assert [reading.value for reading in observation.batch_counts] == [5]


def test_a_refused_range_is_halved_until_the_node_takes_it(chains: ScriptedChains) -> None:
    chains.widest = 600
    watcher = L1Monitor("l1", INBOX, l2_rpc_url="l2", from_l1_block=1, from_l2_block=1)
    for _ in range(4):
        watcher.poll()
    assert chains.log_queries[:5] == [(1, 2000), (1, 1000), (1, 500), (501, 1000), (1001, 1500)]
    assert all(last - first < 600 for first, last in chains.log_queries[3:])
    observation = watcher.observation()
    assert observation.synced_to_l1_block == 5000 and observation.problem_count == 2
    assert observation.problems[0].startswith("follow L1: eth_getLogs over L1 blocks 1..2000 refused")
    assert "next ranges are at most 1000 blocks" in observation.problems[0]


def test_a_node_that_does_not_answer_is_a_problem_and_asked_again_next_poll(chains: ScriptedChains) -> None:
    watcher = L1Monitor("l1", INBOX, l2_rpc_url="l2", from_l1_block=4990, from_l2_block=1)
    chains.failing = {"eth_getLogs"}
    watcher.poll()
    assert watcher.observation().synced_to_l1_block == 4989
    assert any("refused" in problem for problem in watcher.observation().problems)
    chains.failing = set()
    watcher.poll()
    assert watcher.observation().synced_to_l1_block == 5000


def test_the_monitor_never_calls_a_method_that_writes(chains: ScriptedChains) -> None:
    watcher = L1Monitor("l1", INBOX, l2_rpc_url="l2", from_l1_block=1, from_l2_block=1)
    for method in ("eth_sendRawTransaction", "eth_sendTransaction", "anvil_mine", "evm_mine"):
        with pytest.raises(RuntimeError, match="only reads"):
            watcher._call("l1", method)
        with pytest.raises(RuntimeError, match="only reads"):
            watcher._batch("l1", [("eth_blockNumber", []), (method, [])])
    watcher.poll()
    assert set(watcher.calls()) <= READ_METHODS
