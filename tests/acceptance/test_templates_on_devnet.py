"""Every built-in template on a real anvil: included, the expected receipt status, the modelled gas."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any, NamedTuple

import pyarrow as pa
import pytest

from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.oracle.invariants import evaluate
from pytest_gashammer.scenario.spec import ScenarioPlan, compile_plan, parse_spec
from pytest_gashammer.telemetry.records import EdgeReport
from pytest_gashammer.workload.registry import resolve_template
from tests.acceptance.edge_rows import assignment_on, run_with_rows

FEES = {"max_fee_per_gas": 5 * 10**9, "max_priority_fee_per_gas": 10**9}


@pytest.fixture(scope="module")
def chain() -> Iterator[EmbeddedDevnet]:
    with EmbeddedDevnet().start() as devnet:
        yield devnet


class Run(NamedTuple):
    report: EdgeReport
    plan: ScenarioPlan
    #: Every transaction of the run, as the edge streamed it once final (the hive's Parquet rows).
    rows: pa.Table


def run(devnet: EmbeddedDevnet, seed: int, **spec: Any) -> Run:
    plan = compile_plan(
        parse_spec({"gas_per_sec": "2M", "duration": "2s", "warmup": 0, **spec}), name="templates", seed=seed
    )
    assignment = assignment_on(devnet, plan)
    report, rows = run_with_rows(assignment)
    return Run(report, plan, rows)


#: These runs follow no feed, and value conservation only applies to transfer-only runs.
MAY_NOT_APPLY = {
    "feed_sequence",
    "feed_exactly_once",
    "feed_order",
    "feed_block_hash",
    "feed_matches_chain",
    "balance_conservation",
}


def assert_all_verdicts_pass(report: EdgeReport, plan: ScenarioPlan) -> None:
    for verdict in evaluate([report], plan.inclusion_timeout):
        if verdict.name in MAY_NOT_APPLY and verdict.status == "inconclusive":
            continue
        assert verdict.status == "passed", verdict.describe()


def gas_by_template(rows: pa.Table) -> dict[str, list[int]]:
    used: dict[str, list[int]] = {}
    for row in rows.select(["tx_hash", "template", "gas_used"]).to_pylist():
        assert row["gas_used"] is not None, f"no receipt for 0x{row['tx_hash'].hex()}"
        used.setdefault(row["template"], []).append(row["gas_used"])
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
    report, plan, rows = run(chain, seed, gas_per_sec=gas_per_sec, workload={name: {"share": 1.0, **params}})
    assert report.errors == {}, (report.errors, report.notes)
    assert_all_verdicts_pass(report, plan)
    assert rows.num_rows >= 6
    assert set(rows.column("receipt_status").to_pylist()) == {template.expected_status}
    nominal = template.nominal_gas_for(params)
    (used,) = gas_by_template(rows).values()
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
    report, plan, rows = run(chain, seed=4242, gas_per_sec="10M", duration="3s", workload=MIX)
    assert report.errors == {}, (report.errors, report.notes)
    assert_all_verdicts_pass(report, plan)
    used = gas_by_template(rows)
    total = sum(sum(values) for values in used.values())
    statuses: dict[str, set[int]] = {name: set() for name in used}
    for row in rows.select(["template", "receipt_status"]).to_pylist():
        statuses[row["template"]].add(row["receipt_status"])
    assert statuses == {name: {resolve_template(name).expected_status} for name in MIX}
    for name, weight, _params in plan.workload:
        share = sum(used[name]) / total
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
            report, plan, rows = run(devnet, seed=777, gas_per_sec="3M", workload=workload, **FEES)
        assert_all_verdicts_pass(report, plan)
        return b"".join(rows.column("tx_hash").to_pylist())

    first, second = hashes(), hashes()
    assert len(first) // 32 > 40
    # Same token and contract addresses, holders, salts, tags and code: identical signed transactions.
    assert first == second
