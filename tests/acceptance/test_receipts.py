"""Receipts against a node that is slow, late or partial about them: every wanted receipt is checked
or counted, and a verdict never passes on a part of them (issue 13, breakage 2).

Each test runs one real edge against the embedded anvil devnet through an :class:`RpcProxy` whose
fault plays one behaviour seen on real clients: a receipt batch still in flight when the run ends
(the drain race), ``null`` for a receipt just after its block appeared (EthereumJS indexes receipts
asynchronously), ``eth_getBlockReceipts`` refused, receipts never served at all.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.edge.inclusion import BLOCK_RECEIPTS, TX_RECEIPT
from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime
from pytest_gashammer.fault import RpcProxy
from pytest_gashammer.fault.faults import RpcCall, RpcFault
from pytest_gashammer.oracle.invariants import RECEIPT_COVERAGE_BAR, evaluate
from pytest_gashammer.results import Verdict
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from pytest_gashammer.telemetry.records import EdgeReport
from pytest_gashammer.telemetry.stream import from_ipc

pytestmark = pytest.mark.usefixtures("no_new_anvil")

RECEIPT_METHODS = (BLOCK_RECEIPTS, TX_RECEIPT)
INCLUSION_TIMEOUT = 3.0
# About 57 transfers a second for 2.5 s: more than the receipt loop's batch threshold (64) is
# included before sending ends, so the loop has a batch in flight while the run still goes. 64
# senders give each sender two or three transactions. Every receipt is wanted.
SPEC: dict[str, Any] = {
    "gas_per_sec": "1.2M",
    "duration": "2.5s",
    "warmup": 0,
    "senders": 64,
    "receipts": "all",
    "inclusion_timeout": f"{INCLUSION_TIMEOUT:g}s",
}


@pytest.fixture(scope="module")
def devnet() -> Iterator[EmbeddedDevnet]:
    node = EmbeddedDevnet(feed=False).start()
    try:
        yield node
    finally:
        node.close()


def run_edge(
    devnet: EmbeddedDevnet, proxy: RpcProxy, *, seed: int, frames: list[tuple[str, bytes]] | None = None
) -> EdgeReport:
    """One edge through ``proxy``; no WebSocket, so blocks are polled through the proxy too."""
    plan = compile_plan(parse_spec(SPEC), name="receipts", seed=seed)
    assignment = EdgeAssignment(
        edge_id="e0",
        plan=plan.to_dict(),
        rpc_url=proxy.url,
        ws_url=None,
        chain_id=devnet.chain_id,
        funder_key=devnet.funder.key,
        sender_count=plan.senders,
        telemetry_run_id="run" if frames is not None else None,
    )
    sink = None if frames is None else (lambda table, frame: frames.append((table, frame)))
    # Faults stay disarmed through setup (funding waits for its receipts): armed at the start gate.
    faults = [fault for fault in proxy.faults]
    report = EdgeRuntime(
        assignment, start_gate=lambda: [fault.arm() for fault in faults], telemetry_sink=sink
    ).run_blocking()
    included = report.digest.included
    assert included > 100, f"the run included too little to show anything: {included} transactions"
    return report


def verdicts_of(report: EdgeReport) -> dict[str, Verdict]:
    return {verdict.name: verdict for verdict in evaluate([report], INCLUSION_TIMEOUT)}


def included_rows(report: EdgeReport) -> int:
    return report.digest.included


def checked_rows(report: EdgeReport) -> int:
    return report.digest.receipts_with_status


# ---------------------------------------------------------------------------------------- faults


class HoldFirstReceiptRequest(RpcFault):
    """Holds the first receipt request back ``seconds``: it is still in flight when the run ends."""

    def __init__(self, seconds: float) -> None:
        super().__init__(armed=False)
        self.seconds = seconds
        self.held = threading.Event()

    def on_request(self, call: RpcCall) -> None:
        if self.armed and call.method in RECEIPT_METHODS and not self.held.is_set():
            call.delay = self.seconds  # the largest delay of a batch holds the whole request
            self.held.set()
            self._record(call.method, params=call.params)


class NotIndexedYet(RpcFault):
    """Answers as EthereumJS does before it indexed a block's receipts: ``null`` for a transaction's
    receipt, ``[]`` for a block's, the first ``times`` times each is asked."""

    def __init__(self, times: int) -> None:
        super().__init__(armed=False)
        self.times = times
        self.asks: Counter[str] = Counter()

    def on_request(self, call: RpcCall) -> None:
        if not self.armed or call.method not in RECEIPT_METHODS or not call.params:
            return
        key = str(call.params[0]).lower()
        self.asks[key] += 1
        if self.asks[key] <= self.times:
            call.reply([] if call.method == BLOCK_RECEIPTS else None, by=self.name)
            self._record(key)


