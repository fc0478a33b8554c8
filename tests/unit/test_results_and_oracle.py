"""Run results, the invariants the oracle checks, and aggregation of the edges' reports.

Reports are built by hand from the transaction log columns, so each case states exactly what the
edges saw.
"""

from __future__ import annotations

import math
import random
import re

import pytest

from pytest_gashammer.hive.aggregate import build_result
from pytest_gashammer.hive.result import Latency, LatencyStats, RunResult, Verdict
from pytest_gashammer.oracle.invariants import (
    BASIC_INVARIANTS,
    EVIDENCE_LIMIT,
    INVARIANTS,
    balance_conservation,
    evaluate,
    inclusion,
    no_duplicate_inclusion,
    nonce_contiguity,
    receipt_status,
)
from pytest_gashammer.scenario.spec import Phase, ScenarioPlan
from pytest_gashammer.telemetry.records import (
    NOT_YET,
    STATUS_ACCEPTED,
    STATUS_INCLUDED,
    STATUS_REJECTED,
    STATUS_SCHEDULED,
    STATUS_SENT,
    BlockRecord,
    EdgeReport,
    TxLog,
)

ALICE = "0xA11CE00000000000000000000000000000000001"
BOB = "0xB0B0000000000000000000000000000000000002"
ORIGIN = 1_000_000_000_000
GAP_FILLER = -1


def ns(seconds: float, origin: int = ORIGIN) -> int:
    return origin + round(seconds * 1e9)


def tx_hash(n: int) -> bytes:
    return bytes([0xAB]) + n.to_bytes(31, "big")


class Log:
    """Builds a :class:`TxLog` one transaction at a time, times in seconds after ``origin``."""

    def __init__(self, origin: int = ORIGIN) -> None:
        self.txs = TxLog()
        self.origin = origin

    def add(
        self,
        *,
        intended: float,
        sent: float | None = None,
        accepted: float | None = None,
        included: float | None = None,
        rejected: str | None = None,
        status: int | None = None,
        gas_used: int | None = None,
        gas_planned: int = 21_000,
        template: int = 0,
        sender: int = 0,
        nonce: int = 0,
    ) -> str:
        log = self.txs
        row = log.append(template, sender, nonce, gas_planned, ns(intended, self.origin), tx_hash(len(log)))
        if sent is not None:
            log.sent_ns[row] = ns(sent, self.origin)
            log.state[row] = STATUS_SENT
        if accepted is not None:
            log.accepted_ns[row] = ns(accepted, self.origin)
            log.state[row] = STATUS_ACCEPTED
        if rejected is not None:
            log.error[row] = log.error_code(rejected)
            log.state[row] = STATUS_REJECTED
        if included is not None:
            log.included_ns[row] = ns(included, self.origin)
            log.block_number[row] = 100 + row
            log.inclusions[row] = 1
            log.state[row] = STATUS_INCLUDED
        if status is not None:
            log.receipt_status[row] = status
        if gas_used is not None:
            log.gas_used[row] = gas_used
        return log.tx_hash(row)

    def ok(
        self, intended: float, *, nonce: int = 0, sender: int = 0, template: int = 0, latency: float = 1.0
    ) -> str:
        """A transaction sent on time, accepted, included ``latency`` later with status 1."""
        return self.add(
            intended=intended,
            sent=intended,
            accepted=intended + 0.01,
            included=intended + latency,
            status=1,
            gas_used=21_000,
            nonce=nonce,
            sender=sender,
            template=template,
        )


def report_of(
    log: Log,
    *,
    edge_id: str = "edge-0",
    senders: tuple[str, ...] = (ALICE, BOB),
    starts: tuple[int, ...] = (0, 0),
    foreign: list[list[int]] | None = None,
    templates: tuple[str, ...] = ("transfer",),
    expected_status: tuple[int, ...] = (1,),
    **fields: object,
) -> EdgeReport:
    return EdgeReport(
        edge_id=edge_id,
        host="localhost",
        clock_origin_ns=log.origin,
        wall_origin_ns=1_700_000_000_000_000_000,
        txs=log.txs,
        templates=list(templates),
        template_expected_status=list(expected_status),
        template_gas_model=[21_000.0] * len(templates),
        template_gas_tolerance=[0.0] * len(templates),
        sender_addresses=list(senders),
        sender_start_nonces=list(starts),
        sender_foreign_nonces=foreign if foreign is not None else [[] for _ in senders],
        **fields,  # type: ignore[arg-type]
    )


