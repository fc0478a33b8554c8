"""The edge runtime against a real anvil: determinism from the seed, and nonce recovery."""

from __future__ import annotations

import pytest

from pytest_gashammer.chain.rpc import call
from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.edge.accounts import derive_senders
from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime
from pytest_gashammer.oracle.invariants import evaluate
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from tests.acceptance.edge_rows import RowSink, assignment_on, run_with_rows, streaming

pytestmark = pytest.mark.usefixtures("no_new_anvil")


def assignment_for(devnet: EmbeddedDevnet, **spec: object) -> EdgeAssignment:
    plan = compile_plan(
        parse_spec({"gas_per_sec": "1M", "duration": "2s", "warmup": 0, **spec}), name="edge", seed=1234
    )
    return assignment_on(devnet, plan)


def run_on_fresh_devnet(**spec: object) -> tuple[bytes, list[tuple[int, int]]]:
    with EmbeddedDevnet().start() as devnet:
        _, rows = run_with_rows(assignment_for(devnet, **spec))
    hashes = b"".join(rows.column("tx_hash").to_pylist())
    return hashes, list(
        zip(rows.column("sender_index").to_pylist(), rows.column("nonce").to_pylist(), strict=True)
    )


def test_same_seed_same_transactions() -> None:
    # Fixed fees: the automatic fee follows the base fee, which depends on when the run starts.
    fees = {"max_fee_per_gas": 5 * 10**9, "max_priority_fee_per_gas": 10**9}
    first_hashes, first_nonces = run_on_fresh_devnet(**fees)
    second_hashes, second_nonces = run_on_fresh_devnet(**fees)
    assert len(first_hashes) // 32 > 80
    # Same senders, nonces, recipients and calldata: the signed transactions are identical.
    assert first_nonces == second_nonces
    assert first_hashes == second_hashes


def test_a_foreign_transaction_on_a_sender_nonce_is_recovered_without_a_gap() -> None:
    with EmbeddedDevnet().start() as devnet:
        assignment = assignment_for(devnet)
        victim = derive_senders(1234, 0, 1)[0]

        def occupy_next_nonce() -> None:
            # Between setup and the first send, someone else uses sender 0's next nonce.
            from eth_account import Account

            nonce = int(call(devnet.rpc_url, "eth_getTransactionCount", [victim.address, "pending"]), 16)
            latest = call(devnet.rpc_url, "eth_getBlockByNumber", ["latest", False])
            fee = 4 * int(latest["baseFeePerGas"], 16) + 10**9
            signed = Account.from_key(victim.key).sign_transaction(
                {
                    "type": 2,
                    "chainId": devnet.chain_id,
                    "nonce": nonce,
                    "to": victim.address,
                    "value": 0,
                    "gas": 21_000,
                    "maxFeePerGas": fee,
                    "maxPriorityFeePerGas": 10**9,
                }
            )
            call(devnet.rpc_url, "eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])

        report = EdgeRuntime(assignment, start_gate=occupy_next_nonce).run_blocking()
    refused = {
        kind: count
        for kind, count in report.errors.items()
        if kind in ("nonce_too_low", "replacement_underpriced")
    }
    assert sum(refused.values()) == 1, report.errors
    assert report.sender_foreign_nonces[0], "the occupied nonce is recorded as foreign"
    verdicts = {verdict.name: verdict for verdict in evaluate([report], 30.0)}
    assert verdicts["nonce_contiguity"].status == "passed", verdicts["nonce_contiguity"].describe()
    assert verdicts["inclusion"].status == "passed", verdicts["inclusion"].describe()


def test_refused_transactions_leave_no_nonce_gap_and_nothing_stranded() -> None:
    with EmbeddedDevnet().start() as devnet:
        assignment = assignment_for(
            devnet, workload={"tests.acceptance.templates_for_tests:SometimesTooExpensive": 1.0}, senders=4
        )
        report = EdgeRuntime(assignment).run_blocking()
    refused = report.errors.get("insufficient_funds", 0)
    assert refused >= 10, report.errors
    assert report.digest.included == report.digest.rows - refused
    verdicts = {verdict.name: verdict for verdict in evaluate([report], 30.0)}
    # Each refused nonce was reused by the sender's next transaction: no gap, nothing lost.
    assert verdicts["nonce_contiguity"].status == "passed", verdicts["nonce_contiguity"].describe()
    assert verdicts["inclusion"].status == "passed", verdicts["inclusion"].describe()


def test_a_stopped_run_drops_what_it_signed_ahead_and_strands_nothing() -> None:
    import threading
    import time

    with EmbeddedDevnet().start() as devnet:
        assignment = assignment_for(devnet, gas_per_sec="20M", duration="8s", senders=8)
        sink = RowSink()
        runtime = EdgeRuntime(
            streaming(assignment),
            start_gate=lambda: threading.Timer(1.5, runtime.stop).start(),
            telemetry_sink=sink,
        )
        started = time.monotonic()
        report = runtime.run_blocking()
        rows = sink.rows(report)
        assert time.monotonic() - started < 8, "the stop did not end the run"
        assert 300 < rows.num_rows < 2_000, rows.num_rows
        assert rows.column("sent_ns").null_count == 0, (
            "a transaction signed ahead but never sent is in the log"
        )
        senders = derive_senders(1234, 0, 8)
        sender_of = rows.column("sender_index").to_pylist()
        for index, sender in enumerate(senders):
            sent = sum(1 for s in sender_of if s == index)
            pending = int(call(devnet.rpc_url, "eth_getTransactionCount", [sender.address, "pending"]), 16)
            # The node holds exactly what was sent: no nonce above it was signed into a gap.
            assert pending == report.sender_start_nonces[index] + sent
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            mined = [
                int(call(devnet.rpc_url, "eth_getTransactionCount", [sender.address, "latest"]), 16)
                for sender in senders
            ]
            if sum(mined) - sum(report.sender_start_nonces) == rows.num_rows:
                break
            time.sleep(0.25)
        assert sum(mined) - sum(report.sender_start_nonces) == rows.num_rows, (
            "sent transactions were stranded"
        )
