"""Aggregation: the edges' reports merged into one RunResult (counts, sustain rates, latency, edges)."""

from __future__ import annotations

import math

import pytest

from pytest_gashammer.hive.aggregate import build_result
from pytest_gashammer.oracle.invariants import (
    evaluate,
)
from pytest_gashammer.results import RunResult
from pytest_gashammer.scenario.spec import Phase, ScenarioPlan
from pytest_gashammer.telemetry.records import (
    BlockRecord,
    EdgeReport,
)
from tests.unit.edge_reports import ALICE, GAP_FILLER, ORIGIN, Log, report_of

# ----------------------------------------------------------------------------------------------
# build_result


def plan_of(warmup: float = 1.0, sustain: float = 10.0, cooldown: float = 1.0) -> ScenarioPlan:
    end = warmup + sustain
    return ScenarioPlan(
        name="tests/test_chain.py::test_rate",
        seed=77,
        target_gas_per_sec=210_000.0,
        phases=(
            Phase("warmup", 0.0, warmup, 21_000.0, 21_000.0),
            Phase("sustain", warmup, end, 210_000.0, 210_000.0),
            Phase("cooldown", end, end + cooldown, 210_000.0, 0.0),
        ),
        arrival="constant",
        workload=(("transfer", 1.0),),
        senders=2,
        inclusion_timeout=30.0,
        receipts=None,
        max_in_flight=None,
    )


def result_of(plan: ScenarioPlan, reports: list[EdgeReport]) -> RunResult:
    verdicts = evaluate(reports, plan.inclusion_timeout)
    return build_result(
        plan, reports, verdicts, chain_id=412346, devnet_kind="embedded", node_version="anvil", duration=14.0
    )


def test_counts_of_sent_accepted_rejected_included_and_lost() -> None:
    log = Log()
    log.ok(1.5, nonce=0)
    log.add(intended=2.0, sent=2.0, accepted=2.1, nonce=1)  # lost
    log.add(intended=2.5, sent=2.5, rejected="nonce_too_low", nonce=2)
    log.add(intended=3.0, sent=3.0, included=4.0, nonce=3)  # accept answer lost, still included
    log.add(intended=3.5, nonce=4)  # scheduled, never sent
    result = result_of(plan_of(), [report_of(log)])
    assert result.sent == 4
    assert result.accepted == 3
    assert result.rejected == 1
    assert result.included == 2
    assert result.lost == 1
    assert result.name == "tests/test_chain.py::test_rate"
    assert result.seed == 77
    assert result.target_gas_per_sec == 210_000.0
    assert result.sustain_seconds == 10.0
    assert result.chain_id == 412346


def two_edges() -> tuple[EdgeReport, EdgeReport]:
    """Edge A sends 10 tx/s through the sustain phase, each included 2 s after it was due.

    Edge B (another clock origin) has one rejected and one lost transaction in the sustain phase.
    """
    a = Log(origin=ORIGIN)
    a.ok(0.5, nonce=0, latency=2.0)  # warmup, included at 2.5
    for k in range(100):
        intended = 1.0 + k / 10
        a.add(
            intended=intended,
            sent=intended + 0.01,
            accepted=intended + 0.05,
            included=intended + 2.0,
            status=1,
            gas_used=21_000,
            nonce=k + 1,
        )
    a.ok(11.5, nonce=101, latency=2.0)  # cooldown, included at 13.5
    b = Log(origin=5 * ORIGIN + 12_345)
    b.add(intended=2.0, sent=2.01, rejected="txpool_full", sender=1)
    b.add(intended=3.0, sent=3.01, accepted=3.05, sender=1)
    block = BlockRecord(1, "0x01", "0x00", 1, 21_000, 30_000_000, 1, ORIGIN)
    report_a = report_of(
        a,
        edge_id="edge-a",
        errors={"nonce_too_low": 2},
        notes=["a note"],
        blocks=[block, block],
    )
    report_b = report_of(
        b,
        edge_id="edge-b",
        errors={"nonce_too_low": 1, "txpool_full": 4},
        notes=["b note"],
        blocks=[block],
    )
    return report_a, report_b


def test_sustain_rates_count_only_transactions_intended_in_the_sustain_phase() -> None:
    result = result_of(plan_of(), list(two_edges()))
    # 100 from edge A and 2 from edge B were due in the 10 s sustain phase, 21_000 gas each.
    assert result.offered_gas_per_sec == pytest.approx(102 * 21_000 / 10)
    assert result.offered_tx_per_sec == pytest.approx(10.2)
    # The rejected one was not accepted; the lost one was.
    assert result.accepted_gas_per_sec == pytest.approx(101 * 21_000 / 10)


