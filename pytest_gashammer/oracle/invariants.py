"""The transaction invariants evaluated after every run.

Each invariant has a stable name, looks at the edges' reports, and returns a
:class:`~pytest_gashammer.results.Verdict` whose evidence lists the first offending items,
so a failure says which promise broke, for which transactions, and where to look.

The reports carry no rows: each edge digested its rows as they became final
(:class:`~pytest_gashammer.telemetry.digest.RunDigest`), keeping exact counts, the first offending
transactions by hash, per-sender nonce ranges and per-block receipt sums. So a verdict on an
hours-long run costs what one on a minute does, and its evidence names the same transactions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_gashammer.results import Verdict
from pytest_gashammer.scenario.arguments import DEFAULTS
from pytest_gashammer.telemetry.digest import EVIDENCE_LIMIT
from pytest_gashammer.telemetry.records import (
    EdgeReport,
    describe_rejection,
    describe_stall,
    merge_rejections,
)
from pytest_gashammer.vocabulary import (
    ACCEPTANCE,
    BALANCE_CONSERVATION,
    BASIC_INVARIANT_NAMES,
    BLOCK_CONTINUITY,
    BLOCK_GAS,
    BLOCK_PRODUCTION,
    BLOCK_TIMESTAMPS,
    FEED_BLOCK_HASH,
    FEED_EXACTLY_ONCE,
    FEED_MATCHES_CHAIN,
    FEED_ORDER,
    FEED_SEQUENCE,
    GAS_MODEL,
    INCLUSION,
    NO_DUPLICATE_INCLUSION,
    NONCE_CONTIGUITY,
    RECEIPT_BLOCK,
    RECEIPT_STATUS,
    selected_invariants,
)

#: The share of the expected receipts (rows included and on the receipt sample) that must have been
#: checked for ``receipt_status`` and ``gas_model`` to pass; below it they are inconclusive. Receipts
#: that go missing are not a random sample: they are the run's last blocks (a drain cut short) or
#: the ones a lagging node had not indexed, so a large shortfall could hide exactly the transactions
#: that went wrong. 95 % tolerates a handful of receipts a node never served in a long run without
#: letting a verdict stand on a fraction of it.
RECEIPT_COVERAGE_BAR = 0.95
#: ``balance_conservation`` needs every fee paid, so every receipt: one missing fee breaks the sum.
BALANCE_COVERAGE_BAR = 1.0


def _evidence(**found: list[Any]) -> dict[str, object]:
    """Each non-empty list of findings under its name, cut to its first ``EVIDENCE_LIMIT`` items."""
    return {name: items[:EVIDENCE_LIMIT] for name, items in found.items() if items}


#: ``(reports, inclusion_timeout, **settings) -> Verdict``; settings are the invariant's own marker
#: arguments (see :func:`evaluate`), each with a default.
Invariant = Callable[..., Verdict]


def receipt_coverage(reports: Sequence[EdgeReport]) -> tuple[int, int]:
    """``(checked, expected)`` receipts over the edges: rows with a receipt status, and rows included
    and on the receipt sample (a report that does not say counts its checked ones)."""
    checked = expected = 0
    for report in reports:
        with_status = report.digest.receipts_with_status
        checked += with_status
        expected += max(report.receipts_expected, with_status)
    return checked, expected


def below_bar(checked: int, expected: int, bar: float) -> bool:
    """Whether ``checked`` of ``expected`` receipts fall short of ``bar`` (a share, 0..1)."""
    return expected > 0 and checked < bar * expected - 1e-9


def coverage_words(checked: int, expected: int) -> str:
    share = f" ({checked / expected:.0%})" if expected and checked < expected else ""
    return f"{checked} of {expected} expected receipts checked{share}"


def _coverage_evidence(reports: Sequence[EdgeReport], checked: int, expected: int) -> dict[str, object]:
    evidence: dict[str, object] = {"receipts_checked": checked, "receipts_expected": expected}
    missing = sum(report.receipts_missing for report in reports)
    abandoned = sum(report.receipts_abandoned for report in reports)
    if missing:
        evidence["receipts_missing"] = missing  # the node never served them before the drain's deadline
    if abandoned:
        evidence["receipts_abandoned"] = abandoned  # the run was stopped before they were fetched
    stopped = next((r.stopped_early for r in reports if r.stopped_early), None)
    if stopped:
        evidence["stopped_early"] = stopped
    return evidence


def inclusion(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """Every transaction the node accepted is included, within ``inclusion_timeout`` of its sending."""
    lost = [tx for report in reports for tx in report.digest.lost_hashes]
    late = [tx for report in reports for tx in report.digest.late_hashes]
    lost_count = sum(report.digest.lost for report in reports)
    late_count = sum(report.digest.late for report in reports)
    accepted = sum(report.digest.accepted for report in reports)
    stopped = next((r.stopped_early for r in reports if r.stopped_early), None)
    if accepted == 0:
        return Verdict(INCLUSION, "inconclusive", "no transaction was accepted, so none could be tracked")
    if lost and stopped:
        return Verdict(
            INCLUSION,
            "inconclusive",
            f"{lost_count} accepted transaction(s) not seen in a block, but the run was stopped early ({stopped})",
            {"not_included": lost[:EVIDENCE_LIMIT]},
        )
    if lost_count or late_count:
        evidence: dict[str, object] = {}
        if lost_count:
            evidence["lost"] = lost[:EVIDENCE_LIMIT]
            evidence["lost_count"] = lost_count
            probed = [f"{tx}: {report.lost_probe[tx]}" for report in reports for tx in report.lost_probe]
            if probed:
                evidence["what_the_node_says"] = probed[:EVIDENCE_LIMIT]
        if late_count:
            evidence["late"] = late[:EVIDENCE_LIMIT]
            evidence["late_count"] = late_count
        return Verdict(
            INCLUSION,
            "failed",
            f"{lost_count} of {accepted} accepted transaction(s) never included and {late_count} included later than "
            f"{inclusion_timeout:g} s",
            evidence,
        )
    return Verdict(
        INCLUSION, "passed", f"all {accepted} accepted transactions included within {inclusion_timeout:g} s"
    )


def no_duplicate_inclusion(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """No transaction appears in more than one block (or twice in one)."""
    duplicates = [tx_hash for report in reports for tx_hash in report.duplicates]
    if duplicates:
        return Verdict(
            NO_DUPLICATE_INCLUSION,
            "failed",
            f"{len(duplicates)} transaction(s) included more than once",
            {"duplicated": duplicates[:EVIDENCE_LIMIT]},
        )
    return Verdict(NO_DUPLICATE_INCLUSION, "passed", "no transaction was included twice")


def nonce_contiguity(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """Per sender, the included nonces run from its starting nonce with no gap and no nonce used twice."""
    gaps: list[str] = []
    reused: list[str] = []
    senders_checked = 0
    reused_count = 0
    for report in reports:
        for sender, ranges in sorted(report.digest.nonces.items()):
            if not ranges.ranges:
                continue
            senders_checked += 1
            address = report.sender_addresses[sender]
            reused.extend(f"{address} nonce {nonce}" for nonce in ranges.reused)
            reused_count += ranges.reused_count
            start = report.sender_start_nonces[sender]
            foreign = report.sender_foreign_nonces[sender] if report.sender_foreign_nonces else ()
            missing = ranges.missing(start, foreign)
            if missing:
                shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
                gaps.append(f"{address} missing nonce(s) {shown} below {ranges.highest}")
    if not senders_checked:
        return Verdict(NONCE_CONTIGUITY, "inconclusive", "no included transaction to check")
    if gaps or reused_count:
        evidence = _evidence(gaps=gaps, reused=reused)
        return Verdict(
            NONCE_CONTIGUITY,
            "failed",
            f"{len(gaps)} sender(s) with a nonce gap, {reused_count} nonce(s) included twice",
            evidence,
        )
    return Verdict(NONCE_CONTIGUITY, "passed", f"nonces contiguous for all {senders_checked} senders")


def receipt_status(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """Each checked receipt has the status its template expects (1 for success, 0 for an intended
    revert); inconclusive when fewer than :data:`RECEIPT_COVERAGE_BAR` of the expected were checked."""
    wrong = [item for report in reports for item in report.digest.wrong_status_items]
    wrong_count = sum(report.digest.wrong_status for report in reports)
    checked, wanted = receipt_coverage(reports)
    coverage = coverage_words(checked, wanted)
    if checked == 0:
        return _no_receipt_checked(RECEIPT_STATUS, reports, wanted)
    if wrong_count:
        return Verdict(
            RECEIPT_STATUS,
            "failed",
            f"{wrong_count} of {checked} checked receipt(s) with an unexpected status; {coverage}",
            {"unexpected": wrong[:EVIDENCE_LIMIT], **_coverage_evidence(reports, checked, wanted)},
        )
    if below_bar(checked, wanted, RECEIPT_COVERAGE_BAR):
        return Verdict(
            RECEIPT_STATUS,
            "inconclusive",
            f"only {coverage}, below the {RECEIPT_COVERAGE_BAR:.0%} bar; the {checked} checked have the "
            "expected status",
            _coverage_evidence(reports, checked, wanted),
        )
    return Verdict(
        RECEIPT_STATUS, "passed", f"all {checked} checked receipts have the expected status; {coverage}"
    )


def _no_receipt_checked(name: str, reports: Sequence[EdgeReport], wanted: int) -> Verdict:
    """The receipt invariants' inconclusive verdict when not one receipt was checked."""
    why = (
        f"none of the {wanted} expected receipts was obtained" if wanted else "receipts=0 or nothing included"
    )
    return Verdict(
        name,
        "inconclusive",
        f"no receipt was checked ({why})",
        _coverage_evidence(reports, 0, wanted) if wanted else {},
    )


