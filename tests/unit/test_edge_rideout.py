"""The submitter riding out a node's bad moments, without a node: retries of the same signed bytes,
unknown outcomes settled by hash, real refusals kept as refusals, and a node that forgot."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import pytest_gashammer.edge.submitter as submitter_module
from pytest_gashammer.chain.retry import RetryPolicy
from pytest_gashammer.chain.rpc import TransportError
from pytest_gashammer.edge.accounts import derive_senders
from pytest_gashammer.edge.gas_model import GasModel
from pytest_gashammer.edge.preparation import make_schedule, make_templates
from pytest_gashammer.edge.runtime import Progress
from pytest_gashammer.edge.submitter import FORGOTTEN, GAP_FILLER, Submitter
from pytest_gashammer.telemetry.records import (
    NOT_YET,
    STATUS_ACCEPTED,
    STATUS_INCLUDED,
    STATUS_REJECTED,
    STATUS_SENT,
    TxLog,
)
from tests.unit.test_edge_roles import CHAIN_ID, PREPARATION, assignment_for, plan_for

FAST = RetryPolicy(attempts=4, first_delay=0.001, max_delay=0.002, budget=5.0)


@pytest.fixture(autouse=True)
def quick_confirm(monkeypatch: pytest.MonkeyPatch) -> None:
    """The watch's second look comes at once here (a real node gets a quarter second)."""
    monkeypatch.setattr(submitter_module, "WATCH_CONFIRM_SECONDS", 0.001)


Answer = Callable[[list[dict[str, Any]]], Any] | Exception


class Node:
    """A scripted node: ``post_batch`` answers from ``sends`` (a function of the requests, or an
    exception to raise), then accepts everything; ``batch`` looks hashes up in ``has`` (a hash the
    node has -> a transaction object) and answers counts from ``mined``; ``down`` makes every
    ``batch``/``call`` fail as a transport error."""

    def __init__(self, sends: list[Answer] | None = None) -> None:
        self.sends = list(sends or [])
        self.bodies: list[list[dict[str, Any]]] = []
        self.has: dict[str, dict[str, Any]] = {}
        self.mined: dict[str, int] = {}
        self.down = False
        self.asked: list[list[tuple[str, list[Any]]]] = []
        self.transport_failures = 0
        self.pool: Any = RuntimeError("no txpool")
        #: Hashes the node answers None for once, then has (a pool that shows a transaction late).
        self.late: set[str] = set()

    async def post_batch(self, body: bytes, what: str) -> Any:
        requests = json.loads(body)
        self.bodies.append(requests)
        answer = self.sends.pop(0) if self.sends else accept_all
        if isinstance(answer, Exception):
            raise answer
        return answer(requests)

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        self.asked.append(calls)
        if self.down:
            raise TransportError("connection refused", reason="refused", delivered=False)
        answers: list[Any] = []
        for method, params in calls:
            if method == "eth_getTransactionByHash":
                answers.append(self.has.get(params[0]))
                if params[0] in self.late:
                    self.late.discard(params[0])
                    self.has[params[0]] = {"blockNumber": None}
            elif method == "eth_getTransactionCount":
                answers.append(hex(self.mined.get(params[0].lower(), 0)))
            else:
                answers.append(None)
        return answers

    async def call(self, method: str, *params: Any) -> Any:
        if self.down:
            raise TransportError("connection refused", reason="refused", delivered=False)
        if method == "txpool_content":
            if isinstance(self.pool, Exception):
                raise TransportError(str(self.pool))
            return self.pool
        return hex(0)


def accept_all(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"jsonrpc": "2.0", "id": r["id"], "result": "0x" + "ab" * 32} for r in requests]