# ----------------------------------------------------------------------------------------------
# LatencyStats


def test_latency_percentiles_use_the_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    random.Random(4).shuffle(samples)
    stats = LatencyStats.of(samples)
    assert (stats.p50, stats.p90, stats.p99, stats.max, stats.count) == (50.0, 90.0, 99.0, 100.0, 100)


@pytest.mark.parametrize(
    ("samples", "p50", "p90", "p99"),
    [
        ([4.0], 4.0, 4.0, 4.0),
        ([0.3, 0.1, 0.2], 0.2, 0.3, 0.3),
        ([10.0, 1.0], 1.0, 10.0, 10.0),
        ([float(n) for n in range(10, 0, -1)], 5.0, 9.0, 10.0),
        ([1.0] * 98 + [50.0, 60.0], 1.0, 1.0, 50.0),
    ],
)
def test_latency_percentiles_on_small_samples(
    samples: list[float], p50: float, p90: float, p99: float
) -> None:
    stats = LatencyStats.of(samples)
    assert (stats.p50, stats.p90, stats.p99) == (p50, p90, p99)
    assert stats.max == max(samples)
    assert stats.count == len(samples)


def test_latency_of_nothing_is_nan_with_count_zero() -> None:
    stats = LatencyStats.of([])
    assert stats.count == 0
    assert all(math.isnan(value) for value in (stats.p50, stats.p90, stats.p99, stats.max))
    assert set(stats.as_dict()) == {"p50", "p90", "p99", "max", "count"}


def test_latency_of_does_not_reorder_the_callers_samples() -> None:
    samples = [3.0, 1.0, 2.0]
    LatencyStats.of(samples)
    assert samples == [3.0, 1.0, 2.0]


# ----------------------------------------------------------------------------------------------
# Verdict and RunResult


def test_verdict_describe_shows_status_name_summary_and_evidence() -> None:
    verdict = Verdict("inclusion", "failed", "2 lost", {"lost": ["0xaa", "0xbb"], "lost_count": 2})
    text = verdict.describe()
    assert text.splitlines()[0] == "[FAILED] inclusion: 2 lost"
    body = "\n".join(text.splitlines()[1:])
    assert "lost:" in body and "0xaa" in body and "0xbb" in body
    assert re.search(r"lost_count: 2\b", body)


def test_verdict_describe_truncates_long_evidence_to_ten_items() -> None:
    items = [f"tx-{n:02d}" for n in range(25)]
    text = Verdict("inclusion", "failed", "lost", {"lost": items}).describe()
    assert all(item in text for item in items[:10])
    assert not any(item in text for item in items[10:])
    # Says how much was left out (15 more, or 25 in all).
    assert re.search(r"\b(15|25)\b", text)


def test_verdict_describe_keeps_exactly_ten_items_whole() -> None:
    items = tuple(f"tx-{n:02d}" for n in range(10))
    text = Verdict("inclusion", "failed", "lost", {"lost": items}).describe()
    assert all(item in text for item in items)
    assert "..." not in text


@pytest.mark.parametrize(("status", "passed"), [("passed", True), ("inconclusive", True), ("failed", False)])
def test_only_a_failed_verdict_fails(status: str, passed: bool) -> None:
    assert Verdict("x", status, "s").passed is passed  # type: ignore[arg-type]


def run_result(verdicts: list[Verdict]) -> RunResult:
    stats = LatencyStats.of([0.1, 0.2])
    return RunResult(
        name="tests/test_chain.py::test_sustain",
        seed=1234,
        target_gas_per_sec=2e6,
        offered_gas_per_sec=2e6,
        accepted_gas_per_sec=2e6,
        included_gas_per_sec=2e6,
        sent=10,
        accepted=10,
        rejected=0,
        included=10,
        lost=0,
        latency=Latency(accept=stats, inclusion=stats),
        errors={},
        verdicts=verdicts,
        duration=12.0,
        sustain_seconds=10.0,
        chain_id=412346,
        devnet_kind="embedded",
        node_version="anvil 1.7.1",
    )


