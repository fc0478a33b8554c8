"""The invariants the oracle checks over edge reports, and what the node says about a lost transaction.

Reports are built by hand from the transaction log columns, so each case states exactly what the
edges saw.
"""

from __future__ import annotations

import pytest

from pytest_gashammer.oracle.invariants import (
    BALANCE_COVERAGE_BAR,
    BASIC_INVARIANTS,
    EVIDENCE_LIMIT,
    INVARIANTS,
    RECEIPT_COVERAGE_BAR,
    balance_conservation,
    below_bar,
    evaluate,
    feed_matches_chain,
    gas_model,
    inclusion,
    no_duplicate_inclusion,
    nonce_contiguity,
    receipt_block,
    receipt_coverage,
    receipt_status,
)
from pytest_gashammer.telemetry.records import EdgeReport
from tests.unit.edge_reports import ALICE, BOB, GAP_FILLER, ORIGIN, Log, report_of

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


# ----------------------------------------------------------------------------------------------
# invariant: receipt block


def test_receipts_naming_another_block_fail_with_both_blocks_whatever_the_coverage() -> None:
    log = Log()
    for n in range(3):
        log.ok(float(n), nonce=n)
    report = report_of(log)
    assert receipt_block([report], 30.0).status == "passed"
    item = f"0x{'ab' * 32} receipt: block 0xa 0x{'01' * 32}; seen in: block 0x9 0x{'02' * 32}"
    report.receipt_block_mismatches, report.receipt_block_items = 1, [item]
    report.receipts_expected = 100  # far below the coverage bar: what was seen is still a fact
    verdict = receipt_block([report], 30.0)
    assert (verdict.name, verdict.status) == ("receipt_block", "failed")
    assert verdict.evidence["wrong_block"] == [item]
    assert verdict.summary.startswith("1 of 3 checked receipt(s) name another block")


def test_receipt_block_is_inconclusive_without_receipts() -> None:
    log = Log()
    log.add(intended=0.0, sent=0.0, accepted=0.1, included=1.0)
    assert receipt_block([report_of(log)], 30.0).status == "inconclusive"


# ----------------------------------------------------------------------------------------------
# invariant: the feed matches the chain


def feed_report(stats: dict[str, object], **findings: object) -> EdgeReport:
    clean = {
        "blocks_missing_from_feed": 0,
        "first_blocks_missing_from_feed": [],
        "first_feed_only": [],
        "first_messages_spanning_blocks": [],
    }
    return report_of(Log(), edge_id="e0", feed_stats=stats, feed_findings={**clean, **findings})


def test_the_feed_matches_the_chain_or_names_what_does_not() -> None:
    assert feed_matches_chain([feed_report({})], 30.0).status == "passed"
    only = {"tx_hash": "0x" + "cd" * 32, "row": 4, "sequence": 7, "position": 0}
    spanning = {"sequence": 9, "blocks": [9, 10]}
    verdict = feed_matches_chain(
        [feed_report({}, first_feed_only=[only], first_messages_spanning_blocks=[spanning])],
        30.0,
    )
    assert verdict.status == "failed"
    assert verdict.evidence["problems"] == [
        f"e0: in the feed but in no block of the chain: {only}",
        f"e0: one message holds transactions of several blocks: {spanning}",
    ]


def test_blocks_without_a_message_count_beyond_the_messages_lost_in_gaps() -> None:
    lost_one = feed_report(
        {"missing_messages": 1}, blocks_missing_from_feed=1, first_blocks_missing_from_feed=[12]
    )
    assert feed_matches_chain([lost_one], 30.0).status == "passed"
    two_for_one = feed_report(
        {"missing_messages": 1}, blocks_missing_from_feed=2, first_blocks_missing_from_feed=[12, 15]
    )
    verdict = feed_matches_chain([two_for_one], 30.0)
    assert verdict.status == "failed"
    assert verdict.evidence["problems"] == [
        "e0: 2 chain block(s) without a feed message, only 1 sequence number(s) missing: the feed left "
        "blocks out and numbered the later messages on",
        "e0: block 12 has no feed message",
        "e0: block 15 has no feed message",
    ]


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
# receipt coverage


BALANCE = {"block_before": 5, "block_after": 9, "senders_lost": 1_000, "value_moved": 10, "fees_paid": 990}


def covered(checked: int, expected: int, *, first_status: int = 1, **fields: object) -> list:
    """A report with ``checked`` receipts (the first with ``first_status``, the others good) out of
    ``expected`` wanted ones."""
    log = Log()
    for n in range(expected):
        if n == 0 and checked:
            log.add(
                intended=0.0,
                sent=0.0,
                accepted=0.01,
                included=1.0,
                status=first_status,
                gas_used=21_000,
                nonce=0,
            )
        elif n < checked:
            log.ok(float(n), nonce=n)
        else:
            log.add(intended=float(n), sent=float(n), accepted=n + 0.01, included=n + 1.0, nonce=n)
    return [report_of(log, receipts_expected=expected, receipts_missing=expected - checked, **fields)]


