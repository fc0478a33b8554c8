"""A chain that stops producing blocks is named as such, fallbacks are said, fees follow the base fee.

Each test drives a real edge (or a real pytest session) against a real anvil, through a real
JSON-RPC proxy or WebSocket peer on loopback where a node must behave like another client:

- a halted chain (mining switched off mid-run) with a node that, like EthereumJS, answers null to
  ``eth_getTransactionByHash`` for pooled transactions: the run fails ``block_production`` naming
  the stuck head, and the lost transactions are diagnosed as pooled while the chain stood still;
- a node without ``eth_maxPriorityFeePerGas`` and a WebSocket that refuses ``eth_subscribe``: the
  notes say so, in the run summary too; the newHeads socket is closed with 1000 at a normal end;
- a base fee that climbs during the run: the fee cap follows it and every transaction is included.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_gashammer.chain.rpc import call
from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime
from pytest_gashammer.fault import RpcProxy
from pytest_gashammer.fault.faults import RpcCall, RpcFault
from pytest_gashammer.hive.aggregate import run_notes
from pytest_gashammer.oracle.invariants import evaluate
from pytest_gashammer.results import FALLBACK_NOTE, FEES_NOTE
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from pytest_gashammer.telemetry.records import EdgeReport

pytestmark = pytest.mark.usefixtures("no_new_anvil")

SPEC: dict[str, Any] = {"gas_per_sec": "300k", "duration": "3s", "warmup": 0, "senders": 16, "receipts": 0}


@pytest.fixture
def devnet() -> Iterator[EmbeddedDevnet]:
    """A devnet of the test's own: these tests stop its mining or move its base fee."""
    node = EmbeddedDevnet(feed=False).start()
    try:
        yield node
    finally:
        node.close()


class HidePooledTransactions(RpcFault):
    """Answers null to eth_getTransactionByHash for a transaction not yet in a block, as EthereumJS does."""

    def on_answer(self, call: RpcCall) -> None:
        result = call.result
        if (
            call.method == "eth_getTransactionByHash"
            and isinstance(result, dict)
            and not result.get("blockNumber")
        ):
            assert call.answer is not None
            call.answer["result"] = None
            self._record(result.get("hash"))


class RefuseMethods(RpcFault):
    """Answers -32601 to the named methods, as a node without them does."""

    def __init__(self, *methods: str) -> None:
        super().__init__()
        self.methods = frozenset(methods)

    def on_request(self, call: RpcCall) -> None:
        if call.method in self.methods:
            call.reply_error(
                -32601, f"the method {call.method} does not exist/is not available", by=self.name
            )
            self._record(call.method)


def run_edge(
    devnet: EmbeddedDevnet,
    *,
    rpc_url: str,
    seed: int,
    ws_url: str | None = None,
    start_gate: Callable[[], None] | None = None,
    **spec: Any,
) -> EdgeReport:
    plan = compile_plan(parse_spec({**SPEC, **spec}), name="stall", seed=seed)
    assignment = EdgeAssignment(
        edge_id="e0",
        plan=plan.to_dict(),
        rpc_url=rpc_url,
        ws_url=ws_url,
        chain_id=devnet.chain_id,
        funder_key=devnet.funder.key,
        sender_count=plan.senders,
    )
    report = EdgeRuntime(assignment, start_gate=start_gate).run_blocking()
    assert report.digest.rows > 10, (
        f"the run sent too little to show anything: {report.digest.rows} transactions"
    )
    return report


# ------------------------------------------------------------------------------ a halted chain