def test_check_lists_every_failed_verdict_with_its_evidence() -> None:
    result = run_result(
        [
            Verdict("inclusion", "failed", "1 lost", {"lost": ["0xdead"]}),
            Verdict("no_duplicate_inclusion", "passed", "none"),
            Verdict("nonce_contiguity", "failed", "1 gap", {"gaps": [f"{ALICE} missing nonce(s) 3 below 4"]}),
            Verdict("receipt_status", "inconclusive", "no receipts"),
        ]
    )
    assert not result.passed
    assert [v.name for v in result.failed_verdicts] == ["inclusion", "nonce_contiguity"]
    with pytest.raises(AssertionError) as info:
        result.check()
    message = str(info.value)
    assert "'tests/test_chain.py::test_sustain'" in message
    assert "seed 1234" in message
    assert "2 invariant(s)" in message
    assert "[FAILED] inclusion: 1 lost" in message
    assert "0xdead" in message
    assert "[FAILED] nonce_contiguity" in message
    assert f"{ALICE} missing nonce(s) 3" in message
    assert "no_duplicate_inclusion" not in message
    assert "receipt_status" not in message


def test_check_passes_when_every_verdict_passed_or_is_inconclusive() -> None:
    result = run_result(
        [Verdict("inclusion", "passed", "ok"), Verdict("receipt_status", "inconclusive", "no receipts")]
    )
    assert result.passed
    result.check()


def test_verdict_lookup_by_name() -> None:
    result = run_result([Verdict("inclusion", "passed", "ok")])
    assert result.verdict("inclusion").summary == "ok"
    with pytest.raises(KeyError, match="inclusion"):
        result.verdict("nonce_contiguity")


# ----------------------------------------------------------------------------------------------
# invariant: inclusion


def test_inclusion_passes_when_everything_accepted_is_included_in_time() -> None:
    log = Log()
    for n in range(5):
        log.ok(float(n), nonce=n)
    verdict = inclusion([report_of(log)], 30.0)
    assert verdict.name == "inclusion"
    assert verdict.status == "passed"
    assert "5" in verdict.summary


def test_inclusion_fails_naming_the_lost_transaction() -> None:
    log = Log()
    log.ok(0.0, nonce=0)
    lost = log.add(intended=1.0, sent=1.0, accepted=1.1, nonce=1)
    verdict = inclusion([report_of(log)], 30.0)
    assert verdict.status == "failed"
    assert verdict.evidence["lost"] == [lost]
    assert verdict.evidence["lost_count"] == 1
    assert "late" not in verdict.evidence
    assert lost in verdict.describe()


def test_inclusion_fails_on_late_inclusion_measured_from_sending() -> None:
    log = Log()
    late = log.add(intended=0.0, sent=0.0, accepted=0.1, included=31.0, nonce=0)
    # Sent long after it was due, but included soon after it was sent: not late.
    log.add(intended=0.0, sent=40.0, accepted=40.1, included=45.0, nonce=1)
    verdict = inclusion([report_of(log)], 30.0)
    assert verdict.status == "failed"
    assert verdict.evidence["late"] == [late]
    assert verdict.evidence["late_count"] == 1
    assert "lost" not in verdict.evidence


def test_inclusion_ignores_rejected_transactions() -> None:
    log = Log()
    log.ok(0.0, nonce=0)
    log.add(intended=1.0, sent=1.0, rejected="nonce_too_low", nonce=1)
    assert inclusion([report_of(log)], 30.0).status == "passed"


def test_inclusion_counts_a_transaction_included_without_an_accept_answer() -> None:
    # The send timed out, yet the transaction made it into a block.
    log = Log()
    log.add(intended=0.0, sent=0.0, included=1.0)
    verdict = inclusion([report_of(log)], 30.0)
    assert verdict.status == "passed"


def test_inclusion_is_inconclusive_when_the_run_stopped_early() -> None:
    log = Log()
    lost = log.add(intended=1.0, sent=1.0, accepted=1.1)
    verdict = inclusion([report_of(log, stopped_early="interrupted by the user")], 30.0)
    assert verdict.status == "inconclusive"
    assert "interrupted by the user" in verdict.summary
    assert verdict.evidence["not_included"] == [lost]


def test_inclusion_is_inconclusive_when_nothing_was_accepted() -> None:
    log = Log()
    log.add(intended=0.0, sent=0.0, rejected="txpool_full")
    assert inclusion([report_of(log)], 30.0).status == "inconclusive"
    assert inclusion([], 30.0).status == "inconclusive"