def test_coverage_counts_checked_rows_against_the_expected_and_trusts_no_smaller_figure() -> None:
    assert receipt_coverage(covered(66, 137)) == (66, 137)
    assert receipt_coverage([report_of(Log())]) == (0, 0)
    # A report that does not say how many it expected (built by hand, or older) counts what it checked.
    log = Log()
    log.ok(0.0)
    assert receipt_coverage([report_of(log)]) == (1, 1)
    assert receipt_coverage(covered(5, 5) + covered(2, 4)) == (7, 9)


@pytest.mark.parametrize(
    ("checked", "expected", "bar", "short"),
    [
        (95, 100, 0.95, False),
        (94, 100, 0.95, True),
        (100, 100, 1.0, False),
        (99, 100, 1.0, True),
        (0, 0, 1.0, False),  # nothing expected: nothing short (the verdict says why elsewhere)
        (19, 20, 0.95, False),
        (18, 20, 0.95, True),
    ],
)
def test_the_coverage_bar(checked: int, expected: int, bar: float, short: bool) -> None:
    assert below_bar(checked, expected, bar) is short


def test_the_bars_are_stated() -> None:
    assert RECEIPT_COVERAGE_BAR == 0.95 and BALANCE_COVERAGE_BAR == 1.0


def test_receipt_verdicts_never_pass_on_partial_coverage_and_say_it() -> None:
    reports = covered(66, 137)
    for verdict in (receipt_status(reports, 30.0), gas_model(reports, 30.0)):
        assert verdict.status == "inconclusive", verdict
        assert "only 66 of 137 expected receipts checked (48%), below the 95% bar" in verdict.summary
        assert verdict.evidence["receipts_checked"] == 66
        assert verdict.evidence["receipts_expected"] == 137
        assert verdict.evidence["receipts_missing"] == 71
    assert "all 66 checked" not in receipt_status(reports, 30.0).summary


def test_receipt_verdicts_pass_at_the_bar_with_the_coverage_in_the_summary() -> None:
    verdict = receipt_status(covered(19, 20), 30.0)
    assert verdict.status == "passed"
    assert verdict.summary == (
        "all 19 checked receipts have the expected status; 19 of 20 expected receipts checked (95%)"
    )
    assert gas_model(covered(20, 20), 30.0).summary.endswith("20 of 20 expected receipts checked")


def test_a_wrong_status_fails_whatever_the_coverage() -> None:
    reports = covered(2, 10, first_status=0)
    verdict = receipt_status(reports, 30.0)
    assert verdict.status == "failed"
    assert "2 of 10 expected receipts checked" in verdict.summary


def test_receipt_status_with_none_of_the_expected_receipts_obtained_says_so() -> None:
    verdict = receipt_status(covered(0, 4), 30.0)
    assert verdict.status == "inconclusive"
    assert verdict.summary == "no receipt was checked (none of the 4 expected receipts was obtained)"


def test_balance_conservation_gives_the_edges_reason_and_needs_full_coverage() -> None:
    reason = "only 3 of 4 receipts were checked (1 missing, 0 abandoned), so the fees paid are not all known"
    verdict = balance_conservation(covered(3, 4, balance_check_skipped=reason), 30.0)
    assert (verdict.status, verdict.summary) == ("inconclusive", reason)
    assert verdict.evidence["receipts_missing"] == 1
    # Facts with partial coverage (never made by an edge, but the bar holds on its own).
    verdict = balance_conservation(covered(3, 4, balance_check=dict(BALANCE)), 30.0)
    assert verdict.status == "inconclusive"
    assert verdict.summary == "only 3 of 4 expected receipts checked (75%); every fee is needed"
    verdict = balance_conservation(covered(4, 4, balance_check=dict(BALANCE)), 30.0)
    assert verdict.status == "passed" and verdict.summary.endswith("4 of 4 expected receipts checked")


def test_balance_conservation_is_inconclusive_when_one_edge_lacks_its_facts() -> None:
    with_facts = covered(2, 2, balance_check=dict(BALANCE))
    without = covered(2, 2, edge_id="edge-1", balance_check_skipped="the run stopped early (fail-fast)")
    verdict = balance_conservation(with_facts + without, 30.0)
    assert verdict.status == "inconclusive"
    assert verdict.summary == "the run stopped early (fail-fast)"
    assert verdict.evidence["edges"] == ["edge-1: the run stopped early (fail-fast)"]


# ----------------------------------------------------------------------------------------------
# what the node says about a transaction no block showed