def receipt_block(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """Each checked receipt names the block its transaction was seen in (``blockNumber`` and
    ``blockHash``); inconclusive when fewer than :data:`RECEIPT_COVERAGE_BAR` of the expected receipts
    were checked."""
    wrong = [item for report in reports for item in report.receipt_block_items]
    wrong_count = sum(report.receipt_block_mismatches for report in reports)
    checked, wanted = receipt_coverage(reports)
    coverage = coverage_words(checked, wanted)
    if wrong_count:
        return Verdict(
            RECEIPT_BLOCK,
            "failed",
            f"{wrong_count} of {checked} checked receipt(s) name another block than the one their "
            f"transaction was seen in; {coverage}",
            {"wrong_block": wrong[:EVIDENCE_LIMIT], **_coverage_evidence(reports, checked, wanted)},
        )
    if checked == 0:
        return _no_receipt_checked(RECEIPT_BLOCK, reports, wanted)
    if below_bar(checked, wanted, RECEIPT_COVERAGE_BAR):
        return Verdict(
            RECEIPT_BLOCK,
            "inconclusive",
            f"only {coverage}, below the {RECEIPT_COVERAGE_BAR:.0%} bar; the {checked} checked name the "
            "block their transaction was seen in",
            _coverage_evidence(reports, checked, wanted),
        )
    return Verdict(
        RECEIPT_BLOCK,
        "passed",
        f"all {checked} checked receipts name the block their transaction was seen in; {coverage}",
    )


def gas_model(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """Each checked receipt's gas stays within its template's tolerance of the model calibrated at
    setup; inconclusive when fewer than :data:`RECEIPT_COVERAGE_BAR` of the expected receipts were checked."""
    outside = [item for report in reports for item in report.digest.gas_outside_items]
    outside_count = sum(report.digest.gas_outside for report in reports)
    measured = sum(report.digest.gas_measured for report in reports)
    checked, wanted = receipt_coverage(reports)
    coverage = coverage_words(checked, wanted)
    if measured == 0:
        return Verdict(
            GAS_MODEL, "inconclusive", f"no receipt was checked, so no gas was measured; {coverage}"
        )
    if outside_count:
        return Verdict(
            GAS_MODEL,
            "failed",
            f"{outside_count} of {measured} transaction(s) used gas outside their template's model; {coverage}",
            {"outside": outside[:EVIDENCE_LIMIT], "outside_count": outside_count},
        )
    if below_bar(checked, wanted, RECEIPT_COVERAGE_BAR):
        return Verdict(
            GAS_MODEL,
            "inconclusive",
            f"only {coverage}, below the {RECEIPT_COVERAGE_BAR:.0%} bar; the {measured} measured are within "
            "their gas model",
            _coverage_evidence(reports, checked, wanted),
        )
    return Verdict(
        GAS_MODEL, "passed", f"all {measured} measured transactions within their gas model; {coverage}"
    )


def _blocks(reports: Sequence[EdgeReport]) -> list[Any]:
    """Every block the edges saw, one record per number (the first edge's view)."""
    by_number: dict[int, Any] = {}
    for report in reports:
        for block in report.blocks:
            by_number.setdefault(block.number, block)
    return [by_number[number] for number in sorted(by_number)]


def block_continuity(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """Block numbers have no hole, each block's parent hash is the previous block's hash, and
    every edge saw the same hash for the same block number."""
    blocks = _blocks(reports)
    if len(blocks) < 2:
        return Verdict(BLOCK_CONTINUITY, "inconclusive", f"{len(blocks)} block(s) observed; need two")
    holes: list[str] = []
    unlinked: list[str] = []
    for previous, block in itertools.pairwise(blocks):
        if block.number != previous.number + 1:
            holes.append(f"blocks {previous.number + 1}..{block.number - 1} never seen")
        elif block.parent_hash != previous.hash:
            unlinked.append(
                f"block {block.number} parent {block.parent_hash} != block {previous.number} hash {previous.hash}"
            )
    disagreements = []
    seen: dict[int, str] = {}
    for report in reports:
        for block in report.blocks:
            first = seen.setdefault(block.number, block.hash)
            if first != block.hash:
                disagreements.append(f"block {block.number}: {first} and {block.hash} ({report.edge_id})")
    if holes or unlinked or disagreements:
        evidence = _evidence(missing=holes, unlinked=unlinked, conflicting_hashes=disagreements)
        return Verdict(
            BLOCK_CONTINUITY,
            "failed",
            f"{len(holes)} hole(s), {len(unlinked)} broken parent link(s), {len(disagreements)} conflicting hash(es) "
            f"over blocks {blocks[0].number}..{blocks[-1].number}",
            evidence,
        )
    return Verdict(
        BLOCK_CONTINUITY, "passed", f"blocks {blocks[0].number}..{blocks[-1].number} contiguous and linked"
    )


def block_timestamps(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """Block timestamps never go backwards."""
    blocks = _blocks(reports)
    if len(blocks) < 2:
        return Verdict(BLOCK_TIMESTAMPS, "inconclusive", f"{len(blocks)} block(s) observed; need two")
    backwards = [
        f"block {block.number} at {block.timestamp} < block {previous.number} at {previous.timestamp}"
        for previous, block in itertools.pairwise(blocks)
        if block.timestamp < previous.timestamp
    ]
    if backwards:
        return Verdict(
            BLOCK_TIMESTAMPS,
            "failed",
            f"{len(backwards)} block(s) with a timestamp earlier than their predecessor's",
            {"backwards": backwards[:EVIDENCE_LIMIT]},
        )
    return Verdict(BLOCK_TIMESTAMPS, "passed", f"timestamps non-decreasing over {len(blocks)} blocks")


def block_gas(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """Each block's gasUsed is at most its gasLimit, and, where every transaction of a block had its
    receipt checked, the receipts' gas adds up to the block's gasUsed."""
    blocks = _blocks(reports)
    if not blocks:
        return Verdict(BLOCK_GAS, "inconclusive", "no block observed")
    over = [
        f"block {b.number}: gasUsed {b.gas_used:,} > gasLimit {b.gas_limit:,}"
        for b in blocks
        if b.gas_used > b.gas_limit
    ]
    receipt_gas: dict[int, int] = {}
    receipt_count: dict[int, int] = {}
    for report in reports:
        for number, (gas, count) in report.digest.block_receipts.items():
            receipt_gas[number] = receipt_gas.get(number, 0) + gas
            receipt_count[number] = receipt_count.get(number, 0) + count
    mismatched = []
    summed = 0
    for block in blocks:
        if block.tx_count and receipt_count.get(block.number) == block.tx_count:
            summed += 1
            if receipt_gas[block.number] != block.gas_used:
                mismatched.append(
                    f"block {block.number}: receipts {receipt_gas[block.number]:,} != gasUsed {block.gas_used:,}"
                )
    if over or mismatched:
        evidence = _evidence(over_limit=over, receipts_do_not_add_up=mismatched)
        return Verdict(
            BLOCK_GAS,
            "failed",
            f"{len(over)} block(s) over their gas limit, {len(mismatched)} whose receipts do not add up",
            evidence,
        )
    detail = f"; receipts add up in all {summed} fully checked block(s)" if summed else ""
    return Verdict(BLOCK_GAS, "passed", f"gasUsed within gasLimit in {len(blocks)} block(s){detail}")


def block_production(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """While transactions were outstanding, a new block came at least every ``max_block_gap``
    (the marker argument; each edge's report carries it): a chain that stopped is named as such."""
    facts = [(report.edge_id, report.chain_stall) for report in reports if report.chain_stall is not None]
    if not facts:
        return Verdict(BLOCK_PRODUCTION, "inconclusive", "no edge followed blocks")
    stalls: list[str] = []
    for edge_id, stall in facts:
        if stall["longest_s"] > stall["bound_s"]:
            ended = (
                f"; still none when the run ended ({stall['open_s']:.1f} s)"
                if stall["open_s"] > stall["bound_s"]
                else ""
            )
            stalls.append(
                f"{edge_id}: {describe_stall(stall['longest_s'], stall['head'])} while transactions were "
                f"outstanding{ended}"
            )
    bound = max(stall["bound_s"] for _, stall in facts)
    if stalls:
        worst = max(facts, key=lambda fact: fact[1]["longest_s"])[1]
        return Verdict(
            BLOCK_PRODUCTION,
            "failed",
            f"the chain stopped producing blocks: {describe_stall(worst['longest_s'], worst['head'])}, "
            f"longer than max_block_gap={bound:g} s",
            {"stalls": stalls[:EVIDENCE_LIMIT]},
        )
    longest = max(stall["longest_s"] for _, stall in facts)
    return Verdict(
        BLOCK_PRODUCTION,
        "passed",
        f"a new block within {bound:g} s whenever transactions were outstanding (longest wait {longest:.1f} s)",
    )


def _feed_facts(reports: Sequence[EdgeReport]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (report.edge_id, report.feed_stats or {}, report.feed_findings or {})
        for report in reports
        if report.feed_stats is not None
    ]


def _feed_verdict(
    name: str, reports: Sequence[EdgeReport], check: Callable[..., list[str]], passed: str
) -> Verdict:
    facts = _feed_facts(reports)
    if not facts:
        return Verdict(name, "inconclusive", "the run did not follow a sequencer feed")
    problems = [
        f"{edge_id}: {problem}" for edge_id, stats, findings in facts for problem in check(stats, findings)
    ]
    if problems:
        return Verdict(
            name,
            "failed",
            f"{len(problems)} problem(s) in the sequencer feed",
            {"problems": problems[:EVIDENCE_LIMIT]},
        )
    return Verdict(name, "passed", passed)


def _out_of_order(expected: int, got: int) -> str:
    """A jump from ``expected`` to ``got`` whose skipped messages all came later: no loss."""
    count = got - expected
    if count == 1:
        return f"out of order: sequence {expected} arrived after {got} (1 message late)"
    return f"out of order: sequences {expected}..{got - 1} arrived after {got} ({count} messages late)"


def feed_sequence(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """Feed sequence numbers strictly increase with no gap and no repeat.

    A gap whose every message the feed served again when the client asked for it (the client's
    ``recovered_gaps``) was lost in transit, not by the feed: it is said, not counted against it. A
    jump whose skipped numbers all came later on their own is messages out of order, said as such
    (the client moved it out of ``gaps``).
    """

    def check(stats: dict[str, Any], findings: dict[str, Any]) -> list[str]:
        recovered = {tuple(gap) for gap in stats.get("recovered_gaps") or []}
        open_gaps = [
            (expected, got) for expected, got in stats.get("gaps") or [] if (expected, got) not in recovered
        ]
        swapped = stats.get("out_of_order") or []
        problems = [f"gap: expected sequence {expected}, got {got}" for expected, got in open_gaps]
        problems += [_out_of_order(expected, got) for expected, got in swapped]
        problems += [f"sequence {sequence} delivered twice" for sequence in stats.get("duplicates") or []]
        unrecovered = stats.get("gap_count", 0) - stats.get("recovered_gap_count", 0)
        if unrecovered > len(open_gaps):
            problems.append(f"{unrecovered} gap(s) in all")
        if stats.get("out_of_order_count", 0) > len(swapped):
            problems.append(f"{stats['out_of_order_count']} jump(s) out of order in all")
        return problems

    passed = "sequence numbers contiguous, none repeated"
    recovered = sum(
        (report.feed_stats or {}).get("recovered_gap_count", 0) for report in reports if report.feed_stats
    )
    if recovered:
        passed += (
            f"; {recovered} gap(s) lost in transit were recovered by resuming from the first missing message"
        )
    return _feed_verdict(FEED_SEQUENCE, reports, check, passed)


def feed_exactly_once(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """Every included transaction appears in the feed exactly once."""

    def check(stats: dict[str, Any], findings: dict[str, Any]) -> list[str]:
        problems = [
            f"included but never in the feed: {item}"
            for item in findings.get("first_missing_from_feed") or []
        ]
        problems += [
            f"in the feed more than once: {item}" for item in findings.get("first_duplicated_in_feed") or []
        ]
        return problems

    return _feed_verdict(
        FEED_EXACTLY_ONCE, reports, check, "every included transaction appeared in the feed once"
    )


def feed_order(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """The feed carries transactions in block order."""

    def check(stats: dict[str, Any], findings: dict[str, Any]) -> list[str]:
        return [f"out of block order: {item}" for item in findings.get("first_order_violations") or []]

    return _feed_verdict(FEED_ORDER, reports, check, "feed order equals block order")


def feed_block_hash(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """The feed's block hash for each message equals the chain's."""

    def check(stats: dict[str, Any], findings: dict[str, Any]) -> list[str]:
        return [
            f"block hash differs from the chain's: {item}"
            for item in findings.get("first_hash_mismatches") or []
        ]

    return _feed_verdict(FEED_BLOCK_HASH, reports, check, "feed block hashes equal the chain's")


def feed_matches_chain(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """The feed's messages map onto the chain's blocks: every block inside the feed's range has a
    message (beyond what the sequence gaps already lost), no message holds transactions of two blocks,
    and every transaction the feed carried was included."""

    def check(stats: dict[str, Any], findings: dict[str, Any]) -> list[str]:
        problems = []
        missing = int(findings.get("blocks_missing_from_feed") or 0)
        lost = max(int(stats.get("missing_messages") or 0), 0)
        # A message lost in a sequence gap (feed_sequence says so) leaves at most one block without
        # one; blocks beyond that were left out of a feed whose numbering hides it.
        if missing > lost:
            listed = findings.get("first_blocks_missing_from_feed") or []
            gaps = f"only {lost} sequence number(s) missing" if lost else "no sequence number missing"
            problems.append(
                f"{missing} chain block(s) without a feed message, {gaps}: the feed left blocks out and "
                "numbered the later messages on"
            )
            problems += [f"block {number} has no feed message" for number in listed]
        problems += [
            f"in the feed but in no block of the chain: {item}"
            for item in findings.get("first_feed_only") or []
        ]
        problems += [
            f"one message holds transactions of several blocks: {item}"
            for item in findings.get("first_messages_spanning_blocks") or []
        ]
        return problems

    return _feed_verdict(
        FEED_MATCHES_CHAIN,
        reports,
        check,
        "every block in the feed's range has its message(s), each of one block, carrying only included "
        "transactions",
    )


def balance_conservation(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """For transfer runs: what the senders lost equals the value they moved plus the fees they paid.

    Needs every fee, so every receipt (:data:`BALANCE_COVERAGE_BAR`) and every edge's facts; an edge
    without them says why (``balance_check_skipped``), and the verdict is then inconclusive.
    """
    facts = [(report.edge_id, report.balance_check) for report in reports if report.balance_check is not None]
    lacking = [
        f"{report.edge_id}: "
        + (
            report.balance_check_skipped
            or "needs a transfer-only workload with every receipt checked (receipts='all')"
        )
        for report in reports
        if report.balance_check is None
    ]
    broken = []
    for edge_id, check in facts:
        expected = check["value_moved"] + check["fees_paid"]
        if check["senders_lost"] != expected:
            broken.append(
                f"{edge_id}: senders lost {check['senders_lost']:,} wei between blocks {check['block_before']} and "
                f"{check['block_after']}, but moved {check['value_moved']:,} + paid {check['fees_paid']:,} in fees "
                f"(difference {check['senders_lost'] - expected:+,})"
            )
    under_reported = [
        (edge_id, check)
        for edge_id, check in facts
        if check.get("receipts_below_base_fee")
        and check["senders_lost"] == check["value_moved"] + check["fees_at_base_fee"]
    ]
    if broken and len(under_reported) == len(broken):
        count = sum(check["receipts_below_base_fee"] for _, check in under_reported)
        return Verdict(
            BALANCE_CONSERVATION,
            "failed",
            f"the node's receipts under-report fees: {count} give an effectiveGasPrice below their block's "
            "base fee; priced at base fee + tip, as EIP-1559 charges, the balances add up",
            {"edges": broken},
        )
    if broken:
        return Verdict(BALANCE_CONSERVATION, "failed", "balances are not conserved", {"edges": broken})
    checked, wanted = receipt_coverage(reports)
    if lacking or not facts:
        reasons = sorted({line.split(": ", 1)[1] for line in lacking})
        summary = reasons[0] if len(reasons) == 1 else f"{len(lacking)} edge(s) lack the facts"
        evidence: dict[str, object] = (
            {"edges": lacking[:EVIDENCE_LIMIT]} if len(reports) > 1 or len(reasons) > 1 else {}
        )
        if wanted:
            evidence.update(_coverage_evidence(reports, checked, wanted))
        return Verdict(BALANCE_CONSERVATION, "inconclusive", summary, evidence)
    if not wanted:
        return Verdict(
            BALANCE_CONSERVATION, "inconclusive", "nothing was included, so no value moved to check"
        )
    if below_bar(checked, wanted, BALANCE_COVERAGE_BAR):
        return Verdict(
            BALANCE_CONSERVATION,
            "inconclusive",
            f"only {coverage_words(checked, wanted)}; every fee is needed",
            _coverage_evidence(reports, checked, wanted),
        )
    return Verdict(
        BALANCE_CONSERVATION,
        "passed",
        f"senders lost exactly the value moved plus the fees paid; {coverage_words(checked, wanted)}",
    )


def acceptance(
    reports: Sequence[EdgeReport],
    inclusion_timeout: float,
    max_rejected_share: float = DEFAULTS["max_rejected_share"],
) -> Verdict:
    """The node took the run's load: something was sent, something was accepted, and at most
    ``max_rejected_share`` of what was sent was refused. A run that did nothing never passes.

    The evidence quotes the node's refusals verbatim (code and message, with the kind the edge made
    of them): the first distinct messages per kind, the most frequent first.
    """
    sent = accepted = rejected = 0
    errors: dict[str, int] = {}
    for report in reports:
        sent += report.digest.sent
        accepted += report.digest.sent_accepted
        rejected += report.digest.sent_rejected
        for kind, count in report.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    refusals = [describe_rejection(entry) for entry in merge_rejections([r.rejections for r in reports])]
    evidence: dict[str, object] = {"sent": sent, "accepted": accepted, "rejected": rejected}
    if refusals:
        evidence["what_the_node_said"] = refusals[:EVIDENCE_LIMIT]
        evidence["errors"] = errors
    if sent == 0:
        stopped = next((r.stopped_early for r in reports if r.stopped_early), None)
        why = (
            f"the run stopped before sending ({stopped})"
            if stopped
            else "the plan scheduled none; raise gas_per_sec or duration"
        )
        return Verdict(ACCEPTANCE, "failed", f"no transaction was sent: {why}", evidence)
    if accepted == 0:
        unanswered = sent - rejected
        tail = f" ({unanswered} got no answer)" if unanswered else ""
        return Verdict(
            ACCEPTANCE,
            "failed",
            f"no transaction was accepted: the node refused {rejected} of {sent} sent{tail}",
            evidence,
        )
    share = rejected / sent
    if share > max_rejected_share:
        return Verdict(
            ACCEPTANCE,
            "failed",
            f"the node refused {rejected} of {sent} sent transactions ({share:.1%} > "
            f"max_rejected_share={max_rejected_share:g})",
            evidence,
        )
    return Verdict(
        ACCEPTANCE,
        "passed",
        f"{accepted} of {sent} sent transactions accepted, {rejected} refused "
        f"({share:.1%} <= max_rejected_share={max_rejected_share:g})",
        evidence if refusals else {},
    )


INVARIANTS: dict[str, Invariant] = {
    INCLUSION: inclusion,
    NO_DUPLICATE_INCLUSION: no_duplicate_inclusion,
    NONCE_CONTIGUITY: nonce_contiguity,
    RECEIPT_STATUS: receipt_status,
    RECEIPT_BLOCK: receipt_block,
    GAS_MODEL: gas_model,
    BLOCK_CONTINUITY: block_continuity,
    BLOCK_TIMESTAMPS: block_timestamps,
    BLOCK_GAS: block_gas,
    BLOCK_PRODUCTION: block_production,
    BALANCE_CONSERVATION: balance_conservation,
    FEED_SEQUENCE: feed_sequence,
    FEED_EXACTLY_ONCE: feed_exactly_once,
    FEED_ORDER: feed_order,
    FEED_BLOCK_HASH: feed_block_hash,
    FEED_MATCHES_CHAIN: feed_matches_chain,
    ACCEPTANCE: acceptance,
}
#: Kept for callers of the first release: the transaction invariants.
BASIC_INVARIANTS: dict[str, Invariant] = {name: INVARIANTS[name] for name in BASIC_INVARIANT_NAMES}


def evaluate(
    reports: Sequence[EdgeReport], inclusion_timeout: float, *, only: Sequence[str] | None = None,
    skip: Sequence[str] = (), settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Verdict]:  # fmt: skip
    """The verdicts of ``only`` these invariants (default: all), less ``skip``, in catalogue order.

    ``settings`` holds, by invariant name, the keyword arguments an invariant takes beyond the
    reports and the inclusion timeout (``{"acceptance": {"max_rejected_share": 0.2}}``); an
    invariant not named uses its defaults.
    """
    names = selected_invariants(INVARIANTS, only, skip)
    given = settings or {}
    return [INVARIANTS[name](reports, inclusion_timeout, **given.get(name, {})) for name in names]