def test_inclusion_evidence_is_capped_but_the_count_is_complete() -> None:
    log = Log()
    for n in range(EVIDENCE_LIMIT + 15):
        log.add(intended=0.0, sent=0.0, accepted=0.1, nonce=n)
    verdict = inclusion([report_of(log)], 30.0)
    assert len(verdict.evidence["lost"]) == EVIDENCE_LIMIT
    assert verdict.evidence["lost_count"] == EVIDENCE_LIMIT + 15


def test_inclusion_looks_at_every_edge() -> None:
    first, second = Log(), Log(origin=ORIGIN * 3)
    first.ok(0.0)
    lost = second.add(intended=0.0, sent=0.0, accepted=0.1)
    verdict = inclusion([report_of(first), report_of(second, edge_id="edge-1")], 30.0)
    assert verdict.status == "failed"
    assert verdict.evidence["lost"] == [lost]


# ----------------------------------------------------------------------------------------------
# invariant: no duplicate inclusion


def test_no_duplicates_passes() -> None:
    log = Log()
    log.ok(0.0)
    verdict = no_duplicate_inclusion([report_of(log)], 30.0)
    assert (verdict.name, verdict.status) == ("no_duplicate_inclusion", "passed")


def test_duplicate_inclusion_fails_naming_the_transactions_of_every_edge() -> None:
    first, second = Log(), Log()
    dup_a = first.ok(0.0)
    dup_b = second.ok(0.0)
    verdict = no_duplicate_inclusion(
        [report_of(first, duplicates=[dup_a]), report_of(second, edge_id="edge-1", duplicates=[dup_b])], 30.0
    )
    assert verdict.status == "failed"
    assert verdict.evidence["duplicated"] == [dup_a, dup_b]
    assert "2" in verdict.summary


# ----------------------------------------------------------------------------------------------
# invariant: nonce contiguity


def test_contiguous_nonces_pass() -> None:
    log = Log()
    for n in range(4):
        log.ok(float(n), nonce=n, sender=0)
    for n in range(7, 10):
        log.ok(float(n), nonce=n, sender=1)
    verdict = nonce_contiguity([report_of(log, starts=(0, 7))], 30.0)
    assert (verdict.name, verdict.status) == ("nonce_contiguity", "passed")


def test_nonce_gap_names_the_sender_and_the_missing_nonce() -> None:
    log = Log()
    for n in (0, 1, 3):
        log.ok(float(n), nonce=n, sender=1)
    log.ok(0.0, nonce=0, sender=0)
    verdict = nonce_contiguity([report_of(log)], 30.0)
    assert verdict.status == "failed"
    (gap,) = verdict.evidence["gaps"]
    assert BOB in gap
    assert "missing nonce(s) 2 " in gap
    assert ALICE not in gap


def test_nonce_gap_from_the_starting_nonce_is_found() -> None:
    log = Log()
    for n in (6, 7):
        log.ok(float(n), nonce=n)
    verdict = nonce_contiguity([report_of(log, senders=(ALICE,), starts=(5,))], 30.0)
    assert verdict.status == "failed"
    assert "missing nonce(s) 5 " in verdict.evidence["gaps"][0]


def test_long_nonce_gap_is_abbreviated() -> None:
    log = Log()
    log.ok(0.0, nonce=0)
    log.ok(1.0, nonce=20)
    verdict = nonce_contiguity([report_of(log, senders=(ALICE,), starts=(0,))], 30.0)
    (gap,) = verdict.evidence["gaps"]
    assert "1, 2, 3, 4, 5 ..." in gap
    assert "below 20" in gap


def test_foreign_nonces_are_not_gaps() -> None:
    log = Log()
    for n in (0, 1, 4):
        log.ok(float(n), nonce=n)
    verdict = nonce_contiguity([report_of(log, senders=(ALICE,), starts=(0,), foreign=[[2, 3]])], 30.0)
    assert verdict.status == "passed"


def test_gap_filler_transactions_close_a_gap() -> None:
    log = Log()
    log.ok(0.0, nonce=0)
    log.ok(1.0, nonce=1, template=GAP_FILLER)
    log.ok(2.0, nonce=2)
    assert nonce_contiguity([report_of(log, senders=(ALICE,), starts=(0,))], 30.0).status == "passed"


def test_a_nonce_included_twice_is_reported_as_reused() -> None:
    log = Log()
    log.ok(0.0, nonce=0)
    log.ok(1.0, nonce=1)
    log.ok(2.0, nonce=1)
    verdict = nonce_contiguity([report_of(log, senders=(ALICE,), starts=(0,))], 30.0)
    assert verdict.status == "failed"
    assert verdict.evidence["reused"] == [f"{ALICE} nonce 1"]
    assert "gaps" not in verdict.evidence