def test_a_halted_chain_fails_block_production_and_its_waiting_transactions_are_pooled_not_dropped(
    devnet: EmbeddedDevnet,
) -> None:
    hide = HidePooledTransactions()
    halted_at: list[int] = []

    def halt_soon() -> None:
        def halt() -> None:
            call(devnet.rpc_url, "evm_setIntervalMining", [0])
            halted_at.append(int(call(devnet.rpc_url, "eth_blockNumber"), 16))

        timer = threading.Timer(1.0, halt)
        timer.daemon = True
        timer.start()

    with RpcProxy(devnet.rpc_url, faults=[hide]) as proxy:
        report = run_edge(
            devnet,
            rpc_url=proxy.url,
            seed=301,
            start_gate=halt_soon,
            inclusion_timeout="3s",
            max_block_gap="2s",
        )
        pool = call(devnet.rpc_url, "txpool_content")
    assert halted_at, "mining was never stopped"
    verdicts = {verdict.name: verdict for verdict in evaluate([report], 3.0)}
    lost = verdicts["inclusion"]
    assert lost.status == "failed"
    said = lost.evidence["what_the_node_says"]
    assert said and hide.affected, "the proxy hid no pooled transaction: nothing was left waiting"
    pooled = {tx["hash"].lower() for by_nonce in pool["pending"].values() for tx in by_nonce.values()}
    for line in said:
        assert "dropped" not in line, line
        assert "the chain stopped producing blocks (no new block for " in line, line
        tx_hash = line.split(":", 1)[0]
        if tx_hash.lower() in pooled:
            assert "in the node's pool (pending), never included" in line, line
    stalled = verdicts["block_production"]
    assert stalled.status == "failed", stalled.describe()
    head = report.chain_stall["last_head"] if report.chain_stall else None
    # The head the tracker saw last is the one mining stopped at (a block may have been in flight).
    assert head is not None and halted_at[0] <= head <= halted_at[0] + 1
    assert f"(head stuck at #{head})" in stalled.summary
    assert "still none when the run ended" in stalled.evidence["stalls"][0]
    assert all(f"head stuck at #{head})" in line for line in said), said


# ------------------------------------------------------------------------------ fallbacks, said


