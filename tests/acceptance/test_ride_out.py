"""An edge rides out the bad moments of a healthy chain: a paused node, a JSON-RPC path that errs and
drops connections, a restarted node that forgot its pool, a feed message lost in transit.

Each test runs a short real load against a real anvil with a real fault, then checks that the
verdicts hold (nothing lost or refused that the chain did not lose or refuse) and that the edge's
report shows what it rode out. The restart test is the exception that proves the rule: a node that
forgets what it accepted broke a promise, so exactly those transactions are lost, and the run goes
on past them.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_gashammer.chain.rpc import TransportError, call
from pytest_gashammer.devnet.anvil import find_anvil
from pytest_gashammer.devnet.base import (
    FUNDER_BALANCE_WEI,
    NITRO_DEV_ADDRESS,
    NITRO_DEV_CHAIN_ID,
    NITRO_DEV_KEY,
    free_port,
)
from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.devnet.process import ManagedProcess
from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime
from pytest_gashammer.fault import FeedFault, FeedProxy, RpcCall, RpcFault, RpcProxy
from pytest_gashammer.feed.codec import FeedMessage
from pytest_gashammer.oracle.invariants import evaluate
from pytest_gashammer.results import Verdict
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from pytest_gashammer.telemetry.records import EdgeReport

pytestmark = pytest.mark.usefixtures("no_new_anvil")

INCLUSION_TIMEOUT = 15.0
# About 140 transfers a second over 16 senders for 6 s, every receipt checked (so the receipt,
# block-gas and balance invariants all have their say); bounds wide enough for a 2 s fault.
SPEC: dict[str, Any] = {
    "gas_per_sec": "3M",
    "duration": "6s",
    "warmup": 0,
    "senders": 16,
    "receipts": "all",
    "inclusion_timeout": f"{INCLUSION_TIMEOUT:g}s",
    "max_block_gap": "10s",
}
# Every invariant a healthy run with a feed passes; ones added later must at least not fail.
HEALTHY = frozenset(
    {
        "acceptance",
        "inclusion",
        "no_duplicate_inclusion",
        "nonce_contiguity",
        "receipt_status",
        "gas_model",
        "block_continuity",
        "block_timestamps",
        "block_gas",
        "block_production",
        "balance_conservation",
        "feed_sequence",
        "feed_exactly_once",
        "feed_order",
        "feed_block_hash",
    }
)


@pytest.fixture(scope="module")
def devnet() -> Iterator[EmbeddedDevnet]:
    node = EmbeddedDevnet().start()
    try:
        yield node
    finally:
        node.close()


def assignment(
    *, seed: int, rpc_url: str, chain_id: int, funder_key: str, feed_url: str | None, **spec: Any
) -> EdgeAssignment:
    plan = compile_plan(parse_spec({**SPEC, **spec}), name="ride-out", seed=seed)
    return EdgeAssignment(
        edge_id="e0",
        plan=plan.to_dict(),
        rpc_url=rpc_url,
        ws_url=None,  # blocks are polled, so every tracking call meets the fault too
        chain_id=chain_id,
        funder_key=funder_key,
        sender_count=plan.senders,
        feed_url=feed_url,
    )


def run_with_fault(work: EdgeAssignment, fault: Callable[[EdgeRuntime], None]) -> EdgeReport:
    """Run ``work``; ``fault(runtime)`` runs in a thread once the edge's clock started."""
    started = threading.Event()
    runtime = EdgeRuntime(work, start_gate=started.set)
    failure: list[BaseException] = []

    def inject() -> None:
        try:
            if started.wait(60):
                fault(runtime)
        except BaseException as exc:  # re-raised in the test's thread
            failure.append(exc)

    thread = threading.Thread(target=inject, name="fault", daemon=True)
    thread.start()
    report = runtime.run_blocking()
    thread.join(60)
    assert not thread.is_alive(), "the fault did not finish"
    if failure:
        raise failure[0]
    assert report.digest.sent > 300, f"too little was sent to show anything: {report.digest.sent}"
    return report


def verdicts_of(report: EdgeReport) -> dict[str, Verdict]:
    return {verdict.name: verdict for verdict in evaluate([report], INCLUSION_TIMEOUT)}


def assert_healthy(
    report: EdgeReport, *, except_: tuple[str, ...] = (), feed: bool = True
) -> dict[str, Verdict]:
    verdicts = verdicts_of(report)
    expected = {name for name in HEALTHY if feed or not name.startswith("feed_")} - set(except_)
    not_passed = {
        name: verdict.describe()
        for name, verdict in verdicts.items()
        if name in expected and verdict.status != "passed"
    }
    failed_others = {
        name: verdict.describe()
        for name, verdict in verdicts.items()
        if name not in expected and name not in except_ and verdict.status == "failed"
    }
    assert not not_passed and not failed_others, (not_passed, failed_others, report.notes)
    return verdicts


# -------------------------------------------------------------------------------- a paused node


