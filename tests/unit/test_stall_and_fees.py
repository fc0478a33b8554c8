"""A stopped chain named as such, fees that follow the base fee, and the notes a run's fallbacks leave."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from pytest_gashammer.chain.signer import FastSigner
from pytest_gashammer.edge.accounts import derive_senders
from pytest_gashammer.edge.gas_model import GasModel
from pytest_gashammer.edge.preparation import (
    FEE_HEADROOM,
    REPRICE_STEP,
    RunPreparation,
    fee_cap_for,
    make_schedule,
    make_templates,
    next_fee_cap,
)
from pytest_gashammer.edge.runtime import EdgeAssignment, Progress
from pytest_gashammer.edge.submitter import Submitter
from pytest_gashammer.edge.tracker import StallClock, stalled_at_end
from pytest_gashammer.hive.aggregate import run_notes
from pytest_gashammer.oracle.invariants import block_production
from pytest_gashammer.results import FALLBACK_NOTE, FEES_NOTE
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from pytest_gashammer.telemetry.records import EdgeReport, TxLog
from tests.unit.edge_reports import digest_of

SECOND = 1_000_000_000
CHAIN_ID = 412346


# ----------------------------------------------------------------------------------------------
# the stall clock


def test_the_stall_clock_counts_only_time_with_transactions_outstanding() -> None:
    clock = StallClock(head=10)
    clock.tick(0, 10, busy=False)
    clock.tick(30 * SECOND, 10, busy=False)  # idle, nothing waiting: an on-demand chain is not stuck
    assert clock.facts(30 * SECOND, 10.0)["longest_s"] == 0.0
    clock.tick(31 * SECOND, 10, busy=True)  # a transaction waits from here
    clock.tick(34 * SECOND, 11, busy=True)  # a block after 3 s; still waiting for the next
    clock.tick(36 * SECOND, 12, busy=False)
    facts = clock.facts(40 * SECOND, 10.0)
    assert facts == {"longest_s": 3.0, "head": 10, "open_s": 0.0, "last_head": 12, "bound_s": 10.0}


def test_a_stall_still_on_at_the_end_is_the_longest_and_open() -> None:
    clock = StallClock(head=5)
    clock.tick(0, 5, busy=True)
    clock.tick(2 * SECOND, 6, busy=True)  # block 6, then nothing more
    clock.tick(8 * SECOND, 6, busy=True)
    facts = clock.facts(14 * SECOND, 10.0)
    assert facts["longest_s"] == 12.0
    assert facts["open_s"] == 12.0
    assert facts["head"] == 6
    assert stalled_at_end(facts, inclusion_timeout=30.0) == "no new block for 12.0 s (head stuck at #6)"
    # a short drain that saw no block at all is a stall for the evidence, too
    assert stalled_at_end({**facts, "open_s": 3.5}, inclusion_timeout=3.0) is not None
    assert stalled_at_end({**facts, "open_s": 1.0}, inclusion_timeout=30.0) is None


def report_with(stall: dict[str, Any] | None, edge_id: str = "e0") -> EdgeReport:
    return EdgeReport(
        edge_id=edge_id,
        host="h",
        clock_origin_ns=0,
        wall_origin_ns=0,
        digest=digest_of(TxLog()),
        chain_stall=stall,
    )


def stall(longest: float, head: int, open_s: float = 0.0, bound: float = 10.0) -> dict[str, Any]:
    return {"longest_s": longest, "head": head, "open_s": open_s, "last_head": head, "bound_s": bound}


def test_block_production_fails_on_a_stall_longer_than_the_bound_naming_the_head() -> None:
    verdict = block_production([report_with(stall(2.0, 40)), report_with(stall(12.5, 41, 12.5), "e1")], 30.0)
    assert verdict.status == "failed"
    assert verdict.summary == (
        "the chain stopped producing blocks: no new block for 12.5 s (head stuck at #41), "
        "longer than max_block_gap=10 s"
    )
    assert verdict.evidence["stalls"] == [
        "e1: no new block for 12.5 s (head stuck at #41) while transactions were outstanding; "
        "still none when the run ended (12.5 s)"
    ]


def test_block_production_passes_within_the_bound_and_is_inconclusive_without_facts() -> None:
    passed = block_production([report_with(stall(9.9, 3, bound=10.0))], 30.0)
    assert passed.status == "passed"
    assert "longest wait 9.9 s" in passed.summary
    assert block_production([report_with(None)], 30.0).status == "inconclusive"


def test_max_block_gap_reaches_the_plan() -> None:
    plan = compile_plan(parse_spec({"gas_per_sec": "1M", "max_block_gap": "25s"}), name="p", seed=1)
    assert plan.max_block_gap == 25.0
    default = compile_plan(parse_spec({"gas_per_sec": "1M"}), name="p", seed=1)
    assert default.max_block_gap == 10.0


# ----------------------------------------------------------------------------------------------
# fees that follow the base fee


def test_the_fee_cap_moves_by_steps_not_per_block() -> None:
    tip = 1
    cap = fee_cap_for(100, tip)  # 201
    assert cap == 201
    ceiling = cap * FEE_HEADROOM
    assert next_fee_cap(cap, 110, tip, ceiling) is None  # 221 < 201 * 1.25: keep
    raised = next_fee_cap(cap, 130, tip, ceiling)
    assert raised == 261 and raised >= cap * REPRICE_STEP
    assert next_fee_cap(cap, 10_000, tip, ceiling) == ceiling  # never above what funding covers
    assert next_fee_cap(ceiling, 10_000, tip, ceiling) is None
    assert next_fee_cap(cap, 50, tip, ceiling) is None  # 101 is not under half of 201
    assert next_fee_cap(cap, 30, tip, ceiling) == 61  # a base fee that fell far: follow it down


def fee_submitter(fee_ceiling: int | None) -> Submitter:
    plan = compile_plan(parse_spec({"gas_per_sec": "1M", "duration": "2s", "warmup": 0}), name="f", seed=3)
    accounts = derive_senders(plan.seed, 0, 2)
    _, templates = make_templates(plan, CHAIN_ID, accounts)
    model = GasModel.nominal(templates)
    assignment = EdgeAssignment(
        edge_id="e0",
        plan=plan.to_dict(),
        rpc_url="http://127.0.0.1:1",
        ws_url=None,
        chain_id=CHAIN_ID,
        funder_key="0x" + "01" * 32,
        sender_count=2,
    )
    return Submitter(
        None,  # type: ignore[arg-type]
        log=TxLog(),
        senders=accounts,
        start_nonces=[0, 0],
        chain_id=CHAIN_ID,
        templates=templates,
        gas_model=model,
        schedule=make_schedule(plan, assignment, model),
        rng=random.Random(1),
        plan=plan,
        connections=1,
        max_fee_per_gas=201,
        max_priority_fee_per_gas=1,
        progress=Progress(),
        errors=Counter(),
        notes=[],
        fee_ceiling=fee_ceiling,
    )


def test_the_submitter_signs_with_the_cap_the_latest_base_fee_calls_for() -> None:
    submitter = fee_submitter(fee_ceiling=603)
    signer = submitter._prepared_for(0, 21_000)
    assert submitter._prepared_for(0, 21_000) is signer  # prepared once per cap
    submitter.follow_base_fee(105)  # within the step: nothing re-prepared
    assert submitter._prepared_for(0, 21_000) is signer
    submitter.follow_base_fee(200)
    assert submitter.max_fee == 401
    raw, _ = submitter._prepared_for(0, 21_000).sign_fields(0, to=None, value=0, data=b"")
    reference = FastSigner(submitter.senders[0].key, CHAIN_ID).prepare(
        {
            "type": 2,
            "gas": 21_000,
            "maxFeePerGas": 401,
            "maxPriorityFeePerGas": 1,
            "to": None,
            "value": 0,
            "data": b"",
        }
    )
    assert raw == reference.sign_fields(0, to=None, value=0, data=b"")[0]
    submitter.follow_base_fee(1_000)
    assert submitter.max_fee == 603  # the ceiling
    submitter.follow_base_fee(None)  # a pre-London block says nothing
    assert submitter.fee_caps == {
        "first": 201,
        "low": 201,
        "high": 603,
        "changes": 2,
        "ceiling": 603,
        "follows_base_fee": True,
        "base_fee_high": 1_000,
    }


def test_a_fixed_cap_never_moves() -> None:
    submitter = fee_submitter(fee_ceiling=None)
    submitter.follow_base_fee(10_000)
    assert submitter.max_fee == 201
    assert submitter.fee_caps["changes"] == 0
    assert submitter.fee_caps["base_fee_high"] == 10_000


def test_a_preparation_carries_its_ceiling_and_notes() -> None:
    preparation = RunPreparation(
        max_fee_per_gas=10,
        max_priority_fee_per_gas=0,
        template_setup=[],
        gas_model=[],
        fee_ceiling=30,
        notes=["n"],
    )
    again = RunPreparation.from_dict(preparation.to_dict())
    assert again == preparation and again.follows_base_fee
    older = {
        key: value for key, value in preparation.to_dict().items() if key not in ("fee_ceiling", "notes")
    }
    assert not RunPreparation.from_dict(older).follows_base_fee


# ----------------------------------------------------------------------------------------------
# notes, once per run


def test_the_same_note_from_every_edge_is_said_once_and_fees_are_summed_up() -> None:
    polling = (
        f"{FALLBACK_NOTE}head tracking polled eth_blockNumber every 0.1 s instead of a newHeads subscription"
    )
    reports = [report_with(None, f"e{index}") for index in range(3)]
    for index, report in enumerate(reports):
        report.notes = [polling, f"edge {index} own note"]
        report.fee_caps = {
            "first": 201,
            "low": 201,
            "high": 201 + 100 * index,
            "changes": index,
            "ceiling": 603,
            "follows_base_fee": True,
            "base_fee_high": 150 + index,
        }
    notes = run_notes(reports)
    assert notes.count(polling) == 1
    assert [note for note in notes if note.startswith("edge")] == [
        "edge 0 own note",
        "edge 1 own note",
        "edge 2 own note",
    ]
    assert (
        notes[-1]
        == f"{FEES_NOTE}fee caps used 201..401 wei: re-priced 3 time(s) as the base fee moved; highest base fee seen 152 wei"
    )
    reports[0].fee_caps = {**reports[0].fee_caps, "base_fee_high": 700}
    assert run_notes(reports)[-1].startswith(
        f"{FALLBACK_NOTE}the base fee reached 700 wei, above the highest fee cap"
    )