def test_nonces_of_unincluded_transactions_are_not_checked() -> None:
    log = Log()
    log.ok(0.0, nonce=0)
    log.add(intended=1.0, sent=1.0, rejected="insufficient_funds", nonce=1)
    assert nonce_contiguity([report_of(log, senders=(ALICE,), starts=(0,))], 30.0).status == "passed"


def test_nonce_contiguity_is_inconclusive_without_inclusions() -> None:
    log = Log()
    log.add(intended=0.0, sent=0.0, accepted=0.1)
    assert nonce_contiguity([report_of(log)], 30.0).status == "inconclusive"


def test_each_edge_checks_its_own_senders() -> None:
    first, second = Log(), Log()
    first.ok(0.0, nonce=0, sender=0)
    first.ok(1.0, nonce=1, sender=0)
    second.ok(0.0, nonce=3, sender=0)  # a different account at index 0 on the second edge
    verdict = nonce_contiguity(
        [
            report_of(first, senders=(ALICE,), starts=(0,)),
            report_of(second, edge_id="edge-1", senders=(BOB,), starts=(3,)),
        ],
        30.0,
    )
    assert verdict.status == "passed"


# ----------------------------------------------------------------------------------------------
# invariant: receipt status


def test_expected_receipt_statuses_pass() -> None:
    log = Log()
    log.ok(0.0, template=0)
    log.add(intended=1.0, sent=1.0, accepted=1.1, included=2.0, status=0, template=1)  # an intended revert
    log.ok(2.0, template=GAP_FILLER)
    verdict = receipt_status([report_of(log, templates=("transfer", "revert"), expected_status=(1, 0))], 30.0)
    assert (verdict.name, verdict.status) == ("receipt_status", "passed")
    assert "3" in verdict.summary


def test_unexpected_receipt_status_names_the_hash_and_template() -> None:
    log = Log()
    log.ok(0.0, template=0)
    wrong = log.add(intended=1.0, sent=1.0, accepted=1.1, included=2.0, status=0, template=0)
    verdict = receipt_status([report_of(log)], 30.0)
    assert verdict.status == "failed"
    (entry,) = verdict.evidence["unexpected"]
    assert wrong in entry
    assert "transfer" in entry
    assert "status 0" in entry and "expected 1" in entry


def test_a_reverting_template_that_succeeds_is_a_failure() -> None:
    log = Log()
    wrong = log.add(intended=1.0, sent=1.0, accepted=1.1, included=2.0, status=1, template=1)
    verdict = receipt_status([report_of(log, templates=("transfer", "revert"), expected_status=(1, 0))], 30.0)
    assert verdict.status == "failed"
    assert wrong in verdict.evidence["unexpected"][0]
    assert "revert" in verdict.evidence["unexpected"][0]


def test_failed_gap_filler_is_named_as_such() -> None:
    log = Log()
    log.add(intended=1.0, sent=1.0, accepted=1.1, included=2.0, status=0, template=GAP_FILLER)
    verdict = receipt_status([report_of(log)], 30.0)
    assert verdict.status == "failed"
    assert "nonce-gap filler" in verdict.evidence["unexpected"][0]


def test_receipt_status_is_inconclusive_without_receipts() -> None:
    log = Log()
    log.add(intended=0.0, sent=0.0, accepted=0.1, included=1.0)  # included, receipt not fetched
    verdict = receipt_status([report_of(log)], 30.0)
    assert verdict.status == "inconclusive"


def test_evaluate_runs_every_invariant_in_catalogue_order() -> None:
    log = Log()
    log.ok(0.0)
    verdicts = evaluate([report_of(log)], 30.0)
    assert [v.name for v in verdicts] == list(INVARIANTS)
    by_name = {v.name: v for v in verdicts}
    assert {name: by_name[name].status for name in BASIC_INVARIANTS} == dict.fromkeys(
        BASIC_INVARIANTS, "passed"
    )
    # Nothing observed about blocks or a feed here: those say so instead of passing.
    assert by_name["feed_sequence"].status == "inconclusive"
    assert all(v.status != "failed" for v in verdicts)


def test_evaluate_selects_and_skips_invariants_by_name() -> None:
    log = Log()
    log.ok(0.0)
    assert [v.name for v in evaluate([report_of(log)], 30.0, only=["receipt_status", "inclusion"])] == [
        "inclusion",
        "receipt_status",
    ]
    assert "inclusion" not in [v.name for v in evaluate([report_of(log)], 30.0, skip=["inclusion"])]


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
# TxLog columns