def test_a_node_paused_for_two_seconds_is_ridden_out(devnet: EmbeddedDevnet) -> None:
    pid = devnet.pid
    assert pid is not None
    paused: dict[str, float] = {}

    def pause(runtime: EdgeRuntime) -> None:
        while runtime.progress.sent < 200:
            time.sleep(0.02)
        os.kill(pid, signal.SIGSTOP)
        try:
            paused["at"] = time.monotonic()
            time.sleep(2.0)
        finally:
            os.kill(pid, signal.SIGCONT)

    work = assignment(
        seed=501,
        rpc_url=devnet.rpc_url,
        chain_id=devnet.chain_id,
        funder_key=devnet.funder.key,
        feed_url=devnet.feed_url,
    )
    report = run_with_fault(work, pause)
    assert "at" in paused
    assert_healthy(report)
    # The pause shows where it should: as a wait for blocks and as latency, not as a loss.
    assert report.chain_stall is not None and report.chain_stall["longest_s"] >= 1.5, report.chain_stall
    assert report.digest.inclusion_latency.stats().max >= 1.5
    assert report.digest.lost == 0 and report.digest.sent_rejected == 0


# ------------------------------------------------------------------------ an RPC path that errs


class Flaky(RpcFault):
    """Answers every ``every``-th call of the listed methods with a JSON-RPC error without forwarding
    it (the node never sees it), and, every ``lose``-th transaction batch, forwards it and then
    replaces the node's answer with an internal error (the node has the transactions; the edge
    cannot know)."""

    def __init__(self, methods: dict[str, tuple[int, int]], *, lose: int) -> None:
        super().__init__()
        self.methods = methods
        self.lose = lose
        self.seen: dict[str, int] = {}
        self.errors_sent = 0
        self.answers_lost = 0

    def on_request(self, call: RpcCall) -> None:
        rule = self.methods.get(call.method)
        if rule is None:
            return
        every, code = rule
        count = self.seen[call.method] = self.seen.get(call.method, 0) + 1
        if count % every == 0:
            self.errors_sent += 1
            call.reply_error(code, "injected by the test", by=self.name)

    def on_answer(self, call: RpcCall) -> None:
        if call.method != "eth_sendRawTransaction" or not call.has_result or call.answered_by:
            return
        count = self.seen["lost"] = self.seen.get("lost", 0) + 1
        if count % self.lose == 0:
            self.answers_lost += 1
            call.answer = {
                "jsonrpc": "2.0",
                "id": call.request_id,
                "error": {"code": -32603, "message": "lost"},
            }


def test_errors_and_dropped_connections_on_the_rpc_path_are_asked_again(devnet: EmbeddedDevnet) -> None:
    flaky = Flaky(
        {
            "eth_sendRawTransaction": (9, -32603),
            "eth_getBlockByNumber": (4, -32603),
            "eth_blockNumber": (7, -32005),
            "eth_getBlockReceipts": (3, -32099),
        },
        lose=11,
    )
    proxy = RpcProxy(devnet.rpc_url, faults=[flaky]).start()
    port = proxy.port
    second: list[RpcProxy] = []

    def cut(runtime: EdgeRuntime) -> None:
        # Mid-run the proxy goes away for half a second (connections reset, then refused) and comes
        # back on the same port.
        while runtime.progress.sent < 300:
            time.sleep(0.02)
        proxy.stop()
        time.sleep(0.5)
        second.append(RpcProxy(devnet.rpc_url, faults=[flaky], port=port).start())

    try:
        work = assignment(
            seed=502,
            rpc_url=proxy.url,
            chain_id=devnet.chain_id,
            funder_key=devnet.funder.key,
            feed_url=devnet.feed_url,
        )
        report = run_with_fault(work, cut)
    finally:
        proxy.stop()
        for other in second:
            other.stop()
    assert flaky.errors_sent > 20 and flaky.answers_lost > 3, (flaky.errors_sent, flaky.answers_lost)
    assert_healthy(report)
    assert report.digest.sent_rejected == 0 and report.digest.lost == 0
    assert not report.rejections, report.rejections
    retried = report.rpc_retries["retried"]
    assert retried.get("eth_sendRawTransaction: rpc_-32603", 0) > 0, retried
    assert retried.get("eth_getBlockByNumber: rpc_-32603", 0) > 0, retried
    assert retried.get("eth_getBlockReceipts: rpc_-32099", 0) > 0, retried
    assert any(key.endswith((": refused", ": reset")) for key in retried), retried  # the proxy's absence
    # A lost answer left the outcome unknown; the resend was "already known", or "nonce too low" and
    # then found by hash. No transaction was given up (a tracking call may be: it is asked again later).
    assert not [key for key in report.rpc_retries["gave_up"] if key.startswith("eth_send")], (
        report.rpc_retries
    )
    assert any(note.startswith("retries: ") and "asked again" in note for note in report.notes), report.notes


# ---------------------------------------------------------------------- a feed message lost in transit


class LoseOnce(FeedFault):
    """Drops the message numbered ``sequence`` the first time it is served; served again, it passes."""

    def __init__(self, sequence: int) -> None:
        super().__init__()
        self.sequence = sequence
        self.dropped = 0

    def on_messages(self, stream: int, messages: list[FeedMessage]) -> list[FeedMessage]:
        kept = [m for m in messages if not (m.sequence_number == self.sequence and not self.dropped)]
        if len(kept) < len(messages):
            self.dropped += 1
            self._record(self.sequence, sequence=self.sequence)
        return kept


