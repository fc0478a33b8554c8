"""Start nonces that survive nodes counting their pool differently, and reruns over pooled transactions."""

from __future__ import annotations

import asyncio
from typing import Any

from pytest_gashammer.chain.rpc import RpcError
from pytest_gashammer.edge.accounts import (
    NonceBook,
    Remembered,
    SentNonces,
    nonce_address,
    resolve_start_nonces,
    start_nonce,
)

ALICE = "0xA11CE00000000000000000000000000000000001"


def test_nonces_are_asked_for_with_a_lowercase_address() -> None:
    assert nonce_address(ALICE) == ALICE.lower()


def test_without_memory_or_with_a_node_ahead_the_node_wins() -> None:
    assert start_nonce(5, None, {}) == 5
    assert start_nonce(9, Remembered(7, {}), {}) == 9  # others sent from it too: the node knows more
    assert start_nonce(7, Remembered(7, {5: "0x5", 6: "0x6"}), {}) == 7


def test_a_node_that_still_holds_what_its_count_leaves_out_is_skipped_past() -> None:
    remembered = Remembered(4, {1: "0x1", 2: "0x2", 3: "0x3"})
    assert start_nonce(1, remembered, {1: True, 2: True, 3: True}) == 4


def test_a_node_that_dropped_them_wins_so_no_gap_strands_the_rerun() -> None:
    remembered = Remembered(4, {1: "0x1", 2: "0x2", 3: "0x3"})
    assert start_nonce(1, remembered, {1: False, 2: False, 3: False}) == 1
    # Only the first two are still held: start right after them, never above a dropped one.
    assert start_nonce(1, remembered, {1: True, 2: True, 3: False}) == 3
    # Nothing asked about (no hash remembered for the node's count): the node wins.
    assert start_nonce(1, Remembered(4, {}), {}) == 1


def test_a_range_longer_than_asked_about_is_trusted_when_all_asked_about_are_held() -> None:
    remembered = Remembered(200, {n: f"0x{n}" for n in range(200)})
    assert start_nonce(0, remembered, {n: True for n in range(64)}) == 200
    assert start_nonce(0, remembered, {n: n != 30 for n in range(64)}) == 30


def test_the_memory_keeps_earlier_unconfirmed_below_a_runs_start_and_replaces_the_rest() -> None:
    memory = SentNonces()
    memory.record("c", ALICE, 0, 5, {3: "0x3", 4: "0x4"})
    assert memory.recall("c", ALICE.lower()) == Remembered(5, {3: "0x3", 4: "0x4"})
    memory.record("c", ALICE, 5, 8, {7: "0x7"})  # a rerun after the pooled ones
    assert memory.recall("c", ALICE) == Remembered(8, {3: "0x3", 4: "0x4", 7: "0x7"})
    memory.record("c", ALICE, 3, 4, {})  # a rerun after the node dropped 3..7: it starts at 3
    assert memory.recall("c", ALICE) == Remembered(4, {})
    assert memory.recall("other chain", ALICE) is None


def test_a_resync_never_moves_a_sender_below_what_it_handed_out() -> None:
    book = NonceBook([3])
    assert [book.take(0) for _ in range(3)] == [3, 4, 5]
    book.resync(0, 1)  # a node whose pending count leaves its pool out
    assert book.take(0) == 6
    book.resync(0, 9)
    assert book.take(0) == 9 and book.foreign[0] >= {7, 8}


class FakeRpc:
    """Answers batches from tables: pending counts, the genesis block, and which hashes the node holds."""

    def __init__(self, pending: dict[str, int], held: set[str]) -> None:
        self.pending = pending
        self.held = held
        self.asked: list[tuple[str, list[Any]]] = []

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        self.asked.extend(calls)
        answers: list[Any] = []
        for method, params in calls:
            if method == "eth_getTransactionCount":
                answers.append(hex(self.pending[params[0]]))
            elif method == "eth_getBlockByNumber":
                answers.append({"hash": "0xgenesis"})
            elif method == "eth_getTransactionByHash":
                answers.append({"hash": params[0]} if params[0] in self.held else None)
            else:
                answers.append(RpcError(-32601, "method not found"))
        return answers


def resolve(rpc: FakeRpc, memory: SentNonces, notes: list[str]) -> tuple[list[int], str]:
    return asyncio.run(resolve_start_nonces(rpc, 7, [ALICE], notes, memory=memory))  # type: ignore[arg-type]


def test_resolution_asks_lowercase_and_notes_a_pool_the_count_leaves_out() -> None:
    memory, notes = SentNonces(), []
    rpc = FakeRpc({ALICE.lower(): 0}, held={"0xa", "0xb"})
    starts, chain = resolve(rpc, memory, notes)
    assert starts == [0] and chain == "7:0xgenesis" and notes == []
    assert ("eth_getTransactionCount", [ALICE.lower(), "pending"]) in rpc.asked
    memory.record(chain, ALICE, 0, 2, {0: "0xa", 1: "0xb"})
    starts, _ = resolve(rpc, memory, notes)
    assert starts == [2]
    assert len(notes) == 1 and "still holds" in notes[0] and ALICE in notes[0]


def test_resolution_falls_back_to_the_node_when_it_dropped_them() -> None:
    memory, notes = SentNonces(), []
    memory.record("7:0xgenesis", ALICE, 0, 2, {0: "0xa", 1: "0xb"})
    starts, _ = resolve(FakeRpc({ALICE.lower(): 0}, held=set()), memory, notes)
    assert starts == [0]
    assert len(notes) == 1 and "no longer knows" in notes[0]