def answer_each(*answers: dict[str, Any] | None) -> Answer:
    """Request ``i`` gets ``answers[i]`` as its error object (None: accepted)."""

    def answer(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for request, error in zip(requests, answers, strict=True):
            if error is None:
                out.append({"jsonrpc": "2.0", "id": request["id"], "result": "0x" + "ab" * 32})
            else:
                out.append({"jsonrpc": "2.0", "id": request["id"], "error": error})
        return out

    return answer


def err(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


def submitter_on(node: Node, senders: int = 2, retry: RetryPolicy = FAST) -> Submitter:
    plan = plan_for()
    accounts = derive_senders(plan.seed, 0, senders)
    _, templates = make_templates(plan, CHAIN_ID, accounts)
    model = GasModel.nominal(templates)
    return Submitter(
        node,  # type: ignore[arg-type]
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
        progress=Progress(),
        errors=Counter(),
        notes=[],
        retry=retry,
    )


def send(submitter: Submitter, count: int) -> None:
    """Sign ``count`` transactions and submit them as one batch, as the send loop does (slot taken)."""

    async def scenario() -> None:
        submitter.next_arrival = submitter.schedule.next()
        submitter._sign_ahead(10**18, count)
        await submitter.submit_slots.acquire()
        await submitter._submit(submitter._take_unsent(count))
        await asyncio.gather(*list(submitter.tasks))

    asyncio.run(scenario())


def states(submitter: Submitter) -> list[int]:
    return list(submitter.log.state)


# ----------------------------------------------------------------------------------------------
# retries


def test_a_transient_error_is_sent_again_with_the_same_bytes_and_counted_once() -> None:
    node = Node([answer_each(None, err(-32603, "internal error"), None, err(-32005, "limit exceeded"))])
    submitter = submitter_on(node)
    send(submitter, 4)
    first, again = node.bodies
    assert [r["id"] for r in again] == [1, 3]
    assert again == [first[1], first[3]]  # the same rendered requests: the same signed bytes
    assert states(submitter) == [STATUS_ACCEPTED] * 4
    assert (submitter.progress.sent, submitter.progress.accepted, submitter.progress.rejected) == (4, 4, 0)
    assert not submitter.errors and submitter.accepted_outstanding == 4
    assert submitter.retry_stats.retried == {
        ("eth_sendRawTransaction", "rpc_-32603"): 1,
        ("eth_sendRawTransaction", "limit_exceeded"): 1,
    }
    # Latency counts from the first send: the retry does not move it.
    log = submitter.log
    assert all(log.sent_ns[i] != NOT_YET and log.accepted_ns[i] >= log.sent_ns[i] for i in range(4))


def test_a_batch_that_got_no_answer_is_sent_again_and_already_known_counts_as_accepted() -> None:
    node = Node(
        [
            TransportError("read timed out", reason="timeout"),
            answer_each(err(-32000, "already known"), err(-32003, "Transaction already imported"), None),
        ]
    )
    submitter = submitter_on(node)
    send(submitter, 3)
    assert len(node.bodies) == 2
    assert states(submitter) == [STATUS_ACCEPTED] * 3
    assert not submitter.errors and not submitter.maybe_delivered
    assert submitter.retry_stats.retried == {("eth_sendRawTransaction", "timeout"): 3}


def test_nonce_too_low_after_a_try_that_may_have_got_through_is_ours_when_the_node_has_it() -> None:
    """The first answer was lost and the node mined row 0 meanwhile, so its resend is 'nonce too
    low': by hash it is ours, accepted, not a refusal. Row 1 got the same answer but the node does
    not have it: another transaction took its nonce, a real refusal."""
    node = Node(
        [
            TransportError("connection reset", reason="reset"),
            answer_each(err(-32000, "nonce too low"), err(-32000, "nonce too low")),
        ]
    )
    node.has = {hash_of_row(0, senders=1): {"blockNumber": "0x9"}}
    submitter = submitter_on(node, senders=1)
    send(submitter, 2)
    assert states(submitter) == [STATUS_ACCEPTED, STATUS_REJECTED]
    assert submitter.errors == Counter({"nonce_too_low": 1})
    assert submitter.nonces.foreign[0] == {6}
    assert submitter.retry_stats.resolved == {"accepted: the node had it": 1}
    assert not submitter.maybe_delivered


def hash_of_row(row: int, senders: int) -> str:
    """The hash row ``row`` gets: the submitters here sign the same transactions for the same seed."""
    probe = submitter_on(Node(), senders=senders)
    probe.next_arrival = probe.schedule.next()
    probe._sign_ahead(10**18, row + 1)
    return probe.log.tx_hash(row)


def test_a_refusal_on_the_first_try_stays_a_refusal_and_is_never_sent_again() -> None:
    node = Node(
        [
            answer_each(
                err(-32000, "nonce too low"),
                err(-32000, "insufficient funds for gas * price + value"),
                err(-32000, "transaction underpriced"),
            )
        ]
    )
    submitter = submitter_on(node, senders=3)
    send(submitter, 3)
    assert len(node.bodies) == 1 and not node.asked  # no retry, no lookup by hash
    assert states(submitter) == [STATUS_REJECTED] * 3
    assert submitter.errors == Counter({"nonce_too_low": 1, "insufficient_funds": 1, "underpriced": 1})
    assert submitter.retry_stats.total == 0


def test_a_node_that_never_answers_gets_the_rows_refused_as_transport_and_their_nonces_back() -> None:
    refused = TransportError("connection refused", reason="refused", delivered=False)
    node = Node([refused] * 10)
    submitter = submitter_on(node, senders=1)
    send(submitter, 2)
    assert len(node.bodies) == FAST.attempts
    assert states(submitter) == [STATUS_REJECTED] * 2
    assert submitter.errors == Counter({"transport": 2})
    assert not node.asked  # never delivered: nothing to ask about
    assert submitter.retry_stats.gave_up == {("eth_sendRawTransaction", "refused"): 2}
    assert submitter.nonces.take(0) == 5 and submitter.nonces.take(0) == 6


def test_an_unknown_outcome_keeps_its_nonce_until_the_node_can_say() -> None:
    node = Node([TransportError("timed out", reason="timeout")] * 10)
    node.down = True  # cannot be asked by hash either
    submitter = submitter_on(node, senders=1)
    send(submitter, 2)
    assert states(submitter) == [STATUS_SENT] * 2  # neither accepted nor refused: unknown
    assert sorted(submitter.doubtful) == [0, 1]
    assert submitter.nonces.take(0) == 7  # nonces 5 and 6 stay theirs
    # The node is back: it has row 0, not row 1.
    node.down = False
    node.has[submitter.log.tx_hash(0)] = {"blockNumber": None}
    asyncio.run(submitter._settle_doubtful())
    assert states(submitter)[:2] == [STATUS_ACCEPTED, STATUS_REJECTED]
    assert not submitter.doubtful and submitter.errors == Counter({"transport": 1})
    assert submitter.retry_stats.resolved == {
        "accepted: the node had it": 1,
        "refused: the node did not have it": 1,
    }
    assert submitter.nonces.holes(0) == [6]


def test_a_doubtful_row_a_block_showed_is_settled_without_asking() -> None:
    node = Node([TransportError("timed out", reason="timeout")] * 10)
    node.down = True
    submitter = submitter_on(node, senders=1)
    send(submitter, 1)
    submitter.log.state[0] = STATUS_INCLUDED  # the tracker saw it in a block
    asked = len(node.asked)
    asyncio.run(submitter._settle_doubtful())
    assert not submitter.doubtful and len(node.asked) == asked
    assert submitter.retry_stats.resolved == {"accepted: a block had it": 1}


def test_a_stopped_run_does_not_retry() -> None:
    node = Node([TransportError("refused", reason="refused", delivered=False)] * 10)
    submitter = submitter_on(node, senders=1)
    submitter.stopping = True
    send(submitter, 1)
    assert len(node.bodies) == 1 and submitter.errors == Counter({"transport": 1})


def test_the_schedule_goes_on_while_a_batch_waits_for_its_retry() -> None:
    """One connection: while the first batch waits to be sent again, the slot is free and the next
    batch goes out first."""
    node = Node([TransportError("reset", reason="reset"), accept_all, accept_all])
    submitter = submitter_on(node, senders=1, retry=RetryPolicy(attempts=3, first_delay=0.2, max_delay=0.2))
    submitter.submit_slots = asyncio.Semaphore(1)

    async def scenario() -> None:
        submitter.next_arrival = submitter.schedule.next()
        submitter._sign_ahead(10**18, 2)
        await submitter.submit_slots.acquire()
        submitter._spawn(submitter._submit(submitter._take_unsent(1)))
        await asyncio.sleep(0.05)
        assert not submitter.submit_slots.locked()  # given back during the wait
        await submitter.submit_slots.acquire()
        submitter._spawn(submitter._submit(submitter._take_unsent(1)))
        await asyncio.gather(*list(submitter.tasks))

    asyncio.run(scenario())
    assert [[r["id"] for r in body] for body in node.bodies] == [[0], [1], [0]]
    assert states(submitter) == [STATUS_ACCEPTED] * 2


def test_holes_are_filled_after_doubtful_rows_are_settled() -> None:
    node = Node([TransportError("timed out", reason="timeout")] * 10)
    node.down = True
    submitter = submitter_on(node, senders=1)
    send(submitter, 1)
    node.down, node.sends = False, []  # back, answering, and it does not have row 0
    asyncio.run(submitter._fill_holes())
    log = submitter.log
    assert (log.template[1], log.nonce[1], log.state[1]) == (GAP_FILLER, 5, STATUS_ACCEPTED)
    assert log.state[0] == STATUS_REJECTED


# ----------------------------------------------------------------------------------------------
# a node that forgot


def accepted_rows(node: Node, count: int, senders: int = 2) -> Submitter:
    submitter = submitter_on(node, senders=senders)
    send(submitter, count)
    assert submitter.accepted_outstanding == count
    return submitter


def test_transactions_the_node_forgot_are_lost_and_their_nonces_refilled() -> None:
    node = Node()
    submitter = accepted_rows(node, 6)  # senders 0 and 1, nonces 5, 6, 7 each
    log = submitter.log
    # A restart: the node mined up to nonce 5 of sender 0 (row 0 is in a block the tracker has not
    # shown yet), keeps sender 1's nonce 5 (row 1) in its pool, and forgot the rest.
    node.mined = {submitter.senders[0].address.lower(): 6, submitter.senders[1].address.lower(): 5}
    node.has = {log.tx_hash(1): {"blockNumber": None}}
    assert asyncio.run(submitter.find_forgotten(node))  # type: ignore[arg-type]
    forgotten_rows = [2, 3, 4, 5]
    assert [log.state[row] for row in range(6)] == [STATUS_ACCEPTED, STATUS_ACCEPTED] + [STATUS_SENT] * 4
    assert all(log.error_kinds[log.error[row]] == FORGOTTEN for row in forgotten_rows)
    assert all(log.accepted_ns[row] != NOT_YET for row in forgotten_rows)  # accepted: so lost
    assert submitter.accepted_outstanding == 2
    assert sorted(submitter.forgotten) == sorted(log.tx_hash(row) for row in forgotten_rows)
    assert submitter.errors == Counter({FORGOTTEN: 4})
    assert submitter.nonces.holes(0) == [6, 7] and submitter.nonces.holes(1) == [6, 7]
    # Row 0's nonce is mined per the count: never asked about. Row 1's is not: asked, and found.
    looks = [
        [params[0] for _, params in calls]
        for calls in node.asked
        if calls[0][0] == "eth_getTransactionByHash"
    ]
    first, second = looks[-2:]
    assert log.tx_hash(0) not in first and log.tx_hash(1) in first
    assert sorted(second) == sorted(
        log.tx_hash(row) for row in forgotten_rows
    )  # asked again before it counts
    assert "forgot 4 accepted transaction(s)" in submitter.notes[-1]
    # The next transactions of each sender take the freed nonces: the senders go on.
    assert submitter.nonces.take(0) == 6


def test_a_transaction_the_node_shows_a_moment_later_is_not_forgotten() -> None:
    node = Node()
    submitter = accepted_rows(node, 2, senders=1)
    node.late = {submitter.log.tx_hash(1)}
    assert asyncio.run(submitter.find_forgotten(node))  # type: ignore[arg-type]
    assert sorted(submitter.forgotten) == [submitter.log.tx_hash(0)]
    assert submitter.accepted_outstanding == 1


def test_a_pooled_transaction_the_node_will_not_show_by_hash_is_not_forgotten() -> None:
    """Some clients never return a pooled transaction by hash: the pool decides."""
    node = Node()
    submitter = accepted_rows(node, 2, senders=1)
    log = submitter.log
    node.pool = {
        "pending": {
            submitter.senders[0].address: {"5": {"hash": log.tx_hash(0)}, "6": {"hash": log.tx_hash(1)}}
        }
    }
    assert asyncio.run(submitter.find_forgotten(node))  # type: ignore[arg-type]
    assert not submitter.forgotten and submitter.accepted_outstanding == 2


def test_a_node_that_cannot_be_asked_is_asked_again_later() -> None:
    node = Node()
    submitter = accepted_rows(node, 2)
    node.down = True
    assert not asyncio.run(submitter.find_forgotten(node))  # type: ignore[arg-type]
    assert not submitter.forgotten


def test_the_watch_looks_only_after_a_transport_failure() -> None:
    node = Node()
    submitter = accepted_rows(node, 2)
    asked = len(node.asked)

    async def watch(fail: bool) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(submitter.watch_loop(stop))
        await asyncio.sleep(0.05)
        if fail:
            node.transport_failures += 1
        await asyncio.sleep(0.6)
        stop.set()
        await task

    asyncio.run(watch(fail=False))
    assert len(node.asked) == asked  # nothing failed: not a single call
    asyncio.run(watch(fail=True))
    assert len(node.asked) > asked


def test_forgotten_once_sending_is_over_are_filled_with_self_transfers() -> None:
    node = Node()
    submitter = accepted_rows(node, 2, senders=1)
    submitter.sending_finished_ns = 1
    node.mined = {submitter.senders[0].address.lower(): 5}
    assert asyncio.run(submitter.find_forgotten(node))  # type: ignore[arg-type]
    log = submitter.log
    assert len(log) == 4
    assert [(log.template[row], log.nonce[row]) for row in (2, 3)] == [(GAP_FILLER, 5), (GAP_FILLER, 6)]
    assert submitter.accepted_outstanding == 2  # the fillers, waited for in the drain
    assert "left by rejected or forgotten transactions" in submitter.notes[-1]
