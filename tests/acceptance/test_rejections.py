"""A run the node refused fails with the node's own words; reruns over pooled transactions get fresh nonces.

Issue #13, breakage 1: rerunning a test while its earlier transactions were still pooled gave
``sent 49 accepted 0 rejected 49`` and ``1 passed``, and the node's answer appeared nowhere. Here a
loopback JSON-RPC proxy in front of the embedded devnet plays the part of such a node: it refuses
every load transaction with EthereumJS's exact wording, or hides pooled transactions from
``eth_getTransactionCount(addr, "pending")`` the way EthereumJS does for a checksummed address.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_gashammer.chain.rpc import call
from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime
from pytest_gashammer.fault import RpcCall, RpcFault, RpcProxy
from pytest_gashammer.fault.faults import raw_transaction_param, sender_of
from pytest_gashammer.oracle.invariants import evaluate
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from pytest_gashammer.telemetry.records import EdgeReport

pytestmark = pytest.mark.usefixtures("no_new_anvil")

#: EthereumJS 0.10.5's answer to a same-nonce transaction without a fee bump (service/txpool.js).
EJS_MESSAGE = "replacement gas too low, got tip 0, min: 0, got fee 202, min: 374"
EJS_CODE = -32602


class RefuseLoad(RpcFault):
    """Refuses every ``eth_sendRawTransaction`` not signed by ``funder``, as EthereumJS words it."""

    breaks = "the node accepts the load's transactions"
    caught_by = ("acceptance",)

    def __init__(self, funder: str) -> None:
        super().__init__()
        self.funder = funder.lower()

    def on_request(self, rpc_call: RpcCall) -> None:
        raw = raw_transaction_param(rpc_call)
        if raw is not None and sender_of(raw) != self.funder:
            rpc_call.reply_error(EJS_CODE, EJS_MESSAGE, by=self.name)
            self._record(len(self.affected))


class HidePooled(RpcFault):
    """``eth_getTransactionCount(addr, "pending")`` leaves the pool out, like EthereumJS does for an
    address that is not lowercase (it looks its pool up by the lowercase hex); ``every_address``
    leaves it out for every address, like a node whose pending count ignores the pool."""

    def __init__(self, upstream: str, *, every_address: bool = False) -> None:
        super().__init__()
        self.upstream = upstream
        self.every_address = every_address

    def on_request(self, rpc_call: RpcCall) -> None:
        if rpc_call.method != "eth_getTransactionCount" or len(rpc_call.params) != 2:
            return
        address, block = rpc_call.params
        if block != "pending" or not (self.every_address or address != address.lower()):
            return
        # A blocking call on the proxy's loop: a few milliseconds, only for these calls, only in tests.
        rpc_call.reply(call(self.upstream, "eth_getTransactionCount", [address, "latest"]), by=self.name)
        self._record(address)


@pytest.fixture
def devnet() -> Iterator[EmbeddedDevnet]:
    node = EmbeddedDevnet(feed=False).start()
    try:
        yield node
    finally:
        node.close()


def test_a_run_whose_every_transaction_is_refused_fails_quoting_the_node(pytester: pytest.Pytester) -> None:
    """The issue's ``sent 279 accepted 0 rejected 279 ... 1 passed``, reproduced and fixed."""
    pytester.makepyfile(
        test_refused="""
        import pytest

        @pytest.mark.gashammer(gas_per_sec="1M", duration="2s", warmup=0, inclusion_timeout="3s")
        def test_refused(hammer):
            hammer.run()
        """
    )
    node = EmbeddedDevnet(feed=False).start()
    try:
        refuse = RefuseLoad(node.funder.address)
        with RpcProxy(node.rpc_url, faults=[refuse]) as proxy:
            result = pytester.runpytest_subprocess(
                "-p", "no:cacheprovider", "--gashammer-rpc-url", proxy.url,
                "--gashammer-funder-key", node.funder.key, timeout=300,
            )  # fmt: skip
    finally:
        node.close()
    assert len(refuse.affected) > 50, "the proxy refused too little to show anything"
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "[FAILED] acceptance" in text
    assert "no transaction was accepted" in text
    # The node's words, verbatim, with its code and the kind the classifier made of them.
    assert f"replacement_underpriced (code {EJS_CODE}): {EJS_MESSAGE!r}" in text
    # The run summary says why too.
    assert "rejections" in text and EJS_MESSAGE in text.split("gashammer: 1 run(s)", 1)[1]


