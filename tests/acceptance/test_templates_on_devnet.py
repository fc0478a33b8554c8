"""Every built-in template on a real anvil: included, the expected receipt status, the modelled gas."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime
from pytest_gashammer.oracle.invariants import evaluate
from pytest_gashammer.scenario.spec import ScenarioPlan, compile_plan, parse_spec
from pytest_gashammer.telemetry.records import NOT_YET, EdgeReport
from pytest_gashammer.workload.registry import resolve_template

FEES = {"max_fee_per_gas": 5 * 10**9, "max_priority_fee_per_gas": 10**9}


@pytest.fixture(scope="module")
def chain() -> Iterator[EmbeddedDevnet]:
    with EmbeddedDevnet().start() as devnet:
        yield devnet


def run(devnet: EmbeddedDevnet, seed: int, **spec: Any) -> tuple[EdgeReport, ScenarioPlan]:
    plan = compile_plan(
        parse_spec({"gas_per_sec": "2M", "duration": "2s", "warmup": 0, **spec}), name="templates", seed=seed
    )
    assignment = EdgeAssignment(
        edge_id="e0",
        plan=plan.to_dict(),
        rpc_url=devnet.rpc_url,
        ws_url=devnet.ws_url,
        chain_id=devnet.chain_id,
        funder_key=devnet.funder.key,
        sender_count=plan.senders,
    )
    return EdgeRuntime(assignment).run_blocking(), plan


#: These runs follow no feed, and value conservation only applies to transfer-only runs.
MAY_NOT_APPLY = {
    "feed_sequence",
    "feed_exactly_once",
    "feed_order",
    "feed_block_hash",
    "balance_conservation",
}


def assert_all_verdicts_pass(report: EdgeReport, plan: ScenarioPlan) -> None:
    for verdict in evaluate([report], plan.inclusion_timeout):
        if verdict.name in MAY_NOT_APPLY and verdict.status == "inconclusive":
            continue
        assert verdict.status == "passed", verdict.describe()


def gas_by_template(report: EdgeReport) -> dict[int, list[int]]:
    log = report.txs
    used: dict[int, list[int]] = {}
    for row in range(len(log)):
        assert log.gas_used[row] != NOT_YET, f"no receipt for {log.tx_hash(row)}"
        used.setdefault(log.template[row], []).append(log.gas_used[row])
    return used


@pytest.mark.parametrize(
    ("name", "params", "gas_per_sec"),
    [
        ("transfer", {}, "1M"),
        ("erc20", {}, "2M"),
        ("storage", {}, "4M"),
        ("storage", {"slots": 1}, "2M"),
        ("calldata", {}, "2M"),
        ("calldata", {"bytes": 4096, "zero_fraction": 0.5}, "2M"),
        ("deploy", {}, "4M"),
        ("deploy", {"code_size": 24_576}, "20M"),
        ("revert", {}, "1M"),
    ],
)
def test_template_is_included_with_its_status_and_modelled_gas(
    chain: EmbeddedDevnet, name: str, params: dict[str, Any], gas_per_sec: str
) -> None:
    template = resolve_template(name)
    seed = zlib.crc32(repr((name, params)).encode())
    report, plan = run(chain, seed, gas_per_sec=gas_per_sec, workload={name: {"share": 1.0, **params}})
    assert report.errors == {}, (report.errors, report.notes)
    assert_all_verdicts_pass(report, plan)
    log = report.txs
    assert len(log) >= 6
    assert set(log.receipt_status) == {template.expected_status}
    nominal = template.nominal_gas_for(params)
    (used,) = gas_by_template(report).values()
    for gas in used:
        assert abs(gas - nominal) <= template.gas_tolerance * nominal, (name, gas, nominal)
    # The models are exact on the devnet: every transaction used precisely the nominal gas.
    assert set(used) == {int(nominal)}
    assert report.template_gas_model == [nominal]
    if template.calibrate:
        assert not [note for note in report.notes if "eth_estimateGas" in note], report.notes


MIX = {
    "transfer": 1.0,
    "erc20": 2.0,
    "storage": {"share": 3.0, "slots": 2},
    "calldata": {"share": 1.0, "bytes": 1024, "zero_fraction": 0.25},
    "deploy": {"share": 2.0, "code_size": 256},
    "revert": 1.0,
}


def test_a_weighted_mix_shares_the_gas_by_weight(chain: EmbeddedDevnet) -> None:
    report, plan = run(chain, seed=4242, gas_per_sec="10M", duration="3s", workload=MIX)
    assert report.errors == {}, (report.errors, report.notes)
    assert_all_verdicts_pass(report, plan)
    used = gas_by_template(report)
    total = sum(sum(values) for values in used.values())
    statuses = {report.templates[index]: set() for index in used}
    for row in range(len(report.txs)):
        statuses[report.templates[report.txs.template[row]]].add(report.txs.receipt_status[row])
    assert statuses == {name: {resolve_template(name).expected_status} for name in MIX}
    for index, (name, weight, _params) in enumerate(plan.workload):
        share = sum(used[index]) / total
        assert abs(share / weight - 1) < 0.03, f"{name}: gas share {share:.3f}, weight {weight:.3f}"


def test_same_seed_and_fees_give_the_same_transactions_for_contract_templates() -> None:
    workload = {
        "erc20": 1.0,
        "storage": {"share": 1.0, "slots": 3},
        "revert": 0.5,
        "deploy": 0.5,
        "calldata": 0.5,
    }

    def hashes() -> bytes:
        with EmbeddedDevnet().start() as devnet:
            report, plan = run(devnet, seed=777, gas_per_sec="3M", workload=workload, **FEES)
        assert_all_verdicts_pass(report, plan)
        return bytes(report.txs.hashes)

    first, second = hashes(), hashes()
    assert len(first) // 32 > 40
    # Same token and contract addresses, holders, salts, tags and code: identical signed transactions.
    assert first == second