def test_a_feed_message_lost_in_transit_is_recovered_not_reported_lost(devnet: EmbeddedDevnet) -> None:
    assert devnet.feed_url is not None
    head = int(call(devnet.rpc_url, "eth_blockNumber"), 16)
    lose = LoseOnce(head + 12)  # about 3 s into the run: a message that carries transactions
    with FeedProxy(devnet.feed_url, faults=[lose]) as proxy:
        work = assignment(
            seed=503,
            rpc_url=devnet.rpc_url,
            chain_id=devnet.chain_id,
            funder_key=devnet.funder.key,
            feed_url=proxy.url,
        )
        report = run_with_fault(work, lambda runtime: None)
    assert lose.dropped == 1
    verdicts = assert_healthy(report)
    stats, findings = report.feed_stats, report.feed_findings
    assert stats is not None and findings is not None
    assert stats["gaps"] == [(lose.sequence, lose.sequence + 1)]
    assert (
        stats["recovered_gaps"] == [(lose.sequence, lose.sequence + 1)] and stats["recovered_messages"] == 1
    )
    assert stats["duplicates"] == [] and stats["late"] == [] and stats["replayed"] >= 1
    assert findings["missing_from_feed"] == 0 and findings["blocks_missing_from_feed"] == 0
    assert "recovered by resuming" in verdicts["feed_sequence"].summary


# ------------------------------------------------------------------------- a node that restarts


class StatefulAnvil:
    """anvil on a fixed loopback port with ``--state FILE``: stopped with SIGTERM it dumps its chain
    (blocks, accounts) there, started again it loads it. Its pool is not part of the state."""

    def __init__(self, workdir: Path) -> None:
        self.binary = find_anvil()
        self.workdir = workdir
        self.port = free_port()
        self.state = workdir / "state.json"
        self.process: ManagedProcess | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StatefulAnvil:
        self.starts += 1
        argv = [
            str(self.binary), "--host", "127.0.0.1", "--port", str(self.port),
            "--chain-id", str(NITRO_DEV_CHAIN_ID), "--block-time", "0.25", "--order", "fifo",
            "--accounts", "0", "--quiet", "--state", str(self.state),
        ]  # fmt: skip
        self.process = ManagedProcess(argv, log_path=self.workdir / f"anvil-{self.starts}.log")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.log_tail()
            try:
                call(self.url, "eth_chainId", timeout=1)
                return self
            except TransportError:
                time.sleep(0.02)
        raise AssertionError(f"anvil did not answer on {self.url}: {self.process.log_tail()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()  # SIGTERM: anvil dumps its state on the way out
            self.process = None


def test_a_restarted_node_that_forgot_its_pool_loses_exactly_those_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    node = StatefulAnvil(tmp_path).start()
    held: dict[str, Any] = {}
    try:
        call(node.url, "anvil_setBalance", [NITRO_DEV_ADDRESS, hex(FUNDER_BALANCE_WEI)])

        def restart(runtime: EdgeRuntime) -> None:
            while runtime.progress.sent < 300:
                time.sleep(0.02)
            # Hold blocks back for a moment, so the pool surely holds accepted transactions, then
            # restart the node on the same port with its state: the pool is gone.
            call(node.url, "evm_setIntervalMining", [0])
            time.sleep(0.5)
            held["pool"] = int(call(node.url, "txpool_status")["pending"], 16)
            node.stop()
            time.sleep(0.3)
            node.start()

        work = assignment(
            seed=504, rpc_url=node.url, chain_id=NITRO_DEV_CHAIN_ID, funder_key=NITRO_DEV_KEY, feed_url=None
        )
        report = run_with_fault(work, restart)
    finally:
        node.stop()
    assert held["pool"] > 10, held
    forgotten = sorted(report.lost_probe)
    assert len(forgotten) >= held["pool"]  # everything pooled at the restart, and what came after
    assert forgotten and all("forgotten by the node" in report.lost_probe[tx] for tx in forgotten), (
        report.lost_probe
    )
    assert report.errors.get("forgotten_by_node") == len(forgotten)
    # Exactly the forgotten transactions are lost: the verdict names them and nothing else.
    verdicts = assert_healthy(report, except_=("inclusion",), feed=False)
    inclusion = verdicts["inclusion"]
    assert inclusion.status == "failed"
    assert report.digest.lost == len(forgotten)
    assert set(inclusion.evidence["lost"]) <= set(forgotten)
    assert inclusion.evidence["lost_count"] == len(forgotten)
    assert {line.split(":")[0] for line in inclusion.evidence["what_the_node_says"]} <= set(forgotten)
    # The senders went on: their forgotten nonces were filled and everything after them was included.
    assert report.digest.included + report.digest.lost + report.digest.sent_rejected == report.digest.sent
    assert verdicts["nonce_contiguity"].status == "passed"
    assert any("the node forgot" in note for note in report.notes), report.notes