def test_txlog_round_trips_through_columns() -> None:
    log = Log()
    log.ok(1.0, nonce=2**40, sender=3)
    log.add(intended=2.0, sent=2.0, rejected="nonce_too_low", nonce=5, gas_planned=123_456, template=2)
    log.add(intended=3.0, sent=3.0, rejected="txpool_full", nonce=6, template=GAP_FILLER)
    log.add(intended=4.0, sent=4.0, rejected="nonce_too_low", nonce=7)
    log.add(intended=5.0)
    original = log.txs
    columns = original.to_columns()
    assert all(isinstance(columns[name], bytes) for name, _ in TxLog.COLUMNS)
    again = TxLog.from_columns(columns)
    assert len(again) == len(original) == 5
    for name, _ in TxLog.COLUMNS:
        assert list(getattr(again, name)) == list(getattr(original, name)), name
    assert [again.tx_hash(row) for row in range(5)] == [original.tx_hash(row) for row in range(5)]
    assert again.error_kinds == ["nonce_too_low", "txpool_full"]
    # The kind-to-code mapping survives, so new errors of a known kind reuse its code.
    assert again.error_code("txpool_full") == original.error_code("txpool_full")
    assert again.error_code("new_kind") == 2
    assert again.state[4] == STATUS_SCHEDULED and again.sent_ns[4] == NOT_YET


def test_txlog_tx_hash_is_the_row_hash_as_hex() -> None:
    log = TxLog()
    log.append(0, 0, 0, 21_000, 0, b"\x01" * 32)
    log.append(0, 0, 1, 21_000, 0, b"\xfe" * 32)
    assert log.tx_hash(0) == "0x" + "01" * 32
    assert log.tx_hash(1) == "0x" + "fe" * 32


def test_a_new_row_has_nothing_happened_yet() -> None:
    log = TxLog()
    row = log.append(1, 2, 3, 21_000, 99, b"\x00" * 32)
    assert (log.template[row], log.sender[row], log.nonce[row]) == (1, 2, 3)
    assert (log.gas_planned[row], log.intended_ns[row]) == (21_000, 99)
    untouched = ("sent_ns", "accepted_ns", "included_ns", "block_number", "receipt_status", "gas_used")
    for column in untouched:
        assert getattr(log, column)[row] == NOT_YET, column
    assert log.state[row] == STATUS_SCHEDULED
    assert log.inclusions[row] == 0


def test_balance_conservation_names_the_difference_and_needs_its_facts() -> None:
    log = Log()
    log.ok(0.0)
    report = report_of(log)
    assert balance_conservation([report], 30.0).status == "inconclusive"
    report.balance_check = {
        "block_before": 5,
        "block_after": 9,
        "senders_lost": 1_000,
        "value_moved": 10,
        "fees_paid": 990,
    }
    assert balance_conservation([report], 30.0).status == "passed"
    report.balance_check["senders_lost"] = 1_007
    verdict = balance_conservation([report], 30.0)
    assert verdict.status == "failed"
    assert "difference +7" in verdict.evidence["edges"][0]


# ----------------------------------------------------------------------------------------------
# what the node says about a transaction no block showed


def test_a_lost_transaction_is_diagnosed_from_the_nodes_answers() -> None:
    from pytest_gashammer.edge.evidence import diagnose_lost
    from pytest_gashammer.edge.rpc import TransportError

    pooled = {"hash": "0x01", "blockNumber": None}
    assert diagnose_lost(None, 5, 5).startswith(
        "unknown to the node (dropped from its pool); it is the sender's next"
    )
    assert diagnose_lost(pooled, 5, 5).startswith(
        "still in the node's pool, never included; it is the sender's next"
    )
    assert "waits for nonce(s) 2..4" in diagnose_lost(pooled, 5, 2)
    assert "another transaction took nonce 5" in diagnose_lost(None, 5, 9)
    assert (
        diagnose_lost({"blockNumber": "0x1f"}, 5, 6)
        == "the node has it in block 31, which the tracker never saw"
    )
    assert "on-chain nonce is unknown" in diagnose_lost(pooled, 5, None)
    assert diagnose_lost(TransportError("timed out"), 5, 5) == "the node could not be asked (timed out)"
