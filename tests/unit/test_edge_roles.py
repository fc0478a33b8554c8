"""The edge's roles on their own, without a node: preparation as plain data, submission's answers
and nonces, inclusion and receipts, the gas model, and the evidence gathered after a drain."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from pytest_gashammer.chain.rpc import RpcError, TransportError
from pytest_gashammer.edge.accounts import SentNonces, derive_senders
from pytest_gashammer.edge.evidence import HEAD_READ_ATTEMPTS, BalanceCheck, probe_lost
from pytest_gashammer.edge.gas_model import GasModel
from pytest_gashammer.edge.inclusion import (
    BLOCK_RECEIPTS,
    RECEIPT_BATCH_THRESHOLD,
    RECEIPT_MAX_WAIT,
    RETRY_CAP,
    RETRY_FIRST,
    SMALL_BLOCK,
    TX_RECEIPT,
    WHOLE_BLOCK_ASKS,
    InclusionTracker,
    ReceiptCoverage,
    parse_block_receipts,
    retry_delay,
)
from pytest_gashammer.edge.preparation import RunPreparation, make_schedule, make_templates
from pytest_gashammer.edge.runtime import EdgeAssignment, Progress, balance_check_skipped
from pytest_gashammer.edge.submitter import GAP_FILLER, Submitter
from pytest_gashammer.scenario.spec import ScenarioPlan, compile_plan, parse_spec
from pytest_gashammer.telemetry.records import (
    NOT_YET,
    STATUS_ACCEPTED,
    STATUS_INCLUDED,
    STATUS_REJECTED,
    BlockRecord,
    TxLog,
)
from tests.unit.edge_reports import digest_of

CHAIN_ID = 412346
PREPARATION = RunPreparation(
    max_fee_per_gas=2_000_000_000,
    max_priority_fee_per_gas=1_000_000_000,
    template_setup=[{"token": "0x" + "11" * 20}, {}],
    gas_model=[51_234.0, 21_000.0],
)


def plan_for(**spec: Any) -> ScenarioPlan:
    return compile_plan(
        parse_spec({"gas_per_sec": "1M", "duration": "2s", "warmup": 0, **spec}), name="roles", seed=77
    )


def assignment_for(plan: ScenarioPlan, **fields: Any) -> EdgeAssignment:
    return EdgeAssignment(
        edge_id="e0",
        plan=plan.to_dict(),
        rpc_url="http://127.0.0.1:1",
        ws_url=None,
        chain_id=CHAIN_ID,
        funder_key="0x" + "01" * 32,
        sender_count=plan.senders,
        **fields,
    )


# ----------------------------------------------------------------------------------------------
# preparation: plain data across the process boundary


def test_a_preparation_round_trips_as_plain_data() -> None:
    data = PREPARATION.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert RunPreparation.from_dict(data) == PREPARATION


def test_an_assignment_carries_its_preparation_as_plain_data() -> None:
    assignment = assignment_for(plan_for(), preparation=PREPARATION)
    data = assignment.to_dict()
    assert data["preparation"] == PREPARATION.to_dict()
    wire = json.loads(json.dumps(data))  # what crosses a channel: numbers, strings, lists, dicts
    again = EdgeAssignment.from_dict(wire)
    assert again == assignment
    assert isinstance(again.preparation, RunPreparation)


def test_an_assignment_without_a_preparation_round_trips() -> None:
    assignment = assignment_for(plan_for())
    again = EdgeAssignment.from_dict(json.loads(json.dumps(assignment.to_dict())))
    assert again == assignment
    assert again.preparation is None


def test_the_schedule_is_priced_by_the_gas_model_it_was_given() -> None:
    plan = plan_for()
    senders = derive_senders(plan.seed, 0, 4)
    _, templates = make_templates(plan, CHAIN_ID, senders)
    model = GasModel.nominal(templates)
    schedule = make_schedule(plan, assignment_for(plan), model)
    before = schedule.expected_transactions()
    model.set(0, model.values[0] * 2)
    assert schedule.expected_transactions() == pytest.approx(before / 2)


# ----------------------------------------------------------------------------------------------
# the gas model


def test_the_gas_model_versions_every_change_and_settles_on_receipts() -> None:
    model = GasModel([21_000, 50_000])
    assert model.version == 0
    model.set(1, 48_000.0)
    model.replace([22_000.0, 47_000.0])
    assert model.version == 2
    assert model.values == [22_000.0, 47_000.0]
    model.observed[1] = [90_000.0, 2.0]
    assert model.settle() == [22_000.0, 45_000.0]  # a template without receipts keeps its value


# ----------------------------------------------------------------------------------------------
# submission


class SendRpc:
    """Answers eth_sendRawTransaction batches as scripted; answers pending counts with ``pending``."""

    def __init__(self, answers: list[Any], pending: int = 0) -> None:
        self.answers = answers
        self.pending = pending
        self.bodies: list[list[dict[str, Any]]] = []
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def post_batch(self, body: bytes, what: str) -> Any:
        requests = json.loads(body)
        self.bodies.append(requests)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer(requests) if callable(answer) else answer

    async def call(self, method: str, *params: Any) -> Any:
        self.calls.append((method, params))
        return hex(self.pending)


def submitter_for(rpc: SendRpc, senders: int = 2) -> tuple[Submitter, Counter[str], list[str], Progress]:
    plan = plan_for()
    accounts = derive_senders(plan.seed, 0, senders)
    _, templates = make_templates(plan, CHAIN_ID, accounts)
    model = GasModel.nominal(templates)
    errors: Counter[str] = Counter()
    notes: list[str] = []
    progress = Progress()
    submitter = Submitter(
        rpc,  # type: ignore[arg-type]
        log=TxLog(),
        senders=accounts,
        start_nonces=[5] * senders,
        chain_id=CHAIN_ID,
        templates=templates,
        gas_model=model,
        schedule=make_schedule(plan, assignment_for(plan), model),
        rng=random.Random(1),
        plan=plan,
        connections=2,
        max_fee_per_gas=PREPARATION.max_fee_per_gas,
        max_priority_fee_per_gas=PREPARATION.max_priority_fee_per_gas,
        progress=progress,
        errors=errors,
        notes=notes,
    )
    return submitter, errors, notes, progress


def ok(requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"jsonrpc": "2.0", "id": r["id"], "result": "0x" + "ab" * 32} for r in requests]


def refuse(message: str, code: int = -32000) -> dict[str, Any]:
    return {"code": code, "message": message}


def test_signed_rows_are_logged_in_order_and_sent_as_one_batch() -> None:
    rpc = SendRpc([ok])
    submitter, errors, _, progress = submitter_for(rpc)

    async def scenario() -> None:
        submitter.next_arrival = submitter.schedule.next()
        submitter._sign_ahead(10**18, 6)
        await submitter._submit_batch(submitter._take_unsent(6))

    asyncio.run(scenario())
    log = submitter.log
    assert len(log) == 6
    assert list(log.sender) == [0, 1, 0, 1, 0, 1]
    assert list(log.nonce) == [5, 5, 6, 6, 7, 7]
    assert [request["id"] for request in rpc.bodies[0]] == [0, 1, 2, 3, 4, 5]
    assert {request["method"] for request in rpc.bodies[0]} == {"eth_sendRawTransaction"}
    assert all(state == STATUS_ACCEPTED for state in log.state)
    assert submitter.accepted_outstanding == 6
    assert (progress.sent, progress.accepted, progress.rejected) == (6, 6, 0)
    assert not errors
    assert sorted(submitter.by_hash.values()) == list(range(6))


def test_rejections_are_counted_by_kind_and_give_their_nonces_back() -> None:
    def mixed(requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        answers = ok(requests)
        answers[1] = {"jsonrpc": "2.0", "id": requests[1]["id"], "error": refuse("txpool is full")}
        answers[2] = {"jsonrpc": "2.0", "id": requests[2]["id"], "error": refuse("already known")}
        answers[3] = {"jsonrpc": "2.0", "id": requests[3]["id"], "error": refuse("txpool is full")}
        return answers

    rpc = SendRpc([mixed])
    submitter, errors, _, progress = submitter_for(rpc)

    async def scenario() -> None:
        submitter.next_arrival = submitter.schedule.next()
        submitter._sign_ahead(10**18, 4)
        await submitter._submit_batch(submitter._take_unsent(4))

    asyncio.run(scenario())
    log = submitter.log
    assert [log.state[row] for row in range(4)] == [
        STATUS_ACCEPTED,
        STATUS_REJECTED,
        STATUS_ACCEPTED,  # "already known": the node has it
        STATUS_REJECTED,
    ]
    assert errors == Counter({"txpool_full": 2})
    assert (progress.accepted, progress.rejected, progress.errors) == (2, 2, 2)
    assert submitter.accepted_outstanding == 2
    # Rows 1 and 3 were sender 1's nonces 5 and 6: both come back, lowest first.
    assert submitter.nonces.take(1) == 5
    assert submitter.nonces.take(1) == 6


def test_a_refused_nonce_resyncs_the_sender_once_and_counts_a_failed_resync() -> None:
    def too_low(requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"jsonrpc": "2.0", "id": r["id"], "error": refuse("nonce too low")} for r in requests]

    rpc = SendRpc([too_low], pending=9)
    submitter, errors, notes, _ = submitter_for(rpc, senders=1)

    async def scenario() -> None:
        submitter.next_arrival = submitter.schedule.next()
        submitter._sign_ahead(10**18, 2)
        await submitter._submit_batch(submitter._take_unsent(2))
        await asyncio.gather(*list(submitter.tasks))

    asyncio.run(scenario())
    assert errors == Counter({"nonce_too_low": 2})
    assert [method for method, _ in rpc.calls] == ["eth_getTransactionCount"]
    assert submitter.nonces.take(0) == 9
    assert submitter.nonces.foreign[0] == {5, 6, 7, 8}

    async def failing_call(method: str, *params: Any) -> Any:
        raise TransportError("connection reset")

    rpc.call = failing_call  # type: ignore[method-assign]

    async def resync_fails() -> None:
        await submitter._resync(0)

    asyncio.run(resync_fails())
    assert errors["nonce_resync"] == 1
    assert notes == ["nonce resync for sender 0 failed: connection reset"]


def test_a_transport_failure_rejects_the_whole_batch() -> None:
    rpc = SendRpc([TransportError("timed out")])
    submitter, errors, _, _ = submitter_for(rpc)

    async def scenario() -> None:
        submitter.next_arrival = submitter.schedule.next()
        submitter._sign_ahead(10**18, 3)
        await submitter._submit_batch(submitter._take_unsent(3))

    asyncio.run(scenario())
    assert errors == Counter({"transport": 3})
    assert all(state == STATUS_REJECTED for state in submitter.log.state)


def test_holes_left_by_rejections_are_filled_with_self_transfers() -> None:
    def reject_first(requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        answers = ok(requests)
        answers[0] = {"jsonrpc": "2.0", "id": requests[0]["id"], "error": refuse("txpool is full")}
        return answers

    rpc = SendRpc([reject_first, ok])
    submitter, _, notes, _ = submitter_for(rpc)

    async def scenario() -> None:
        submitter.next_arrival = submitter.schedule.next()
        submitter._sign_ahead(10**18, 4)
        await submitter._submit_batch(submitter._take_unsent(4))
        await submitter._fill_holes()

    asyncio.run(scenario())
    log = submitter.log
    assert len(log) == 5
    assert (log.template[4], log.sender[4], log.nonce[4]) == (GAP_FILLER, 0, 5)
    assert log.state[4] == STATUS_ACCEPTED
    assert notes == ["filled 1 nonce hole(s) left by rejected transactions"]
    assert not list(submitter.nonces.holes(0))


def test_rows_signed_but_never_sent_are_dropped_and_their_nonces_unwound() -> None:
    submitter, _, _, _ = submitter_for(SendRpc([]))
    submitter.next_arrival = submitter.schedule.next()
    submitter._sign_ahead(10**18, 4)
    dropped = [submitter.log.hash_bytes(row) for row in range(4)]
    submitter._drop_unsent()
    assert len(submitter.log) == 0
    assert not any(tx_hash in submitter.by_hash for tx_hash in dropped)
    assert submitter.nonces.take(0) == 5
    assert submitter.nonces.take(1) == 5


# ----------------------------------------------------------------------------------------------
# inclusion and receipts


def logged(rows: int, states: Sequence[int] | None = None) -> tuple[TxLog, dict[bytes, int], list[str]]:
    log = TxLog()
    hashes = [bytes([row + 1]) * 32 for row in range(rows)]
    log.extend([0] * rows, list(range(rows)), [0] * rows, [21_000] * rows, [1_000] * rows, b"".join(hashes))
    for row, state in enumerate(states or [STATUS_ACCEPTED] * rows):
        log.state[row] = state
    return log, {tx_hash: row for row, tx_hash in enumerate(hashes)}, ["0x" + h.hex() for h in hashes]


class ReceiptRpc:
    """Answers each call of a batch with ``answer(method, params)`` (an exception instance stands for
    that call's error), after ``delay`` seconds; ``fail`` fails the whole batch. Records the calls."""

    def __init__(self, answer: Any = None, *, delay: float = 0.0, fail: Exception | None = None) -> None:
        self.answer = answer if callable(answer) else (lambda method, params: answer)
        self.delay = delay
        self.fail = fail
        self.calls: list[list[tuple[str, Sequence[Any]]]] = []

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        self.calls.append(list(calls))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return [self.answer(method, params) for method, params in calls]

    def methods(self) -> list[str]:
        return [method for batch in self.calls for method, _ in batch]


def receipt(tx_hash: str, status: int = 1, gas: int = 21_000, price: int = 3) -> dict[str, str]:
    return {
        "transactionHash": tx_hash,
        "status": hex(status),
        "gasUsed": hex(gas),
        "effectiveGasPrice": hex(price),
    }


def tracker_for(
    log: TxLog, by_hash: dict[bytes, int], rpc: Any = None, *, fail_fast: bool = False, stride: int = 1
) -> tuple[InclusionTracker, list[int], list[str], Counter[str], list[str]]:
    settled: list[int] = []
    stops: list[str] = []
    errors: Counter[str] = Counter()
    notes: list[str] = []
    tracker = InclusionTracker(
        rpc,
        log=log,
        by_hash=by_hash,
        gas_model=GasModel([30_000.0]),
        expected_status=[1],
        receipt_stride=stride,
        fail_fast=fail_fast,
        follow_chain=True,
        progress=Progress(),
        latencies=deque(maxlen=10),
        errors=errors,
        notes=notes,
        on_included=settled.append,
        stop_run=lambda reason, kind: stops.append((reason, kind)),
    )
    return tracker, settled, stops, errors, notes


def block(number: int, observed_ns: int = 5_000) -> BlockRecord:
    return BlockRecord(
        number=number,
        hash=f"0x{number:064x}",
        parent_hash=f"0x{number - 1:064x}",
        timestamp=number,
        gas_used=0,
        gas_limit=30_000_000,
        tx_count=0,
        observed_ns=observed_ns,
    )


def test_a_block_includes_its_rows_and_settles_the_accepted_ones_once() -> None:
    log, by_hash, texts = logged(3, [STATUS_ACCEPTED, 1, STATUS_ACCEPTED])  # row 1: sent, not yet answered
    tracker, settled, stops, _, _ = tracker_for(log, by_hash, stride=2)
    tracker.on_block(block(7), [texts[0], "0x" + "ff" * 32, texts[1], texts[2]])
    assert settled == [2]
    assert [log.state[row] for row in range(3)] == [STATUS_INCLUDED] * 3
    assert list(log.block_number) == [7, 7, 7]
    assert [(entry.number, entry.block_hash, entry.rows) for entry in tracker.wanted] == [
        (7, block(7).hash, [0, 2])
    ]
    assert (tracker.receipts_expected, tracker.receipts_skipped) == (2, 1)
    assert tracker.progress.included == 3
    assert list(tracker.latencies) == [4e-6] * 3
    assert [block for _, block in tracker.chain_blocks] == [
        (7, f"0x{7:064x}", [texts[0], "0x" + "ff" * 32, texts[1], texts[2]])
    ]
    tracker.on_block(block(8), [])
    assert settled == [2]  # a block with none of ours settles nothing
    assert not stops


def test_a_second_inclusion_is_a_duplicate_and_stops_a_fail_fast_run() -> None:
    log, by_hash, texts = logged(1)
    tracker, settled, stops, _, _ = tracker_for(log, by_hash, fail_fast=True)
    tracker.on_block(block(1), texts)
    tracker.on_block(block(2), texts)
    assert tracker.duplicates == texts
    assert settled == [1]
    assert log.block_number[0] == 1
    assert stops == [(f"fail-fast: no_duplicate_inclusion broke on {texts[0]}", "fail-fast")]


def test_receipts_correct_the_gas_model_and_a_null_is_asked_again_not_counted_missing() -> None:
    log, by_hash, texts = logged(3)
    answers = {texts[0]: receipt(texts[0], 1, 21_000, 3), texts[2]: receipt(texts[2], 0, 25_000, 2)}
    rpc = ReceiptRpc(lambda method, params: answers.get(params[0]))
    tracker, _, stops, errors, _ = tracker_for(log, by_hash, rpc, fail_fast=True)
    tracker.receipts_via = TX_RECEIPT
    tracker.on_block(block(1), texts)
    assert asyncio.run(tracker.fetch_receipts(10)) == 3
    assert rpc.methods() == [TX_RECEIPT] * 3
    assert not errors  # a null is not missing yet: the node may not have indexed it
    assert tracker.receipts_checked == 2 and tracker.receipts_retried == 1
    assert [entry.rows for entry in tracker.wanted] == [[1]]
    assert tracker.wanted[0].not_before > 0 and tracker.wanted[0].asks == 1
    assert tracker.fees_paid == 21_000 * 3 + 25_000 * 2
    assert (log.gas_used[0], log.gas_used[1], log.gas_used[2]) == (21_000, NOT_YET, 25_000)
    assert tracker.gas_model.values == [23_000.0]
    assert tracker.gas_model.version == 2
    assert stops == [(f"fail-fast: receipt_status broke on {texts[2]}", "fail-fast")]


def test_a_receipt_naming_another_block_than_the_one_seen_is_evidence_and_stops_a_fail_fast_run() -> None:
    """Issue #15: the edge read only status and gas, so a receipt pointing at another block passed."""
    log, by_hash, texts = logged(4)
    seen = block(9)

    def answer(method: str, params: Sequence[Any]) -> Any:
        tx = params[0]
        placed = {"blockNumber": hex(9), "blockHash": seen.hash}
        if tx == texts[1]:
            placed = {"blockNumber": hex(10), "blockHash": seen.hash}
        elif tx == texts[2]:
            placed = {"blockNumber": hex(9), "blockHash": "0x" + "ab" * 32}
        elif tx == texts[3]:
            placed = {}  # a node that leaves the fields out is not judged on them
        return {**receipt(tx), **placed}

    tracker, _, stops, _, _ = tracker_for(log, by_hash, ReceiptRpc(answer), fail_fast=True)
    tracker.receipts_via = TX_RECEIPT
    tracker.on_block(seen, texts)
    assert asyncio.run(tracker.fetch_receipts(10)) == 4
    assert tracker.receipts_checked == 4 and tracker.receipt_block_mismatches == 2
    assert tracker.receipt_block_items == [
        f"{texts[1]} receipt: block 0xa {seen.hash}; seen in: block 0x9 {seen.hash}",
        f"{texts[2]} receipt: block 0x9 0x{'ab' * 32}; seen in: block 0x9 {seen.hash}",
    ]
    assert stops == [
        (f"fail-fast: receipt_block broke on {texts[1]}", "fail-fast"),
        (f"fail-fast: receipt_block broke on {texts[2]}", "fail-fast"),
    ]


def test_a_receipt_priced_below_its_blocks_base_fee_is_counted_and_repriced() -> None:
    """EIP-1559 makes the base fee the floor of every price: a receipt below it under-reports the
    fee; the balance check then prices it at base fee + tip, and the first one is named in a note."""
    log, by_hash, texts = logged(2)
    answers = {texts[0]: receipt(texts[0], 1, 21_000, 0), texts[1]: receipt(texts[1], 1, 21_000, 110)}
    tracker, _, _, _, notes = tracker_for(log, by_hash, ReceiptRpc(lambda method, params: answers[params[0]]))
    tracker.tip = 10
    tracker.receipts_via = TX_RECEIPT
    tracker.on_block(dataclasses.replace(block(3), base_fee=100), texts)
    assert asyncio.run(tracker.fetch_receipts(10)) == 2
    assert tracker.receipts_below_base_fee == 1
    assert tracker.fees_paid == 21_000 * 110
    assert tracker.fees_at_base_fee == 21_000 * 110 + 21_000 * (100 + 10)
    assert notes == [
        f"fees: the node's receipts under-report fees: {texts[0]} in block #3 reports effectiveGasPrice 0 wei, "
        "below that block's base fee 100 wei (EIP-1559 charges base fee + min(tip, fee cap - base fee))"
    ]


def test_receipts_are_fetched_per_block_and_an_unindexed_block_is_asked_again() -> None:
    log, by_hash, texts = logged(4)
    asks: Counter[str] = Counter()

    def answer(method: str, params: Sequence[Any]) -> Any:
        asks[params[0]] += 1
        if params[0] == block(1).hash:
            return [receipt(texts[0]), receipt("0x" + "ee" * 32), receipt(texts[1])]
        return [] if asks[params[0]] == 1 else [receipt(texts[2]), receipt(texts[3])]  # [] = not indexed yet

    rpc = ReceiptRpc(answer)
    tracker, _, _, errors, notes = tracker_for(log, by_hash, rpc)
    tracker.on_block(block(1), texts[:2])
    tracker.on_block(block(2), texts[2:])

    async def drain() -> None:
        await tracker.drain_receipts(10.0, lambda: False)

    asyncio.run(drain())
    assert set(rpc.methods()) == {BLOCK_RECEIPTS}
    # One batch for both blocks; block 2 again alone once its retry delay passed.
    assert rpc.calls == [
        [(BLOCK_RECEIPTS, [block(1).hash]), (BLOCK_RECEIPTS, [block(2).hash])],
        [(BLOCK_RECEIPTS, [block(2).hash])],
    ]
    assert asks[block(2).hash] == 2
    assert tracker.coverage() == ReceiptCoverage(expected=4, checked=4, missing=0, abandoned=0)
    assert list(log.receipt_status) == [1, 1, 1, 1]
    assert not errors
    assert f"receipts: checked 4 of 4 expected, with {BLOCK_RECEIPTS}" in notes


def test_a_sparse_sample_of_a_big_block_is_fetched_per_transaction_in_the_same_batch() -> None:
    log, by_hash, texts = logged(3)
    rpc = ReceiptRpc(
        lambda method, params: (
            [receipt(texts[0]), receipt(texts[1])] if method == BLOCK_RECEIPTS else receipt(params[0])
        )
    )
    tracker, _, _, _, notes = tracker_for(log, by_hash, rpc)
    big = dataclasses.replace(block(2), tx_count=SMALL_BLOCK + 1)  # one wanted receipt among 65
    tracker.on_block(dataclasses.replace(block(1), tx_count=2), texts[:2])
    tracker.on_block(big, texts[2:])
    assert [entry.whole for entry in tracker.wanted] == [True, False]
    assert asyncio.run(tracker.drain_receipts(10.0, lambda: False)).checked == 3
    assert rpc.calls == [[(BLOCK_RECEIPTS, [block(1).hash]), (TX_RECEIPT, [texts[2]])]]
    assert tracker.served == Counter({BLOCK_RECEIPTS: 2, TX_RECEIPT: 1})
    assert tracker.methods_used == f"{BLOCK_RECEIPTS} + {TX_RECEIPT}"
    assert notes[-1] == f"receipts: checked 3 of 3 expected, with {BLOCK_RECEIPTS} + {TX_RECEIPT}"


def test_a_block_whose_receipts_keep_coming_back_empty_is_asked_per_transaction() -> None:
    log, by_hash, texts = logged(2)
    rpc = ReceiptRpc(lambda method, params: [] if method == BLOCK_RECEIPTS else receipt(params[0]))
    tracker, _, _, _, _ = tracker_for(log, by_hash, rpc)
    tracker.on_block(block(1), texts)

    async def until_switched() -> None:
        for _ in range(WHOLE_BLOCK_ASKS):
            tracker.wanted[0].not_before = 0.0  # skip the backoff
            await tracker.fetch_receipts(10)
        assert not tracker.wanted[0].whole
        tracker.wanted[0].not_before = 0.0
        await tracker.fetch_receipts(10)

    asyncio.run(until_switched())
    assert rpc.methods() == [BLOCK_RECEIPTS] * WHOLE_BLOCK_ASKS + [TX_RECEIPT] * 2
    assert tracker.coverage() == ReceiptCoverage(expected=2, checked=2)
    assert tracker.receipts_via == BLOCK_RECEIPTS  # other blocks still go whole


def test_a_refused_eth_getblockreceipts_falls_back_to_per_transaction_receipts_and_says_so() -> None:
    log, by_hash, texts = logged(2)

    def answer(method: str, params: Sequence[Any]) -> Any:
        if method == BLOCK_RECEIPTS:
            return RpcError(-32601, "the method eth_getBlockReceipts does not exist/is not available")
        return receipt(params[0])

    rpc = ReceiptRpc(answer)
    tracker, _, _, errors, notes = tracker_for(log, by_hash, rpc)
    tracker.on_block(block(1), texts)
    coverage = asyncio.run(tracker.drain_receipts(10.0, lambda: False))
    assert coverage == ReceiptCoverage(expected=2, checked=2)
    assert rpc.methods() == [BLOCK_RECEIPTS, TX_RECEIPT, TX_RECEIPT]
    assert tracker.receipts_via == TX_RECEIPT
    assert notes[0] == (
        f"receipts: {BLOCK_RECEIPTS} refused (JSON-RPC error -32601: the method eth_getBlockReceipts does "
        f"not exist/is not available); fetched per transaction with {TX_RECEIPT}"
    )
    assert not errors


def test_an_answer_of_another_shape_also_falls_back() -> None:
    log, by_hash, texts = logged(1)
    rpc = ReceiptRpc(
        lambda method, params: {"receipts": []} if method == BLOCK_RECEIPTS else receipt(params[0])
    )
    tracker, _, _, _, notes = tracker_for(log, by_hash, rpc)
    tracker.on_block(block(1), texts)
    assert asyncio.run(tracker.drain_receipts(10.0, lambda: False)).checked == 1
    assert tracker.receipts_via == TX_RECEIPT
    assert notes[0].startswith(f"receipts: {BLOCK_RECEIPTS} answered {{'receipts': []}}")


def test_block_receipt_answers_are_parsed_by_lowercase_hash() -> None:
    one = receipt("0xAB" + "00" * 31)
    assert parse_block_receipts([one]) == {"0xab" + "00" * 31: one}
    assert parse_block_receipts(None) == {} and parse_block_receipts([]) == {}
    assert parse_block_receipts({"receipts": []}) is None
    assert parse_block_receipts([{"status": "0x1"}]) is None
    assert parse_block_receipts(["0x1"]) is None


def test_the_retry_delay_doubles_up_to_its_cap() -> None:
    delays = [retry_delay(asks) for asks in range(1, 9)]
    assert delays[:3] == [RETRY_FIRST, 2 * RETRY_FIRST, 4 * RETRY_FIRST]
    assert delays == sorted(delays) and max(delays) == RETRY_CAP


def test_a_failed_receipt_fetch_is_counted_and_retried_later() -> None:
    log, by_hash, texts = logged(2)
    tracker, _, _, errors, notes = tracker_for(log, by_hash, ReceiptRpc(fail=TransportError("reset")))
    tracker.on_block(block(1), texts)

    async def fetch_twice() -> None:
        await tracker.fetch_receipts(10)
        await tracker.fetch_receipts(10)

    asyncio.run(fetch_twice())
    assert errors == Counter({"receipt_fetch": 2})
    assert notes == ["receipt fetch failed: reset"] * 2
    assert [entry.rows for entry in tracker.wanted] == [[0, 1]]
    assert tracker.receipts_retried == 0  # a transport failure is not the node saying "not yet"


def test_receipts_the_node_never_serves_are_missing_at_the_deadline_and_the_counts_add_up() -> None:
    log, by_hash, texts = logged(3)
    rpc = ReceiptRpc(lambda method, params: [receipt(texts[0])])
    tracker, _, _, errors, notes = tracker_for(log, by_hash, rpc)
    tracker.on_block(block(1), texts)
    coverage = asyncio.run(tracker.drain_receipts(1.0, lambda: False))
    assert coverage == ReceiptCoverage(expected=3, checked=1, missing=2, abandoned=0)
    assert len(rpc.calls) >= 3  # asked again with backoff until the deadline
    assert errors["receipt_missing"] == 2
    assert not tracker.wanted
    assert any(note.startswith("receipts: 2 never obtained within the drain's 1 s") for note in notes)


def test_draining_receipts_abandons_the_rest_when_the_run_was_stopped() -> None:
    log, by_hash, texts = logged(2)
    tracker, _, _, errors, _ = tracker_for(log, by_hash, ReceiptRpc([]))
    tracker.on_block(block(1), texts)
    coverage = asyncio.run(tracker.drain_receipts(30.0, lambda: True))
    assert not tracker.wanted
    assert coverage == ReceiptCoverage(expected=2, checked=0, missing=0, abandoned=2)
    assert tracker.receipts_skipped == 0 and not errors


def test_the_drain_awaits_the_loops_batch_in_flight_instead_of_losing_it() -> None:
    """The race of issue 13: the loop has every wanted row in flight when the run ends."""
    log, by_hash, texts = logged(RECEIPT_BATCH_THRESHOLD)
    rpc = ReceiptRpc(lambda method, params: [receipt(text) for text in texts], delay=0.5)
    tracker, _, _, _, _ = tracker_for(log, by_hash, rpc)

    async def scenario() -> ReceiptCoverage:
        stop = asyncio.Event()
        loop = asyncio.create_task(tracker.receipt_loop(stop))
        tracker.on_block(block(1), texts)
        for _ in range(100):  # until the loop took the batch: the queue is then empty
            await asyncio.sleep(0.01)
            if rpc.calls:
                break
        assert rpc.calls and not tracker.wanted
        stop.set()
        return await tracker.drain_receipts(10.0, lambda: False, loop=loop)

    assert asyncio.run(scenario()) == ReceiptCoverage(
        expected=RECEIPT_BATCH_THRESHOLD, checked=RECEIPT_BATCH_THRESHOLD
    )
    assert len(rpc.calls) == 1


def test_a_batch_cancelled_in_flight_puts_its_rows_back() -> None:
    log, by_hash, texts = logged(3)
    rpc = ReceiptRpc(lambda method, params: [receipt(text) for text in texts], delay=5.0)
    tracker, _, _, errors, _ = tracker_for(log, by_hash, rpc)
    tracker.on_block(block(1), texts)

    async def scenario() -> ReceiptCoverage:
        stop = asyncio.Event()
        loop = asyncio.create_task(tracker.receipt_loop(stop))
        await asyncio.sleep(RECEIPT_MAX_WAIT + 0.5)  # below the threshold: fetched once it waited long enough
        assert rpc.calls and not tracker.wanted
        stop.set()
        return await tracker.drain_receipts(0.3, lambda: False, loop=loop)

    assert asyncio.run(scenario()) == ReceiptCoverage(expected=3, checked=0, missing=3)
    assert errors["receipt_missing"] == 3


# ----------------------------------------------------------------------------------------------
# evidence


class ProbeRpc:
    def __init__(self, answers: list[Any] | Exception, pool: dict[str, Any] | None = None) -> None:
        self.answers = answers
        self.pool = pool
        self.calls: list[tuple[str, Sequence[Any]]] = []

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        self.calls = list(calls)
        if isinstance(self.answers, Exception):
            raise self.answers
        return self.answers

    async def call(self, method: str, *params: Any) -> Any:
        self.calls.append((method, params))
        if self.pool is None:
            raise RpcError(-32601, f"the method {method} does not exist/is not available")
        return self.pool


def test_the_lost_probe_asks_about_accepted_rows_only_and_diagnoses_each() -> None:
    log, _, texts = logged(3, [STATUS_ACCEPTED, STATUS_INCLUDED, STATUS_ACCEPTED])
    log.nonce[2] = 4
    addresses = ["0xaa", "0xbb", "0xcc"]
    rpc = ProbeRpc([None, {"hash": texts[2], "blockNumber": None}, "0x0", RpcError(-32000, "busy")])
    probe = asyncio.run(probe_lost(rpc, log, addresses, []))  # type: ignore[arg-type]
    assert [method for method, _ in rpc.calls] == ["eth_getTransactionByHash"] * 2 + [
        "eth_getTransactionCount"
    ] * 2 + ["txpool_content", "txpool_inspect"]
    assert probe[texts[0]].startswith(
        "sender 0xaa nonce 0: not found by eth_getTransactionByHash; the node has no txpool_content to "
        "confirm a drop (txpool_content: JSON-RPC error -32601"
    )
    assert probe[texts[2]] == (
        "sender 0xcc nonce 4: still in the node's pool (eth_getTransactionByHash), never included; "
        "the sender's on-chain nonce is unknown"
    )


def test_the_lost_probe_reads_the_pool_and_names_a_stopped_chain() -> None:
    log, _, texts = logged(2, [STATUS_ACCEPTED, STATUS_ACCEPTED])
    addresses = ["0xAA", "0xBB"]
    pool = {"pending": {"0xaa": {"0": {"hash": texts[0]}}}}
    rpc = ProbeRpc([None, None, "0x0", "0x0"], pool)
    stall = "no new block for 11.0 s (head stuck at #7)"
    probe = asyncio.run(probe_lost(rpc, log, addresses, [], stall=stall))  # type: ignore[arg-type]
    assert [method for method, _ in rpc.calls][-1] == "txpool_content"
    assert probe[texts[0]].startswith(
        f"sender 0xAA nonce 0: the chain stopped producing blocks ({stall}); in the node's pool (pending)"
    )
    assert "dropped" not in probe[texts[1]]
    assert probe[texts[1]].startswith(
        f"sender 0xBB nonce 0: the chain stopped producing blocks ({stall}); not found"
    )
    moving = asyncio.run(probe_lost(ProbeRpc([None, None, "0x0", "0x0"], pool), log, addresses, []))  # type: ignore[arg-type]
    assert moving[texts[1]].startswith("sender 0xBB nonce 0: dropped: not found by eth_getTransactionByHash")


def test_the_lost_probe_notes_a_node_it_cannot_ask() -> None:
    log, _, _ = logged(1)
    notes: list[str] = []
    probe = asyncio.run(probe_lost(ProbeRpc(TransportError("refused")), log, ["0xaa"], notes))  # type: ignore[arg-type]
    assert probe == {}
    assert notes == ["could not ask the node about transactions never seen in a block: refused"]


class BalanceRpc:
    """Answers each batch with the next round, and ``eth_blockNumber`` with the next of ``heads``."""

    def __init__(self, *rounds: list[Any], heads: Sequence[int] = (4,)) -> None:
        self.rounds = list(rounds)
        self.heads = list(heads)
        self.blocks: list[str] = []

    async def call(self, method: str, *params: Any) -> Any:
        assert method == "eth_blockNumber"
        return hex(self.heads.pop(0) if len(self.heads) > 1 else self.heads[0])

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        self.blocks.append(calls[0][1][1])
        return self.rounds.pop(0)


def test_the_balance_check_states_what_the_senders_lost_moved_and_paid() -> None:
    log, _, _ = logged(3, [STATUS_INCLUDED] * 3)
    log.template[2] = GAP_FILLER
    for row in range(3):
        log.included_ns[row] = 10
        log.gas_used[row] = 21_000
    rpc = BalanceRpc([hex(10**18), hex(10**18), "0x2", "0x0"], [hex(10**18 - 500), hex(10**18 - 400)])
    check = BalanceCheck(rpc, ["0xaa", "0xbb"], start_block=4, start_nonces=[2, 0])  # type: ignore[arg-type]

    async def scenario() -> dict[str, int] | None:
        await check.record_before()
        return await check.facts(digest_of(log), 9, fees_paid=898, notes=[])

    facts = asyncio.run(scenario())
    assert rpc.blocks == ["0x4", "0x9"]  # balances and nonces at the start block, then the last block
    assert facts == {
        "block_before": 4,
        "block_after": 9,
        "senders_lost": 900,
        "value_moved": 2,
        "fees_paid": 898,
    }


def test_the_balance_check_falls_back_to_the_head_on_a_node_without_past_state() -> None:
    """A node that keeps no past state answers at the head block only: a side it refuses at the
    run's block is read at the head (asking again when a block lands in between), which shows the
    same balances before the run and after it once nothing it accepted is unaccounted for.
    Unsettled, the after side is the last block's or nothing, said in the notes."""
    log, _, _ = logged(1, [STATUS_INCLUDED])
    log.included_ns[0] = 10
    log.gas_used[0] = 21_000
    gone = RpcError(-32000, "BlockOutOfRange: not the head")
    rpc = BalanceRpc(
        [gone, gone],  # the start block is no longer the head
        [gone, gone],  # block 7 landed between eth_blockNumber and the read at 6
        [hex(10**18), "0x0"],
        [gone],  # the last block is no longer the head either
        [hex(10**18 - 21_001)],
        heads=[6, 7, 15],
    )
    check = BalanceCheck(rpc, ["0xaa"], start_block=4, start_nonces=[0])  # type: ignore[arg-type]

    async def settled() -> dict[str, int] | None:
        await check.record_before()
        await check.record_after(12, settled=True)
        return await check.facts(digest_of(log), 12, fees_paid=21_000, notes=[])

    assert asyncio.run(settled()) == {
        "block_before": 7,
        "block_after": 15,
        "senders_lost": 21_001,
        "value_moved": 1,
        "fees_paid": 21_000,
    }
    assert rpc.blocks == ["0x4", "0x6", "0x7", "0xc", "0xf"]

    unsettled = BalanceCheck(BalanceRpc([gone]), ["0xaa"], start_block=4, start_nonces=[0])  # type: ignore[arg-type]
    notes: list[str] = []

    async def outstanding() -> dict[str, int] | None:
        await unsettled.record_after(12, settled=False)
        return await unsettled.facts(digest_of(log), 12, fees_paid=21_000, notes=notes)

    assert asyncio.run(outstanding()) is None
    assert notes == ["balance check skipped: eth_getBalance at block 12 failed for a sender"]


def test_the_balance_check_needs_every_fee_and_an_answering_node() -> None:
    log, _, _ = logged(1, [STATUS_INCLUDED])
    log.included_ns[0] = 10
    check = BalanceCheck(BalanceRpc(), ["0xaa"], start_block=1, start_nonces=[0])  # type: ignore[arg-type]
    assert (
        asyncio.run(check.facts(digest_of(log), 2, fees_paid=0, notes=[])) is None
    )  # its receipt is missing
    log.gas_used[0] = 21_000
    failing = BalanceCheck(
        BalanceRpc([RpcError(-32000, "header not found")]),
        ["0xaa"],
        start_block=1,
        start_nonces=[0],  # type: ignore[arg-type]
    )
    notes: list[str] = []
    assert asyncio.run(failing.facts(digest_of(log), 2, fees_paid=0, notes=notes)) is None
    assert notes == ["balance check skipped: eth_getBalance at block 2 failed for a sender"]
    refusing = BalanceCheck(
        BalanceRpc(*[[RpcError(-32601, "method not found")]] * (1 + HEAD_READ_ATTEMPTS)),
        ["0xaa"],
        start_block=1,
        start_nonces=[0],  # type: ignore[arg-type]
    )
    with pytest.raises(TransportError, match="at the head block failed 20 times .last: .*method not found"):
        asyncio.run(refusing.record_before())


def test_the_balance_check_is_skipped_when_older_transactions_were_still_pending() -> None:
    """A sender whose pending nonce is ahead of its mined one at the start block has older
    transactions that may spend inside the run's window: the check says so instead of failing."""
    log, _, _ = logged(1, [STATUS_INCLUDED])
    log.included_ns[0] = 10
    log.gas_used[0] = 21_000
    rpc = BalanceRpc([hex(10**18), hex(10**18), "0x5", "0x1"])
    check = BalanceCheck(rpc, ["0xaa", "0xbb"], start_block=4, start_nonces=[7, 1])  # type: ignore[arg-type]

    async def scenario() -> dict[str, int] | None:
        await check.record_before()
        return await check.facts(digest_of(log), 9, fees_paid=21_000, notes=[])

    assert asyncio.run(scenario()) is None
    assert check.skipped == (
        "the senders had 2 transaction(s) from before the run still pending at block 4; what those "
        "spend would count against the run"
    )


# ----------------------------------------------------------------------------------------------
# why a run has no balance facts


@pytest.mark.parametrize(
    ("spec", "stop", "coverage", "reason"),
    [
        ({"receipts": "all"}, None, ReceiptCoverage(4, 4), None),
        (
            {"receipts": "all", "workload": {"transfer": 0.5, "erc20": 0.5}},
            None,
            ReceiptCoverage(4, 4),
            "needs a transfer-only workload; this run's: erc20, transfer",
        ),
        (
            {},
            None,
            ReceiptCoverage(4, 4),
            "needs every receipt (receipts='all') for the fees paid; this run sampled receipts=2000",
        ),
        (
            {"receipts": "all"},
            "fail-fast: x",
            ReceiptCoverage(4, 1, abandoned=3),
            "the run stopped early (fail-fast: x)",
        ),
        (
            {"receipts": "all"},
            None,
            ReceiptCoverage(137, 66, missing=71),
            "only 66 of 137 receipts were checked (71 missing, 0 abandoned), so the fees paid are not all known",
        ),
        (
            {"receipts": "all"},
            None,
            ReceiptCoverage(4, 4),
            "the node could not be asked for the senders' balances (see the notes)",
        ),
    ],
)
def test_the_balance_check_says_why_it_was_not_made(
    spec: dict[str, Any], stop: str | None, coverage: ReceiptCoverage, reason: str | None
) -> None:
    checked = reason is None
    assert balance_check_skipped(plan_for(**spec), stop, coverage, checked=checked) == reason


def test_refusals_are_kept_verbatim_with_code_and_first_transaction() -> None:
    ejs = "replacement gas too low, got tip 0, min: 0, got fee 202, min: 374"

    def refused(requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        answers = [{"jsonrpc": "2.0", "id": r["id"], "error": refuse(ejs, -32602)} for r in requests]
        answers[0] = {
            "jsonrpc": "2.0",
            "id": requests[0]["id"],
            "error": refuse("Cannot add tx: pool is full"),
        }
        return answers

    rpc = SendRpc([refused, TransportError("timed out")])
    submitter, errors, _, _ = submitter_for(rpc)

    async def scenario() -> None:
        submitter.next_arrival = submitter.schedule.next()
        submitter._sign_ahead(10**18, 5)
        await submitter._submit_batch(submitter._take_unsent(4))
        await submitter._submit_batch(submitter._take_unsent(1))
        await asyncio.gather(*list(submitter.tasks))

    asyncio.run(scenario())
    assert errors == Counter({"replacement_underpriced": 3, "txpool_full": 1, "transport": 1})
    entries = {entry["kind"]: entry for entry in submitter.rejections.to_list()}
    assert entries["replacement_underpriced"]["message"] == ejs
    assert entries["replacement_underpriced"]["code"] == -32602
    assert entries["replacement_underpriced"]["count"] == 3
    assert entries["replacement_underpriced"]["first_tx"] == submitter.log.tx_hash(1)
    assert entries["replacement_underpriced"]["sender"] == submitter.senders[1].address
    assert entries["txpool_full"]["message"] == "Cannot add tx: pool is full"
    assert entries["transport"]["code"] is None and "timed out" in entries["transport"]["message"]
    # A resync asks with the lowercase address (EthereumJS counts its pool only for that form).
    assert rpc.calls and all(params[0] == params[0].lower() for _, params in rpc.calls)


def six_accepted_with_a_nonce_memory() -> Submitter:
    """A submitter that sent six transactions (nonces 5..7 of two senders), all accepted."""
    rpc = SendRpc([ok])
    submitter, _, _, _ = submitter_for(rpc)
    submitter.sent_nonces, submitter.chain_key = SentNonces(), "chain"

    async def scenario() -> None:
        submitter.next_arrival = submitter.schedule.next()
        submitter._sign_ahead(10**18, 6)
        await submitter._submit_batch(submitter._take_unsent(6))

    asyncio.run(scenario())
    return submitter


def test_what_was_accepted_is_remembered_for_a_rerun() -> None:
    submitter = six_accepted_with_a_nonce_memory()
    log = submitter.log
    log.included_ns[0] = 1  # sender 0's nonce 5 made it into a block
    submitter.remember_sent()
    alice = submitter.sent_nonces.recall("chain", submitter.senders[0].address)
    assert alice is not None and alice.next_nonce == 8
    assert alice.unconfirmed == {6: log.tx_hash(2), 7: log.tx_hash(4)}
    bob = submitter.sent_nonces.recall("chain", submitter.senders[1].address)
    assert bob is not None and bob.next_nonce == 8 and sorted(bob.unconfirmed) == [5, 6, 7]


def test_what_was_accepted_is_remembered_after_the_rows_are_forgotten() -> None:
    submitter = six_accepted_with_a_nonce_memory()
    log = submitter.log
    for row in range(4):
        log.included_ns[row] = 1
    first_hash = log.hash_bytes(0)
    # Rows 0..3 are final: digested (as the edge does), then forgotten.
    digest = digest_of(TxLog())
    digest.add(log, np.arange(4, dtype=np.int64))
    submitter.digested_highest = digest.highest_taken
    included = submitter.forget_before(4)
    assert len(included) == 4 * 32 and included[:32] == first_hash
    assert first_hash not in submitter.by_hash and log.base == 4
    # The rows still held (nonce 7 of each sender) were refused after all: what was taken is known
    # from the digest alone.
    for row in (4, 5):
        log.accepted_ns[log.at(row)] = NOT_YET
    submitter.remember_sent()
    for sender in (0, 1):
        memory = submitter.sent_nonces.recall("chain", submitter.senders[sender].address)
        assert memory is not None and memory.next_nonce == 7 and memory.unconfirmed == {}
