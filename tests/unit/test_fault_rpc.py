"""JSON-RPC faults on synthetic calls and answers: what each chooses, what it rewrites, what it records."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from eth_account import Account

from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.fault import (
    BreakParentHash,
    DropTransactions,
    DuplicateInclusion,
    Pick,
    ReorderBlockTimestamps,
    RpcCall,
    WrongReceiptBlock,
    WrongReceiptStatus,
)
from pytest_gashammer.fault.faults import sender_of, transaction_hash

CHAIN_ID = 412346
FUNDER_KEY = "0x" + "11" * 32
SENDER_KEY = "0x" + "22" * 32
FUNDER = Account.from_key(FUNDER_KEY).address
SENDER = Account.from_key(SENDER_KEY).address


def signed(nonce: int, key: str = SENDER_KEY) -> tuple[str, str]:
    """(raw hex, hash) of a transfer signed by ``key``."""
    tx = FastSigner(key, CHAIN_ID).sign(
        {
            "type": 2,
            "nonce": nonce,
            "to": FUNDER,
            "value": 1,
            "gas": 21_000,
            "maxFeePerGas": 10**9,
            "maxPriorityFeePerGas": 1,
        }
    )
    return tx.raw_hex, tx.hash_hex


def send(raw: str, request_id: int = 1) -> RpcCall:
    return RpcCall.from_request(
        {"jsonrpc": "2.0", "id": request_id, "method": "eth_sendRawTransaction", "params": [raw]}, 0
    )


def answered(method: str, params: list[Any], result: Any) -> RpcCall:
    call = RpcCall.from_request({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}, 0)
    call.answer = {"jsonrpc": "2.0", "id": 9, "result": result}
    return call


def block(
    number: int, txs: list[Any], *, timestamp: int = 1_000, parent: str | None = None
) -> dict[str, Any]:
    return {
        "number": hex(number),
        "hash": "0x" + f"{number:064x}",
        "parentHash": parent or "0x" + f"{number - 1:064x}",
        "timestamp": hex(timestamp),
        "transactions": list(txs),
    }


def serve_block(fault: Any, payload: dict[str, Any]) -> dict[str, Any]:
    call = answered("eth_getBlockByNumber", [payload["number"], False], copy.deepcopy(payload))
    fault.on_answer(call)
    assert call.answer is not None
    result: dict[str, Any] = call.answer["result"]
    return result


# ------------------------------------------------------------------------------------ the call


def test_a_call_keeps_the_client_id_and_a_local_reply_is_not_forwarded() -> None:
    call = RpcCall.from_request({"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"}, 3)
    assert (call.method, call.params, call.request_id, call.index) == ("eth_chainId", [], "a", 3)
    assert call.forward and not call.has_result and call.result is None
    call.reply("0x1", by="test")
    assert call.answer == {"jsonrpc": "2.0", "id": "a", "result": "0x1"}
    assert not call.forward and call.answered_by == "test" and call.result == "0x1"
    call.reply_error(-32000, "nope", by="test")
    assert call.answer == {"jsonrpc": "2.0", "id": "a", "error": {"code": -32000, "message": "nope"}}
    assert call.result is None


def test_a_notification_has_no_id() -> None:
    call = RpcCall.from_request({"jsonrpc": "2.0", "method": "eth_chainId", "params": []}, 0)
    assert call.is_notification
    call.reply("0x1", by="test")
    assert call.answer is not None and call.answer["id"] is None


# ------------------------------------------------------------------------------------- choices


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give exactly one of nth=, every=, one_in=, or hashes= (got none)"),
        ({"nth": 1, "every": 2}, "give exactly one of nth=, every=, one_in=, or hashes= (got nth, every)"),
        ({"nth": 0}, "nth=0 must be an integer >= 1"),
        ({"every": True}, "every=True must be an integer >= 1"),
        ({"every": 3, "count": 0}, "count=0 must be a positive integer"),
    ],
)
def test_a_transaction_fault_needs_exactly_one_valid_choice(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^DropTransactions: ") as caught:
        DropTransactions(**kwargs)
    assert message in str(caught.value)


def test_block_faults_take_numbers_not_hashes() -> None:
    with pytest.raises(ValueError, match=r"give exactly one of nth=, every=, or numbers= \(got none\)"):
        BreakParentHash()


def test_pick_counts_each_candidate_once_and_stops_at_count() -> None:
    every = Pick("T", every=3, count=2)
    assert [every.offer(i) for i in range(10)] == [False, False, True, False, False, True] + [False] * 4
    assert every.exhausted
    nth = Pick("T", nth=2)
    assert [nth.offer(i) for i in range(4)] == [False, True, False, False]
    assert nth.count == 1
    by_value = Pick("T", one_in=4)
    assert [by_value.offer(i, i) for i in range(9)] == [
        True,
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        True,
    ]
    listed = Pick("T", keys={"b"}, keys_name="hashes")
    assert [listed.offer(k) for k in "abc"] == [False, True, False]


# ------------------------------------------------------------------------------------- drop


def test_dropped_transactions_get_their_real_hash_and_are_not_forwarded() -> None:
    drop = DropTransactions(every=2)
    outcomes = []
    for nonce in range(4):
        raw, tx_hash = signed(nonce)
        call = send(raw, request_id=nonce)
        drop.on_request(call)
        outcomes.append(call.forward)
        if not call.forward:
            assert call.answer == {"jsonrpc": "2.0", "id": nonce, "result": tx_hash}
            assert transaction_hash(bytes.fromhex(raw[2:])) == tx_hash
    assert outcomes == [True, False, True, False]
    assert drop.affected == [signed(1)[1], signed(3)[1]]
    assert drop.events == [{"tx_hash": signed(1)[1]}, {"tx_hash": signed(3)[1]}]


def test_a_dropped_transaction_sent_again_is_dropped_again_and_recorded_once() -> None:
    drop = DropTransactions(nth=1)
    raw, tx_hash = signed(0)
    for _ in range(3):
        call = send(raw)
        drop.on_request(call)
        assert not call.forward and call.result == tx_hash
    assert drop.affected == [tx_hash]


def test_transactions_from_an_excluded_sender_are_never_chosen() -> None:
    assert sender_of(bytes.fromhex(signed(0, FUNDER_KEY)[0][2:])) == FUNDER.lower()
    drop = DropTransactions(every=1, exclude_from=[FUNDER])
    funding, load = send(signed(0, FUNDER_KEY)[0]), send(signed(0)[0])
    drop.on_request(funding)
    drop.on_request(load)
    assert funding.forward and not load.forward
    only = DropTransactions(every=1, only_from=[FUNDER.lower()])
    load = send(signed(1)[0])
    only.on_request(load)
    assert load.forward


def test_a_disarmed_fault_chooses_nothing_until_armed() -> None:
    drop = DropTransactions(every=1, armed=False)
    first = send(signed(0)[0])
    drop.on_request(first)
    assert first.forward
    drop.arm()
    second = send(signed(1)[0])
    drop.on_request(second)
    assert not second.forward
    drop.disarm()
    again = send(signed(1)[0])
    drop.on_request(again)
    assert not again.forward, "a transaction already chosen stays dropped"


def test_listed_hashes_are_dropped_and_others_are_not() -> None:
    raw0, hash0 = signed(0)
    raw1, _ = signed(1)
    drop = DropTransactions(hashes=[hash0.upper().replace("0X", "0x")])
    calls = [send(raw0), send(raw1)]
    for call in calls:
        drop.on_request(call)
    assert [call.forward for call in calls] == [False, True]


def test_malformed_raw_transactions_are_left_to_the_node() -> None:
    drop = DropTransactions(every=1)
    for params in ([], ["0x"], ["0xzz"], [7], ["deadbeef"]):
        call = RpcCall.from_request({"id": 1, "method": "eth_sendRawTransaction", "params": params}, 0)
        drop.on_request(call)
        assert call.forward
    assert drop.affected == []


# ---------------------------------------------------------------------------------- duplicate


def test_a_chosen_transaction_is_reported_again_in_the_next_block_served() -> None:
    duplicate = DuplicateInclusion(nth=1)
    raw, tx_hash = signed(0)
    duplicate.on_request(send(raw))
    other = "0x" + "ab" * 32
    assert serve_block(duplicate, block(10, [other, tx_hash]))["transactions"] == [other, tx_hash]
    assert duplicate.affected == []
    assert serve_block(duplicate, block(11, [other]))["transactions"] == [other, tx_hash]
    assert duplicate.events == [{"tx_hash": tx_hash, "block": 10, "again_in": 11}]
    # Served again, both blocks tell the same story.
    assert serve_block(duplicate, block(10, [other, tx_hash]))["transactions"] == [other, tx_hash]
    assert serve_block(duplicate, block(11, [other]))["transactions"] == [other, tx_hash]
    assert serve_block(duplicate, block(12, []))["transactions"] == []
    assert duplicate.affected == [tx_hash]


def test_a_chosen_transaction_can_be_reported_twice_in_its_own_block() -> None:
    duplicate = DuplicateInclusion(nth=1, same_block=True)
    raw, tx_hash = signed(0)
    duplicate.on_request(send(raw))
    assert serve_block(duplicate, block(10, [tx_hash]))["transactions"] == [tx_hash, tx_hash]
    assert duplicate.events == [{"tx_hash": tx_hash, "block": 10, "again_in": 10}]


def test_full_transaction_objects_are_copied_with_their_new_position() -> None:
    duplicate = DuplicateInclusion(nth=1)
    raw, tx_hash = signed(0)
    duplicate.on_request(send(raw))
    entry = {
        "hash": tx_hash,
        "blockNumber": "0xa",
        "blockHash": "0x" + f"{10:064x}",
        "transactionIndex": "0x0",
    }
    serve_block(duplicate, block(10, [entry]))
    later = serve_block(duplicate, block(11, [{"hash": "0x" + "cd" * 32}]))
    assert later["transactions"][1] == {
        "hash": tx_hash,
        "blockNumber": "0xb",
        "blockHash": "0x" + f"{11:064x}",
        "transactionIndex": "0x1",
    }


def test_unchosen_transactions_and_other_methods_are_untouched() -> None:
    duplicate = DuplicateInclusion(nth=2)
    raw, tx_hash = signed(0)
    duplicate.on_request(send(raw))  # the first one: not chosen
    assert serve_block(duplicate, block(10, [tx_hash]))["transactions"] == [tx_hash]
    assert serve_block(duplicate, block(11, []))["transactions"] == []
    call = answered("eth_blockNumber", [], "0xb")
    duplicate.on_answer(call)
    assert call.result == "0xb"
    empty = answered("eth_getBlockByNumber", ["0x99", False], None)
    duplicate.on_answer(empty)
    assert empty.result is None


# ------------------------------------------------------------------------------------ receipts


def receipt(tx_hash: str, status: str) -> dict[str, Any]:
    return {"transactionHash": tx_hash, "status": status, "gasUsed": "0x5208"}


def test_chosen_receipts_have_their_status_flipped() -> None:
    wrong = WrongReceiptStatus(every=2)
    hashes = []
    for nonce in range(4):
        raw, tx_hash = signed(nonce)
        wrong.on_request(send(raw))
        hashes.append(tx_hash)
    statuses = []
    for tx_hash in hashes:
        call = answered("eth_getTransactionReceipt", [tx_hash], receipt(tx_hash, "0x1"))
        wrong.on_answer(call)
        statuses.append(call.result["status"])
    assert statuses == ["0x1", "0x0", "0x1", "0x0"]
    assert wrong.affected == [hashes[1], hashes[3]]
    assert wrong.events[0] == {"tx_hash": hashes[1], "status": "0x1", "reported": "0x0"}
    block_receipts = answered(
        "eth_getBlockReceipts", ["0x1"], [receipt(hashes[0], "0x1"), receipt(hashes[1], "0x1")]
    )
    wrong.on_answer(block_receipts)
    assert [r["status"] for r in block_receipts.result] == ["0x1", "0x0"]
    missing = answered("eth_getTransactionReceipt", [hashes[1]], None)
    wrong.on_answer(missing)
    assert missing.result is None


def test_a_failed_receipt_is_flipped_to_success() -> None:
    raw, tx_hash = signed(0)
    wrong = WrongReceiptStatus(hashes=[tx_hash])
    call = answered("eth_getTransactionReceipt", [tx_hash], receipt(tx_hash, "0x0"))
    wrong.on_answer(call)
    assert call.result["status"] == "0x1"
    assert wrong.affected == [tx_hash]


def in_block(tx_hash: str, number: int) -> dict[str, Any]:
    return {
        **receipt(tx_hash, "0x1"),
        "blockNumber": hex(number),
        "blockHash": "0x" + f"{number:064x}",
        "logs": [{"blockNumber": hex(number), "blockHash": "0x" + f"{number:064x}", "logIndex": "0x0"}],
    }


def test_chosen_receipts_point_at_another_block_the_same_way_every_time() -> None:
    wrong = WrongReceiptBlock(every=2)
    hashes = []
    for nonce in range(4):
        raw, tx_hash = signed(nonce)
        wrong.on_request(send(raw))
        hashes.append(tx_hash)
    served = []
    for tx_hash in hashes:
        call = answered("eth_getTransactionReceipt", [tx_hash], in_block(tx_hash, 7))
        wrong.on_answer(call)
        served.append(call.result)
    assert [r["blockNumber"] for r in served] == ["0x7", "0x8", "0x7", "0x8"]
    assert served[0]["blockHash"] == "0x" + f"{7:064x}" != served[1]["blockHash"]
    assert served[1]["logs"][0]["blockHash"] == served[1]["blockHash"], "its logs say the same"
    assert served[1]["status"] == "0x1" and served[1]["gasUsed"] == "0x5208", "nothing else changes"
    assert wrong.affected == [hashes[1], hashes[3]]
    assert wrong.events[0] == {
        "tx_hash": hashes[1],
        "block_number": "0x7",
        "block_hash": "0x" + f"{7:064x}",
        "reported_number": "0x8",
        "reported_hash": served[1]["blockHash"],
    }
    whole = answered("eth_getBlockReceipts", ["0x7"], [in_block(h, 7) for h in hashes[:2]])
    wrong.on_answer(whole)
    assert [r["blockHash"] for r in whole.result] == [served[0]["blockHash"], served[1]["blockHash"]]
    earlier = WrongReceiptBlock(hashes=[hashes[0]], by=-3)
    call = answered("eth_getTransactionReceipt", [hashes[0]], in_block(hashes[0], 7))
    earlier.on_answer(call)
    assert call.result["blockNumber"] == "0x4"
    with pytest.raises(ValueError, match=r"^WrongReceiptBlock: by=0 must be a non-zero number"):
        WrongReceiptBlock(nth=1, by=0)


# -------------------------------------------------------------------------------------- blocks


def test_a_broken_parent_hash_is_the_same_every_time_the_block_is_served() -> None:
    broken = BreakParentHash(every=2, count=2)
    served = [serve_block(broken, block(n, [])) for n in range(10, 16)]
    changed = [
        b["number"] for b in served if b["parentHash"] != block(int(b["number"], 16), [])["parentHash"]
    ]
    assert changed == ["0xb", "0xd"]
    assert broken.affected == [11, 13]
    again = serve_block(broken, block(11, []))
    assert again["parentHash"] == served[1]["parentHash"] == broken.events[0]["reported"]
    assert broken.events[0]["parent_hash"] == block(11, [])["parentHash"]
    assert serve_block(broken, block(17, []))["parentHash"] == block(17, [])["parentHash"], "count reached"


def test_listed_blocks_are_broken_even_when_served_by_hash() -> None:
    broken = BreakParentHash(numbers=[20])
    call = answered("eth_getBlockByHash", ["0x" + f"{20:064x}", False], block(20, []))
    broken.on_answer(call)
    assert call.result["parentHash"] != block(20, [])["parentHash"]
    assert broken.affected == [20]


def test_a_moved_timestamp_goes_below_its_parent_and_only_there() -> None:
    moved = ReorderBlockTimestamps(numbers=[11], back_by=10)
    stamps = [
        int(serve_block(moved, block(n, [], timestamp=1_000 + n))["timestamp"], 16) for n in range(10, 13)
    ]
    assert stamps == [1_010, 1_001, 1_012]
    assert moved.events == [{"block": 11, "timestamp": 1_011, "reported": 1_001}]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": 1}, "every=1 must be an integer >= 2"),
        ({"numbers": [5, 6]}, "numbers 5 and 6 are adjacent"),
        ({"nth": 1, "back_by": 0}, "back_by=0 must be a positive number of seconds"),
    ],
)
def test_timestamp_choices_that_would_hide_each_other_are_refused(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match="^ReorderBlockTimestamps: ") as caught:
        ReorderBlockTimestamps(**kwargs)
    assert message in str(caught.value)


def test_faults_describe_themselves() -> None:
    assert (
        repr(DropTransactions(every=3, count=2)) == "<DropTransactions(every=3, count=2) armed, 0 affected>"
    )
    assert repr(BreakParentHash(nth=4, armed=False)) == "<BreakParentHash(nth=4) disarmed, 0 affected>"
    assert DropTransactions.caught_by == ("inclusion",)