def test_included_rate_window_is_shifted_by_the_pipeline_delay() -> None:
    result = result_of(plan_of(), list(two_edges()))
    # Inclusions run 2 s behind: the window is [3 s, 13 s), holding all 100 sustain inclusions
    # and neither the warmup one (2.5 s) nor the cooldown one (13.5 s).
    assert result.included_gas_per_sec == pytest.approx(100 * 21_000 / 10)
    assert result.included_tx_per_sec == pytest.approx(10.0)


def test_included_rate_under_overload_measures_the_sustain_phase_not_the_drain() -> None:
    # The chain includes at most 5 tx/s while 10 tx/s are offered: latency grows through the run
    # and the backlog drains long after the sustain phase. The included rate must say 5 tx/s.
    log = Log()
    for k in range(100):
        intended = 1.0 + k / 10
        included_at = 1.2 + k / 5
        log.ok(intended, nonce=k, latency=included_at - intended)
    result = result_of(plan_of(), [report_of(log, senders=(ALICE,), starts=(0,))])
    assert result.included_tx_per_sec == pytest.approx(5.0, abs=0.2)
    assert result.offered_tx_per_sec == pytest.approx(10.0)


def test_latency_is_measured_from_the_intended_send_time() -> None:
    result = result_of(plan_of(), list(two_edges()))
    accept, included = result.latency.accept, result.latency.inclusion
    assert accept.count == 101  # edge A's sustain transactions and edge B's lost one
    assert accept.p50 == pytest.approx(0.05)  # not 0.04, the time from the actual send
    assert accept.max == pytest.approx(0.05)
    assert included.count == 100
    assert included.p50 == pytest.approx(2.0)
    assert included.p99 == pytest.approx(2.0)


def test_latency_percentiles_reflect_slow_transactions() -> None:
    log = Log()
    for k in range(100):
        latency = 10.0 if k >= 95 else 1.0
        log.ok(1.0 + k / 10, nonce=k, latency=latency)
    result = result_of(plan_of(), [report_of(log, senders=(ALICE,), starts=(0,))])
    assert result.latency.inclusion.p50 == pytest.approx(1.0)
    assert result.latency.inclusion.p90 == pytest.approx(1.0)
    assert result.latency.inclusion.p99 == pytest.approx(10.0)
    assert result.latency.inclusion.max == pytest.approx(10.0)


def test_counts_errors_notes_blocks_and_edges_are_merged_across_reports() -> None:
    report_a, report_b = two_edges()
    result = result_of(plan_of(), [report_a, report_b])
    assert result.errors == {"nonce_too_low": 3, "txpool_full": 4}
    assert result.sent == 102 + 2
    assert result.rejected == 1
    assert result.lost == 1
    assert result.included == 102
    assert result.blocks_observed == 1  # both edges saw the same block: counted once
    assert result.notes == ["a note", "b note"]
    assert [(e.edge_id, e.sent, e.included) for e in result.edges] == [("edge-a", 102, 102), ("edge-b", 2, 0)]
    assert [e.target_share for e in result.edges] == [0.5, 0.5]
    # The reports' own error counters are left alone.
    assert report_a.errors == {"nonce_too_low": 2}


def test_receipt_coverage_is_summed_over_edges_and_the_methods_named_once_each() -> None:
    report_a, report_b = two_edges()
    report_a.receipts_checked, report_a.receipts_expected, report_a.receipts_via = (
        60,
        64,
        "eth_getBlockReceipts",
    )
    report_b.receipts_checked, report_b.receipts_expected, report_b.receipts_via = (
        7,
        73,
        "eth_getTransactionReceipt",
    )
    result = result_of(plan_of(), [report_a, report_b])
    assert (result.receipts_checked, result.receipts_expected) == (67, 137)
    assert result.receipts_via == "eth_getBlockReceipts + eth_getTransactionReceipt"
    report_b.receipts_via = "eth_getBlockReceipts"
    assert result_of(plan_of(), [report_a, report_b]).receipts_via == "eth_getBlockReceipts"
    summary = result.summary_dict()
    assert (summary["receipts_checked"], summary["receipts_expected"]) == (67, 137)