def test_a_lost_transaction_is_diagnosed_from_the_nodes_answers() -> None:
    from pytest_gashammer.chain.rpc import TransportError
    from pytest_gashammer.edge.evidence import diagnose_lost

    pooled = {"hash": "0x01", "blockNumber": None}
    assert diagnose_lost(None, 5, 5, pool_unavailable="txpool_content: -32601").startswith(
        "not found by eth_getTransactionByHash; the node has no txpool_content to confirm a drop "
        "(txpool_content: -32601); it is the sender's next"
    )
    assert diagnose_lost(pooled, 5, 5).startswith(
        "still in the node's pool (eth_getTransactionByHash), never included; it is the sender's next"
    )
    assert "waits for nonce(s) 2..4" in diagnose_lost(pooled, 5, 2)
    assert "another transaction took nonce 5" in diagnose_lost(None, 5, 9)
    assert (
        diagnose_lost({"blockNumber": "0x1f"}, 5, 6)
        == "the node has it in block 31, which the tracker never saw"
    )
    assert "on-chain nonce is unknown" in diagnose_lost(pooled, 5, None)
    assert diagnose_lost(TransportError("timed out"), 5, 5).startswith(
        "the node could not be asked (timed out); the node has no txpool_content"
    )


def test_a_transaction_the_node_hides_by_hash_but_holds_in_its_pool_is_pooled_not_dropped() -> None:
    """EthereumJS answers null to eth_getTransactionByHash for pooled transactions; its
    txpool_content lists them under a lowercase address with decimal nonces."""
    from pytest_gashammer.edge.evidence import diagnose_lost, pool_index

    tx = "0x" + "ab" * 32
    other = "0x" + "cd" * 32
    sender = "0xAbCd000000000000000000000000000000000001"
    pool = pool_index({"pending": {sender.lower(): {"5": {"hash": tx, "nonce": "0x5"}}}})
    assert diagnose_lost(None, 5, 5, tx_hash=tx, sender=sender, pool=pool).startswith(
        "in the node's pool (pending), never included; it is the sender's next nonce"
    )
    # geth's shape: checksummed address, a queued section
    queued = pool_index({"pending": {}, "queued": {sender: {"7": {"hash": tx.upper().replace("0X", "0x")}}}})
    assert diagnose_lost(None, 7, 5, tx_hash=tx, sender=sender, pool=queued).startswith(
        "in the node's pool (queued), never included; the sender's on-chain nonce is 5"
    )
    empty = pool_index({"pending": {}})
    assert diagnose_lost(None, 5, 5, tx_hash=tx, sender=sender, pool=empty).startswith(
        "dropped: not found by eth_getTransactionByHash and not in the node's pool (txpool_content)"
    )
    replaced = pool_index({"pending": {sender.lower(): {"5": {"hash": other}}}})
    assert f"replaced in the node's pool by {other} at the same nonce" in diagnose_lost(
        None, 5, 5, tx_hash=tx, sender=sender, pool=replaced
    )
    # txpool_inspect shows the slot but no hash: that slot being taken is what it can say
    slots = {"slots": {(sender.lower(), 5): "pending"}}
    assert diagnose_lost(None, 5, 5, tx_hash=tx, sender=sender, pool=slots).startswith(
        "in the node's pool (pending), never included"
    )
    # a stopped chain is named, and its waiting transactions are not called dropped
    stall = "no new block for 12.0 s (head stuck at #41)"
    stalled = diagnose_lost(None, 5, 5, tx_hash=tx, sender=sender, pool=empty, stall=stall)
    assert stalled.startswith(f"the chain stopped producing blocks ({stall}); not found")
    assert "dropped" not in stalled
    assert diagnose_lost(None, 5, 5, tx_hash=tx, sender=sender, pool=pool, stall=stall).startswith(
        f"the chain stopped producing blocks ({stall}); in the node's pool (pending)"
    )


def test_balance_conservation_with_nothing_included_is_inconclusive_not_passed() -> None:
    nothing = {"block_before": 5, "block_after": 9, "senders_lost": 0, "value_moved": 0, "fees_paid": 0}
    verdict = balance_conservation(covered(0, 0, balance_check=nothing), 30.0)
    assert (verdict.status, verdict.summary) == (
        "inconclusive",
        "nothing was included, so no value moved to check",
    )


def test_balance_conservation_names_receipts_that_under_report_the_fee() -> None:
    """The senders lost value + fees at base fee + tip, but the receipts' effectiveGasPrice left the
    base fee out: the verdict fails and names the receipts, not the balances."""
    facts = dict(BALANCE, fees_paid=0, receipts_below_base_fee=4, fees_at_base_fee=990)
    verdict = balance_conservation(covered(4, 4, balance_check=facts), 30.0)
    assert verdict.status == "failed"
    assert verdict.summary == (
        "the node's receipts under-report fees: 4 give an effectiveGasPrice below their block's base fee; "
        "priced at base fee + tip, as EIP-1559 charges, the balances add up"
    )
    # Still short with the base fee counted: the balances themselves are wrong.
    facts["fees_at_base_fee"] = 900
    verdict = balance_conservation(covered(4, 4, balance_check=facts), 30.0)
    assert (verdict.status, verdict.summary) == ("failed", "balances are not conserved")