class RefuseMethod(RpcFault):
    """Answers ``method`` with -32601, as a node without it does."""

    def __init__(self, method: str) -> None:
        super().__init__(armed=True)
        self.method = method

    def on_request(self, call: RpcCall) -> None:
        if call.method == self.method:
            call.reply_error(
                -32601, f"the method {self.method} does not exist/is not available", by=self.name
            )
            self._record(self.method)


class NeverServe(RpcFault):
    """Never serves the receipt of one transaction in ``every``, by hash (``null``, or left out of the
    block's receipts): receipts expected but never obtained."""

    def __init__(self, every: int) -> None:
        super().__init__(armed=False)
        self.every = every

    def _hidden(self, tx_hash: Any) -> bool:
        return isinstance(tx_hash, str) and int(tx_hash[-4:], 16) % self.every == 0

    def on_request(self, call: RpcCall) -> None:
        if self.armed and call.method == TX_RECEIPT and call.params and self._hidden(call.params[0]):
            call.reply(None, by=self.name)
            self._record(str(call.params[0]).lower())

    def on_answer(self, call: RpcCall) -> None:
        if not self.armed or call.method != BLOCK_RECEIPTS or not isinstance(call.result, list):
            return
        kept = []
        for receipt in call.result:
            tx_hash = receipt.get("transactionHash") if isinstance(receipt, dict) else None
            if self._hidden(tx_hash):
                self._record(str(tx_hash).lower())
            else:
                kept.append(receipt)
        assert call.answer is not None
        call.answer["result"] = kept


# ----------------------------------------------------------------------------------------- tests


def test_a_receipt_batch_in_flight_at_the_drain_is_awaited_not_lost(devnet: EmbeddedDevnet) -> None:
    """The drain race: the loop's first batch is held until long after sending ended. Before the fix
    the drain found the queue empty (or fetched the rest), cancelled the loop and lost that batch."""
    hold = HoldFirstReceiptRequest(seconds=8.0)
    with RpcProxy(devnet.rpc_url, faults=[hold]) as proxy:
        report = run_edge(devnet, proxy, seed=1301)
    assert hold.held.is_set(), "no receipt request was held: the race was not staged"
    included = included_rows(report)
    assert checked_rows(report) == included, f"{included - checked_rows(report)} receipts lost at the drain"
    assert report.receipts_expected == report.receipts_checked == included
    assert (report.receipts_missing, report.receipts_abandoned) == (0, 0)
    verdicts = verdicts_of(report)
    for name in ("receipt_status", "gas_model", "balance_conservation"):
        assert verdicts[name].status == "passed", verdicts[name].describe()
    assert f"{included} of {included} expected receipts checked" in verdicts["receipt_status"].summary