def run_edge(
    devnet: EmbeddedDevnet,
    rpc_url: str,
    *,
    start_gate: Callable[[], None] | None = None,
    **spec: Any,
) -> EdgeReport:
    plan = compile_plan(
        parse_spec({"gas_per_sec": "400k", "duration": "1s", "warmup": 0, "senders": 4, **spec}),
        name="rerun",
        seed=4242,
    )
    assignment = EdgeAssignment(
        edge_id="e0",
        plan=plan.to_dict(),
        rpc_url=rpc_url,
        ws_url=None,
        chain_id=devnet.chain_id,
        funder_key=devnet.funder.key,
        sender_count=plan.senders,
    )
    return EdgeRuntime(assignment, start_gate=start_gate).run_blocking()


def set_mining(devnet: EmbeddedDevnet, seconds: int) -> None:
    """Interval mining every ``seconds`` (0: no blocks at all, so sent transactions stay pooled)."""
    call(devnet.rpc_url, "evm_setIntervalMining", [seconds])


@contextlib.contextmanager
def first_run_left_pooled(devnet: EmbeddedDevnet, rpc_url: str) -> Iterator[EdgeReport]:
    """A first run whose transactions are all still in the pool when it ends (mining paused after setup)."""
    try:
        first = run_edge(
            devnet, rpc_url, start_gate=lambda: set_mining(devnet, 0), inclusion_timeout="1s",
            max_priority_fee_per_gas=2,
        )  # fmt: skip
        assert first.digest.accepted > 10 and first.digest.included == 0
        yield first
    finally:
        set_mining(devnet, 1)


@pytest.mark.parametrize("every_address", [False, True], ids=["checksummed-only", "every-address"])
def test_a_rerun_while_the_first_runs_transactions_are_pooled_gets_fresh_nonces(
    devnet: EmbeddedDevnet, every_address: bool
) -> None:
    """Same seed, same senders: the rerun must continue after the pooled nonces, not reuse them.

    The rerun's tip is lower, so a reused nonce is a refused replacement, as on EthereumJS. With
    ``every_address`` the node's pending count never includes the pool: only the edge's memory of
    what it sent in this session (checked against the node) keeps the rerun right.
    """
    hide = HidePooled(devnet.rpc_url, every_address=every_address)
    with RpcProxy(devnet.rpc_url, faults=[hide]) as proxy, first_run_left_pooled(devnet, proxy.url) as first:
        # The proxy does hide the pool, as EthereumJS does, from a checksummed address at least.
        sender = first.sender_addresses[0]
        pending = {
            form: int(call(proxy.url, "eth_getTransactionCount", [form, "pending"]), 16)
            for form in (sender, sender.lower())
        }
        assert pending[sender] == 0  # the on-chain count alone
        assert (pending[sender.lower()] == 0) if every_address else (pending[sender.lower()] > 0)
        second = run_edge(
            devnet, proxy.url, start_gate=lambda: set_mining(devnet, 1), inclusion_timeout="20s",
            max_priority_fee_per_gas=1,
        )  # fmt: skip
    assert second.errors == {}, second.rejections
    # The second run starts each sender above every nonce the first one had accepted.
    taken = first.digest.highest_taken
    assert taken and all(second.sender_start_nonces[sender] > nonce for sender, nonce in taken.items())
    verdicts = {v.name: v for v in evaluate([second], 20.0)}
    failed = {name: v.summary for name, v in verdicts.items() if v.status == "failed"}
    assert failed == {}
    assert verdicts["acceptance"].status == "passed"
    assert verdicts["inclusion"].status == "passed"
    if every_address:
        assert any("still holds" in note for note in second.notes), second.notes


def test_a_rerun_after_the_node_dropped_the_first_runs_transactions_starts_at_the_nodes_count(
    devnet: EmbeddedDevnet,
) -> None:
    """The memory must not win over a node that no longer has the transactions: a gap would strand the rerun."""
    hide = HidePooled(devnet.rpc_url, every_address=True)
    with RpcProxy(devnet.rpc_url, faults=[hide]) as proxy, first_run_left_pooled(devnet, proxy.url):
        call(devnet.rpc_url, "anvil_dropAllTransactions", [])
        second = run_edge(
            devnet, proxy.url, start_gate=lambda: set_mining(devnet, 1), inclusion_timeout="20s",
            max_priority_fee_per_gas=1,
        )  # fmt: skip
    assert second.errors == {}, second.rejections
    assert second.sender_start_nonces == [0, 0, 0, 0]
    verdicts = {v.name: v for v in evaluate([second], 20.0)}
    assert {name: v.summary for name, v in verdicts.items() if v.status == "failed"} == {}
    assert verdicts["inclusion"].status == "passed"
    assert any("no longer knows" in note for note in second.notes), second.notes