def test_included_gas_uses_the_gas_the_chain_charged() -> None:
    log = Log()
    for k in range(10):
        log.add(
            intended=1.0 + k,
            sent=1.0 + k,
            accepted=1.1 + k,
            included=1.5 + k,
            gas_used=30_000,
            status=1,
            nonce=k,
        )
    result = result_of(plan_of(), [report_of(log, senders=(ALICE,), starts=(0,))])
    assert result.offered_gas_per_sec == pytest.approx(10 * 21_000 / 10)
    assert result.included_gas_per_sec == pytest.approx(10 * 30_000 / 10)


def test_gap_fillers_are_not_offered_load() -> None:
    log = Log()
    log.ok(2.0, nonce=0)
    log.ok(3.0, nonce=1, template=GAP_FILLER)
    result = result_of(plan_of(), [report_of(log, senders=(ALICE,), starts=(0,))])
    assert result.offered_tx_per_sec == pytest.approx(0.1)
    assert result.included == 2


def test_stopped_early_and_verdicts_are_carried_into_the_result() -> None:
    log = Log()
    log.add(intended=2.0, sent=2.0, accepted=2.1)
    result = result_of(plan_of(), [report_of(log, stopped_early="Ctrl-C")])
    assert result.stopped_early == "Ctrl-C"
    assert result.verdict("inclusion").status == "inconclusive"
    assert result.passed


def test_empty_run_has_zero_rates_and_nan_latency() -> None:
    result = result_of(plan_of(), [report_of(Log())])
    assert result.sent == 0 and result.included == 0
    assert result.offered_gas_per_sec == 0 and result.included_gas_per_sec == 0
    assert result.latency.inclusion.count == 0 and math.isnan(result.latency.inclusion.p50)


# ----------------------------------------------------------------------------------------------
# included_span: the included rate of a chain that keeps up and of one that falls behind


def test_a_saturated_chain_reports_its_ceiling_not_more() -> None:
    # 16 full blocks of 100 transfers, one every 0.5 s, for a 4 s sustain phase offered at twice the
    # ceiling: the blocks took 16 intervals (8 s), so the rate is 100 tx per 0.5 s = 200 tx/s.
    log = Log()
    for k in range(1600):
        intended = 1.0 + k / 400
        included_at = 1.5 + (k // 100) * 0.5
        log.ok(intended, nonce=k, latency=included_at - intended)
    report = report_of(log, senders=(ALICE,), starts=(0,), sustain=(1.0, 5.0), blocks=blocks_every(0.5, 20))
    result = result_of(plan_of(sustain=4.0), [report])
    assert result.included_tx_per_sec == pytest.approx(200.0, rel=0.01)


def test_a_chain_that_keeps_up_reports_the_offered_rate_wherever_its_blocks_fall() -> None:
    from pytest_gashammer.hive.aggregate import included_span

    # Inclusions up to one block interval after each end of the 4 s phase: the span is the phase.
    for first, last in ((1.01, 5.49), (1.49, 5.01), (1.25, 5.25)):
        assert included_span(4.0, first, last, 0.5) == 4.0
    # Later than a chain that keeps up could be: the blocks' own span, from the first block's start.
    assert included_span(4.0, 1.5, 9.0, 0.5) == pytest.approx(8.0)
    assert included_span(4.0, math.inf, -math.inf, 0.5) == 4.0  # nothing included


def test_the_included_rate_of_a_run_that_keeps_up_is_the_offered_rate() -> None:
    # 50 tx/s for 10 s, each in the next 0.5 s block: a block interval after the phase at most.
    log = Log()
    for k in range(500):
        intended = 1.0 + k / 50
        included_at = (math.floor(intended * 2) + 1) / 2
        log.ok(intended, nonce=k, latency=included_at - intended)
    result = result_of(
        plan_of(), [report_of(log, senders=(ALICE,), starts=(0,), blocks=blocks_every(0.5, 30))]
    )
    assert result.included_tx_per_sec == pytest.approx(50.0, rel=0.001)


def blocks_every(interval: float, count: int) -> list[BlockRecord]:
    """``count`` blocks seen ``interval`` seconds apart (the edge's view of the block interval)."""
    return [
        BlockRecord(
            n, f"0x{n:064x}", f"0x{n - 1:064x}", n, 0, 30_000_000, 0, ORIGIN + round(n * interval * 1e9)
        )
        for n in range(1, count + 1)
    ]