def test_receipts_not_indexed_yet_are_asked_again_until_every_one_is_checked(devnet: EmbeddedDevnet) -> None:
    """EthereumJS answers ``[]``/``null`` just after a block appears: asked again, none counted missing."""
    late = NotIndexedYet(times=3)
    with RpcProxy(devnet.rpc_url, faults=[late]) as proxy:
        report = run_edge(devnet, proxy, seed=1302)
    assert late.affected, "no receipt was answered as not indexed yet"
    included = included_rows(report)
    assert report.receipts_via == BLOCK_RECEIPTS
    assert report.receipts_expected == report.receipts_checked == checked_rows(report) == included
    assert "receipt_missing" not in report.errors
    assert any("asked again after a null answer" in note for note in report.notes), report.notes
    assert all(late.asks[key] > late.times for key in late.affected)  # each was asked until it came
    verdicts = verdicts_of(report)
    for name in ("receipt_status", "gas_model", "balance_conservation"):
        assert verdicts[name].status == "passed", verdicts[name].describe()


def test_a_node_refusing_eth_getblockreceipts_gets_per_transaction_asks_and_a_note(
    devnet: EmbeddedDevnet,
) -> None:
    """The fallback, also for ``null`` per-transaction answers."""
    refuse, late = RefuseMethod(BLOCK_RECEIPTS), NotIndexedYet(times=2)
    with RpcProxy(devnet.rpc_url, faults=[refuse, late]) as proxy:
        report = run_edge(devnet, proxy, seed=1303)
        methods = proxy.stats.methods
    assert refuse.affected == [BLOCK_RECEIPTS]
    assert methods.get(BLOCK_RECEIPTS, 0) >= 1 and methods[TX_RECEIPT] >= included_rows(report)
    assert report.receipts_via == TX_RECEIPT
    assert any(
        note.startswith(f"receipts: {BLOCK_RECEIPTS} refused (JSON-RPC error -32601")
        and note.endswith(f"fetched per transaction with {TX_RECEIPT}")
        for note in report.notes
    ), report.notes
    included = included_rows(report)
    assert report.receipts_expected == report.receipts_checked == included
    verdicts = verdicts_of(report)
    for name in ("receipt_status", "gas_model", "balance_conservation"):
        assert verdicts[name].status == "passed", verdicts[name].describe()


def test_receipts_below_the_coverage_bar_make_the_verdicts_inconclusive_and_show_in_parquet(
    devnet: EmbeddedDevnet,
) -> None:
    """One receipt in four is never served: after the drain's deadline they are missing, the receipt
    verdicts say the coverage and do not pass, and Parquet tells those rows apart."""
    never = NeverServe(every=4)
    frames: list[tuple[str, bytes]] = []
    with RpcProxy(devnet.rpc_url, faults=[never]) as proxy:
        report = run_edge(devnet, proxy, seed=1304, frames=frames)
    included = included_rows(report)
    hidden = {tx_hash for tx_hash in never.affected}
    assert report.receipts_expected == included
    assert report.receipts_missing == len(hidden) > 0
    assert report.receipts_checked == included - len(hidden) == checked_rows(report)
    assert report.receipts_checked < RECEIPT_COVERAGE_BAR * report.receipts_expected
    assert report.errors["receipt_missing"] == len(hidden)

    verdicts = verdicts_of(report)
    coverage = f"{report.receipts_checked} of {included} expected receipts checked"
    for name in ("receipt_status", "gas_model"):
        verdict = verdicts[name]
        assert verdict.status == "inconclusive", verdict.describe()
        assert coverage in verdict.summary
        assert verdict.evidence["receipts_missing"] == len(hidden)
    balance = verdicts["balance_conservation"]
    assert balance.status == "inconclusive"
    assert balance.summary == (
        f"only {report.receipts_checked} of {included} receipts were checked ({len(hidden)} missing, "
        "0 abandoned), so the fees paid are not all known"
    )
    assert "receipts='all'" not in balance.summary

    batches = [from_ipc(frame) for table, frame in frames if table == "transactions"]
    transactions = pa.Table.from_batches(batches).to_pylist()
    assert len(transactions) == report.digest.rows
    never_obtained = {
        "0x" + row["tx_hash"].hex()
        for row in transactions
        if row["receipt_sampled"] and row["receipt_status"] is None
    }
    assert never_obtained == hidden
    assert sum(1 for row in transactions if row["receipt_sampled"]) == report.receipts_expected