class NewHeadsPeer:
    """A WebSocket peer that answers eth_subscribe (with a subscription id, or -32601) and records
    the close code each client ends its connection with."""

    def __init__(self, *, refuse: bool) -> None:
        self.refuse = refuse
        self.close_codes: list[int | None] = []
        self.subscribes = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> NewHeadsPeer:
        self._thread.start()
        assert self._ready.wait(10), "the WebSocket peer did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0) as server:
            self.port = int(next(iter(server.sockets)).getsockname()[1])
            self._ready.set()
            await self._stop.wait()

    async def _handle(self, connection: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for frame in connection:
                request = json.loads(frame)
                if request.get("method") != "eth_subscribe":
                    continue
                self.subscribes += 1
                if self.refuse:
                    answer = {
                        "code": -32601,
                        "message": "the method eth_subscribe does not exist/is not available",
                    }
                    await connection.send(
                        json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": answer})
                    )
                else:
                    await connection.send(
                        json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x1"})
                    )
        except ConnectionClosed:
            pass
        self.close_codes.append(connection.close_code)


def test_a_refused_tip_and_a_refused_subscription_are_noted_and_the_socket_closes_normally(
    devnet: EmbeddedDevnet,
) -> None:
    refuse = RefuseMethods("eth_maxPriorityFeePerGas")
    with RpcProxy(devnet.rpc_url, faults=[refuse]) as proxy, NewHeadsPeer(refuse=True) as peer:
        report = run_edge(devnet, rpc_url=proxy.url, ws_url=peer.url, seed=302, duration="1s")
    notes = run_notes([report])
    assert refuse.affected == ["eth_maxPriorityFeePerGas"]
    assert any(
        note.startswith(
            f"{FALLBACK_NOTE}tip 0 wei: the node did not answer eth_maxPriorityFeePerGas (JSON-RPC error -32601"
        )
        for note in notes
    ), notes
    assert (
        f"{FALLBACK_NOTE}head tracking polled eth_blockNumber every 0.1 s instead of a newHeads subscription: "
        "eth_subscribe refused: JSON-RPC error -32601: the method eth_subscribe does not exist/is not available"
    ) in notes
    fees = [note for note in notes if note.startswith(FEES_NOTE)]
    assert fees[0].startswith(f"{FEES_NOTE}fee cap ") and "+ tip 0 wei (from the fallback above)" in fees[0]
    assert peer.subscribes == 1, "a refused subscription is not retried"
    assert peer.close_codes == [1000]
    assert {verdict.name: verdict.status for verdict in evaluate([report], 30.0)}["inclusion"] == "passed"


def test_a_working_subscription_is_not_a_fallback_and_ends_with_close_code_1000(
    devnet: EmbeddedDevnet,
) -> None:
    with NewHeadsPeer(refuse=False) as peer:
        report = run_edge(devnet, rpc_url=devnet.rpc_url, ws_url=peer.url, seed=303, duration="1s")
    assert not [note for note in report.notes if "head tracking" in note], report.notes
    assert peer.subscribes == 1
    assert peer.close_codes == [1000]  # the run's end cancels the follower: a normal close, not 1011


def test_the_run_summary_says_which_fallbacks_were_taken(
    pytester: pytest.Pytester, devnet: EmbeddedDevnet
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gashammer(gas_per_sec="200k", duration="1s", warmup=0, senders=8, receipts=0)
        def test_fallbacks(hammer):
            hammer.run()
        """
    )
    with RpcProxy(devnet.rpc_url, faults=[RefuseMethods("eth_maxPriorityFeePerGas")]) as proxy:
        result = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            "--gashammer-rpc-url",
            proxy.url,
            "--gashammer-funder-key",
            devnet.funder.key,
        )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*fallback: tip 0 wei: the node did not answer eth_maxPriorityFeePerGas (JSON-RPC error -32601*",
            "*fallback: head tracking polled eth_blockNumber every 0.1 s instead of a newHeads subscription: "
            "no WebSocket URL (ws_url) for the node*",
        ]
    )
    assert result.stdout.str().count("fallback: tip 0 wei") == 1


# ------------------------------------------------------------------------------ a rising base fee


def test_a_rising_base_fee_is_followed_and_every_transaction_included(devnet: EmbeddedDevnet) -> None:
    start_fee = int(call(devnet.rpc_url, "eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
    stop = threading.Event()
    set_fees: list[int] = []

    def raise_base_fee() -> None:
        # The node's own rule would let the fee fall in these part-empty blocks: set the next
        # block's base fee every 50 ms, climbing to 5x in 2.5 s, then holding it there.
        began = time.monotonic()
        for _ in range(400):
            if stop.wait(0.05):
                return
            fee = int(start_fee * (1 + 4 * min((time.monotonic() - began) / 2.5, 1.0)))
            call(devnet.rpc_url, "anvil_setNextBlockBaseFeePerGas", [hex(fee)])
            set_fees.append(fee)

    climber = threading.Thread(target=raise_base_fee, daemon=True)
    try:
        report = run_edge(
            devnet,
            rpc_url=devnet.rpc_url,
            seed=304,
            start_gate=climber.start,
            inclusion_timeout="10s",
        )
    finally:
        stop.set()
        climber.join(10)
    assert set_fees and max(set_fees) >= 4 * start_fee
    verdicts = {verdict.name: verdict for verdict in evaluate([report], 10.0)}
    assert verdicts["inclusion"].status == "passed", verdicts["inclusion"].describe()
    assert report.digest.rejected == 0, report.errors
    caps = report.fee_caps
    assert caps is not None and caps["follows_base_fee"]
    assert caps["base_fee_high"] >= 4 * start_fee, caps
    assert caps["high"] > caps["first"] and caps["changes"] >= 2, caps
    fees = [note for note in run_notes([report]) if note.startswith(FEES_NOTE)]
    assert fees[-1].startswith(
        f"{FEES_NOTE}fee caps used {caps['low']:,}..{caps['high']:,} wei: re-priced"
    ), fees
